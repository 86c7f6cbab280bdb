"""Batch files (issue 6): the pure parts, the service with in-memory fakes, the table against moto."""

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.batch_store import BatchObjects, BatchTable
from xpi.domain.batch import (
    BatchInvalid,
    RawLine,
    batch_id_for,
    iter_lines,
    line_number_of,
    manifest_key_for,
    parse_defaults,
    prepare_line,
    window_for,
)
from xpi.domain.errors import RequestInvalid
from xpi.models.batch import BatchObject, LineResult
from xpi.models.workflow import WorkflowInput
from xpi.services.batch import BatchLimits, LineStarter, arm, assemble, record_progress, split

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- domain
def test_batch_id_is_stable_per_content_and_key() -> None:
    assert batch_id_for("b", "k.jsonl", '"abc"') == batch_id_for("b", "k.jsonl", "abc")
    assert batch_id_for("b", "k.jsonl", "abc") != batch_id_for("b", "k.jsonl", "abd")
    assert batch_id_for("b", "k.jsonl", "abc") != batch_id_for("b", "other.jsonl", "abc")


@pytest.mark.parametrize("gzipped", [False, True])
def test_iter_lines_streams_plain_and_gzip(gzipped: bool) -> None:
    data = b'{"a": 1}\n{"b": 2}\r\n\n{"c": 3}'
    body = io.BytesIO(gzip.compress(data) if gzipped else data)

    lines = list(iter_lines(body, gzipped=gzipped))

    assert [(line.number, line.data) for line in lines] == [
        (1, b'{"a": 1}'),
        (2, b'{"b": 2}'),
        (3, b""),
        (4, b'{"c": 3}'),
    ]


def test_iter_lines_skips_an_over_long_line_without_keeping_it() -> None:
    body = io.BytesIO(b"x" * 50 + b"\n" + b'{"ok": 1}\n')

    lines = list(iter_lines(body, gzipped=False, max_line_bytes=10))

    assert lines[0] == RawLine(1, None, 51)
    assert lines[1].data == b'{"ok": 1}'


def test_iter_lines_rejects_a_broken_gzip_file() -> None:
    with pytest.raises(BatchInvalid, match="gzip"):
        list(iter_lines(io.BytesIO(b"not gzip"), gzipped=True))


def test_prepare_line_applies_defaults_and_the_batch_request_id() -> None:
    raw = RawLine(3, b'{"prompt": "Hi", "request_id": "mine"}', 10)

    request = prepare_line(raw, {"model": "default", "caller": {"project": "p"}}, "b-x-3")

    assert request.request_id == "b-x-3"
    assert request.model == "default"
    assert request.caller.project == "p"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"[1]", "JSON object"), (b"{nope", "not valid JSON"), (b'{"prompt": "x"}', "model")],
)
def test_prepare_line_says_why_a_line_is_bad(data: bytes, message: str) -> None:
    with pytest.raises(RequestInvalid, match=message):
        prepare_line(RawLine(1, data, len(data)), {}, "b-x-1")


def test_defaults_reject_fields_that_cannot_be_defaults() -> None:
    assert parse_defaults('{"defaults": {"model": "m"}}', "manifest") == {"model": "m"}
    with pytest.raises(BatchInvalid, match="prompt"):
        parse_defaults('{"prompt": "p"}', "manifest")


def test_window_is_the_smallest_concurrency_of_the_models_used() -> None:
    assert window_for({"fast", "default"}, {"fast": 8, "default": 3, "*": 5}, 4) == 3
    assert window_for({"other"}, {"*": 5}, 4) == 5
    assert window_for(set(), {}, 4) == 4


def test_line_numbers_come_back_from_request_ids() -> None:
    assert line_number_of("b-abc-12", "b-abc") == 12
    assert line_number_of("other-12", "b-abc") is None
    assert manifest_key_for("incoming/a.jsonl.gz") == "incoming/a.manifest.json"


