"""Each function's cold start (the init phase: the runtime starting and the handler module imported), two
ways in one run, against a budget of 300 ms:

- `Init Duration` as the runtime reports it: the local stack's Lambda service runs each function in the
  Lambda RIE with awslambdaric, whose log says `INIT REPORT(durationMs: ...)` for every new process; each
  function is invoked once on a fresh stack (its first process is a cold start). Beside it, that first
  invocation's own time: the RIE's first `REPORT` `Duration` less the init (the RIE starts the runtime
  on the first invoke and counts the init in that Duration). The event is `{}`, which no handler
  accepts, so each handler's first steps run and answer an error (the reaper and the seal, which take
  any event, do their work): work moved out of the init into the first call shows there, and init +
  first invocation is the whole cold cost;
- the import of the handler module alone, in a fresh interpreter of the same runtime Python over the
  built package, REPEATS times (min and median), writing no bytecode (Lambda's /var/task is read-only,
  so only the .pyc files `make bytecode` put in the package are used): less noisy on a shared machine.

Beside them, the floor: an empty python3.13 handler (`def handler(event, context): return {}`, no
package) created through the same local Lambda service and measured the same two ways, so what is xpi's
own is the difference.

The machine may be shared: the load average is printed beside the figures.
"""

import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
from _stack import ROOT, start_stack
from xpi_tools.local.stack import LOCAL_CREDENTIALS

BUDGET_MS = 300.0
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
BUILD = ROOT / ".aws-sam" / "build"
RUNTIME_PYTHON = ROOT / ".xpi" / "lambda-runtime" / "bin" / "python"
LOGS = ROOT / ".xpi" / "local" / "logs"
INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
FLOOR = "EmptyHandler (floor)"
EMPTY_HANDLER = "def handler(event, context):\n    return {}\n"
FIRST_REPORT = re.compile(r"^REPORT RequestId: \S+.*?\tDuration: ([0-9.]+) ms", re.MULTILINE)


def template_functions() -> dict[str, str]:
    """Logical id -> handler module, for every AWS::Serverless::Function of template.yaml."""
    functions: dict[str, str] = {}
    current = None
    for line in (ROOT / "template.yaml").read_text(encoding="utf-8").splitlines():
        if re.fullmatch(r"  [A-Za-z0-9]+:", line):
            current = line.strip().rstrip(":")
        handler = re.fullmatch(r"\s+Handler: xpi\.handlers\.([a-z_]+)\.handler", line)
        if handler and current:
            functions[current] = handler[1]
    return functions


