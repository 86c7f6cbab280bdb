"""The batch workflow's job path: a batch's lines through one Bedrock batch inference job, with the
per-request code of the on-demand path on both sides of it.

prepare  every valid line runs the queue path's own steps (validate, classify and apply policy, route,
         the invoke step up to the Bedrock call) in memory, without a lineage claim and without events:
         the request the invoke step would send (after redaction) becomes the line's job record. A line
         policy blocks, one the route refuses, or one whose route is not the job's model is left to the
         on-demand path, which answers it exactly as today (lineage and events included).
collect  every line the job answered runs the same steps again, claimed and with events, the job's
         answer taking the place of the Bedrock call, then the record step's lineage and the one result
         event, and its line item in the batch table; the job's failed and missing lines, with the lines
         prepare left, go on-demand (xpi.services.batch.release_only). FinishJob does it by page
         (finish_page: bounded by lines, bytes and the invocation's time left; the workflow runs it
         again from where the page ended until the last page releases the rest).
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from typing import Any, Final

from pydantic import BaseModel

from xpi.adapters.ports import (
    BatchInferenceJobs,
    BatchJobRecords,
    BatchObjects,
    BatchTable,
    CommercialObjects,
    EventBatchPublisher,
)
from xpi.domain.batch import line_number_of, line_request_id, line_result_from_event
from xpi.domain.batch_jobs import job_answer, model_input, next_check_s, use_job
from xpi.domain.payload import converse_arguments, native_body
from xpi.models.batch import LineResult
from xpi.models.batch_jobs import BatchJob, BatchJobTarget, JobState
from xpi.models.bedrock import ModelAnswer
from xpi.models.events import ResultDetail
from xpi.models.lineage import ACCEPTED
from xpi.models.queue import NotOwned, QueuedRequest, QueueTask
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route, Source
from xpi.observability import logger
from xpi.services import queue_processing
from xpi.services.batch import chunk_key, line_counters, release_only
from xpi.services.batch_jobs import check_job, lines_answered, page_answers, submit_job
from xpi.services.classification import classify
from xpi.services.invocation import invoke_model
from xpi.services.recording import record_outcome
from xpi.services.routing import route
from xpi.services.sync_invoke import Judgement

EVENTS_PER_REQUEST: Final = 10  # PutEvents' most entries a request


class _Deferred(Exception):
    """The Bedrock call of a line the job answers: never made on-demand."""


class _Silent:
    """Events of the prepare pass: none (the collect pass, or the on-demand path, emits them)."""

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        return None


@dataclass
class _Capture:
    """The gateway of the prepare pass: keeps the request the invoke step would send, sends nothing."""

    records: dict[str, tuple[Route, dict[str, Any] | None]] = field(default_factory=dict)

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        body = json.loads(native_body(request)) if request.body is not None else None
        self.records[request.request_id] = (
            route,
            model_input(route.model_id, body, converse_arguments(request)),
        )
        raise _Deferred(request.request_id)


@dataclass
class _Replay:
    """The gateway of the collect pass: the job's answer for the line, in place of the Bedrock call."""

    outputs: Mapping[str, Mapping[str, Any]]

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        return job_answer(self.outputs[request.request_id], converse=request.api != "invoke_model")


@dataclass(frozen=True)
class Prepared:
    model_id: str | None  # the one model every record's route calls; None when there is no record
    records: list[tuple[int, dict[str, Any]]]  # (line, model input), in input order
    on_demand: list[int]  # lines left to the on-demand path, in input order


def _task(batch_id: str, status: Mapping[str, Any], entry: Mapping[str, Any], pass_name: str) -> QueueTask:
    line = int(entry["line"])
    source = Source(
        kind="s3_batch",
        principal=str(status["principal"]),
        reference=f"{status['source_uri']}#{line}",
        received_at=datetime.fromisoformat(str(status["uploaded_at"])),
        batch_id=batch_id,
    )
    return QueueTask(
        item=QueuedRequest(request=dict(entry["request"]), source=source),
        execution=f"{batch_id}-{pass_name}",
        started_at=str(status["started_at"]),
        index=line,
    )


