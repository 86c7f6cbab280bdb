"""`xpi dashboard`: the operator's access path to the dashboard (docs/dashboard.md).

Browsers cannot sign SigV4, and GovCloud has no CloudFront to put in front of the page. This small
server runs on the operator's machine, on loopback only: it serves the static dashboard and forwards
the page's calls to /v1/... to the xpi API, signed with the operator's own AWS credentials (profile,
SSO or an MFA session from `aws sts get-session-token`; admin routes need the MFA one). The API's IAM
authorisation decides what the operator may see and do; the proxy adds no privilege of its own.

Because it holds the operator's credentials, it answers only its own page (a web page elsewhere must not
drive it, even through DNS rebinding): the Host header must name the proxy itself (127.0.0.1:<port>,
localhost:<port>), an Origin header must be the proxy's own origin, and every request must carry the
random token the proxy prints at start (in the URL it prints, `?token=...`; the page then holds it in an
HttpOnly, SameSite=Strict cookie).

It also serves, under the same checks, the latest comparison `xpi compare --output` saved: GET
/compare/latest.json is the newest *.json directly in the comparisons folder (default
test-artifacts/compare/, where `make demo` saves its own); no name from the request reaches the file system.
"""

import argparse
import hmac
import json
import mimetypes
import secrets
import threading
import urllib.error
import urllib.request
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from xpi.domain.dashboard_page import PAGE_FILES

STATIC_FILES = tuple(PAGE_FILES)  # the page the deployed stack serves too (GET /dashboard/{file})
FORWARDED_PREFIX = "/v1/"
LATEST_COMPARISON = "/compare/latest.json"
DEFAULT_COMPARE_DIR = Path("test-artifacts/compare")
TIMEOUT_S = 35
LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "localhost", "::1": "[::1]"}


