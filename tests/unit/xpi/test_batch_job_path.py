"""The batch workflow's job path against in-memory fakes: prepare turns the lines policy allows into job
records (redacted as the invoke step would send them) and leaves blocked lines to the on-demand path;
collect makes each answered line final with the on-demand path's lineage, result event and line item."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from xpi.domain.batch_jobs import output_key
from xpi.domain.pricing import price_table
from xpi.models.batch import LineResult
from xpi.services import batch_job_path, queue_processing
from xpi.services.batch import LineStarter, arm, assemble, line_counters, record_progress, split

from tests.helpers.events import sample_request
from tests.helpers.fakes import FakeEventPublisher

from .test_batch import (
    LIMITS,
    FakeObjects,
    FakeStarter,
    FakeTable,
    FakeWorkflow,
    _batch,
    _file,
    _lineage_of,
)
from .test_batch_jobs import TARGET, FakeJobRecords, FakeJobs
from .test_batch_jobs import FakeObjects as FakeCommercial
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
    assert table.group_writes == 1  # both lines' items and counters in one request
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


# ---------------------------------------------------------------------------------------------- steps
def _split_batch(world: World) -> tuple[Any, Any, batch_job_path.JobPorts]:
    lines = [{"prompt": f"Summarise item {n}."} for n in range(1, 5)]
    lines[1] = {"prompt": "CUI\n\nSummarise this incident report.\n\nCUI"}  # policy blocks it
    data = _file([json.dumps(line) for line in lines])
    key = "incoming/AIDAEXAMPLE/a.jsonl"
    objects, table = FakeObjects({key: data}, {"xpi-model": "default"}), FakeTable()
    batch_object = _batch(key, len(data), batch_id=BATCH)
    split(batch_object, table, objects, LIMITS, NOW)
    events: Any = world.ports.events  # the fake publishes one by one or all
    ports = batch_job_path.JobPorts(
        table=table,
        objects=objects,
        job_records=FakeJobRecords(),
        commercial=FakeCommercial(),
        jobs=FakeJobs(),
        target=TARGET,
        events=events,
    )
    return batch_object, objects, ports


def _start(world: World, ports: batch_job_path.JobPorts, threshold: int) -> Any:
    return batch_job_path.start_job(
        BATCH, threshold, ports=ports, queue=world.ports, judge=judgement, budget=_budget(world)
    )


def test_a_batch_below_the_threshold_takes_no_job_and_runs_as_today() -> None:
    world = World()
    _, _, ports = _split_batch(world)

    for threshold in (0, 5):  # 0: never; 5: more than the file's four valid lines
        assert _start(world, ports, threshold) is None
    status = ports.table.status(BATCH) or {}
    assert status["state"] == "RUNNING" and "release_set" not in status
    assert ports.jobs.by_token == {}  # type: ignore[attr-defined]


def test_a_batch_whose_allowed_lines_fall_below_the_threshold_runs_every_line_on_demand() -> None:
    world = World()
    _, _, ports = _split_batch(world)

    assert _start(world, ports, 4) is None  # four valid lines, three allowed: no job

    status = ports.table.status(BATCH) or {}
    assert (status["state"], status["release_total"], status["released"]) == ("RUNNING", 4, 0)
    assert ports.jobs.by_token == {}  # type: ignore[attr-defined]


def test_a_batch_through_a_job_and_its_failed_record_on_demand_in_input_order() -> None:
    world = World()
    batch_object, objects, ports = _split_batch(world)

    # WHEN the batch takes a job (threshold 2) and the job fails line 3's record
    job = _start(world, ports, 2)
    assert job is not None and job.records == 3
    assert (ports.table.status(BATCH) or {})["state"] == "JOB"
    assert _start(world, ports, 2).job_arn == job.job_arn  # a retried start: the same job
    assert len(ports.jobs.by_token) == 1  # type: ignore[attr-defined]
    answer = {
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1},
    }
    out = [
        {"recordId": "L0000000001", "modelOutput": answer},
        {"recordId": "L0000000003", "error": {"errorCode": 400, "errorMessage": "bad"}},
        {"recordId": "L0000000004", "modelOutput": answer},
    ]
    job.status = "Completed"
    body = "".join(json.dumps(line) + "\n" for line in out).encode()
    ports.commercial.put(output_key(BATCH, job.job_arn.rsplit("/", 1)[-1]), body, TARGET.kms_key_id)
    left = batch_job_path.finish_job(
        job, ports=ports, queue=world.ports, judge=judgement, budget=_budget(world)
    )

    # THEN the blocked line and the failed record start on-demand, in input order, and nothing else
    assert left == 2
    starter, workflow = FakeStarter(), FakeWorkflow()
    lines = LineStarter(ports.table, objects, starter, LIMITS)
    arm(BATCH, "token", ports.table, lines, workflow)
    assert [rid for rid, _ in starter.started] == [f"{BATCH}-2", f"{BATCH}-3"]
    for n, outcome in ((2, "BLOCKED"), (3, "COMPLETED")):
        world.lineage.items[f"{BATCH}-{n}"] = _lineage_of(f"{BATCH}-{n}", outcome, BATCH)
        record_progress(
            {"request_id": f"{BATCH}-{n}", "batch_id": BATCH, "status": outcome},
            ports.table,
            lines,
            workflow,
            world.lineage,
        )
    assert workflow.finished == ["token"]
    assemble(batch_object, ports.table, objects, NOW)
    rows = [json.loads(r) for r in objects.files[f"results/AIDAEXAMPLE/{BATCH}.jsonl"].splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "COMPLETED"),
        (2, "BLOCKED"),
        (3, "COMPLETED"),
        (4, "COMPLETED"),
    ]
    assert [d["request_id"] for _, d in world.ports.events.published] == [f"{BATCH}-1", f"{BATCH}-4"]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- price
def test_a_line_the_job_answered_is_priced_at_the_batch_price_in_lineage_and_its_event() -> None:
    # GIVEN a job answer of 11 input and 7 output tokens for line 1
    world, table, events = World(), FakeTable(), FakeEventPublisher()
    table.create_status(BATCH, {"state": "JOB", "total": 4, "done": 0})
    output = {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 11, "output_tokens": 7}}

    # WHEN it is made final
    batch_job_path.collect(
        BATCH, STATUS, _entries()[:1], {1: output},
        ports=world.ports, judge=judgement, budget=_budget(world), table=table, events=events,
    )  # fmt: skip

    # THEN lineage and the result event carry the price table's batch price for the model, half on-demand
    item = world.lineage.items[f"{BATCH}-1"]
    assert item.model_id is not None
    line = price_table().models[item.model_id]
    assert line.batch_input is not None and line.batch_output is not None
    batch = round((11 * line.batch_input + 7 * line.batch_output) / 1000, 8)
    assert float(item.estimated_cost_usd or "nan") == pytest.approx(batch)
    assert batch == pytest.approx((11 * line.input + 7 * line.output) / 1000 / 2)
    assert events.published[0][1]["usage"]["estimated_cost_usd"] == pytest.approx(batch)
    # AND the event says it was billed as a batch (the progress rule passes no such event)
    assert events.published[0][1]["usage"]["billing"] == "batch"


# ---------------------------------------------------------------------------------------------- pages
def _finished_job(world: World, answered: tuple[int, ...]) -> tuple[Any, batch_job_path.JobPorts]:
    """The 4-line batch split, its job submitted (lines 1, 3, 4; line 2 blocked) and Completed with an
    answer for `answered`; its output's other records failed."""
    _, _, ports = _split_batch(world)
    job = _start(world, ports, 2)
    answer = {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 1, "output_tokens": 1}}
    out = [
        {"recordId": f"L{n:010d}", "modelOutput": answer}
        if n in answered
        else {"recordId": f"L{n:010d}", "error": {"errorCode": 400, "errorMessage": "bad"}}
        for n in (1, 3, 4)
    ]
    job.status = "Completed"
    body = "".join(json.dumps(line) + "\n" for line in out).encode()
    ports.commercial.put(output_key(BATCH, job.job_arn.rsplit("/", 1)[-1]), body, TARGET.kms_key_id)
    return job, ports


