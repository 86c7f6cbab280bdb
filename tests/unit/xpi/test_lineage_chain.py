"""The lineage chain: sealing links every final record of a day; verification names each tampering."""

from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from xpi.domain.lineage_chain import (
    CHAIN_HASH,
    CHAIN_PREV,
    CHAIN_SEQ,
    Digest,
    digest_of,
    link,
    record_hash,
    verify_day,
)

DAY = date(2026, 12, 4)


def _record(index: int, status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "request_id": f"req-{index:04d}",
        "status": status,
        "created_at": f"2026-12-04T10:{index // 60:02d}:{index % 60:02d}.000",
        "day": DAY.isoformat(),
        "expires_at": 1800000000,
        "caller_principal": "arn:aws-us-gov:iam::111122223333:role/app",
        "source": "api",
        "model_requested": "claude",
        "usage": {"input_tokens": index, "output_tokens": 2 * index},
    }


def _sealed(count: int) -> tuple[list[dict[str, Any]], Digest]:
    records = [_record(i) for i in range(count)]
    links = link(records, DAY)
    by_id = {r["request_id"]: r for r in records}
    for one in links:
        by_id[one.request_id].update({CHAIN_SEQ: one.seq, CHAIN_PREV: one.prev, CHAIN_HASH: one.hash})
    return records, digest_of(DAY, links, None, "2026-12-05T01:00:00.000")


def _kinds(records: list[dict[str, Any]], digest: Digest | None) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for problem in verify_day(DAY, records, digest).problems:
        found.setdefault(problem.kind, set()).add(problem.request_id)
    return found


sizes = st.integers(min_value=3, max_value=25)


@given(sizes)
def test_an_untouched_day_verifies(count: int) -> None:
    records, digest = _sealed(count)
    assert verify_day(DAY, reversed(records), digest).problems == []


def test_the_order_is_deterministic_whatever_the_read_order() -> None:
    records = [_record(i) for i in range(10)]
    assert link(records, DAY) == link(list(reversed(records)), DAY)


def test_decimals_from_dynamodb_hash_as_the_ints_they_are() -> None:
    from decimal import Decimal

    record = _record(1)
    stored = {**record, "expires_at": Decimal(1800000000)}
    assert record_hash(record, "p") == record_hash(stored, "p")


@given(sizes, st.data())
def test_a_changed_record_is_named_altered(count: int, data: st.DataObject) -> None:
    records, digest = _sealed(count)
    victim = data.draw(st.integers(0, count - 1))
    records[victim]["status"] = "FAILED"
    assert _kinds(records, digest) == {"altered": {records[victim]["request_id"]}}


@given(sizes, st.data())
def test_a_deleted_record_is_named_by_its_successor(count: int, data: st.DataObject) -> None:
    records, digest = _sealed(count)
    victim = data.draw(st.integers(0, count - 1))
    del records[victim]
    found = _kinds(records, digest)
    assert set(found) == {"deleted"}
    if victim < count - 1:  # the record after it names the gap
        assert records[victim]["request_id"] in found["deleted"]


@given(sizes, st.data(), st.booleans())
def test_an_inserted_record_is_named(count: int, data: st.DataObject, forged: bool) -> None:
    records, digest = _sealed(count)
    after = data.draw(st.integers(0, count - 1))
    intruder = _record(1000)
    if forged:  # chained by someone who knows the scheme: linked after a real record
        prev = records[after][CHAIN_HASH]
        intruder.update({CHAIN_SEQ: after + 2, CHAIN_PREV: prev, CHAIN_HASH: record_hash(intruder, prev)})
    records.append(intruder)
    found = _kinds(records, digest)
    assert set(found) == {"inserted"}
    assert intruder["request_id"] in found["inserted"]


@given(sizes, st.data())
def test_reordered_records_are_named(count: int, data: st.DataObject) -> None:
    records, digest = _sealed(count)
    first = data.draw(st.integers(0, count - 2))
    second = data.draw(st.integers(first + 1, count - 1))
    records[first][CHAIN_SEQ], records[second][CHAIN_SEQ] = (
        records[second][CHAIN_SEQ],
        records[first][CHAIN_SEQ],
    )
    found = _kinds(records, digest)
    assert set(found) == {"reordered"}
    assert {records[first]["request_id"], records[second]["request_id"]} <= found["reordered"]


def test_a_rechained_day_does_not_match_its_digest() -> None:
    # GIVEN someone who changes a record and re-hashes the whole chain (the hash has no secret)
    records, digest = _sealed(5)
    records[2]["status"] = "BLOCKED"
    for record in records:
        for name in (CHAIN_SEQ, CHAIN_PREV, CHAIN_HASH):
            del record[name]
    rechained = link(records, DAY)
    for record, one in zip(records, rechained, strict=True):
        record.update({CHAIN_SEQ: one.seq, CHAIN_PREV: one.prev, CHAIN_HASH: one.hash})
    # THEN the signed digest's hashes are gone from the day: named deleted, the re-hashed last inserted
    found = _kinds(records, digest)
    assert "deleted" in found
    assert "inserted" in found


def test_a_day_without_its_digest_is_named() -> None:
    records, _ = _sealed(3)
    assert set(_kinds(records, None)) == {"digest-missing"}


def test_an_empty_day_verifies_against_its_empty_digest() -> None:
    _, digest = _sealed(0)
    assert digest.count == 0
    assert verify_day(DAY, [], digest).problems == []


def test_the_digest_survives_its_stored_form() -> None:
    _, digest = _sealed(4)
    assert Digest.from_body(digest.body()) == digest
    assert Digest.from_body(digest.body()).message() == digest.message()
