"""Trends and anomalies from lineage (xpi.domain.insights): the day series, the leaders, and each kind of
anomaly found when it is there and not found when it is not."""

from typing import Any

import pytest
from xpi.domain.insights import Thresholds, insights, percentile, robust_z
from xpi.models.lineage import LineageItem

ALICE, BOB, CAROL = "role/alice", "role/bob", "role/carol"
NOVA, HAIKU = "us.amazon.nova-lite-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0"
DAYS = [f"2026-11-{d:02d}" for d in range(10, 17)]  # seven days


def line(n: int, day: str, **fields: Any) -> LineageItem:
    stored: dict[str, Any] = {
        "request_id": f"req-{day}-{n:05d}",
        "status": "COMPLETED",
        "created_at": f"{day}T10:00:00.000Z",
        "day": day,
        "expires_at": 1,
        "caller_principal": ALICE,
        "source": "api",
        "model_requested": "default",
        "model_id": NOVA,
        "latency_ms": 400 + n % 50,
        "estimated_cost_usd": f"0.00{10 + n % 5}",
    }
    stored.update(fields)
    return LineageItem.model_validate(stored)


def steady_week(per_day: int = 40, blocked: int = 1, failed: int = 1) -> list[LineageItem]:
    lines = []
    for day in DAYS:
        for n in range(per_day):
            status = "BLOCKED" if n < blocked else "FAILED" if n < blocked + failed else "COMPLETED"
            lines.append(line(n, day, status=status))
    return lines


def kinds(found: Any) -> list[tuple[str, str]]:
    return [(a.kind, a.bucket) for a in found.anomalies]


def test_a_steady_week_has_a_series_per_day_and_no_anomaly() -> None:
    result = insights(steady_week())

    assert [p.bucket for p in result.series] == DAYS
    assert all(p.requests == 40 and p.blocked == 1 and p.errors == 1 for p in result.series)
    assert result.series[0].blocked_rate == 0.025
    assert result.anomalies == []


def test_in_flight_requests_are_left_out() -> None:
    result = insights([line(1, DAYS[0]), line(2, DAYS[0], status="ACCEPTED")])

    assert result.series[0].requests == 1


def test_a_day_with_many_more_blocked_requests_is_a_blocked_spike() -> None:
    # GIVEN a steady week, its last day with 12 blocked requests instead of 1
    lines = steady_week()
    lines += [line(100 + n, DAYS[-1], status="BLOCKED", model_id=None) for n in range(11)]

    found = insights(lines)

    assert kinds(found) == [("blocked_spike", DAYS[-1])]
    spike = found.anomalies[0]
    assert (spike.value, spike.baseline) == (12, 1)


def test_a_few_more_blocked_requests_on_a_quiet_week_are_not_a_spike() -> None:
    # Counts this small vary by chance: 3 against a median of 1 is within a Poisson count's spread... of
    # sqrt(1) = 1 and below the cut-off of 3.5.
    lines = steady_week()
    lines += [line(100 + n, DAYS[-1], status="BLOCKED") for n in range(2)]

    assert [a for a in insights(lines).anomalies if a.kind == "blocked_spike"] == []


def test_a_day_whose_error_rate_jumps_is_an_error_shift() -> None:
    lines = steady_week()
    lines += [line(200 + n, DAYS[3], status="FAILED") for n in range(10)]

    found = insights(lines)

    assert kinds(found) == [("error_shift", DAYS[3])]
    assert found.anomalies[0].value == pytest.approx(11 / 50)


def test_a_day_with_too_few_requests_is_not_judged_for_errors() -> None:
    lines = [*steady_week(), line(1, "2026-11-20", status="FAILED")]  # one request, one failure: 100 %

    assert [a for a in insights(lines).anomalies if a.kind == "error_shift"] == []


def test_a_day_whose_p95_latency_doubles_is_a_latency_shift() -> None:
    lines = steady_week()
    lines += [line(300 + n, DAYS[5], latency_ms=2500) for n in range(10)]

    found = insights(lines)

    assert kinds(found) == [("latency_shift", DAYS[5])]
    assert found.anomalies[0].value == 2500
    assert found.series[5].latency_p95_ms == 2500


def test_a_request_far_dearer_than_its_models_others_is_a_cost_outlier() -> None:
    lines = steady_week()
    lines.append(line(400, DAYS[2], request_id="req-dear", estimated_cost_usd="0.9"))
    # the same cost on another model with few requests is not judged
    lines += [line(500 + n, DAYS[2], model_id=HAIKU, estimated_cost_usd="0.9") for n in range(2)]

    found = insights(lines)

    found_outliers = [(a.kind, a.request_id, a.subject) for a in found.anomalies]
    assert found_outliers == [("cost_outlier", "req-dear", NOVA)]


def test_the_top_callers_models_and_categories_over_the_period_and_per_day() -> None:
    lines = [line(n, DAYS[0], caller_principal=BOB) for n in range(3)]
    lines += [line(10, DAYS[0], caller_principal=CAROL, model_id=HAIKU, estimated_cost_usd="0.5")]
    lines += [line(20 + n, DAYS[1]) for n in range(5)]
    categories = {"EMAIL": 1, "SSN": 1}
    classified = {"decision": "block", "findings": 2, "classifier": "rules", "categories": categories}
    lines += [line(30, DAYS[1], status="BLOCKED", classification=classified)]

    found = insights(lines)

    assert [(r.name, r.requests) for r in found.top_callers] == [(ALICE, 6), (BOB, 3), (CAROL, 1)]
    assert [r.name for r in found.top_models] == [NOVA, HAIKU]
    assert [(r.name, r.requests) for r in found.top_categories] == [("EMAIL", 1), ("SSN", 1)]
    assert [(d.bucket, d.callers[0].name) for d in found.leaders] == [(DAYS[0], BOB), (DAYS[1], ALICE)]
    assert found.leaders[0].models[1].usd == 0.5


def test_robust_z_uses_the_mean_deviation_when_most_values_are_equal() -> None:
    score, baseline = robust_z(10.0, [1.0, 1.0, 1.0, 1.0, 5.0])

    assert baseline == 1.0
    assert score == pytest.approx(9 / (1.2533 * 0.8))


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([7], 0.5) == 7


def test_thresholds_can_be_tightened() -> None:
    lines = steady_week()
    lines += [line(100 + n, DAYS[-1], status="BLOCKED") for n in range(2)]

    found = insights(lines, Thresholds(robust_z=1.5))

    assert ("blocked_spike", DAYS[-1]) in kinds(found)
