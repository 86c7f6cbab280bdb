"""The requests queue taking back messages the consumer holds (xpi.services.queue_hold): each sent again
with its body as received, delayed, and its hold mark as a message attribute; ten to a SendMessageBatch.
The copy is a new message (its receive count starts again at zero, so holds never count towards the
queue's maxReceiveCount); the consumer reports the original processed, and the event source mapping
deletes it."""

from collections.abc import Sequence

from xpi.adapters import aws
from xpi.domain.queue_hold import MAX_DELAY_S
from xpi.models.hold import ATTRIBUTE, HeldMessage

_BATCH = 10  # SendMessageBatch's limit


class SqsQueueHolder:
    def __init__(self, queue_url: str) -> None:
        self._queue_url = queue_url

    def hold(self, messages: Sequence[HeldMessage], delay_s: int) -> list[str]:
        delay = max(0, min(MAX_DELAY_S, delay_s))
        not_sent: list[str] = []
        for start in range(0, len(messages), _BATCH):
            chunk = messages[start : start + _BATCH]
            response = aws.sqs().send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": message.body,
                        "DelaySeconds": delay,
                        "MessageAttributes": {
                            ATTRIBUTE: {"DataType": "String", "StringValue": message.mark.model_dump_json()}
                        },
                    }
                    for index, message in enumerate(chunk)
                ],
            )
            not_sent.extend(chunk[int(failure["Id"])].message_id for failure in response.get("Failed", []))
        return not_sent
