"""Batch files: the pure parts, the service with in-memory fakes, the table against moto."""

import dataclasses
import gzip
import hashlib
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError
from xpi.adapters import aws
from xpi.adapters.batch_store import DynamoBatchTable, S3BatchObjects
from xpi.domain.batch import (
    BatchInvalid,
    BatchLimits,
    RawLine,
    batch_id_for,
    batch_objects,
    caller_of,
    failure_reason,
    iter_lines,
    line_number_of,
    line_result_from_event,
    manifest_key_for,
    parse_defaults,
    prepare_line,
    window_for,
)
from xpi.domain.errors import MESSAGES, RequestInvalid
from xpi.models.batch import BatchFailure, BatchObject, BatchStepInput, LineResult, S3Notification
from xpi.models.lineage import LineageItem
from xpi.models.workflow import StepError, WorkflowInput
from xpi.services.batch import (
    LineStarter,
    arm,
    assemble,
    record_failure,
    record_progress,
    release_only,
    split,
    start_batches,
)

from tests.helpers.aws import create_table
from tests.helpers.errors import raises_with_reason
from tests.helpers.fakes import FakeBatchStarter, FakeLineageStore

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
    with raises_with_reason(BatchInvalid, "gzip"):
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
    with raises_with_reason(RequestInvalid, message):
        prepare_line(RawLine(1, data, len(data)), {}, "b-x-1")


