"""Tamper-evident lineage on the local stack: a closed day's final records are sealed by
LineageSealFunction (invoked through the Lambda API, as its schedule would: moto runs no schedule),
`xpi audit verify`'s checks pass as the stack's auditor role, then the day is tampered with through
DynamoDB in each way and the check names each, and passes again once the tampering is undone.
"""

import argparse
import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from xpi.adapters import aws
from xpi_tools.audit_cli import aws_sources, sealed_days, verify

from tests.helpers.stack import LocalStackClient
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

SETTLE = timedelta(hours=2)  # LINEAGE_SEAL_SETTLE_S's default


def _table(local_stack: LocalStackClient) -> Any:
    return local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.outputs["LineageTableName"]
    )


def _seal(local_stack: LocalStackClient) -> dict[str, Any]:
    response = local_stack.client("lambda").invoke(
        FunctionName=local_stack.outputs["LineageSealFunctionName"],
        Payload=json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def _auditor(local_stack: LocalStackClient) -> Any:
    assumed = local_stack.client("sts").assume_role(
        RoleArn=local_stack.outputs["AuditorRoleArn"],
        RoleSessionName="audit-verify",
        SerialNumber="arn:aws-us-gov:iam::123456789012:mfa/operator",
        TokenCode="123456",
    )["Credentials"]
    return boto3.Session(
        region_name=local_stack.state["region"],
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
    )


class SealedDay:
    def __init__(self, local_stack: LocalStackClient, day: date, ids: list[str]) -> None:
        self.local_stack, self.day, self.ids = local_stack, day, ids
        self.table = _table(local_stack)
        self.auditor = _auditor(local_stack)

    def problems(self) -> dict[str, set[str | None]]:
        sources = aws_sources(self.auditor, self.local_stack.outputs, self.local_stack.state["aws"])
        found: dict[str, set[str | None]] = {}
        for problem in verify(sources, self.day, self.day)[1]:
            found.setdefault(problem.kind, set()).add(problem.request_id)
        return found

    def item(self, request_id: str) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"request_id": request_id}, ConsistentRead=True)["Item"])


@pytest.fixture(scope="module")
def sealed_day(local_stack: LocalStackClient) -> SealedDay:
    # GIVEN final lineage records of the last closed day, as the workflow writes them
    day = (datetime.now(UTC) - SETTLE).date() - timedelta(days=1)
    table = _table(local_stack)
    ids = []
    for index, status in enumerate(("COMPLETED", "BLOCKED", "COMPLETED", "FAILED", "COMPLETED")):
        request_id = f"it-seal-{uuid.uuid4().hex[:12]}"
        created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9, seconds=index)
        table.put_item(
            Item={
                "request_id": request_id,
                "status": status,
                "created_at": created.isoformat(timespec="milliseconds"),
                "completed_at": (created + timedelta(seconds=3)).isoformat(timespec="milliseconds"),
                "day": day.isoformat(),
                "caller_principal": "arn:aws-us-gov:iam::123456789012:role/producer",
                "source": "sqs",
                "request_hmac": f"{index:064x}",
                "model_requested": "default",
                "usage": {"input_tokens": 10 + index, "output_tokens": 20 + index},
                "expires_at": int(created.timestamp()) + 86_400,
            }
        )
        ids.append(request_id)
    # AND a request that flowed through the stack, its final item moved into that day (as if sent then)
    flowed = local_stack.send({"model": "default", "prompt": "Name a river.", "caller": {}})

    def final() -> dict[str, Any] | None:
        item = local_stack.lineage(flowed)
        return item if item and item["status"] in ("COMPLETED", "FAILED", "BLOCKED") else None

    wait_until(final, 60, what=f"{flowed} final in lineage")
    moved = dict(table.get_item(Key={"request_id": flowed}, ConsistentRead=True)["Item"])
    created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
    moved.update(
        {
            "request_id": f"{flowed}-moved",
            "day": day.isoformat(),
            "created_at": created.isoformat(timespec="milliseconds"),
        }
    )
    table.put_item(Item=moved)
    ids.append(moved["request_id"])
    # WHEN the seal runs (as its own role)
    report = _seal(local_stack)
    # THEN the day is chained and its digest signed
    assert day.isoformat() in [d["day"] for d in report["sealed"]], report
    assert all("chain_hash" in _table(local_stack).get_item(Key={"request_id": i})["Item"] for i in ids)
    return SealedDay(local_stack, day, ids)


