"""The day's usage per caller and per project (xpi.domain.access) in the budget table: one item per budget
and UTC day, `tokens` and `usd` counters. A reservation is one conditional write (a transaction when a
request counts against two budgets, its caller's and its project's), so concurrent requests never
reserve past a limit; a settlement after the call is an unconditional atomic ADD."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from xpi.adapters import aws
from xpi.domain.access import Charge

KEY = "budget"
_DIGITS = 8  # dollars to the hundred-millionth, as lineage's estimated cost


def _usd(value: float) -> Decimal:
    return Decimal(str(round(value, _DIGITS)))


def _update(charge: Charge, *, limited: bool) -> dict[str, Any]:
    """One item's update: ADD the charge (and keep its expiry), under its limits when `limited`."""
    names = {"#tokens": "tokens", "#usd": "usd", "#expires": "expires_at"}
    values: dict[str, Any] = {
        ":tokens": charge.tokens,
        ":usd": _usd(charge.usd),
        ":expires": charge.expires_at,
    }
    update: dict[str, Any] = {
        "Key": {KEY: charge.item},
        "UpdateExpression": "ADD #tokens :tokens, #usd :usd SET #expires = :expires",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    conditions = []
    if limited and charge.tokens_limit is not None:
        # the usage after the charge within the limit: used <= limit - charge
        values[":tokens_room"] = charge.tokens_limit - charge.tokens
        conditions.append("(attribute_not_exists(#tokens) OR #tokens <= :tokens_room)")
    if limited and charge.usd_limit is not None:
        values[":usd_room"] = _usd(charge.usd_limit - charge.usd)
        conditions.append("(attribute_not_exists(#usd) OR #usd <= :usd_room)")
    if conditions:
        update["ConditionExpression"] = " AND ".join(conditions)
    return update


def settlement_items(table_name: str, charges: Sequence[Charge]) -> list[dict[str, Any]]:
    """Settlements as items of another write's transaction (the sync path's one write on the way out)."""
    return [{"Update": {"TableName": table_name, **_update(c, limited=False)}} for c in charges]


class DynamoBudgetLedger:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.dynamodb().Table(self._table_name)

    def _write(self, updates: list[dict[str, Any]]) -> bool:
        if len(updates) == 1:
            return aws.write_if(lambda: self._table().update_item(**updates[0]))
        return aws.transact_if([{"Update": {"TableName": self._table_name, **u}} for u in updates])

    def reserve(self, charges: Sequence[Charge]) -> bool:
        if not charges:
            return True
        return self._write([_update(c, limited=True) for c in charges])

    def settle(self, charges: Sequence[Charge]) -> None:
        if charges:
            self._write([_update(c, limited=False) for c in charges])

    def used(self, items: Sequence[str]) -> dict[str, tuple[int, float]]:
        if not items:
            return {}
        answer: dict[str, tuple[int, float]] = {}
        for item in items:  # one or two items (the caller's, its project's)
            row = self._table().get_item(Key={KEY: item}, ConsistentRead=True).get("Item")
            if not row:
                continue
            answer[str(row[KEY])] = (int(row.get("tokens", 0)), float(row.get("usd", 0)))
        return answer

    def mark_alerted(self, item: str, threshold: int, at: str) -> bool:
        return aws.write_if(
            lambda: self._table().update_item(
                Key={KEY: item},
                UpdateExpression="SET #alerted = :at",
                ConditionExpression="attribute_exists(#key) AND attribute_not_exists(#alerted)",
                ExpressionAttributeNames={"#alerted": f"alerted_{threshold}", "#key": KEY},
                ExpressionAttributeValues={":at": at},
            )
        )
