"""Usage and cost analytics from lineage (GET /v1/usage): grouping, totals, the CSV export adding up to
the lineage it came from, and the handler's formats and refusals."""

import copy
import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from xpi import dependencies
from xpi.domain.errors import RequestInvalid
from xpi.domain.usage import aggregate, to_csv
from xpi.handlers import usage_report
from xpi.models.lineage import LineageItem
from xpi.services.usage import group_by
from xpi.services.usage import usage_report as build

from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import EVENTS
from tests.helpers.fakes_compliance import FakeDayLineage

ALICE, BOB = "arn:aws-us-gov:iam::111122223333:role/alice", "arn:aws-us-gov:iam::111122223333:role/bob"
NOVA = "us.amazon.nova-lite-v1:0"


def item(n: int, **fields: Any) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "request_id": f"req-usage-{n:04d}",
        "status": "COMPLETED",
        "created_at": "2026-11-20T10:00:00.000Z",
        "day": "2026-11-20",
        "expires_at": 1,
        "caller_principal": ALICE,
        "source": "api",
        "model_requested": "default",
        "model_id": NOVA,
        "commercial_region": "us-east-1",
        "project": "records",
        "cost_centre": "cc-12",
        "usage": {"input_tokens": 100, "output_tokens": 20},
        "estimated_cost_usd": "0.0000108",
    }
    stored.update(fields)
    return stored


RECORDS = [
    item(1),
    item(2, usage={"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2000}),
    item(3, caller_principal=BOB, day="2026-11-21", estimated_cost_usd="0.5"),
    item(4, status="BLOCKED", usage=None, estimated_cost_usd=None, model_id=None, commercial_region=None),
    item(
        5,
        status="FAILED",
        usage=None,
        estimated_cost_usd=None,
        error={"code": "BudgetExhausted", "message": "m"},
    ),
    item(
        6,
        usage={"input_tokens": 0, "output_tokens": 0},
        estimated_cost_usd="0.0",
        cache={"status": "hit", "ttl_s": 60, "saved_usd": "0.0000108"},
    ),
    item(7, status="ACCEPTED", usage=None, estimated_cost_usd=None),  # in flight: not counted
]


def items() -> list[LineageItem]:
    return [LineageItem.model_validate(r) for r in RECORDS]


def test_usage_is_grouped_by_the_dimensions_asked_for_with_totals() -> None:
    rows, totals = aggregate(items(), ["caller", "day"])
    by = {(r.group["caller"], r.group["day"]): r for r in rows}
    alice = by[ALICE, "2026-11-20"]
    assert (alice.requests, alice.completed, alice.blocked, alice.errors) == (5, 3, 1, 1)
    assert (alice.input_tokens, alice.output_tokens, alice.cache_read_input_tokens) == (110, 25, 2000)
    assert alice.usd == pytest.approx(0.0000216)
    assert (alice.response_cache_hits, alice.saved_usd) == (1, pytest.approx(0.0000108))
    assert by[BOB, "2026-11-21"].usd == 0.5
    assert totals.requests == 6 and totals.usd == pytest.approx(0.5000216)


def test_a_dimension_lineage_lacks_is_grouped_as_a_dash() -> None:
    rows, _ = aggregate(items(), ["model"])
    assert {r.group["model"]: r.requests for r in rows} == {NOVA: 5, "default": 1}
    rows, _ = aggregate(items(), ["region"])
    assert {r.group["region"] for r in rows} == {"us-east-1", "-"}


def test_the_csv_export_adds_up_to_lineage() -> None:
    # GIVEN the period's lineage
    report = build(FakeDayLineage(RECORDS), *_days(), group_by("project,cost_centre,model"))
    # WHEN it is exported as CSV
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    # THEN the rows' dollars and tokens add up to the final lineage items', and the last row is the total
    final = [r for r in RECORDS if r["status"] != "ACCEPTED"]
    body, total = rows[:-1], rows[-1]
    expected_usd = sum(Decimal(r["estimated_cost_usd"] or "0") for r in final)
    assert sum(Decimal(r["usd"]) for r in body) == Decimal(total["usd"]) == expected_usd
    assert sum(int(r["input_tokens"]) for r in body) == sum(
        r["usage"]["input_tokens"] for r in final if r["usage"]
    )
    assert sum(int(r["requests"]) for r in body) == int(total["requests"]) == len(final)
    assert total["project"] == "total"
    assert list(rows[0])[:3] == ["project", "cost_centre", "model"]


@pytest.mark.parametrize("value", ["caller,caller", "colour", "day,,model"])
def test_group_by_takes_distinct_known_dimensions(value: str) -> None:
    with pytest.raises(RequestInvalid) as refused:
        group_by(value)
    assert refused.value.reason.startswith("group_by takes distinct dimensions")


def _days() -> tuple[Any, Any]:
    from datetime import date

    return date(2026, 11, 20), date(2026, 11, 21)


SAMPLE = json.loads((EVENTS / "compliance-report" / "csv.json").read_text(encoding="utf-8"))


def _call(**query: str) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    event["resource"] = event["path"] = "/v1/usage"
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return usage_report.handler(event, FakeLambdaContext())


@pytest.fixture
def lineage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dependencies, "day_lineage", lambda: FakeDayLineage(RECORDS))


@pytest.mark.usefixtures("lineage")
def test_the_handler_answers_json_and_csv() -> None:
    period = {"from": "2026-11-20", "to": "2026-11-21"}
    answer = _call(**period, group_by="caller")
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert body["group_by"] == ["caller"] and body["totals"]["requests"] == 6
    exported = _call(**period, format="csv")
    assert exported["multiValueHeaders"]["Content-Type"][0].startswith("text/csv")
    assert exported["body"].startswith("day,caller,model,requests")


@pytest.mark.usefixtures("lineage")
@pytest.mark.parametrize("query", [{"format": "html"}, {"group_by": "colour"}, {"from": "not-a-day"}])
def test_the_handler_refuses_a_bad_query_in_the_error_shape(query: dict[str, str]) -> None:
    response = _call(**query)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "RequestInvalid"


@pytest.mark.usefixtures("lineage")
def test_the_json_report_carries_the_periods_trends_and_leaders() -> None:
    body = json.loads(_call(**{"from": "2026-11-20", "to": "2026-11-21"})["body"])

    insights = body["insights"]
    assert [(p["bucket"], p["requests"]) for p in insights["series"]] == [
        ("2026-11-20", 5),
        ("2026-11-21", 1),
    ]
    assert [(r["name"], r["requests"]) for r in insights["top_callers"]] == [(ALICE, 5), (BOB, 1)]
    assert insights["anomalies"] == []