def _change(day: SealedDay) -> Callable[[], None]:
    original = day.item(day.ids[1])
    day.table.update_item(
        Key={"request_id": day.ids[1]},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "COMPLETED"},
    )
    return lambda: day.table.put_item(Item=original)


def _insert(day: SealedDay) -> Callable[[], None]:
    intruder = copy.deepcopy(day.item(day.ids[2]))
    for name in ("chain_seq", "chain_prev", "chain_hash"):
        del intruder[name]
    intruder["request_id"] = "it-seal-intruder"
    day.table.put_item(Item=intruder)
    return lambda: day.table.delete_item(Key={"request_id": "it-seal-intruder"})


def _delete(day: SealedDay) -> Callable[[], None]:
    original = day.item(day.ids[2])
    day.table.delete_item(Key={"request_id": day.ids[2]})
    return lambda: day.table.put_item(Item=original)


def _reorder(day: SealedDay) -> Callable[[], None]:
    first, second = day.item(day.ids[0]), day.item(day.ids[3])

    def seq(request_id: str, value: Any) -> None:
        day.table.update_item(
            Key={"request_id": request_id},
            UpdateExpression="SET chain_seq = :v",
            ExpressionAttributeValues={":v": value},
        )

    seq(day.ids[0], second["chain_seq"])
    seq(day.ids[3], first["chain_seq"])

    def undo() -> None:
        seq(day.ids[0], first["chain_seq"])
        seq(day.ids[3], second["chain_seq"])

    return undo


def test_a_sealed_day_verifies_as_the_auditor(sealed_day: SealedDay) -> None:
    assert sealed_day.problems() == {}


@pytest.mark.parametrize(
    ("tamper", "kind", "named"),
    [
        (_change, "altered", [1]),
        (_insert, "inserted", []),
        (_delete, "deleted", [1, 3]),
        (_reorder, "reordered", [0, 3]),
    ],
    ids=["change", "insert", "delete", "reorder"],
)
def test_each_tampering_is_named(
    sealed_day: SealedDay, tamper: Callable[[SealedDay], Callable[[], None]], kind: str, named: list[int]
) -> None:
    # GIVEN someone with write access to the lineage table tampers with the sealed day
    undo = tamper(sealed_day)
    try:
        # WHEN the auditor verifies, THEN the tampering is named, and only that kind
        found = sealed_day.problems()
        assert set(found) == {kind}, found
        expected = {sealed_day.ids[i] for i in named} or {"it-seal-intruder"}
        assert expected <= found[kind]
    finally:
        undo()
    # AND once undone, the day verifies again
    assert sealed_day.problems() == {}


def test_the_digest_cannot_be_deleted(sealed_day: SealedDay, local_stack: LocalStackClient) -> None:
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["LineageDigestBucketName"]
    key = f"lineage-digests/{sealed_day.day.isoformat()}.json"
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert aws.plain(s3.head_object(Bucket=bucket, Key=key, VersionId=version)["ContentLength"]) > 0


def test_verify_finds_the_sealed_days_itself(sealed_day: SealedDay, local_stack: LocalStackClient) -> None:
    # GIVEN no --from/--to: the auditor's verify lists the digests to know which days are sealed
    s3 = sealed_day.auditor.client("s3", endpoint_url=local_stack.state["aws"])
    arguments = argparse.Namespace(from_day=None, to_day=None)
    first, last = sealed_days(arguments, s3, local_stack.outputs["LineageDigestBucketName"])
    assert first <= sealed_day.day <= last
