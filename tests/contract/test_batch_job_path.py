"""xpi's batch job path (xpi.services.batch_jobs with its AWS adapters) against the emulator's batch job
API and a second moto server playing the commercial account's S3: a batch end to end through a job, a
retried submission making one job, failed records listed for on-demand, results in input order."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from xpi.adapters.batch_jobs import BedrockBatchJobs, S3CommercialObjects
from xpi.domain.batch import BatchLimits
from xpi.models.batch_jobs import BatchJob, BatchJobTarget
from xpi.services import batch, batch_job_path, queue_processing
from xpi.services.batch_jobs import check_job, collect_job, submit_job
from xpi_tools.emulator import AccessKey, BatchSettings, BedrockEmulator, EmulatorConfig, EmulatorControl

from tests.helpers.waiting import wait_until
from tests.unit.xpi.test_batch import (
    NOW,
    FakeObjects,
    FakeStarter,
    FakeTable,
    FakeWorkflow,
    _batch,
    _file,
    _lineage_of,
)
from tests.unit.xpi.test_queue_processing import World, judgement

from .support import HAIKU, KEY_ID, REGION, SECRET

if TYPE_CHECKING:
    from .conftest import ClientFactory

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/xpi-bedrock-batch"
COMMERCIAL_KEY = AccessKey("AKIACOMMERCIALS30002", "commercial-s3-secret-2")
TARGET = BatchJobTarget(
    bucket="xpi-batch-job-path",
    kms_key_id=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    role_arn=ROLE,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def commercial_s3() -> Iterator[Any]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=COMMERCIAL_KEY.access_key_id,
        aws_secret_access_key=COMMERCIAL_KEY.secret_access_key,
    )
    client.create_bucket(Bucket=TARGET.bucket)
    yield client
    server.stop()


@pytest.fixture(scope="module")
def job_emulator(commercial_s3: Any) -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(
        region=REGION,
        access_keys=[AccessKey(KEY_ID, SECRET)],
        account_id=ACCOUNT,
        batch=BatchSettings(
            s3_endpoint_url=commercial_s3.meta.endpoint_url,
            role_credentials={ROLE: COMMERCIAL_KEY},
            min_records_per_job=3,
            phase_seconds=0.0,
        ),
    )
    with BedrockEmulator(config) as emu:
        yield emu


@pytest.fixture
def job_control(job_emulator: BedrockEmulator) -> Iterator[EmulatorControl]:
    control = job_emulator.control
    control.reset()
    control.reset_batch()
    yield control
    control.reset()
    control.reset_batch()


class MemoryJobRecords:
    """The batch table's job item (conditional put, then updates), kept in memory."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def begin(self, job: BatchJob) -> BatchJob:
        self.items.setdefault(job.batch_id, job.model_dump_json())
        return BatchJob.model_validate_json(self.items[job.batch_id])

    def update(self, job: BatchJob) -> None:
        self.items[job.batch_id] = job.model_dump_json()


def _records(lines: list[int]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (
            line,
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": [{"type": "text", "text": f"line {line}"}]}],
            },
        )
        for line in lines
    ]


def _run(batch_id: str, records: list[tuple[int, dict[str, Any]]], ports: dict[str, Any]) -> Any:
    job = submit_job(batch_id, HAIKU, records, TARGET, **ports)
    state: dict[str, BatchJob] = {"job": job}

    def ended() -> bool:
        check = check_job(state["job"], job_records=ports["job_records"], jobs=ports["jobs"])
        state["job"] = check.job
        return check.finished

    wait_until(ended, 30, what=f"the job of {batch_id} ended")
    return state["job"], collect_job(state["job"], objects=ports["objects"])


@pytest.fixture
def ports(job_emulator: BedrockEmulator, commercial_s3: Any, make_client: ClientFactory) -> dict[str, Any]:
    bedrock = make_client("bedrock", job_emulator.url)
    return {
        "job_records": MemoryJobRecords(),
        "objects": S3CommercialObjects(lambda: commercial_s3, TARGET.bucket),
        "jobs": BedrockBatchJobs(lambda: bedrock),
    }


