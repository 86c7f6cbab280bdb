"""Result events on the xpi bus (schema: docs/events.md). Detail-types are stable API."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INFERENCE_COMPLETED = "Inference Completed"
INFERENCE_FAILED = "Inference Failed"
INFERENCE_BLOCKED = "Inference Blocked"
SECURITY_ALERT = "Security Alert"
BUDGET_ALERT = "Budget Threshold Reached"

DETAIL_TYPE_BY_STATUS = {
    "COMPLETED": INFERENCE_COMPLETED,
    "FAILED": INFERENCE_FAILED,
    "BLOCKED": INFERENCE_BLOCKED,
}


class _Detail(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventCaller(_Detail):
    principal: str
    project: str | None = None
    cost_centre: str | None = None
    tags: dict[str, str] = {}


class EventModel(_Detail):
    requested: str
    resolved: str | None = None
    region: str | None = None
    # The network path the call took to commercial Bedrock (docs/network.md), when paths are configured.
    egress_path: str | None = None


class EventExperiment(_Detail):
    """The A/B experiment whose variant answered (or was to answer) the request."""

    name: str
    variant: str


class EventOutput(_Detail):
    text: str | None = None
    body: dict[str, Any] | None = None
    s3_uri: str | None = None
    bytes: int
    sha256: str
    stop_reason: str | None = None


class EventUsage(_Detail):
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_cost_usd: float = 0.0
    cache_read_input_tokens: int | None = None  # Bedrock prompt caching's read and written prefixes
    cache_write_input_tokens: int | None = None
    cache: Literal["hit", "miss", "bypass"] | None = None  # the response cache, when one was asked for
    saved_usd: float | None = None  # a hit: what the Bedrock call would have cost
    # a batch line answered by a Bedrock batch inference job (half the on-demand price); absent otherwise
    billing: Literal["batch"] | None = None


class EventClassification(_Detail):
    decision: str
    categories: dict[str, int] = {}


class EventProblem(_Detail):
    """Where a request is wrong (field names and positions) and pydantic's error type; never a value."""

    location: str
    type: str


class EventError(_Detail):
    code: str
    message: str  # the code's fixed message (xpi.domain.errors.MESSAGES)
    problems: list[EventProblem] | None = None


class ResultDetail(_Detail):
    """detail of `Inference Completed`, `Inference Failed` and `Inference Blocked`."""

    version: Literal["1"] = "1"
    request_id: str
    status: Literal["COMPLETED", "FAILED", "BLOCKED"]
    source: str
    source_reference: str | None = None
    batch_id: str | None = None
    caller: EventCaller
    model: EventModel
    experiment: EventExperiment | None = None
    classification: EventClassification | None = None
    output: EventOutput | None = None
    usage: EventUsage | None = None
    error: EventError | None = None
    reply: dict[str, str] = {}
    timings: dict[str, datetime] = {}
    lineage_key: str


class ConfigAlert(_Detail):
    """What a configuration alert is about: a policy or routing change through the admin path, or a
    stored value the loaders refused (never the document itself: its revision and hash)."""

    document: Literal["policy", "routing", "egress"]
    change: Literal["changed", "unsigned", "tampered", "missing", "rolled_back"]
    parameter: str
    revision: int | None = None
    sha256: str | None = None
    applied_revision: int | None = Field(
        None, description="the revision now in force (0: the shipped default)"
    )
    claimed_identity: dict[str, str | None] = Field(
        default_factory=dict,
        description="for a change: the request context the admin path was given (API id, stage, account, "
        "caller), as received; a direct invoke can claim anything, so it is kept for the investigation",
    )


class CredentialAlert(_Detail):
    """A rotation of the commercial credentials that failed (the step, and the error's code), or a
    credential past its maximum age (its type, secret version and age); never a key."""

    change: Literal["rotation_failed", "past_max_age"]
    step: str | None = None
    error: str | None = None
    credential_type: str | None = None
    credential_version: str | None = None
    credential_age_s: int | None = None


class SecurityAlertDetail(_Detail):
    """A request carrying classified markings (``config`` absent), or a configuration event (``config``
    set; ``source`` is ``admin`` or ``config``, ``categories`` empty, ``decision`` what was applied)."""

    version: Literal["1"] = "1"
    request_id: str
    caller_principal: str
    source: str
    categories: dict[str, int]
    decision: str
    config: ConfigAlert | None = None
    credentials: CredentialAlert | None = None


class BudgetAlertDetail(_Detail):
    """A caller's or project's daily budget reached 80 % or 100 % (of its tokens or its dollars): one
    event per budget, threshold and UTC day, from the request whose settlement reached it."""

    version: Literal["1"] = "1"
    # Not `request_id`: subscribers key a request's one result event on that field.
    reached_by: str = Field(description="the request id whose usage reached the threshold")
    scope: Literal["caller", "project"]
    name: str
    day: str
    threshold: int = Field(description="80 or 100 (percent)")
    tokens_used: int
    tokens_per_day: int | None = None
    usd_used: float
    usd_per_day: float | None = None