def import_times(module: str, code_dir: Path) -> list[float]:
    """ms to import the handler module in a fresh runtime interpreter (Lambda's init phase for Python)."""
    script = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(code_dir),
        "POWERTOOLS_SERVICE_NAME": "xpi",
        "POWERTOOLS_METRICS_NAMESPACE": "XPI",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_REGION": "us-gov-west-1",
        # as Lambda (and the local stack's runtime) sets it: the X-Ray SDK, imported by Powertools'
        # Tracer, builds its centralized sampler (a botocore client for X-Ray) only where it is unset
        "LAMBDA_TASK_ROOT": str(code_dir),
    }
    # -B: no .pyc written, as on Lambda, whose /var/task is read-only: what the package does not ship
    # precompiled (`make bytecode`) is compiled again at every cold start.
    command = [str(RUNTIME_PYTHON), "-B", "-c", script]
    return [
        float(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
        for _ in range(REPEATS)
    ]


def rie_init_durations(functions: dict[str, str]) -> tuple[dict[str, tuple[float, float | None]], set[str]]:
    """Init Duration of each function's first process on a fresh local stack, and its first invocation's
    Duration, from the RIE's log; and the functions the local stack created."""
    started = time.time()
    stack = start_stack()
    try:
        endpoints = stack.endpoints
        assert endpoints is not None
        lambda_api = boto3.client(
            "lambda",
            endpoint_url=endpoints.aws,
            region_name=endpoints.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        # a function the local stack does not create (a condition of the template's left false) is left out
        names = {
            logical: endpoints.resources[logical] for logical in functions if logical in endpoints.resources
        }
        names[FLOOR] = deploy_empty_handler(lambda_api, endpoints, names)
        for name in names.values():
            lambda_api.invoke(FunctionName=name, Payload=b"{}")  # an unparsable event: init is what counts
    finally:
        stack.stop()
    durations: dict[str, tuple[float, float | None]] = {}
    for logical, name in names.items():
        for log in sorted(LOGS.glob(f"{name}-*.log")):
            if log.stat().st_mtime < started:
                continue
            text = log.read_text(encoding="utf-8", errors="replace")
            found = INIT_REPORT.search(text)
            if found:
                first = FIRST_REPORT.search(text)
                init = float(found[1])
                durations[logical] = (init, max(0.0, float(first[1]) - init) if first else None)
                break
    return durations, set(names)


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("empty_handler.py", EMPTY_HANDLER)
    return buffer.getvalue()


def deploy_empty_handler(lambda_api: Any, endpoints: Any, names: dict[str, str]) -> str:
    """The floor: an empty python3.13 handler in the same local Lambda service (its own role, the
    architecture and memory of the xpi functions)."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoints.aws,
        region_name=endpoints.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    suffix = uuid.uuid4().hex[:6]
    role = iam.create_role(RoleName=f"xpi-empty-{suffix}", AssumeRolePolicyDocument=json.dumps(trust))
    reference = lambda_api.get_function_configuration(FunctionName=next(iter(names.values())))
    name = f"xpi-empty-handler-{suffix}"
    lambda_api.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="empty_handler.handler",
        Code={"ZipFile": _empty_zip()},
        MemorySize=reference["MemorySize"],
        Timeout=30,
        Architectures=reference["Architectures"],
    )
    return name


def main() -> None:
    functions = template_functions()
    load_before = os.getloadavg()
    code_dir = BUILD / "ApiFunction"  # every function ships the same package (CodeUri: functions/)
    shipped = len(list(code_dir.rglob("*.pyc")))
    print(
        f"{shipped} .pyc files in the package ({'precompiled' if shipped else 'none: run `make bytecode`'})"
    )
    imports = {
        logical: import_times(f"xpi.handlers.{module}", code_dir) for logical, module in functions.items()
    }
    with tempfile.TemporaryDirectory() as empty:
        (Path(empty) / "empty_handler.py").write_text(EMPTY_HANDLER, encoding="utf-8")
        imports[FLOOR] = import_times("empty_handler", Path(empty))
    rie, created = rie_init_durations(functions)
    functions = {**functions, FLOOR: "empty_handler"}
    load_after = os.getloadavg()
    print(f"cold start per function: budget {BUDGET_MS:.0f} ms")
    print(
        "| function | handler | RIE Init Duration | first invocation | import min | import median "
        "| within budget |"
    )
    print("|---|---|---|---|---|---|---|")
    over = []
    for logical, module in functions.items():
        init, first = rie.get(logical, (None, None))
        low, middle = min(imports[logical]), statistics.median(imports[logical])
        ok = (init if init is not None else middle) <= BUDGET_MS
        if not ok:
            over.append(logical)
        # a function whose template condition is off locally is judged by its import alone
        missing = "(not seen)" if logical in created else "(not created locally)"
        shown = f"{init:.0f} ms" if init is not None else missing
        first_shown = f"{first:.0f} ms" if first is not None else missing
        verdict = "yes" if ok else "NO"
        print(
            f"| {logical} | {module} | {shown} | {first_shown} | {low:.0f} ms | {middle:.0f} ms | {verdict} |"
        )
    print(f"over budget: {', '.join(over) if over else 'none'}")
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after {', '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
