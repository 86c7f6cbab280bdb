"""The batch workflow's reconciliation: its wait for the last line (a task token) has a heartbeat
timeout, and each time it passes without the batch finishing, this step recounts the batch from the
line workflows themselves, so a lost progress message (a result event that never reached the progress
queue, a message dropped) cannot leave a batch waiting for days.

For each line not yet recorded in the batch table, the line's execution (its output holds the result
event's detail) or else its final lineage item is read, and the line is recorded exactly as its
progress message would have recorded it (`record_progress`: corroborated, counted once). When every
line is done the batch goes on to Assemble; otherwise the workflow waits again. A batch in which no
line finished for `max_stalled_rounds` rounds in a row is given up (`BatchStalled`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from xpi.adapters.ports import BatchTable, BatchWorkflow, ExecutionReader, LineageStore
from xpi.domain.batch import line_request_id
from xpi.domain.errors import BatchStalled
from xpi.observability import logger, metrics
from xpi.services.batch import LineStarter, record_progress

# Unrecorded lines looked at per round, in line order. Lines start in input order, so the started
# but unrecorded ones come first: at most the lines in flight plus those whose message was lost.
MAX_LINES_PER_ROUND = 1000
FINAL = ("COMPLETED", "FAILED", "BLOCKED")


class Reconciled(BaseModel):
    """The reconciliation's answer (ASL: $.reconcile): finished goes on to Assemble, else wait again."""

    finished: bool
    done: int
    total: int
    recovered: int = 0
    stalled_rounds: int = 0


@dataclass(frozen=True)
class BatchReconciler:
    table: BatchTable
    executions: ExecutionReader
    lineage: LineageStore
    lines: LineStarter
    workflow: BatchWorkflow
    max_stalled_rounds: int


def _final_detail(batch_id: str, line: int, reconciler: BatchReconciler) -> Mapping[str, Any] | None:
    """The line's result event detail, from its execution's output, else from its final lineage item."""
    request_id = line_request_id(batch_id, line)
    described = reconciler.executions.describe(request_id)
    if described is None:
        return None  # not started yet
    status, output = described
    if status == "RUNNING":
        return None
    detail = ((output or {}).get("outcome") or {}).get("detail")
    if isinstance(detail, Mapping) and detail.get("status") in FINAL:
        return detail
    item = reconciler.lineage.get(request_id)
    if item is None or item.status not in FINAL or item.batch_id != batch_id:
        return None
    error = item.error.model_dump() if item.error else None
    return {"request_id": request_id, "batch_id": batch_id, "status": item.status, "error": error}


def reconcile(batch_id: str, previous: Reconciled | None, reconciler: BatchReconciler) -> Reconciled:
    table = reconciler.table
    status = table.status(batch_id) or {}
    total = int(status.get("total", 0))
    recovered = 0
    if status.get("state") == "RUNNING":
        recorded = {result.line for result in table.lines(batch_id)}
        missing = [line for line in range(1, total + 1) if line not in recorded][:MAX_LINES_PER_ROUND]
        for line in missing:
            detail = _final_detail(batch_id, line, reconciler)
            if detail is None:
                continue
            outcome = record_progress(
                detail, table, reconciler.lines, reconciler.workflow, reconciler.lineage
            )
            recovered += outcome == "recorded"
        reconciler.lines.pump(batch_id)  # a line whose start was lost starts now
        status = table.status(batch_id) or status
    done = int(status.get("done", 0))
    # Every line done: the last one's progress (or this round) moved the batch on to ASSEMBLING; its
    # SendTaskSuccess found the wait over, so this step resumes the workflow instead.
    finished = status.get("state") == "ASSEMBLING" or (
        done >= total and table.claim_transition(batch_id, "RUNNING", "ASSEMBLING")
    )
    stalled = 0 if finished or previous is None or done > previous.done else previous.stalled_rounds + 1
    if recovered:
        logger.warning(
            "batch lines recovered by reconciliation", extra={"batch_id": batch_id, "lines": recovered}
        )
        metrics.add_metric(name="BatchLinesReconciled", unit=MetricUnit.Count, value=recovered)
    if stalled >= reconciler.max_stalled_rounds:
        raise BatchStalled(f"no line finished in {stalled} rounds")
    return Reconciled(finished=finished, done=done, total=total, recovered=recovered, stalled_rounds=stalled)
