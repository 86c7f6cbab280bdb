"""Workflow task after Validate did not accept its input (there is no claim, no state yet): answer it
once, with a failure lineage item and the Inference Failed event this function publishes itself
(xpi.services.recording.record_rejection). RequestInvalid when Validate judged the request invalid;
ValidationUnavailable when a platform failure kept Validate from judging it."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.workflow import RejectedInput
from xpi.observability import logger, metrics, tracer
from xpi.services.recording import record_rejection
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.event_publisher, dependencies.lineage_store, dependencies.payload_store)


@logger.inject_lambda_context(correlation_id_path="execution")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=RejectedInput)
def handler(event: RejectedInput, context: LambdaContext) -> dict[str, Any]:
    event.outcome = record_rejection(
        event,
        lineage=dependencies.lineage_store(),
        events=dependencies.event_publisher(),
        payloads=dependencies.payload_store(),
        now=datetime.now(UTC),
        retention_days=get_settings().lineage_retention_days,
    )
    return event.model_dump(mode="json", exclude_none=True)
