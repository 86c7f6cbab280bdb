"""Lineage items in DynamoDB (xpi.models.lineage): one per request, final states guarded by conditions."""

from collections.abc import Callable
from datetime import date
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.models.lineage import ACCEPTED, FIRST_SEEN_FIELDS, LineageFeedback, LineageItem

BY_DAY_INDEX = "by-day"
BY_STATUS_INDEX = "by-status"
BY_EXPERIMENT_INDEX = "by-experiment"
# Set on an item the reaper made FAILED once its Inference Failed event is published.
REPORTED_AT = "reported_at"
QUERY_PAGE_LIMIT = 500
_DESERIALIZER = TypeDeserializer()


def _item(stored: dict[str, Any]) -> LineageItem:
    # An attribute this version does not know (written by another version) is left out, not refused.
    data = aws.plain(stored)
    return LineageItem.model_validate({k: v for k, v in data.items() if k in LineageItem.model_fields})


def final_update(
    item: LineageItem, condition: str, names: dict[str, str], values: dict[str, Any]
) -> dict[str, Any]:
    """The UpdateItem arguments (expression, condition, names, plain values) that write an item's final
    state under `condition`, keeping a claim's first-seen fields."""
    names, values = dict(names), dict(values)
    assignments = []
    for index, (name, value) in enumerate(item.model_dump(exclude_none=True).items()):
        if name == "request_id":  # the key
            continue
        names[f"#a{index}"] = name
        values[f":a{index}"] = value
        # created_at, day and expires_at are kept from the claim when there was one.
        if name in FIRST_SEEN_FIELDS:
            assignments.append(f"#a{index} = if_not_exists(#a{index}, :a{index})")
        else:
            assignments.append(f"#a{index} = :a{index}")
    update = "SET " + ", ".join(assignments)
    if item.bedrock_calls_unanswered is None:
        # A claim may carry a provisional count of an answer its run might not deliver
        # (LineageClaims.count_answer): the final state says whether an answer was lost.
        names["#unanswered"] = "bedrock_calls_unanswered"
        update += " REMOVE #unanswered"
    return {
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class DynamoLineageStore:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def finalize(self, item: LineageItem, *, only_if_new: bool = False) -> bool:
        return aws.write_if(lambda: self._write_final(item, only_if_new=only_if_new))

    def finalize_or_read(self, item: LineageItem) -> tuple[bool, LineageItem | None]:
        # The item a failed condition met comes back with the error: no second call, no GetItem grant.
        try:
            self._write_final(item, only_if_new=False, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            stored: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            if not stored:
                return False, None
            return False, _item({name: _DESERIALIZER.deserialize(value) for name, value in stored.items()})
        return True, None

    def _write_final(self, item: LineageItem, *, only_if_new: bool, **options: Any) -> None:
        condition = "attribute_not_exists(#request_id)"
        extra_names: dict[str, str] = {"#request_id": "request_id"}
        extra_values: dict[str, Any] = {}
        if not only_if_new:  # DynamoDB rejects placeholders the expressions leave unused
            condition += " OR #status = :accepted"
            extra_names["#status"], extra_values[":accepted"] = "status", ACCEPTED
        aws.dynamodb().Table(self._table_name).update_item(
            Key={"request_id": item.request_id},
            **final_update(item, condition, extra_names, extra_values),
            **options,
        )

    def get(self, request_id: str) -> LineageItem | None:
        table = aws.dynamodb().Table(self._table_name)
        stored = table.get_item(Key={"request_id": request_id}, ConsistentRead=True).get("Item")
        return _item(dict(stored)) if stored else None

    def by_day(self, day: date, since_iso: str, limit: int) -> list[LineageItem]:
        table = aws.dynamodb().Table(self._table_name)
        items: list[LineageItem] = []
        arguments: dict[str, Any] = {
            "IndexName": BY_DAY_INDEX,
            "KeyConditionExpression": Key("day").eq(day.isoformat()) & Key("created_at").gte(since_iso),
            "ScanIndexForward": False,
        }
        while len(items) < limit:
            page = table.query(**arguments, Limit=min(limit - len(items), QUERY_PAGE_LIMIT))
            items.extend(_item(dict(stored)) for stored in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items

    def by_experiment(self, experiment: str, limit: int) -> list[LineageItem]:
        table = aws.dynamodb().Table(self._table_name)
        items: list[LineageItem] = []
        arguments: dict[str, Any] = {
            "IndexName": BY_EXPERIMENT_INDEX,
            "KeyConditionExpression": Key("experiment").eq(experiment),
        }
        while len(items) < limit:
            page = table.query(**arguments, Limit=min(limit - len(items), QUERY_PAGE_LIMIT))
            items.extend(_item(dict(stored)) for stored in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items

    def record_feedback(self, request_id: str, feedback: LineageFeedback) -> bool:
        def write() -> None:
            aws.dynamodb().Table(self._table_name).update_item(
                Key={"request_id": request_id},
                UpdateExpression="SET #feedback = :feedback",
                ConditionExpression="#status = :completed",
                ExpressionAttributeNames={"#feedback": "feedback", "#status": "status"},
                ExpressionAttributeValues={":feedback": feedback.model_dump(), ":completed": "COMPLETED"},
            )

        return aws.write_if(write)

    # ------------------------------------------------------------------ the reaper (by-status index)
    def _by_status(
        self,
        key: Any,
        limit: int,
        filter_expression: Any = None,
        keep: Callable[[str], bool] | None = None,
    ) -> list[LineageItem]:
        table = aws.dynamodb().Table(self._table_name)
        items: list[LineageItem] = []
        arguments: dict[str, Any] = {"IndexName": BY_STATUS_INDEX, "KeyConditionExpression": key}
        if filter_expression is not None:
            arguments["FilterExpression"] = filter_expression
        while len(items) < limit:
            page = table.query(**arguments, Limit=QUERY_PAGE_LIMIT)
            found = (_item(dict(stored)) for stored in page.get("Items", []))
            items.extend(item for item in found if keep is None or keep(item.request_id))
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit]

    def accepted_before(
        self, before_iso: str, limit: int, keep: Callable[[str], bool] | None = None
    ) -> list[LineageItem]:
        key = Key("status").eq(ACCEPTED) & Key("created_at").lt(before_iso)
        return self._by_status(key, limit, keep=keep)

    def abandon(self, item: LineageItem) -> bool:
        return self.finalize(item)

    def unreported_abandoned(
        self, created_since_iso: str, created_before_iso: str, completed_before_iso: str, code: str
    ) -> list[LineageItem]:
        key = Key("status").eq("FAILED") & Key("created_at").between(created_since_iso, created_before_iso)
        unreported = (
            Attr("error.code").eq(code)
            & Attr(REPORTED_AT).not_exists()
            & Attr("completed_at").lt(completed_before_iso)
        )
        return self._by_status(key, QUERY_PAGE_LIMIT, unreported)

    def mark_reported(self, request_id: str, at_iso: str) -> None:
        aws.dynamodb().Table(self._table_name).update_item(
            Key={"request_id": request_id},
            UpdateExpression="SET #reported = if_not_exists(#reported, :at)",
            ExpressionAttributeNames={"#reported": REPORTED_AT},
            ExpressionAttributeValues={":at": at_iso},
        )
