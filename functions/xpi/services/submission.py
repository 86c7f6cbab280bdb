"""Accepting work from producers (queue messages, API submits): validate, then start the workflow.

A request that cannot be accepted is answered once: a failure lineage item and an `Inference Failed`
event under its own request id when one can be read, else under the message's id (SQS message id, API
request id), guarded so a redelivered message does not answer twice.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from xpi.adapters.ports import EventPublisher, LineageStore, QueueStarter, WorkflowStarter
from xpi.domain.errors import RequestInvalid, RequestNotProcessed, XpiError
from xpi.domain.intake import parse_json_object, parse_request, rejected_request_id
from xpi.domain.outcome import MAX_ERROR_MESSAGE
from xpi.domain.regions import refuse_other_regions
from xpi.models.events import (
    INFERENCE_FAILED,
    EventCaller,
    EventError,
    EventModel,
    EventProblem,
    ResultDetail,
)
from xpi.models.lineage import LineageError, LineageItem
from xpi.models.queue import QueuedInput, UnprocessedAnswer
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Source, WorkflowInput


class Submitted(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Submitter:
    """Where a submit goes: the inference workflow, and the lineage and bus that answer a rejection."""

    starter: WorkflowStarter
    lineage: LineageStore
    events: EventPublisher
    retention_days: int
    region: str = ""  # the stack's region: a request id minted for another is refused (xpi.domain.regions)


def submit(
    body: str,
    *,
    source: Source,
    fallback_id: str,
    starter: WorkflowStarter,
    lineage: LineageStore,
    events: EventPublisher,
    now: datetime,
    retention_days: int,
    region: str = "",
) -> tuple[Submitted, InferenceRequest]:
    request = parse_or_reject(
        body,
        source=source,
        fallback_id=fallback_id,
        lineage=lineage,
        events=events,
        now=now,
        retention_days=retention_days,
    )
    refuse_other_regions(request.request_id, region)
    started = starter.start(
        request.request_id,
        WorkflowInput(request=request.model_dump(mode="json", exclude_none=True), source=source),
    )
    return (Submitted.STARTED if started else Submitted.DUPLICATE), request


def parse_or_reject(
    body: str,
    *,
    source: Source,
    fallback_id: str,
    lineage: LineageStore,
    events: EventPublisher,
    now: datetime,
    retention_days: int,
) -> InferenceRequest:
    """The request a body holds; a body that is not one is answered once (failure lineage and
    `Inference Failed`) and its RequestInvalid raised. Every producer (queue, API, the sync path) goes
    through here, so an invalid request ends the same way whichever way it came."""
    raw: dict[str, Any] | None = None
    try:
        raw = parse_json_object(body)
        return parse_request(raw, fallback_id=fallback_id)
    except RequestInvalid as exc:
        # Answered under the body's own id when it can be read (even from a body too large to parse),
        # else under the message's (the SQS message id, the API request id): never left unanswered.
        reject(
            rejected_request_id(body, raw) or fallback_id,
            raw=raw or {},
            source=source,
            error=exc,
            lineage=lineage,
            events=events,
            now=now,
            retention_days=retention_days,
        )
        raise


def failure_answer(
    request_id: str,
    *,
    raw: dict[str, Any],
    source: Source,
    error: XpiError,
    now: datetime,
    retention_days: int,
    completed: bool = True,
) -> tuple[LineageItem, ResultDetail]:
    """The failure lineage item and `Inference Failed` detail of a request that was never claimed, from
    its body as received (`raw`) and its sender. `completed=False`: an answer prepared ahead of its use,
    which therefore carries no completion time."""
    model = raw.get("model")
    reply = raw.get("reply")
    reply_fields = reply.items() if isinstance(reply, dict) else []
    detail = ResultDetail(
        request_id=request_id,
        status="FAILED",
        source=source.kind,
        source_reference=source.reference,
        batch_id=source.batch_id,
        caller=EventCaller(principal=source.principal),
        model=EventModel(requested=model if isinstance(model, str) else ""),
        error=EventError(
            code=error.code,
            message=error.message[:MAX_ERROR_MESSAGE],
            problems=[EventProblem(location=p.location, type=p.type) for p in error.problems] or None,
        ),
        reply={str(k): v for k, v in list(reply_fields)[:10] if isinstance(v, str)},
        timings={"received_at": source.received_at, **({"completed_at": now} if completed else {})},
        lineage_key=request_id,
    )
    failure = LineageItem(
        request_id=request_id,
        status="FAILED",
        created_at=now.isoformat(timespec="milliseconds"),
        day=now.strftime("%Y-%m-%d"),
        expires_at=int(now.timestamp()) + retention_days * 86_400,
        caller_principal=source.principal,
        source=source.kind,
        source_reference=source.reference,
        model_requested=detail.model.requested,
        error=LineageError(code=error.code, message=error.message[:MAX_ERROR_MESSAGE]),
        completed_at=now.isoformat(timespec="milliseconds") if completed else None,
    )
    return failure, detail


def queued_input(
    request: InferenceRequest, *, source: Source, now: datetime, retention_days: int
) -> QueuedInput:
    """An accepted queue request as its batch's execution takes it, with the answer the workflow gives it
    itself should its process step never run (`RequestNotProcessed`, statemachines/workflows.yaml)."""
    raw = request.model_dump(mode="json", exclude_none=True)
    item, detail = failure_answer(
        request.request_id,
        raw=raw,
        source=source,
        error=RequestNotProcessed(),
        now=now,
        retention_days=retention_days,
        completed=False,
    )
    return QueuedInput(request=raw, source=source, unprocessed=UnprocessedAnswer(item=item, detail=detail))


def reject(
    request_id: str | None,
    *,
    raw: dict[str, Any],
    source: Source,
    error: XpiError,
    lineage: LineageStore,
    events: EventPublisher,
    now: datetime,
    retention_days: int,
) -> bool:
    """Answer a request that was not accepted (invalid, or not validated) once; False when it has no
    usable id or was answered before."""
    if request_id is None:
        return False
    failure, detail = failure_answer(
        request_id, raw=raw, source=source, error=error, now=now, retention_days=retention_days
    )
    answered = lineage.finalize(failure, only_if_new=True)
    if answered:
        events.publish(INFERENCE_FAILED, detail)
    return answered


def start_batch(accepted: list[tuple[str, QueuedInput]], starter: QueueStarter) -> list[str]:
    """Start the queue workflow for a batch's accepted requests (message id, request); the message ids
    whose execution did not start (they return to the queue). Nothing to start: nothing started."""
    if not accepted:
        return []
    return starter.start(accepted)
