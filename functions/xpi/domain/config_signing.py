"""Signed versions of the policy and routing documents: what the admin path writes, what the loaders trust.

The admin path stores each change as an envelope (:class:`SignedConfig`): the document, its revision (one
more than the revision it replaces), its canonical SHA-256, who changed it and when, and an HMAC-SHA256
over all of that made with a stack secret only the admin path and the loaders can read. A value written
any other way (``ssm:PutParameter`` by hand, an edited envelope, one document's envelope copied to the
other's parameter) does not verify: the loaders then fall back to the shipped default (the floor always
applies on top) and raise a Security Alert, never applying the value.

Pure: no boto3, no environment. The key is passed in.
"""

import hashlib
import hmac
import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xpi.domain.hashing import canonical_sha256

__all__ = [
    "ENVELOPE_FORMAT",
    "ConfigKind",
    "ConfigVersion",
    "SignedConfig",
    "Verdict",
    "sign",
    "verify",
]

ENVELOPE_FORMAT: Final = "xpi-signed-config/1"
ConfigKind = Literal["policy", "routing", "egress"]
# ok: signed with the stack secret; unsigned: not an envelope (a value put by hand); tampered: an
# envelope whose document, hash, fields or kind do not match its MAC.
Verdict = Literal["ok", "unsigned", "tampered"]


class SignedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["xpi-signed-config/1"] = ENVELOPE_FORMAT
    kind: ConfigKind
    revision: int = Field(ge=1, description="one more than the revision it replaced")
    sha256: str = Field(description="canonical SHA-256 of `document`")
    changed_by: str = Field(description="the principal the admin path was called by")
    changed_at: str
    document: dict[str, Any]
    mac: str = Field(description="HMAC-SHA256 (hex) of every other field, with the stack's signing secret")


class ConfigVersion(BaseModel):
    """Which version of a document is in force: what each lineage item records it was judged under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ConfigKind
    revision: int = Field(ge=0, description="0: the shipped default")
    sha256: str
    source: Literal["default", "signed", "fallback"] = Field(
        description="default: no stored version; signed: a verified stored version; fallback: the shipped "
        "default applied because the stored value did not verify (a Security Alert was raised)"
    )


def _signed_bytes(kind: str, revision: int, sha256: str, changed_by: str, changed_at: str) -> bytes:
    fields = {
        "format": ENVELOPE_FORMAT,
        "kind": kind,
        "revision": revision,
        "sha256": sha256,
        "changed_by": changed_by,
        "changed_at": changed_at,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(
    document: dict[str, Any], *, kind: ConfigKind, revision: int, changed_by: str, changed_at: str, key: bytes
) -> SignedConfig:
    digest = canonical_sha256(document)
    return SignedConfig(
        kind=kind,
        revision=revision,
        sha256=digest,
        changed_by=changed_by,
        changed_at=changed_at,
        document=document,
        mac=_mac(key, _signed_bytes(kind, revision, digest, changed_by, changed_at)),
    )


def verify(raw: str, *, kind: ConfigKind, key: bytes) -> tuple[SignedConfig | None, Verdict]:
    """The envelope in ``raw`` and whether it verifies as a ``kind`` document signed with ``key``."""
    try:
        envelope = SignedConfig.model_validate_json(raw)
    except ValidationError:
        return None, "unsigned"
    expected = _mac(
        key,
        _signed_bytes(
            envelope.kind, envelope.revision, envelope.sha256, envelope.changed_by, envelope.changed_at
        ),
    )
    if (
        envelope.kind != kind
        or canonical_sha256(envelope.document) != envelope.sha256
        or not hmac.compare_digest(expected, envelope.mac)
    ):
        return envelope, "tampered"
    return envelope, "ok"
