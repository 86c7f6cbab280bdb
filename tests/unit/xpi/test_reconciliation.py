"""The batch wait's reconciliation: after a heartbeat timeout, lines whose progress message was lost are
recorded from their executions (or lineage), and the batch finishes when every line is done."""

import json

import pytest
from xpi.domain.errors import BatchStalled
from xpi.services.batch import LineStarter, arm, record_progress, split
from xpi.services.reconciliation import BatchReconciler, Reconciled, reconcile

from tests.helpers.fakes import FakeExecutions
from tests.unit.xpi.test_batch import (
    EMITTED,
    LIMITS,
    NOW,
    FakeObjects,
    FakeStarter,
    FakeTable,
    FakeWorkflow,
    _batch,
    _event,
    _file,
)

BATCH = "b-lost"


class _Batch:
    """A three-line batch whose model runs two lines at a time, armed (lines 1 and 2 started)."""

    def __init__(self, max_stalled_rounds: int = 3) -> None:
        data = _file([json.dumps({"prompt": f"p{n}"}) for n in range(3)])
        key = "in/AIDAEXAMPLE/lost.jsonl"
        self.table, self.starter, self.workflow = FakeTable(), FakeStarter(), FakeWorkflow()
        self.objects = FakeObjects({key: data}, {"xpi-model": "default"})
        split(_batch(key, len(data), batch_id=BATCH), self.table, self.objects, LIMITS, NOW)
        self.lines = LineStarter(self.table, self.objects, self.starter, LIMITS)
        self.executions = FakeExecutions()
        self.reconciler = BatchReconciler(
            self.table, self.executions, EMITTED, self.lines, self.workflow, max_stalled_rounds
        )
        arm(BATCH, "token-1", self.table, self.lines, self.workflow)

    def finish_line(self, line: int, *, message_lost: bool) -> None:
        """The line's workflow ends (its output holds the event's detail); its message arrives, or not."""
        detail = _event(f"{BATCH}-{line}")
        self.executions.executions[f"{BATCH}-{line}"] = ("SUCCEEDED", {"outcome": {"detail": detail}})
        if not message_lost:
            record_progress(detail, self.table, self.lines, self.workflow, EMITTED)

    def started(self) -> list[str]:
        return [request_id for request_id, _ in self.starter.started]


def test_lost_progress_messages_are_recovered_and_the_batch_finishes() -> None:
    # GIVEN lines 1 and 2 finished but their progress messages were lost (so line 3 never started)
    batch = _Batch()
    batch.finish_line(1, message_lost=True)
    batch.finish_line(2, message_lost=True)
    assert batch.started() == [f"{BATCH}-1", f"{BATCH}-2"]

    # WHEN the wait's heartbeat passes and the batch is reconciled
    first = reconcile(BATCH, None, batch.reconciler)

    # THEN both are recorded from their executions, line 3 starts, and the batch waits again
    assert (first.finished, first.done, first.recovered) == (False, 2, 2)
    assert batch.started()[-1] == f"{BATCH}-3"
    assert [r.line for r in batch.table.lines(BATCH)] == [1, 2]
    assert next(r for r in batch.table.lines(BATCH) if r.line == 2).output == {
        "text": "ok",
        "bytes": 2,
        "sha256": "0" * 64,
    }

    # WHEN line 3's message is lost too, and the next round comes
    batch.finish_line(3, message_lost=True)
    second = reconcile(BATCH, first, batch.reconciler)

    # THEN every line is done: the batch goes on to Assemble (state ASSEMBLING), counted once each
    assert (second.finished, second.done, second.total) == (True, 3, 3)
    status = batch.table.status(BATCH)
    assert status is not None and status["state"] == "ASSEMBLING" and status["completed"] == 3


def test_a_batch_its_last_progress_finished_is_finished() -> None:
    # GIVEN every message arrived, but the last one's resume found the wait over (heartbeat passed)
    batch = _Batch()
    for line in (1, 2, 3):
        batch.finish_line(line, message_lost=False)

    result = reconcile(BATCH, None, batch.reconciler)

    assert result.finished and result.recovered == 0


def test_a_batch_with_no_line_finishing_is_given_up_after_its_rounds() -> None:
    # GIVEN lines that stay running
    batch = _Batch(max_stalled_rounds=2)
    batch.executions.executions.update({f"{BATCH}-{n}": ("RUNNING", None) for n in (1, 2)})

    # WHEN rounds pass without any line finishing
    first = reconcile(BATCH, None, batch.reconciler)
    second = reconcile(BATCH, first, batch.reconciler)
    assert (first.stalled_rounds, second.stalled_rounds) == (0, 1)

    # THEN the round that reaches the limit fails the batch with a clear reason
    with pytest.raises(BatchStalled):
        reconcile(BATCH, second, batch.reconciler)


def test_progress_resets_the_stall_count() -> None:
    batch = _Batch(max_stalled_rounds=2)
    stalled = Reconciled(finished=False, done=0, total=3, stalled_rounds=1)
    batch.finish_line(1, message_lost=True)

    assert reconcile(BATCH, stalled, batch.reconciler).stalled_rounds == 0


def test_a_failed_line_without_output_is_recorded_from_its_lineage() -> None:
    # GIVEN a line whose execution failed (no output), its lineage final
    batch = _Batch()
    _event(f"{BATCH}-1", "FAILED")  # its lineage item, as the workflow wrote it
    batch.executions.executions[f"{BATCH}-1"] = ("FAILED", None)

    result = reconcile(BATCH, None, batch.reconciler)

    assert result.recovered == 1
    assert [(r.line, r.status) for r in batch.table.lines(BATCH)] == [(1, "FAILED")]
