"""Batch files through the local stack.

1. A 10,000-line JSONL file uploaded to the batch input bucket, through the whole pipeline (S3 event ->
   batch workflow -> one inference workflow per line -> results file): lines per second, and the peak
   memory of every function involved (each runtime process's peak RSS, recorded per invoke).
   Beside it, the baseline: the same stack answering single requests sent to the requests queue.
2. The split and assemble steps driven directly (Lambda Invoke on the deployed functions) at 1,000 and
   100,000 lines, to show that they stream: their peak memory does not grow with the file.
   (100,000 lines through the whole pipeline would take hours here, because each line is a full
   inference workflow on two runtime processes per function.)

    .venv/bin/python bench/bench_batch.py [--lines 10000] [--baseline 500] [--flat 1000,20000,100000]
                                          [--no-pipeline]
"""

import argparse
import json
import resource
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import boto3
from _stack import StackDriver, start_stack
from xpi.domain.batch import batch_id_for
from xpi_tools.local.lambda_runtime import InvokeResult
from xpi_tools.local.stack import LOCAL_CREDENTIALS, LocalStack

PROMPTS = [
    "Summarise the benefits of lineage in one paragraph.",
    "Name three rivers in Oregon.",
    "Draft a reply to jordan.alvarez@example.com confirming receipt of the form.",
    "List two risks of storing secrets in environment variables.",
]


