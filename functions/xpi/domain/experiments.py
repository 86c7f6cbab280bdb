"""A/B experiments: which variant (approved model) a request gets, and what the results say (pure).

An experiment lives in the routing document (signed, changed without a deploy): the requested models it
applies to (globs over the model or alias), an optional condition (xpi.domain.strategies.Condition),
its variants (a name, an approved model, a weight), what assignment is sticky by (the caller's principal
or the request's project: a deterministic hash, the same in every process), a start and stop moment and
a running/stopped status, and its stop rule's parameters.

Assignment cuts [0, 1) in proportion to the weights and takes the variant the unit's hash falls on; the
hash is SHA-256 of the experiment's name and the unit, so a caller (or project) keeps its variant for the
whole experiment and the split over many units matches the weights.

The results are computed from the lineage items the experiment's requests left: per variant the
requests, errors, latency p50/p95, cost, and the feedback's count, mean and positive share; a
two-proportion z-test on the positive feedback (each variant against the best one, Bonferroni-corrected)
and Welch's t-test on latency; and the stop rule's verdict: "stop: winner X" once every variant has the
minimum feedback and the best is significantly better, or once a variant breaks the error-rate
guardrail; "continue" otherwise.
"""

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from xpi.domain.strategies import Condition, RouteContext, matches


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ExperimentName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Variant(_Config):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    model: str = Field(description="an approved model id or inference profile id")
    weight: Annotated[float, Field(gt=0)] = 1.0


class StopRule(_Config):
    min_feedback_per_variant: Annotated[int, Field(ge=1)] = Field(
        100, description="every variant needs this much feedback before a winner is declared"
    )
    alpha: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.05, description="the significance threshold of the positive-feedback test (after correction)"
    )
    positive_score: Annotated[int, Field(ge=1, le=5)] = Field(
        4, description="a feedback score at or above this is positive"
    )
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="guardrail: a variant failing more often than this stops the experiment"
    )
    min_requests_for_guardrail: Annotated[int, Field(ge=1)] = Field(
        50, description="the guardrail judges a variant only once it has this many requests"
    )


class Experiment(_Config):
    name: ExperimentName
    models: list[str] = Field(["*"], description="globs over the model (or alias) the request asks for")
    when: Condition = Condition()
    variants: Annotated[list[Variant], Field(min_length=2)]
    sticky: Literal["caller", "project"] = Field(
        "caller",
        description="what keeps a variant: the caller's principal, or the request's project (a request "
        "without one: its caller)",
    )
    status: Literal["running", "stopped"] = "running"
    start: AwareDatetime | None = Field(None, description="no assignment before this moment")
    stop: AwareDatetime | None = Field(None, description="no assignment from this moment on")
    stop_rule: StopRule = StopRule()

    @model_validator(mode="after")
    def _variants_are_distinct(self) -> "Experiment":
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment '{self.name}' needs distinct variant names")
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError(f"experiment '{self.name}' stops before it starts")
        return self


def assigning(experiment: Experiment, at: datetime | None) -> bool:
    """Whether the experiment assigns variants at `at` (None: a moment unknown, judged by status)."""
    if experiment.status != "running":
        return False
    if at is None:
        return True
    if experiment.start is not None and at < experiment.start:
        return False
    return experiment.stop is None or at < experiment.stop


def applies(experiment: Experiment, context: RouteContext, at: datetime | None) -> bool:
    return (
        assigning(experiment, at)
        and any(fnmatchcase(context.requested, pattern) for pattern in experiment.models)
        and matches(experiment.when, context)
    )


def unit_of(experiment: Experiment, context: RouteContext) -> str:
    """What the assignment is fixed by: the caller's principal, or the request's project."""
    if experiment.sticky == "project" and context.project:
        return f"project\x00{context.project}"
    return f"caller\x00{context.principal}"


