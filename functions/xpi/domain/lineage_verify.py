"""Checking sealed lineage against its signed digests: the library behind `xpi audit verify` and the
compliance report's tamper check.

For each day: its digest, its signature checked here with the signing key's public key (verified locally,
`cryptography`), its link to the day before's digest, then every lineage record of the day recomputed and
linked (xpi.domain.lineage_chain.verify_day). Every altered, inserted, deleted or reordered record, and
every missing or altered digest, is named.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from xpi.domain.lineage_chain import Digest, Problem, signed_digest_hash, verify_day

SIGNATURE_FIELDS = ("signature", "key_id", "signing_algorithm")


def signature_valid(public_key_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    key = serialization.load_der_public_key(public_key_der)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm == "ECDSA_SHA_256":
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == "RSASSA_PSS_SHA_256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            key.verify(signature, message, pss, hashes.SHA256())
        elif isinstance(key, rsa.RSAPublicKey) and algorithm == "RSASSA_PKCS1_V1_5_SHA_256":
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Sources:
    digest: Callable[[date], dict[str, Any] | None]
    records: Callable[[date], list[dict[str, Any]]]
    public_key: Callable[[str], bytes]  # key id -> DER SubjectPublicKeyInfo
    signing_key: str  # the stack's signing key ARN: a digest signed by another key is refused


def verify(sources: Sources, first: date, last: date) -> tuple[int, list[Problem]]:
    """(records checked, problems) over the days first..last."""
    problems: list[Problem] = []
    checked = 0
    previous: dict[str, Any] | None = sources.digest(first - timedelta(days=1))
    day = first
    while day <= last:
        document = sources.digest(day)
        digest: Digest | None = None
        if document is not None:
            digest = _checked_digest(sources, day, document, previous, problems)
        result = verify_day(day, sources.records(day), digest)
        checked += result.records
        if digest is None and document is not None:
            pass  # already named as digest-altered
        elif digest is None and not result.records:
            pass  # nothing sealed and nothing to seal
        else:
            problems.extend(result.problems)
        previous = document
        day += timedelta(days=1)
    return checked, problems


def _checked_digest(
    sources: Sources,
    day: date,
    document: dict[str, Any],
    previous: dict[str, Any] | None,
    problems: list[Problem],
) -> Digest | None:
    name = day.isoformat()
    try:
        digest = Digest.from_body({k: v for k, v in document.items() if k not in SIGNATURE_FIELDS})
        signature = base64.b64decode(str(document["signature"]))
        key_id = str(document["key_id"])
    except (KeyError, ValueError, TypeError):
        problems.append(Problem("digest-altered", name, "the digest is not a signed digest"))
        return None
    if key_id != sources.signing_key:
        problems.append(Problem("digest-altered", name, f"signed by {key_id}, not the stack's signing key"))
        return None
    if digest.day != name or not signature_valid(
        sources.public_key(key_id), str(document.get("signing_algorithm")), digest.message(), signature
    ):
        problems.append(Problem("digest-altered", name, "its signature does not match its content"))
        return None
    if previous is not None and digest.previous_digest != signed_digest_hash(previous):
        problems.append(Problem("digest-altered", name, "it does not follow the day before's digest"))
    return digest
