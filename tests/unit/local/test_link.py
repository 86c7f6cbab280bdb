"""The loopback link the egress path tests cut and delay (xpi_tools.local.link)."""

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from xpi_tools.local.link import TcpProxy, _Answers

from tests.helpers.waiting import wait_until

ANSWERS = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 3, 7, len(ANSWERS)])
def test_the_end_of_each_answer_is_found_however_the_bytes_arrive(size: int) -> None:
    answers = _Answers()

    ended = sum(answers.feed(ANSWERS[i : i + size]) for i in range(0, len(ANSWERS), size))

    assert ended == 3


@pytest.fixture
def server() -> Iterator[int]:
    class Answering(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port
    httpd.shutdown()


def test_a_cut_refuses_new_connections_and_drops_pooled_ones_until_restored(server: int) -> None:
    with TcpProxy("127.0.0.1", server) as link:
        pool = urllib3.PoolManager(retries=False)
        assert pool.request("GET", f"{link.url}/").data == b"ok"

        # WHEN the link is cut, THEN the pooled connection is dropped and a new one refused
        link.cut()
        wait_until(lambda: link.open_connections == 0, 2, what="the idle connection dropped")
        with pytest.raises(urllib3.exceptions.NewConnectionError):
            pool.request("GET", f"{link.url}/")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", link.port), timeout=1)

        # WHEN it is restored, THEN it carries requests again
        link.restore()
        assert pool.request("GET", f"{link.url}/").data == b"ok"


def test_a_delay_is_added_once_per_request(server: int) -> None:
    with TcpProxy("127.0.0.1", server, delay_s=0.05) as link:
        pool = urllib3.PoolManager(retries=False)
        started = time.monotonic()
        pool.request("GET", f"{link.url}/")

        assert time.monotonic() - started >= 0.05
