"""The dashboard's signing proxy answers only its own page: its own Host, no foreign Origin, and the
token it prints at start (a web page elsewhere must not drive the operator's credentials, DNS rebinding
included). Driven in-process over loopback, with the API call itself replaced."""

import http.client
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials
from xpi_tools.dashboard.server import DashboardServer


@pytest.fixture
def proxy() -> Iterator[tuple[DashboardServer, list[tuple[str, str]]]]:
    server = DashboardServer("https://api.example/api", "us-gov-west-1", Credentials("AKIAEXAMPLE", "secret"))
    forwarded: list[tuple[str, str]] = []

    def forward(method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        forwarded.append((method, path))
        return 200, "application/json", b'{"ok": true}'

    server.forward = forward  # type: ignore[method-assign]
    server.start()
    yield server, forwarded
    server.stop()


def send(
    server: DashboardServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def own(server: DashboardServer, **extra: str) -> dict[str, str]:
    """The headers the dashboard page sends: its Host, its cookie and its header."""
    return {
        "Host": f"127.0.0.1:{server.port}",
        "Cookie": f"{server.cookie_name}={server.token}",
        "X-Xpi-Dashboard": "1",
        **extra,
    }


def test_the_printed_url_is_the_proxys_origin_with_a_random_token(proxy: Any) -> None:
    server, _ = proxy
    parts = urlsplit(server.url)
    assert f"{parts.scheme}://{parts.netloc}" == f"http://127.0.0.1:{server.port}"
    assert parts.query == f"token={server.token}" and len(server.token) >= 40
    other = DashboardServer("https://api.example", "us-gov-west-1", Credentials("a", "b"))
    other.start()
    try:
        assert other.token != server.token
    finally:
        other.stop()


def test_opening_the_printed_url_sets_the_token_cookie(proxy: Any) -> None:
    server, _ = proxy
    status, headers = send(server, "GET", f"/?token={server.token}", {"Host": f"127.0.0.1:{server.port}"})
    assert status == 200
    assert headers["set-cookie"] == f"{server.cookie_name}={server.token}; Path=/; HttpOnly; SameSite=Strict"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_page_with_its_host_cookie_and_origin_is_forwarded(proxy: Any, method: str) -> None:
    server, forwarded = proxy
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        headers = own(server, Host=host, Origin=f"http://{host}")
        status, _ = send(server, method, "/v1/dashboard/stats", headers)
        assert status == 200
    assert forwarded == [(method, "/v1/dashboard/stats")] * 2


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # DNS rebinding: a foreign name resolved to 127.0.0.1
        "evil.example",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost.evil.example:{port}",
    ],
)
@pytest.mark.parametrize("path", ["/v1/dashboard/stats", "/", "/dashboard.js"])
def test_a_foreign_host_is_refused(proxy: Any, host: str, path: str) -> None:
    server, forwarded = proxy
    status, _ = send(server, "GET", path, own(server, Host=host.format(port=server.port)))
    assert status == 421
    assert forwarded == []


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}"]
)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_a_foreign_origin_is_refused(proxy: Any, origin: str, method: str) -> None:
    server, forwarded = proxy
    headers = own(server, Origin=origin.format(port=server.port))
    status, _ = send(server, method, "/v1/admin/dlq/redrive", headers, b"{}")
    assert status == 403
    assert forwarded == []


@pytest.mark.parametrize(
    "token_headers",
    [
        {},
        {"Cookie": "xpi_dashboard_1=wrong"},
        {"Cookie": "{name}=wrong-token"},
        {"Cookie": "{name}="},
    ],
)
@pytest.mark.parametrize("path", ["/v1/dashboard/requests", "/", "/index.html"])
def test_without_the_token_nothing_is_served_or_forwarded(
    proxy: Any, token_headers: dict[str, str], path: str
) -> None:
    server, forwarded = proxy
    headers = {"Host": f"127.0.0.1:{server.port}", "X-Xpi-Dashboard": "1"}
    headers |= {k: v.format(name=server.cookie_name) for k, v in token_headers.items()}
    status, _ = send(server, "GET", path, headers)
    assert status == 401
    assert forwarded == []


def test_a_wrong_token_in_the_url_is_refused(proxy: Any) -> None:
    server, _ = proxy
    status, headers = send(server, "GET", "/?token=guess", {"Host": f"127.0.0.1:{server.port}"})
    assert status == 401 and "set-cookie" not in headers


def test_the_experiments_view_is_served_and_its_results_call_forwarded(proxy: Any) -> None:
    server, forwarded = proxy
    # GIVEN the dashboard's own page, cookie and header
    for page in ("/experiments.html", "/experiments.js"):
        status, _ = send(server, "GET", page, own(server))
        assert status == 200, page
    # WHEN the view reads an experiment's results
    status, _ = send(server, "GET", "/v1/experiments/ab-size/results", own(server))
    # THEN the call goes to the API, signed
    assert status == 200 and forwarded == [("GET", "/v1/experiments/ab-size/results")]
