"""Batch workflow, RecordFailure (where every Catch leads): record why the batch failed in its status
item and shape `Batch Failed` (xpi.services.batch.record_failure)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.batch import BatchFailure
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import record_failure

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_table)


@logger.inject_lambda_context(correlation_id_path="batch.batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=BatchFailure)
def handler(event: BatchFailure, context: LambdaContext) -> dict[str, Any]:
    summary = record_failure(event, dependencies.batch_table(), datetime.now(UTC))
    return summary.model_dump(mode="json", exclude_none=True)
