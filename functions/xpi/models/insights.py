"""Trends, leaders and anomalies of a period's lineage (the `insights` of GET /v1/usage)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

AnomalyKind = Literal["blocked_spike", "error_shift", "latency_shift", "cost_outlier"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrendPoint(_Model):
    """One bucket (a UTC day) of the period: its counts, rates, latency percentiles and dollars."""

    bucket: str
    requests: int = 0
    blocked: int = 0
    errors: int = 0
    blocked_rate: float = 0.0
    error_rate: float = 0.0
    latency_p50_ms: int | None = None  # of the requests lineage recorded a latency for
    latency_p95_ms: int | None = None
    usd: float = 0.0


class Ranked(_Model):
    name: str
    requests: int
    usd: float


class BucketLeaders(_Model):
    """The top caller, model and category of one bucket (the leaders over time)."""

    bucket: str
    callers: list[Ranked]
    models: list[Ranked]
    categories: list[Ranked]  # requests in which the classifier found the category (and their dollars)


class Anomaly(_Model):
    """Something unusual: `value` against `baseline` (the other buckets', or the model's requests'
    median), `score` how far out it is (a robust z-score, or the ratio for latency)."""

    kind: AnomalyKind
    bucket: str
    metric: str
    value: float
    baseline: float
    score: float
    request_id: str | None = None  # a cost outlier's request
    subject: str | None = None  # a cost outlier's model


class Insights(_Model):
    bucket: Literal["day"] = "day"
    series: list[TrendPoint]
    top_callers: list[Ranked]
    top_models: list[Ranked]
    top_categories: list[Ranked]
    leaders: list[BucketLeaders]
    anomalies: list[Anomaly]
