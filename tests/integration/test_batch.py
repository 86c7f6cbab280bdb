"""Batch files on the local stack, through AWS APIs only: a producer uploads JSONL files to
the batch input bucket with boto3; the test reads results/<batch>.jsonl, the batch status item and the
`Batch *` events on the example subscriber queue."""

import gzip
import json
import uuid
from typing import Any

import pytest
from xpi.domain.batch import batch_id_for
from xpi_tools import batch_cli
from xpi_tools.emulator import EmulatorControl

from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import poll_until, wait_until

pytestmark = pytest.mark.integration

BATCH_TIMEOUT_S = 120


def _jsonl(lines: list[Any]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


class Batches:
    def __init__(self, stack: LocalStackClient, results: ResultCollector) -> None:
        self.stack, self.results = stack, results
        self.s3 = stack.client("s3")
        self.bucket = stack.outputs["BatchInputBucketName"]
        # The uploader's own prefix: its aws:userid (the bucket policy lets it write nowhere else).
        self.uploader = stack.client("sts").get_caller_identity()["UserId"]

    def upload(self, name: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        key = f"incoming/{self.uploader}/{name}"
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {})
        return batch_id_for(self.bucket, key, response["ETag"])

    def batch_events(self, batch_id: str) -> list[dict[str, Any]]:
        # Batch events have no request_id: the shared collector files them under "?".
        return [e for e in self.results.events_for("?") if e["detail"].get("batch_id") == batch_id]

    def wait(self, batch_id: str, timeout_s: float = BATCH_TIMEOUT_S) -> dict[str, Any]:
        if not poll_until(lambda: self.batch_events(batch_id), timeout_s, interval_s=0.3):
            status = self.status(batch_id)
            raise AssertionError(f"no Batch event for {batch_id} within {timeout_s} s; status: {status}")
        return self.batch_events(batch_id)[0]

    def results_file(self, batch_id: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"results/{self.uploader}/{batch_id}.jsonl")["Body"]
        return [json.loads(line) for line in body.iter_lines()]

    def status(self, batch_id: str) -> dict[str, Any] | None:
        table = self.stack.session.resource("dynamodb", endpoint_url=self.stack.state["aws"]).Table(
            self.stack.outputs["BatchTableName"]
        )
        item = table.get_item(Key={"batch_id": batch_id, "line": 0}, ConsistentRead=True).get("Item")
        return dict(item) if item else None


@pytest.fixture
def batches(local_stack: LocalStackClient, results: ResultCollector) -> Batches:
    return Batches(local_stack, results)


def test_mixed_file_allow_redact_block_and_bad_lines(batches: Batches, local_stack: LocalStackClient) -> None:
    # GIVEN a file whose bare lines take their model and caller from the object metadata
    lines: list[Any] = [
        {"prompt": "Name three rivers in Oregon.", "reply": {"row": "1"}},
        {"prompt": "Draft a letter to John, SSN 123-45-6789, email john.doe@example.com."},
        {"prompt": "CUI//SP-PRVCY\nPersonnel roster for the program office."},
        "{this is not json",
        {"prompt": "Hello", "inference": {"max_tokens": 0}},
        {"model": "default", "messages": [{"role": "user", "content": [{"text": "Two colours?"}]}]},
    ]
    defaults = json.dumps({"model": "default", "caller": {"project": "batch-it"}})

    # WHEN it is uploaded
    batch_id = batches.upload(
        f"mixed-{uuid.uuid4().hex[:8]}.jsonl", _jsonl(lines), {"xpi-defaults": defaults}
    )
    event = batches.wait(batch_id)

    # THEN one Batch Completed event with the counts
    assert event["detail-type"] == "Batch Completed", event
    detail = event["detail"]
    assert (detail["total"], detail["completed"], detail["blocked"], detail["failed"]) == (6, 3, 1, 2)
    assert detail["invalid"] == 2
    assert detail["input_tokens"] > 0 and detail["output_tokens"] > 0
    assert detail["estimated_cost_usd"] > 0
    assert detail["duration_s"] >= 0
    # AND the results file has one line per input line, in input order
    rows = batches.results_file(batch_id)
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["status"] for r in rows] == [
        "COMPLETED",
        "COMPLETED",
        "BLOCKED",
        "FAILED",
        "FAILED",
        "COMPLETED",
    ]
    assert rows[0]["output"]["text"] and rows[0]["reply"] == {"row": "1"}
    assert rows[1]["classification"]["decision"] == "redact"
    assert rows[2]["classification"]["decision"] == "block" and "output" not in rows[2]
    assert rows[3]["error"] == {
        "code": "RequestInvalid",
        "message": "the request is not a valid inference request",
        "problems": "request: json_invalid",
    }
    assert "inference.max_tokens" in rows[4]["error"]["problems"]
    # AND each valid line went through the per-request path: lineage with the batch as its source
    item = local_stack.lineage(f"{batch_id}-1")
    assert item is not None and item["status"] == "COMPLETED" and item["source"] == "s3_batch"
    assert item["caller_principal"]
    # AND the status item shows the finished batch
    status = batches.status(batch_id)
    assert status is not None and status["state"] == "COMPLETED" and status["done"] == 6