def test_defaults_reject_fields_that_cannot_be_defaults() -> None:
    assert parse_defaults('{"defaults": {"model": "m"}}', "manifest") == {"model": "m"}
    with raises_with_reason(BatchInvalid, "prompt"):
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
    """The batch table in memory, with the same conditional behaviour as BatchTable."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], dict[str, Any]] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self.waiting_on: dict[str, set[str]] = {}
        self.group_writes = 0  # record_lines calls: one request each on DynamoDB

    def create_status(self, batch_id: str, attributes: dict[str, Any]) -> bool:
        if (batch_id, 0) in self.items:
            return False
        self.items[batch_id, 0] = {"batch_id": batch_id, **attributes}
        return True

    def update_status(self, batch_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        self.items.setdefault((batch_id, 0), {"batch_id": batch_id}).update(attributes)
        return dict(self.items[batch_id, 0])

    def status(self, batch_id: str) -> dict[str, Any] | None:
        item = self.items.get((batch_id, 0))
        return dict(item) if item else None

    def claim_transition(self, batch_id: str, from_state: str, to_state: str) -> bool:
        if self.items[batch_id, 0].get("state") != from_state:
            return False
        self.items[batch_id, 0]["state"] = to_state
        return True

    def put_invalid_lines(self, batch_id: str, results: list[LineResult]) -> None:
        for result in results:
            self.items[batch_id, result.line] = {
                **result.model_dump(exclude_none=True),
                "released_next": True,
            }

    def record_line(
        self, batch_id: str, result: LineResult, counters: dict[str, int | float], *, released: bool = False
    ) -> bool:
        if (batch_id, result.line) in self.items:
            return False
        self.items[batch_id, result.line] = result.model_dump(exclude_none=True)
        if released:
            self.items[batch_id, result.line]["released_next"] = True
        for name, value in counters.items():
            self.items[batch_id, 0][name] = self.items[batch_id, 0].get(name, 0) + value
        return True

    def record_lines(
        self,
        batch_id: str,
        lines: Sequence[tuple[LineResult, dict[str, int | float]]],
        *,
        released: bool = False,
    ) -> list[bool]:
        self.group_writes += 1
        return [self.record_line(batch_id, result, counters, released=released) for result, counters in lines]

    def claim_release(self, batch_id: str, line: int) -> bool:
        item = self.items.get((batch_id, line))
        if item is None or item.get("released_next"):
            return False
        item["released_next"] = True
        return True

    def claim_line(self, batch_id: str, index: int) -> bool:
        status = self.items[batch_id, 0]
        if status.get("released") != index:
            return False
        status["released"] = index + 1
        return True

    def acquire_slots(self, slots: Mapping[str, int]) -> bool:
        if any(self.in_flight.get(model, 0) >= limit for model, limit in slots.items()):
            return False
        for model in slots:
            self.in_flight[model] = self.in_flight.get(model, 0) + 1
            self.most_in_flight[model] = max(self.most_in_flight.get(model, 0), self.in_flight[model])
        return True

    def release_slots(self, models: Sequence[str]) -> None:
        for model in models:
            self.in_flight[model] = max(0, self.in_flight.get(model, 0) - 1)

    def add_waiting(self, models: Sequence[str], batch_id: str) -> None:
        for model in models:
            self.waiting_on.setdefault(model, set()).add(batch_id)

    def remove_waiting(self, models: Sequence[str], batch_id: str) -> None:
        for model in models:
            self.waiting_on.get(model, set()).discard(batch_id)

    def waiting(self, models: Sequence[str]) -> list[str]:
        return sorted(set().union(*(self.waiting_on.get(model, set()) for model in models)))

    def lines(self, batch_id: str) -> Iterator[LineResult]:
        for _, line in sorted(key for key in self.items if key[0] == batch_id and key[1] > 0):
            yield LineResult.model_validate(
                {k: v for k, v in self.items[batch_id, line].items() if k in LineResult.model_fields}
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


def batch_limits(chunk_lines: int = 2, **concurrency: int) -> BatchLimits:
    return BatchLimits(
        max_bytes=10_000,
        max_lines=50,
        chunk_lines=chunk_lines,
        concurrency=concurrency,
        default_concurrency=4,
        retention_days=30,
    )


LIMITS = batch_limits(**{"*": 2})


def _batch(key: str, size: int, batch_id: str = "b-test") -> BatchObject:
    return BatchObject(
        batch_id=batch_id,
        bucket="bucket",
        key=key,
        etag="e",
        size=size,
        principal="uploader",
        uploaded_at=NOW,
    )


def _file(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# What the inference workflow records before it emits a line's result event: the events these tests
# send are xpi's own, so their lineage agrees (a forged one's does not: test_forged_line_results...).
EMITTED = FakeLineageStore()


def _lineage_of(request_id: str, status: str, batch_id: str | None, source: str = "s3_batch") -> LineageItem:
    return LineageItem(
        request_id=request_id, status=status, created_at=NOW.isoformat(), day="2026-11-27",
        expires_at=0, caller_principal="AIDAEXAMPLE", source=source, model_requested="default",
        batch_id=batch_id,
    )  # fmt: skip


def _event(request_id: str, status: str = "COMPLETED") -> dict[str, Any]:
    batch_id = request_id.rsplit("-", 1)[0]
    EMITTED.items[request_id] = _lineage_of(request_id, status, batch_id)
    return {
        "request_id": request_id,
        "batch_id": request_id.rsplit("-", 1)[0],
        "status": status,
        "usage": {"input_tokens": 3, "output_tokens": 5, "estimated_cost_usd": 0.001},
        "output": {"text": "ok", "bytes": 2, "sha256": "0" * 64},
    }


def test_a_batch_runs_in_a_window_and_finishes_once() -> None:
    # GIVEN a file of five valid lines and one bad one, split into chunks of two
    data = _file([json.dumps({"prompt": f"p{n}"}) for n in range(5)] + ["{bad"])
    objects = FakeObjects({"in/AIDAEXAMPLE/a.jsonl": data}, {"xpi-model": "default"})
    table, starter, workflow = FakeTable(), FakeStarter(), FakeWorkflow()
    batch = _batch("in/AIDAEXAMPLE/a.jsonl", len(data))

    result = split(batch, table, objects, LIMITS, NOW)

    assert (result.total, result.valid, result.invalid, result.chunks, result.window) == (6, 5, 1, 3, 2)
    assert starter.started == []  # nothing starts before the workflow waits on its token
    # WHEN the workflow arms the batch
    lines = LineStarter(table, objects, starter, LIMITS)
    assert arm("b-test", "token-1", table, lines, workflow) == 2
    assert [rid for rid, _ in starter.started] == ["b-test-1", "b-test-2"]
    source = starter.started[0][1].source
    assert (source.kind, source.batch_id, source.reference) == (
        "s3_batch",
        "b-test",
        "s3://bucket/in/AIDAEXAMPLE/a.jsonl#1",
    )
    # AND results come back, one twice
    assert record_progress(_event("b-test-1"), table, lines, workflow, EMITTED) == "recorded"
    assert record_progress(_event("b-test-1"), table, lines, workflow, EMITTED) == "duplicate"
    assert len(starter.started) == 3  # one finished, one more started: never more than two in flight
    for n in (2, 3, 4, 5):
        record_progress(
            _event(f"b-test-{n}", "BLOCKED" if n == 3 else "COMPLETED"), table, lines, workflow, EMITTED
        )
    # THEN every line ran once, and the workflow was resumed exactly once
    assert sorted(rid for rid, _ in starter.started) == [f"b-test-{n}" for n in range(1, 6)]
    assert workflow.finished == ["token-1"]
    status = table.status("b-test")
    assert status is not None
    assert (status["done"], status["completed"], status["blocked"], status["failed"]) == (6, 4, 1, 1)
    # AND the results file has every line in order
    summary = assemble(batch, table, objects, NOW)
    rows = [json.loads(line) for line in objects.files["results/AIDAEXAMPLE/b-test.jsonl"].splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[5]["status"] == "FAILED"
    assert (summary.total, summary.completed, summary.blocked, summary.failed) == (6, 4, 1, 1)
    assert summary.input_tokens == 15


@pytest.mark.parametrize(
    ("lineage", "forged_status"),
    [
        (None, "COMPLETED"),  # no lineage item for the line: xpi never ran it
        (_lineage_of("b-forge-1", "BLOCKED", "b-forge"), "COMPLETED"),  # lineage says otherwise
        (_lineage_of("b-forge-1", "COMPLETED", "b-other"), "COMPLETED"),  # a request of another batch
        (_lineage_of("b-forge-1", "COMPLETED", "b-forge", source="api"), "COMPLETED"),  # not a batch line
        (_lineage_of("b-forge-1", "ACCEPTED", "b-forge"), "COMPLETED"),  # still running
    ],
)
def test_forged_line_results_are_ignored(lineage: LineageItem | None, forged_status: str) -> None:
    # GIVEN a running batch of two lines
    data = _file([json.dumps({"prompt": f"p{n}"}) for n in range(2)])
    objects = FakeObjects({"in/AIDAEXAMPLE/f.jsonl": data}, {"xpi-model": "default"})
    table, starter, workflow = FakeTable(), FakeStarter(), FakeWorkflow()
    split(_batch("in/AIDAEXAMPLE/f.jsonl", len(data), batch_id="b-forge"), table, objects, LIMITS, NOW)
    records = FakeLineageStore()
    if lineage is not None:
        records.items[lineage.request_id] = lineage
    lines = LineStarter(table, objects, starter, LIMITS)
    # WHEN an event that xpi's records do not back arrives for its first line (and one for a line it has not)
    detail = {**_event("b-forge-1", forged_status), "output": {"text": "forged", "bytes": 6}}
    beyond = {**_event("b-forge-9"), "output": {"text": "forged", "bytes": 6}}
    # THEN neither is counted nor written
    assert record_progress(detail, table, lines, workflow, records) == "rejected"
    assert record_progress(beyond, table, lines, workflow, EMITTED) == "rejected"
    status = table.status("b-forge")
    assert status is not None and status["done"] == 0 and list(table.lines("b-forge")) == []


@pytest.mark.parametrize(
    ("key", "data", "why"),
    [
        ("in/AIDAEXAMPLE/a.csv", b"a,b\n", "not a JSONL file"),
        ("in/AIDAEXAMPLE/a.jsonl", b"", "empty"),
        ("in/AIDAEXAMPLE/a.jsonl", b"hello\n", "not JSONL"),
        ("in/AIDAEXAMPLE/a.jsonl", b'{"prompt": "p"}\n' * 51, "over the line limit"),
        ("in/AIDAEXAMPLE/a.jsonl", b"x" * 10_001, "over the size limit"),
        ("elsewhere/a.jsonl", b'{"prompt": "p"}\n', "not under the uploader's prefix"),
    ],
)
def test_bad_files_fail_the_batch_before_anything_starts(key: str, data: bytes, why: str) -> None:
    with pytest.raises(BatchInvalid) as caught:
        split(_batch(key, len(data)), FakeTable(), FakeObjects({key: data}), LIMITS, NOW)
    # the uploader reads why, in a fixed phrase that quotes nothing of the file
    assert caught.value.message == f"{MESSAGES['BatchInvalid']} ({why})"


def test_a_file_with_no_valid_line_finishes_at_arm() -> None:
    data = _file(['{"prompt": ""}'])
    table, workflow, objects = FakeTable(), FakeWorkflow(), FakeObjects({"in/AIDAEXAMPLE/a.jsonl": data})
    split(_batch("in/AIDAEXAMPLE/a.jsonl", len(data)), table, objects, LIMITS, NOW)

    started = arm("b-test", "t", table, LineStarter(table, objects, FakeStarter(), LIMITS), workflow)

    assert started == 0
    assert workflow.finished == ["t"]


def _split_file(
    table: FakeTable, objects: FakeObjects, batch_id: str, models: list[str], limits: BatchLimits
) -> None:
    key = f"in/AIDAEXAMPLE/{batch_id}.jsonl"
    data = _file([json.dumps({"prompt": f"p{n}", "model": model}) for n, model in enumerate(models)])
    objects.files[key] = data
    split(_batch(key, len(data), batch_id), table, objects, limits, NOW)


def test_batches_share_each_models_slots_and_take_turns() -> None:
    # GIVEN two batches on the same model, whose concurrency is 2 (across all batches)
    limits = batch_limits(fast=2)
    table, objects, starter, workflow = FakeTable(), FakeObjects({}), FakeStarter(), FakeWorkflow()
    lines = LineStarter(table, objects, starter, limits)
    _split_file(table, objects, "b-one", ["fast"] * 3, limits)
    _split_file(table, objects, "b-two", ["fast"] * 2, limits)

    # WHEN both are armed: the first takes both slots, and both wait for more
    assert arm("b-one", "t1", table, lines, workflow) == 2
    assert arm("b-two", "t2", table, lines, workflow) == 0
    assert table.waiting(["fast"]) == ["b-one", "b-two"]
    # AND results come back: each slot given back goes to the other batch's next line first
    for finished, started_next in [
        ("b-one-1", "b-two-1"),
        ("b-one-2", "b-two-2"),
        ("b-two-1", "b-one-3"),
        ("b-two-2", None),
        ("b-one-3", None),
    ]:
        count = len(starter.started)
        record_progress(_event(finished), table, lines, workflow, EMITTED)
        assert [rid for rid, _ in starter.started[count:]] == ([started_next] if started_next else [])

    # THEN every line ran once, never more than two at a time, and both batches finished
    assert len(starter.started) == 5
    assert table.most_in_flight == {"fast": 2}
    assert table.in_flight == {"fast": 0}
    assert table.waiting(["fast"]) == []
    assert workflow.finished == ["t2", "t1"]


def test_a_line_holds_a_slot_of_every_model_of_its_batch() -> None:
    # GIVEN "slow" allows one call at a time and "fast" three
    limits = batch_limits(chunk_lines=5, slow=1, fast=3)
    table, objects, starter, workflow = FakeTable(), FakeObjects({}), FakeStarter(), FakeWorkflow()
    lines = LineStarter(table, objects, starter, limits)
    _split_file(table, objects, "b-mixed", ["slow", "fast", "fast"], limits)
    _split_file(table, objects, "b-fast", ["fast"] * 4, limits)

    # WHEN the mixed batch is armed first, then the fast one
    started_mixed = arm("b-mixed", "t1", table, lines, workflow)
    started_fast = arm("b-fast", "t2", table, lines, workflow)

    # THEN the mixed batch runs one line (slow's limit), holding one of fast's slots too
    assert (started_mixed, started_fast) == (1, 2)
    assert table.in_flight == {"slow": 1, "fast": 3}
    # AND a redelivered result gives nothing back twice
    record_progress(_event("b-fast-1"), table, lines, workflow, EMITTED)
    record_progress(_event("b-fast-1"), table, lines, workflow, EMITTED)
    assert table.in_flight == {"slow": 1, "fast": 3}  # b-fast-3 took the slot b-fast-1 gave back
    assert [rid for rid, _ in starter.started][-1] == "b-fast-3"


class FlakyStarter(FakeStarter):
    """Step Functions refusing the first start (a throttle), then answering."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = False

    def start(self, request_id: str, workflow_input: WorkflowInput) -> bool:
        if not self.refused:
            self.refused = True
            raise RuntimeError("ThrottlingException: rate exceeded")
        return super().start(request_id, workflow_input)


