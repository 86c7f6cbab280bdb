"""The reaper: a request left ACCEPTED past the inference workflow's longest possible run will never
be answered by its workflow. Each one is ended here as FAILED (`RequestAbandoned`) with its
`Inference Failed` event, once.

Once: the FAILED state is written on condition that the item is still ACCEPTED, and the event is
published only by the run whose write succeeded, then the item is marked as reported. A run that wrote
but did not get to publish (it crashed, or EventBridge refused) leaves a FAILED `RequestAbandoned` item
without the mark: a later run publishes its event from the lineage item alone and marks it. Such an
item is only taken once it has been final for longer than a run can last, so two runs never publish
the same abandonment. An execution still running past the bound is stopped first, so it cannot emit
after the reaper did.

A queue request (source `sqs`) runs in an Express execution (one per SQS batch), which Step Functions
ends at 5 minutes whatever its state and which has no DescribeExecution or StopExecution: such an item
is taken once it is older than `express_abandon_after` (5 minutes plus a margin), without inspecting or
stopping anything. That is the normal end of a queue request whose run was killed there (a Bedrock
backlog, a killed runtime's retry budget).

Two regions (one lineage global table): each region's reaper ends only the requests whose id names it,
or none (xpi.domain.regions); another region's stale items are that region's reaper's, so the two never
both end one request (each write would succeed in its own replica). A region lost for good leaves its
items to `take_over`: an operator declares it lost (`xpi regions takeover --region X` invokes this
function), and the survivor's reaper ends that region's ACCEPTED items as FAILED (`RegionLost`) with
their event, once, by the same conditional write, whatever their age: the declaration, not a clock,
says the region can no longer finish them (docs/operations.md, "Disaster recovery").
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import AbandonedLineage, EventPublisher, ExecutionControl
from xpi.domain.errors import MESSAGES
from xpi.domain.regions import check_takeover, owned_by_other_region, taken_over
from xpi.models.events import INFERENCE_FAILED, EventCaller, EventError, EventModel, ResultDetail
from xpi.models.lineage import LineageError, LineageItem
from xpi.models.reaping import ExecutionState, ReapReport, TakeoverReport
from xpi.observability import logger, metrics

ABANDONED = "RequestAbandoned"
REGION_LOST = "RegionLost"  # a request another region, declared lost, left unended (take_over)
# Longer than one reaper run can last (the function's Timeout): an unreported abandonment older than
# this was left by a run that is over.
RUN_GRACE = timedelta(minutes=5)
# How far back (by creation) a later run looks for abandonments left unreported.
REPORT_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Reaper:
    lineage: AbandonedLineage
    executions: ExecutionControl
    events: EventPublisher
    abandon_after: timedelta
    max_items: int
    express_abandon_after: timedelta | None = None  # None: every source waits abandon_after
    region: str = ""  # this region: another region's requests are left to it (""/one region: none are)


# The sources whose requests run in the Express queue workflow.
EXPRESS_SOURCES = frozenset({"sqs"})


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def abandoned_item(
    item: LineageItem, execution: ExecutionState | None, now: datetime, code: str = ABANDONED
) -> LineageItem:
    """The FAILED state of an ACCEPTED item, with the source its execution was started with when known
    (a batch line's batch_id, so the batch counts it)."""
    source = execution.source if execution else None
    return item.model_copy(
        update={
            "status": "FAILED",
            "error": LineageError(code=code, message=MESSAGES[code]),
            "completed_at": _iso(now),
            "source_reference": item.source_reference or (source.reference if source else None),
            "batch_id": item.batch_id or (source.batch_id if source else None),
        }
    )


def abandoned_detail(item: LineageItem) -> ResultDetail:
    """The Inference Failed event of an abandoned request, from its lineage item alone."""
    code = item.error.code if item.error else ABANDONED
    timings = {"received_at": datetime.fromisoformat(item.created_at)}
    if item.completed_at:
        timings["completed_at"] = datetime.fromisoformat(item.completed_at)
    return ResultDetail(
        request_id=item.request_id,
        status="FAILED",
        source=item.source,
        source_reference=item.source_reference,
        batch_id=item.batch_id,
        caller=EventCaller(
            principal=item.caller_principal, project=item.project, cost_centre=item.cost_centre
        ),
        model=EventModel(requested=item.model_requested),
        error=EventError(code=code, message=MESSAGES[code]),
        timings=timings,
        lineage_key=item.request_id,
    )


def _report(reaper: Reaper, item: LineageItem, now: datetime) -> None:
    reaper.events.publish(INFERENCE_FAILED, abandoned_detail(item))
    reaper.lineage.mark_reported(item.request_id, _iso(now))


def reap(reaper: Reaper, now: datetime) -> ReapReport:
    report = ReapReport()
    bound = now - reaper.abandon_after
    express_bound = now - (reaper.express_abandon_after or reaper.abandon_after)
    first_bound = min(bound, express_bound)

    def mine(request_id: str) -> bool:
        return not owned_by_other_region(request_id, reaper.region)

    for candidate in reaper.lineage.accepted_before(
        _iso(max(bound, express_bound)), reaper.max_items, keep=mine
    ):
        request_id = candidate.request_id
        express = reaper.express_abandon_after is not None and candidate.source in EXPRESS_SOURCES
        if not express and candidate.created_at >= _iso(bound):
            continue  # a Standard execution may still be running it
        execution = None if express else reaper.executions.inspect(request_id)
        if execution is not None and execution.status == "RUNNING":
            # Past the longest possible run: stop it first, so it cannot emit after the reaper.
            reaper.executions.stop(request_id, ABANDONED, MESSAGES[ABANDONED])
            report.stopped.append(request_id)
        failed = abandoned_item(candidate, execution, now)
        if not reaper.lineage.abandon(failed):
            # Its workflow (or another run) made it final first: that writer answers it.
            report.finished_meanwhile.append(request_id)
            continue
        report.reaped.append(request_id)
        _report(reaper, failed, now)

    # Abandonments an earlier run wrote but did not get to publish.
    for item in reaper.lineage.unreported_abandoned(
        _iso(first_bound - REPORT_LOOKBACK),
        _iso(max(bound, express_bound)),
        _iso(now - RUN_GRACE),
        ABANDONED,
    ):
        if not mine(item.request_id):
            continue  # its region's reaper reports it
        _report(reaper, item, now)
        report.reported_late.append(item.request_id)

    if report.reaped or report.reported_late:
        logger.warning("abandoned requests ended as FAILED", extra=report.model_dump())
    metrics.add_metric(name="RequestsAbandoned", unit=MetricUnit.Count, value=len(report.reaped))
    return report


def take_over(reaper: Reaper, lost_region: str, now: datetime) -> TakeoverReport:
    """End the ACCEPTED requests of `lost_region` (declared lost by an operator) as FAILED `RegionLost`,
    each with its Inference Failed event, once; at most `max_items` a run (`more`: run again). Their
    executions were the lost region's: nothing is inspected or stopped. A run that wrote but did not get
    to publish leaves the item unmarked: a run of the same takeover, once that item has been final for
    longer than a run can last, publishes its event."""
    check_takeover(lost_region, reaper.region)
    report = TakeoverReport(region=lost_region)

    def lost(request_id: str) -> bool:
        return taken_over(request_id, lost_region)

    candidates = reaper.lineage.accepted_before(_iso(now), reaper.max_items, keep=lost)
    report.more = len(candidates) >= reaper.max_items
    for candidate in candidates:
        failed = abandoned_item(candidate, None, now, REGION_LOST)
        if not reaper.lineage.abandon(failed):
            report.finished_meanwhile.append(candidate.request_id)  # final in its replica meanwhile
            continue
        report.ended.append(candidate.request_id)
        _report(reaper, failed, now)

    for item in reaper.lineage.unreported_abandoned(
        _iso(now - REPORT_LOOKBACK), _iso(now), _iso(now - RUN_GRACE), REGION_LOST
    ):
        if lost(item.request_id):
            _report(reaper, item, now)
            report.reported_late.append(item.request_id)

    logger.warning("a lost region's requests ended as FAILED", extra=report.model_dump())
    metrics.add_metric(name="RequestsTakenOver", unit=MetricUnit.Count, value=len(report.ended))
    return report
