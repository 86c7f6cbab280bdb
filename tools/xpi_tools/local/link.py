"""A TCP proxy on loopback in front of the Bedrock emulator: one egress path (docs/network.md) that a test
or a benchmark cuts, restores and delays, as a link going down, coming back, or slower than another.

Delay: each request waits `delay_s` before it goes up (one link round trip added per request).

Cut: the listening socket closes (a new connection is refused: nothing is sent, the caller fails over),
every connection without a request in flight is closed within POLL_S, and one with a request in flight right
after its answer is through (the proxy follows the HTTP/1.1 answers' lengths), as a link going down drops
the pooled connections a client would reuse. Answers in flight are not cut: a cut mid-answer would be a
lost answer (BedrockAnswerLost, never sent again), which the fault suite covers.
"""

import contextlib
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field

POLL_S = 0.02


class _Answers:
    """Where the answers end in the bytes coming back (Content-Length or chunked HTTP/1.1 answers)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._state = "head"
        self._remaining = 0

    def feed(self, data: bytes) -> int:
        """The number of answers that ended in `data`."""
        self._buffer += data
        ended = 0
        while (step := self._step()) is not None:
            ended += step
        return ended

    def _step(self) -> int | None:
        """One parse step: the answers it ended (0 or 1), or None when it needs more bytes."""
        if self._state == "head":
            return self._head()
        if self._state in ("body", "chunk"):
            taken = min(len(self._buffer), self._remaining)
            self._buffer, self._remaining = self._buffer[taken:], self._remaining - taken
            if self._remaining:
                return None
            finished = self._state == "body"
            self._state = "head" if finished else "size"
            return 1 if finished else 0
        return self._line()

    def _line(self) -> int | None:
        """A chunk's size line, or a line of the trailer after the last chunk."""
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        if self._state == "size":
            size = int(line.split(b";")[0], 16)
            self._state, self._remaining = ("trailer", 0) if size == 0 else ("chunk", size + 2)
            return 0
        if line != b"":
            return 0
        self._state = "head"
        return 1

    def _head(self) -> int | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buffer[:end].decode("latin-1").lower()
        self._buffer = self._buffer[end + 4 :]
        if head.startswith("http/1.1 1"):  # 100 Continue: the answer is still to come
            return 0
        if "transfer-encoding: chunked" in head:
            self._state = "size"
        else:
            length = re.search(r"content-length:\s*(\d+)", head)
            self._remaining, self._state = (int(length.group(1)) if length else 0), "body"
        return 0


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket
    in_flight: bool = False  # a request went up and its answer is not through yet
    answers: _Answers = field(default_factory=_Answers)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, delay_s: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self.delay_s = delay_s
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.connections_accepted = 0
        self._open_listener()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # ------------------------------------------------------------------ control
    def cut(self) -> None:
        self._cut.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes an accept() blocked on it (close alone leaves it waiting, and accepting)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        # Each connection's own pump closes it (the one thread that knows whether a request came up).

    def restore(self) -> None:
        self._cut.clear()
        self._open_listener()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the proxy
    def _open_listener(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: cut or stopped
            if self._cut.is_set() or self._listener is not listener:
                client.close()  # accepted as the cut came: the link is down
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            connection = _Connection(client, upstream)
            with self._lock:
                self._connections.append(connection)
                self.connections_accepted += 1
            threading.Thread(target=self._pump, args=(connection,), daemon=True).start()

    def _pump(self, connection: _Connection) -> None:
        sockets = [connection.client, connection.upstream]
        try:
            while not connection.closed:
                # A short wait: a cut drops an idle connection within POLL_S.
                readable, _, _ = select.select(sockets, [], [], POLL_S)
                if self._cut.is_set() and not connection.in_flight and connection.client not in readable:
                    return  # cut, and nothing on its way up: the link drops it
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is connection.client:
                        if not connection.in_flight and self.delay_s:
                            time.sleep(self.delay_s)  # the link's latency, once per request
                        connection.in_flight = True
                        connection.upstream.sendall(data)
                    else:
                        connection.client.sendall(data)
                        if connection.answers.feed(data):
                            connection.in_flight = False
                            if self._cut.is_set():
                                return  # its answer is through; the link is down now
        except OSError:
            return
        finally:
            connection.close()
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
