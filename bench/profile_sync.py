"""Where the time of one warm POST /v1/invoke goes, end to end on the local stack, as a breakdown.

The stack runs in this process (moto, the local API Gateway, the Lambda service glue and the Bedrock
emulator), so each piece is timed where it runs, with the wall clock every piece shares:
- the client's call (SigV4-signed, as bench/bench_sync.py makes it);
- the local API Gateway: its SigV4 check, the caller's policies and the IAM decision, the event, and the
  invoke of its integration (moto's Lambda service, then the runtime pool);
- the function's process (the RIE and awslambdaric): every AWS call it makes, each one's own time in
  moto and the part of it that is the local stack's authentication and IAM authorization, the Bedrock
  call (the emulator's handler), and the gaps between them (the function's own code);
- whatever is left on the way in and out.

Nothing in the function is changed to be measured: its calls are recognised by its role's access key.
Run: `.venv/bin/python bench/profile_sync.py [calls]` (default 30, after 5 warm-up calls).
"""

import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _stack import percentile, start_stack
from bench_sync import WARMUP, xpi_call
from xpi_tools.emulator.client import EmulatorControl

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
FUNCTION = "SyncInvokeFunction"


@dataclass
class Span:
    kind: str
    name: str
    start: float
    end: float
    thread: int
    who: str = ""
    children: list["Span"] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


class Recorder:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.on = False

    def timed(self, kind: str, name: str, call: Callable[[], Any], who: str = "") -> Any:
        if not self.on:
            return call()
        start = time.perf_counter()
        try:
            return call()
        finally:
            span = Span(kind, name, start, time.perf_counter(), threading.get_ident(), who)
            with self._lock:
                self.spans.append(span)

    def wrap(self, owner: Any, attribute: str, kind: str, name: str | None = None) -> None:
        original = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.timed(kind, name or attribute, lambda: original(*args, **kwargs))

        setattr(owner, attribute, wrapper)


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).split(".")[-1]
    path = str(environ.get("PATH_INFO", ""))
    if path.endswith("/invocations"):
        return "Lambda.Invoke"
    return f"{environ.get('REQUEST_METHOD')} {path}"


def _access_key(environ: dict[str, Any]) -> str:
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    marker = "Credential="
    return header.split(marker, 1)[1].split("/", 1)[0] if marker in header else ""


def instrument(stack: Any, recorder: Recorder) -> None:
    from moto.core.responses import BaseResponse
    from moto.iam.access_control import IAMRequestBase
    from xpi_tools.local import apigateway

    # moto's server: every AWS request, with its operation and the caller's access key.
    server = stack._server._server
    app = server.app

    def timed_app(environ: dict[str, Any], start_response: Any) -> Any:
        if not recorder.on:
            return app(environ, start_response)
        who, operation = _access_key(environ), _operation(environ)
        return recorder.timed("moto", operation, lambda: list(app(environ, start_response)), who)

    server.app = timed_app
    # moto's authentication and authorization of each request (SigV4, then the IAM decision).
    recorder.wrap(BaseResponse, "_authenticate_and_authorize_normal_action", "auth", "authorize")
    recorder.wrap(IAMRequestBase, "check_signature", "auth", "signature")
    recorder.wrap(IAMRequestBase, "check_action_permitted", "auth", "iam decision")
    # The local API Gateway.
    gateway = stack._api
    recorder.wrap(gateway, "handle", "gateway", "handle")
    recorder.wrap(gateway, "_authenticate", "gateway", "SigV4 check")
    recorder.wrap(gateway.directory, "principal_statements", "gateway", "caller's policies")
    recorder.wrap(apigateway, "decide", "gateway", "IAM decision")
    recorder.wrap(gateway, "_event", "gateway", "proxy event")
    recorder.wrap(gateway, "invoke", "gateway", "Lambda API invoke")
    # The Lambda service: the runtime pool's round trip to the function's process.
    recorder.wrap(stack._pool, "invoke", "lambda", "runtime round trip")
    # The commercial side: the emulator's handler.
    service = stack._emulator.service
    recorder.wrap(service, "_handle", "bedrock", "Bedrock (emulator)")


def inside(span: Span, outer: Span) -> bool:
    return outer.start <= span.start and span.end <= outer.end