def test_a_line_that_fails_to_start_is_not_lost() -> None:
    # GIVEN a one-line batch whose first workflow start is refused
    limits = batch_limits(fast=1)
    table, objects, starter, workflow = FakeTable(), FakeObjects({}), FlakyStarter(), FakeWorkflow()
    lines = LineStarter(table, objects, starter, limits)
    _split_file(table, objects, "b-one", ["fast"], limits)

    # WHEN the batch is armed: the error reaches the caller (the workflow's task retries it)
    with pytest.raises(RuntimeError, match="Throttling"):
        arm("b-one", "t1", table, lines, workflow)

    # THEN the slot was given back and the line is still the next to start
    assert table.in_flight == {"fast": 0}
    assert table.status("b-one")["released"] == 0  # type: ignore[index]
    # AND the retry starts it, once
    assert arm("b-one", "t1", table, lines, workflow) == 1
    assert [rid for rid, _ in starter.started] == ["b-one-1"]
    assert table.in_flight == {"fast": 1}


# ---------------------------------------------------------------------------------------------- moto
@pytest.fixture
def batch_table() -> Iterator[DynamoBatchTable]:
    with mock_aws():
        create_table("batches", "batch_id", "line")
        yield DynamoBatchTable("batches")


def test_table_counts_a_line_once_and_reads_lines_in_order(batch_table: DynamoBatchTable) -> None:
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


