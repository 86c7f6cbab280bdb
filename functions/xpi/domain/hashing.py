"""Content fingerprints for lineage and the workflow: auditors compare hashes, never payloads.

Anything derived from a request or an answer is hashed with a key (HMAC-SHA256 with the stack's hash
key, a Secrets Manager secret the stack generates): a plain SHA-256 of a short, predictable prompt
("Say yes.") can be recovered by hashing guesses, a keyed one cannot without the key. Plain SHA-256 is
kept for configuration documents (policy, routing), which are not secret, and for the result event's
output checksum, which travels with the output itself.
"""

import hashlib
import hmac
import json
from typing import Any


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON form (sorted keys, no spaces), so equal content hashes equally."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return encoded.encode("utf-8")


def canonical_sha256(value: Any) -> str:
    """SHA-256 of the canonical JSON form of a configuration document."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def sha256_text(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def keyed_hash(key: bytes, data: str | bytes) -> str:
    """HMAC-SHA256 of data under key (hex): what lineage and the workflow keep of content."""
    if not key:
        raise ValueError("a keyed hash needs a non-empty key")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def keyed_canonical_hash(key: bytes, value: Any) -> str:
    """HMAC-SHA256 of the canonical JSON form of value."""
    return keyed_hash(key, canonical_bytes(value))


def same_hash(left: str, right: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(left, right)