def test_a_line_takes_the_guards_of_a_single_request(
    batches: Batches, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    """Batch lines run through the inference workflow's own steps (classify, route, invoke): the security
    alert, the large answer stored in S3 and Bedrock's refusal each happen there as on the queue path."""
    # GIVEN Bedrock refuses the next call to one model, and a file with a classified banner, an answer too
    # large to carry inline and a line for that model
    micro = "us.amazon.nova-micro-v1:0"
    EmulatorControl(local_stack.state["emulator_control"]).inject_fault(
        "ValidationException", model=micro, count=1, message="Malformed input request, please reformat."
    )
    lines = [
        {"prompt": "SECRET//NOFORN\nOperational summary for the task force."},
        {
            "model": "claude",
            "prompt": "Write at length. [[emulator:output_chars=120000]]",
            "inference": {"max_tokens": 60000},
        },
        {"model": micro, "prompt": "Name a river."},
    ]

    # WHEN it is uploaded
    batch_id = batches.upload(f"guards-{uuid.uuid4().hex[:8]}.jsonl", _jsonl(lines), {"xpi-model": "default"})
    event = batches.wait(batch_id)

    # THEN the banner line is blocked and raises a security alert under its line's request id
    assert event["detail-type"] == "Batch Completed", event
    rows = batches.results_file(batch_id)
    assert [r["status"] for r in rows] == ["BLOCKED", "COMPLETED", "FAILED"]
    alert = results.wait_for(f"{batch_id}-1", detail_type="Security Alert")
    assert alert["detail"]["decision"] == "block" and "task force" not in json.dumps(alert)
    # AND the large answer was stored under outputs/ and its row points at it
    output = rows[1]["output"]
    assert "text" not in output and output["bytes"] == 120_000
    assert output["s3_uri"].startswith(f"s3://{local_stack.outputs['ArtifactsBucketName']}/outputs/")
    # AND the refused line failed with Bedrock's refusal, once
    assert rows[2]["error"]["code"] == "BedrockRejected"
    item = local_stack.lineage(f"{batch_id}-3")
    assert item is not None and item["status"] == "FAILED"


def test_gzip_file(
    batches: Batches,
    local_stack: LocalStackClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = [{"model": "default", "prompt": f"Say the number {n}."} for n in range(1, 13)]
    batch_id = batches.upload(f"gz-{uuid.uuid4().hex[:8]}.jsonl.gz", gzip.compress(_jsonl(lines)))

    event = batches.wait(batch_id)

    assert event["detail-type"] == "Batch Completed", event
    assert (event["detail"]["total"], event["detail"]["completed"]) == (12, 12)
    rows = batches.results_file(batch_id)
    assert [r["line"] for r in rows] == list(range(1, 13))
    assert all(r["status"] == "COMPLETED" for r in rows)
    # AND the operator command reads the status through the AWS API (AWS_ENDPOINT_URL, as on AWS)
    for name, value in {
        "AWS_ENDPOINT_URL": local_stack.state["aws"],
        "AWS_DEFAULT_REGION": local_stack.state["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    assert batch_cli.main(["status", batch_id, "--table", local_stack.outputs["BatchTableName"]]) == 0
    shown = capsys.readouterr().out
    assert f"batch    {batch_id}  COMPLETED" in shown
    assert "total 12  done 12  completed 12" in shown


def test_same_object_uploaded_twice_is_one_batch(batches: Batches, local_stack: LocalStackClient) -> None:
    # GIVEN the same bytes uploaded twice under the same key
    name = f"dup-{uuid.uuid4().hex[:8]}.jsonl"
    body = _jsonl([{"model": "default", "prompt": "Once only."}])
    batch_ids: list[str] = []
    state_machine = local_stack.outputs["BatchStateMachineArn"]

    # WHEN both uploads' notifications are handled
    started = local_stack.workflows_started_by(
        lambda: batch_ids.extend(batches.upload(name, body) for _ in range(2)),
        local_stack.state["resources"]["BatchUploadsQueue"],
        state_machine,
    )
    first, second = batch_ids
    assert first == second

    # THEN one batch ran: the second upload started none, so no second event can come from it
    assert [arn.rsplit(":", 1)[1] for arn in started] == [first]
    # AND, that run over and its events collected, one completion event
    batches.wait(first)
    local_stack.wait_until_nothing_more_can_come(batches.results, state_machine, first)
    assert len(batches.batch_events(first)) == 1
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["BatchStateMachineArn"]
    )["executions"]
    assert [e["name"] for e in executions].count(first) == 1

    # AND new content under that key is a new batch
    third = batches.upload(name, _jsonl([{"model": "default", "prompt": "A new version."}]))
    assert third != first
    assert batches.wait(third)["detail-type"] == "Batch Completed"


def test_two_batches_share_the_models_slots(batches: Batches) -> None:
    # GIVEN two files on the same model, uploaded together, with more lines than its 4 slots
    table = batches.stack.session.resource("dynamodb", endpoint_url=batches.stack.state["aws"]).Table(
        batches.stack.outputs["BatchTableName"]
    )
    slots_key = {"batch_id": "slots#fast", "line": 0}
    lines = [{"model": "fast", "prompt": f"Count to {n}."} for n in range(1, 9)]
    first = batches.upload(f"share-a-{uuid.uuid4().hex[:8]}.jsonl", _jsonl(lines))
    second = batches.upload(f"share-b-{uuid.uuid4().hex[:8]}.jsonl", _jsonl(lines))

    # WHEN they run, watched through the model's slots item
    most_in_flight, seen_waiting = 0, set()

    def both_finished_watching_the_slots() -> bool:
        nonlocal most_in_flight, seen_waiting
        slots = table.get_item(Key=slots_key, ConsistentRead=True).get("Item") or {}
        most_in_flight = max(most_in_flight, int(slots.get("in_flight", 0)))
        seen_waiting |= set(slots.get("waiting", set()))
        return bool(batches.batch_events(first) and batches.batch_events(second))

    wait_until(both_finished_watching_the_slots, BATCH_TIMEOUT_S, what="both batches' events")

    # THEN both finished every line, never with more than 4 lines in flight on the model in all
    for batch_id in (first, second):
        event = batches.wait(batch_id, timeout_s=1)
        assert event["detail-type"] == "Batch Completed", event
        assert (event["detail"]["total"], event["detail"]["completed"]) == (8, 8)
    assert 1 <= most_in_flight <= 4
    assert seen_waiting & {first, second}  # one of them did wait for a slot
    # AND every slot was given back, and no batch is left waiting
    slots = table.get_item(Key=slots_key, ConsistentRead=True)["Item"]
    assert int(slots["in_flight"]) == 0
    assert not set(slots.get("waiting", set())) & {first, second}


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("empty.jsonl", b"", "empty"),
        ("table.csv", b"a,b\n1,2\n", "not a JSONL file"),
        ("prose.jsonl", b"hello\nworld\n", "not JSONL"),
        ("broken.jsonl.gz", b"not gzip at all", "gzip"),
    ],
)
def test_bad_files_fail_the_batch_with_a_reason(
    batches: Batches, name: str, body: bytes, reason: str
) -> None:
    batch_id = batches.upload(f"{uuid.uuid4().hex[:8]}-{name}", body)

    event = batches.wait(batch_id)

    assert event["detail-type"] == "Batch Failed"
    assert reason in event["detail"]["reason"]
    status = batches.status(batch_id)
    assert status is not None and status["state"] == "FAILED"


def test_lost_progress_messages_are_reconciled_and_the_batch_completes(
    batches: Batches, local_stack: LocalStackClient
) -> None:
    # GIVEN the rule that carries line results to the progress queue has no target (every progress
    # message is lost; moto delivers to a disabled rule's targets, so they are removed), and a file of
    # more lines than its model runs at once (so lines wait on lost results to start)
    events = local_stack.client("events")
    bus = local_stack.outputs["EventBusName"]
    rule_name = local_stack.state["resources"]["BatchProgressRule"].split("|")[-1].rsplit("/", 1)[-1]
    targets = events.list_targets_by_rule(Rule=rule_name, EventBusName=bus)["Targets"]
    lines = [{"prompt": f"Name a colour ({n})."} for n in range(6)]
    events.remove_targets(Rule=rule_name, EventBusName=bus, Ids=[t["Id"] for t in targets])
    try:
        # WHEN it is uploaded
        batch_id = batches.upload(
            f"lost-{uuid.uuid4().hex[:8]}.jsonl", _jsonl(lines), {"xpi-model": "default"}
        )
        event = batches.wait(batch_id, timeout_s=180)
    finally:
        events.put_targets(Rule=rule_name, EventBusName=bus, Targets=targets)

    # THEN the wait's heartbeat led to reconciliation rounds that recorded every line, and it completed
    assert event["detail-type"] == "Batch Completed", event
    assert (event["detail"]["total"], event["detail"]["completed"]) == (6, 6)
    assert [r["status"] for r in batches.results_file(batch_id)] == ["COMPLETED"] * 6
    assert all(r["output"]["text"] for r in batches.results_file(batch_id))
