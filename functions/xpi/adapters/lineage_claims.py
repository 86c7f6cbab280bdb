"""The queue workflow's claim: the lineage item's first version, one conditional PutItem (the item the
inference workflow's Claim state and the sync path write, plus the claiming execution's token). The
item a failed condition met comes back with the error: no second call, no GetItem grant."""

from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.models.lineage import ACCEPTED, LineageItem
from xpi.models.workflow import Claim

_DESERIALIZER = TypeDeserializer()


class DynamoLineageClaims:
    def __init__(self, lineage_table: str) -> None:
        self._lineage_table = lineage_table

    def claim(self, claim: Claim) -> LineageItem | None:
        item = LineageItem.claimed(claim).model_dump(exclude_none=True)
        try:
            aws.dynamodb().Table(self._lineage_table).put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(request_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            stored: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            if not stored:  # the item exists; the write did not say what it holds: someone else's
                return LineageItem.claimed(claim.model_copy(update={"claimed_by": None}))
            data = aws.plain({name: _DESERIALIZER.deserialize(value) for name, value in stored.items()})
            known = {k: v for k, v in data.items() if k in LineageItem.model_fields}
            return LineageItem.model_validate(known)
        return None

    def count_answer(self, request_id: str, claimed_by: str) -> bool:
        return aws.write_if(
            lambda: (
                aws.dynamodb()
                .Table(self._lineage_table)
                .update_item(
                    Key={"request_id": request_id},
                    UpdateExpression="SET #unanswered = :one",
                    ConditionExpression="#status = :accepted AND #claimed_by = :token",
                    ExpressionAttributeNames={
                        "#unanswered": "bedrock_calls_unanswered",
                        "#status": "status",
                        "#claimed_by": "claimed_by",
                    },
                    ExpressionAttributeValues={":one": 1, ":accepted": ACCEPTED, ":token": claimed_by},
                )
            )
        )