# ---------------------------------------------------------------------------------------------- service
class FakeTable:
    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def create_status(self, batch_id: str, attributes: dict[str, Any]) -> bool:
        if 0 in self.items:
            return False
        self.items[0] = {"batch_id": batch_id, **attributes}
        return True

    def update_status(self, batch_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        self.items.setdefault(0, {"batch_id": batch_id}).update(attributes)
        return dict(self.items[0])

    def status(self, batch_id: str) -> dict[str, Any] | None:
        return dict(self.items[0]) if 0 in self.items else None

    def claim_transition(self, batch_id: str, from_state: str, to_state: str) -> bool:
        if self.items[0].get("state") != from_state:
            return False
        self.items[0]["state"] = to_state
        return True

    def put_invalid_lines(self, batch_id: str, results: list[LineResult]) -> None:
        for result in results:
            self.items[result.line] = result.model_dump(exclude_none=True)

    def record_line(self, batch_id: str, result: LineResult, counters: dict[str, int | float]) -> bool:
        if result.line in self.items:
            return False
        self.items[result.line] = result.model_dump(exclude_none=True)
        for name, value in counters.items():
            self.items[0][name] = self.items[0].get(name, 0) + value
        return True

    def claim_release(self, batch_id: str, line: int) -> bool:
        item = self.items.get(line)
        if item is None or item.get("released_next"):
            return False
        item["released_next"] = True
        return True

    def next_release(self, batch_id: str) -> dict[str, Any]:
        self.items[0]["released"] = self.items[0].get("released", 0) + 1
        return dict(self.items[0])

    def lines(self, batch_id: str) -> Iterator[LineResult]:
        for line in sorted(k for k in self.items if k > 0):
            yield LineResult.model_validate(
                {k: v for k, v in self.items[line].items() if k in LineResult.model_fields}
            )


class FakeObjects:
    def __init__(self, files: dict[str, bytes], metadata: dict[str, str] | None = None) -> None:
        self.files = files
        self.metadata = metadata or {}
        self.json: dict[str, Any] = {}

    def open(self, bucket: str, key: str, version_id: str | None) -> tuple[Any, dict[str, str], int]:
        return io.BytesIO(self.files[key]), self.metadata, len(self.files[key])

    def read_text_if_exists(self, bucket: str, key: str) -> str | None:
        data = self.files.get(key)
        return data.decode() if data is not None else None

    def put_json(self, bucket: str, key: str, value: Any) -> None:
        self.json[key] = json.loads(json.dumps(value))

    def get_json(self, bucket: str, key: str) -> Any:
        return self.json[key]

    def write_stream(self, bucket: str, key: str, lines: Iterator[bytes]) -> int:
        self.files[key] = b"".join(lines)
        return len(self.files[key])


class FakeStarter:
    def __init__(self) -> None:
        self.started: list[tuple[str, WorkflowInput]] = []

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        self.started.append((request_id, workflow_input))
        return True


class FakeWorkflow:
    def __init__(self) -> None:
        self.finished: list[str] = []

    def lines_finished(self, task_token: str, output: dict[str, Any]) -> None:
        self.finished.append(task_token)


LIMITS = BatchLimits(max_bytes=10_000, max_lines=50, chunk_lines=2, concurrency={"*": 2})


def _batch(key: str, size: int) -> BatchObject:
    return BatchObject(
        batch_id="b-test",
        bucket="bucket",
        key=key,
        etag="e",
        size=size,
        principal="uploader",
        uploaded_at=NOW,
    )


def _file(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _event(request_id: str, status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "batch_id": "b-test",
        "status": status,
        "usage": {"input_tokens": 3, "output_tokens": 5, "estimated_cost_usd": 0.001},
        "output": {"text": "ok", "bytes": 2, "sha256": "0" * 64},
    }


def test_a_batch_runs_in_a_window_and_finishes_once() -> None:
    # GIVEN a file of five valid lines and one bad one, split into chunks of two
    data = _file([json.dumps({"prompt": f"p{n}"}) for n in range(5)] + ["{bad"])
    objects = FakeObjects({"in/a.jsonl": data}, {"xpi-model": "default"})
    table, starter, workflow = FakeTable(), FakeStarter(), FakeWorkflow()
    batch = _batch("in/a.jsonl", len(data))

    result = split(batch, table, objects, LIMITS, NOW)

    assert (result.total, result.valid, result.invalid, result.chunks, result.window) == (6, 5, 1, 3, 2)
    assert starter.started == []  # nothing starts before the workflow waits on its token
    # WHEN the workflow arms the batch
    lines = LineStarter(table, objects, starter)
    assert arm("b-test", "token-1", table, lines, workflow) == 2
    assert [rid for rid, _ in starter.started] == ["b-test-1", "b-test-2"]
    source = starter.started[0][1].source
    assert (source.kind, source.batch_id, source.reference) == (
        "s3_batch",
        "b-test",
        "s3://bucket/in/a.jsonl#1",
    )
    # AND results come back, one twice
    assert record_progress(_event("b-test-1"), table, lines, workflow) == "recorded"
    assert record_progress(_event("b-test-1"), table, lines, workflow) == "duplicate"
    assert len(starter.started) == 3  # one finished, one more started: never more than two in flight
    for n in (2, 3, 4, 5):
        record_progress(_event(f"b-test-{n}", "BLOCKED" if n == 3 else "COMPLETED"), table, lines, workflow)
    # THEN every line ran once, and the workflow was resumed exactly once
    assert sorted(rid for rid, _ in starter.started) == [f"b-test-{n}" for n in range(1, 6)]
    assert workflow.finished == ["token-1"]
    status = table.status("b-test")
    assert status is not None
    assert (status["done"], status["completed"], status["blocked"], status["failed"]) == (6, 4, 1, 1)
    # AND the results file has every line in order
    summary = assemble(batch, table, objects, NOW)
    rows = [json.loads(line) for line in objects.files["results/b-test.jsonl"].splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[5]["status"] == "FAILED"
    assert (summary.total, summary.completed, summary.blocked, summary.failed) == (6, 4, 1, 1)
    assert summary.input_tokens == 15


@pytest.mark.parametrize(
    ("key", "data", "message"),
    [
        ("in/a.csv", b"a,b\n", "not a JSONL file"),
        ("in/a.jsonl", b"", "empty"),
        ("in/a.jsonl", b"hello\n", "not JSONL"),
        ("in/a.jsonl", b'{"prompt": "p"}\n' * 51, "more than 50 lines"),
        ("in/a.jsonl", b"x" * 10_001, "limit is 10000"),
    ],
)
def test_bad_files_fail_the_batch_before_anything_starts(key: str, data: bytes, message: str) -> None:
    with pytest.raises(BatchInvalid, match=message):
        split(_batch(key, len(data)), FakeTable(), FakeObjects({key: data}), LIMITS, NOW)


def test_a_file_with_no_valid_line_finishes_at_arm() -> None:
    data = _file(['{"prompt": ""}'])
    table, workflow, objects = FakeTable(), FakeWorkflow(), FakeObjects({"in/a.jsonl": data})
    split(_batch("in/a.jsonl", len(data)), table, objects, LIMITS, NOW)

    started = arm("b-test", "t", table, LineStarter(table, objects, FakeStarter()), workflow)

    assert started == 0
    assert workflow.finished == ["t"]


# ---------------------------------------------------------------------------------------------- moto
@pytest.fixture
def batch_table() -> Iterator[BatchTable]:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="batches",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "batch_id", "AttributeType": "S"},
                {"AttributeName": "line", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "batch_id", "KeyType": "HASH"},
                {"AttributeName": "line", "KeyType": "RANGE"},
            ],
        )
        yield BatchTable("batches")