def test_a_line_recorded_released_has_its_progress_slot_spent(batch_table: DynamoBatchTable) -> None:
    # GIVEN a batch job's line, recorded with its slot spent (it held none)
    batch_table.create_status("b", {"state": "JOB", "total": 2, "done": 0})
    assert batch_table.record_line("b", LineResult(line=1, status="COMPLETED"), {"done": 1}, released=True)
    assert batch_table.record_line("b", LineResult(line=2, status="COMPLETED"), {"done": 1})

    # THEN its result event's progress finds nothing to give back; an ordinary line still has its slot
    assert not batch_table.claim_release("b", 1)
    assert batch_table.claim_release("b", 2)
    assert (batch_table.status("b") or {})["done"] == 2


def test_lines_are_recorded_in_one_request_and_a_line_recorded_before_is_counted_once(
    batch_table: DynamoBatchTable,
) -> None:
    # GIVEN a batch whose line 2 was recorded before (a retried page)
    batch_table.create_status("b", {"state": "JOB", "total": 4, "done": 0})
    assert batch_table.record_line("b", LineResult(line=2, status="COMPLETED"), {"done": 1, "completed": 1})
    calls: list[str] = []
    client = aws.dynamodb().meta.client
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))

    # WHEN lines 1 and 3 go in one group: one request
    assert batch_table.record_lines(
        "b",
        [
            (LineResult(line=1, status="COMPLETED"), {"done": 1, "completed": 1, "estimated_cost_usd": 0.25}),
            (LineResult(line=3, status="BLOCKED"), {"done": 1, "blocked": 1}),
        ],
        released=True,
    ) == [True, True]
    assert calls == ["TransactWriteItems"]
    # AND lines 2 and 4 go in another: line 2 was recorded before, so each line alone, line 4 only counted
    assert batch_table.record_lines(
        "b",
        [
            (LineResult(line=2, status="COMPLETED"), {"done": 1, "completed": 1}),
            (LineResult(line=4, status="COMPLETED"), {"done": 1, "completed": 1}),
        ],
        released=True,
    ) == [False, True]

    # THEN every line is counted once, with its slot spent
    status = batch_table.status("b") or {}
    assert (status["done"], status["completed"], status["blocked"], status["estimated_cost_usd"]) == (
        4,
        3,
        1,
        0.25,
    )
    assert [r.line for r in batch_table.lines("b")] == [1, 2, 3, 4]
    assert not any(batch_table.claim_release("b", line) for line in (1, 3, 4))


