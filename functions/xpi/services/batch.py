"""Batch files through the per-request path.

start    an upload noticed (S3 notification): one batch workflow per object version
split    stream the file once: bad lines recorded per line, valid lines into chunk files, counts
arm      the workflow waits on a task token; the batch's first lines start, as slots allow
progress each line's result event (via EventBridge -> SQS) records the line and its counters once,
         gives its slots back, starts the next lines, and the last one resumes the batch workflow
assemble results/<batch>.jsonl from the line items in input order, streamed (or, on the failure
         path, why the batch failed)

Slots: every model has `concurrency` slots shared by all batches (a counter item per model). A line
holds one slot of each model its batch uses from its start to its result event, so no model ever has
more batch calls in flight than configured, however many batches run. A batch that finds no free slot
lists itself as waiting on those models; a line that gives its slots back offers them to the waiting
batches in turn (round robin by batch id), then to its own batch, so a small batch is not stuck
behind a large one.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import (
    BatchObjects,
    BatchStarter,
    BatchTable,
    BatchWorkflow,
    LineageStore,
    WorkflowStarter,
)
from xpi.domain.batch import (
    BatchInvalid,
    BatchLimits,
    LineNotJson,
    RawLine,
    batch_objects,
    failure_reason,
    is_jsonl_key,
    iter_lines,
    line_number_of,
    line_request_id,
    line_result_from_event,
    manifest_key_for,
    parse_defaults,
    prepare_line,
    results_line,
    uploader_of,
    window_for,
)
from xpi.domain.errors import RequestInvalid
from xpi.domain.outcome import MAX_ERROR_MESSAGE
from xpi.domain.ownership import owner_of
from xpi.models.batch import (
    BatchFailure,
    BatchObject,
    BatchSummary,
    LineResult,
    S3Notification,
    SplitResult,
)
from xpi.models.workflow import Source, WorkflowInput
from xpi.observability import logger, metrics

METADATA_DEFAULTS = "xpi-defaults"
METADATA_MODEL = "xpi-model"
INVALID_FLUSH = 100


def chunk_key(batch_id: str, index: int, chunk_set: str = "chunks") -> str:
    return f"work/{batch_id}/{chunk_set}/{index:06d}.json"


# The chunk set of the lines a batch job left to the on-demand path (see release_only).
ON_DEMAND_SET = "on-demand"


def results_key(batch: BatchObject) -> str:
    """Under the uploader's own prefix, which only it (and xpi's batch roles) may read."""
    return f"results/{uploader_of(batch.key)}/{batch.batch_id}.jsonl"


def _ownership(batch: BatchObject) -> dict[str, str]:
    uploader = uploader_of(batch.key)
    return {"owner": owner_of(uploader), "uploader": uploader} if uploader else {}


def source_uri(batch: BatchObject) -> str:
    return f"s3://{batch.bucket}/{batch.key}"


# ---------------------------------------------------------------------------------------------- start
def start_batches(notification: S3Notification, prefix: str, starter: BatchStarter) -> int:
    """One batch workflow per uploaded object version the notification names; how many started (an
    object noticed twice is one batch: the execution is named by its batch id)."""
    started = 0
    for batch in batch_objects(notification, prefix):
        if starter.start(batch):
            logger.info("batch started", extra={"batch_id": batch.batch_id, "key": batch.key})
            started += 1
        else:
            logger.info("batch seen before; not started again", extra={"batch_id": batch.batch_id})
    return started


# ---------------------------------------------------------------------------------------------- split
def _defaults(batch: BatchObject, metadata: Mapping[str, str], objects: BatchObjects) -> dict[str, Any]:
    defaults = parse_defaults(metadata.get(METADATA_DEFAULTS), f"object metadata {METADATA_DEFAULTS}")
    if metadata.get(METADATA_MODEL):
        defaults.setdefault("model", metadata[METADATA_MODEL])
    manifest = manifest_key_for(batch.key)
    sidecar = parse_defaults(objects.read_text_if_exists(batch.bucket, manifest), f"manifest {manifest}")
    return {**defaults, **sidecar}


def _check_object(batch: BatchObject, limits: BatchLimits) -> None:
    if not is_jsonl_key(batch.key):
        raise BatchInvalid(f"{batch.key} does not end with .jsonl or .jsonl.gz", detail="not a JSONL file")
    if uploader_of(batch.key) is None:
        raise BatchInvalid("upload to incoming/<your aws:userid>/", detail="not under the uploader's prefix")
    if batch.size == 0:
        raise BatchInvalid("the file is empty", detail="empty")
    if batch.size > limits.max_bytes:
        raise BatchInvalid(
            f"{batch.size} bytes; the limit is {limits.max_bytes}", detail="over the size limit"
        )


def line_error(error: RequestInvalid) -> dict[str, str]:
    """An invalid line's error in its results row: the code, its fixed message and, when pydantic said
    where, the problems as `location: type` (never a value)."""
    problems = "; ".join(f"{p.location}: {p.type}" for p in error.problems)
    return {"code": error.code, "message": error.message[:MAX_ERROR_MESSAGE]} | (
        {"problems": problems} if problems else {}
    )


def split(
    batch: BatchObject, table: BatchTable, objects: BatchObjects, limits: BatchLimits, now: datetime
) -> SplitResult:
    """Validate and split the file in one streaming pass. Nothing is started here: a file that turns
    out to be over a limit halfway fails the batch before any line crossed the partition."""
    _check_object(batch, limits)
    body, metadata, _ = objects.open(batch.bucket, batch.key, batch.version_id)
    defaults = _defaults(batch, metadata, objects)

    total = valid = invalid = not_json = chunks = 0
    models: set[str] = set()
    chunk: list[dict[str, Any]] = []
    bad: list[LineResult] = []
    raw: RawLine
    for raw in iter_lines(body, gzipped=batch.key.endswith(".gz")):
        total += 1
        if total > limits.max_lines:
            raise BatchInvalid(f"more than {limits.max_lines} lines", detail="over the line limit")
        request_id = line_request_id(batch.batch_id, raw.number)
        try:
            request = prepare_line(raw, defaults, request_id)
        except RequestInvalid as exc:
            invalid += 1
            not_json += isinstance(exc, LineNotJson)
            bad.append(
                LineResult(
                    line=raw.number,
                    request_id=request_id,
                    status="FAILED",
                    error=line_error(exc),
                )
            )
            if len(bad) >= INVALID_FLUSH:
                table.put_invalid_lines(batch.batch_id, bad)
                bad = []
            continue
        valid += 1
        models.add(request.model)
        chunk.append({"line": raw.number, "request": request.model_dump(mode="json", exclude_none=True)})
        if len(chunk) >= limits.chunk_lines:
            objects.put_json(batch.bucket, chunk_key(batch.batch_id, chunks), chunk)
            chunks, chunk = chunks + 1, []
    if total == 0:
        raise BatchInvalid("the file is empty (no lines)", detail="empty")
    if not_json == total:
        raise BatchInvalid("no line is a JSON object", detail="not JSONL")
    if chunk:
        objects.put_json(batch.bucket, chunk_key(batch.batch_id, chunks), chunk)
        chunks += 1
    if bad:
        table.put_invalid_lines(batch.batch_id, bad)

    result = SplitResult(
        total=total,
        valid=valid,
        invalid=invalid,
        chunks=chunks,
        window=window_for(models, limits.concurrency, limits.default_concurrency),
    )
    status = {
        "state": "RUNNING",
        **result.model_dump(),
        "chunk_lines": limits.chunk_lines,
        "models": sorted(models),  # a line of this batch holds a slot of each while it runs
        "done": invalid,
        "completed": 0,
        "blocked": 0,
        "failed": invalid,
        "released": 0,  # lines started, in input order: the next to start is at this index
        "input_tokens": 0,
        "output_tokens": 0,
        "estimated_cost_usd": 0,
        "source_uri": source_uri(batch),
        "bucket": batch.bucket,
        "key": batch.key,
        "version_id": batch.version_id or "",
        "etag": batch.etag,
        "principal": batch.principal,
        **_ownership(batch),
        "uploaded_at": batch.uploaded_at.isoformat(),
        "started_at": now.isoformat(),
        "expires_at": int((now + timedelta(days=limits.retention_days)).timestamp()),
    }
    if not table.create_status(batch.batch_id, status):  # a retried split: same file, same answer
        table.update_status(batch.batch_id, status)
    return result


# ---------------------------------------------------------------------------------------------- fan-out
class LineStarter:
    """Starts a batch's lines in input order while its models have free slots; keeps the last chunk
    read (warm invocations)."""

    def __init__(
        self, table: BatchTable, objects: BatchObjects, starter: WorkflowStarter, limits: BatchLimits
    ) -> None:
        self._table, self._objects, self._starter, self._limits = table, objects, starter, limits
        self._chunk: tuple[str, list[dict[str, Any]]] | None = None

    def pump(self, batch_id: str) -> int:
        """Start the batch's next lines while slots allow; how many started."""
        started = 0
        while True:
            status = self._table.status(batch_id)
            if status is None:
                return started
            models = [str(model) for model in status.get("models", [])]
            index = int(status.get("released", 0))
            # The lines to start: every valid line, or (after a batch job) the ones it left on-demand.
            to_start = int(status.get("release_total", status.get("valid", 0)))
            if status.get("state") != "RUNNING" or index >= to_start:
                if models:
                    self._table.remove_waiting(models, batch_id)
                return started
            if not self._take_slots(batch_id, models):
                return started
            # Started before it is claimed: a start that fails leaves the line to the next pump, and
            # two pumps racing for it start one execution (its name is the request id).
            try:
                self._start(batch_id, status, index)
            except Exception:
                self._give_back(models, batch_id)
                raise
            if not self._table.claim_line(batch_id, index):
                # Another invocation claimed this line first (with its own slots): ours go back.
                self._give_back(models, batch_id)
                continue
            started += 1

    def line_finished(self, batch_id: str, models: Sequence[str]) -> None:
        """A line's slots come back: waiting batches take their turn, then its own batch's next line."""
        self._give_back(models, batch_id)
        self.pump(batch_id)

    def _take_slots(self, batch_id: str, models: Sequence[str]) -> bool:
        slots = self._limits.slots_for(models)
        if self._table.acquire_slots(slots):
            return True
        # Listed before trying again, so a slot given back after this try sees the batch waiting.
        self._table.add_waiting(models, batch_id)
        return self._table.acquire_slots(slots)

    def _give_back(self, models: Sequence[str], batch_id: str) -> None:
        self._table.release_slots(models)
        waiting = self._table.waiting(models)
        # Round robin by batch id: the batches after this one first, so each waiting batch gets turns.
        for other in [b for b in waiting if b > batch_id] + [b for b in waiting if b < batch_id]:
            self.pump(other)

    def _start(self, batch_id: str, status: Mapping[str, Any], index: int) -> None:
        size = int(status["chunk_lines"])
        key = chunk_key(batch_id, index // size, str(status.get("release_set", "chunks")))
        if self._chunk is None or self._chunk[0] != key:
            self._chunk = (key, self._objects.get_json(str(status["bucket"]), key))
        entry = self._chunk[1][index % size]
        line = int(entry["line"])
        source = Source(
            kind="s3_batch",
            principal=str(status["principal"]),
            reference=f"{status['source_uri']}#{line}",
            received_at=datetime.fromisoformat(str(status["uploaded_at"])),
            batch_id=batch_id,
        )
        request_id = line_request_id(batch_id, line)
        self._starter.start(request_id, WorkflowInput(request=entry["request"], source=source))


def release_only(batch_id: str, lines: Iterable[int], table: BatchTable, objects: BatchObjects) -> int:
    """After a batch job: the valid lines it did not answer (policy's blocked lines, the records it
    failed or never reached) become the lines `AwaitLines` starts on-demand, in input order, through the
    same per-request path. Their split entries are copied to a chunk set of their own and the status
    item points the line starter at it (`release_set`, `release_total`, `released` back to 0), and the
    batch is RUNNING again. Idempotent: a retry writes the same chunks and the same counters. How many
    lines go on-demand."""
    status = table.status(batch_id)
    if status is None:
        raise BatchInvalid(f"batch {batch_id} has no status item", detail="missing status")
    wanted = sorted(set(lines))
    size, bucket = int(status["chunk_lines"]), str(status["bucket"])
    chunks_in = int(status.get("chunks", 0))
    picked: list[dict[str, Any]] = []
    written = 0
    remaining = set(wanted)
    for index in range(chunks_in):
        if not remaining:
            break
        for entry in objects.get_json(bucket, chunk_key(batch_id, index)):
            if int(entry["line"]) in remaining:
                remaining.discard(int(entry["line"]))
                picked.append(entry)
                if len(picked) == size:
                    objects.put_json(bucket, chunk_key(batch_id, written, ON_DEMAND_SET), picked)
                    written, picked = written + 1, []
    if picked:
        objects.put_json(bucket, chunk_key(batch_id, written, ON_DEMAND_SET), picked)
    if remaining:
        raise BatchInvalid(
            f"{len(remaining)} lines to run are not valid lines of the batch", detail="unknown lines"
        )
    table.update_status(
        batch_id,
        {"state": "RUNNING", "release_set": ON_DEMAND_SET, "release_total": len(wanted), "released": 0},
    )
    return len(wanted)


def _finish_if_done(
    batch_id: str, status: Mapping[str, Any], table: BatchTable, workflow: BatchWorkflow
) -> bool:
    """The one caller that sees every line done resumes the batch workflow (conditional transition)."""
    if int(status.get("done", 0)) < int(status.get("total", 1)) or not status.get("task_token"):
        return False
    if not table.claim_transition(batch_id, "RUNNING", "ASSEMBLING"):
        return False
    workflow.lines_finished(str(status["task_token"]), {"batch_id": batch_id})
    return True


def arm(
    batch_id: str, task_token: str, table: BatchTable, lines: LineStarter, workflow: BatchWorkflow
) -> int:
    """Store the token the workflow waits on, then start the first lines (as many as slots allow)."""
    status = table.update_status(batch_id, {"task_token": task_token})
    if _finish_if_done(batch_id, status, table, workflow):
        return 0
    return lines.pump(batch_id)


def corroborated(batch_id: str, line: int, status: str, table: BatchTable, lineage: LineageStore) -> bool:
    """Whether xpi's own records back a line result event: anyone allowed events:PutEvents on the bus
    (an identity policy in the account can allow it, whatever the bus policy says) could send one.
    The batch must exist with that line, and the line's lineage item (written by the workflow before
    it emits) must belong to that batch, come from a batch file, and have ended with that status."""
    batch = table.status(batch_id)
    if batch is None or "state" not in batch or not 1 <= line <= int(batch.get("total", 0)):
        return False
    item = lineage.get(line_request_id(batch_id, line))
    return (
        item is not None and item.batch_id == batch_id and item.source == "s3_batch" and item.status == status
    )


def line_counters(result: LineResult, detail: Mapping[str, Any]) -> dict[str, int | float]:
    """What one finished line adds to its batch's counters."""
    usage = detail.get("usage") or {}
    return {
        "done": 1,
        result.status.lower(): 1,
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "estimated_cost_usd": float(usage.get("estimated_cost_usd", 0.0)),
    }


def record_progress(
    detail: Mapping[str, Any],
    table: BatchTable,
    lines: LineStarter,
    workflow: BatchWorkflow,
    lineage: LineageStore,
) -> str:
    """One line's result event: count it once, start the next line, finish the batch if it was last.
    An event xpi's records do not corroborate is ignored (logged), never counted or written."""
    batch_id = str(detail.get("batch_id") or "")
    line = line_number_of(str(detail.get("request_id", "")), batch_id)
    if not batch_id or line is None:
        return "ignored"
    if not corroborated(batch_id, line, str(detail.get("status", "")), table, lineage):
        logger.warning("line result not corroborated by lineage; ignored", extra={"batch_id": batch_id})
        metrics.add_metric(name="BatchLineResultsRejected", unit=MetricUnit.Count, value=1)
        return "rejected"
    result = line_result_from_event(detail, line)
    recorded = table.record_line(batch_id, result, line_counters(result, detail))
    status = table.status(batch_id)
    if status is None:
        return "ignored"
    if table.claim_release(batch_id, line):  # once per line, even when its event comes twice
        lines.line_finished(batch_id, [str(model) for model in status.get("models", [])])
    else:  # a redelivery (its first delivery may have failed to start the next line): try again
        lines.pump(batch_id)
    status = table.status(batch_id) or status
    _finish_if_done(batch_id, status, table, workflow)
    return "recorded" if recorded else "duplicate"


# ---------------------------------------------------------------------------------------------- end
def _summary(batch: BatchObject, record: Mapping[str, Any], now: datetime, **extra: Any) -> BatchSummary:
    started = record.get("started_at")
    started_at = datetime.fromisoformat(str(started)) if started else None
    return BatchSummary(
        batch_id=batch.batch_id,
        source_uri=source_uri(batch),
        total=int(record.get("total", 0)),
        completed=int(record.get("completed", 0)),
        blocked=int(record.get("blocked", 0)),
        failed=int(record.get("failed", 0)),
        invalid=int(record.get("invalid", 0)),
        input_tokens=int(record.get("input_tokens", 0)),
        output_tokens=int(record.get("output_tokens", 0)),
        estimated_cost_usd=round(float(record.get("estimated_cost_usd", 0.0)), 6),
        started_at=started_at,
        finished_at=now,
        duration_s=round((now - started_at).total_seconds(), 3) if started_at else None,
        **extra,
    )


def assemble(batch: BatchObject, table: BatchTable, objects: BatchObjects, now: datetime) -> BatchSummary:
    """results/<batch>.jsonl: one line per input line, in input order, streamed from the line items."""
    status = table.status(batch.batch_id) or {}
    written = 0

    def rows() -> Iterator[bytes]:
        nonlocal written
        for result in table.lines(batch.batch_id):
            written += 1
            yield results_line(result)

    key = results_key(batch)
    objects.write_stream(batch.bucket, key, rows())
    if written != int(status.get("total", 0)):
        raise BatchInvalid(
            f"{written} result lines for {status.get('total')} input lines", detail="results incomplete"
        )
    uri = f"s3://{batch.bucket}/{key}"
    summary = _summary(batch, status, now, status="COMPLETED", results_uri=uri)
    table.update_status(
        batch.batch_id, {"state": "COMPLETED", "results_uri": uri, "finished_at": now.isoformat()}
    )
    logger.info("batch assembled", extra={"batch_id": batch.batch_id, "total": summary.total})
    return summary


def fail(batch: BatchObject, reason: str, table: BatchTable, now: datetime) -> BatchSummary:
    status = table.update_status(
        batch.batch_id,
        {
            "state": "FAILED",
            "reason": reason[:1000],
            "finished_at": now.isoformat(),
            "source_uri": source_uri(batch),
            **_ownership(batch),
        },
    )
    return _summary(batch, status, now, status="FAILED", reason=reason[:1000])


def record_failure(failure: BatchFailure, table: BatchTable, now: datetime) -> BatchSummary:
    """The batch workflow's failure path: record why the batch failed, from the error a Catch caught."""
    summary = fail(failure.batch, failure_reason(failure.error), table, now)
    logger.warning("batch failed", extra={"batch_id": failure.batch.batch_id, "reason": summary.reason})
    return summary
