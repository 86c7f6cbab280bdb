"""The dashboard's sign-in through the agency's identity provider, in headless Chromium against the local
stack (DashboardSignIn=oidc): the page behind the API sends the browser through the local OIDC provider's
own sign-in page (oidc-provider; user and password typed), comes back with a code, gets the identity
pool's credentials of the role the user's group maps to, and signs its own calls with them. What each user
then sees is what that role's IAM policies let through the local API Gateway. The page itself is the
stack's: GET /dashboard/{file} of the local API Gateway, answered by the deployed DashboardPageFunction
(no `xpi dashboard` proxy). Screenshots in test-artifacts/dashboard/."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.test_dashboard import ARTIFACTS
from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.integration.test_usage import assert_csv_matches_lineage

pytestmark = pytest.mark.integration

# A signed call from the page; a body that is not JSON: whatever IAM lets through, no function accepts it.
SIGNED_FETCH = (
    "([path, method]) => fetch(path, {method, body: method === 'GET' ? undefined : 'not json'})"
    ".then(r => r.status)"
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def sign_in(browser: Any, local_stack: LocalStackClient) -> Iterator[Any]:
    """sign_in(user, page, otp=) -> a page signed in as that user (its sign-in ended, in or refused)."""
    config = local_stack.state.get("sign_in") or {}
    if not config:
        pytest.skip("the local stack has no dashboard sign-in (make idp installs its OIDC provider)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    allowed = {_origin(config["dashboard"]), config["idp"], config["cognito"]}
    own_blobs = f"blob:{_origin(config['dashboard'])}/"  # what the page saves (its CSV export)
    contexts: list[Any] = []
    foreign: list[str] = []

    def signed_in(user: str, page_name: str = "index.html", *, otp: bool = False) -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 1200})
        contexts.append(context)
        page = context.new_page()

        def seen(request: Any) -> None:
            if _origin(request.url) not in allowed and not request.url.startswith(own_blobs):
                foreign.append(request.url)

        page.on("request", seen)
        page.goto(config["dashboard"].replace("index.html", page_name))
        # the provider's own sign-in page, reached through the local Cognito's hosted sign-in
        page.wait_for_url(f"{config['idp']}/interaction/**", timeout=15_000)
        page.fill("#username", user)
        page.fill("#password", config["users"][user]["password"])
        if otp:
            page.fill("#otp", config["users"][user]["otp"])
        page.click("#sign-in")
        # back on the page asked for (the callback first, which forwards there), the code gone
        page.wait_for_url(f"**/dashboard/{page_name}", timeout=20_000)
        page.wait_for_function("() => document.body.dataset.signIn", timeout=20_000)
        return page

    yield signed_in
    for context in contexts:
        context.close()
    assert foreign == [], f"the page fetched from elsewhere than itself, the provider and Cognito: {foreign}"


def test_an_operator_signs_in_and_sees_the_requests_but_no_admin(
    sign_in: Any, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request answered through the queue
    request_id = f"signin-{uuid.uuid4().hex[:8]}"
    local_stack.send({"request_id": request_id, "model": "default", "prompt": "Name a planet.", "caller": {}})
    results.wait_for(request_id)

    # WHEN a member of the operators group signs in through the provider
    page = sign_in("olivia.operator")

    # THEN the page is signed in with the operator role, and shows the request (read with its credentials)
    assert page.evaluate("document.body.dataset.signIn") == "ok"
    assert page.evaluate("document.body.dataset.role") == "operator"
    assert page.url.startswith(local_stack.state["sign_in"]["dashboard"]) and "code=" not in page.url
    page.locator(f'#requests tbody tr[data-request-id="{request_id}"]').wait_for(timeout=15_000)
    page.screenshot(path=ARTIFACTS / "08-signed-in-operator.png", full_page=True)
    # AND the credentials are a one-hour session of the dashboard operator role, not a user's keys
    credentials = json.loads(page.evaluate("sessionStorage.getItem('xpi-credentials')"))
    assert credentials["AccessKeyId"] and credentials["SessionToken"]
    # AND IAM refuses it the admin routes
    assert page.evaluate(SIGNED_FETCH, ["/v1/admin/policy", "PUT"]) == 403


def test_an_auditor_signs_in_sees_compliance_and_usage_and_is_refused_admin(
    sign_in: Any, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN three requests of a project of their own, two answered and one blocked
    project = f"signin-{uuid.uuid4().hex[:8]}"
    prompts = ["Name three rivers.", "Name three lakes.", "CUI//SP-PRVCY\nRoster of the office."]
    ids = [
        local_stack.send({"model": "default", "prompt": p, "caller": {"project": project}}) for p in prompts
    ]
    for request_id in ids:
        results.wait_for(request_id, timeout_s=90)
    items = [local_stack.lineage(i) for i in ids]

    # WHEN a member of the auditors group opens the compliance view and signs in
    page = sign_in("avery.auditor", "compliance.html")

    # THEN it comes back to the compliance view, signed in as an auditor, and the report loads
    assert page.evaluate("document.body.dataset.signIn") == "ok"
    assert page.evaluate("document.body.dataset.role") == "auditor"
    page.evaluate("document.body.dataset.loadedAt = ''")
    page.click("#c-load")
    page.wait_for_function(
        "() => document.body.dataset.loadedAt"
        " || document.getElementById('status-line').textContent.startsWith('error')",
        timeout=30_000,
    )
    assert page.evaluate("document.body.dataset.loadedAt"), page.locator("#status-line").inner_text()
    assert page.locator("#pass-rate").get_attribute("data-value") is not None
    page.screenshot(path=ARTIFACTS / "09-signed-in-auditor.png", full_page=True)
    # AND the auditor role reads the compliance report, but neither the operators' routes nor admin
    assert page.evaluate(SIGNED_FETCH, ["/v1/compliance/report", "GET"]) == 200
    assert page.evaluate(SIGNED_FETCH, ["/v1/dashboard/requests", "GET"]) == 403
    assert page.evaluate(SIGNED_FETCH, ["/v1/admin/dlq/redrive", "POST"]) == 403

    # WHEN it goes on to the usage view (the same tab, the same session) and asks for usage by project
    page.goto(local_stack.state["sign_in"]["dashboard"].replace("index.html", "usage.html"))
    page.wait_for_function("() => document.body.dataset.loaded", timeout=30_000)  # its first load
    page.select_option("#u-group", "project")
    page.evaluate("document.body.dataset.loaded = ''")
    page.click("#u-load")
    page.wait_for_function(
        "() => document.body.dataset.loaded"
        " || document.getElementById('status-line').textContent.startsWith('error')",
        timeout=30_000,
    )
    assert page.evaluate("document.body.dataset.loaded"), page.locator("#status-line").inner_text()
    assert page.locator("#u-rows thead th").first.inner_text() == "project"
    assert page.locator(f'[data-figure="{project}.requests"]').inner_text() == "3"
    # THEN the charts are drawn from the report: a bar per day for requests, blocked and errors, a line of
    # dollars, and the groups' token bars adding up to the report's totals
    days = page.locator("#u-series tbody tr").count()
    assert days >= 1 and page.locator("#u-chart-daily rect").count() == 3 * days
    assert page.locator("#u-chart-usd polyline").count() == 1
    drawn = page.evaluate(
        "[...document.querySelectorAll('#u-chart-tokens rect')]"
        ".reduce((sum, r) => sum + Number(r.getAttribute('data-value')), 0)"
    )
    totals = [
        int(page.locator(f'[data-figure="total.{figure}"]').inner_text())
        for figure in ("input_tokens", "output_tokens")
    ]
    assert drawn == sum(totals) > 0
    page.screenshot(path=ARTIFACTS / "11-signed-in-usage-charts.png", full_page=True)
    # AND the CSV export, fetched with the page's own signed call and saved, matches lineage
    with page.expect_download(timeout=30_000) as saved:
        page.click("#u-csv")
    assert saved.value.suggested_filename.endswith(".csv")
    text = Path(saved.value.path()).read_text(encoding="utf-8")
    assert_csv_matches_lineage(text, project, items, completed=2, blocked=1)


def test_a_user_outside_every_group_gets_no_credentials(sign_in: Any) -> None:
    # WHEN a user of the provider in none of the three groups signs in
    page = sign_in("nora.nogroup")

    # THEN the identity pool gives no role, and the page has no credentials to call anything with
    assert page.evaluate("document.body.dataset.signIn") == "refused"
    assert "No role matched" in page.locator("#sign-in-state").inner_text()
    assert page.evaluate("sessionStorage.getItem('xpi-credentials')") is None
    page.screenshot(path=ARTIFACTS / "10-signed-in-no-group.png", full_page=True)


def test_an_admin_reaches_the_admin_routes_only_with_a_second_factor(sign_in: Any) -> None:
    # WHEN a member of the admins group signs in with password only, THEN it is only an operator
    page = sign_in("ada.admin")
    assert page.evaluate("document.body.dataset.role") == "operator"
    assert page.evaluate(SIGNED_FETCH, ["/v1/admin/policy", "PUT"]) == 403

    # WHEN it signs in with its one-time code too (the provider's amr: pwd, otp)
    page = sign_in("ada.admin", otp=True)

    # THEN it has the admin role, and IAM and the API's MFA Denies let its call through to the admin
    # function, which refuses the malformed policy on its merits (not a 403; nothing changed)
    assert page.evaluate("document.body.dataset.role") == "admin"
    status = page.evaluate(SIGNED_FETCH, ["/v1/admin/policy", "PUT"])
    assert status != 403 and 400 <= status < 500
