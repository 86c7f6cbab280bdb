"""Sealing lineage: a day's records through the by-day index, the chain fields written once (DynamoDB),
signed day digests in an Object Lock bucket (S3), signatures by an asymmetric KMS key."""

import json
from datetime import date
from functools import cache
from typing import Any, Final

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.adapters.lineage_store import BY_DAY_INDEX, QUERY_PAGE_LIMIT
from xpi.domain.lineage_chain import CHAIN_HASH, CHAIN_PREV, CHAIN_SEQ

DIGEST_PREFIX: Final = "lineage-digests/"
SIGNING_ALGORITHM: Final = "ECDSA_SHA_256"


def digest_key(day: date) -> str:
    return f"{DIGEST_PREFIX}{day.isoformat()}.json"


@cache
def kms() -> Any:  # no KMS stubs in the dev dependencies
    return boto3.client("kms", config=aws.CONFIG)


def day_records(table_name: str, day: date) -> list[dict[str, Any]]:
    """Every item of the day (by-day index), as plain values."""
    table = aws.dynamodb().Table(table_name)
    arguments: dict[str, Any] = {
        "IndexName": BY_DAY_INDEX,
        "KeyConditionExpression": Key("day").eq(day.isoformat()),
        "Limit": QUERY_PAGE_LIMIT,
    }
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**arguments)
        items.extend(aws.plain(dict(stored)) for stored in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class DynamoSealableLineage:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def day_records(self, day: date) -> list[dict[str, Any]]:
        return day_records(self._table_name, day)

    def seal(self, request_id: str, seq: int, prev: str, chain_hash: str) -> bool:
        # Never over a sealed record; never creates one that is not there.
        return aws.write_if(
            lambda: (
                aws.dynamodb()
                .Table(self._table_name)
                .update_item(
                    Key={"request_id": request_id},
                    UpdateExpression="SET #seq = :seq, #prev = :prev, #hash = :hash",
                    ConditionExpression="attribute_exists(request_id) AND attribute_not_exists(#hash)",
                    ExpressionAttributeNames={"#seq": CHAIN_SEQ, "#prev": CHAIN_PREV, "#hash": CHAIN_HASH},
                    ExpressionAttributeValues={":seq": seq, ":prev": prev, ":hash": chain_hash},
                )
            )
        )


class S3DigestStore:
    def __init__(self, bucket: str) -> None:
        self._bucket = bucket

    def latest(self) -> dict[str, Any] | None:
        keys: list[str] = []
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Prefix": DIGEST_PREFIX}
        while True:
            page = aws.s3().list_objects_v2(**arguments)
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            arguments["ContinuationToken"] = page["NextContinuationToken"]
        if not keys:
            return None
        return self._read(max(keys))

    def get(self, day: date) -> dict[str, Any] | None:
        return self._read(digest_key(day))

    def _read(self, key: str) -> dict[str, Any] | None:
        try:
            body = aws.s3().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        document: dict[str, Any] = json.loads(body)
        return document

    def put(self, day: date, document: dict[str, Any]) -> None:
        # The bucket's default retention (compliance mode) locks every version written.
        aws.s3().put_object(
            Bucket=self._bucket,
            Key=digest_key(day),
            Body=json.dumps(document, sort_keys=True).encode(),
            ContentType="application/json",
        )


class KmsDigestSigner:
    def __init__(self, key_id: str) -> None:
        self._key_id = key_id

    def sign(self, message: bytes) -> tuple[bytes, str, str]:
        answer = kms().sign(
            KeyId=self._key_id, Message=message, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM
        )
        return answer["Signature"], answer["KeyId"], answer["SigningAlgorithm"]
