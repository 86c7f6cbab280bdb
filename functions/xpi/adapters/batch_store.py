"""Batch state in DynamoDB and batch files in S3.

The batch table holds, per batch, one status item (line = 0: counts, state, the waiting task token)
and one item per finished input line (line = its 1-based number), so the results file is a Query in
key order: input order, page by page, never the whole batch in memory. Beside them, one slots item
per model (batch_id = "slots#<model>", line = 0): the batch lines in flight on that model, across
all batches, and the batches waiting for a slot.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.models.batch import LineResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

STATUS_LINE = 0
SLOTS_PREFIX = "slots#"  # not a batch id: those are b-<hex>
MULTIPART_PART_BYTES = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB (except the last)


def _dynamo(value: Any) -> Any:
    """JSON-shaped values in DynamoDB's number type (floats are not accepted)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


class DynamoBatchTable:
    def __init__(self, table_name: str) -> None:
        self._name = table_name

    def _table(self) -> "Table":
        return aws.dynamodb().Table(self._name)

    # ------------------------------------------------------------------ status item
    def create_status(self, batch_id: str, attributes: dict[str, Any]) -> bool:
        """The status item, once per batch; False when it exists (the split is being re-run)."""
        return aws.write_if(
            lambda: self._table().put_item(
                Item={"batch_id": batch_id, "line": STATUS_LINE, **_dynamo(attributes)},
                ConditionExpression="attribute_not_exists(batch_id)",
            )
        )

    def update_status(self, batch_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":a{i}": _dynamo(value) for i, value in enumerate(attributes.values())}
        response = self._table().update_item(
            Key={"batch_id": batch_id, "line": STATUS_LINE},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return dict(aws.plain(response["Attributes"]))

    def status(self, batch_id: str) -> dict[str, Any] | None:
        item = (
            self._table()
            .get_item(Key={"batch_id": batch_id, "line": STATUS_LINE}, ConsistentRead=True)
            .get("Item")
        )
        return dict(aws.plain(item)) if item else None

    def claim_transition(self, batch_id: str, from_state: str, to_state: str) -> bool:
        """Move the batch from one state to the next; only one caller wins."""
        return aws.write_if(
            lambda: self._table().update_item(
                Key={"batch_id": batch_id, "line": STATUS_LINE},
                UpdateExpression="SET #state = :to",
                ConditionExpression="#state = :from",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":to": to_state, ":from": from_state},
            )
        )

    # ------------------------------------------------------------------ lines
    def put_invalid_lines(self, batch_id: str, results: list[LineResult]) -> None:
        """Bad lines found by the split (their own items; counted in the status item by the split)."""
        with self._table().batch_writer() as writer:
            for result in results:
                item = {"batch_id": batch_id, **_dynamo(result.model_dump(exclude_none=True))}
                # A bad line never ran, so never held a slot: nothing to give back for it, ever.
                writer.put_item(Item={**item, "released_next": True})

    def record_line(
        self, batch_id: str, result: LineResult, counters: dict[str, int | float], *, released: bool = False
    ) -> bool:
        """The line's item and the batch's counters in one transaction; False when the line was
        recorded before (a redelivered result event), so nothing is counted twice. `released`: the item
        is written with its progress slot spent (`released_next`, as claim_release sets it)."""
        try:
            aws.dynamodb().meta.client.transact_write_items(
                TransactItems=[
                    self._line_put(batch_id, result, released),
                    self._counters_add(batch_id, counters),
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise
        return True

    def record_lines(
        self,
        batch_id: str,
        lines: Sequence[tuple[LineResult, dict[str, int | float]]],
        *,
        released: bool = False,
    ) -> list[bool]:
        """record_line for several lines in one transaction (their items, and their counters summed in
        one update of the status item): per line, whether it was recorded now. When one was recorded
        before (a retried page), the transaction writes nothing and each line is recorded alone."""
        if len(lines) <= 1:
            return [self.record_line(batch_id, r, c, released=released) for r, c in lines]
        totals: dict[str, int | float] = {}
        for _, counters in lines:
            for name, value in counters.items():
                totals[name] = totals.get(name, 0) + value
        puts = [self._line_put(batch_id, result, released) for result, _ in lines]
        try:
            aws.dynamodb().meta.client.transact_write_items(
                TransactItems=[*puts, self._counters_add(batch_id, totals)]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if exc.response["Error"]["Code"] == "TransactionCanceledException" and any(
                reason.get("Code") == "ConditionalCheckFailed" for reason in reasons
            ):
                return [self.record_line(batch_id, r, c, released=released) for r, c in lines]
            raise
        return [True] * len(lines)

    def _line_put(self, batch_id: str, result: LineResult, released: bool) -> Any:
        """A transaction's write of a finished line's item, only if the line has none yet."""
        item = {"batch_id": batch_id, **_dynamo(result.model_dump(exclude_none=True))}
        if released:
            item["released_next"] = True
        return {
            "Put": {
                "TableName": self._name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(batch_id)",
            }
        }

    def _counters_add(self, batch_id: str, counters: dict[str, int | float]) -> Any:
        """A transaction's ADD of `counters` to the batch's status item."""
        return {
            "Update": {
                "TableName": self._name,
                "Key": {"batch_id": batch_id, "line": STATUS_LINE},
                "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters))),
                "ExpressionAttributeNames": {f"#c{i}": n for i, n in enumerate(counters)},
                "ExpressionAttributeValues": {f":c{i}": _dynamo(v) for i, v in enumerate(counters.values())},
            }
        }

    def claim_release(self, batch_id: str, line: int) -> bool:
        """The right to start the next line after this one finished: once per finished line."""
        return self._conditional_update(
            {"batch_id": batch_id, "line": line},
            "SET released_next = :yes",
            "attribute_exists(batch_id) AND attribute_not_exists(released_next)",
            {":yes": True},
        )

    def claim_line(self, batch_id: str, index: int) -> bool:
        """The right to start the valid line at this index (0-based, input order): one caller wins."""
        return self._conditional_update(
            {"batch_id": batch_id, "line": STATUS_LINE},
            "SET released = :next",
            "released = :index",
            {":next": index + 1, ":index": index},
        )

    # ------------------------------------------------------------------ per-model slots
    @staticmethod
    def _slots_key(model: str) -> dict[str, Any]:
        return {"batch_id": SLOTS_PREFIX + model, "line": STATUS_LINE}

    def acquire_slots(self, slots: Mapping[str, int]) -> bool:
        """One slot of every model given ({model: its concurrency}), all or none."""
        take = "ADD in_flight :one"
        free = "attribute_not_exists(in_flight) OR in_flight < :limit"
        if len(slots) <= 1:  # the usual batch: one model, one conditional update
            return all(
                self._conditional_update(self._slots_key(model), take, free, {":one": 1, ":limit": limit})
                for model, limit in slots.items()
            )
        updates: list[Any] = [
            {
                "TableName": self._name,
                "Key": self._slots_key(model),
                "UpdateExpression": take,
                "ConditionExpression": free,
                "ExpressionAttributeValues": {":one": 1, ":limit": limit},
            }
            for model, limit in sorted(slots.items())
        ]
        try:
            aws.dynamodb().meta.client.transact_write_items(TransactItems=[{"Update": u} for u in updates])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def release_slots(self, models: Sequence[str]) -> None:
        for model in models:
            # Never below zero, whatever a redelivery does.
            key, values = self._slots_key(model), {":minus": -1, ":zero": 0}
            self._conditional_update(key, "ADD in_flight :minus", "in_flight > :zero", values)

    def add_waiting(self, models: Sequence[str], batch_id: str) -> None:
        self._change_waiting("ADD", models, batch_id)

    def remove_waiting(self, models: Sequence[str], batch_id: str) -> None:
        self._change_waiting("DELETE", models, batch_id)

    def _change_waiting(self, action: str, models: Sequence[str], batch_id: str) -> None:
        for model in models:
            self._table().update_item(
                Key=self._slots_key(model),
                UpdateExpression=f"{action} waiting :batch",
                ExpressionAttributeValues={":batch": {batch_id}},
            )

    def waiting(self, models: Sequence[str]) -> list[str]:
        """The batches waiting for a slot of any of these models (sorted, so every caller agrees)."""
        return sorted({str(batch) for model in models for batch in self.slots(model)["waiting"]})

    def slots(self, model: str) -> dict[str, Any]:
        """A model's slots as they stand: {"in_flight": n, "waiting": [batch ids]}."""
        item = self._table().get_item(Key=self._slots_key(model), ConsistentRead=True).get("Item") or {}
        slots = aws.plain({name: item[name] for name in ("in_flight", "waiting") if name in item})
        return {"in_flight": 0, "waiting": [], **slots}

    def _conditional_update(
        self, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]
    ) -> bool:
        return aws.write_if(
            lambda: self._table().update_item(
                Key=key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        )

    def lines(self, batch_id: str) -> Iterator[LineResult]:
        """Every line's item in input order, one DynamoDB page at a time."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "batch_id = :b AND #line > :status",
            "ExpressionAttributeNames": {"#line": "line"},
            "ExpressionAttributeValues": {":b": batch_id, ":status": STATUS_LINE},
            "ConsistentRead": True,
        }
        while True:
            page = self._table().query(**kwargs)
            for item in page.get("Items", []):
                data = aws.plain(item)
                yield LineResult.model_validate(
                    {k: v for k, v in data.items() if k in LineResult.model_fields}
                )
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class S3BatchObjects:
    """The input object (streamed), the split's chunk files and the results file."""

    def open(self, bucket: str, key: str, version_id: str | None) -> tuple[IO[bytes], dict[str, str], int]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        response = aws.s3().get_object(**kwargs)
        body: IO[bytes] = response["Body"]  # type: ignore[assignment]  # StreamingBody reads like a file
        return body, dict(response.get("Metadata", {})), int(response["ContentLength"])

    def read_text_if_exists(self, bucket: str, key: str) -> str | None:
        try:
            return aws.s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def put_json(self, bucket: str, key: str, value: Any) -> None:
        aws.s3().put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(value, separators=(",", ":")).encode("utf-8"),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            BucketKeyEnabled=True,  # S3 calls KMS per bucket key, not per object
        )

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(aws.s3().get_object(Bucket=bucket, Key=key)["Body"].read())

    def write_stream(self, bucket: str, key: str, lines: Iterator[bytes]) -> int:
        """Write the lines as one object through a multipart upload: at most one part in memory."""
        s3 = aws.s3()
        upload_id = s3.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ContentType="application/x-ndjson",
            ServerSideEncryption="aws:kms",
            BucketKeyEnabled=True,
        )["UploadId"]
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        written = 0
        try:
            for line in lines:
                buffer += line
                written += len(line)
                if len(buffer) >= MULTIPART_PART_BYTES:
                    parts.append(self._part(bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if buffer or not parts:
                parts.append(self._part(bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return written

    @staticmethod
    def _part(bucket: str, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        etag = aws.s3().upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)[
            "ETag"
        ]
        return {"ETag": etag, "PartNumber": number}
