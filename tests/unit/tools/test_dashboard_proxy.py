"""The dashboard's signing proxy answers only its own page: its own Host, no foreign Origin, and the
token it prints at start (a web page elsewhere must not drive the operator's credentials, DNS rebinding
included). Driven in-process over loopback, with the API call itself replaced."""

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
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


def fetch(server: DashboardServer, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def compare_proxy(tmp_path: Path) -> Iterator[tuple[DashboardServer, Path]]:
    folder = tmp_path / "compare"
    server = DashboardServer(
        "https://api.example/api", "us-gov-west-1", Credentials("AKIAEXAMPLE", "secret"), compare_dir=folder
    )
    server.start()
    yield server, folder
    server.stop()


def test_the_compare_view_is_served_with_the_newest_saved_comparison(
    compare_proxy: tuple[DashboardServer, Path],
) -> None:
    server, folder = compare_proxy
    for page in ("/compare.html", "/compare.js"):
        assert fetch(server, page, own(server))[0] == 200, page
    # GIVEN nothing saved yet: a 404 that says how to save one
    status, body = fetch(server, "/compare/latest.json", own(server))
    assert status == 404 and b"--output" in body
    # WHEN two comparisons are saved, the second later
    folder.mkdir()
    older, newer = folder / "a.json", folder / "b.json"
    older.write_text('{"models": [{"model": "old"}]}', encoding="utf-8")
    newer.write_text('{"models": [{"model": "new"}]}', encoding="utf-8")
    os.utime(older, (1_000, 1_000))
    (folder / "notes.txt").write_text("not a comparison", encoding="utf-8")
    # THEN the view's call gets the newest one
    status, body = fetch(server, "/compare/latest.json", own(server))
    assert status == 200 and json.loads(body)["models"][0]["model"] == "new"


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:{port}"},  # rebinding
        {"Host": "127.0.0.1:{port}", "Cookie": "{name}=wrong-token"},  # no token
        {"Host": "127.0.0.1:{port}", "Cookie": "{name}={token}", "Origin": "http://evil.example"},
    ],
)
def test_the_saved_comparison_keeps_the_proxys_protections(
    compare_proxy: tuple[DashboardServer, Path], headers: dict[str, str]
) -> None:
    server, folder = compare_proxy
    folder.mkdir()
    (folder / "demo.json").write_text('{"models": []}', encoding="utf-8")
    filled = {
        k: v.format(port=server.port, name=server.cookie_name, token=server.token) for k, v in headers.items()
    }
    status, body = fetch(server, "/compare/latest.json", filled)
    assert status in {401, 403, 421} and b"models" not in body


def test_no_other_saved_file_is_reachable(compare_proxy: tuple[DashboardServer, Path]) -> None:
    server, folder = compare_proxy
    folder.mkdir()
    (folder / "demo.json").write_text('{"models": []}', encoding="utf-8")
    for path in ("/compare/demo.json", "/compare/../compare/demo.json", "/compare/latest.json/x"):
        assert fetch(server, path, own(server))[0] == 404, path
