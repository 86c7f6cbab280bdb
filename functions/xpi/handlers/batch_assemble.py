"""Batch workflow, Assemble: write results/<batch>.jsonl (streamed, in input order) and shape
`Batch Completed` (xpi.services.batch.assemble)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.batch import BatchStepInput
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import assemble

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_objects, dependencies.batch_table)


@logger.inject_lambda_context(correlation_id_path="batch.batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=BatchStepInput)
def handler(event: BatchStepInput, context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    summary = assemble(event.batch, dependencies.batch_table(), dependencies.batch_objects(), now)
    return summary.model_dump(mode="json", exclude_none=True)