def breakdown(
    recorder: Recorder, totals: list[tuple[float, float]], function_key: str
) -> dict[str, list[float]]:
    """Per request (the client's call windows), the ms of each part; parts that repeat are summed."""
    rows: dict[str, list[float]] = defaultdict(list)
    spans = sorted(recorder.spans, key=lambda s: s.start)
    for started, ended in totals:
        window = [s for s in spans if started <= s.start and s.end <= ended]
        parts: dict[str, float] = defaultdict(float)
        parts["client: total"] = (ended - started) * 1000
        handle = next((s for s in window if s.kind == "gateway" and s.name == "handle"), None)
        rt = next((s for s in window if s.kind == "lambda"), None)
        invoke = next((s for s in window if s.kind == "gateway" and s.name == "Lambda API invoke"), None)
        if handle is None or rt is None or invoke is None:
            continue
        parts["client <-> gateway (connect, send, read; outside handle)"] = (
            (ended - started) - (handle.end - handle.start)
        ) * 1000
        for s in window:
            if s.kind == "gateway" and s.name not in ("handle", "Lambda API invoke"):
                parts[f"gateway: {s.name}"] += s.ms
        named = sum(s.ms for s in window if s.kind == "gateway" and s.name != "handle")
        parts["gateway: rest of handle (routing, thread, response)"] = handle.ms - named
        lambda_moto = next(
            (s for s in window if s.kind == "moto" and s.name == "Lambda.Invoke" and inside(rt, s)), None
        )
        parts["Lambda service: the invoke, outside the runtime round trip"] = invoke.ms - rt.ms
        if lambda_moto is not None:  # an integration invoked through the Lambda API (an HTTP call to moto)
            parts["Lambda API: boto3 client in the gateway (sign, send, parse)"] = invoke.ms - lambda_moto.ms
            auth = sum(
                a.ms
                for a in window
                if a.name == "authorize" and inside(a, lambda_moto) and a.thread == lambda_moto.thread
            )
            parts["Lambda API: moto authn+IAM of the Invoke"] = auth
            parts["Lambda API: moto Invoke, rest (outside runtime)"] = lambda_moto.ms - rt.ms - auth
            del parts["Lambda service: the invoke, outside the runtime round trip"]
        # Inside the function's process: its AWS calls, Bedrock, and the gaps between them.
        calls = [
            s
            for s in window
            if inside(s, rt) and ((s.kind == "moto" and s.who == function_key) or s.kind == "bedrock")
        ]
        cursor = rt.start
        previous = "invoke received"
        for call in calls:
            parts[f"function code: {previous} -> {call.name}"] += (call.start - cursor) * 1000
            if call.kind == "bedrock":
                parts["Bedrock (emulator handler)"] += call.ms
            else:
                auth = sum(
                    a.ms
                    for a in window
                    if a.name == "authorize" and inside(a, call) and a.thread == call.thread
                )
                sig = sum(
                    a.ms
                    for a in window
                    if a.name == "signature" and inside(a, call) and a.thread == call.thread
                )
                parts[f"AWS call {call.name}: moto, authn (SigV4)"] += sig
                parts[f"AWS call {call.name}: moto, IAM decision"] += auth - sig
                parts[f"AWS call {call.name}: moto, the operation"] += call.ms - auth
            cursor = call.end
            previous = call.name
        parts[f"function code: {previous} -> return (+ RIE)"] += (rt.end - cursor) * 1000
        for name, value in parts.items():
            rows[name].append(value)
    return rows


def main() -> None:
    load_before = os.getloadavg()
    stack = start_stack()
    recorder = Recorder()
    try:
        endpoints = stack.endpoints
        assert endpoints is not None
        EmulatorControl(endpoints.emulator_control).set_latency("*")  # answering at once
        function_key = endpoints.function_credentials[FUNCTION]["AWS_ACCESS_KEY_ID"]
        instrument(stack, recorder)
        call = xpi_call(endpoints)
        for _ in range(WARMUP):
            call()
        recorder.on = True
        totals = []
        for _ in range(CALLS):
            started = time.perf_counter()
            call()
            totals.append((started, time.perf_counter()))
        recorder.on = False
    finally:
        stack.stop()
    rows = breakdown(recorder, totals, function_key)
    load_after = os.getloadavg()
    print(f"POST /v1/invoke taken apart: {CALLS} warm sequential calls, one emulator answering at once")
    print("| part | p50 | mean | p95 | calls |\n|---|---|---|---|---|")
    for name, values in rows.items():
        print(
            f"| {name} | {statistics.median(values):.2f} ms | {statistics.fmean(values):.2f} ms "
            f"| {percentile(values, 0.95):.2f} ms | {len(values)} |"
        )
    calls_per_request = defaultdict(int)
    for span in recorder.spans:
        if span.kind == "moto" and span.who == function_key:
            calls_per_request[span.name] += 1
    print(
        "the function's AWS calls per request: "
        + json.dumps({k: round(v / max(1, CALLS), 2) for k, v in sorted(calls_per_request.items())})
    )
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after {', '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
