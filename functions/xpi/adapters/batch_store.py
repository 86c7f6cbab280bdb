"""Batch state in DynamoDB and batch files in S3.

The batch table holds, per batch, one status item (line = 0: counts, state, the waiting task token)
and one item per finished input line (line = its 1-based number), so the results file is a Query in
key order: input order, page by page, never the whole batch in memory.
"""

import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.models.batch import LineResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

STATUS_LINE = 0
MULTIPART_PART_BYTES = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB (except the last)


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    """JSON-shaped values in DynamoDB's number type (floats are not accepted)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


class BatchTable:
    def __init__(self, table_name: str) -> None:
        self._name = table_name

    def _table(self) -> "Table":
        return aws.dynamodb().Table(self._name)

    # ------------------------------------------------------------------ status item
    def create_status(self, batch_id: str, attributes: dict[str, Any]) -> bool:
        """The status item, once per batch; False when it exists (the split is being re-run)."""
        try:
            self._table().put_item(
                Item={"batch_id": batch_id, "line": STATUS_LINE, **_dynamo(attributes)},
                ConditionExpression="attribute_not_exists(batch_id)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

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
        return dict(_plain(response["Attributes"]))

    def status(self, batch_id: str) -> dict[str, Any] | None:
        item = (
            self._table()
            .get_item(Key={"batch_id": batch_id, "line": STATUS_LINE}, ConsistentRead=True)
            .get("Item")
        )
        return dict(_plain(item)) if item else None

    def claim_transition(self, batch_id: str, from_state: str, to_state: str) -> bool:
        """Move the batch from one state to the next; only one caller wins."""
        try:
            self._table().update_item(
                Key={"batch_id": batch_id, "line": STATUS_LINE},
                UpdateExpression="SET #state = :to",
                ConditionExpression="#state = :from",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":to": to_state, ":from": from_state},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # ------------------------------------------------------------------ lines
    def put_invalid_lines(self, batch_id: str, results: list[LineResult]) -> None:
        """Bad lines found by the split (their own items; counted in the status item by the split)."""
        with self._table().batch_writer() as writer:
            for result in results:
                writer.put_item(Item={"batch_id": batch_id, **_dynamo(result.model_dump(exclude_none=True))})

    def record_line(self, batch_id: str, result: LineResult, counters: dict[str, int | float]) -> bool:
        """The line's item and the batch's counters in one transaction; False when the line was
        recorded before (a redelivered result event), so nothing is counted twice."""
        adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        try:
            aws.dynamodb().meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._name,
                            "Item": {"batch_id": batch_id, **_dynamo(result.model_dump(exclude_none=True))},
                            "ConditionExpression": "attribute_not_exists(batch_id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._name,
                            "Key": {"batch_id": batch_id, "line": STATUS_LINE},
                            "UpdateExpression": f"ADD {adds}",
                            "ExpressionAttributeNames": {f"#c{i}": n for i, n in enumerate(counters)},
                            "ExpressionAttributeValues": {
                                f":c{i}": _dynamo(v) for i, v in enumerate(counters.values())
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise
        return True

    def claim_release(self, batch_id: str, line: int) -> bool:
        """The right to start the next line after this one finished: once per finished line."""
        try:
            self._table().update_item(
                Key={"batch_id": batch_id, "line": line},
                UpdateExpression="SET released_next = :yes",
                ConditionExpression="attribute_exists(batch_id) AND attribute_not_exists(released_next)",
                ExpressionAttributeValues={":yes": True},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def next_release(self, batch_id: str) -> dict[str, Any]:
        """Take the next slot of the window (atomically) and return the status after it."""
        response = self._table().update_item(
            Key={"batch_id": batch_id, "line": STATUS_LINE},
            UpdateExpression="ADD released :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="ALL_NEW",
        )
        return dict(_plain(response["Attributes"]))

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
                data = _plain(item)
                yield LineResult.model_validate(
                    {k: v for k, v in data.items() if k in LineResult.model_fields}
                )
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class BatchObjects:
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
        )

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(aws.s3().get_object(Bucket=bucket, Key=key)["Body"].read())

    def write_stream(self, bucket: str, key: str, lines: Iterator[bytes]) -> int:
        """Write the lines as one object through a multipart upload: at most one part in memory."""
        s3 = aws.s3()
        upload_id = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="application/x-ndjson", ServerSideEncryption="aws:kms"
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


class BatchWorkflow:
    """Tells the batch workflow that every line has finished (it waits on a task token, no polling)."""

    def lines_finished(self, task_token: str, output: dict[str, Any]) -> None:
        client = aws.stepfunctions()
        # The workflow may have stopped waiting already (timed out or was stopped): nothing to resume.
        with contextlib.suppress(client.exceptions.TaskTimedOut, client.exceptions.InvalidToken):
            client.send_task_success(taskToken=task_token, output=json.dumps(output))
