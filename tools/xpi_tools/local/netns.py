"""An egress path behind a network namespace and a veth pair of its own: real network faults for the local
stack's egress paths (docs/network.md, "Proven here, and not").

`NamespacePath` makes a network namespace (`xpi-<hex>`) and a veth pair (`xv<hex>h` on the host, `xv<hex>n`
in the namespace) with a /30 of 10.x addresses, and listens inside the namespace on the namespace's address,
port 443, HTTPS (a certificate for that address from a CA the test makes; the local stack's functions trust
it with `xpi local up --trust-ca`: an egress path endpoint off loopback must be https). A caller on the host
reaches it across the veth pair, through the kernel's routing and netfilter; the listener (its socket made
inside the namespace from a thread switched into it) ends TLS and forwards each connection to the Bedrock
emulator on the host's loopback.

The faults are the kernel's, set inside the namespace only (nothing on the host's tables changes):
- `blackhole()`: `ip route add blackhole <host address>` (every packet back to the host is dropped) and an
  iptables DROP of everything arriving on the namespace's veth: SYNs go unanswered (a connect times out),
  packets of established connections vanish, nothing is refused or reset;
- `set_loss(p)`: iptables `-m statistic --mode random --probability p -j DROP` both ways.

Latency: this kernel has no netem (CONFIG_NET_SCH_NETEM is not set; `tc qdisc add ... netem` answers
"Specified qdisc kind is unknown"; tbf and htb exist but shape a rate, not a delay), so `delay_s` is the
forwarder's userspace delay in the namespace, once for each connection's TLS handshake and once per request
(the round trips a call makes; TCP's own handshake is the kernel's, undelayed): kernel-level are the veth
crossing, the routing, TCP, the drops and the blackhole; the added latency is not.

Needs root (CAP_NET_ADMIN) and `ip`/`iptables`; `unavailable_reason()` says why not, for a clean skip.
Everything made is removed on close (deleting the namespace deletes the veth pair and its rules).
"""

import contextlib
import os
import secrets
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from xpi_tools.certificates import Issued, issue_server

T = TypeVar("T")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"xpi-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.SubprocessError) as error:
        return f"`ip netns add` failed: {getattr(error, 'stderr', '') or error}"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _ip("netns", "del", probe)
    return None


