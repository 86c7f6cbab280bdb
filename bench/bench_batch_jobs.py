"""A batch file both ways through xpi: the same N-line JSONL file (default 10,000) uploaded to the local
stack's batch bucket with the job path on (BatchJobMinLines below N: one Bedrock batch inference job, its
answers made final page by page by FinishJob) and with it off (every line its own on-demand line
workflow), each waited for until its `Batch Completed` event. Printed side by side, per way:

  model cost    the sum of the lines' estimated_cost_usd in lineage (the job's lines at the price table's
                batch price, on-demand lines at the on-demand price), and per line
  wall time     from the file's PutObject to its `Batch Completed` event on the subscriber queue; the
                emulator's job runs its phases in `--phase-seconds` (a real job takes minutes to hours)
  xpi per line  the billable units the stack served for the file, counted by the cost meter
                (bench/bench_cost.py: the usage log, Standard transitions, Express executions) and priced
                with bench/prices/govcloud.yaml, divided by the lines

Each way runs on a stack of its own (the job path is a template parameter): job path with
BatchJobMinLines=--threshold, on-demand with 0. Both stacks run `--line-concurrency` lines in flight per
model (BatchModelConcurrency; the template's default, 4, suits a small commercial quota, and at 4 the
local stack's on-demand way does about 1 line/s, at 16 about 3.5). A 10,000-line on-demand file takes
most of an hour here: `--on-demand-lines` runs fewer (the per-line figures are what compare). The
commercial side (the job bucket's S3 requests on the commercial account, Bedrock's job API) is not in
the usage log, so not in xpi's units.

    .venv/bin/python bench/bench_batch_jobs.py [--lines 10000] [--on-demand-lines N] [--ways job,on-demand]
        [--line-concurrency 16]
    .venv/bin/python bench/bench_batch_jobs.py --model-level [--lines 10000] [--threads 8]

`--model-level`: the older comparison at the model alone (no xpi workflow), a second table:

A batch file both ways at the model: on-demand (one InvokeModel per line) against one Bedrock batch
inference job through xpi's job path (xpi.services.batch_jobs: records to the commercial bucket under
its KMS key, the job item before CreateModelInvocationJob, growing waits, the output back by line).

Both ways run against the Bedrock emulator; the job reads and writes a second moto server playing the
commercial account's S3 (as on the local stack). Printed side by side, per way:

  model cost    the tokens the emulator reported (InvokeModel usage; the job's manifest), at the price
                table's on-demand price, the job's at its batch price
  wall time     from the first call to the last answer (on-demand, `--threads` callers) or from the
                upload of the records to the output read back (the job; `--phase-seconds` per job phase
                on the emulator's clock: a real job takes minutes to hours, the emulator's 0 by default)
  xpi per line  the billable units xpi's job path itself caused (counted at its adapters: S3 PUT and
                GET, DynamoDB writes of the job item, the Lambda calls and Standard transitions of the
                submit / wait / check / collect loop, its looks those of a `--job-hours` job) priced with
                bench/prices/govcloud.yaml (the cost meter's units and prices). The on-demand way's own
                per-line units are the queue path's of `make bench-cost`: not measured here.

    .venv/bin/python bench/bench_batch_jobs.py --model-level [--lines 10000] [--threads 8] [--phase-seconds 0]
"""

import argparse
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer
from xpi.adapters.batch_jobs import BedrockBatchJobs, S3CommercialObjects
from xpi.domain.batch_jobs import JOB_CREDENTIAL, next_check_s
from xpi.domain.pricing import batch_prices, price_table
from xpi.models.batch_jobs import BatchJob, BatchJobTarget
from xpi.services.batch_jobs import check_job, collect_job, submit_job
from xpi_tools.cost import cost_per_million, load_prices
from xpi_tools.emulator import AccessKey, BatchSettings, BedrockEmulator, EmulatorConfig

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/xpi-bedrock-batch"
CALLER = AccessKey("AKIABENCHBATCHJOBS01", "bench-batch-jobs-secret")
S3_KEY = AccessKey("AKIABENCHCOMMERCIAL1", "bench-commercial-secret")
TARGET = BatchJobTarget(
    bucket="xpi-batch-bench",
    kms_key_id=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    role_arn=ROLE,
)
PRICES = Path(__file__).parent / "prices" / "govcloud.yaml"
PROMPTS = [
    "Summarise the benefits of lineage in one paragraph.",
    "Name three rivers in Oregon.",
    "List two risks of storing secrets in environment variables.",
    "Explain what a state machine is to a new engineer.",
]
# The job loop's Standard transitions: Choice, Submit, then per look Wait + Check + Choice, then Collect.
TRANSITIONS_FIXED, TRANSITIONS_PER_LOOK = 3, 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_input(line: int) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"{PROMPTS[line % 4]} ({line})"}]}
        ],
    }


