"""Tamper-evident lineage on the local stack: a closed day's final records are sealed by
LineageSealFunction (invoked through the Lambda API, as its schedule would: moto runs no schedule),
`xpi audit verify`'s checks pass as the stack's auditor role, then the day is tampered with through
DynamoDB in each way and the check names each, and passes again once the tampering is undone.
"""

import argparse
import copy
from collections.abc import Callable
from typing import Any

import pytest
from xpi.adapters import aws
from xpi_tools.audit_cli import sealed_days

from tests.helpers.sealing import SealedDay
from tests.helpers.stack import LocalStackClient

pytestmark = pytest.mark.integration


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
