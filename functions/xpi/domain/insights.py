"""Trends and anomalies from lineage: a day-by-day series (requests, blocks, errors, latency, dollars),
the top callers, models and categories of the period and of each day, and what stands out:

- **blocked spike**: a day's blocked requests far above the other days' (robust z-score over their
  median and median absolute deviation, the spread floored at a Poisson count's, sqrt(median));
- **error shift**: a day's error rate above the other days' pooled rate (one-sided two-proportion z-test);
- **latency shift**: a day's p95 latency at least `latency_ratio` times the other days' median p95;
- **cost outlier**: a request costing far more than its model's requests in the period (the modified z-score,
  Iglewicz and Hoaglin: 0.6745 (x - median) / MAD; with MAD 0, 1.2533 x the mean absolute deviation).

Pure: lineage items in, an `Insights` out. In-flight requests (ACCEPTED) are left out, as in the usage
report. Only upward shifts are anomalies (a quieter, faster, cheaper day is not an alarm)."""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from xpi.models.insights import Anomaly, BucketLeaders, Insights, Ranked, TrendPoint
from xpi.models.lineage import LineageItem

_DIGITS = 8
NONE = "-"


@dataclass(frozen=True)
class Thresholds:
    robust_z: float = 3.5  # Iglewicz and Hoaglin's cut-off for the modified z-score
    min_blocked: int = 3  # a day with fewer blocked requests is never a spike (the blocked alarm's local bar)
    error_z: float = 3.0
    min_requests: int = 20  # a day needs this many requests for its error rate to be judged
    latency_ratio: float = 2.0
    min_latency_samples: int = 5
    min_cost_samples: int = 5  # a model needs this many priced requests for an outlier among them
    top: int = 5
    max_cost_outliers: int = 20


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def percentile(values: Sequence[int], fraction: float) -> int:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def robust_z(value: float, others: Sequence[float], *, floor: float = 0.0) -> tuple[float, float]:
    """(score, baseline): how many robust standard deviations `value` lies above the others' median."""
    centre = median(others)
    deviations = [abs(o - centre) for o in others]
    mad = median(deviations)
    spread = mad / 0.6745 if mad > 0 else 1.2533 * (sum(deviations) / len(deviations))
    spread = max(spread, floor)
    if spread == 0:
        return (math.inf if value > centre else 0.0), centre
    return (value - centre) / spread, centre


@dataclass
class _Bucket:
    requests: int = 0
    blocked: int = 0
    errors: int = 0
    usd: Decimal = Decimal(0)
    latencies: list[int] | None = None


def _rank(counts: Counter[str], dollars: dict[str, Decimal], top: int) -> list[Ranked]:
    ordered = sorted(counts, key=lambda name: (-counts[name], -dollars[name], name))
    return [Ranked(name=n, requests=counts[n], usd=float(round(dollars[n], _DIGITS))) for n in ordered[:top]]


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.dollars: dict[str, Decimal] = defaultdict(Decimal)

    def add(self, name: str, usd: Decimal) -> None:
        self.counts[name] += 1
        self.dollars[name] += usd

    def ranked(self, top: int) -> list[Ranked]:
        return _rank(self.counts, self.dollars, top)


def _cost(item: LineageItem) -> Decimal:
    return Decimal(item.estimated_cost_usd or "0")


def insights(items: Iterable[LineageItem], thresholds: Thresholds = Thresholds()) -> Insights:
    buckets: dict[str, _Bucket] = defaultdict(_Bucket)
    tallies: dict[str, dict[str, _Tally]] = defaultdict(lambda: defaultdict(_Tally))  # dimension -> bucket
    period: dict[str, _Tally] = defaultdict(_Tally)
    costs: dict[str, list[tuple[Decimal, str, str]]] = defaultdict(list)  # model -> (usd, request, day)
    for item in items:
        if item.status == "ACCEPTED":
            continue
        day, usd = item.day, _cost(item)
        bucket = buckets[day]
        bucket.requests += 1
        bucket.blocked += item.status == "BLOCKED"
        bucket.errors += item.status == "FAILED"
        bucket.usd += usd
        if item.latency_ms is not None:
            bucket.latencies = [*(bucket.latencies or []), item.latency_ms]
        model = item.model_id or item.model_requested or NONE
        names = {"caller": [item.caller_principal or NONE], "model": [model]}
        names["category"] = sorted(item.classification.categories) if item.classification else []
        for dimension, values in names.items():
            for value in values:
                tallies[dimension][day].add(value, usd)
                period[dimension].add(value, usd)
        if item.status == "COMPLETED" and item.estimated_cost_usd is not None:
            costs[model].append((usd, item.request_id, day))
    days = sorted(buckets)
    series = [_point(day, buckets[day]) for day in days]
    top = thresholds.top
    return Insights(
        series=series,
        top_callers=period["caller"].ranked(top),
        top_models=period["model"].ranked(top),
        top_categories=period["category"].ranked(top),
        leaders=[
            BucketLeaders(
                bucket=day,
                callers=tallies["caller"][day].ranked(3),
                models=tallies["model"][day].ranked(3),
                categories=tallies["category"][day].ranked(3),
            )
            for day in days
        ],
        anomalies=[
            *_blocked_spikes(series, thresholds),
            *_error_shifts(series, thresholds),
            *_latency_shifts(days, buckets, thresholds),
            *_cost_outliers(costs, thresholds),
        ],
    )


