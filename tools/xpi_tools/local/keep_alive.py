"""HTTP keep-alive for moto's server, as AWS's endpoints keep a connection open for the SDK's next call.

moto serves with werkzeug's development server, which answers every request `Connection: close`
(its handler cannot drain a request body it did not read, so it never reuses a connection): each AWS
call of every function, poller and state machine opened a new TCP connection, and moto's server
started a new thread for it. This handler reads each request's body whole before moto sees it, so the
connection is always at the next request's first byte, and frames each answer with its length, so the
client knows where it ends; the connection then stays open, as `Connection: keep-alive` on HTTP/1.1.
Answers go out without Nagle's delay (TCP_NODELAY, as botocore's own connections do): on a kept
connection an answer's head and body, written apart, would otherwise wait on the client's delayed ACK
(40 ms on Linux).
A connection idle for `IDLE_TIMEOUT_S` is closed (botocore opens a new one for its next call).
"""

import io
import logging
import socket
from typing import Any

from werkzeug.serving import DechunkedInput, WSGIRequestHandler

IDLE_TIMEOUT_S = 120
_NO_BODY_STATUSES = {204, 304}
_LOG = logging.getLogger(__name__)


def keep_alive_handler(base: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    """`base` (moto's request handler) answering on one connection until the client closes it."""

    class KeepAliveHandler(base):  # type: ignore[valid-type,misc]
        protocol_version = "HTTP/1.1"
        timeout = IDLE_TIMEOUT_S

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            environ = self.environ = self.make_environ()
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("wsgi.input_terminated", None)
            answer: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                answer["status"], answer["headers"] = status, headers
                return lambda data: answer.setdefault("written", []).append(data)

            try:
                chunks = self.server.app(environ, start_response)
                try:
                    data = b"".join([*answer.get("written", []), *chunks])
                finally:
                    if hasattr(chunks, "close"):
                        chunks.close()
            except Exception:
                _LOG.exception("moto's server failed a request")
                answer = {"status": "500 Internal Server Error", "headers": []}
                data, self.close_connection = b"", True
            self._answer(environ, answer["status"], answer["headers"], data)

        def _answer(
            self, environ: dict[str, Any], status: str, headers: list[tuple[str, str]], data: bytes
        ) -> None:
            code_text, _, message = status.partition(" ")
            code = int(code_text)
            head = environ["REQUEST_METHOD"] == "HEAD"
            self.send_response(code, message)
            for name, value in headers:
                lowered = name.lower()
                if lowered in ("connection", "transfer-encoding", "keep-alive"):
                    continue
                if lowered == "content-length" and not head:
                    continue  # framed below, from what is actually sent
                self.send_header(name, value)
            if not head and code not in _NO_BODY_STATUSES and not 100 <= code < 200:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and not head and code not in _NO_BODY_STATUSES:
                self.wfile.write(data)
            self.wfile.flush()

    KeepAliveHandler.__name__ = KeepAliveHandler.__qualname__ = f"KeepAlive{base.__name__}"
    return KeepAliveHandler


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request's body, read whole from the connection (by its length, or to its last chunk)."""
    stream = environ["wsgi.input"]
    if isinstance(stream, DechunkedInput):
        return stream.read()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return stream.read(length) if length > 0 else b""


def enable_keep_alive(server: Any) -> None:
    """Switch a running werkzeug server (moto's `ThreadedMotoServer._server`) to keep-alive: each new
    connection is served by the keep-alive handler."""
    server.RequestHandlerClass = keep_alive_handler(server.RequestHandlerClass)