def prepare(
    batch_id: str,
    status: Mapping[str, Any],
    entries: Iterable[Mapping[str, Any]],
    *,
    ports: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
) -> Prepared:
    """The job's records: each line classified, routed and redacted by the on-demand path's own steps,
    nothing claimed, emitted, reserved or sent. A line any step stops (policy, the route, an error) is
    left to the on-demand path, which answers it as today."""
    capture, silent = _Capture(), _Silent()
    judgement = judge()
    records: list[tuple[int, dict[str, Any]]] = []
    on_demand: list[int] = []
    model: str | None = None
    for entry in entries:
        line = int(entry["line"])
        try:
            body, state = queue_processing.validated(
                _task(batch_id, status, entry, "prepare"), ports, budget.clock()
            )
            state = classify(
                state,
                policy=judgement.policy,
                detectors=judgement.detectors,
                routing=judgement.routing,
                events=silent,
                payloads=body,
                hash_key=ports.hash_key,
                clock=budget.clock,
                versions=judgement.versions,
            )
            if state.classification is None or state.classification.decision == "block":
                on_demand.append(line)
                continue
            state.route = route(
                state,
                region=ports.region,
                endpoint=ports.endpoint,
                budgets=None,  # reserved when the line is made final (collect), as on-demand
                govcloud_region=ports.govcloud_region,
                govcloud_endpoint=ports.govcloud_endpoint,
            )
            invoke_model(
                state, capture, ports.objects, ports.inline_max_bytes, payloads=body, hash_key=ports.hash_key
            )
        except _Deferred:
            pass
        except Exception as error:  # the on-demand path meets it again and answers the line as today
            logger.info("line left on-demand", extra={"line": line, "error_class": type(error).__name__})
        captured = capture.records.pop(line_request_id(batch_id, line), None)
        if captured is None:
            on_demand.append(line)
            continue
        chosen, record = captured
        if (
            chosen.partition == "govcloud"
            or record is None
            or (model is not None and chosen.model_id != model)
        ):
            on_demand.append(line)
            continue
        model = chosen.model_id
        records.append((line, record))
    return Prepared(model_id=model, records=records, on_demand=on_demand)


def collect(
    batch_id: str,
    status: Mapping[str, Any],
    entries: Iterable[Mapping[str, Any]],
    answered: Mapping[int, dict[str, Any]],
    *,
    ports: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
    table: BatchTable,
    events: EventBatchPublisher,
) -> list[int]:
    """Every answered line made final as the on-demand path makes it; the lines of `entries` the job
    did not answer, in input order (for the on-demand path)."""
    _, left = _collect_entries(
        batch_id, status, entries, answered,
        ports=ports, judge=judge, budget=budget, table=table, events=events,
    )  # fmt: skip
    return left


def _collect_entries(
    batch_id: str,
    status: Mapping[str, Any],
    entries: Iterable[Mapping[str, Any]],
    answered: Mapping[int, dict[str, Any]],
    *,
    ports: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
    table: BatchTable,
    events: EventBatchPublisher,
    stop: Callable[[int], bool] = lambda done_bytes: False,
) -> tuple[int, list[int]]:
    """collect, stopping before an entry when `stop(bytes so far)` says so (never before the first):
    how many entries it went through, and the unanswered lines among them.

    Retried (a page that died anywhere, run again from its cursor), every line ends counted once and
    with one result event: the line's own claim lets the retry replay the job's answer (never a failure,
    never charged twice: queue_processing.process `replayed`); lineage made final by an earlier attempt
    gives its outcome again (record_outcome); the line item and counters, written with the progress
    slot spent, are one conditional write (counted once). The events go out 10 to a PutEvents after
    their lines' items, and the status item's `emitted_through` then says which lines' events are out:
    a retry sends those of the later lines, so a page that died before sending them loses none (one
    that died between the PutEvents and that mark sends its last few again)."""
    outputs = {line_request_id(batch_id, line): output for line, output in answered.items()}
    # The job's answer is no on-demand call: not paced against the model's on-demand quota, and the
    # route's first hop answers it (the job's model), whatever the circuit breaker says.
    live = replace(ports, gateway=_Replay(outputs), pacer=None, breaker=None)
    emitted = int((table.status(batch_id) or {}).get("emitted_through", 0))  # as it is now
    final: list[tuple[LineResult, dict[str, int | float]]] = []  # made final, their items not yet written
    pending: list[tuple[int, str, ResultDetail]] = []
    left: list[int] = []
    done = size = 0

    def send() -> None:
        if final:  # the items and counters of up to 10 lines in one request, before their events
            for (result, _), new in zip(
                final, table.record_lines(batch_id, final, released=True), strict=True
            ):
                if not new:
                    table.claim_release(batch_id, result.line)  # recorded before: its slot surely spent too
            final.clear()
        if pending:
            events.publish_all([(kind, detail) for _, kind, detail in pending])
            table.update_status(batch_id, {"emitted_through": pending[-1][0]})
            pending.clear()

    for entry in entries:
        if done and stop(size):
            break
        done += 1
        line = int(entry["line"])
        if line not in answered:
            left.append(line)
            continue
        size += len(json.dumps(entry["request"])) + len(json.dumps(answered[line]))
        state = queue_processing.process(
            _task(batch_id, status, entry, "job"), ports=live, judge=judge, budget=budget, replayed=True
        )
        if isinstance(state, NotOwned):  # another execution holds the line: it answers and counts it
            logger.info("job line held by another execution", extra={"batch_id": batch_id, "line": line})
            continue
        outcome = record_outcome(state, ports.lineage, budget.clock())
        if not outcome.emit:
            if _recorded_here(batch_id, line, state.execution, ports, table):
                continue
            # made final by another writer (the reaper, say): its result event counts the line
            logger.info("job line made final by another writer", extra={"batch_id": batch_id, "line": line})
            continue
        detail = ResultDetail.model_validate(outcome.detail)
        number = line_number_of(detail.request_id, batch_id)
        if number is None:  # pragma: no cover - the request id is the batch's own
            continue
        result = line_result_from_event(outcome.detail, number)
        # The line's item and counters with its progress slot spent (a job line held no slot), written
        # with the next few lines' before their events (a page that dies in between replays the lines,
        # final in lineage, and writes them then).
        final.append((result, line_counters(result, outcome.detail)))
        if number > emitted:
            pending.append((number, outcome.detail_type, detail))
        if len(final) == EVENTS_PER_REQUEST:
            send()
    send()
    return done, left