def test_slots_are_taken_all_or_none_and_never_go_below_zero(batch_table: DynamoBatchTable) -> None:
    # GIVEN one slot of "slow" and two of "fast"
    slots = {"slow": 1, "fast": 2}

    # WHEN lines take them
    assert batch_table.acquire_slots(slots)
    assert not batch_table.acquire_slots(slots)  # slow is full: fast is not taken either
    assert batch_table.acquire_slots({"fast": 2})
    assert not batch_table.acquire_slots({"fast": 2})

    # THEN the counters are what was taken, and giving back stops at zero
    assert batch_table.slots("slow") == {"in_flight": 1, "waiting": []}
    assert batch_table.slots("fast")["in_flight"] == 2
    batch_table.release_slots(["slow", "fast"])
    batch_table.release_slots(["slow", "fast"])
    batch_table.release_slots(["slow"])
    assert (batch_table.slots("slow")["in_flight"], batch_table.slots("fast")["in_flight"]) == (0, 0)


def test_waiting_batches_and_line_claims(batch_table: DynamoBatchTable) -> None:
    batch_table.add_waiting(["slow", "fast"], "b-2")
    batch_table.add_waiting(["fast"], "b-1")
    assert batch_table.waiting(["slow", "fast"]) == ["b-1", "b-2"]
    batch_table.remove_waiting(["slow", "fast"], "b-2")
    assert batch_table.waiting(["slow", "fast"]) == ["b-1"]
    # A line is started by one caller only; bad lines never held a slot to give back.
    batch_table.create_status("b-1", {"state": "RUNNING", "released": 0})
    assert batch_table.claim_line("b-1", 0)
    assert not batch_table.claim_line("b-1", 0)
    assert batch_table.claim_line("b-1", 1)
    batch_table.put_invalid_lines("b-1", [LineResult(line=7, status="FAILED")])
    assert not batch_table.claim_release("b-1", 7)


