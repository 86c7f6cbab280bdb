"""Uploads noticed: S3 event notifications (through SQS, with a DLQ) start one batch workflow per
object version (xpi.services.batch.start_batches)."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.batch import S3Notification
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import start_batches
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_starter)

processor = BatchProcessor(event_type=EventType.SQS)


@contain_errors
def record_handler(record: SQSRecord) -> int:
    notification = S3Notification.model_validate_json(record.body)
    return start_batches(notification, get_settings().batch_input_prefix, dependencies.batch_starter())


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
