"""The queue workflow's input: one Express execution per SQS batch, each request of the batch one item
of its Map (statemachines/workflows.yaml, `queue`).

An Express execution keeps no history (only logs, without execution data here), so an ordinary request
travels inline; a large one keeps its body in the artifacts bucket (`payloads/`) and travels as a
reference, so the execution's input stays under Step Functions' 256 KiB.
"""

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xpi.models.events import ResultDetail
from xpi.models.lineage import LineageItem
from xpi.models.workflow import PayloadRef, Source, WorkflowInput


class UnprocessedAnswer(BaseModel):
    """A request's answer should the queue workflow's process step never run its course for it (Lambda
    refusing or throttling the function for good, a runtime that never starts): its failure lineage
    item (`RequestNotProcessed`) and its `Inference Failed` event. The consumer prepares it when it starts
    the batch, so the workflow writes and publishes it with no function of its own (the Map item's
    Catch, statemachines/workflows.yaml), on condition that the request holds no claim."""

    model_config = ConfigDict(extra="forbid")

    item: LineageItem
    detail: ResultDetail


class QueuedInput(WorkflowInput):
    """A queue request to start: the request, its sender, and its answer if it is never processed."""

    unprocessed: UnprocessedAnswer


class UnprocessedRecord(BaseModel):
    """The queue workflow's form of an `UnprocessedAnswer`: the lineage item as DynamoDB attribute
    values (the workflow's PutItem takes them as they are) with `recorded_by` naming this item of this
    execution, so a retried PutItem that finds its own write goes on to publish, and the event's detail."""

    model_config = ConfigDict(extra="forbid")

    item: dict[str, Any]
    detail: dict[str, Any]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueuedRequest(_State):
    """One request of a batch: its body inline (`request`) or behind `payload`, and who sent it."""

    request: dict[str, Any] | None = None
    payload: PayloadRef | None = None
    source: Source
    # Written and published by the workflow itself if the process step never runs its course.
    unprocessed: UnprocessedRecord | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Self:
        if (self.request is None) == (self.payload is None):
            raise ValueError("a queued request holds its body inline or a reference to it, not both")
        return self


class QueueTask(_State):
    """The process step's input: one item of the batch and the execution it runs in (from the context
    object), whose token the request's claim carries."""

    item: QueuedRequest
    execution: str
    started_at: str
    index: int = Field(0, ge=0, description="the item's place in the batch")

    def token(self) -> str:
        """This item of this execution: a retry of its step has it, a duplicate message of the same
        request in the same batch (another item) does not. The execution's name and the item's index come
        first: the workflow itself recognises its item's claim by that prefix (EndOwnClaim: Step Functions
        cannot format the start time it would need for the whole token)."""
        return f"{self.execution}#{self.index}@{self.started_at}"


class NotOwned(_State):
    """The process step's answer for a request another execution holds (an SQS redelivery started a
    second execution): that execution answers it; this one ends the item without a result."""

    request_id: str