@pytest.mark.usefixtures("job_control")
def test_a_batch_goes_through_a_job_and_comes_back_by_line_in_input_order(
    ports: dict[str, Any], commercial_s3: Any
) -> None:
    lines = [1, 2, 4, 5, 7]  # 3 and 6 were blocked by policy: never sent

    job, results = _run("b-000000000000000000000001", _records(lines), ports)

    assert job.status == "Completed"
    assert list(results.answered) == lines and results.on_demand() == []
    assert all(answer["content"][0]["type"] == "text" for answer in results.answered.values())
    stored = commercial_s3.head_object(
        Bucket=TARGET.bucket, Key="xpi/b-000000000000000000000001/input/records.jsonl"
    )
    assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", TARGET.kms_key_id)


@pytest.mark.usefixtures("job_control")
def test_a_retried_submission_makes_one_job(ports: dict[str, Any], make_client: ClientFactory) -> None:
    # GIVEN a submission whose create went through and whose record of it was lost (a crash)
    batch_id = "b-000000000000000000000002"
    first = submit_job(batch_id, HAIKU, _records([1, 2, 3]), TARGET, **ports)
    ports["job_records"].items[batch_id] = first.model_copy(update={"job_arn": None}).model_dump_json()

    # WHEN it runs again
    again = submit_job(batch_id, HAIKU, _records([1, 2, 3]), TARGET, **ports)

    # THEN Bedrock answered the same job for the batch's token: one job of that name exists
    assert again.job_arn == first.job_arn
    listed = (
        ports["jobs"]._client().list_model_invocation_jobs(nameContains=batch_id)["invocationJobSummaries"]
    )
    assert [j["jobArn"] for j in listed] == [first.job_arn]


def test_records_the_job_failed_are_listed_for_on_demand_in_input_order(
    ports: dict[str, Any], job_control: EmulatorControl
) -> None:
    # GIVEN the model fails two of the job's records
    job_control.inject_fault("ModelErrorException", count=2, operations=["ModelInvocationJob"])

    job, results = _run("b-000000000000000000000003", _records([1, 2, 3, 4, 5]), ports)

    assert job.status == "Completed"
    assert len(results.failed) == 2 and len(results.answered) == 3
    assert results.on_demand() == sorted(results.failed)
    assert sorted([*results.answered, *results.failed]) == [1, 2, 3, 4, 5]
    assert json.dumps(sorted(results.answered)) == json.dumps(list(results.answered))  # kept in input order