def usd(input_tokens: int, output_tokens: int, batch: bool = False) -> float:
    line = price_table().models[MODEL]
    if batch:
        prices = batch_prices(MODEL, line.input, line.output)
        return (input_tokens * prices[0] + output_tokens * prices[1]) / 1000
    return (input_tokens * line.input + output_tokens * line.output) / 1000


class CountingObjects(S3CommercialObjects):
    def __init__(self, client: Any, bucket: str, units: Counter[str]) -> None:
        super().__init__(lambda: client, bucket)
        self.units = units

    def put(self, key: str, body: bytes, kms_key_id: str) -> str:
        self.units["s3_put_requests"] += 1
        return super().put(key, body, kms_key_id)

    def lines(self, key: str) -> Iterator[str]:
        self.units["s3_get_requests"] += 1
        yield from super().lines(key)


class CountingJobRecords:
    """The job item, as the batch table would hold it: each write one write unit (the item is < 1 KB)."""

    def __init__(self, units: Counter[str]) -> None:
        self.items: dict[str, str] = {}
        self.units = units

    def begin(self, job: BatchJob) -> BatchJob:
        self.units["dynamodb_write_units"] += 1
        self.items.setdefault(job.batch_id, job.model_dump_json())
        return BatchJob.model_validate_json(self.items[job.batch_id])

    def update(self, job: BatchJob) -> None:
        self.units["dynamodb_write_units"] += 1
        self.items[job.batch_id] = job.model_dump_json()


def on_demand(runtime: Any, lines: int, threads: int) -> dict[str, float]:
    def call(line: int) -> tuple[int, int]:
        response = runtime.invoke_model(modelId=MODEL, body=json.dumps(model_input(line)))
        usage = json.loads(response["body"].read())["usage"]
        return int(usage["input_tokens"]), int(usage["output_tokens"])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        tokens = list(pool.map(call, range(1, lines + 1)))
    wall = time.perf_counter() - started
    input_tokens, output_tokens = sum(t[0] for t in tokens), sum(t[1] for t in tokens)
    return {"wall_s": wall, "usd": usd(input_tokens, output_tokens), "answered": len(tokens)}


def looks_for(job_hours: float) -> int:
    """The looks the workflow's growing waits take to see a job of this length end."""
    looks, waited = 1, next_check_s(0)
    while waited < job_hours * 3600:
        waited += next_check_s(looks)
        looks += 1
    return looks


def through_a_job(
    bedrock: Any, s3: Any, lines: int, job_hours: float
) -> tuple[dict[str, float], Counter[str]]:
    units: Counter[str] = Counter()
    objects, records = CountingObjects(s3, TARGET.bucket, units), CountingJobRecords(units)
    jobs = BedrockBatchJobs(lambda: bedrock)
    batch_id = f"b-{time.time_ns():024x}"[-26:]
    started = time.perf_counter()
    job = submit_job(
        batch_id,
        MODEL,
        [(line, model_input(line)) for line in range(1, lines + 1)],
        TARGET,
        job_records=records,
        objects=objects,
        jobs=jobs,
    )
    looks = 0
    while True:
        check = check_job(job, job_records=records, jobs=jobs)
        looks, job = looks + 1, check.job
        if check.finished:
            break
        time.sleep(0.05)  # the workflow's Wait of check.wait_s, compressed: the emulator's clock decides
    results = collect_job(job, objects=objects)
    wall = time.perf_counter() - started
    # The emulated job ends in moments; a real one takes hours: the looks (each a Lambda call, a job
    # item write and its transitions) are those the growing waits take for a job of --job-hours.
    real_looks = looks_for(job_hours)
    units["dynamodb_write_units"] += real_looks - looks
    units["lambda_requests"] += 2 + real_looks  # submit, each look, collect
    units["states_transitions"] += TRANSITIONS_FIXED + TRANSITIONS_PER_LOOK * real_looks
    assert job.job_arn is not None
    job_id = job.job_arn.rsplit("/", 1)[-1]
    manifest = json.loads(
        s3.get_object(Bucket=TARGET.bucket, Key=f"xpi/{batch_id}/output/{job_id}/manifest.json.out")[
            "Body"
        ].read()
    )
    figures = {
        "wall_s": wall,
        "usd": usd(manifest["inputTokenCount"], manifest["outputTokenCount"], batch=True),
        "answered": len(results.answered),
        "on_demand_after": len(results.on_demand()),
        "looks": looks,
        "real_looks": real_looks,
    }
    return figures, units