def _page(world: World, ports: batch_job_path.JobPorts, job: Any, cursor: int, **limits: Any) -> Any:
    return batch_job_path.finish_page(
        job,
        cursor,
        batch_job_path.PageLimits(**{"lines": 2, "bytes": 10**9, **limits}),
        ports=ports,
        queue=world.ports,
        judge=judgement,
        budget=_budget(world),
    )


def _emitted(world: World) -> list[str]:
    return [detail["request_id"] for _, detail in world.ports.events.published]  # type: ignore[attr-defined]


def test_a_job_bigger_than_a_page_is_made_final_page_by_page_then_the_rest_released() -> None:
    world = World()
    job, ports = _finished_job(world, answered=(1, 3, 4))

    # WHEN FinishJob runs with pages of two lines
    first = _page(world, ports, job, 0)

    # THEN the first page made lines 1-2 final (2 is blocked: left to on-demand), nothing released yet
    assert (first.cursor, first.done, first.on_demand) == (2, False, None)
    assert _emitted(world) == [f"{BATCH}-1"]
    status = ports.table.status(BATCH) or {}
    assert status["state"] == "JOB" and "release_set" not in status  # still held between pages
    # AND a retried first page makes nothing final twice and emits nothing twice
    assert _page(world, ports, job, 0) == first
    assert _emitted(world) == [f"{BATCH}-1"]
    assert (ports.table.status(BATCH) or {})["done"] == 1
    # AND the second page makes lines 3-4 final and, the last, releases line 2 on-demand
    second = _page(world, ports, job, first.cursor)
    assert (second.cursor, second.done, second.on_demand) == (4, True, 1)
    assert _emitted(world) == [f"{BATCH}-1", f"{BATCH}-3", f"{BATCH}-4"]
    status = ports.table.status(BATCH) or {}
    assert (status["state"], status["release_total"], status["done"]) == ("RUNNING", 1, 3)
    # AND the last page retried releases the same line again, and emits nothing more
    assert _page(world, ports, job, first.cursor) == second
    assert len(_emitted(world)) == 3


