"""The lineage seal (scheduled): each closed UTC day's final lineage records are chained
(xpi.domain.lineage_chain), each record's chain fields written once, and the day's digest signed
with the asymmetric audit key and stored under Object Lock. Days are sealed in order, each digest
carrying the hash of the day before's, so a missing day is visible too.

A day is closed once it ended longer ago than a record of it can stay unfinal (`settle`: the reaper's
bound plus its period). A day with a record still not final waits for a later run. A run that stopped
between the records and the digest is completed by the next: records already chained with the same
hash are kept; one chained differently stops the run (someone changed the table) and nothing is signed.
"""

import base64
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import DigestSigner, DigestStore, SealableLineage
from xpi.domain.lineage_chain import CHAIN_HASH, FINAL_STATUSES, digest_of, link, signed_digest_hash
from xpi.models.sealing import SealedDay, SealReport
from xpi.observability import logger, metrics


class ChainConflictError(RuntimeError):
    """A record already carries chain fields other than the ones the seal computes."""


@dataclass(frozen=True)
class Sealer:
    lineage: SealableLineage
    digests: DigestStore
    signer: DigestSigner
    settle: timedelta
    max_days: int


def last_closed_day(now: datetime, settle: timedelta) -> date:
    return (now - settle).date() - timedelta(days=1)


def signed_document(sealer: Sealer, body: dict[str, Any], message: bytes) -> dict[str, Any]:
    signature, key_id, algorithm = sealer.signer.sign(message)
    return {
        **body,
        "signature": base64.b64encode(signature).decode(),
        "key_id": key_id,
        "signing_algorithm": algorithm,
    }


def seal_day(sealer: Sealer, day: date, previous: dict[str, Any] | None, now: datetime) -> SealedDay | None:
    records = sealer.lineage.day_records(day)
    if any(record.get("status") not in FINAL_STATUSES for record in records):
        return None
    stored = {str(r["request_id"]): r.get(CHAIN_HASH) for r in records}
    links = link(records, day)
    written = 0
    for one in links:
        already = stored[one.request_id]
        if already is not None:
            if already != one.hash:
                raise ChainConflictError(f"{one.request_id} of {day} is chained with another hash")
            continue
        if not sealer.lineage.seal(one.request_id, one.seq, one.prev, one.hash):
            raise ChainConflictError(f"{one.request_id} of {day} was chained meanwhile")
        written += 1
    previous_hash = signed_digest_hash(previous) if previous else None
    digest = digest_of(day, links, previous_hash, now.isoformat(timespec="milliseconds"))
    sealer.digests.put(day, signed_document(sealer, digest.body(), digest.message()))
    return SealedDay(
        day=day.isoformat(), records=len(links), newly_sealed=written, last_hash=digest.last_hash
    )


def seal(sealer: Sealer, now: datetime) -> SealReport:
    report = SealReport()
    through = last_closed_day(now, sealer.settle)
    previous = sealer.digests.latest()
    # The first run seals the last closed day; later runs continue from the last digest, in order.
    day = date.fromisoformat(previous["day"]) + timedelta(days=1) if previous else through
    while day <= through and len(report.sealed) < sealer.max_days:
        sealed = seal_day(sealer, day, previous, now)
        if sealed is None:
            report.waiting_on = day.isoformat()
            break
        report.sealed.append(sealed)
        previous = sealer.digests.get(day)
        day += timedelta(days=1)
    if report.sealed:
        logger.info("lineage sealed", extra=report.model_dump())
    metrics.add_metric(name="LineageDaysSealed", unit=MetricUnit.Count, value=len(report.sealed))
    return report
