"""The namespace links the egress path tests cut (xpi_tools.local.netns): HTTPS across a veth pair, a
blackhole and total loss that answer nothing (a connect times out, nothing is refused), the link back, and
nothing left behind. No stack: a loopback server stands for the emulator. Root only (network namespaces)."""

import http.server
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from xpi_tools.certificates import Issued, make_ca
from xpi_tools.local.netns import NamespacePath, unavailable_reason

NO_NAMESPACES = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(NO_NAMESPACES is not None, reason=f"real network faults: {NO_NAMESPACES}"),
]


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def _get(path: NamespacePath, trusted: ssl.SSLContext) -> int:
    with urllib.request.urlopen(path.url, timeout=5, context=trusted) as response:
        return int(response.status)


def _connect_times_out(path: NamespacePath) -> bool:
    try:
        socket.create_connection((path.host, path.PORT), timeout=1).close()
    except TimeoutError:
        return True
    return False


def test_a_namespace_link_carries_https_blackholes_drops_and_leaves_nothing(
    target: int, tmp_path: Path
) -> None:
    ca: Issued = make_ca("netns test CA")
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    with NamespacePath("127.0.0.1", target, ca) as path:
        # GIVEN a link whose HTTPS answer comes across the veth pair, verified against the test's CA
        assert not path.host.startswith("127.")
        assert _get(path, trusted) == 200

        # WHEN it is blackholed THEN a connect times out (nothing refused); back, it answers again
        path.blackhole()
        assert _connect_times_out(path)
        path.reconnect()
        assert _get(path, trusted) == 200

        # WHEN every packet is lost THEN the same; without loss, it answers
        path.set_loss(1.0)
        assert _connect_times_out(path)
        path.set_loss(0)
        assert _get(path, trusted) == 200
        namespace, device = path.namespace, path.host_device

    # THEN the namespace and the veth pair are gone
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert namespace not in namespaces and device not in links