class DashboardServer:
    def __init__(
        self,
        api_url: str,
        region: str,
        credentials: Credentials,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        compare_dir: Path = DEFAULT_COMPARE_DIR,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the dashboard proxy signs with the operator's credentials: loopback only")
        self.api_url, self.region, self.credentials = api_url.rstrip("/"), region, credentials
        self._host = host
        self.compare_dir = compare_dir
        self.token = secrets.token_urlsafe(32)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK_HOSTS[self._host]}:{self.port}"

    @property
    def url(self) -> str:
        """What the operator opens: the proxy's origin with its token."""
        return f"{self.origin}/?token={self.token}"

    @property
    def cookie_name(self) -> str:
        # Cookies are not port-scoped: one name per port, so two proxies on one machine do not collide.
        return f"xpi_dashboard_{self.port}"

    def allowed_hosts(self) -> set[str]:
        """Host headers that name this proxy. localhost and 127.0.0.1 when bound there; a rebound DNS
        name (evil.example resolving to 127.0.0.1) is not one of them."""
        names = {"[::1]"} if self._host == "::1" else {"127.0.0.1", "localhost"}
        return {f"{name}:{self.port}" for name in names}

    def check(self, headers: Any, query_token: str | None) -> tuple[int, str] | None:
        """None when the request may go on; else (status, reason): 421 for a Host that is not this proxy,
        403 for a foreign Origin, 401 without the token."""
        if headers.get("Host") not in self.allowed_hosts():
            return 421, "misdirected request: not this proxy's host"
        origin = headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in self.allowed_hosts()}:
            return 403, "foreign origin"
        presented = query_token or self._cookie_token(headers.get("Cookie"))
        if presented is None or not hmac.compare_digest(presented.encode(), self.token.encode()):
            return 401, "the dashboard token is missing or wrong: open the URL `xpi dashboard` printed"
        return None

    def _cookie_token(self, header: str | None) -> str | None:
        if not header:
            return None
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(header)
        except CookieError:
            return None
        morsel = cookies.get(self.cookie_name)
        return morsel.value if morsel is not None else None

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, name="xpi-dashboard", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def latest_comparison(self) -> tuple[int, str, bytes]:
        """The newest saved comparison (a regular *.json file directly in the folder), or 404."""
        saved = (
            [p for p in self.compare_dir.glob("*.json") if p.is_file() and not p.is_symlink()]
            if self.compare_dir.is_dir()
            else []
        )
        if not saved:
            return 404, "application/json", b'{"message": "no saved comparison: xpi compare --output FILE"}'
        newest = max(saved, key=lambda p: p.stat().st_mtime)
        return 200, "application/json", newest.read_bytes()

    def forward(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        url = self.api_url + path
        request = AWSRequest(
            method=method,
            url=url,
            data=body or None,
            headers={"Content-Type": "application/json"} if body else {},
        )
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(  # noqa: S310 - the configured API URL
            prepared.url, data=body or None, method=method, headers=dict(prepared.headers.items())
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=TIMEOUT_S) as response:  # noqa: S310
                return (
                    response.status,
                    response.headers.get("Content-Type", "application/json"),
                    response.read(),
                )
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", "application/json"), error.read()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, content_type: str, body: bytes, cookie: str | None = None) -> None:
                self.send_response(status)
                if cookie is not None:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header(
                    "Content-Security-Policy",
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
                )
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                tokens = parse_qs(parts.query).get("token")
                query_token = tokens[0] if tokens else None
                refused = server.check(self.headers, query_token)
                if refused is not None:
                    status, reason = refused
                    self._send(status, "application/json", json.dumps({"message": reason}).encode())
                    return
                if path.startswith(FORWARDED_PREFIX):
                    # Same-origin only: a page elsewhere must not drive the operator's credentials.
                    if self.command != "GET" and self.headers.get("X-Xpi-Dashboard") != "1":
                        self._send(403, "application/json", b'{"message": "dashboard header missing"}')
                        return
                    self._send(*server.forward(self.command, self.path, body))
                    return
                if path == LATEST_COMPARISON and self.command == "GET":
                    self._send(*server.latest_comparison())
                    return
                name = "index.html" if path in {"/", ""} else path.lstrip("/")
                if self.command != "GET" or name not in STATIC_FILES:
                    self._send(404, "text/plain", b"not found")
                    return
                content = resources.files("xpi").joinpath("dashboard", name).read_bytes()
                # The token in the URL becomes a cookie the page's own requests carry (HttpOnly: no
                # script reads it; SameSite=Strict: no other site's request carries it).
                cookie = (
                    f"{server.cookie_name}={server.token}; Path=/; HttpOnly; SameSite=Strict"
                    if query_token
                    else None
                )
                self._send(200, mimetypes.guess_type(name)[0] or "application/octet-stream", content, cookie)

            do_GET = do_POST = do_PUT = _serve

        return Handler


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="xpi dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", help="the stack's ApiUrl output (default: the local stack's)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--profile", default=None, help="AWS profile with the operator's credentials")
    parser.add_argument("--port", type=int, default=8740)
    parser.add_argument("--state-file", default=".xpi/local/stack.json")
    parser.add_argument(
        "--compare-dir",
        type=Path,
        default=DEFAULT_COMPARE_DIR,
        help="where `xpi compare --output` saves comparisons (the compare view shows the newest)",
    )
    parser.add_argument(
        "--local-principal",
        default="operator",
        help="the local stack's principal to sign as (operator_mfa: the operator's MFA session, for admin)",
    )
    args = parser.parse_args(argv)
    api_url, region = args.api_url, args.region
    credentials = None
    if api_url is None:  # the local stack: its operator principal
        state = json.loads(Path(args.state_file).read_text(encoding="utf-8"))
        api_url, region = state["api"], state["region"]
        keys = state["api_credentials"][args.local_principal]
        credentials = Credentials(
            keys["aws_access_key_id"], keys["aws_secret_access_key"], keys.get("aws_session_token")
        )
    session = boto3.Session(profile_name=args.profile, region_name=region)
    credentials = credentials or session.get_credentials()
    if credentials is None:
        parser.error("no AWS credentials for the operator")
    server = DashboardServer(
        api_url, region or session.region_name, credentials, port=args.port, compare_dir=args.compare_dir
    )
    # The URL carries the proxy's token: open it as printed (it is what lets the page use the proxy).
    print(f"xpi dashboard: {server.start()}  (API {api_url}; Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