def test_a_page_ends_before_its_bytes_or_the_invocations_time_run_out_but_never_empty() -> None:
    world = World()
    job, ports = _finished_job(world, answered=(1, 3, 4))

    # one byte a page: each page makes one line final
    assert _page(world, ports, job, 0, bytes=1).cursor == 1
    # no time left past the reserve: still the page's first line, then it ends
    short = batch_job_path.finish_page(
        job,
        1,
        batch_job_path.PageLimits(lines=10, bytes=10**9),
        ports=ports,
        queue=world.ports,
        judge=judgement,
        budget=queue_processing.RetryBudget(time_left=lambda: 1.0, reserve_s=130, clock=lambda: NOW),
    )
    assert (short.cursor, short.done) == (2, False)
    assert _emitted(world) == [f"{BATCH}-1"]  # line 2 is blocked: nothing to emit


def test_finish_job_runs_every_page_and_the_job_s_failed_lines_go_on_demand() -> None:
    world = World()
    job, ports = _finished_job(world, answered=(1, 4))

    left = batch_job_path.finish_job(
        job, ports=ports, queue=world.ports, judge=judgement, budget=_budget(world),
        limits=batch_job_path.PageLimits(lines=1, bytes=10**9),
    )  # fmt: skip

    assert left == 2  # line 2 (blocked) and line 3 (its record failed)
    assert _emitted(world) == [f"{BATCH}-1", f"{BATCH}-4"]
    assert (ports.table.status(BATCH) or {})["release_total"] == 2


# ---------------------------------------------------------------------------------------------- retried pages
class _Killed(BaseException):
    """The runtime ending under the page (a timeout, the process killed): nothing of the step catches it."""


