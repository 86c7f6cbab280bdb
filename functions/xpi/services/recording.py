"""The last step of every request: lineage made final (once) and the result event it produces; or, for
input the workflow's first step did not accept, that rejection answered once."""

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import EventPublisher, LineageStore, PayloadStore
from xpi.domain.intake import usable_request_id
from xpi.domain.outcome import (
    detail_type,
    lineage_item,
    own_completion,
    rejection_error,
    result_detail,
)
from xpi.models.events import INFERENCE_FAILED
from xpi.models.workflow import Outcome, RejectedInput, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.submission import reject
from xpi.services.validation import load_raw


def record_outcome(state: WorkflowState, lineage: LineageStore, now: datetime) -> Outcome:
    """The ASL emits the outcome's event only when `emit` is true. The event follows from the lineage
    state, not from whether this attempt wrote it: the item made final by this execution (this attempt,
    or an earlier attempt of this step that crashed after its write) emits; an item another writer made
    final (a late duplicate) does not."""
    detail = result_detail(state, completed_at=now)
    finalized, found = lineage.finalize_or_read(lineage_item(state, detail))
    if not finalized:
        completed_at = own_completion(state, detail.status, found)
        if completed_at is not None:
            # An earlier attempt of this step wrote the item and did not live to emit: emit its outcome.
            detail = result_detail(state, completed_at=completed_at)
            finalized = True
            logger.warning(
                "lineage made final by an earlier attempt of this execution; emitting its result",
                extra={"request_id": state.request.request_id},
            )
        else:
            logger.warning(
                "lineage already final; not emitting a second result",
                extra={"request_id": state.request.request_id},
            )
    outcome = Outcome(
        emit=finalized,
        detail_type=detail_type(detail),
        detail=detail.model_dump(mode="json", exclude_none=True),
    )
    metrics.add_metric(name=outcome.detail_type.replace(" ", ""), unit=MetricUnit.Count, value=1)
    return outcome


def record_rejection(
    rejected: RejectedInput,
    *,
    lineage: LineageStore,
    events: EventPublisher,
    payloads: PayloadStore,
    now: datetime,
    retention_days: int,
) -> Outcome:
    """Answer input the Validate step did not accept (invalid, or not validated for a platform failure):
    its event is published here, guarded by the lineage condition, so the outcome never asks the ASL to
    emit. The request's id, model and reply hints are read from the body the input refers to."""
    raw = load_raw(rejected.payload, payloads)
    request_id = usable_request_id(raw) or rejected.execution
    reject(
        request_id,
        raw=raw,
        source=rejected.source,
        error=rejection_error(rejected.error),
        lineage=lineage,
        events=events,
        now=now,
        retention_days=retention_days,
    )
    metrics.add_metric(name="InferenceFailed", unit=MetricUnit.Count, value=1)
    return Outcome(emit=False, detail_type=INFERENCE_FAILED, detail={"request_id": request_id})
