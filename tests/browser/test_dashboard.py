"""The dashboard in headless Chromium (Debian's chromium, driven by Playwright) against the local
stack while requests flow: a new request appears without a reload, the filters work, a request's
detail shows its lineage timeline, and nothing is fetched from anywhere but the dashboard's origin.
Screenshots go to test-artifacts/ (git-ignored; CI keeps them as artifacts)."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"


@pytest.fixture
def page(browser: Any, local_stack: LocalStackClient) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The printed URL is the proxy's origin with its token (`/?token=...`): open it as printed; the page's
    # own requests then carry the token as a cookie, to the same origin.
    dashboard = urlsplit(local_stack.state["dashboard"])
    assert dashboard.query.startswith("token="), "the dashboard URL carries the proxy's token"
    origin = f"{dashboard.scheme}://{dashboard.netloc}"
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(origin + "/") else foreign.append(r.url))
    page.goto(local_stack.state["dashboard"])
    yield page
    assert foreign == [], f"the dashboard fetched from elsewhere: {foreign}"
    context.close()


def _prompt(text: str, request_id: str, model: str = "default") -> dict[str, Any]:
    return {"request_id": request_id, "model": model, "prompt": text, "caller": {"project": "browser"}}


def _row(page: Any, request_id: str) -> Any:
    return page.locator(f'#requests tbody tr[data-request-id="{request_id}"]')


def test_live_stream_filters_and_detail(
    page: Any, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the dashboard is open and has loaded once
    page.wait_for_selector("#status-line:text-matches('updated')", timeout=15_000)
    loads_before = page.evaluate("performance.getEntriesByType('navigation').length")
    page.screenshot(path=ARTIFACTS / "01-opened.png", full_page=True)

    # WHEN requests flow through the pipeline (a completed one and a blocked one)
    run = uuid.uuid4().hex[:8]
    completed_id, blocked_id = f"web-{run}-ok", f"web-{run}-cui"
    local_stack.send(_prompt("Explain tides in two sentences.", completed_id))
    local_stack.send(_prompt("CUI//SP-PRVCY\nPersonnel roster.", blocked_id, model="fast"))
    results.wait_for(completed_id)
    results.wait_for(blocked_id)

    # THEN both appear without a reload, with their final status (the stream refreshes every 2 s)
    started = time.monotonic()
    _row(page, completed_id).locator("td.s-COMPLETED").wait_for(timeout=10_000)
    _row(page, blocked_id).locator("td.s-BLOCKED").wait_for(timeout=10_000)
    appeared_s = time.monotonic() - started
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads_before
    assert appeared_s < 6
    page.screenshot(path=ARTIFACTS / "02-new-requests.png", full_page=True)

    # AND the status filter shows only blocked requests
    page.select_option("#f-status", "BLOCKED")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#requests tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.dataset.status === 'BLOCKED'); }",
        timeout=10_000,
    )
    assert _row(page, blocked_id).count() == 1 and _row(page, completed_id).count() == 0
    page.screenshot(path=ARTIFACTS / "03-filter-blocked.png", full_page=True)

    # AND the decision, model and caller filters narrow it further, or to nothing
    page.select_option("#f-status", "")
    page.select_option("#f-decision", "allow")
    _row(page, blocked_id).wait_for(state="detached", timeout=10_000)
    _row(page, completed_id).wait_for(timeout=10_000)
    page.select_option("#f-decision", "")
    page.fill("#f-model", "us.amazon.nova-micro-v1:0")
    _row(page, completed_id).wait_for(state="detached", timeout=10_000)
    _row(page, blocked_id).wait_for(timeout=10_000)
    page.fill("#f-model", "")
    page.fill("#f-caller", "no-such-caller")
    page.wait_for_function(
        "() => document.querySelectorAll('#requests tbody tr').length === 0", timeout=10_000
    )
    page.screenshot(path=ARTIFACTS / "04-filter-caller-none.png", full_page=True)
    page.fill("#f-caller", "")

    # AND a request's detail shows its lineage timeline (steps, never the content)
    _row(page, completed_id).click()
    page.wait_for_selector(f"#detail-id:text('{completed_id}')", timeout=10_000)
    page.wait_for_function("() => document.querySelectorAll('#timeline circle').length >= 5", timeout=10_000)
    assert "tides" not in page.inner_text("#detail")
    # AND the commercial credential it was answered with: type, secret version and age
    page.wait_for_selector("#detail-fields dd:text-matches('iam-access-key, version ')", timeout=10_000)
    # AND the charts are drawn from the aggregates (plain SVG)
    page.wait_for_function(
        "() => document.querySelectorAll('#chart-throughput rect').length > 0", timeout=10_000
    )
    # (the stats refresh every 5 s: the one that counts the blocked request may be the next one)
    page.wait_for_function(
        "() => document.querySelectorAll('#chart-blocked rect').length > 0", timeout=15_000
    )
    page.screenshot(path=ARTIFACTS / "05-detail-and-charts.png", full_page=True)


def test_admin_action_without_mfa_is_refused(page: Any) -> None:
    # The local dashboard signs with the operator's long-term keys (no MFA): admin routes refuse.
    page.wait_for_selector("#status-line:text-matches('updated')", timeout=15_000)
    page.click("#redrive")
    page.wait_for_selector("#admin-result:text-matches('403')", timeout=10_000)
    assert "not authorized" in page.inner_text("#admin-result")
    page.screenshot(path=ARTIFACTS / "06-admin-needs-mfa.png", full_page=True)
