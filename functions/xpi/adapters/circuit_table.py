"""The circuit breakers (xpi.domain.circuit) in the pacing table: one item per model and region, keyed
`circuit#<model>#<region>` beside the quota buckets (the same grants: GetItem, PutItem, UpdateItem), so
every function and invocation sees one breaker."""

from decimal import Decimal

from xpi.adapters import aws
from xpi.adapters.pacing_table import KEY
from xpi.domain.circuit import BreakerSettings, CircuitState, opens_now


class DynamoCircuitTable(aws.LazyTable):
    def read(self, key: str) -> CircuitState | None:
        item = self._table().get_item(Key={KEY: key}, ConsistentRead=True).get("Item")
        if not item:
            return None
        data = aws.plain(item)
        opened = data.get("opened_at")
        return CircuitState(
            failures=int(data.get("failures", 0)), opened_at=float(opened) if opened else None
        )

    def failed(self, key: str, now: float, settings: BreakerSettings) -> None:
        before = self.read(key)
        after = self._table().update_item(
            Key={KEY: key},
            UpdateExpression="ADD #failures :one",
            ExpressionAttributeNames={"#failures": "failures"},
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        failures = int(after.get("Attributes", {}).get("failures", 1))
        if not opens_now(failures, before, now, settings):
            return
        # Only one writer opens it for this period: the condition fails for any other that saw it closed.
        expired = Decimal(str(round(now - settings.open_for_s, 3)))
        aws.write_if(
            lambda: self._table().update_item(
                Key={KEY: key},
                UpdateExpression="SET #opened = :now",
                ConditionExpression="attribute_not_exists(#opened) OR #opened < :expired",
                ExpressionAttributeNames={"#opened": "opened_at"},
                ExpressionAttributeValues={":now": Decimal(str(round(now, 3))), ":expired": expired},
            )
        )

    def closed(self, key: str) -> None:
        self._table().put_item(Item={KEY: key, "failures": 0})
