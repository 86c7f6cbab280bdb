"""Each egress path's circuit breaker and health (xpi.domain.egress) in DynamoDB, shared by every function
that calls commercial Bedrock: one item per path, `egress-path#<name>`, in the pacing table (the state
every caller of Bedrock already shares, read and written by the same roles).

A failure is an atomic ADD; the breaker opens under a condition (only when it is not open already, so
concurrent failures open it once); a success closes it under a condition (only when it holds a failure,
so a healthy path costs no write)."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from xpi.adapters import aws
from xpi.adapters.pacing_table import KEY
from xpi.domain.egress import PathState

PREFIX = "egress-path#"


def _key(name: str) -> dict[str, str]:
    return {KEY: f"{PREFIX}{name}"}


def _number(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))


class DynamoPathStates(aws.LazyTable):
    def read(self, names: Sequence[str]) -> dict[str, PathState]:
        states: dict[str, PathState] = {}
        for name in names:  # one GetItem per path (two or three), cached by the caller
            item = self._table().get_item(Key=_key(name), ConsistentRead=True).get("Item")
            if not item:
                continue
            data = aws.plain(item)
            states[name] = PathState(
                name=name,
                failures=int(data.get("failures", 0)),
                open_until=data.get("open_until"),
                health=data.get("health", "unknown"),
                latency_ms=data.get("latency_ms"),
                checked_at=data.get("checked_at"),
            )
        return states

    def record_failure(self, name: str, *, threshold: int, open_for_s: float, now: float) -> None:
        updated = self._table().update_item(
            Key=_key(name),
            UpdateExpression="ADD failures :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        if int(updated.get("Attributes", {}).get("failures", 0)) < threshold:
            return
        aws.write_if(
            lambda: self._table().update_item(
                Key=_key(name),
                UpdateExpression="SET open_until = :until",
                ConditionExpression="attribute_not_exists(open_until) OR open_until < :now",
                ExpressionAttributeValues={":until": _number(now + open_for_s), ":now": _number(now)},
            )
        )

    def record_success(self, name: str) -> None:
        aws.write_if(
            lambda: self._table().update_item(
                Key=_key(name),
                UpdateExpression="SET failures = :zero REMOVE open_until",
                ConditionExpression="failures > :zero OR attribute_exists(open_until)",
                ExpressionAttributeValues={":zero": 0},
            )
        )

    def record_health(self, name: str, *, healthy: bool, latency_ms: int | None, now: float) -> None:
        values: dict[str, Any] = {":health": "healthy" if healthy else "unhealthy", ":at": _number(now)}
        expression = "SET health = :health, checked_at = :at"
        if latency_ms is not None:
            expression += ", latency_ms = :latency"
            values[":latency"] = latency_ms
        if healthy:  # fail back: a healthy probe closes the breaker
            expression += ", failures = :zero REMOVE open_until"
            values[":zero"] = 0
        self._table().update_item(
            Key=_key(name), UpdateExpression=expression, ExpressionAttributeValues=values
        )