def _recorded_here(
    batch_id: str, line: int, execution: str | None, ports: queue_processing.QueuePorts, table: BatchTable
) -> bool:
    """A line an earlier attempt of this page made final with another outcome than the replay's (its
    steps failed then: a budget spent, an AWS API out of reach) and died before counting: counted now
    from its lineage, as reconciliation counts a line (status and error), its result event lost with
    that attempt. False when another writer made it final."""
    item = ports.lineage.get(line_request_id(batch_id, line))
    if item is None or execution is None or item.recorded_by != execution or item.status == ACCEPTED:
        return False
    detail = {
        "request_id": item.request_id,
        "batch_id": batch_id,
        "status": item.status,
        "error": item.error.model_dump() if item.error else None,
    }
    result = line_result_from_event(detail, line)
    if not table.record_line(batch_id, result, line_counters(result, detail), released=True):
        table.claim_release(batch_id, line)
    logger.warning("job line counted from the lineage an earlier attempt wrote", extra={"line": line})
    return True


# ---------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class JobPorts:
    table: BatchTable
    objects: BatchObjects  # the batch bucket's chunks
    job_records: BatchJobRecords
    commercial: CommercialObjects
    jobs: BatchInferenceJobs
    target: BatchJobTarget
    events: EventBatchPublisher


def _entries(
    batch_id: str, status: Mapping[str, Any], objects: BatchObjects, start: int = 0
) -> Iterator[Mapping[str, Any]]:
    """The valid lines' split entries in input order, from the `start`th on: the split's chunks hold
    `chunk_lines` entries each (the last fewer), so the chunks before it are not read."""
    bucket, size = str(status["bucket"]), int(status.get("chunk_lines") or 0)
    first, skip = divmod(start, size) if size else (0, start)
    chunks = (
        objects.get_json(bucket, chunk_key(batch_id, index))
        for index in range(first, int(status.get("chunks", 0)))
    )
    yield from islice((entry for chunk in chunks for entry in chunk), skip, None)


def _valid_lines(batch_id: str, status: Mapping[str, Any], objects: BatchObjects) -> list[int]:
    return [int(entry["line"]) for entry in _entries(batch_id, status, objects)]


def start_job(
    batch_id: str,
    threshold: int,
    *,
    ports: JobPorts,
    queue: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
) -> BatchJob | None:
    """After the split: the batch's job, submitted once; None when the batch takes no job (then every
    valid line is released on-demand, as without the job path). The batch is held (`state` JOB) from
    before the first record is made until collect hands it back, so no progress message starts a line."""
    status = ports.table.status(batch_id)
    if status is None:
        raise ValueError(f"batch {batch_id} has no status item")
    if threshold <= 0 or int(status.get("valid", 0)) < threshold:
        return None
    ports.table.update_status(batch_id, {"state": "JOB"})
    prepared = prepare(
        batch_id, status, _entries(batch_id, status, ports.objects), ports=queue, judge=judge, budget=budget
    )
    if prepared.model_id is None or not use_job(len(prepared.records), [prepared.model_id], threshold):
        release_only(batch_id, _valid_lines(batch_id, status, ports.objects), ports.table, ports.objects)
        return None
    return submit_job(
        batch_id,
        prepared.model_id,
        prepared.records,
        ports.target,
        job_records=ports.job_records,
        objects=ports.commercial,
        jobs=ports.jobs,
    )


