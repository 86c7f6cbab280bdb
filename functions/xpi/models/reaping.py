"""What the reaper reads of a request's execution, and what one run of it did."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from xpi.models.workflow import Source

ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]


class ExecutionState(BaseModel):
    """A request's inference execution: its status and who sent the request (from its input)."""

    model_config = ConfigDict(frozen=True)

    status: ExecutionStatus
    source: Source | None = None


class ReapReport(BaseModel):
    """One reaper run: the request ids it ended as FAILED, the executions it stopped, the abandonments
    whose event it published late (an earlier run wrote the lineage but did not get to publish), and the
    candidates another writer finished first."""

    reaped: list[str] = []
    stopped: list[str] = []
    reported_late: list[str] = []
    finished_meanwhile: list[str] = []


class TakeoverRequest(BaseModel):
    """The reaper invoked by an operator (`xpi regions takeover`, docs/operations.md, "Disaster
    recovery"): end the requests another region, declared lost, left unended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    takeover_region: str


class TakeoverReport(BaseModel):
    """One takeover run: the lost region's request ids it ended as FAILED (`RegionLost`), those whose
    event it published late, those found final meanwhile, and whether more may be left (a full page)."""

    region: str
    ended: list[str] = []
    reported_late: list[str] = []
    finished_meanwhile: list[str] = []
    more: bool = False