def test_the_benchmarks_short_run_prices_the_job_at_half_the_on_demand_cost() -> None:
    # bench/bench_batch_jobs.py's model-level comparison at 200 lines: both ways answer every line, and
    # the same tokens cost half through the job.
    bench = Path(__file__).parents[2] / "bench" / "bench_batch_jobs.py"
    run = subprocess.run(  # our interpreter, our script
        [sys.executable, str(bench), "--model-level", "--lines", "200", "--threads", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = {line[:28].strip(): line[28:].split() for line in run.stdout.splitlines() if line[:28].strip()}
    on_demand, job = (float(v) for v in figures["model cost (USD)"])
    assert figures["lines answered"] == ["200", "200"]
    assert job == pytest.approx(on_demand / 2, rel=1e-3)


def test_a_batch_file_through_prepare_a_job_collect_and_on_demand_ends_in_input_order(
    ports: dict[str, Any], job_control: EmulatorControl
) -> None:
    # The job path's services end to end, the job on the emulator and the commercial moto server, the
    # batch table, lineage and the on-demand starter in memory.
    # GIVEN a file of six lines for one model, line 3 one that policy blocks (a CUI banner)
    lines = [{"prompt": f"Summarise item {n} in one line."} for n in range(1, 7)]
    lines[2] = {"prompt": "CUI\n\nSummarise this incident report.\n\nCUI"}
    data = _file([json.dumps(line) for line in lines])
    key = "incoming/AIDAEXAMPLE/big.jsonl"
    objects, table = FakeObjects({key: data}, {"xpi-model": "default"}), FakeTable()
    batch_object = _batch(key, len(data), batch_id="b-000000000000000000000004")
    batch_id = batch_object.batch_id
    batch.split(batch_object, table, objects, BatchLimits(**LIMITS_ARGS), NOW)
    status = table.update_status(batch_id, {"state": "JOB"})
    entries = [
        e for i in range(int(status["chunks"])) for e in objects.get_json("b", batch.chunk_key(batch_id, i))
    ]
    world = World()
    budget = queue_processing.RetryBudget(time_left=lambda: 900.0, reserve_s=130, clock=lambda: NOW)

    # WHEN the allowed lines go through one job whose model fails one record
    prepared = batch_job_path.prepare(
        batch_id, status, entries, ports=world.ports, judge=judgement, budget=budget
    )
    assert [line for line, _ in prepared.records] == [1, 2, 4, 5, 6] and prepared.on_demand == [3]
    assert prepared.model_id is not None
    job_control.inject_fault("ModelErrorException", count=1, operations=["ModelInvocationJob"])
    job = submit_job(batch_id, prepared.model_id, prepared.records, TARGET, **ports)
    state = {"job": job}

    def ended() -> bool:
        check = check_job(state["job"], job_records=ports["job_records"], jobs=ports["jobs"])
        state["job"] = check.job
        return check.finished

    wait_until(ended, 30, what="the job ended")
    results = collect_job(state["job"], objects=ports["objects"])
    left = batch_job_path.collect(
        batch_id, status, entries, results.answered,
        ports=world.ports, judge=judgement, budget=budget, table=table, events=world.ports.events,
    )  # fmt: skip
    assert left == sorted([3, *results.failed]) and len(results.answered) == 4
    assert batch.release_only(batch_id, left, table, objects) == 2

    # THEN only the blocked line and the failed record start on-demand, in input order
    starter, workflow = FakeStarter(), FakeWorkflow()
    lines_starter = batch.LineStarter(table, objects, starter, BatchLimits(**LIMITS_ARGS))
    batch.arm(batch_id, "token", table, lines_starter, workflow)
    assert [rid for rid, _ in starter.started] == [f"{batch_id}-{n}" for n in left]
    for n in left:  # their workflows answer them (blocked and completed), as on-demand lines
        request_id = f"{batch_id}-{n}"
        outcome = "BLOCKED" if n == 3 else "COMPLETED"
        world.lineage.items[request_id] = world.lineage.items.get(request_id) or _lineage(
            request_id, outcome, batch_id
        )
        detail = {"request_id": request_id, "batch_id": batch_id, "status": outcome, "usage": {}}
        batch.record_progress(detail, table, lines_starter, workflow, world.lineage)
    assert workflow.finished == ["token"]
    batch.assemble(batch_object, table, objects, NOW)
    rows = [json.loads(r) for r in objects.files[f"results/AIDAEXAMPLE/{batch_id}.jsonl"].splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["status"] for r in rows] == [
        "COMPLETED",
        "COMPLETED",
        "BLOCKED",
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
    ]
    assert all(rows[n - 1]["output"]["text"] for n in results.answered)  # the job's answers, by line
    published = [detail["request_id"] for _, detail in world.ports.events.published]  # type: ignore[attr-defined]
    assert published == [f"{batch_id}-{n}" for n in sorted(results.answered)]  # one event per job line


LIMITS_ARGS: dict[str, Any] = {
    "max_bytes": 100_000, "max_lines": 50, "chunk_lines": 2, "concurrency": {"*": 2},
    "default_concurrency": 2, "retention_days": 30,
}  # fmt: skip


def _lineage(request_id: str, status: str, batch_id: str) -> Any:
    return _lineage_of(request_id, status, batch_id)
