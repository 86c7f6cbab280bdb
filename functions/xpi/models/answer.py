"""The answer the sync path keeps for a repeated call with the same request id."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class StoredAnswer(BaseModel):
    """A request's result event (its detail type and detail), as the sync path answered and published it:
    what a second call with the same request id gets back, without a second Bedrock call."""

    model_config = ConfigDict(extra="forbid")

    detail_type: str
    detail: dict[str, Any]


class CachedAnswer(BaseModel):
    """A Bedrock answer in the exact-match response cache (the response cache table, encrypted with the
    stack key): the output itself when it is small, else the s3:// pointer to the first request's stored
    output (outputs/, kept as long as lineage); its usage and cost, so a hit records what it saved."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    output_text: str | None = None
    output_body: dict[str, Any] | None = None
    output_s3_uri: str | None = None
    output_bytes: int
    output_sha256: str
    output_hmac: str
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    estimated_cost_usd: float = 0.0
    first_request_id: str
    stored_at: str
    expires_at: int  # epoch seconds; the table's TTL attribute (a reader also refuses an expired item)