def _kill_after(monkeypatch: pytest.MonkeyPatch, owner: Any, method: str, hits: Any) -> None:
    """`owner.method` does its work, then the page dies, the first time `hits(its arguments)`."""
    real = getattr(owner, method)
    armed = [True]

    def dying(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        if armed[0] and hits(*args, **kwargs):
            armed[0] = False
            raise _Killed(method)
        return answer

    monkeypatch.setattr(owner, method, dying)


LINE_3 = f"{BATCH}-3"
KILL_POINTS = {
    "after the claim": ("claims", "claim", lambda claim: claim.request_id == LINE_3),
    "after lineage made final": ("lineage", "finalize_or_read", lambda item: item.request_id == LINE_3),
    # the line items are written with their progress slots spent: nothing between them to die in
    "after the line items": (
        "table",
        "record_lines",
        lambda _, lines, **__: any(result.line == 3 for result, _ in lines),
    ),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_page_that_died_at_any_point_of_a_line_and_ran_again_counts_and_emits_each_line_once(
    point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a finished job that answered lines 1, 3 and 4, and a page that dies at `point` of line 3
    world = World()
    job, ports = _finished_job(world, answered=(1, 3, 4))
    where, method, hits = KILL_POINTS[point]
    owner = {"claims": world.claims, "lineage": world.lineage, "table": ports.table}[where]
    with monkeypatch.context() as patch:
        _kill_after(patch, owner, method, hits)
        with pytest.raises(_Killed):
            _page(world, ports, job, 0, lines=10)

    # WHEN the workflow runs the page again from the same cursor
    page = _page(world, ports, job, 0, lines=10)

    # THEN every answered line is final with the job's answer, counted once, with one result event
    assert (page.done, page.on_demand) == (True, 1)  # line 2 (blocked) on-demand
    assert {rid: item.status for rid, item in world.lineage.items.items()} == {
        f"{BATCH}-{n}": "COMPLETED" for n in (1, 3, 4)
    }
    assert sorted(_emitted(world)) == [f"{BATCH}-1", f"{BATCH}-3", f"{BATCH}-4"]
    status = ports.table.status(BATCH) or {}
    assert (status["done"], status["completed"], status.get("failed", 0)) == (3, 3, 0)
    assert all(ports.table.items[BATCH, n]["released_next"] for n in (1, 3, 4))  # type: ignore[attr-defined]
    assert world.gateway.calls == []  # no on-demand call: the job answered


def test_a_page_that_died_after_sending_its_events_sends_them_again_and_counts_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a page that dies after its PutEvents, before it marks the events sent
    world = World()
    job, ports = _finished_job(world, answered=(1, 3, 4))
    with monkeypatch.context() as patch:
        _kill_after(patch, ports.events, "publish_all", lambda events: True)
        with pytest.raises(_Killed):
            _page(world, ports, job, 0, lines=10)

    # WHEN it runs again: its lines' events go again (at least once), their counts do not
    _page(world, ports, job, 0, lines=10)

    assert sorted(set(_emitted(world))) == [f"{BATCH}-1", f"{BATCH}-3", f"{BATCH}-4"]
    assert ((ports.table.status(BATCH) or {})["done"]) == 3
    # AND a page run once more after the mark sends nothing
    before = len(_emitted(world))
    _page(world, ports, job, 0, lines=10)
    assert len(_emitted(world)) == before


def test_a_line_an_earlier_attempt_made_final_with_another_outcome_is_counted_from_its_lineage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a page whose steps failed for line 3 (the policy could not be read), that made line 3's
    # lineage FAILED and died before counting it
    world = World()
    job, ports = _finished_job(world, answered=(1, 3, 4))
    calls = [0]

    def judge_failing_the_second_time() -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise ValueError("policy unreadable")
        return judgement()

    kill_point = KILL_POINTS["after lineage made final"]
    with monkeypatch.context() as patch:
        _kill_after(patch, world.lineage, kill_point[1], kill_point[2])
        with pytest.raises(_Killed):
            batch_job_path.finish_page(
                job, 0, batch_job_path.PageLimits(lines=10, bytes=10**9),
                ports=ports, queue=world.ports, judge=judge_failing_the_second_time, budget=_budget(world),
            )  # fmt: skip
    assert world.lineage.items[LINE_3].status == "FAILED"

    # WHEN the page runs again, its steps now succeeding for line 3
    page = _page(world, ports, job, 0, lines=10)

    # THEN line 3 counts as its lineage says (FAILED), once; the batch is not left a line short
    assert page.done
    status = ports.table.status(BATCH) or {}
    assert (status["done"], status["completed"], status["failed"]) == (3, 2, 1)
    assert ports.table.items[BATCH, 3]["status"] == "FAILED"  # type: ignore[attr-defined]
    assert sorted(_emitted(world)) == [f"{BATCH}-1", f"{BATCH}-4"]  # line 3's event died with that attempt
