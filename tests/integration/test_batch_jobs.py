"""The batch workflow's job path on the local stack: a file at or above BatchJobMinLines goes through one
Bedrock batch inference job (the emulator's job API over the commercial moto server's S3), its answers
are made final through the on-demand path's own steps, and what the job left runs on-demand; the results
file is in input order either way. A stack of its own, with BatchJobMinLines 5 (the session stack keeps
the default 0: every other batch test runs on-demand) and BatchJobPageLines 3 (FinishJob runs page after
page for every job here)."""

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from xpi.domain.batch import batch_id_for
from xpi.domain.pricing import price_table
from xpi_tools.emulator import EmulatorControl
from xpi_tools.local.faults import ControlClient

from tests.helpers.stack import LocalStackClient, ResultCollector, own_stack
from tests.helpers.waiting import poll_until

pytestmark = pytest.mark.integration

THRESHOLD = 5
PAGE_LINES = 3
BATCH_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def job_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    with own_stack(
        tmp_path_factory.mktemp("stack-batch-jobs"),
        "batch-jobs-stack.log",
        "--stack-name",
        "xpi-jobs",
        "--parameter",
        f"BatchJobMinLines={THRESHOLD}",
        "--parameter",
        f"BatchJobPageLines={PAGE_LINES}",  # every job here is made final over more than one page
    ) as stack:
        # Jobs of a few records (Bedrock's minimum is 100) that pass each phase in a fraction of a second.
        EmulatorControl(stack.state["emulator_control"]).set_batch(phase_seconds=0.2, min_records_per_job=2)
        yield stack


@pytest.fixture(scope="module")
def job_results(job_stack: LocalStackClient) -> Iterator[ResultCollector]:
    collector = ResultCollector(job_stack.client("sqs"), job_stack.outputs["SubscriberQueueUrl"])
    yield collector
    collector.stop()


