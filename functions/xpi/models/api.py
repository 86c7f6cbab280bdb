"""What the API answers (api/openapi.yaml is the contract; the handler's tests validate against it)
and the API function's own settings."""

import os
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ErrorCode = Literal[
    "RequestInvalid",
    "RequestExists",
    "RequestNotFound",
    "BatchNotFound",
    "InvocationTimeout",
    "RouteNotFound",
    "MethodNotAllowed",
    "PolicyInvalid",
    "InternalError",
]


class ApiError(Exception):
    """An error answered in the API's one error shape, with a stable code."""

    def __init__(self, status: int, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.request_id = status, code, message, request_id

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.request_id:
            error["request_id"] = self.request_id
        return {"error": error}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Answer):
    step: str
    at: datetime
    elapsed_ms: int | None = None


class ModelInfo(_Answer):
    requested: str | None = None
    resolved: str | None = None
    region: str | None = None


class ClassificationInfo(_Answer):
    decision: Literal["allow", "redact", "block"]
    categories: dict[str, int] = {}


class UsageInfo(_Answer):
    input_tokens: int = 0
    output_tokens: int = 0


class ErrorInfo(_Answer):
    code: str
    message: str = ""


class ResultInfo(_Answer):
    text: str | None = None
    body: dict[str, Any] | None = None
    s3_uri: str | None = None
    sha256: str | None = None
    stop_reason: str | None = None


class RequestStatus(_Answer):
    request_id: str
    status: Literal["ACCEPTED", "COMPLETED", "FAILED", "BLOCKED"]
    caller_principal: str
    source: str
    created_at: str | None = None
    model: ModelInfo = ModelInfo()
    classification: ClassificationInfo | None = None
    usage: UsageInfo | None = None
    estimated_cost_usd: float | None = None
    latency_ms: int | None = Field(None, description="received to completed")
    error: ErrorInfo | None = None
    timeline: list[Step] = []
    result: ResultInfo | None = None


class DashboardFilters(_Answer):
    since: datetime
    status: str | None = None
    model: str | None = None
    caller: str | None = None
    decision: str | None = None
    limit: int = 100


class ApiSettings(BaseModel):
    """The API function's environment (template.yaml, the `api and dashboard (issue 7)` block)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    requests_queue_url: str = Field("", alias="REQUESTS_QUEUE_URL")
    requests_dlq_url: str = Field("", alias="REQUESTS_DLQ_URL")
    batch_table: str = Field("", alias="BATCH_TABLE")
    # Comma-separated globs over caller principals that may read any request (auditors).
    auditor_principals: str = Field("", alias="API_AUDITOR_PRINCIPALS")
    # API Gateway ends an integration at 29 s: answer before it, with the request id to poll.
    invoke_wait_s: float = Field(25.0, alias="API_INVOKE_WAIT_S", ge=0.5, le=28)

    @property
    def auditor_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.auditor_principals.split(",") if p.strip())


@cache
def get_api_settings() -> ApiSettings:
    return ApiSettings.model_validate(dict(os.environ))
