"""GET /v1/compliance/report's handler: the three formats, and a bad format or period refused in the
API's error shape (the report's ports are the in-memory fakes)."""

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from xpi import dependencies
from xpi.handlers import compliance_report
from xpi.services.compliance import ReportPorts

from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import EVENTS
from tests.helpers.fakes_compliance import FakeAdminActivity, FakeCheckRuns, FakeConfigHistory, FakeDayLineage

SAMPLE = json.loads((EVENTS / "compliance-report" / "csv.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def ports(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = ReportPorts(
        lineage=FakeDayLineage([]),
        checks=FakeCheckRuns(),
        history=FakeConfigHistory([]),
        admin=FakeAdminActivity([]),
        tamper=None,
        settle=timedelta(hours=2),
        settings={},
    )
    monkeypatch.setattr(dependencies, "report_ports", lambda: fakes)


def _call(**query: str) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return compliance_report.handler(event, FakeLambdaContext())


@pytest.mark.parametrize(
    ("answer", "content_type", "starts"),
    [
        ("json", "application/json", "{"),
        ("csv", "text/csv", "section,item"),
        ("html", "text/html", "<!doctype"),
    ],
)
def test_each_format(answer: str, content_type: str, starts: str) -> None:
    response = _call(**{"from": "2026-11-20", "to": "2026-11-26", "format": answer})
    assert response["statusCode"] == 200
    # the sample event has multiValueHeaders, so the answer's headers are multi-value too
    assert response["multiValueHeaders"]["Content-Type"][0].startswith(content_type)
    assert response["body"].startswith(starts)


def test_json_names_the_period_and_says_no_check_has_run_yet() -> None:
    body = json.loads(_call(**{"from": "2026-11-20", "to": "2026-11-26"})["body"])
    assert (body["from"], body["to"], body["pass_rate"], body["checks"]) == (
        "2026-11-20",
        "2026-11-26",
        None,
        [],
    )


@pytest.mark.parametrize(
    "query",
    [{"format": "xml"}, {"from": "2026-11-26", "to": "2026-11-20"}, {"from": "not-a-day"}],
)
def test_a_bad_query_is_refused_in_the_error_shape(query: dict[str, str]) -> None:
    response = _call(**query)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "RequestInvalid"