def model_level(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--phase-seconds", type=float, default=0.0)
    parser.add_argument("--job-hours", type=float, default=2.0, help="a real job's length, for its looks")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3_url = f"http://127.0.0.1:{port}"
    emulator = BedrockEmulator(
        EmulatorConfig(
            access_keys=[CALLER],
            account_id=ACCOUNT,
            batch=BatchSettings(
                s3_endpoint_url=s3_url,
                role_credentials={ROLE: S3_KEY},
                min_records_per_job=min(100, args.lines),
                phase_seconds=args.phase_seconds,
            ),
        )
    ).start()
    try:
        session = boto3.Session(
            region_name="us-east-1",
            aws_access_key_id=CALLER.access_key_id,
            aws_secret_access_key=CALLER.secret_access_key,
        )
        config = Config(max_pool_connections=args.threads * 2, retries={"total_max_attempts": 1})
        runtime = session.client("bedrock-runtime", endpoint_url=emulator.url, config=config)
        bedrock = session.client("bedrock", endpoint_url=emulator.url)
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY.access_key_id,
            aws_secret_access_key=S3_KEY.secret_access_key,
        )
        s3.create_bucket(Bucket=TARGET.bucket)

        direct = on_demand(runtime, args.lines, args.threads)
        job, units = through_a_job(bedrock, s3, args.lines, args.job_hours)
    finally:
        emulator.stop()
        server.stop()

    per_line = {unit: count / args.lines for unit, count in units.items()}
    xpi_per_million = sum(cost_per_million(per_line, load_prices(PRICES)).values())
    print(f"{args.lines:,} lines of {MODEL}, on-demand with {args.threads} callers vs one batch job")
    print(f"{'':28}{'on-demand':>16}{'batch job':>16}")
    print(f"{'model cost (USD)':28}{direct['usd']:>16.6f}{job['usd']:>16.6f}")
    print(
        f"{'model cost per line (USD)':28}{direct['usd'] / args.lines:>16.9f}{job['usd'] / args.lines:>16.9f}"
    )
    print(f"{'wall time (s)':28}{direct['wall_s']:>16.2f}{job['wall_s']:>16.2f}")
    print(f"{'lines answered':28}{direct['answered']:>16,.0f}{job['answered']:>16,.0f}")
    print(f"{'xpi $ per million lines':28}{'(bench-cost)':>16}{xpi_per_million:>16.4f}")
    print(
        f"job: {job['looks']:.0f} looks on the emulator, {job['real_looks']:.0f} for a "
        f"{args.job_hours:g} h job (priced above), {job['on_demand_after']:.0f} lines left for on-demand"
    )
    print("xpi units per line (job path): " + ", ".join(f"{u} {v:.6f}" for u, v in sorted(per_line.items())))


