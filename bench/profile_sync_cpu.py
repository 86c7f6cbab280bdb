"""The sync path's own CPU per call: POST /v1/invoke's handler run warm in a process of its own, as its
Lambda runtime runs it (the runtime's Python, the built code folder first on the path, the function's
environment and role), against the local stack (moto, the Bedrock emulator) answering at once.

bench/profile_sync.py times one call's parts on the wall clock, where a busy machine stretches every
hand-off; this measures what the function's code itself burns: the CPU of the process running the handler
(time.process_time: moto's server and the emulator run in another process), per call; with `--profile`,
also a cProfile of those calls (which stretches them, so its CPU figure is not the one to quote): the top
functions by their own time and by cumulative time.

The event is the one the local API Gateway built for a real signed call (captured on its way to the
runtime), with a new request id per call. `--build DIR` runs another build's code (e.g. a copy of main's
.aws-sam/build), for a before and after in the same hour. Run:
`.venv/bin/python bench/profile_sync_cpu.py [calls] [--profile] [--build DIR]` (default 300 calls after
30 warm-up calls).
"""

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

FUNCTION = "SyncInvokeFunction"
WARMUP = 30
PROMPT = "Summarise the benefits of lineage in one paragraph."


class Context:
    function_name = FUNCTION
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:{FUNCTION}"
    memory_limit_in_mb = 512
    aws_request_id = "profile"
    log_group_name = f"/aws/lambda/{FUNCTION}"
    log_stream_name = "profile"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def worker(event_path: str, calls: int, profile: bool) -> None:
    """In the function's own process: warm it up, then time `calls` calls (stdout: one JSON line)."""
    import importlib

    module, name = os.environ["_HANDLER"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module), name)
    event = json.loads(Path(event_path).read_text())
    real_stdout = sys.stdout

    def call() -> None:
        request_id = f"cpu-{uuid.uuid4().hex[:16]}"
        body = json.dumps({"request_id": request_id, "model": "default", "prompt": PROMPT})
        answer = handler({**event, "body": body}, Context())
        if answer["statusCode"] != 200 or json.loads(answer["body"]).get("status") != "COMPLETED":
            raise RuntimeError(f"the handler answered {answer['statusCode']}: {answer['body'][:300]}")

    # Log lines and EMF metrics go to stdout (CloudWatch in Lambda), formatted as there, into a sink.
    sink = io.StringIO()
    sys.stdout = sink
    try:
        for _ in range(WARMUP):
            call()
        cpu, wall = [], []
        profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not waits
        for _ in range(calls):
            sink.seek(0)
            sink.truncate()
            started_cpu, started = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            call()
            if profiler is not None:
                profiler.disable()
            cpu.append((time.process_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        log_bytes = len(sink.getvalue())
    finally:
        sys.stdout = real_stdout
    report: dict[str, Any] = {"cpu": cpu, "wall": wall, "stdout_bytes_last_call": log_bytes}
    if profiler is not None:
        report["stats_file"] = os.path.join(tempfile.gettempdir(), f"profile_sync_cpu-{os.getpid()}.prof")
        profiler.dump_stats(report["stats_file"])
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(40)
            report[order] = out.getvalue()
    print(json.dumps(report))


def captured(stack: Any) -> tuple[dict[str, Any], Any]:
    """One real call through the gateway: the event its function got, and that function's spec."""
    from bench_sync import xpi_call

    pool = stack._pool
    seen: dict[str, Any] = {}
    original = pool.invoke

    def invoke(function_name: str, payload: bytes) -> Any:
        if FUNCTION in function_name:
            seen["payload"], seen["name"] = payload, function_name
        return original(function_name, payload)

    pool.invoke = invoke
    try:
        xpi_call(stack.endpoints)()
    finally:
        pool.invoke = original
    return json.loads(seen["payload"]), pool._functions[seen["name"]].spec


def main(calls: int, profile: bool, build: Path | None) -> None:
    from _stack import ROOT, percentile
    from xpi_tools.emulator.client import EmulatorControl
    from xpi_tools.local.stack import LocalStack

    load_before = os.getloadavg()
    stack = LocalStack(ROOT)
    stack.start(build)
    try:
        assert stack.endpoints is not None
        EmulatorControl(stack.endpoints.emulator_control).set_latency("*")  # answering at once
        event, spec = captured(stack)
        environment = stack._pool._environment(spec)  # the runtime's own, as Lambda builds it
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(event, file)
            file.flush()
            command = [str(stack._runtime_python()), str(Path(__file__).resolve()), "--worker", file.name]
            done = subprocess.run(
                [*command, str(calls), "1" if profile else "0"],
                cwd=spec.code_dir,
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
        if done.returncode != 0:
            raise SystemExit(f"the worker failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        stack.stop()
    load_after = os.getloadavg()
    cpu, wall = report["cpu"], report["wall"]
    print(
        f"POST /v1/invoke's handler in its own process ({spec.code_dir}), {calls} warm calls"
        + (" under cProfile" if profile else "")
    )
    print(
        f"CPU per call: p50 {statistics.median(cpu):.2f} ms, mean {statistics.fmean(cpu):.2f} ms, "
        f"p95 {percentile(cpu, 0.95):.2f} ms; wall p50 {statistics.median(wall):.2f} ms; "
        f"stdout of one call {report['stdout_bytes_last_call']} bytes"
    )
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after {', '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} cores"
    )
    if "stats_file" in report:
        print(f"the profile: {report['stats_file']} (pstats)")
    for order in ("tottime", "cumulative"):
        if order in report:
            print(report[order])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
    else:
        arguments = sys.argv[1:]
        build = None
        if "--build" in arguments:
            at = arguments.index("--build")
            build = Path(arguments[at + 1]).resolve()
            del arguments[at : at + 2]
        numbers = [a for a in arguments if not a.startswith("--")]
        main(int(numbers[0]) if numbers else 300, "--profile" in arguments, build)
