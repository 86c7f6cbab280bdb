"""The shared pacing buckets (xpi.domain.pacing) in DynamoDB: one item per model and region, replaced
under a condition on its version (optimistic concurrency) so concurrent invocations of any function
draw from one bucket; a correction after the call is an atomic ADD."""

from decimal import Decimal
from typing import Any

from xpi.adapters import aws
from xpi.domain.pacing import BucketState

KEY = "bucket"
_DIGITS = 6  # DynamoDB numbers are decimal: floats are stored rounded to the microsecond / micro-token


def _number(value: float) -> Decimal:
    return Decimal(str(round(value, _DIGITS)))


class DynamoPacingTable(aws.LazyTable):
    def read(self, bucket: str) -> BucketState | None:
        item = self._table().get_item(Key={KEY: bucket}, ConsistentRead=True).get("Item")
        if not item:
            return None
        data = aws.plain(item)
        return BucketState(
            requests=float(data["requests"]),
            tokens=float(data["tokens"]),
            at=float(data["at"]),
            scale=float(data.get("scale", 1.0)),
            throttled_at=float(data.get("throttled_at", 0.0)),
            version=int(data.get("version", 0)),
        )

    def replace(self, bucket: str, state: BucketState, *, expected: BucketState | None) -> bool:
        """Write `state` (as version expected + 1) unless another writer changed the bucket since
        `expected` was read (None: unless the bucket exists). False when the condition failed."""
        version = 0 if expected is None else expected.version
        item = {
            KEY: bucket,
            "requests": _number(state.requests),
            "tokens": _number(state.tokens),
            "at": _number(state.at),
            "scale": _number(state.scale),
            "throttled_at": _number(state.throttled_at),
            "version": version + 1,
        }
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(#key)"}
            names = {"#key": KEY}
            return aws.write_if(
                lambda: self._table().put_item(Item=item, ExpressionAttributeNames=names, **condition)
            )
        return aws.write_if(
            lambda: self._table().put_item(
                Item=item,
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":version": version},
            )
        )

    def add_tokens(self, bucket: str, tokens: float) -> None:
        """Give back (or, negative, charge) tokens after the call, atomically; a bucket that does not
        exist is left alone."""
        aws.write_if(
            lambda: self._table().update_item(
                Key={KEY: bucket},
                UpdateExpression="ADD #tokens :tokens, #version :one",
                ConditionExpression="attribute_exists(#key)",
                ExpressionAttributeNames={"#tokens": "tokens", "#version": "version", "#key": KEY},
                ExpressionAttributeValues={":tokens": _number(tokens), ":one": 1},
            )
        )
