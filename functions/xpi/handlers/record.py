"""Workflow's last task: make the lineage item final (at most once) and shape the result event.

The ASL emits the event only when `outcome.emit` is true, so a late duplicate cannot emit twice.
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.errors import RequestInvalid
from xpi.domain.intake import usable_request_id
from xpi.domain.outcome import describe_error
from xpi.models.events import INFERENCE_FAILED
from xpi.models.workflow import Outcome, StepError, WorkflowInput, WorkflowState
from xpi.observability import logger, metrics, tracer
from xpi.services.recording import record_outcome
from xpi.services.submission import reject
from xpi.settings import get_settings


class RejectedInput(WorkflowInput):
    """The workflow's input when its first step rejected it (there is no claim, no state yet)."""

    error: StepError


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    if "claim" not in event:
        return _record_rejection(RejectedInput.model_validate(event), now)
    state = WorkflowState.model_validate(event)
    outcome = record_outcome(state, dependencies.lineage_store(), now)
    metrics.add_metric(name=outcome.detail_type.replace(" ", ""), unit=MetricUnit.Count, value=1)
    if not outcome.emit:
        logger.warning(
            "lineage already final; not emitting a second result",
            extra={"request_id": state.request.request_id},
        )
    state.outcome = outcome
    return state.model_dump(mode="json", exclude_none=True)


def _record_rejection(event: RejectedInput, now: datetime) -> dict[str, Any]:
    request_id = usable_request_id(event.request) or event.execution
    code, message = describe_error(event.error)
    # The rejection's event is published by `reject` itself, guarded by the lineage condition.
    reject(
        request_id,
        raw=event.request,
        source=event.source,
        error=RequestInvalid(f"{code}: {message}"),
        lineage=dependencies.lineage_store(),
        events=dependencies.event_publisher(),
        now=now,
        retention_days=get_settings().lineage_retention_days,
    )
    metrics.add_metric(name="InferenceFailed", unit=MetricUnit.Count, value=1)
    outcome = Outcome(emit=False, detail_type=INFERENCE_FAILED, detail={"request_id": request_id})
    return {**event.model_dump(mode="json", exclude_none=True), "outcome": outcome.model_dump(mode="json")}
