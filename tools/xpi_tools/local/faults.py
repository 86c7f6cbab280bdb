"""The local stack's fault hooks and its control endpoint (`control` in the state file).

Two faults the emulator cannot make, because they are not Bedrock's:

- **a function's runtime killed mid-run**: the next N invocations of a function are killed either once
  the handler has returned (every side effect done, the answer not delivered) or right after one of
  its AWS calls has been carried out (say the lineage table's `UpdateItem`), before the answer reaches
  the runtime. The invoke then fails as on Lambda: `FunctionError: Unhandled` with
  `{"errorType": "Runtime.ExitError", "errorMessage": "... Runtime exited with error: signal: killed"}`,
  which Step Functions reports as the error `Runtime.ExitError`.
- **a function refused by the Lambda service**: every invocation of a function whose payload contains
  a given text is answered as Lambda answers a throttled function (HTTP 429
  `TooManyRequestsException`, as with its reserved concurrency at 0), before any runtime runs it;
  Step Functions reports `Lambda.TooManyRequestsException` (gap 33). Armed for N such invocations.
- **the AWS API gone for a while**: for N seconds every request signed by a function's execution role
  (what the functions and their SQS pollers send) is answered HTTP 503 `ServiceUnavailable`, as an
  AWS endpoint in trouble answers. moto keeps its state meanwhile: a restart that wiped it would be
  nothing AWS does.

Control endpoint (loopback HTTP, JSON):

    POST   /faults/kill-runtime  {"function": "<logical id or name>", "count": N,
                                  "after": "return" | "<API operation, e.g. UpdateItem>",
                                  "body_contains": "<text the request body must contain>"}
    POST   /faults/refuse-invoke {"function": "<logical id or name>", "count": N,
                                  "body_contains": "<text the invocation's payload must contain>"}
    POST   /faults/aws-outage    {"seconds": S, "whole_region": false}
    GET    /faults               what is armed, and how often each fault fired
    DELETE /faults               clears every fault
    GET    /memory               the stack process's memory and the AWS state moto retains (the soak)
    POST   /memory/trace         {"frames": N}: start tracing Python allocations (tracemalloc)
    GET    /memory/trace         the allocation sites grown most since the previous GET (or the start)
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
import types
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["ControlClient", "InvokeRefusal", "LocalControl", "LocalFaults", "RuntimeKill", "retained_state"]

_LOG = logging.getLogger(__name__)
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class RuntimeKill:
    """Kill the next `remaining` invocations of `function` at the point `after`."""

    function: str  # the deployed function name
    remaining: int
    after: str = "return"  # "return", or the API operation after which the runtime is killed
    body_contains: str = ""  # with an operation: only a request whose body contains this
    fired: int = 0


@dataclass
class InvokeRefusal:
    """Refuse the next `remaining` invocations of `function` whose payload contains `body_contains`."""

    function: str  # the deployed function name
    remaining: int
    body_contains: str = ""
    fired: int = 0


_INVOCATIONS = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")


class LocalFaults:
    """The armed faults; consulted by the runtime pool (after each answer) and by moto's front (per
    request). Both checks cost a lock-free attribute read while nothing is armed."""

    def __init__(self) -> None:
        self._function_keys: dict[str, str] = {}  # execution role access key id -> function name
        self._function_names: dict[str, str] = {}  # logical id -> function name
        self._lock = threading.Lock()
        self._kills: list[RuntimeKill] = []
        self._refusals: list[InvokeRefusal] = []
        self._outage_until = 0.0
        self._outage_whole_region = False  # every caller refused, not only the functions (two regions)
        self.outage_answered: dict[str, int] = {}  # function name -> requests answered 503
        self._kill_caller: Callable[[str, int], bool] = lambda _function, _port: False

    def attach(
        self,
        kill_caller: Callable[[str, int], bool],
        function_keys: Mapping[str, str],
        function_names: Mapping[str, str],
    ) -> None:
        """The deployed functions (their roles' access key ids and logical ids -> function names) and the
        runtime pool's way to kill the runtime that holds a connection."""
        self._kill_caller = kill_caller
        self._function_keys = dict(function_keys)
        self._function_names = dict(function_names)

    # -- arming -------------------------------------------------------------------------------------

    def arm_kill(
        self, function: str, count: int, after: str = "return", body_contains: str = ""
    ) -> RuntimeKill:
        name = self._function_names.get(function, function)
        if name not in self._function_names.values():
            raise ValueError(f"no function {function!r} in this stack")
        if count < 1 or not after:
            raise ValueError("count must be at least 1 and after must name a point")
        kill = RuntimeKill(name, count, after, body_contains)
        with self._lock:
            self._kills.append(kill)
        return kill

    def arm_refusal(self, function: str, count: int, body_contains: str = "") -> InvokeRefusal:
        name = self._function_names.get(function, function)
        if name not in self._function_names.values():
            raise ValueError(f"no function {function!r} in this stack")
        if count < 1:
            raise ValueError("count must be at least 1")
        refusal = InvokeRefusal(name, count, body_contains)
        with self._lock:
            self._refusals.append(refusal)
        return refusal

    def start_outage(self, seconds: float, *, whole_region: bool = False) -> None:
        """The AWS API answers 503 for `seconds`: to the functions and their pollers, or with
        `whole_region` to every caller (producers, the state machines, the operator): the region out of
        reach, its state kept, as the two-region failover test plays a region's outage."""
        if not 0 < seconds <= 600:
            raise ValueError("an outage lasts between 0 and 600 seconds")
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_whole_region = whole_region

    def clear(self) -> None:
        with self._lock:
            self._kills = []
            self._refusals = []
            self._outage_until = 0.0
            self._outage_whole_region = False

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "kills": [asdict(kill) for kill in self._kills],
                "refusals": [asdict(refusal) for refusal in self._refusals],
                "outage_left_s": max(self._outage_until - time.monotonic(), 0.0),
                "outage_whole_region": self._outage_whole_region,
                "outage_answered": dict(self.outage_answered),
            }

    # -- the runtime pool's hook --------------------------------------------------------------------

    def take_return_kill(self, function_name: str) -> bool:
        """Whether this answer of `function_name` is to be lost to a killed runtime (counted once)."""
        if not self._kills:
            return False
        with self._lock:
            for kill in self._kills:
                if kill.function == function_name and kill.after == "return" and kill.remaining > 0:
                    kill.remaining -= 1
                    kill.fired += 1
                    return True
        return False

    # -- moto's front -------------------------------------------------------------------------------

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """moto's WSGI application with the faults in front of it."""

        def front(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not self._kills and not self._outage_until:
                return app(environ, start_response)
            match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
            function = self._function_keys.get(match.group(1)) if match else None
            if time.monotonic() < self._outage_until and (function or self._refuses_everyone(environ)):
                _read_body(environ)  # a keep-alive connection must not see it as the next request
                caller = function or "(any other caller)"
                with self._lock:
                    self.outage_answered[caller] = self.outage_answered.get(caller, 0) + 1
                return _service_unavailable(environ, start_response)
            if function is None:
                return app(environ, start_response)
            armed = [k for k in self._kills if k.function == function and k.after != "return" and k.remaining]
            if not armed:
                return app(environ, start_response)
            body = _read_body(environ)
            operation = _operation(environ, body)
            kill = next(
                (k for k in armed if k.after == operation and k.body_contains.encode() in body),
                None,
            )
            if kill is None:
                return app(environ, start_response)
            return self._kill_after_call(app, environ, start_response, kill)

        def refusing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # (an invocation comes from whoever invokes: Step Functions' role, not the function's)
            if self._refusals and self._refused(environ):
                return _too_many_requests(start_response)
            return front(environ, start_response)

        return refusing

    def _refuses_everyone(self, environ: dict[str, Any]) -> bool:
        """A whole-region outage refuses every caller, but not moto's own API (the stack's)."""
        return self._outage_whole_region and not str(environ.get("PATH_INFO", "")).startswith("/moto-api/")

    def _refused(self, environ: dict[str, Any]) -> bool:
        """Whether this request is an invocation an armed refusal takes (counted once)."""
        invocation = _INVOCATIONS.match(environ.get("PATH_INFO", ""))
        if invocation is None or environ.get("REQUEST_METHOD") != "POST":
            return False
        # FunctionName may be a name, an ARN or a partial ARN: its last part after "function:" is the name
        named = invocation.group("function").split(":function:")[-1].split(":")[0]
        armed = [r for r in self._refusals if r.function == named and r.remaining > 0]
        if not armed:
            return False
        body = _read_body(environ)
        with self._lock:
            for refusal in armed:
                if refusal.body_contains.encode() in body and refusal.remaining > 0:
                    refusal.remaining -= 1
                    refusal.fired += 1
                    return True
        return False

    def _kill_after_call(
        self, app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any], kill: RuntimeKill
    ) -> Iterable[bytes]:
        """Carry the request out, then kill the runtime that sent it before the answer reaches it."""
        captured: list[Any] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured[:] = [status, headers]
            return lambda _data: None

        chunks = list(app(environ, capture))
        if captured and captured[0].startswith("2"):
            with self._lock:
                take = kill.remaining > 0
                if take:
                    kill.remaining -= 1
            if take:
                if self._kill_caller(kill.function, int(environ.get("REMOTE_PORT") or 0)):
                    with self._lock:
                        kill.fired += 1
                else:  # not found (already gone): the next matching call is killed instead
                    with self._lock:
                        kill.remaining += 1
        start_response(*captured)
        return chunks


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _operation(environ: dict[str, Any], body: bytes) -> str:
    """The API operation of a request: X-Amz-Target's (JSON protocols), else the query protocol's
    Action, else the HTTP method (REST protocols such as S3's)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return str(target.rsplit(".", 1)[-1])
    fields = parse_qs(environ.get("QUERY_STRING", ""))
    if "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        fields.update(parse_qs(body.decode("utf-8", "replace")))
    if "Action" in fields:
        return str(fields["Action"][0])
    return str(environ.get("REQUEST_METHOD", ""))


def _too_many_requests(start_response: Callable[..., Any]) -> Iterable[bytes]:
    """What the Lambda service answers an invoke of a function it throttles (reserved concurrency 0)."""
    body = json.dumps(
        {
            "Type": "User",
            "message": "Rate Exceeded. (the local stack's refused-invoke fault)",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
    ).encode()
    start_response(
        "429 Too Many Requests",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", "TooManyRequestsException"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [body]


def _service_unavailable(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    message = "Service Unavailable (the local stack's AWS outage fault)"
    request_id = str(uuid.uuid4())
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": "ServiceUnavailable", "message": message}).encode()
        content_type = "application/x-amz-json-1.0"
    else:
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    start_response(
        "503 Service Unavailable",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
        ],
    )
    return [body]


# ------------------------------------------------------------------------------------------------
# Memory: what the soak samples


# Python 3.13 keeps a plain instance's attributes inline, after the object, until something asks for its
# __dict__: sys.getsizeof counts neither.
_INLINE_VALUES = 1 << 2  # Py_TPFLAGS_INLINE_VALUES


def _inline_values_size(obj: Any, referents: list[Any]) -> int:
    """A lower bound of the bytes an instance's inline attribute values take (a header, a pointer each,
    rounded to pymalloc's 16 bytes); 0 once its __dict__ exists (then counted as a dict)."""
    if not type(obj).__flags__ & _INLINE_VALUES or any(type(r) is dict for r in referents):
        return 0
    values = sum(1 for r in referents if not isinstance(r, type))
    return -(-(8 + 8 * max(values, 1)) // 16) * 16


_SMALL_REQUEST = 512  # pymalloc serves requests up to this size, in 16-byte size classes


def _allocated(size: int) -> int:
    """The bytes the allocator hands out for an object of `size` bytes: pymalloc's 16-byte size class up
    to 512 bytes, glibc's chunk above (its 8-byte header, in 16-byte steps)."""
    if size <= _SMALL_REQUEST:
        return -(-size // 16) * 16
    return -(-(size + 8) // 16) * 16


def _deep_size(roots: Iterable[Any]) -> int:
    """Bytes Python holds for the objects reachable from `roots` (containers and whatever an object
    refers to, as the garbage collector sees it), each object once; modules, classes, functions,
    threads and locks are not followed. An instance's attributes are reached through gc.get_referents,
    not vars(): on Python 3.13 vars() would give every instance a __dict__ it did not have (about 64
    bytes more each), so the walk itself made the process grow with the state it measured. Each object
    counts the block the allocator gave it (sys.getsizeof rounded up to its size class): otherwise about
    a tenth of moto's state, small objects most, counted as the stack's own growth."""
    seen: set[int] = set()
    pending = list(roots)
    total = 0
    skip = (
        type,
        types.ModuleType,
        types.FunctionType,
        types.MethodType,
        types.BuiltinFunctionType,
        threading.Thread,
    )
    while pending:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        try:
            size = sys.getsizeof(obj)
        except TypeError:
            continue
        if isinstance(obj, dict):
            pending.extend(obj.keys())
            pending.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            pending.extend(obj)
        elif not (isinstance(obj, str | bytes | bytearray | int | float | bool) or obj is None):
            referents = gc.get_referents(obj)
            size += _inline_values_size(obj, referents)
            pending.extend(referents)
        total += _allocated(size)
    return total


def retained_state() -> dict[str, int]:
    """The AWS state moto retains (what AWS keeps for the account: items, objects, queues' messages,
    executions and their histories, events, metric data), in bytes per service, as Python holds it.
    CloudWatch's metric data (the monitoring glue's, monitoring.py) is kept KEEP_DATA_S locally, 15
    months on AWS."""
    from moto.awslambda.models import lambda_backends
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.dynamodb.models import dynamodb_backends
    from moto.events.models import events_backends
    from moto.logs.models import logs_backends
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    services: dict[str, Any] = {
        "dynamodb": dynamodb_backends,
        "s3": s3_backends,
        "sqs": sqs_backends,
        # the executing interpreter's backend holds the executions and their histories
        "stepfunctions": [stepfunctions_backends, stepfunctions_parser_backends],
        "events": events_backends,
        "lambda": lambda_backends,
        "logs": logs_backends,
        "cloudwatch": cloudwatch_backends,
    }
    sizes: dict[str, int] = {}
    for name, backends in services.items():
        for attempt in range(3):  # a dict changing size under the walk: try again
            try:
                roots = [
                    backend
                    for store in (backends if isinstance(backends, list) else [backends])
                    for account in store.values()
                    for backend in account.values()
                ]
                sizes[name] = _deep_size(roots)
                break
            except RuntimeError:
                if attempt == 2:
                    sizes[name] = -1
    return sizes


def glue_state(roots: Mapping[str, Any]) -> dict[str, int]:
    """Bytes Python holds for the stack's own parts (not AWS state): the IAM call log, the monitoring
    glue, the runtime pool, the emulator's state and its counters, ..., each walked as retained_state
    walks moto's backends (an object two parts share counts in both), for telling which of them grows."""
    sizes: dict[str, int] = {}
    for name, root in roots.items():
        for attempt in range(3):  # a dict changing size under the walk: try again
            try:
                sizes[name] = _deep_size([root])
                break
            except RuntimeError:
                if attempt == 2:
                    sizes[name] = -1
    return sizes


def step_functions_split() -> dict[str, int]:
    """The Step Functions executions' retained bytes split: each execution's history (its event
    manager: what GetExecutionHistory answers, which AWS keeps) and the rest of the interpreter's
    environment moto keeps after the execution ended (its stack, heap, frames, context)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    histories: list[Any] = []
    environments: list[Any] = []
    with contextlib.suppress(RuntimeError):
        for account in list(stepfunctions_parser_backends.values()):
            for backend in list(account.values()):
                for machine in list(backend.state_machines):
                    for execution in list(getattr(machine, "executions", [])):
                        env = getattr(getattr(execution, "exec_worker", None), "env", None)
                        if env is not None:
                            histories.append(env.event_manager)
                            environments.append(env)
    history = _deep_size(histories)
    # the environment's own walk reaches its event manager too: counted once, as history
    return {"history": history, "environment_besides_history": _deep_size(environments) - history}


def pymalloc_bytes() -> dict[str, int]:
    """pymalloc's own account (sys._debugmallocstats, written to fd 2, read back here): its arenas,
    the bytes in blocks in use, and the free blocks and pools it keeps within them."""
    wanted = {
        "# bytes in allocated blocks": "in_use",
        "# bytes in available blocks": "free_blocks",
        "unused pools": "free_pools",
        "bytes/arena": "arenas",
    }
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        for line in capture.read().decode(errors="replace").splitlines():
            for marker, name in wanted.items():
                if marker in line and "=" in line and name not in found:
                    found[name] = int(line.rsplit("=", 1)[1].strip().replace(",", ""))
    return found


def process_rss_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _os_threads() -> int:
    with contextlib.suppress(OSError):
        return len(list(Path("/proc/self/task").iterdir()))
    return 0


def malloc_bytes() -> dict[str, int]:
    """glibc's own account of the C heap (every arena): bytes handed out and still in use, bytes free
    but kept, bytes in chunks mapped on their own (mallinfo2)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        return {
            "in_use": int(info.uordblks) + int(info.hblkhd),
            "free": int(info.fordblks),
            "mapped_chunks": int(info.hblkhd),
        }
    return {}


_GUARD = 4096
_STACK = 8 * 2**20


def thread_stack_mappings() -> int:
    """How many thread stacks the process has mapped, live threads' and glibc's cached ones: an 8 MiB
    read-write mapping right above its 4 KiB guard page (an 8 MiB mapping without one is something
    else: glibc's heaps leave such pieces)."""
    count, previous = 0, (0, 0, "")
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split()
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if len(fields) == 5 and _is_stack(start, end, fields[1], previous):
                count += 1
            previous = (start, end, fields[1])
    return count


def _is_stack(start: int, end: int, permissions: str, previous: tuple[int, int, str]) -> bool:
    before_start, before_end, before_permissions = previous
    return (
        end - start == _STACK
        and permissions.startswith("rw")
        and before_end == start
        and before_end - before_start == _GUARD
        and before_permissions.startswith("---")
    )


def rss_by_mapping() -> dict[str, int]:
    """The resident set by kind of mapping (/proc/self/smaps): the main heap, thread stacks (an 8 MiB
    mapping above its guard page), other anonymous memory (pymalloc's arenas, glibc's thread arenas
    and large chunks), and files (code, shared libraries)."""
    kinds = {"heap": 0, "thread_stacks": 0, "anonymous": 0, "files": 0}
    kind, previous = "files", (0, 0, "")
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/smaps").read_text().splitlines():
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                start, end = (int(part, 16) for part in first.split("-"))
                fields = line.split()
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name.startswith("/"):
                    kind = "files"
                elif not name and _is_stack(start, end, fields[1], previous):
                    kind = "thread_stacks"
                else:
                    kind = "anonymous"
                previous = (start, end, fields[1])
            elif first == "Rss:":
                kinds[kind] += int(line.split()[1]) * 1024
    return kinds


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (as MALLOC_ARENA_MAX would), before its threads start.
    The stack runs hundreds of short-lived threads (executions waiting for a runtime); glibc gives
    threads up to eight arenas per core, and the free chunks each keeps between long-lived allocations
    (moto's state) stay resident: the soak's "allocators' slack", which grew with the requests served.
    Python's small objects are pymalloc's (under the GIL), so fewer arenas cost no contention that
    matters. False where glibc's mallopt is not there."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def keep_large_allocations_mapped(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (as MALLOC_MMAP_THRESHOLD_ would): every allocation of at least
    `threshold` bytes gets pages of its own, handed back to the kernel when freed. glibc otherwise raises
    the threshold to the size of each mapped chunk freed (up to 32 MiB): once the deploy has freed a
    function's code zip, request bodies, Lambda payloads and the soak's 205 KB messages come from the
    heap instead, and the holes they leave between moto's long-lived state stay resident (the soak's
    allocators' slack, glibc's free bytes, grew with the requests served). False where glibc's mallopt
    is not there."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def release_free_heap() -> None:
    """Collect garbage and hand the allocator's free pages back to the kernel (glibc's malloc_trim), so
    the resident set counts what the process holds, not what it once held: the stack's many
    short-lived threads leave freed memory in glibc's arenas (tens of MiB per hundred requests)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_report(with_types: bool = False, glue: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stack process's resident memory (after release_free_heap), the AWS state moto retains within
    it, and (for finding what else grows) its thread count and Python objects, by type when asked."""
    untrimmed = process_rss_bytes()
    release_free_heap()
    # read before the walks below: their own garbage would count otherwise
    resident = process_rss_bytes()
    malloc, mappings, small = malloc_bytes(), rss_by_mapping(), pymalloc_bytes()
    state = retained_state()
    split = step_functions_split()
    glue_sizes = glue_state(glue or {})
    objects = gc.get_objects()
    count = len(objects)
    types_counted = _count_types(objects) if with_types else None
    del objects
    report: dict[str, Any] = {
        "rss_bytes": resident,
        "rss_before_release_bytes": untrimmed,
        "retained_state_bytes": state,
        "threads": threading.active_count(),
        # every thread of the process, Python's or not (a thread whose Python part has ended but which
        # has not exited yet still has its stack)
        "os_threads": _os_threads(),
        "thread_stack_mappings": thread_stack_mappings(),
        "gc_objects": count,
        "malloc_bytes": malloc,
        "pymalloc_bytes": small,
        "step_functions_bytes": split,
        "glue_bytes": glue_sizes,
        "rss_by_mapping_bytes": mappings,
        "python_traced_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
    }
    if types_counted is not None:
        report["types"] = types_counted
    return report


class AllocationTrace:
    """tracemalloc on demand, for finding what grows: each `growth()` diffs against the previous one.

    Off until `start()` (tracing costs CPU and memory for every allocation); the soak turns it on past
    its warm-up with XPI_SOAK_TRACE=1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._previous: tracemalloc.Snapshot | None = None

    def start(self, frames: int) -> dict[str, Any]:
        with self._lock:
            if not tracemalloc.is_tracing():
                tracemalloc.start(max(1, min(frames, 50)))
            self._previous = self._snapshot()
            return {"tracing": True, "traced_bytes": tracemalloc.get_traced_memory()[0]}

    @staticmethod
    def _snapshot() -> tracemalloc.Snapshot:
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )

    def growth(self, top: int = 25) -> dict[str, Any]:
        with self._lock:
            if not tracemalloc.is_tracing() or self._previous is None:
                return {"tracing": False, "sites": []}
            current = self._snapshot()
            diffs = current.compare_to(self._previous, "traceback")
            self._previous = current
            sites = [
                {
                    "size_diff_bytes": diff.size_diff,
                    "count_diff": diff.count_diff,
                    "size_bytes": diff.size,
                    "traceback": [f"{frame.filename}:{frame.lineno}" for frame in diff.traceback],
                }
                for diff in diffs[:top]
            ]
            return {
                "tracing": True,
                "traced_bytes": tracemalloc.get_traced_memory()[0],
                "grown_bytes": sum(d.size_diff for d in diffs),
                "sites": sites,
            }


def _count_types(objects: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in objects:
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:300])


# ------------------------------------------------------------------------------------------------
# The control endpoint


class LocalControl:
    """The stack's control endpoint on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, faults: LocalFaults, glue: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.faults = faults
        # the stack's own parts GET /memory sizes (glue_bytes), by name
        self.glue: Callable[[], Mapping[str, Any]] = glue or dict
        self.trace = AllocationTrace()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        faults, trace, glue = self.faults, self.trace, self.glue

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:  # quiet
                pass

            def _answer(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                parsed = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(parsed, dict):
                    raise ValueError("the body must be a JSON object")
                return parsed

            def do_GET(self) -> None:
                if self.path == "/faults":
                    self._answer(200, faults.describe())
                elif self.path in {"/memory", "/memory?types=1"}:
                    self._answer(200, memory_report(self.path.endswith("types=1"), glue()))
                elif self.path == "/memory/trace":
                    self._answer(200, trace.growth())
                else:
                    self._answer(404, {"message": f"no {self.path}"})

            def do_DELETE(self) -> None:
                if self.path == "/faults":
                    faults.clear()
                    self._answer(200, faults.describe())
                else:
                    self._answer(404, {"message": f"no {self.path}"})

            def do_POST(self) -> None:
                try:
                    body = self._json()
                    if self.path == "/faults/kill-runtime":
                        kill = faults.arm_kill(
                            str(body["function"]),
                            int(body.get("count", 1)),
                            str(body.get("after", "return")),
                            str(body.get("body_contains", "")),
                        )
                        self._answer(200, asdict(kill))
                    elif self.path == "/faults/refuse-invoke":
                        refusal = faults.arm_refusal(
                            str(body["function"]),
                            int(body.get("count", 1)),
                            str(body.get("body_contains", "")),
                        )
                        self._answer(200, asdict(refusal))
                    elif self.path == "/faults/aws-outage":
                        faults.start_outage(
                            float(body["seconds"]), whole_region=bool(body.get("whole_region", False))
                        )
                        self._answer(200, faults.describe())
                    elif self.path == "/memory/trace":
                        self._answer(200, trace.start(int(body.get("frames", 8))))
                    else:
                        self._answer(404, {"message": f"no {self.path}"})
                except (KeyError, ValueError, TypeError) as exc:
                    self._answer(400, {"message": str(exc)})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-control", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ControlClient:
    """The control endpoint, from a test or a script: `ControlClient(state["control"])`."""

    def __init__(self, url: str) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the control endpoint is on loopback, not {url!r}")
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback http only (checked above)
            self.url + path,
            data=json.dumps(payload).encode() if payload is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read())

    def kill_runtime(self, function: str, count: int, after: str = "return", body_contains: str = "") -> Any:
        return self._call(
            "POST",
            "/faults/kill-runtime",
            {"function": function, "count": count, "after": after, "body_contains": body_contains},
        )

    def refuse_invoke(self, function: str, count: int, body_contains: str = "") -> Any:
        return self._call(
            "POST",
            "/faults/refuse-invoke",
            {"function": function, "count": count, "body_contains": body_contains},
        )

    def aws_outage(self, seconds: float, *, whole_region: bool = False) -> Any:
        return self._call("POST", "/faults/aws-outage", {"seconds": seconds, "whole_region": whole_region})

    def faults(self) -> Any:
        return self._call("GET", "/faults")

    def clear(self) -> Any:
        return self._call("DELETE", "/faults")

    def memory(self, with_types: bool = False) -> Any:
        return self._call("GET", "/memory?types=1" if with_types else "/memory")

    def start_allocation_trace(self, frames: int = 8) -> Any:
        return self._call("POST", "/memory/trace", {"frames": frames})

    def allocation_growth(self) -> Any:
        """The allocation sites grown most since the previous call (tracemalloc, once started)."""
        return self._call("GET", "/memory/trace")
