"""Who first sent a queued message that could not be accepted, kept in the idempotency table (with
its TTL) under `intake#<key>`, so a DLQ redrive, which SQS re-sends as its starter under a new message
id, can be attributed to the original sender (xpi.services.redrive)."""

from xpi.adapters import aws
from xpi.models.intake import OriginalSender

PREFIX = "intake#"


class DynamoIntakeRecords:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def remember(self, key: str, sender: OriginalSender, expires_at: int) -> None:
        aws.dynamodb().Table(self._table_name).put_item(
            Item={
                "id": PREFIX + key,
                "sender_id": sender.sender_id,
                "message_id": sender.message_id,
                "expiration": expires_at,
            }
        )

    def recall(self, key: str) -> OriginalSender | None:
        table = aws.dynamodb().Table(self._table_name)
        stored = table.get_item(Key={"id": PREFIX + key}, ConsistentRead=True).get("Item")
        if not stored:
            return None
        return OriginalSender(sender_id=str(stored["sender_id"]), message_id=str(stored["message_id"]))