def _free_subnet() -> tuple[str, str]:
    """A /30 in 10.200.0.0-10.250.255.255 that no interface on the host uses: (host, namespace) address."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True).stdout
    for _ in range(100):
        b, c, d = 200 + secrets.randbelow(51), secrets.randbelow(256), 4 * secrets.randbelow(64)
        prefix = f"10.{b}.{c}."
        if f" {prefix}{d + 1}/" not in used and f" {prefix}{d + 2}/" not in used:
            return f"{prefix}{d + 1}", f"{prefix}{d + 2}"
    raise RuntimeError("no free 10.x /30 for a veth pair")


class NamespacePath:
    """One egress path: an HTTPS listener in a namespace of its own, reached over a veth pair, forwarding
    to target (plain HTTP on the host's loopback); faults by iptables and ip route inside that namespace.
    Its certificate (for the namespace's address) is signed by `ca`, which the callers must trust."""

    PORT = 443

    def __init__(self, target_host: str, target_port: int, ca: Issued, delay_s: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self.delay_s = delay_s
        tag = uuid.uuid4().hex[:6]
        self.namespace = f"xpi-{tag}"
        self.host_device, self.namespace_device = f"xv{tag}h", f"xv{tag}n"
        self.host_address, self.host = _free_subnet()
        self._made = False
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._blackholed = False
        self._loss = 0.0
        try:
            _ip("netns", "add", self.namespace)
            self._made = True
            _ip("link", "add", self.host_device, "type", "veth", "peer", "name", self.namespace_device)
            _ip("link", "set", self.namespace_device, "netns", self.namespace)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_device)
            _ip("link", "set", self.host_device, "up")
            self._in_namespace_run("ip", "addr", "add", f"{self.host}/30", "dev", self.namespace_device)
            self._in_namespace_run("ip", "link", "set", self.namespace_device, "up")
            self._in_namespace_run("ip", "link", "set", "lo", "up")
            self._context = _server_context(issue_server(ca, self.host))
            self._listener = self._in_namespace(self._listen)
        except BaseException:
            self._remove()
            raise
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def __enter__(self) -> "NamespacePath":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ faults
    def blackhole(self) -> None:
        """Cut the link: packets either way are dropped, nothing answered, refused or reset."""
        if self._blackholed:
            return
        self._in_namespace_run("ip", "route", "add", "blackhole", f"{self.host_address}/32")
        self._in_namespace_run("iptables", "-I", "INPUT", "-i", self.namespace_device, "-j", "DROP")
        self._blackholed = True

    def reconnect(self) -> None:
        """The link back: the blackhole's route and rule removed."""
        if not self._blackholed:
            return
        self._in_namespace_run("iptables", "-D", "INPUT", "-i", self.namespace_device, "-j", "DROP")
        self._in_namespace_run("ip", "route", "del", "blackhole", f"{self.host_address}/32")
        self._blackholed = False

    def set_loss(self, probability: float) -> None:
        """Drop each packet, either way, with `probability` (0: no loss)."""
        for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
            if self._loss:
                self._in_namespace_run("iptables", "-D", chain, *self._loss_rule(direction, self._loss))
            if probability:
                self._in_namespace_run("iptables", "-A", chain, *self._loss_rule(direction, probability))
        self._loss = probability

    def _loss_rule(self, direction: str, probability: float) -> list[str]:
        statistic = ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.4f}"]
        return [direction, self.namespace_device, *statistic, "-j", "DROP"]

    # ------------------------------------------------------------------ the namespace
    def _in_namespace_run(self, *command: str) -> None:
        _ip("netns", "exec", self.namespace, *command)

    def _in_namespace(self, make: Callable[[], T]) -> T:
        """make() on a thread switched into the namespace (a socket keeps the namespace it was made in)."""
        result: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with open(f"/run/netns/{self.namespace}") as handle:
                    os.setns(handle.fileno(), os.CLONE_NEWNET)
                result.append(make())
            except BaseException as error:
                failure.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.PORT))
        listener.listen(128)
        return listener

    # ------------------------------------------------------------------ the forwarder (userspace)
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One connection: TLS ended here (after delay_s), its requests forwarded to the target, each after
        delay_s."""
        opened = [client]
        try:
            client.settimeout(10)  # the handshake; a blackholed one gives up
            if self.delay_s:
                time.sleep(self.delay_s)  # the link's latency, once for the TLS handshake's round trip
            tls = self._context.wrap_socket(client, server_side=True)
            tls.settimeout(None)
            opened.append(tls)
            upstream = socket.create_connection(self._target, timeout=5)
            upstream.settimeout(None)
            opened.append(upstream)
            with self._lock:
                if self._stop.is_set():
                    return
                self._sockets.update(opened)
            awaiting_request = True
            while not self._stop.is_set():
                readable = [tls] if tls.pending() else select.select([tls, upstream], [], [], 1.0)[0]
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is tls:
                        if awaiting_request and self.delay_s:
                            time.sleep(self.delay_s)  # the link's latency, once per request
                        awaiting_request = False
                        upstream.sendall(data)
                    else:
                        tls.sendall(data)
                        awaiting_request = True
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._sockets.difference_update(opened)
            for sock in reversed(opened):
                with contextlib.suppress(OSError):
                    sock.close()

    def _remove(self) -> None:
        if self._made:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _ip("netns", "del", self.namespace)  # its veth end goes with it, and the pair with that
            self._made = False
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _ip("link", "del", self.host_device)  # only if the namespace was never made

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            opened = list(self._sockets)
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._remove()


def _server_context(certificate: Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(certificate.certificate_pem)
        key.write_bytes(certificate.private_key_pem)
        context.load_cert_chain(cert, key)
    return context
