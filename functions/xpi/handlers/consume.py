"""Requests queue consumer: validate each message, then start the queue workflow (Express) once for
the batch's accepted requests, reporting partial failures.

A message that cannot be accepted is answered once (failure event + lineage) and reported as a batch
item failure, so it returns until maxReceiveCount moves it to the DLQ, without holding up its batch. A
message whose execution did not start is reported too, and returns.

While the model's Bedrock quota is spent, accepted messages are held in the queue instead of started
(xpi.services.queue_hold): sent again, delayed, by this function's role with a hold mark naming their
original sender, message id and sent time, and reported processed. A message from this role is read as
its mark says; a mark on anyone else's message is ignored.
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.ownership import owner_of
from xpi.handlers import contain_errors
from xpi.models.hold import ATTRIBUTE, HoldMark
from xpi.models.intake import OriginalSender
from xpi.models.queue import QueuedInput
from xpi.models.workflow import Source
from xpi.observability import logger, metrics, tracer
from xpi.services import redrive
from xpi.services.queue_hold import Pending
from xpi.services.submission import Submitted, parse_or_reject, queued_input, start_batch
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(
    dependencies.event_publisher,
    dependencies.hash_key,
    dependencies.intake_records,
    dependencies.lineage_store,
    dependencies.queue_starter,
    dependencies.queue_hold,
)

processor = BatchProcessor(event_type=EventType.SQS)
# The accepted requests of the batch being handled, by message id, for the one start at its end; with
# each message's body and sender, kept for a redrive when its execution does not start.
_accepted: list[tuple[str, QueuedInput]] = []
_senders: dict[str, tuple[str, OriginalSender]] = {}
_pending: list[Pending] = []


def _hold_mark(record: SQSRecord) -> HoldMark | None:
    """The mark of a message this function held earlier (sent by its own role); None for any other."""
    if owner_of(record.attributes.sender_id) not in get_settings().queue_holders:
        return None
    attribute = record.message_attributes[ATTRIBUTE]
    if attribute is None or attribute.string_value is None:
        return None
    return HoldMark.model_validate_json(attribute.string_value)


@contain_errors
def record_handler(record: SQSRecord) -> str:
    # A redriven message is attributed to its original sender and message id, never to the redriver;
    # a held one to what its mark says.
    mark = _hold_mark(record)
    if mark is None:
        sender = redrive.original_sender(
            record.body,
            OriginalSender(sender_id=record.attributes.sender_id, message_id=record.message_id),
            get_settings().redrivers,
            dependencies.intake_records(),
            dependencies.hash_key(),
        )
        mark = HoldMark(sender=sender, sent_timestamp_ms=int(record.attributes.sent_timestamp))
    sender = mark.sender
    source = Source(
        kind="sqs",
        principal=sender.sender_id,
        reference=sender.message_id,
        received_at=datetime.fromtimestamp(mark.sent_timestamp_ms / 1000, tz=UTC),
    )
    try:
        request = parse_or_reject(
            record.body,
            source=source,
            fallback_id=sender.message_id,
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
    _senders[record.message_id] = (record.body, sender)
    _pending.append(Pending(message_id=record.message_id, body=record.body, request=request, mark=mark))
    _accepted.append(
        (
            record.message_id,
            queued_input(
                request,
                source=source,
                now=datetime.now(UTC),
                retention_days=get_settings().lineage_retention_days,
            ),
        )
    )
    logger.info("request accepted", extra={"request_id": request.request_id})
    return Submitted.STARTED


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _accepted.clear()
    _senders.clear()
    _pending.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    accepted, _accepted[:] = list(_accepted), []
    hold = dependencies.queue_hold()
    if hold is not None:  # held: sent back to the queue for later, and reported processed
        held = hold.held(_pending)
        accepted = [(message_id, queued) for message_id, queued in accepted if message_id not in held]
    _pending.clear()
    not_started = start_batch(accepted, dependencies.queue_starter())
    for message_id in not_started:  # it returns, and may reach the DLQ: keep who sent it for a redrive
        body, sender = _senders[message_id]
        redrive.remember(
            body, sender, datetime.now(UTC), dependencies.intake_records(), dependencies.hash_key()
        )
    metrics.add_metric(name="RequestsStarted", unit=MetricUnit.Count, value=len(accepted) - len(not_started))
    if not_started:  # they return to the queue: a later delivery starts them
        logger.warning("queue workflow not started for some requests", extra={"messages": len(not_started)})
        failures: list[PartialItemFailures] = list(response.get("batchItemFailures", []))
        failures.extend({"itemIdentifier": message_id} for message_id in not_started)
        response["batchItemFailures"] = failures
    return response