def test_results_are_written_through_a_multipart_upload() -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket="batch-results", CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"}
        )
        lines = (f'{{"line": {n}}}\n'.encode() for n in range(1, 1001))

        written = S3BatchObjects().write_stream("batch-results", "results/x.jsonl", lines)

        body = s3.get_object(Bucket="batch-results", Key="results/x.jsonl")["Body"].read()
        assert written == len(body)
        assert body.splitlines()[-1] == b'{"line": 1000}'


def test_results_and_manifests_are_written_with_an_s3_bucket_key() -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket="batch-results", CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"}
        )
        objects = S3BatchObjects()
        # moto keeps no Bucket Key on a multipart upload's object: read it from the request instead
        uploads: list[dict[str, Any]] = []
        aws.s3().meta.events.register(
            "provide-client-params.s3.CreateMultipartUpload", lambda params, **_: uploads.append(params)
        )

        objects.write_stream("batch-results", "results/x.jsonl", iter([b'{"line": 1}\n']))
        objects.put_json("batch-results", "results/x.json", {"lines": 1})

        # one KMS request per bucket key's lifetime, not per object read or written
        assert [upload["BucketKeyEnabled"] for upload in uploads] == [True]
        assert s3.head_object(Bucket="batch-results", Key="results/x.json")["BucketKeyEnabled"] is True


# ---------------------------------------------------------------------------------------------- handlers
EVENTS = __import__("pathlib").Path(__file__).resolve().parents[3] / "events" / "batch"


def _sample_notification() -> S3Notification:
    sqs = json.loads((EVENTS / "start" / "sqs-s3-notification.json").read_text())
    return S3Notification.model_validate_json(sqs["Records"][0]["body"])


def test_start_finds_the_uploaded_object_in_the_s3_notification() -> None:
    notification = _sample_notification()

    (found,) = batch_objects(notification, "incoming/")

    assert found.key == "incoming/AROAQXZEXAMPLEROLEID1:claims-intake/claims-2026-11-27.jsonl"
    assert found.version_id == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"
    # the caller is the upload folder's aws:userid, the form an SQS SenderId has (one grant per principal)
    assert found.principal == "AROAQXZEXAMPLEROLEID1:claims-intake"
    assert found.uploaded_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert found.batch_id == batch_id_for(found.bucket, found.key, found.etag)
    assert batch_objects(S3Notification.model_validate({"Event": "s3:TestEvent"}), "incoming/") == []
    assert batch_objects(notification, "elsewhere/") == []


def test_a_key_outside_an_uploader_folder_falls_back_to_the_event_principal() -> None:
    assert caller_of("incoming/AIDAEXAMPLE/file.jsonl", "AWS:AIDAOTHER") == "AIDAEXAMPLE"
    assert caller_of("incoming/file.jsonl", "AWS:AROAEXAMPLE:session") == "AROAEXAMPLE:session"


