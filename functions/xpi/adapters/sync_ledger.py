"""The sync path's records in DynamoDB: the lineage claim (the item the workflow's Claim state writes,
same attributes and condition), and the one write on the way out: a transaction that makes that claim
final and keeps the answer in the idempotency table for a repeated call (24 h, like the invoke step's
Powertools records, under the stack key), and settles the budgets the route reserved (docs/security.md,
"Fine-grained permissions"), so a budget adds one DynamoDB call to the sync path (the reservation).

The final lineage item replaces the claim whole (a conditional Put), not attribute by attribute: this
path wrote the claim itself, and the final item carries every field of it (the first-seen ones from the
same claim, which the condition checks), so the stored item is the same as after the queue path's
UpdateItem, for the same write units, and there is no 30-attribute update expression to evaluate."""

import json
import time
from collections.abc import Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.adapters.budget_table import settlement_items
from xpi.domain.access import Charge
from xpi.models.answer import StoredAnswer
from xpi.models.lineage import ACCEPTED, LineageItem
from xpi.models.workflow import Claim

# Keys of kept answers in the idempotency table (Powertools' keys are `<function>.<name>#<hash>`).
ANSWER_KEY_PREFIX = "sync-answer#"
_DESERIALIZER = TypeDeserializer()


def _lineage(stored: dict[str, Any]) -> LineageItem:
    data = aws.plain(stored)
    return LineageItem.model_validate({k: v for k, v in data.items() if k in LineageItem.model_fields})


class DynamoSyncLedger:
    def __init__(self, lineage_table: str, answers_table: str, budget_table: str = "") -> None:
        self._lineage_table = lineage_table
        self._answers_table = answers_table
        self._budget_table = budget_table
        self._tables: dict[str, Any] = {}

    def _table(self, name: str) -> Any:
        """The table's boto3 resource, built once per warm function (building one costs about a ms)."""
        if name not in self._tables:
            self._tables[name] = aws.dynamodb().Table(name)
        return self._tables[name]

    def claim(self, claim: Claim) -> LineageItem | None:
        item = LineageItem.claimed(claim).model_dump(exclude_none=True)
        try:
            self._table(self._lineage_table).put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(request_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            stored: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            if not stored:  # the item exists; the write did not say what it holds
                return self.lineage(claim.request_id) or LineageItem.claimed(claim)
            return _lineage({name: _DESERIALIZER.deserialize(value) for name, value in stored.items()})
        return None

    def finish(
        self, item: LineageItem, answer: StoredAnswer, answer_expires_at: int, settle: Sequence[Charge] = ()
    ) -> bool:
        kept = {
            "id": ANSWER_KEY_PREFIX + item.request_id,
            "detail_type": answer.detail_type,
            "detail": json.dumps(answer.detail, ensure_ascii=False, separators=(",", ":")),
            "expiration": answer_expires_at,
        }
        transaction: list[Any] = [
            {
                "Put": {
                    "TableName": self._lineage_table,
                    "Item": item.model_dump(exclude_none=True),
                    # Still the claim this call made: not made final meanwhile (the reaper, an operator).
                    "ConditionExpression": "#status = :accepted AND #claimed_at = :claimed_at",
                    "ExpressionAttributeNames": {"#status": "status", "#claimed_at": "created_at"},
                    "ExpressionAttributeValues": {":accepted": ACCEPTED, ":claimed_at": item.created_at},
                }
            },
            {
                "Put": {
                    "TableName": self._answers_table,
                    "Item": kept,
                    "ConditionExpression": "attribute_not_exists(id)",
                }
            },
        ]
        if settle and self._budget_table:  # the budgets' settlement rides the same write
            transaction += settlement_items(self._budget_table, settle)
        return aws.transact_if(transaction)

    def lineage(self, request_id: str) -> LineageItem | None:
        table = self._table(self._lineage_table)
        stored = table.get_item(Key={"request_id": request_id}, ConsistentRead=True).get("Item")
        return _lineage(dict(stored)) if stored else None

    def answer(self, request_id: str) -> StoredAnswer | None:
        table = self._table(self._answers_table)
        stored = table.get_item(Key={"id": ANSWER_KEY_PREFIX + request_id}, ConsistentRead=True).get("Item")
        # TTL deletes an expired item some time later: until then it is read as gone.
        if not stored or int(str(stored.get("expiration", 0))) < time.time():
            return None
        return StoredAnswer(detail_type=str(stored["detail_type"]), detail=json.loads(str(stored["detail"])))
