"""What commercial Bedrock answered, in the workflow's terms (the BedrockGateway port's result)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from xpi.models.workflow import Usage


class ModelAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str | None = None
    body: dict[str, Any] | None = None
    stop_reason: str | None = None
    usage: Usage
    latency_ms: int
    credential_version: str
    # iam-access-key, bedrock-api-key, short-term-api-key or roles-anywhere; the key's age when known
    credential_type: str | None = None
    credential_age_s: int | None = None
    # The network path the call took (xpi.domain.egress), when egress paths are configured
    egress_path: str | None = None
    # What the call put on the wire and took off it (request and answer lines, headers, bodies), in bytes
    bytes_sent: int | None = None
    bytes_received: int | None = None
    # How Bedrock bills the answer: on-demand, or (batch) as a line of a batch inference job, half price
    billing: Literal["on_demand", "batch"] = "on_demand"
