"""The dashboard's compliance view in headless Chromium against the local stack: requests flow, the
configuration checker runs, and the view's figures (pass rate, every check's result, requests by
decision and category, blocks, callers) are checked against the lineage they came from and the
checker's stored run. Screenshots in test-artifacts/dashboard/."""

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from boto3.dynamodb.conditions import Key
from xpi.adapters import aws
from xpi.domain.compliance_controls import CHECKS

from tests.browser.test_dashboard import ARTIFACTS
from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def view(browser: Any, local_stack: LocalStackClient) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard = urlsplit(local_stack.state["dashboard"])
    origin = f"{dashboard.scheme}://{dashboard.netloc}"
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(origin + "/") else foreign.append(r.url))
    page.goto(local_stack.state["dashboard"])  # the printed URL: its token becomes the page's cookie
    yield page
    assert foreign == [], f"the compliance view fetched from elsewhere: {foreign}"
    context.close()


def _today_lineage(local_stack: LocalStackClient, day: str) -> list[dict[str, Any]]:
    table = local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.outputs["LineageTableName"]
    )
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"IndexName": "by-day", "KeyConditionExpression": Key("day").eq(day)}
    while True:
        page = table.query(**arguments)
        items.extend(aws.plain(dict(i)) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _figure(page: Any, path: str) -> str:
    return str(page.locator(f'[data-figure="{path}"]').inner_text()).strip()


def test_the_compliance_view_shows_the_lineages_figures_and_every_checks_result(
    view: Any, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN requests through the queue (one allowed, one blocked with a CUI banner) answered
    run = uuid.uuid4().hex[:8]
    allowed, blocked = f"cview-{run}-ok", f"cview-{run}-cui"
    local_stack.send({"request_id": allowed, "model": "default", "prompt": "Name a planet.", "caller": {}})
    local_stack.send(
        {"request_id": blocked, "model": "default", "prompt": "CUI//SP-PRVCY\nRoster.", "caller": {}}
    )
    results.wait_for(allowed)
    results.wait_for(blocked)
    # AND the configuration checker's run (through the Lambda API, as its schedule would)
    response = local_stack.client("lambda").invoke(
        FunctionName=local_stack.outputs["ComplianceCheckFunctionName"], Payload=b"{}"
    )
    check_run = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, check_run

    # WHEN the compliance view is opened for today, and shows figures from lineage unchanged meanwhile
    today = datetime.now(UTC).date().isoformat()
    view.goto(urlsplit(local_stack.state["dashboard"])._replace(path="/compliance.html", query="").geturl())
    view.fill("#c-from", today)
    view.fill("#c-to", today)
    lineage: list[dict[str, Any]] = []

    def shown_for_unchanged_lineage() -> bool:
        before = _today_lineage(local_stack, today)
        view.evaluate("document.body.dataset.loadedAt = ''")
        view.click("#c-load")
        view.wait_for_function("() => document.body.dataset.loadedAt", timeout=20_000)
        lineage[:] = _today_lineage(local_stack, today)
        return sorted(map(json.dumps, before)) == sorted(map(json.dumps, lineage))

    wait_until(shown_for_unchanged_lineage, 90, interval_s=1, what="today's lineage unchanged around a load")
    view.screenshot(path=ARTIFACTS / "07-compliance.png", full_page=True)

    # THEN the pass rate and every check's result are the checker's
    assert float(view.locator("#pass-rate").get_attribute("data-value")) == check_run["pass_rate"]
    shown = {
        row.get_attribute("data-check"): row.get_attribute("data-status")
        for row in view.locator("#checks tbody tr").all()
    }
    assert shown == check_run["checks"] and set(shown) == set(CHECKS)
    # AND the figures are today's lineage's
    statuses = Counter(i["status"] for i in lineage)
    decisions = Counter((i.get("classification") or {}).get("decision", "none") for i in lineage)
    assert {allowed, blocked} <= {i["request_id"] for i in lineage}
    assert int(_figure(view, "requests_by_decision.total")) == len(lineage)
    for status, count in statuses.items():
        assert int(_figure(view, f"requests_by_decision.by_status.{status}")) == count
    for decision, count in decisions.items():
        assert int(_figure(view, f"requests_by_decision.by_decision.{decision}")) == count
    assert int(_figure(view, "blocks.requests")) == decisions["block"] >= 1
    categories: Counter[str] = Counter()
    for item in lineage:
        categories.update((item.get("classification") or {}).get("categories", {}))
    for category, count in categories.items():
        assert int(_figure(view, f"requests_by_category.findings.{category}")) == count
    assert int(_figure(view, "callers.count")) == len({i["caller_principal"] for i in lineage})
    # AND each item names the NIST SP 800-53 controls it evidences
    assert "AU-9" in view.locator('[data-item="tamper_check"] .controls').inner_text()
