"""Relay connections between a loopback TCP port and a unix socket file (standard library only).

Why: a function under `sam local invoke` runs in a container on Docker's bridge, where 127.0.0.1 is
the container itself, and on some machines containers may reach the host only through unix sockets.
The function's code folder is bind-mounted at /var/task (read-only still allows connect()), so:

    function -> 127.0.0.1:18080 (in the container)   tcp-to-unix, started by /var/runtime/bootstrap
             -> /var/task/.xpi-aws.sock               the same file on the host, in the build folder
             -> 127.0.0.1:<port> (on the host)        unix-to-tcp, started by the test or local_invoke.py

    loopback_forward.py tcp-to-unix 18080=/var/task/.xpi-aws.sock,18600=/var/task/.xpi-br.sock --background
    loopback_forward.py unix-to-tcp /path/to/.xpi-aws.sock=127.0.0.1:4566

--background returns once every listener is bound (so the caller can use the ports at once) and
keeps relaying in a forked child. Each connection is relayed by two threads, one per direction.
"""

from __future__ import annotations

import os
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path

LOOPBACK = "127.0.0.1"


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until end of file, then pass the end of file on (half-close)."""
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Relay(socketserver.BaseRequestHandler):
    server: _TcpToUnix | _UnixToTcp

    def handle(self) -> None:
        try:
            upstream = self.server.connect_upstream()
        except OSError as exc:
            print(f"loopback-forward: cannot reach {self.server.target}: {exc}", file=sys.stderr, flush=True)
            return
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
            back.start()
            _pipe(self.request, upstream)
            back.join()


class _TcpToUnix(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Listens on 127.0.0.1:port, connects to a unix socket file."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: str) -> None:
        self.target = target
        super().__init__((LOOPBACK, port), _Relay)

    def connect_upstream(self) -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.target)
        except OSError:
            upstream.close()
            raise
        return upstream


class _UnixToTcp(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Listens on a unix socket file, connects to a TCP port on the host's loopback."""

    daemon_threads = True

    def __init__(self, path: str, target: tuple[str, int]) -> None:
        if target[0] != LOOPBACK:
            raise ValueError(f"only loopback targets are forwarded, not {target[0]}")
        self.target = target
        with suppress(FileNotFoundError):
            os.unlink(path)  # a socket file left by an earlier run
        super().__init__(path, _Relay)

    def connect_upstream(self) -> socket.socket:
        return socket.create_connection(self.target, timeout=10)

    def server_close(self) -> None:
        super().server_close()
        with suppress(FileNotFoundError):
            os.unlink(self.server_address)  # type: ignore[arg-type]


Server = _TcpToUnix | _UnixToTcp


def tcp_to_unix(port: int, socket_path: str) -> Server:
    return _TcpToUnix(port, socket_path)


def unix_to_tcp(socket_path: str | Path, host: str, port: int) -> Server:
    return _UnixToTcp(str(socket_path), (host, port))


class Forwards:
    """Several listeners served by threads of this process; close() stops them and removes socket files."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        # shutdown() waits up to one poll interval (0.5 s): stop them all at once, not one by one.
        stoppers = [threading.Thread(target=server.shutdown) for server in self.servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self.servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Forwards:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def parse(mode: str, spec: str) -> list[Callable[[], Server]]:
    """`PORT=SOCKET,...` (tcp-to-unix) or `SOCKET=HOST:PORT,...` (unix-to-tcp) -> server factories."""
    factories: list[Callable[[], Server]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        left, sep, right = item.partition("=")
        if not sep:
            raise ValueError(f"expected A=B, got {item!r}")
        if mode == "tcp-to-unix":
            factories.append(partial(tcp_to_unix, int(left), right))
        elif mode == "unix-to-tcp":
            host, _, port = right.rpartition(":")
            factories.append(partial(unix_to_tcp, left, host, int(port)))
        else:
            raise ValueError(f"unknown mode {mode!r}")
    return factories


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in {"tcp-to-unix", "unix-to-tcp"}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        servers = [make() for make in parse(argv[0], argv[1])]
    except (OSError, ValueError) as exc:
        print(f"loopback-forward: {exc}", file=sys.stderr, flush=True)
        return 1
    if "--background" in argv[2:] and os.fork() > 0:
        os._exit(0)  # the parent: every listener is bound; the child relays
    forwards = Forwards(servers)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        forwards.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