# ------------------------------------------------------------------------------------- through xpi
def through_xpi(
    way: str,
    lines: int,
    threshold: int,
    phase_seconds: float,
    page_lines: int,
    timeout_s: float,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One file of `lines` lines through a stack of its own: the job path on (way "job") or off."""
    from _stack import start_stack
    from bench_cost import PRICES as COST_PRICES
    from bench_cost import CostBench, _is_call
    from xpi_tools.cost import cost_per_million, per_request
    from xpi_tools.emulator import EmulatorControl

    parameters = {
        "BatchJobMinLines": str(threshold if way == "job" else 0),
        "BatchJobPageLines": str(page_lines),
    }
    parameters.update(extra or {})
    # a name of its own: beside other stacks of this checkout (a stack's name keys its local files)
    stack = start_stack(parameters=parameters, stack_name=f"xpi-bench-{way}-{os.getpid() % 10000}")
    try:
        assert stack.endpoints is not None
        EmulatorControl(stack.endpoints.emulator_control).set_batch(
            phase_seconds=phase_seconds, min_records_per_job=min(100, threshold)
        )
        bench = CostBench(stack)
        s3, sqs = bench.client("s3"), bench.client("sqs")
        bucket = bench.outputs["BatchInputBucketName"]
        figures: dict[str, Any] = {}

        def run() -> int:
            from xpi.domain.batch import batch_id_for

            key = f"incoming/{bench.operator_id}/jobs-{way}-{time.time_ns()}.jsonl"  # the uploader's prefix
            body = b"".join(
                json.dumps({"model": "default", "prompt": f"{PROMPTS[n % 4]} ({n})"}).encode() + b"\n"
                for n in range(1, lines + 1)
            )
            started = time.perf_counter()
            etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            batch_id = batch_id_for(bucket, key, etag)
            figures["batch_id"] = batch_id
            figures["event"] = _await_batch_event(
                sqs, bench.outputs["SubscriberQueueUrl"], batch_id, timeout_s
            )
            figures["wall_s"] = time.perf_counter() - started
            return lines

        units, requests = bench.measure(
            run,
            lambda line: _is_call(line, "s3:PutObject", f"arn:*:s3:::{bucket}/"),
            quiet_timeout_s=timeout_s,  # the progress function's tail of line events after the batch's
        )
        figures["units"] = dict(units)
        per_line = per_request(units, requests)
        figures["xpi_usd_per_line"] = sum(cost_per_million(per_line, load_prices(COST_PRICES)).values()) / 1e6
        figures.update(_lineage_cost(bench, figures["batch_id"], lines))
        figures["status"] = _batch_status(bench, figures["batch_id"])
        figures["lines"] = lines
        figures["executions"] = sum(bench.executions_run.values())
        return figures
    finally:
        stack.stop()


def _await_batch_event(sqs: Any, queue_url: str, batch_id: str, timeout_s: float) -> str:
    """Drains the subscriber queue (every line's result event) until the batch's own event."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        found = None
        for message in messages:
            event = json.loads(message["Body"])
            if event["detail-type"].startswith("Batch ") and event["detail"].get("batch_id") == batch_id:
                found = str(event["detail-type"])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        if found:  # a Batch Failed one too: the table says so, with the lines that were done
            return found
    raise RuntimeError(f"no Batch event for {batch_id} within {timeout_s} s")


STATUS_FIELDS = (
    "state",
    "total",
    "valid",
    "done",
    "completed",
    "failed",
    "blocked",
    "reason",
    "release_total",
    "emitted_through",
)


def _batch_status(bench: Any, batch_id: str) -> dict[str, Any]:
    """The batch status item's state and counters (a `Batch Failed` run says there why)."""
    from boto3.dynamodb.types import TypeDeserializer

    dynamodb = bench.session.client("dynamodb", endpoint_url=bench.endpoints.aws)
    item = dynamodb.get_item(
        TableName=bench.outputs["BatchTableName"],
        Key={"batch_id": {"S": batch_id}, "line": {"N": "0"}},
        ConsistentRead=True,
    ).get("Item", {})
    plain = {key: TypeDeserializer().deserialize(value) for key, value in item.items()}
    return {key: str(plain[key]) for key in STATUS_FIELDS if key in plain}


def _lineage_cost(bench: Any, batch_id: str, lines: int) -> dict[str, Any]:
    """The lines' model cost and tokens as lineage recorded them, and how many a batch job answered."""
    dynamodb = bench.session.client("dynamodb", endpoint_url=bench.endpoints.aws)
    table = bench.outputs["LineageTableName"]
    usd, tokens, by_job, found = 0.0, 0, 0, 0
    ids = [f"{batch_id}-{n}" for n in range(1, lines + 1)]
    for start in range(0, len(ids), 100):
        keys: list[dict[str, Any]] = [{"request_id": {"S": rid}} for rid in ids[start : start + 100]]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found += 1
                usd += float(
                    item.get("estimated_cost_usd", {}).get("S")
                    or item.get("estimated_cost_usd", {}).get("N")
                    or 0
                )
                usage = item.get("usage", {}).get("M", {})
                tokens += sum(int(usage.get(k, {}).get("N", 0)) for k in ("input_tokens", "output_tokens"))
                by_job += item.get("credential_version", {}).get("S") == JOB_CREDENTIAL
            request = answer.get("UnprocessedKeys") or {}
    return {"model_usd": usd, "tokens": tokens, "by_job": by_job, "lineage_found": found}


def xpi_table(results: dict[str, dict[str, Any]]) -> str:
    ways = list(results)
    head = f"{'':34}" + "".join(f"{way:>18}" for way in ways)
    rows = [head]

    def row(label: str, cell: Any) -> None:
        rows.append(f"{label:34}" + "".join(f"{cell(results[way]):>18}" for way in ways))

    row("batch outcome", lambda r: str(r["event"]))
    row("lines in the file", lambda r: f"{r['lines']:,}")
    row("lines with lineage", lambda r: f"{r['lineage_found']:,}")
    row("lines answered by a batch job", lambda r: f"{r['by_job']:,}")
    row("model cost, lineage (USD)", lambda r: f"{r['model_usd']:.6f}")
    row("model cost per line (USD)", lambda r: f"{r['model_usd'] / max(1, r['lineage_found']):.9f}")
    row("tokens per line", lambda r: f"{r['tokens'] / max(1, r['lineage_found']):.1f}")
    row("wall time (s)", lambda r: f"{r['wall_s']:.1f}")
    row("wall time per line (ms)", lambda r: f"{1000 * r['wall_s'] / r['lines']:.1f}")
    row("xpi cost per line (USD, meter)", lambda r: f"{r['xpi_usd_per_line']:.9f}")
    row("xpi $ per million lines", lambda r: f"{r['xpi_usd_per_line'] * 1e6:.2f}")
    row("workflow executions", lambda r: f"{r['executions']:,}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-level", action="store_true", help="the model-level comparison instead")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--on-demand-lines", type=int, default=None, help="default: --lines")
    parser.add_argument("--ways", default="job,on-demand")
    parser.add_argument("--threshold", type=int, default=100, help="BatchJobMinLines of the job way")
    parser.add_argument("--page-lines", type=int, default=1000, help="BatchJobPageLines")
    parser.add_argument("--phase-seconds", type=float, default=0.5, help="the emulated job's phases")
    parser.add_argument("--timeout", type=float, default=7200.0, help="per way, seconds")
    parser.add_argument(
        "--line-concurrency", type=int, default=16, help="BatchModelConcurrency of both stacks, per model"
    )
    parser.add_argument(
        "--parameter", action="append", default=[], help="KEY=VALUE, a template parameter of both stacks"
    )
    args, rest = parser.parse_known_args()
    if args.model_level:
        model_level([f"--lines={args.lines}", *rest])
        return
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    results: dict[str, dict[str, Any]] = {}
    for way in args.ways.split(","):
        lines = args.lines if way == "job" else (args.on_demand_lines or args.lines)
        results[way] = through_xpi(
            way,
            lines,
            args.threshold,
            args.phase_seconds,
            args.page_lines,
            args.timeout,
            {
                "BatchModelConcurrency": json.dumps({"*": args.line_concurrency}),
                **dict(item.split("=", 1) for item in args.parameter),
            },
        )
        print(f"{way}: {json.dumps({k: v for k, v in results[way].items() if k != 'units'})}", flush=True)
        print(f"{way} units: {json.dumps(results[way]['units'])}", flush=True)
    print(
        f"through xpi's batch workflow on the local stack (job: BatchJobMinLines={args.threshold}, "
        f"pages of {args.page_lines} lines, the emulated job's phases {args.phase_seconds:g} s; on-demand: "
        f"BatchJobMinLines=0; {args.line_concurrency} lines in flight per model); xpi's units priced with "
        f"bench/prices/govcloud.yaml"
    )
    print(xpi_table(results))


if __name__ == "__main__":
    main()
