"""The answer the sync path keeps for a repeated call with the same request id."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class StoredAnswer(BaseModel):
    """A request's result event (its detail type and detail), as the sync path answered and published it:
    what a second call with the same request id gets back, without a second Bedrock call."""

    model_config = ConfigDict(extra="forbid")

    detail_type: str
    detail: dict[str, Any]
