"""The exact-match response cache's rules: when a request may be answered from it, and its key.

A request is cached only when it asks (`cache.ttl_s`) or its caller's rule does (`cache_ttl_s` in the
routing document), and only when its answer is deterministic (xpi.models.request.not_deterministic:
Converse at temperature 0). A request that asks and is not deterministic is refused at validation; a
caller rule's cache does not apply to it (`bypass`, with the reason).

The key is a keyed hash (HMAC-SHA256, the stack's hash key) of what is sent after redaction (the
classify step's payload fingerprint), the model the route resolved, the policy in force (its canonical
SHA-256: a new policy never reuses an answer judged under the old one) and the scope sharing answers
(the caller's project, else the caller): two projects never share an answer.
"""

from dataclasses import dataclass

from xpi.domain.hashing import keyed_canonical_hash
from xpi.models.request import InferenceRequest, not_deterministic


@dataclass(frozen=True)
class CacheDecision:
    ttl_s: int | None  # None: no cache for this request
    bypass_reason: str | None = None  # a cache was asked for by the caller's rule and does not apply


def decide_cache(request: InferenceRequest, caller_ttl_s: int | None) -> CacheDecision | None:
    """None when nobody asked for the cache; else the TTL, or why it does not apply."""
    if request.cache is not None:
        return CacheDecision(request.cache.ttl_s)  # validation refused a non-deterministic one
    if caller_ttl_s is None:
        return None
    reason = not_deterministic(request)
    if reason is not None:
        return CacheDecision(None, reason)
    return CacheDecision(caller_ttl_s)


def cache_key(key: bytes, *, payload_hmac: str, model_id: str, policy_sha256: str, scope: str) -> str:
    return keyed_canonical_hash(
        key,
        {"v": 1, "payload": payload_hmac, "model": model_id, "policy": policy_sha256, "scope": scope},
    )