def test_start_skips_manifests_and_other_events_and_decodes_keys() -> None:
    # GIVEN a notification naming a manifest, a deletion and an upload with an encoded key
    record = _sample_notification().model_dump(by_alias=True)["Records"][0]
    manifest = json.loads(json.dumps(record))
    manifest["s3"]["object"]["key"] = (
        "incoming/AROAQXZEXAMPLEROLEID1:claims-intake/claims-2026-11-27.manifest.json"
    )
    removed = {**json.loads(json.dumps(record)), "eventName": "ObjectRemoved:Delete"}
    spaced = json.loads(json.dumps(record))
    spaced["s3"]["object"]["key"] = "incoming/AIDAEXAMPLE/claims+week+48.jsonl"
    notification = S3Notification.model_validate({"Records": [manifest, removed, spaced]})

    # WHEN
    found = batch_objects(notification, "incoming/")

    # THEN only the upload is a batch, under its decoded key
    assert [batch.key for batch in found] == ["incoming/AIDAEXAMPLE/claims week 48.jsonl"]


def test_start_batches_starts_each_object_version_once() -> None:
    # GIVEN the same notification delivered twice
    starter = FakeBatchStarter()

    # WHEN
    first = start_batches(_sample_notification(), "incoming/", starter)
    again = start_batches(_sample_notification(), "incoming/", starter)

    # THEN
    assert (first, again) == (1, 0)
    [batch] = starter.started.values()
    assert batch.key == "incoming/AROAQXZEXAMPLEROLEID1:claims-intake/claims-2026-11-27.jsonl"


def test_the_sample_file_splits_with_its_sidecar_defaults() -> None:
    data = (EVENTS / "files" / "claims-2026-11-27.jsonl").read_bytes()
    manifest = (EVENTS / "files" / "claims-2026-11-27.manifest.json").read_bytes()
    objects = FakeObjects(
        {"in/AIDAEXAMPLE/claims.jsonl": data, "in/AIDAEXAMPLE/claims.manifest.json": manifest}
    )

    result = split(_batch("in/AIDAEXAMPLE/claims.jsonl", len(data)), FakeTable(), objects, LIMITS, NOW)

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
    # GIVEN causes whose text quotes a line of the file
    cause = json.dumps({"errorMessage": "line 3 'alice@example.com' is bad", "errorType": "BatchInvalid"})

    # THEN the reason is the code and its fixed message, never the cause's text
    assert (
        failure_reason(StepError(Error="BatchInvalid", Cause=cause))
        == "BatchInvalid: the file is not a valid batch"
    )
    assert failure_reason(StepError(Error="States.Timeout")) == "States.Timeout: a workflow step timed out"
    assert failure_reason(StepError(Error="States.Runtime", Cause="alice@example.com")) == (
        "States.Runtime: the workflow failed at run time"
    )
    assert failure_reason(StepError(Error="KeyError", Cause="'alice@example.com'")) == (
        "InternalError: an internal error occurred"
    )


def test_the_failure_path_records_why_a_batch_failed() -> None:
    # GIVEN the failure path's input (events/batch/record-failure/failure-state.json)
    failure = BatchFailure.model_validate_json((EVENTS / "record-failure" / "failure-state.json").read_text())
    table = FakeTable()

    # WHEN
    summary = record_failure(failure, table, NOW)

    # THEN
    assert (summary.status, summary.reason) == (
        "FAILED",
        "BatchInvalid: the file is not a valid batch (empty)",
    )
    status = table.status(failure.batch.batch_id)
    assert status is not None and status["state"] == "FAILED"


def test_the_assemble_step_takes_no_error() -> None:
    # The failure path has its own function: an error sent to Assemble is refused, not taken as a mode.
    event = json.loads((EVENTS / "record-failure" / "failure-state.json").read_text())

    with pytest.raises(ValidationError):
        BatchStepInput.model_validate(event)


@pytest.mark.parametrize(
    "name", ["split/workflow-input.json", "assemble/workflow-state.json", "record-failure/failure-state.json"]
)
def test_workflow_samples_parse(name: str) -> None:
    event = json.loads((EVENTS / name).read_text())

    batch = BatchObject.model_validate(event["batch"])

    # The samples describe real objects: the batch id is the one the start step derives.
    assert batch.batch_id == batch_id_for(batch.bucket, batch.key, batch.etag)
    if batch.key.endswith("claims-2026-11-27.jsonl"):
        data = (EVENTS / "files" / "claims-2026-11-27.jsonl").read_bytes()
        assert (batch.size, batch.etag) == (len(data), hashlib.md5(data).hexdigest())


