"""In-memory fakes of the reaper's ports (AbandonedLineage, ExecutionControl), with the semantics of
DynamoLineageStore's by-status reads and Step Functions' executions."""

from collections.abc import Callable

from xpi.models.lineage import ACCEPTED, LineageItem
from xpi.models.reaping import ExecutionState

from tests.helpers.fakes import FakeLineageStore


class FakeAbandonedLineage(FakeLineageStore):
    def __init__(self) -> None:
        super().__init__()
        self.reported: dict[str, str] = {}

    def put(self, item: LineageItem) -> None:
        self.items[item.request_id] = item

    def accepted_before(
        self, before_iso: str, limit: int, keep: Callable[[str], bool] | None = None
    ) -> list[LineageItem]:
        found = [
            i
            for i in self.items.values()
            if i.status == ACCEPTED and i.created_at < before_iso and (keep is None or keep(i.request_id))
        ]
        return sorted(found, key=lambda i: i.created_at)[:limit]

    def abandon(self, item: LineageItem) -> bool:
        return self.finalize(item)

    def unreported_abandoned(
        self, created_since_iso: str, created_before_iso: str, completed_before_iso: str, code: str
    ) -> list[LineageItem]:
        return [
            i
            for i in self.items.values()
            if i.status == "FAILED"
            and created_since_iso <= i.created_at <= created_before_iso
            and i.error is not None
            and i.error.code == code
            and i.request_id not in self.reported
            and (i.completed_at or "") < completed_before_iso
        ]

    def mark_reported(self, request_id: str, at_iso: str) -> None:
        self.reported.setdefault(request_id, at_iso)


class FakeExecutionControl:
    def __init__(self) -> None:
        self.executions: dict[str, ExecutionState] = {}
        self.stopped: list[tuple[str, str]] = []
        self.inspected: list[str] = []

    def inspect(self, request_id: str) -> ExecutionState | None:
        self.inspected.append(request_id)
        return self.executions.get(request_id)

    def stop(self, request_id: str, error: str, cause: str) -> None:
        self.stopped.append((request_id, error))
        execution = self.executions.get(request_id)
        if execution is not None and execution.status == "RUNNING":
            self.executions[request_id] = execution.model_copy(update={"status": "ABORTED"})
