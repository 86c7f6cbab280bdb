"""A lean asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked request bodies,
``Expect: 100-continue``, and chunked streaming responses with write flow control.

Handlers are plain callables. When the answer is ready at once (the common, zero-latency case)
the handler returns a ``Response`` and it is written without scheduling a task; when it must wait
(simulated latency) or stream, it returns an awaitable or a ``StreamResponse``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

logger = logging.getLogger("xpi_tools.emulator.http")

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str  # raw, still percent-encoded
    query: str  # raw
    headers: list[tuple[str, str]]  # names lower-cased, in arrival order
    body: bytes
    peer: str

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class StreamAborted(Exception):
    """Raised by a stream's chunks to drop the connection without ending the chunked body, as a
    connection lost mid-answer ends (the emulator's stall fault)."""


@dataclass(slots=True)
class StreamResponse:
    status: int
    chunks: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)


Result = Response | StreamResponse
Handler = Callable[[Request], Result | Awaitable[Result]]

_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}


class _DateCache:
    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


_DATES = _DateCache()


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False
        self._closing = False
        self._sent_continue = False
        self._task: asyncio.Task[None] | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._peer = ""

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP, not on those accepted from
        # `socket.create_server`'s (proto 0): a stream's head and first chunk, written apart, then waited
        # on the client's delayed ACK (40 ms on Linux) on a kept-alive connection. Bedrock's own
        # endpoints add no such wait.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True
        self._can_write.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    # -- request handling ------------------------------------------------------------------------

    def _process(self) -> None:
        while not self._busy and not self._closing:
            try:
                parsed = self._parse()
            except _BadRequest as bad:
                self._write_response(Response(bad.status, str(bad).encode()), keep_alive=False)
                return
            if parsed is None:
                return
            request, keep_alive = parsed
            try:
                result = self._server.handler(request)
            except Exception:
                logger.exception("handler failed for %s %s", request.method, request.path)
                result = Response(500, b'{"message":"Internal server error"}')
            if isinstance(result, Response):
                self._write_response(result, keep_alive)
                if not keep_alive:
                    return
                continue
            self._busy = True
            self._task = self._loop.create_task(self._finish(result, keep_alive))

    async def _finish(self, result: StreamResponse | Awaitable[Result], keep_alive: bool) -> None:
        try:
            outcome = result if isinstance(result, StreamResponse) else await result
            if isinstance(outcome, Response):
                self._write_response(outcome, keep_alive)
            else:
                await self._write_stream(outcome, keep_alive)
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception("handler failed")
            self._write_response(Response(500, b'{"message":"Internal server error"}'), keep_alive=False)
            return
        finally:
            self._task = None
            self._busy = False
        if keep_alive and not self._closing:
            self._process()

    def _parse(self) -> tuple[Request, bool] | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "Request Header Fields Too Large")
            return None
        lines = buffer[:end].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest(400, "Bad Request") from None
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400, "Bad Request")
            headers.append((name.strip().lower(), value.strip()))
        length, chunked, connection, expect = _framing(headers)
        start = end + 4
        if chunked:
            decoded = _decode_chunked(buffer, start)
            if decoded is None:
                self._maybe_continue(expect)
                return None
            body, consumed = decoded
        else:
            if length > MAX_BODY_BYTES:
                raise _BadRequest(413, "Payload Too Large")
            if len(buffer) < start + length:
                self._maybe_continue(expect)
                return None
            body, consumed = bytes(buffer[start : start + length]), start + length
        del buffer[:consumed]
        self._sent_continue = False
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        path, _, query = target.partition("?")
        return Request(method, path, query, headers, body, self._peer), keep_alive

    def _maybe_continue(self, expect: str) -> None:
        if expect == "100-continue" and not self._sent_continue and self._transport is not None:
            self._sent_continue = True
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _head(self, status: int, headers: list[tuple[str, str]], keep_alive: bool, extra: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        lines.append(f"Date: {_DATES.get()}\r\n{extra}")
        lines.append("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
        return "".join(lines).encode("latin-1")

    def _write_response(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        head = self._head(
            response.status, response.headers, keep_alive, f"Content-Length: {len(response.body)}\r\n"
        )
        if len(response.body) < 65536:
            transport.write(head + response.body)
        else:
            transport.write(head)
            transport.write(response.body)
        if not keep_alive:
            self.close()

    async def _write_stream(self, response: StreamResponse, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(
            self._head(response.status, response.headers, keep_alive, "Transfer-Encoding: chunked\r\n")
        )
        try:
            async for chunk in response.chunks:
                if self._closing:
                    return
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if not self._can_write.is_set():
                    await self._can_write.wait()
        except StreamAborted:
            self.close()
            return
        if not self._closing:
            transport.write(b"0\r\n\r\n")
            if not keep_alive:
                self.close()


def _framing(headers: list[tuple[str, str]]) -> tuple[int, bool, str, str]:
    """Content-Length, chunked or not, Connection and Expect of a request head."""
    length = 0
    chunked = False
    connection = ""
    expect = ""
    for name, value in headers:
        if name == "content-length":
            try:
                length = int(value)
            except ValueError:
                raise _BadRequest(400, "Bad Request") from None
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            connection = value.lower()
        elif name == "expect":
            expect = value.lower()
    return length, chunked, connection, expect


def _decode_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "Bad Request") from None
        position = line_end + 2
        if size == 0:
            # Skip trailers up to the blank line.
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                if line_end == position:
                    return bytes(body), line_end + 2
                position = line_end + 2
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        if len(body) > MAX_BODY_BYTES:
            raise _BadRequest(413, "Payload Too Large")
        position += size + 2


class HttpServer:
    """Owns the listening socket's asyncio server and every open connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Handler) -> None:
        self.loop = loop
        self.handler = handler
        self.connections: set[HttpConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        self._server = await self.loop.create_server(lambda: HttpConnection(self), sock=sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
