"""The exact-match response cache in DynamoDB: one item per cache key (a keyed hash, never content),
the answer as its JSON, expiring with the table's TTL (`expires_at`). The table is encrypted with the
stack key; answers too large for the workflow state are already in the artifacts bucket (outputs/),
so an item holds their pointer and stays small."""

from typing import Any

from xpi.adapters import aws
from xpi.models.answer import CachedAnswer

KEY = "cache_key"


class DynamoResponseCache:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.dynamodb().Table(self._table_name)

    def get(self, key: str, now: int) -> CachedAnswer | None:
        item = self._table().get_item(Key={KEY: key}).get("Item")
        if not item:
            return None
        # DynamoDB's TTL deletes within days of expiry, not at it: an expired item is a miss.
        if int(item.get("expires_at", 0)) <= now:
            return None
        return CachedAnswer.model_validate_json(str(item["answer"]))

    def put(self, key: str, answer: CachedAnswer) -> None:
        self._table().put_item(
            Item={
                KEY: key,
                "answer": answer.model_dump_json(exclude_none=True),
                "expires_at": answer.expires_at,
            }
        )
