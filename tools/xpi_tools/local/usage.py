"""The local stack's usage log: every billable unit the stack serves, one JSON line each.

The local stack sees every AWS call its functions, state machines and pollers make, so it can count what
AWS would bill for them. `bench/bench_cost.py` reads the lines written while it drives requests through
the stack and prices them (`xpi_tools.cost`). Each line is one of these kinds:

  call       a signed AWS API call the IAM layer allowed: principal, IAM action, resource
  lambda     one function invocation: function name, measured duration (ms), configured memory (MB)
  dynamodb   the capacity one DynamoDB operation consumed: table, operation, read or write units
  events     the events one PutEvents carried, in 64 KB chunks (EventBridge bills per chunk)
  kms        a KMS request a service made on the caller's behalf (SSE-KMS on an object without an S3
             Bucket Key, a Secrets Manager secret encrypted with the stack key)
  sqs        a poller's ReceiveMessage that returned messages (an empty long poll is the pollers' idle
             cost, not a request's)
  api        a request the local API Gateway handed to its integration (AWS bills no request that
             fails authorization)

Lines carry the principal whose request caused them, where one is known (the IAM layer sets it for the
thread serving the request), so a reader can leave out its own inspection calls.
"""

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

DYNAMODB_WRITE_UNIT_BYTES = 1024
DYNAMODB_READ_UNIT_BYTES = 4096
EVENT_CHUNK_BYTES = 64 * 1024

_current = threading.local()


def set_current_principal(principal: str) -> None:
    """The principal of the request the calling thread is serving (the IAM layer calls this)."""
    _current.principal = principal


def current_principal() -> str:
    return str(getattr(_current, "principal", ""))


def write_units(size_bytes: int) -> int:
    """DynamoDB write units for an item of this size: one per KB or part, at least one."""
    return max(1, math.ceil(size_bytes / DYNAMODB_WRITE_UNIT_BYTES))


def read_units(size_bytes: int) -> int:
    """Strongly consistent read units for this many bytes: one per 4 KB or part, at least one."""
    return max(1, math.ceil(size_bytes / DYNAMODB_READ_UNIT_BYTES))


def event_chunks(entry: Any) -> int:
    """EventBridge bills a PutEvents entry per 64 KB chunk of its JSON."""
    size = len(json.dumps(entry, default=str).encode("utf-8"))
    return max(1, math.ceil(size / EVENT_CHUNK_BYTES))


class UsageLog:
    """Appends usage lines to one file per stack; never fails the request it describes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "principal": current_principal(), **fields}, default=str)
        with self._lock:
            try:
                with self.path.open("a", encoding="utf-8") as log:
                    log.write(line + "\n")
            except OSError:
                _LOG.exception("could not write the usage log %s", self.path)

    def call(self, principal: str, action: str, resource: str | None) -> None:
        self.write("call", **{"principal": principal, "action": action, "resource": resource})

    def invocation(self, function: str, duration_ms: float, memory_mb: int) -> None:
        self.write("lambda", function=function, duration_ms=round(duration_ms, 3), memory_mb=memory_mb)

    def dynamodb(self, table: str, operation: str, *, read: float = 0, write: float = 0) -> None:
        self.write("dynamodb", table=table, operation=operation, read_units=read, write_units=write)


def read_usage(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The lines written since `offset` (a byte position), and the position after them."""
    with path.open("rb") as log:
        log.seek(offset)
        data = log.read()
    complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
    lines = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return lines, offset + len(complete)
