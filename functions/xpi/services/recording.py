"""The last step of every request: lineage made final (once) and the result event it produces."""

from datetime import datetime

from xpi.adapters.lineage_store import LineageStore
from xpi.domain.outcome import detail_type, lineage_attributes, result_detail
from xpi.models.workflow import Outcome, WorkflowState


def record_outcome(state: WorkflowState, lineage: LineageStore, now: datetime) -> Outcome:
    detail = result_detail(state, completed_at=now)
    first_seen = {
        "created_at": state.claim.created_at,
        "day": state.claim.day,
        "expires_at": int(state.claim.expires_at),
    }
    finalized = lineage.finalize(state.request.request_id, lineage_attributes(state, detail), first_seen)
    # A late duplicate finds the item final already: it must not emit a second terminal event.
    return Outcome(
        emit=finalized,
        detail_type=detail_type(detail),
        detail=detail.model_dump(mode="json", exclude_none=True),
    )
