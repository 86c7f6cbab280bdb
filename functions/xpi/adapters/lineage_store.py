"""Lineage items in DynamoDB: one per request, final states guarded by conditions."""

from typing import Any, Protocol

from xpi.adapters import aws

ACCEPTED = "ACCEPTED"


class LineageStore(Protocol):
    def finalize(
        self,
        request_id: str,
        attributes: dict[str, Any],
        first_seen: dict[str, Any],
        *,
        only_if_new: bool = False,
    ) -> bool:
        """Write the final state; False when the item is already final (a late duplicate)."""
        ...

    def get(self, request_id: str) -> dict[str, Any] | None: ...


class DynamoLineageStore:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def finalize(
        self,
        request_id: str,
        attributes: dict[str, Any],
        first_seen: dict[str, Any],
        *,
        only_if_new: bool = False,
    ) -> bool:
        names: dict[str, str] = {"#request_id": "request_id"}
        values: dict[str, Any] = {}
        assignments = []
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            assignments.append(f"#a{index} = :a{index}")
        # created_at, day and expires_at are kept from the claim when there was one.
        for index, (name, value) in enumerate(first_seen.items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            assignments.append(f"#f{index} = if_not_exists(#f{index}, :f{index})")
        condition = "attribute_not_exists(#request_id)"
        if not only_if_new:  # DynamoDB rejects placeholders the expressions leave unused
            condition += " OR #status = :accepted"
            names["#status"], values[":accepted"] = "status", ACCEPTED
        return aws.write_if(
            lambda: (
                aws.dynamodb()
                .Table(self._table_name)
                .update_item(
                    Key={"request_id": request_id},
                    UpdateExpression="SET " + ", ".join(assignments),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            )
        )

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = aws.dynamodb().Table(self._table_name).get_item(Key={"request_id": request_id}).get("Item")
        return dict(item) if item else None