def test_a_line_result_keeps_the_code_and_its_fixed_message_only() -> None:
    # GIVEN a line's result event whose error carries text (an older function, or problems)
    detail = {
        "request_id": "b-1:3",
        "status": "FAILED",
        "error": {
            "code": "BedrockRejected",
            "message": "ValidationException: Malformed input: alice@example.com",
            "problems": [{"location": "prompt", "type": "string_too_long"}],
        },
    }

    result = line_result_from_event(detail, 3)

    assert result.error == {"code": "BedrockRejected", "message": "commercial Bedrock rejected the request"}


def test_an_invalid_lines_row_has_locations_and_types_never_its_text() -> None:
    # GIVEN a file with one valid line and one whose prompt is over the limit and whose tag key is the
    # caller's own text
    table, objects = FakeTable(), FakeObjects({})
    bad = {"model": "fast", "prompt": "secret-marker " * 11_000, "caller": {"tags": {"secret-key" * 30: "v"}}}
    data = _file([json.dumps({"prompt": "fine", "model": "fast"}), json.dumps(bad)])
    objects.files["in/AIDAEXAMPLE/b-bad.jsonl"] = data

    # WHEN it is split
    limits = dataclasses.replace(batch_limits(fast=2), max_bytes=1_000_000)
    split(_batch("in/AIDAEXAMPLE/b-bad.jsonl", len(data), "b-bad"), table, objects, limits, NOW)

    # THEN the invalid line's row says where and what, with the fixed message, and nothing of the line
    row = table.items["b-bad", 2]
    assert row["error"]["message"] == "the request is not a valid inference request"
    assert row["error"]["problems"] == "prompt: string_too_long; caller.tags.*.[key]: string_too_long"
    assert "secret" not in json.dumps(row)


def test_after_a_job_only_the_lines_it_left_start_on_demand_in_input_order() -> None:
    # GIVEN a file of six valid lines in chunks of two, and a batch job that answered lines 1, 2, 4, 5
    data = _file([json.dumps({"prompt": f"p{n}"}) for n in range(6)])
    objects = FakeObjects({"in/AIDAEXAMPLE/a.jsonl": data}, {"xpi-model": "default"})
    table, starter, workflow = FakeTable(), FakeStarter(), FakeWorkflow()
    batch = _batch("in/AIDAEXAMPLE/a.jsonl", len(data))
    split(batch, table, objects, LIMITS, NOW)
    lines = LineStarter(table, objects, starter, LIMITS)
    table.update_status("b-test", {"state": "JOB"})
    for n in (1, 2, 4, 5):
        table.record_line(
            "b-test", LineResult(line=n, request_id=f"b-test-{n}", status="COMPLETED"), {"done": 1}
        )
        assert table.claim_release("b-test", n)  # a job line held no slot: nothing to give back
    # AND a result event of a job line arrives while the job path still holds the batch
    record_progress(_event("b-test-4"), table, lines, workflow, EMITTED)
    assert starter.started == []

    # WHEN the lines the job left (a blocked line, a failed record) go on-demand and the workflow arms
    assert release_only("b-test", [6, 3], table, objects) == 2
    started = arm("b-test", "token-1", table, lines, workflow)

    # THEN only those start, in input order, and the batch finishes once with every line in order
    assert started == 2
    assert [rid for rid, _ in starter.started] == ["b-test-3", "b-test-6"]
    assert starter.started[1][1].source.reference == "s3://bucket/in/AIDAEXAMPLE/a.jsonl#6"
    for n in (3, 6):
        record_progress(_event(f"b-test-{n}"), table, lines, workflow, EMITTED)
    assert len(starter.started) == 2 and workflow.finished == ["token-1"]
    assemble(batch, table, objects, NOW)
    rows = [json.loads(line) for line in objects.files["results/AIDAEXAMPLE/b-test.jsonl"].splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_release_only_refuses_lines_that_are_not_valid_lines_of_the_batch() -> None:
    data = _file([json.dumps({"prompt": "p"}), "{bad"])
    objects = FakeObjects({"in/AIDAEXAMPLE/a.jsonl": data}, {"xpi-model": "default"})
    table = FakeTable()
    split(_batch("in/AIDAEXAMPLE/a.jsonl", len(data)), table, objects, LIMITS, NOW)

    with pytest.raises(BatchInvalid):
        release_only("b-test", [2], table, objects)  # line 2 is invalid: it never runs