class MemoryProbe:
    """Wraps the runtime pool's invoke: the peak memory seen per function, since the last reset."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.deployment is not None
        pool: Any = stack._pool  # a benchmark's probe into the local stack
        self._names = {physical: logical for logical, physical in stack.deployment.resources.items()}
        self._pool = pool
        self._lock = threading.Lock()
        self.peaks: dict[str, float] = defaultdict(float)
        self.invokes: dict[str, int] = defaultdict(int)
        original = pool.invoke

        def invoke(function_name: str, payload: bytes) -> InvokeResult:
            result: InvokeResult = original(function_name, payload)
            name = self._names.get(function_name, function_name)
            with self._lock:
                self.invokes[name] += 1
                if result.max_memory_mb is not None:
                    self.peaks[name] = max(self.peaks[name], result.max_memory_mb)
            return result

        pool.invoke = invoke

    def reset(self) -> None:
        with self._lock:
            self.peaks.clear()
            self.invokes.clear()

    def fresh_process(self, logical_name: str) -> None:
        """The function's next invoke runs in a new runtime process: a peak of that invoke alone, not
        of every file its warm process handled before (re-registering retires the idle processes)."""
        physical = next(p for p, logical in self._names.items() if logical == logical_name)
        registered = self._pool._functions.get(physical)  # none before the function's first invoke
        if registered is not None:
            self._pool.register(registered.spec)


def jsonl(lines: int) -> bytes:
    return b"".join(
        json.dumps({"prompt": PROMPTS[n % len(PROMPTS)] + f" (#{n})"}).encode() + b"\n" for n in range(lines)
    )


def run_baseline(stack: LocalStack, requests: int) -> float:
    """Single requests on the requests queue, all sent at once: requests per second."""
    driver = StackDriver(stack)
    try:
        started = time.perf_counter()
        driver.wait(driver.send(requests), timeout_s=1800)
        return requests / (time.perf_counter() - started)
    finally:
        driver.close()


def run_pipeline(
    stack: LocalStack, probe: MemoryProbe, lines: int, timeout_s: float, baseline: float
) -> None:
    assert stack.endpoints is not None
    outputs = stack.endpoints.outputs
    session = boto3.Session(
        region_name=stack.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3 = session.client("s3", endpoint_url=stack.endpoints.aws)
    table = session.resource("dynamodb", endpoint_url=stack.endpoints.aws).Table(outputs["BatchTableName"])
    bucket, key = outputs["BatchInputBucketName"], f"incoming/bench-{uuid.uuid4().hex[:8]}.jsonl"
    body = jsonl(lines)
    probe.reset()
    started = time.perf_counter()
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"xpi-model": "default"})["ETag"]
    batch_id = batch_id_for(bucket, key, etag)
    status: dict[str, Any] = {}
    last_print = 0.0
    most_in_flight = 0
    while time.perf_counter() - started < timeout_s:
        # The benchmark polls the status item to time the run; the product itself never polls.
        status = table.get_item(Key={"batch_id": batch_id, "line": 0}, ConsistentRead=True).get("Item") or {}
        slots = table.get_item(Key={"batch_id": "slots#default", "line": 0}, ConsistentRead=True).get("Item")
        most_in_flight = max(most_in_flight, int((slots or {}).get("in_flight", 0)))
        if status.get("state") in ("COMPLETED", "FAILED"):
            break
        if time.perf_counter() - last_print > 30:
            last_print = time.perf_counter()
            print(
                f"  ... {status.get('done', 0)}/{lines} lines done after {last_print - started:.0f} s",
                flush=True,
            )
        time.sleep(1)
    elapsed = time.perf_counter() - started
    print(f"\n== pipeline: {lines:,} lines ({len(body):,} bytes), window {status.get('window')} ==")
    print(
        f"state {status.get('state')}  done {status.get('done')}  completed {status.get('completed')}  "
        f"blocked {status.get('blocked')}  failed {status.get('failed')}  in {elapsed:.1f} s"
    )
    print(
        f"most lines in flight on the model, sampled each second: {most_in_flight} "
        f"of {status.get('window')} slots"
    )
    print(f"{'':<34}{'per second':>12}")
    print(f"{'batch lines, through the pipeline':<34}{int(status.get('done', 0)) / elapsed:>12.1f}")
    if baseline:
        print(f"{'baseline: single queued requests':<34}{baseline:>12.1f}")
    # moto keeps every finished execution (history, parsed program) in this process: watch it grow.
    stack_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"local stack process (moto, pollers, emulator) peak RSS: {stack_mb:,.0f} MB")
    print(f"{'function':<32}{'invokes':>9}{'peak MB':>10}")
    for name in sorted(probe.invokes):
        print(f"{name:<32}{probe.invokes[name]:>9}{probe.peaks.get(name, 0):>10.1f}")


def run_flat(stack: LocalStack, probe: MemoryProbe, sizes: list[int]) -> None:
    """Split and assemble, driven directly, at each size: peak MB per size side by side."""
    assert stack.endpoints is not None
    assert stack.deployment is not None
    outputs, resources = stack.endpoints.outputs, stack.deployment.resources
    session = boto3.Session(
        region_name=stack.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3 = session.client("s3", endpoint_url=stack.endpoints.aws)
    lambda_ = session.client(
        "lambda", endpoint_url=stack.endpoints.aws, config=boto3.session.Config(read_timeout=960)
    )
    table = session.resource("dynamodb", endpoint_url=stack.endpoints.aws).Table(outputs["BatchTableName"])
    bucket = outputs["BatchInputBucketName"]
    output_text = "Lineage lets an auditor see who asked what, where it went and what came back. " * 6
    rows: list[tuple[int, float, float, float, float]] = []

    def measure(function: str, event: dict[str, Any]) -> tuple[Any, float, float]:
        """One invoke in a new runtime process: its answer, seconds and peak MB."""
        probe.reset()
        probe.fresh_process(function)
        started = time.perf_counter()
        answer = lambda_.invoke(FunctionName=resources[function], Payload=json.dumps(event))
        seconds = time.perf_counter() - started
        return json.loads(answer["Payload"].read()), seconds, probe.peaks[function]

    for size in sizes:
        # Outside incoming/, so no notification starts a real batch: the functions are driven directly.
        key = f"bench-direct/split-{size}-{uuid.uuid4().hex[:6]}.jsonl"
        body = jsonl(size)
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"xpi-model": "default"})["ETag"]
        batch = {
            "batch_id": batch_id_for(bucket, key, etag),
            "bucket": bucket,
            "key": key,
            "etag": etag.strip('"'),
            "size": len(body),
            "principal": "bench",
            "uploaded_at": datetime.now(UTC).isoformat(),
        }
        split_out, split_s, split_mb = measure("BatchSplitFunction", {"batch": batch})
        assert split_out.get("valid") == size, split_out

        # The line items a finished batch holds (written straight into the table, as progress would).
        with table.batch_writer() as writer:
            for line in range(1, size + 1):
                writer.put_item(
                    Item={
                        "batch_id": batch["batch_id"],
                        "line": line,
                        "request_id": f"{batch['batch_id']}-{line}",
                        "status": "COMPLETED",
                        "output": {"text": output_text, "bytes": len(output_text), "sha256": "0" * 64},
                        "usage": {"input_tokens": 20, "output_tokens": 90},
                    }
                )
        table.update_item(
            Key={"batch_id": batch["batch_id"], "line": 0},
            UpdateExpression="SET done = :n",
            ExpressionAttributeValues={":n": size},
        )
        summary, assemble_s, assemble_mb = measure("BatchAssembleFunction", {"batch": batch})
        assert summary.get("status") == "COMPLETED", summary
        results = s3.head_object(Bucket=bucket, Key=f"results/{batch['batch_id']}.jsonl")["ContentLength"]
        rows.append((size, split_mb, split_s, assemble_mb, assemble_s))
        print(
            f"  {size:,} lines: split {split_s:.1f} s, assemble {assemble_s:.1f} s, results {results:,} bytes"
        )
    print("\n== split and assemble, driven directly, a new runtime process each: peak memory by file size ==")
    print(f"{'lines':>9}{'split peak MB':>15}{'split s':>9}{'assemble peak MB':>18}{'assemble s':>12}")
    for size, split_mb, split_s, assemble_mb, assemble_s in rows:
        print(f"{size:>9,}{split_mb:>15.1f}{split_s:>9.1f}{assemble_mb:>18.1f}{assemble_s:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--flat", default="1000,20000,100000")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--baseline", type=int, default=500, help="single queued requests (0: none)")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    stack = start_stack()
    try:
        probe = MemoryProbe(stack)
        if not args.no_pipeline:
            baseline = run_baseline(stack, args.baseline) if args.baseline else 0.0
            run_pipeline(stack, probe, args.lines, args.timeout, baseline)
        if args.flat:
            run_flat(stack, probe, [int(n) for n in args.flat.split(",")])
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
