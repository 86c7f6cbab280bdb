"""Workflow's last task: make the lineage item final (at most once) and shape the result event
(xpi.services.recording). The ASL emits the event only when `outcome.emit` is true, so a late
duplicate cannot emit twice."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.workflow import WorkflowState
from xpi.observability import logger, metrics, tracer
from xpi.services.recording import record_outcome

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.lineage_store)


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=WorkflowState)
def handler(event: WorkflowState, context: LambdaContext) -> dict[str, Any]:
    event.outcome = record_outcome(event, dependencies.lineage_store(), datetime.now(UTC))
    return event.model_dump(mode="json", exclude_none=True)
