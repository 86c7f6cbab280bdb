"""Comparing what two paths (the queue and POST /v1/invoke) recorded and emitted for the same content."""

from typing import Any

# What differs between two deliveries of the same content by construction: who sent it and how, when,
# under which id (the keyed request hash covers the id), which run claimed and recorded it, measured
# latency, and the credential's age at the moment of the call.
PER_DELIVERY = frozenset(
    {
        "request_id",
        "lineage_key",
        "source",
        "source_reference",
        "caller",
        "caller_principal",
        "created_at",
        "day",
        "expires_at",
        "steps",
        "timings",
        "completed_at",
        "recorded_by",
        "claimed_by",
        "request_hmac",
        "latency_ms",
        "credential_age_s",
    }
)


def without_delivery_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the content and the policy decided it, whichever path delivered it."""
    return {name: value for name, value in record.items() if name not in PER_DELIVERY}