def bucket(experiment_name: str, unit: str) -> float:
    """A number in [0, 1) fixed by the experiment and the unit, spread evenly over units."""
    digest = hashlib.sha256(f"experiment\x00{experiment_name}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, context: RouteContext) -> Variant:
    """The variant this request's unit falls on, the weights cutting [0, 1) in document order."""
    point = bucket(experiment.name, unit_of(experiment, context))
    total = sum(v.weight for v in experiment.variants)
    cumulative = 0.0
    for variant in experiment.variants:
        cumulative += variant.weight / total
        if point < cumulative:
            return variant
    return experiment.variants[-1]


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Observation:
    """What one request of the experiment left in lineage."""

    variant: str
    status: str  # COMPLETED, FAILED, BLOCKED (ACCEPTED: still running, not counted)
    latency_ms: int | None = None
    cost_usd: Decimal | None = None
    score: int | None = None


@dataclass(frozen=True)
class VariantResult:
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


@dataclass(frozen=True)
class Comparison:
    """A variant against the leader: the positive-feedback z-test and Welch's t-test on latency."""

    variant: str
    against: str
    positive_z: float | None
    positive_p: float | None
    positive_p_adjusted: float | None
    latency_t: float | None
    latency_p: float | None


@dataclass(frozen=True)
class Verdict:
    decision: Literal["stop", "continue"]
    winner: str | None
    reason: str

    @property
    def summary(self) -> str:
        return f"stop: winner {self.winner}" if self.decision == "stop" and self.winner else self.decision


@dataclass(frozen=True)
class Results:
    variants: tuple[VariantResult, ...]
    leader: str | None
    comparisons: tuple[Comparison, ...]
    verdict: Verdict


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def to_decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_z(successes_a: int, n_a: int, successes_b: int, n_b: int) -> tuple[float, float] | None:
    """The pooled two-proportion z statistic (a minus b) and its two-sided p-value; None when undefined."""
    if n_a == 0 or n_b == 0:
        return None
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance == 0:
        return None
    z = (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)
    return z, min(1.0, 2 * normal_sf(abs(z)))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-12:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with `df` degrees of freedom."""
    return incomplete_beta(df / 2, 0.5, df / (df + t * t))


def welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Welch's t statistic (mean a minus mean b) and its two-sided p-value; None when undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    se_a, se_b = var_a / len(a), var_b / len(b)
    if se_a + se_b == 0:
        return None
    t = (mean_a - mean_b) / math.sqrt(se_a + se_b)
    df = (se_a + se_b) ** 2 / (
        (se_a**2 / (len(a) - 1) if se_a else 0.0) + (se_b**2 / (len(b) - 1) if se_b else 0.0)
    )
    return t, student_t_two_sided_p(t, df)


def _variant_result(variant: Variant, observed: list[Observation], positive_score: int) -> VariantResult:
    finished = [o for o in observed if o.status != "ACCEPTED"]
    errors = sum(1 for o in finished if o.status == "FAILED")
    latencies = [float(o.latency_ms) for o in finished if o.latency_ms is not None]
    costs = [o.cost_usd for o in finished if o.cost_usd is not None]
    scores = [o.score for o in finished if o.score is not None]
    positive = sum(1 for s in scores if s >= positive_score)
    total_cost = sum(costs, Decimal(0))
    return VariantResult(
        variant=variant.name,
        model=variant.model,
        requests=len(finished),
        completed=sum(1 for o in finished if o.status == "COMPLETED"),
        errors=errors,
        error_rate=errors / len(finished) if finished else 0.0,
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        cost_usd=float(total_cost),
        mean_cost_usd=float(total_cost / len(costs)) if costs else None,
        feedback_count=len(scores),
        feedback_mean=sum(scores) / len(scores) if scores else None,
        positive=positive,
        positive_rate=positive / len(scores) if scores else None,
    )


def results(experiment: Experiment, observations: Iterable[Observation]) -> Results:
    """Per-variant figures, the tests of each variant against the leader, and the stop rule's verdict."""
    rule = experiment.stop_rule
    by_variant: dict[str, list[Observation]] = {v.name: [] for v in experiment.variants}
    for observation in observations:
        if observation.variant in by_variant:
            by_variant[observation.variant].append(observation)
    rows = tuple(_variant_result(v, by_variant[v.name], rule.positive_score) for v in experiment.variants)
    rated = [r for r in rows if r.positive_rate is not None]
    leader = max(rated, key=lambda r: (r.positive_rate or 0.0, r.feedback_count)) if rated else None
    comparisons = []
    others = len(rows) - 1
    if leader is not None:
        latencies = {
            name: [
                float(o.latency_ms) for o in observed if o.latency_ms is not None and o.status != "ACCEPTED"
            ]
            for name, observed in by_variant.items()
        }
        for row in rows:
            if row.variant == leader.variant:
                continue
            z = two_proportion_z(leader.positive, leader.feedback_count, row.positive, row.feedback_count)
            t = welch_t(latencies[row.variant], latencies[leader.variant])
            comparisons.append(
                Comparison(
                    variant=row.variant,
                    against=leader.variant,
                    positive_z=z[0] if z else None,
                    positive_p=z[1] if z else None,
                    positive_p_adjusted=min(1.0, z[1] * others) if z else None,
                    latency_t=t[0] if t else None,
                    latency_p=t[1] if t else None,
                )
            )
    return Results(
        rows, leader.variant if leader else None, tuple(comparisons), verdict(rule, rows, leader, comparisons)
    )


def verdict(
    rule: StopRule,
    rows: Sequence[VariantResult],
    leader: VariantResult | None,
    comparisons: Sequence[Comparison],
) -> Verdict:
    """The stop rule: the error guardrail first, then significance once every variant has enough feedback."""
    if rule.max_error_rate is not None:
        judged = [r for r in rows if r.requests >= rule.min_requests_for_guardrail]
        breaking = [r for r in judged if r.error_rate > rule.max_error_rate]
        if breaking:
            healthy = [r for r in judged if r.error_rate <= rule.max_error_rate]
            best = min(healthy, key=lambda r: r.error_rate).variant if healthy else None
            names = ", ".join(r.variant for r in breaking)
            return Verdict("stop", best, f"error rate above {rule.max_error_rate} for {names}")
    short = [r.variant for r in rows if r.feedback_count < rule.min_feedback_per_variant]
    if short:
        return Verdict(
            "continue", None, f"fewer than {rule.min_feedback_per_variant} ratings for {', '.join(short)}"
        )
    if leader is None or not comparisons:
        return Verdict("continue", None, "no comparison yet")
    worst = max((c.positive_p_adjusted if c.positive_p_adjusted is not None else 1.0) for c in comparisons)
    if worst < rule.alpha:
        return Verdict(
            "stop", leader.variant, f"positive feedback better than every other variant, p < {rule.alpha}"
        )
    return Verdict("continue", None, f"no significant difference yet (p = {worst:.4g} >= {rule.alpha})")
