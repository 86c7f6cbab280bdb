"""Unit tests stay on this machine: connections and name lookups beyond loopback are refused."""

import ipaddress
import socket
from typing import Any

import pytest


class NetworkBlockedError(RuntimeError):
    """A unit test tried to reach a non-loopback address. Not an OSError, so no client retries it."""


def is_loopback_host(host: Any) -> bool:
    if host in (None, "", "localhost", b"localhost"):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return text.endswith(".localhost")


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch socket connect, connect_ex and getaddrinfo (undone by monkeypatch at teardown)."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True  # Unix sockets and friends stay on this machine
        return isinstance(address, tuple) and is_loopback_host(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(self, address):
            raise NetworkBlockedError(f"unit tests may not connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(self, address):
            raise NetworkBlockedError(f"unit tests may not connect to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(host):
            raise NetworkBlockedError(f"unit tests may not resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