def _point(day: str, bucket: _Bucket) -> TrendPoint:
    latencies = bucket.latencies or []
    return TrendPoint(
        bucket=day,
        requests=bucket.requests,
        blocked=bucket.blocked,
        errors=bucket.errors,
        blocked_rate=round(bucket.blocked / bucket.requests, 6) if bucket.requests else 0.0,
        error_rate=round(bucket.errors / bucket.requests, 6) if bucket.requests else 0.0,
        latency_p50_ms=percentile(latencies, 0.5) if latencies else None,
        latency_p95_ms=percentile(latencies, 0.95) if latencies else None,
        usd=float(round(bucket.usd, _DIGITS)),
    )


def _blocked_spikes(series: list[TrendPoint], thresholds: Thresholds) -> list[Anomaly]:
    found = []
    for index, point in enumerate(series):
        others = [float(p.blocked) for i, p in enumerate(series) if i != index]
        if point.blocked < thresholds.min_blocked or len(others) < 2:
            continue
        score, baseline = robust_z(float(point.blocked), others, floor=math.sqrt(max(median(others), 1.0)))
        if score > thresholds.robust_z:
            found.append(
                Anomaly(
                    kind="blocked_spike",
                    bucket=point.bucket,
                    metric="blocked",
                    value=point.blocked,
                    baseline=baseline,
                    score=_finite(score),
                )
            )
    return found


def _error_shifts(series: list[TrendPoint], thresholds: Thresholds) -> list[Anomaly]:
    found = []
    for index, point in enumerate(series):
        rest_requests = sum(p.requests for i, p in enumerate(series) if i != index)
        rest_errors = sum(p.errors for i, p in enumerate(series) if i != index)
        if point.requests < thresholds.min_requests or rest_requests < thresholds.min_requests:
            continue
        pooled = (point.errors + rest_errors) / (point.requests + rest_requests)
        error = math.sqrt(pooled * (1 - pooled) * (1 / point.requests + 1 / rest_requests))
        baseline = rest_errors / rest_requests
        if error == 0:
            continue  # no errors anywhere, or nothing but errors: no shift to see
        score = (point.error_rate - baseline) / error
        if score > thresholds.error_z:
            found.append(
                Anomaly(
                    kind="error_shift",
                    bucket=point.bucket,
                    metric="error_rate",
                    value=point.error_rate,
                    baseline=round(baseline, 6),
                    score=round(score, 3),
                )
            )
    return found


def _latency_shifts(days: list[str], buckets: dict[str, _Bucket], thresholds: Thresholds) -> list[Anomaly]:
    p95 = {
        day: percentile(latencies, 0.95)
        for day in days
        if len(latencies := buckets[day].latencies or []) >= thresholds.min_latency_samples
    }
    found = []
    for day, value in p95.items():
        others = [float(v) for d, v in p95.items() if d != day]
        if len(others) < 2:
            continue
        baseline = median(others)
        if baseline > 0 and value / baseline >= thresholds.latency_ratio:
            found.append(
                Anomaly(
                    kind="latency_shift",
                    bucket=day,
                    metric="latency_p95_ms",
                    value=value,
                    baseline=baseline,
                    score=round(value / baseline, 3),
                )
            )
    return found


def _cost_outliers(costs: dict[str, list[tuple[Decimal, str, str]]], thresholds: Thresholds) -> list[Anomaly]:
    found = []
    for model, priced in sorted(costs.items()):
        if len(priced) < thresholds.min_cost_samples:
            continue
        values = [float(usd) for usd, _, _ in priced]  # the model's own spread, outliers included
        for usd, request_id, day in priced:
            score, baseline = robust_z(float(usd), values)
            if score > thresholds.robust_z:
                found.append(
                    Anomaly(
                        kind="cost_outlier",
                        bucket=day,
                        metric="usd",
                        value=float(usd),
                        baseline=baseline,
                        score=_finite(score),
                        request_id=request_id,
                        subject=model,
                    )
                )
    found.sort(key=lambda a: -a.score)
    return found[: thresholds.max_cost_outliers]


def _finite(score: float) -> float:
    """JSON has no infinity: a value above others that never vary scores a fixed large number."""
    return round(score, 3) if math.isfinite(score) else 1e9
