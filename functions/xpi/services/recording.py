"""The last step of every request: lineage made final (once) and the result event it produces; or, for
input the workflow's first step did not accept, that rejection answered once."""

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import EventPublisher, LineageStore, PayloadStore
from xpi.domain.intake import usable_request_id
from xpi.domain.outcome import detail_type, lineage_item, rejection_error, result_detail
from xpi.models.events import INFERENCE_FAILED
from xpi.models.workflow import Outcome, RejectedInput, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.submission import reject
from xpi.services.validation import load_raw


def record_outcome(state: WorkflowState, lineage: LineageStore, now: datetime) -> Outcome:
    """The ASL emits the outcome's event only when `emit` is true, so a late duplicate cannot emit twice."""
    detail = result_detail(state, completed_at=now)
    finalized = lineage.finalize(lineage_item(state, detail))
    # A late duplicate finds the item final already: it must not emit a second terminal event.
    outcome = Outcome(
        emit=finalized,
        detail_type=detail_type(detail),
        detail=detail.model_dump(mode="json", exclude_none=True),
    )
    metrics.add_metric(name=outcome.detail_type.replace(" ", ""), unit=MetricUnit.Count, value=1)
    if not outcome.emit:
        logger.warning(
            "lineage already final; not emitting a second result",
            extra={"request_id": state.request.request_id},
        )
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
