"""What the API answers (api/openapi.yaml is the contract; the handler's tests validate against it),
and the query parameters it reads."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from xpi.models.api_errors import ApiAnswer


class Accepted(ApiAnswer):
    request_id: str
    status: Literal["ACCEPTED"] = "ACCEPTED"
    links: dict[str, str]


class ClearanceEntry(ApiAnswer):
    category: str
    send: Literal["as_is", "redacted", "never"]
    models: list[str]


class BudgetLeft(ApiAnswer):
    """One budget the caller's requests count against, today (UTC): its limits and what is left (null:
    that dimension is not limited)."""

    scope: Literal["caller", "project"]
    name: str
    day: str
    tokens_per_day: int | None = None
    tokens_remaining: int | None = None
    usd_per_day: float | None = None
    usd_remaining: float | None = None


class CallerModels(ApiAnswer):
    principal: str
    models: list[str]
    aliases: dict[str, str]
    project: str | None = Field(None, description="the project the answer is for (its grant applies)")
    projects: list[str] = Field([], description="the projects the caller acts for (request caller.project)")
    clearance: list[list[ClearanceEntry]] | None = Field(
        None,
        description="each level's clearance (caller's, then project's), all of which a request must pass; "
        "null: the policy alone decides what the caller may send",
    )
    budgets: list[BudgetLeft] = []


class BatchStatus(ApiAnswer):
    """A batch as its status item stands (dumped without None: counts and URIs only when recorded)."""

    batch_id: str
    status: str
    total: int | None = None
    completed: int | None = None
    blocked: int | None = None
    failed: int | None = None
    invalid: int | None = None
    source_uri: str | None = None
    results_uri: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class AdminResult(ApiAnswer):
    action: Literal["policy", "routing", "redrive"]
    detail: dict[str, Any]


class StoredConfig(ApiAnswer):
    """A policy or routing change the admin path stored: its revision (what lineage records) and hash."""

    document: Literal["policy", "routing"]
    revision: int = Field(description="one more than the revision it replaced")
    sha256: str = Field(description="canonical SHA-256 of the document")
    parameter: str
    parameter_version: int = Field(description="the SSM parameter's version holding it")


class RedriveStarted(ApiAnswer):
    """An SQS message move task started on the requests DLQ (it runs on after the answer)."""

    task_handle: str = Field(description="SQS's handle of the move task (ListMessageMoveTasks shows it)")
    messages_to_move: int = Field(description="the DLQ's approximate message count when it started")


class Step(ApiAnswer):
    step: str
    at: datetime
    elapsed_ms: int | None = None


class ModelInfo(ApiAnswer):
    requested: str | None = None
    resolved: str | None = None
    region: str | None = None


class ClassificationInfo(ApiAnswer):
    decision: Literal["allow", "redact", "block"]
    categories: dict[str, int] = {}


class UsageInfo(ApiAnswer):
    input_tokens: int = 0
    output_tokens: int = 0


class ErrorInfo(ApiAnswer):
    code: str
    message: str = ""


class CredentialInfo(ApiAnswer):
    """The commercial credential a request was answered with (dashboard routes only; never the key)."""

    type: str | None = None
    version: str | None = None
    age_s: int | None = None


class ResultInfo(ApiAnswer):
    text: str | None = None
    body: dict[str, Any] | None = None
    s3_uri: str | None = None
    sha256: str | None = None
    stop_reason: str | None = None


class RequestStatus(ApiAnswer):
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
    credential: CredentialInfo | None = None


class RequestList(ApiAnswer):
    generated_at: str
    requests: list[RequestStatus]


class StatsBucket(ApiAnswer):
    minute: str
    requests: int = 0
    errors: int = 0
    throttles: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None


class ModelStats(ApiAnswer):
    requests: int = 0
    errors: int = 0
    throttles: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None


class Stats(ApiAnswer):
    generated_at: str
    minutes: int
    totals: dict[str, int]
    buckets: list[StatsBucket]
    models: dict[str, ModelStats]
    blocked_by_category: dict[str, int]


# ---------------------------------------------------------------------------------------------- queries
class IntQuery(NamedTuple):
    """An integer query parameter: its value when absent, and the range it must fall in."""

    name: str
    default: int
    low: int
    high: int


DASHBOARD_LIMIT = IntQuery("limit", default=100, low=1, high=500)
STATS_MINUTES = IntQuery("minutes", default=60, low=1, high=1440)
DASHBOARD_SINCE = timedelta(hours=1)  # how far back the feed reaches when `since` is not given


class DashboardFilters(ApiAnswer):
    since: datetime
    status: str | None = None
    model: str | None = None
    caller: str | None = None
    decision: str | None = None
    limit: int = DASHBOARD_LIMIT.default


# ------------------------------------------------------------------ A/B experiments
class FeedbackBody(BaseModel):
    """POST /v1/requests/{id}/feedback: the caller's rating of the answer."""

    model_config = ConfigDict(extra="forbid")

    score: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: Annotated[str, Field(max_length=2000)] | None = None


class FeedbackRecorded(ApiAnswer):
    request_id: str
    score: int
    comment_bytes: int
    at: str
    experiment: str | None = None
    variant: str | None = None


class VariantResults(ApiAnswer):
    variant: str
    model: str
    requests: int
    completed: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost_usd: float
    mean_cost_usd: float | None
    feedback_count: int
    feedback_mean: float | None
    positive: int
    positive_rate: float | None


class VariantComparison(ApiAnswer):
    variant: str
    against: str
    positive_z: float | None
    positive_p: float | None
    positive_p_adjusted: float | None
    latency_t: float | None
    latency_p: float | None


class StopVerdict(ApiAnswer):
    decision: Literal["stop", "continue"]
    winner: str | None
    reason: str
    summary: str


class ExperimentResults(ApiAnswer):
    experiment: str
    status: Literal["running", "stopped"]
    sticky: Literal["caller", "project"]
    test: str
    variants: list[VariantResults]
    leader: str | None
    comparisons: list[VariantComparison]
    stop_rule: dict[str, Any]
    verdict: StopVerdict
    items_read: int
    truncated: bool
