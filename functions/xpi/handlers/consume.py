"""Requests queue consumer: validate each message and start its workflow, reporting partial failures.

A message that cannot be accepted is answered once (failure event + lineage) and reported as a batch
item failure, so it returns until maxReceiveCount moves it to the DLQ, without holding up its batch.
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.intake import OriginalSender
from xpi.models.workflow import Source
from xpi.observability import logger, metrics, tracer
from xpi.services import redrive
from xpi.services.submission import submit
from xpi.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS)


@contain_errors
def record_handler(record: SQSRecord) -> str:
    # A redriven message is attributed to its original sender and message id, never to the redriver.
    sender = redrive.original_sender(
        record.body,
        OriginalSender(sender_id=record.attributes.sender_id, message_id=record.message_id),
        get_settings().redrivers,
        dependencies.intake_records(),
        dependencies.hash_key(),
    )
    source = Source(
        kind="sqs",
        principal=sender.sender_id,
        reference=sender.message_id,
        received_at=datetime.fromtimestamp(int(record.attributes.sent_timestamp) / 1000, tz=UTC),
    )
    try:
        outcome, request = submit(
            record.body,
            source=source,
            fallback_id=sender.message_id,
            starter=dependencies.workflow_starter(),
            lineage=dependencies.lineage_store(),
            events=dependencies.event_publisher(),
            now=datetime.now(UTC),
            retention_days=get_settings().lineage_retention_days,
        )
    except Exception:  # it returns, and may reach the DLQ: keep who sent it for a redrive
        redrive.remember(
            record.body, sender, datetime.now(UTC), dependencies.intake_records(), dependencies.hash_key()
        )
        raise
    logger.info("request accepted", extra={"request_id": request.request_id, "outcome": outcome})
    metrics.add_metric(name=f"Requests{outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
