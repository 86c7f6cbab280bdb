"""The emulator's HTTP server sends what it writes at once, as Bedrock's endpoints do."""

import asyncio
import socket

from xpi_tools.emulator.httpserver import HttpServer


def test_an_accepted_connection_sends_without_nagles_delay() -> None:
    # GIVEN the emulator's listening socket as it makes it (socket.create_server: proto 0, so asyncio's
    # own TCP_NODELAY does not apply), a stream's head and chunks are written apart; with Nagle's
    # algorithm the chunk waits for a kept-alive client's delayed ACK of the head (40 ms on Linux)
    async def scenario() -> int:
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        http = HttpServer(asyncio.get_running_loop(), handler=None)  # type: ignore[arg-type]
        await http.start(listening)
        _, writer = await asyncio.open_connection(*listening.getsockname())
        try:
            # WHEN a client connects
            while not http.connections:
                await asyncio.sleep(0)
            (connection,) = http.connections
            sock = connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
            return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            writer.close()
            await http.close()

    # THEN its socket has Nagle's algorithm off
    assert asyncio.run(scenario()) != 0
