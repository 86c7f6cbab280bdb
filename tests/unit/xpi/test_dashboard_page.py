"""GET /dashboard and GET /dashboard/{file}: the dashboard page served by the stack before sign-in. Only
the page's own files and the sign-in configuration from the function's environment, each under strict
headers; nothing else reaches the file system."""

import json
from typing import Any

import pytest
from xpi.domain.dashboard_page import PAGE_FILES, content_security_policy
from xpi.handlers import dashboard_page
from xpi.settings import get_settings

from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event

SIGN_IN_ON = {
    "DASHBOARD_SIGN_IN": "oidc",
    "DASHBOARD_SIGN_IN_URL": "https://xpi-agency.auth-fips.us-gov-west-1.amazoncognito.com",
    "DASHBOARD_CLIENT_ID": "4l6rexampleclient",
    "DASHBOARD_IDENTITY_POOL_ID": "us-gov-west-1:0f6b0e1c-1111-2222-3333-444455556666",
    "DASHBOARD_IDENTITY_POOL_URL": "https://cognito-identity.us-gov-west-1.amazonaws.com/",
    "DASHBOARD_USER_POOL_PROVIDER": "cognito-idp.us-gov-west-1.amazonaws.com/us-gov-west-1_Example",
    "AWS_REGION": "us-gov-west-1",
}


@pytest.fixture
def sign_in_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SIGN_IN_ON.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fresh_settings() -> Any:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def get(path: str) -> tuple[int, dict[str, str], str]:
    event = load_event("dashboard-page/sign-in-config.json")
    event["path"] = path
    event["requestContext"]["path"] = "/api" + path
    name = path.removeprefix("/dashboard").lstrip("/")
    event["resource"] = "/dashboard/{file}" if name else "/dashboard"
    event["pathParameters"] = {"file": name} if name else None
    answer = dashboard_page.handler(event, FakeLambdaContext())
    multi = answer.get("multiValueHeaders") or {}
    headers = {k: v[0] if isinstance(v, list) else v for k, v in multi.items()}
    headers.update(answer.get("headers") or {})
    return answer["statusCode"], headers, answer["body"]


def test_the_sign_in_configuration_comes_from_the_stack_and_is_never_stored(sign_in_on: None) -> None:
    # WHEN the page asks for sign-in.json
    status, headers, body = get("/dashboard/sign-in.json")

    # THEN the stack's endpoints and ids, in the names sign-in.js reads
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {
        "signIn": "oidc",
        "region": "us-gov-west-1",
        "signInUrl": SIGN_IN_ON["DASHBOARD_SIGN_IN_URL"],
        "clientId": SIGN_IN_ON["DASHBOARD_CLIENT_ID"],
        "identityPoolUrl": SIGN_IN_ON["DASHBOARD_IDENTITY_POOL_URL"],
        "identityPoolId": SIGN_IN_ON["DASHBOARD_IDENTITY_POOL_ID"],
        "userPoolProvider": SIGN_IN_ON["DASHBOARD_USER_POOL_PROVIDER"],
        "identityProvider": "agency",
    }
    assert headers["Cache-Control"] == "no-store"


def test_with_the_sign_in_off_the_configuration_says_so_and_names_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DASHBOARD_SIGN_IN", "none")
    status, _, body = get("/dashboard/sign-in.json")
    assert status == 200
    assert json.loads(body)["signIn"] == "none"
    assert not any(v for k, v in json.loads(body).items() if k != "signIn")


@pytest.mark.parametrize("name", sorted(PAGE_FILES))
def test_every_file_of_the_page_is_served_with_strict_headers(sign_in_on: None, name: str) -> None:
    # WHEN a file of the page is asked for
    status, headers, body = get(f"/dashboard/{name}")

    # THEN it is served as its type, revalidated, never sniffed nor framed, and may call only its own
    # origin and the sign-in's endpoints
    assert status == 200 and body
    assert headers["Content-Type"] == f"{PAGE_FILES[name]}; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-cache"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert (
        "connect-src 'self' https://cognito-identity.us-gov-west-1.amazonaws.com"
        " https://xpi-agency.auth-fips.us-gov-west-1.amazoncognito.com;" in csp
    )


@pytest.mark.parametrize(
    "name", ["settings.py", "..%2Fsettings.py", "%2e%2e%2fdependencies.py", "index.htm", "INDEX.HTML"]
)
def test_nothing_but_the_pages_files_is_served(sign_in_on: None, name: str) -> None:
    status, _, body = get(f"/dashboard/{name}")
    assert status == 404, body
    assert "import" not in body


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/"])
def test_the_entry_sends_the_browser_to_the_page(sign_in_on: None, path: str) -> None:
    status, headers, _ = get(path)
    assert status == 302
    assert headers["Location"] == "/api/dashboard/index.html"  # the stage's own page


def test_the_entry_never_sends_the_browser_to_another_host(sign_in_on: None) -> None:
    event = load_event("dashboard-page/sign-in-config.json")
    event.update(path="/dashboard", resource="/dashboard", pathParameters=None)
    event["requestContext"]["path"] = "//evil.example/dashboard"
    answer = dashboard_page.handler(event, FakeLambdaContext())
    headers = answer.get("headers") or {k: v[0] for k, v in answer["multiValueHeaders"].items()}
    assert headers["Location"] == "/evil.example/dashboard/index.html"  # a path of this host


def test_the_policy_names_only_http_origins_and_drops_the_empty_ones() -> None:
    csp = content_security_policy(["", "javascript:alert(1)", "https://a.example/x?y", "https://a.example/"])
    assert "connect-src 'self' https://a.example;" in csp