def test_table_counts_a_line_once_and_reads_lines_in_order(batch_table: BatchTable) -> None:
    assert batch_table.create_status("b", {"state": "RUNNING", "total": 3, "done": 0})
    assert not batch_table.create_status("b", {"state": "RUNNING"})
    for line in (3, 1, 2):
        result = LineResult(line=line, status="COMPLETED")
        assert batch_table.record_line("b", result, {"done": 1, "estimated_cost_usd": 0.5})
    assert not batch_table.record_line("b", LineResult(line=2, status="COMPLETED"), {"done": 1})
    assert batch_table.claim_release("b", 2)
    assert not batch_table.claim_release("b", 2)

    status = batch_table.status("b")

    assert status is not None
    assert (status["done"], status["estimated_cost_usd"]) == (3, 1.5)
    assert [r.line for r in batch_table.lines("b")] == [1, 2, 3]
    assert batch_table.claim_transition("b", "RUNNING", "ASSEMBLING")
    assert not batch_table.claim_transition("b", "RUNNING", "ASSEMBLING")


def test_results_are_written_through_a_multipart_upload() -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket="batch-results", CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"}
        )
        lines = (f'{{"line": {n}}}\n'.encode() for n in range(1, 1001))

        written = BatchObjects().write_stream("batch-results", "results/x.jsonl", lines)

        body = s3.get_object(Bucket="batch-results", Key="results/x.jsonl")["Body"].read()
        assert written == len(body)
        assert body.splitlines()[-1] == b'{"line": 1000}'


