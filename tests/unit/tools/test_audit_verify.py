"""The seal service and `xpi audit verify` together, in memory: a day is sealed and signed (a local
ECDSA P-256 key standing in for the KMS key), verified intact, then tampered with in each way."""

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from xpi.domain.lineage_chain import CHAIN_HASH, CHAIN_PREV, CHAIN_SEQ, record_hash
from xpi.services.sealing import ChainConflictError, Sealer, seal
from xpi_tools.audit_cli import Sources, verify

DAY = date(2026, 12, 4)
NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
KEY_ARN = "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/audit"


class Lineage:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def day_records(self, day: date) -> list[dict[str, Any]]:
        return [copy.deepcopy(i) for i in self.items.values() if i["day"] == day.isoformat()]

    def seal(self, request_id: str, seq: int, prev: str, chain_hash: str) -> bool:
        item = self.items.get(request_id)
        if item is None or CHAIN_HASH in item:
            return False
        item.update({CHAIN_SEQ: seq, CHAIN_PREV: prev, CHAIN_HASH: chain_hash})
        return True


class Digests:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def latest(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects[max(self.objects)]) if self.objects else None

    def get(self, day: date) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get(day.isoformat()))

    def put(self, day: date, document: dict[str, Any]) -> None:
        self.objects[day.isoformat()] = copy.deepcopy(document)


class Signer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, message: bytes) -> tuple[bytes, str, str]:
        return self.key.sign(message, ec.ECDSA(hashes.SHA256())), KEY_ARN, "ECDSA_SHA_256"

    def public_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _item(day: date, index: int, status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "request_id": f"{day.isoformat()}-req-{index:03d}",
        "status": status,
        "created_at": f"{day.isoformat()}T08:00:{index:02d}.000",
        "day": day.isoformat(),
        "expires_at": 1800000000,
        "caller_principal": "arn:aws-us-gov:iam::111122223333:role/app",
        "source": "api",
        "model_requested": "claude",
    }


@pytest.fixture
def stack() -> tuple[Lineage, Digests, Signer, Sealer]:
    lineage, digests, signer = Lineage(), Digests(), Signer()
    for day in (DAY - timedelta(days=1), DAY):
        for index in range(6):
            item = _item(day, index)
            lineage.items[item["request_id"]] = item
    sealer = Sealer(lineage, digests, signer, settle=timedelta(hours=2), max_days=7)
    # GIVEN the day before sealed by an earlier run, then this day by the next
    seal(sealer, NOW - timedelta(days=1))
    report = seal(sealer, NOW)
    assert [d.day for d in report.sealed] == [DAY.isoformat()]
    return lineage, digests, signer, sealer


def _verify(lineage: Lineage, digests: Digests, signer: Signer) -> dict[str, set[str | None]]:
    sources = Sources(digests.get, lineage.day_records, lambda _key: signer.public_der(), KEY_ARN)
    found: dict[str, set[str | None]] = {}
    for problem in verify(sources, DAY - timedelta(days=1), DAY)[1]:
        found.setdefault(problem.kind, set()).add(problem.request_id)
    return found


def _id(index: int) -> str:
    return f"{DAY.isoformat()}-req-{index:03d}"


def test_sealed_days_verify_intact(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    assert _verify(lineage, digests, signer) == {}
    assert digests.objects[DAY.isoformat()]["count"] == 6


def test_a_changed_record_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    lineage.items[_id(3)]["status"] = "BLOCKED"
    assert _verify(lineage, digests, signer) == {"altered": {_id(3)}}


def test_an_inserted_record_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    intruder = _item(DAY, 50)
    lineage.items[intruder["request_id"]] = intruder
    assert _verify(lineage, digests, signer) == {"inserted": {intruder["request_id"]}}


def test_a_deleted_record_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    del lineage.items[_id(2)]
    found = _verify(lineage, digests, signer)
    assert set(found) == {"deleted"}
    assert {_id(1), _id(3)} <= found["deleted"]  # the records on either side of the gap


def test_reordered_records_are_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    first, second = lineage.items[_id(1)], lineage.items[_id(4)]
    first[CHAIN_SEQ], second[CHAIN_SEQ] = second[CHAIN_SEQ], first[CHAIN_SEQ]
    found = _verify(lineage, digests, signer)
    assert set(found) == {"reordered"}
    assert {_id(1), _id(4)} <= found["reordered"]


def test_a_rehashed_record_breaks_its_link_and_the_digest(
    stack: tuple[Lineage, Digests, Signer, Sealer],
) -> None:
    # GIVEN a change whose hash is recomputed (the chain hash has no secret)
    lineage, digests, signer, _ = stack
    item = lineage.items[_id(5)]
    item["status"] = "FAILED"
    item[CHAIN_HASH] = record_hash(item, item[CHAIN_PREV])
    # THEN the signed digest's last hash is gone and the re-hashed record follows nothing sealed
    found = _verify(lineage, digests, signer)
    assert "deleted" in found
    assert _id(5) in found["inserted"]


def test_an_altered_digest_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    digests.objects[DAY.isoformat()]["count"] = 5
    assert _verify(lineage, digests, signer) == {"digest-altered": {None}}


def test_a_digest_signed_by_another_key_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    forger = Signer()
    document = digests.objects[DAY.isoformat()]
    body = {k: v for k, v in document.items() if k not in ("signature", "key_id", "signing_algorithm")}
    import base64

    from xpi.domain.lineage_chain import Digest

    signature, _, _ = forger.sign(Digest.from_body(body).message())
    document["signature"] = base64.b64encode(signature).decode()
    assert _verify(lineage, digests, signer) == {"digest-altered": {None}}


def test_a_missing_digest_is_named(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, signer, _ = stack
    del digests.objects[DAY.isoformat()]
    assert _verify(lineage, digests, signer) == {"digest-missing": {None}}


def test_a_day_with_a_record_not_final_waits(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, _, sealer = stack
    next_day = DAY + timedelta(days=1)
    for index, status in enumerate(("COMPLETED", "ACCEPTED")):
        item = _item(next_day, index, status)
        lineage.items[item["request_id"]] = item
    report = seal(sealer, NOW + timedelta(days=1))
    assert report.sealed == []
    assert report.waiting_on == next_day.isoformat()
    assert next_day.isoformat() not in digests.objects


def test_a_run_that_stopped_before_its_digest_is_completed(
    stack: tuple[Lineage, Digests, Signer, Sealer],
) -> None:
    # GIVEN a run that chained the day's records but never wrote its digest
    lineage, digests, signer, sealer = stack
    del digests.objects[DAY.isoformat()]
    # WHEN the next run seals the day again, THEN it keeps the chain and signs the digest
    report = seal(sealer, NOW)
    assert report.sealed[0].newly_sealed == 0
    assert _verify(lineage, digests, signer) == {}


def test_a_record_chained_otherwise_stops_the_seal(stack: tuple[Lineage, Digests, Signer, Sealer]) -> None:
    lineage, digests, _, sealer = stack
    del digests.objects[DAY.isoformat()]
    lineage.items[_id(0)][CHAIN_HASH] = "0" * 64
    with pytest.raises(ChainConflictError):
        seal(sealer, NOW)
    assert DAY.isoformat() not in digests.objects
