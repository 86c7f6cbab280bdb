"""Tamper-evident lineage, on the model of CloudTrail log file integrity validation (pure, no AWS).

A closed UTC day's final lineage records are linked in one chain, in a deterministic order
(created_at, then request_id): each record gets its position (`chain_seq`, from 1), the hash of its
predecessor (`chain_prev`; the first record's is the day's genesis hash) and its own hash
(`chain_hash` = SHA-256 over the record's canonical form, without the chain fields, and chain_prev).
A digest per day (first and last hash, count, the previous day's digest hash) is signed elsewhere with
an asymmetric key. Verification recomputes every hash and every link, and names each record that was
altered, inserted, deleted or reordered, and a digest that is missing or does not match.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal

CHAIN_SEQ: Final = "chain_seq"
CHAIN_PREV: Final = "chain_prev"
CHAIN_HASH: Final = "chain_hash"
CHAIN_FIELDS: Final = (CHAIN_SEQ, CHAIN_PREV, CHAIN_HASH)
# Written after a record is final (up to days later): the reaper's late reporting and the caller's
# feedback on the answer: operational, not sealed.
UNSEALED_FIELDS: Final = (*CHAIN_FIELDS, "reported_at", "feedback")
FINAL_STATUSES: Final = frozenset({"COMPLETED", "FAILED", "BLOCKED"})
DIGEST_VERSION: Final = 1

Finding = Literal["altered", "inserted", "deleted", "reordered", "digest-missing", "digest-altered"]


def _normal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_normal(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def canonical(value: Mapping[str, Any], exclude: Iterable[str] = ()) -> bytes:
    """Sorted-key compact JSON (UTF-8) of the value without the excluded top-level fields."""
    left_out = set(exclude)
    body = {k: _normal(v) for k, v in value.items() if k not in left_out}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def genesis(day: date) -> str:
    """The chain_prev of a day's first record."""
    return sha256(f"xpi-lineage-chain:{day.isoformat()}".encode())


def record_hash(record: Mapping[str, Any], prev: str) -> str:
    return sha256(canonical(record, UNSEALED_FIELDS) + b"\n" + prev.encode())


def chain_order(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: (str(r["created_at"]), str(r["request_id"])))


@dataclass(frozen=True)
class Link:
    request_id: str
    seq: int
    prev: str
    hash: str


def link(records: Iterable[Mapping[str, Any]], day: date) -> list[Link]:
    """The chain of a closed day's final records, in the chain's order."""
    links: list[Link] = []
    prev = genesis(day)
    for seq, record in enumerate(chain_order(records), start=1):
        current = record_hash(record, prev)
        links.append(Link(str(record["request_id"]), seq, prev, current))
        prev = current
    return links


@dataclass(frozen=True)
class Digest:
    """What is signed for one day. previous_digest: digest_hash of the day before's signed digest."""

    day: str
    count: int
    first_hash: str | None
    last_hash: str | None
    previous_digest: str | None
    sealed_at: str
    version: int = DIGEST_VERSION

    def body(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "day": self.day,
            "count": self.count,
            "first_hash": self.first_hash,
            "last_hash": self.last_hash,
            "previous_digest": self.previous_digest,
            "sealed_at": self.sealed_at,
        }

    def message(self) -> bytes:
        """The bytes the key signs."""
        return canonical(self.body())

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Digest":
        return cls(
            day=str(body["day"]),
            count=int(body["count"]),
            first_hash=body.get("first_hash"),
            last_hash=body.get("last_hash"),
            previous_digest=body.get("previous_digest"),
            sealed_at=str(body["sealed_at"]),
            version=int(body.get("version", DIGEST_VERSION)),
        )


def digest_of(day: date, links: Sequence[Link], previous_digest: str | None, sealed_at: str) -> Digest:
    return Digest(
        day=day.isoformat(),
        count=len(links),
        first_hash=links[0].hash if links else None,
        last_hash=links[-1].hash if links else None,
        previous_digest=previous_digest,
        sealed_at=sealed_at,
    )


