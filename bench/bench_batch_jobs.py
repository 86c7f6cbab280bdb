"""A batch file both ways at the model: on-demand (one InvokeModel per line) against one Bedrock batch
inference job through xpi's job path (xpi.services.batch_jobs: records to the commercial bucket under
its KMS key, the job item before CreateModelInvocationJob, growing waits, the output back by line).

Both ways run against the Bedrock emulator; the job reads and writes a second moto server playing the
commercial account's S3 (as on the local stack). Printed side by side, per way:

  model cost    the tokens the emulator reported (InvokeModel usage; the job's manifest), at the price
                table's on-demand price, the job's at 50 % (Bedrock's batch price)
  wall time     from the first call to the last answer (on-demand, `--threads` callers) or from the
                upload of the records to the output read back (the job; `--phase-seconds` per job phase
                on the emulator's clock: a real job takes minutes to hours, the emulator's 0 by default)
  xpi per line  the billable units xpi's job path itself caused (counted at its adapters: S3 PUT and
                GET, DynamoDB writes of the job item, the Lambda calls and Standard transitions of the
                submit / wait / check / collect loop, its looks those of a `--job-hours` job) priced with
                bench/prices/govcloud.yaml (the cost meter's units and prices). The on-demand way's own
                per-line units are the queue path's of `make bench-cost`: not measured here.

    .venv/bin/python bench/bench_batch_jobs.py [--lines 10000] [--threads 8] [--phase-seconds 0]
"""

import argparse
import json
import logging
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
from xpi.domain.batch_jobs import BATCH_DISCOUNT, next_check_s
from xpi.domain.pricing import price_table
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


def usd(input_tokens: int, output_tokens: int, factor: float = 1.0) -> float:
    line = price_table().models[MODEL]
    return factor * (input_tokens * line.input + output_tokens * line.output) / 1000


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
        "usd": usd(manifest["inputTokenCount"], manifest["outputTokenCount"], BATCH_DISCOUNT),
        "answered": len(results.answered),
        "on_demand_after": len(results.on_demand()),
        "looks": looks,
        "real_looks": real_looks,
    }
    return figures, units


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--phase-seconds", type=float, default=0.0)
    parser.add_argument("--job-hours", type=float, default=2.0, help="a real job's length, for its looks")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
