"""The batch workflow's job path against in-memory fakes: prepare turns the lines policy allows into job
records (redacted as the invoke step would send them) and leaves blocked lines to the on-demand path;
collect makes each answered line final with the on-demand path's lineage, result event and line item."""

import json
from datetime import UTC, datetime
from typing import Any

from xpi.models.batch import LineResult
from xpi.services import batch_job_path, queue_processing
from xpi.services.batch import line_counters

from tests.helpers.events import sample_request
from tests.helpers.fakes import FakeEventPublisher

from .test_batch import FakeTable
from .test_queue_processing import World, judgement

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BATCH = "b-000000000000000000000abc"
STATUS = {
    "principal": "AIDAEXAMPLE",
    "source_uri": "s3://bucket/incoming/AIDAEXAMPLE/a.jsonl",
    "uploaded_at": NOW.isoformat(),
    "started_at": NOW.isoformat(),
}
SSN = "123-45-6789"


def _line(name: str) -> dict[str, Any]:
    request = {**sample_request(name), "model": "default"}
    request.pop("request_id", None)
    return request


def _entries() -> list[dict[str, Any]]:
    requests = [_line("plain-prompt"), _line("cui-banner"), _line("pii-redact"), _line("plain-prompt")]
    return [
        {"line": n, "request": {**request, "request_id": f"{BATCH}-{n}"}}
        for n, request in enumerate(requests, start=1)
    ]


def _budget(world: World) -> queue_processing.RetryBudget:
    return queue_processing.RetryBudget(
        time_left=lambda: 900.0, reserve_s=130, clock=lambda: NOW, sleep=world.sleep, jitter=lambda a, b: b
    )


def test_prepare_makes_redacted_records_of_the_allowed_lines_and_leaves_blocked_ones() -> None:
    world = World()

    prepared = batch_job_path.prepare(
        BATCH, STATUS, _entries(), ports=world.ports, judge=judgement, budget=_budget(world)
    )

    # THEN the allowed lines are records, in input order; the blocked one (CUI) goes on-demand
    assert [line for line, _ in prepared.records] == [1, 3, 4]
    assert prepared.on_demand == [2]
    assert prepared.model_id is not None
    assert SSN not in json.dumps(prepared.records)  # redacted as the invoke step sends it
    assert prepared.records[0][1]["messages"]
    # AND nothing was claimed, emitted or sent
    assert world.lineage.items == {} and world.ports.events.published == []  # type: ignore[attr-defined]
    assert world.gateway.calls == []


def test_collect_makes_answered_lines_final_as_the_on_demand_path_does() -> None:
    world = World()
    table = FakeTable()
    table.create_status(BATCH, {"state": "JOB", "total": 4, "done": 0})
    events = FakeEventPublisher()
    output = {
        "content": [{"type": "text", "text": "the answer"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }

    left = batch_job_path.collect(
        BATCH, STATUS, _entries(), {1: output, 4: output},
        ports=world.ports, judge=judgement, budget=_budget(world), table=table, events=events,
    )  # fmt: skip

    # THEN lines 1 and 4 are final in lineage, emitted once each, counted; 2 and 3 go on-demand
    assert left == [2, 3]
    assert sorted(world.lineage.items) == [f"{BATCH}-1", f"{BATCH}-4"]
    assert {item.status for item in world.lineage.items.values()} == {"COMPLETED"}
    assert [(kind, detail["request_id"], detail["batch_id"]) for kind, detail in events.published] == [
        ("Inference Completed", f"{BATCH}-1", BATCH),
        ("Inference Completed", f"{BATCH}-4", BATCH),
    ]
    assert events.published[0][1]["usage"]["input_tokens"] == 11
    status = table.status(BATCH)
    assert status is not None and (status["done"], status["completed"]) == (2, 2)
    assert table.items[BATCH, 1]["released_next"] is True  # no slot to give back for a job line
    assert world.gateway.calls == []  # the job's answer, never an on-demand call
    # AND a retried collect counts nothing twice and emits nothing more
    batch_job_path.collect(
        BATCH, STATUS, _entries(), {1: output, 4: output},
        ports=world.ports, judge=judgement, budget=_budget(world), table=table, events=events,
    )  # fmt: skip
    assert len(events.published) == 2
    assert (table.status(BATCH) or {})["done"] == 2


def test_line_counters_count_one_line_with_its_usage() -> None:
    result = LineResult(line=1, request_id=f"{BATCH}-1", status="COMPLETED")
    counters = line_counters(
        result, {"usage": {"input_tokens": 2, "output_tokens": 3, "estimated_cost_usd": 0.5}}
    )
    assert counters == {
        "done": 1,
        "completed": 1,
        "input_tokens": 2,
        "output_tokens": 3,
        "estimated_cost_usd": 0.5,
    }