@dataclass(frozen=True)
class PageLimits:
    """One FinishJob invocation's page: at most this many lines, and it ends before the line that would
    take its requests and answers past `bytes`, or when the invocation's time left falls to the
    retry budget's reserve (at least one line per page)."""

    lines: int
    bytes: int


UNBOUNDED: Final = PageLimits(lines=2**31, bytes=2**62)


@dataclass(frozen=True)
class FinishPage:
    cursor: int  # the valid lines (in input order) gone through, this page's included
    done: bool  # every line seen: the rest released on-demand
    on_demand: int | None = None  # when done: how many lines go on-demand


def finish_page(
    job: BatchJob,
    cursor: int,
    limits: PageLimits,
    *,
    ports: JobPorts,
    queue: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
) -> FinishPage:
    """One page of a finished job: the answered lines among the valid lines from `cursor` on made final
    (a page retried, or overlapping one before, makes nothing final twice and emits nothing twice: each
    line's lineage claim); after the last line, every valid line the job did not answer released
    on-demand in input order."""
    status = ports.table.status(job.batch_id)
    if status is None:
        raise ValueError(f"batch {job.batch_id} has no status item")
    entries = _entries(job.batch_id, status, ports.objects, cursor)
    page = list(islice(entries, limits.lines))
    more = next(entries, None) is not None
    if page:
        began = time.monotonic()
        answers = page_answers(job, [int(entry["line"]) for entry in page], objects=ports.commercial)
        done, _ = _collect_entries(
            job.batch_id, status, page, answers,
            ports=queue, judge=judge, budget=budget, table=ports.table, events=ports.events,
            stop=lambda size: size >= limits.bytes or budget.time_left() <= budget.reserve_s,
        )  # fmt: skip
        seconds = round(time.monotonic() - began, 3)
        logger.info(
            "job page",
            extra={
                "batch_id": job.batch_id,
                "cursor": cursor,
                "lines": done,
                "seconds": seconds,
                "lines_per_s": round(done / seconds, 2) if seconds else None,
            },
        )
        cursor += done
        if done < len(page) or more:
            return FinishPage(cursor=cursor, done=False)
    final = lines_answered(job, objects=ports.commercial)
    left = [line for line in _valid_lines(job.batch_id, status, ports.objects) if line not in final]
    on_demand = release_only(job.batch_id, left, ports.table, ports.objects)
    return FinishPage(cursor=cursor, done=True, on_demand=on_demand)


def finish_job(
    job: BatchJob,
    *,
    ports: JobPorts,
    queue: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
    limits: PageLimits = UNBOUNDED,
) -> int:
    """After the job ended: its answered lines made final, every other valid line released on-demand in
    input order, page after page in one call; how many go on-demand."""
    cursor = 0
    while True:
        page = finish_page(job, cursor, limits, ports=ports, queue=queue, judge=judge, budget=budget)
        if page.done:
            return page.on_demand or 0
        cursor = page.cursor


def look(job: BatchJob, *, ports: JobPorts, max_wait_s: int) -> JobState:
    """One look at the batch's job: ended, or the wait before the next look (growing, at most
    `max_wait_s`)."""
    check = check_job(job, job_records=ports.job_records, jobs=ports.jobs)
    return JobState(
        submitted=True, job=check.job, finished=check.finished, wait_s=min(check.wait_s, max_wait_s)
    )


def start(
    batch_id: str,
    threshold: int,
    max_wait_s: int,
    *,
    ports: Callable[[], JobPorts],
    queue: Callable[[], queue_processing.QueuePorts],
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
) -> JobState:
    """start_job, answered for the workflow: the job and the wait before its first look, or no job.
    Threshold 0 (no job path) builds no port: a stack without the commercial side runs as before."""
    if threshold <= 0:
        return JobState(submitted=False)
    job = start_job(batch_id, threshold, ports=ports(), queue=queue(), judge=judge, budget=budget)
    if job is None:
        return JobState(submitted=False)
    return JobState(submitted=True, job=job, wait_s=min(next_check_s(0), max_wait_s))


def finish(
    job: BatchJob,
    cursor: int,
    limits: PageLimits,
    *,
    ports: JobPorts,
    queue: queue_processing.QueuePorts,
    judge: Callable[[], Judgement],
    budget: queue_processing.RetryBudget,
) -> JobState:
    """One page of finish_job, answered for the workflow: where the next page starts, or (collected)
    how many lines went on-demand. The workflow runs FinishJob again until collected."""
    page = finish_page(job, cursor, limits, ports=ports, queue=queue, judge=judge, budget=budget)
    return JobState(
        submitted=True,
        job=job,
        finished=True,
        cursor=page.cursor,
        collected=page.done,
        on_demand=page.on_demand,
    )
