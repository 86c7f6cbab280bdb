"""Makes a request the way a function calls an AWS API: connects to 127.0.0.1:event["port"], sends a
line, and returns the answer; a test can kill the runtime while it waits for it."""

import socket
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", int(event["port"])), timeout=10) as connection:
        connection.sendall(b"request\n")
        return {"answer": connection.recv(100).decode()}