@pytest.fixture
def emulator(job_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(job_stack.state["emulator_control"])
    yield control
    control.reset()  # faults


class JobBatches:
    def __init__(self, stack: LocalStackClient, results: ResultCollector) -> None:
        self.stack, self.results = stack, results
        self.s3 = stack.client("s3")
        self.bucket = stack.outputs["BatchInputBucketName"]
        self.uploader = stack.client("sts").get_caller_identity()["UserId"]
        self.table = stack.session.resource("dynamodb", endpoint_url=stack.state["aws"]).Table(
            stack.outputs["BatchTableName"]
        )
        commercial = stack.state["commercial_batch"]
        self.commercial_s3 = boto3.client(
            "s3",
            endpoint_url=commercial["url"],
            region_name=commercial["region"],
            aws_access_key_id="commercial",
            aws_secret_access_key="commercial",
        )
        self.commercial_bucket = commercial["bucket"]

    def upload(self, lines: list[dict[str, Any]]) -> str:
        key = f"incoming/{self.uploader}/jobs-{uuid.uuid4().hex[:8]}.jsonl"
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return batch_id_for(self.bucket, key, response["ETag"])

    def wait(self, batch_id: str) -> dict[str, Any]:
        def event() -> list[dict[str, Any]]:
            return [e for e in self.results.events_for("?") if e["detail"].get("batch_id") == batch_id]

        if not poll_until(event, BATCH_TIMEOUT_S, interval_s=0.3):
            raise AssertionError(
                f"no Batch event for {batch_id} within {BATCH_TIMEOUT_S} s: {self.item(batch_id, 0)}"
            )
        return event()[0]

    def results_file(self, batch_id: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"results/{self.uploader}/{batch_id}.jsonl")["Body"]
        return [json.loads(line) for line in body.iter_lines()]

    def item(self, batch_id: str, line: int) -> dict[str, Any] | None:
        found = self.table.get_item(Key={"batch_id": batch_id, "line": line}, ConsistentRead=True).get("Item")
        return dict(found) if found else None

    def job(self, batch_id: str) -> dict[str, Any]:
        item = self.item(batch_id, -1)  # the job item, beside the status item
        assert item is not None, f"no job item for {batch_id}"
        job: dict[str, Any] = json.loads(str(item["job"]))
        return job


@pytest.fixture
def batches(job_stack: LocalStackClient, job_results: ResultCollector) -> JobBatches:
    return JobBatches(job_stack, job_results)


def _lines(count: int, blocked: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    lines = [{"model": "default", "prompt": f"Summarise item {n} in one line."} for n in range(1, count + 1)]
    for line in blocked:
        lines[line - 1] = {"model": "default", "prompt": "CUI\n\nSummarise this incident report.\n\nCUI"}
    return lines


def test_a_file_above_the_threshold_goes_through_one_job_with_results_in_input_order(
    batches: JobBatches, job_stack: LocalStackClient, emulator: EmulatorControl
) -> None:
    # GIVEN a file of 8 lines for one batch-capable model, line 3 one that policy blocks (a CUI banner)
    batch_id = batches.upload(_lines(8, blocked=(3,)))

    # WHEN it is processed
    event = batches.wait(batch_id)

    # THEN the batch completed with every line, in input order
    assert event["detail-type"] == "Batch Completed", event
    rows = batches.results_file(batch_id)
    assert [r["line"] for r in rows] == list(range(1, 9))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2 + ["BLOCKED"] + ["COMPLETED"] * 5
    assert all(r["output"]["text"] for r in rows if r["status"] == "COMPLETED")
    # AND the seven allowed lines went through one job that completed; the blocked line never reached it
    job = batches.job(batch_id)
    assert (job["status"], job["records"]) == ("Completed", 7)
    records = batches.commercial_s3.get_object(
        Bucket=batches.commercial_bucket, Key=f"xpi/{batch_id}/input/records.jsonl"
    )
    assert records["ServerSideEncryption"] == "aws:kms"
    assert len(records["Body"].read().splitlines()) == 7
    # AND each answered line's lineage names the job as its credential; the blocked line's is on-demand's
    answered = job_stack.lineage(f"{batch_id}-1")
    assert answered is not None and answered["status"] == "COMPLETED"
    assert answered.get("credential_version") == "batch-job"
    # AND its cost is the price table's batch price for its tokens (half the on-demand price)
    price = price_table().models[str(answered["model_id"])]
    assert price.batch_input is not None and price.batch_output is not None
    usage = answered["usage"]
    batch_cost = (
        int(usage["input_tokens"]) * price.batch_input + int(usage["output_tokens"]) * price.batch_output
    ) / 1000
    assert float(answered["estimated_cost_usd"]) == pytest.approx(batch_cost, abs=1e-8)
    assert batch_cost == pytest.approx(
        (int(usage["input_tokens"]) * price.input + int(usage["output_tokens"]) * price.output) / 2000
    )
    blocked = job_stack.lineage(f"{batch_id}-3")
    assert blocked is not None and blocked["status"] == "BLOCKED"
    # AND the status item counts every line once
    status = batches.item(batch_id, 0)
    assert status is not None and status["state"] == "COMPLETED"
    assert (int(status["done"]), int(status["completed"]), int(status["blocked"])) == (8, 7, 1)
    # AND a job line's result event says it was billed as a batch; the deployed progress rule passes the
    # blocked line's event and none of the job's (FinishJob counted them: nothing left to progress)
    job_event = batches.results.wait_for(f"{batch_id}-1")
    blocked_event = batches.results.wait_for(f"{batch_id}-3")
    assert job_event["detail"]["usage"]["billing"] == "batch"
    assert "billing" not in (blocked_event["detail"].get("usage") or {})
    passed = _passed_by_progress_rule(job_stack, [blocked_event, job_event])
    assert passed == [blocked_event["detail"]["request_id"]]


def _passed_by_progress_rule(stack: LocalStackClient, events: list[dict[str, Any]]) -> list[str]:
    """The request ids of `events` that the deployed BatchProgressRule's pattern passes, found by sending
    them to a bus of their own with a rule of that pattern (moto has no TestEventPattern)."""
    bus_api, sqs = stack.client("events"), stack.client("sqs")
    rule = stack.state["resources"]["BatchProgressRule"].split("|")[-1].rsplit("/", 1)[-1]
    pattern = bus_api.describe_rule(Name=rule, EventBusName=stack.outputs["EventBusName"])["EventPattern"]
    name = f"pattern-check-{uuid.uuid4().hex[:8]}"
    bus_api.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule_arn = bus_api.put_rule(Name=name, EventBusName=name, EventPattern=pattern)["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    bus_api.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "check", "Arn": queue_arn}])
    bus_api.put_events(
        Entries=[
            {
                "EventBusName": name,
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
            for event in events
        ]
    )
    passed: list[str] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages"
    ):
        passed += [json.loads(m["Body"])["detail"]["request_id"] for m in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return passed


def test_a_file_below_the_threshold_runs_on_demand_without_a_job(batches: JobBatches) -> None:
    batch_id = batches.upload(_lines(THRESHOLD - 1))

    event = batches.wait(batch_id)

    assert event["detail-type"] == "Batch Completed", event
    assert [r["status"] for r in batches.results_file(batch_id)] == ["COMPLETED"] * (THRESHOLD - 1)
    assert batches.item(batch_id, -1) is None  # no job item: no job


def test_a_retried_submission_makes_one_job(batches: JobBatches, job_stack: LocalStackClient) -> None:
    # GIVEN the job function's runtime dies right after its first answer (the submission went through,
    # the workflow never hears of it)
    control = ControlClient(job_stack.state["control"])
    control.kill_runtime("BatchJobFunction", 1, after="return")
    try:
        # WHEN a file above the threshold is processed
        batch_id = batches.upload(_lines(6))
        event = batches.wait(batch_id)
        fired = sum(kill["fired"] for kill in control.faults()["kills"])
    finally:
        control.clear()

    # THEN the workflow ran the submission again, and Bedrock has one job for the batch
    assert fired == 1
    assert event["detail-type"] == "Batch Completed", event
    bedrock = _bedrock(job_stack)
    listed = bedrock.list_model_invocation_jobs(nameContains=batch_id)["invocationJobSummaries"]
    assert [j["jobArn"] for j in listed] == [batches.job(batch_id)["job_arn"]]
    rows = batches.results_file(batch_id)
    assert [(r["line"], r["status"]) for r in rows] == [(n, "COMPLETED") for n in range(1, 7)]


def test_a_job_with_failed_records_completes_through_on_demand_in_input_order(
    batches: JobBatches, job_stack: LocalStackClient, emulator: EmulatorControl
) -> None:
    # GIVEN the model fails two of the job's records
    emulator.inject_fault("ModelErrorException", count=2, operations=["ModelInvocationJob"])

    # WHEN a file above the threshold is processed
    batch_id = batches.upload(_lines(7))
    event = batches.wait(batch_id)

    # THEN every line completed, in input order: five answered by the job, two on-demand
    assert event["detail-type"] == "Batch Completed", event
    rows = batches.results_file(batch_id)
    assert [(r["line"], r["status"]) for r in rows] == [(n, "COMPLETED") for n in range(1, 8)]
    credentials = [
        (job_stack.lineage(f"{batch_id}-{n}") or {}).get("credential_version") for n in range(1, 8)
    ]
    assert credentials.count("batch-job") == 5
    status = batches.item(batch_id, 0)
    assert status is not None and int(status["release_total"]) == 2 and int(status["done"]) == 7


def _bedrock(stack: LocalStackClient) -> Any:
    """Bedrock's job API with a key of the emulator's own (the stack's jobs are the account's)."""
    key_id, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    EmulatorControl(stack.state["emulator_control"]).add_access_key(key_id, secret)
    return boto3.client(
        "bedrock",
        endpoint_url=stack.state["bedrock"],
        region_name=stack.state["bedrock_region"],
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