# ---------------------------------------------------------------------------------------------- handlers
EVENTS = __import__("pathlib").Path(__file__).resolve().parents[3] / "events" / "batch"


def test_start_finds_the_uploaded_object_in_the_s3_notification() -> None:
    from xpi.handlers.batch_start import batch_objects

    sqs = json.loads((EVENTS / "start" / "sqs-s3-notification.json").read_text())
    notification = json.loads(sqs["Records"][0]["body"])

    (found,) = batch_objects(notification, "incoming/")

    assert found.key == "incoming/claims-2026-11-27.jsonl"
    assert found.version_id == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"
    assert found.principal == "AWS:AROAQXZEXAMPLEROLEID1:claims-intake"
    assert found.batch_id == batch_id_for(found.bucket, found.key, found.etag)
    assert batch_objects({"Event": "s3:TestEvent"}, "incoming/") == []
    assert batch_objects(notification, "elsewhere/") == []


def test_the_sample_file_splits_with_its_sidecar_defaults() -> None:
    data = (EVENTS / "files" / "claims-2026-11-27.jsonl").read_bytes()
    manifest = (EVENTS / "files" / "claims-2026-11-27.manifest.json").read_bytes()
    objects = FakeObjects({"in/claims.jsonl": data, "in/claims.manifest.json": manifest})

    result = split(_batch("in/claims.jsonl", len(data)), FakeTable(), objects, LIMITS, NOW)

    assert (result.total, result.valid, result.invalid) == (5, 4, 1)
    first = objects.json["work/b-test/chunks/000000.json"][0]["request"]
    assert first["model"] == "default"
    assert first["caller"]["project"] == "claims"


def test_progress_reads_the_line_from_the_result_event() -> None:
    from xpi.domain.batch import line_result_from_event

    sqs = json.loads((EVENTS / "progress" / "sqs-result-event.json").read_text())
    detail = json.loads(sqs["Records"][0]["body"])["detail"]

    result = line_result_from_event(detail, line_number_of(detail["request_id"], detail["batch_id"]) or 0)

    assert (result.line, result.status, result.reply) == (1, "COMPLETED", {"row": "1"})


def test_a_failure_reason_comes_from_the_lambda_error() -> None:
    from xpi.handlers.batch_assemble import _reason

    cause = json.dumps({"errorMessage": "the file is empty", "errorType": "BatchInvalid"})

    assert _reason({"Error": "BatchInvalid", "Cause": cause}) == "BatchInvalid: the file is empty"
    assert _reason({"Error": "States.Timeout"}) == "States.Timeout: no cause given"


@pytest.mark.parametrize(
    "name", ["split/workflow-input.json", "assemble/workflow-state.json", "assemble/failure-state.json"]
)
def test_workflow_samples_parse(name: str) -> None:
    event = json.loads((EVENTS / name).read_text())

    BatchObject.model_validate(event["batch"])