def signed_digest_hash(document: Mapping[str, Any]) -> str:
    """The hash of a stored, signed digest document (body and signature): the next day's previous_digest."""
    return sha256(canonical(document))


@dataclass(frozen=True)
class Problem:
    kind: Finding
    day: str
    detail: str
    request_id: str | None = None


@dataclass
class DayCheck:
    day: str
    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, kind: Finding, detail: str, request_id: str | None = None) -> None:
        self.problems.append(Problem(kind, self.day, detail, request_id))


def _self_checks(check: DayCheck, stored: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The sealed records; names the unsealed (inserted) and those whose hash is wrong (altered)."""
    sealed: list[Mapping[str, Any]] = []
    for record in stored:
        request_id = str(record.get("request_id"))
        if not all(record.get(name) is not None for name in CHAIN_FIELDS):
            check.add("inserted", "a record the seal never chained", request_id)
            continue
        sealed.append(record)
        if record_hash(record, str(record[CHAIN_PREV])) != record[CHAIN_HASH]:
            check.add("altered", "its fields do not match its chain_hash", request_id)
    return sealed


def _link_check(
    check: DayCheck, day: date, record: Mapping[str, Any], by_hash: Mapping[str, Mapping[str, Any]]
) -> None:
    """Its predecessor is there (else deleted) and one position before it (else reordered)."""
    request_id = str(record["request_id"])
    prev = str(record[CHAIN_PREV])
    if prev == genesis(day):
        if int(record[CHAIN_SEQ]) != 1:
            check.add("reordered", f"first in the chain, claims position {record[CHAIN_SEQ]}", request_id)
        return
    before = by_hash.get(prev)
    if before is None:
        check.add("deleted", f"the record before it (hash {prev}) is gone", request_id)
    elif int(before[CHAIN_SEQ]) + 1 != int(record[CHAIN_SEQ]):
        check.add(
            "reordered",
            f"follows {before['request_id']} (position {before[CHAIN_SEQ]}) "
            f"but claims position {record[CHAIN_SEQ]}",
            request_id,
        )


def verify_day(day: date, records: Iterable[Mapping[str, Any]], digest: Digest | None) -> DayCheck:
    """Every altered, inserted, deleted or reordered record of a sealed day, against its (verified) digest.

    altered    its hash recomputed from its fields and chain_prev is not its chain_hash
    inserted   not sealed (no chain fields), or its hash is the predecessor of no record nor the digest's last
    deleted    a predecessor hash (or the digest's first or last hash) that no record of the day has
    reordered  intact, but its claimed position is not one after its predecessor's
    """
    check = DayCheck(day.isoformat())
    stored = list(records)
    check.records = len(stored)
    if digest is None:
        check.add("digest-missing", f"no digest for {day.isoformat()} ({len(stored)} lineage records)")
        return check
    sealed = _self_checks(check, stored)
    by_hash = {str(r[CHAIN_HASH]): r for r in sealed}
    referenced = {str(r[CHAIN_PREV]) for r in sealed}
    if digest.last_hash:
        referenced.add(digest.last_hash)
    positions = {int(r[CHAIN_SEQ]) for r in sealed}
    inserted = 0
    for record in sealed:
        request_id = str(record["request_id"])
        seq = int(record[CHAIN_SEQ])
        if str(record[CHAIN_HASH]) not in referenced:
            # Nothing follows it: its successor was deleted, or it was never part of the sealed chain.
            if seq < digest.count and seq + 1 not in positions:
                check.add("deleted", f"the record after it (position {seq + 1}) is gone", request_id)
            else:
                inserted += 1
                check.add("inserted", "no record nor the digest follows it in the chain", request_id)
        _link_check(check, day, record, by_hash)
    for end, hash_ in (("last", digest.last_hash), ("first", digest.first_hash)):
        if hash_ and hash_ not in by_hash:
            check.add("deleted", f"the day's {end} record (hash {hash_}) is gone")
    chained = len(sealed) - inserted
    if chained != digest.count:
        kind: Finding = "deleted" if chained < digest.count else "inserted"
        check.add(kind, f"{chained} chained records, the digest sealed {digest.count}")
    return check
