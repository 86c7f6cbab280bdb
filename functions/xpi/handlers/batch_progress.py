"""Line results of batches (`Inference *` events with a batch_id, EventBridge -> SQS): record each
line once, start the next waiting line, resume the batch workflow after the last."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import record_progress

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(
    dependencies.batch_table,
    dependencies.batch_workflow,
    dependencies.line_starter,
    dependencies.lineage_store,
)

processor = BatchProcessor(event_type=EventType.SQS)


@contain_errors
def record_handler(record: SQSRecord) -> str:
    event = json.loads(record.body)
    return record_progress(
        event.get("detail", {}),
        dependencies.batch_table(),
        dependencies.line_starter(),
        dependencies.batch_workflow(),
        dependencies.lineage_store(),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
