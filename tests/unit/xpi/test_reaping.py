"""The reaper: requests left ACCEPTED past the inference workflow's longest possible run end as FAILED
(RequestAbandoned) with one Inference Failed event."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import BaseModel
from xpi import dependencies
from xpi.adapters.lineage_claims import DynamoLineageClaims
from xpi.adapters.lineage_store import REPORTED_AT, DynamoLineageStore
from xpi.domain.errors import MESSAGES, RequestInvalid
from xpi.handlers import reap as reap_handler
from xpi.models.lineage import LineageError, LineageItem
from xpi.models.reaping import ExecutionState
from xpi.models.workflow import Source
from xpi.services.reaping import ABANDONED, REGION_LOST, RUN_GRACE, Reaper, reap, take_over

from tests.helpers.context import FakeLambdaContext
from tests.helpers.fakes import FakeEventPublisher
from tests.helpers.fakes_reaping import FakeAbandonedLineage, FakeExecutionControl

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BOUND = timedelta(seconds=3900)


def _accepted(request_id: str, age: timedelta) -> LineageItem:
    created = NOW - age
    return LineageItem(
        request_id=request_id,
        status="ACCEPTED",
        created_at=created.isoformat(timespec="milliseconds"),
        day=created.strftime("%Y-%m-%d"),
        expires_at=int(created.timestamp()) + 86_400,
        caller_principal="arn:aws-us-gov:iam::123456789012:role/producer",
        source="sqs",
        request_hmac="0" * 64,
        model_requested="default",
    )


class _Parts:
    def __init__(self) -> None:
        self.lineage = FakeAbandonedLineage()
        self.executions = FakeExecutionControl()
        self.events = FakeEventPublisher()
        self.reaper = Reaper(self.lineage, self.executions, self.events, BOUND, max_items=50)


@pytest.fixture
def parts() -> _Parts:
    return _Parts()


def test_a_request_accepted_past_the_bound_ends_failed_with_one_event(parts: _Parts) -> None:
    # GIVEN a claim two hours old whose execution is gone, and a claim a minute old
    parts.lineage.put(_accepted("stuck", timedelta(hours=2)))
    parts.lineage.put(_accepted("young", timedelta(minutes=1)))

    # WHEN the reaper runs twice
    first = reap(parts.reaper, NOW)
    second = reap(parts.reaper, NOW + timedelta(minutes=5))

    # THEN the old one is FAILED as RequestAbandoned with exactly one Inference Failed event
    assert first.reaped == ["stuck"] and second.reaped == []
    item = parts.lineage.items["stuck"]
    assert item.status == "FAILED" and item.error is not None and item.error.code == ABANDONED
    assert item.created_at == _accepted("stuck", timedelta(hours=2)).created_at
    assert [(t, d["request_id"], d["error"]["code"]) for t, d in parts.events.published] == [
        ("Inference Failed", "stuck", ABANDONED)
    ]
    assert "stuck" in parts.lineage.reported
    # AND the young one is left to its workflow
    assert parts.lineage.items["young"].status == "ACCEPTED"


def test_an_execution_still_running_past_the_bound_is_stopped_first(parts: _Parts) -> None:
    # GIVEN a batch line's claim past the bound whose execution still runs
    parts.lineage.put(_accepted("line", timedelta(hours=3)))
    source = Source(kind="s3_batch", principal="p", reference="s3://b/k#3", received_at=NOW, batch_id="b-1")
    parts.executions.executions["line"] = ExecutionState(status="RUNNING", source=source)

    # WHEN the reaper runs
    report = reap(parts.reaper, NOW)

    # THEN it stopped the execution, then ended the request, the event naming the batch
    assert parts.executions.stopped == [("line", ABANDONED)]
    assert report.stopped == ["line"] and report.reaped == ["line"]
    ((_, detail),) = parts.events.published
    assert detail["batch_id"] == "b-1" and detail["source_reference"] == "s3://b/k#3"
    assert parts.lineage.items["line"].batch_id == "b-1"


def test_a_finished_execution_is_not_stopped(parts: _Parts) -> None:
    parts.lineage.put(_accepted("done", timedelta(hours=3)))
    parts.executions.executions["done"] = ExecutionState(status="FAILED")

    reap(parts.reaper, NOW)

    assert parts.executions.stopped == []
    assert parts.lineage.items["done"].status == "FAILED"


class _WorkflowFinishesFirst(FakeAbandonedLineage):
    """The workflow makes the item final between the reaper's read and its write."""

    def accepted_before(
        self, before_iso: str, limit: int, keep: Callable[[str], bool] | None = None
    ) -> list[LineageItem]:
        found = super().accepted_before(before_iso, limit, keep)
        for item in found:
            self.finalize(item.model_copy(update={"status": "COMPLETED"}))
        return found


def test_a_request_its_workflow_finished_meanwhile_gets_no_second_event(parts: _Parts) -> None:
    lineage = _WorkflowFinishesFirst()
    lineage.put(_accepted("raced", timedelta(hours=2)))
    reaper = Reaper(lineage, parts.executions, parts.events, BOUND, max_items=50)

    report = reap(reaper, NOW)

    assert report.finished_meanwhile == ["raced"] and report.reaped == []
    assert lineage.items["raced"].status == "COMPLETED"
    assert parts.events.published == []


class _RefusingBus(FakeEventPublisher):
    def publish(self, detail_type: str, detail: BaseModel) -> None:
        raise RuntimeError("EventBridge refused the event")


def test_an_abandonment_written_but_not_published_is_published_once_by_a_later_run(parts: _Parts) -> None:
    # GIVEN a run that wrote the FAILED state but could not publish
    parts.lineage.put(_accepted("unsent", timedelta(hours=2)))
    failing = Reaper(parts.lineage, parts.executions, _RefusingBus(), BOUND, max_items=50)
    with pytest.raises(RuntimeError):
        reap(failing, NOW)
    assert parts.lineage.items["unsent"].status == "FAILED"

    # WHEN later runs come, one while the failed run could still be going, then one after
    during = reap(parts.reaper, NOW + RUN_GRACE / 2)
    after = reap(parts.reaper, NOW + RUN_GRACE + timedelta(seconds=1))
    again = reap(parts.reaper, NOW + RUN_GRACE * 3)

    # THEN only the run after the grace publishes it, once, from the lineage item
    assert (during.reported_late, after.reported_late, again.reported_late) == ([], ["unsent"], [])
    ((detail_type, detail),) = parts.events.published
    assert (detail_type, detail["request_id"], detail["error"]["code"]) == (
        "Inference Failed",
        "unsent",
        ABANDONED,
    )


def test_a_run_takes_at_most_max_items(parts: _Parts) -> None:
    for n in range(5):
        parts.lineage.put(_accepted(f"r{n}", timedelta(hours=2, minutes=n)))
    reaper = Reaper(parts.lineage, parts.executions, parts.events, BOUND, max_items=2)

    assert reap(reaper, NOW).reaped == ["r4", "r3"]  # oldest first


def test_the_handler_runs_the_reaper(parts: _Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    parts.lineage.put(_accepted("via-handler", timedelta(hours=2)))
    monkeypatch.setattr(dependencies, "reaper", lambda: parts.reaper)

    result: dict[str, Any] = reap_handler.handler({"source": "aws.events"}, FakeLambdaContext())

    assert result["reaped"] == ["via-handler"]


# ---------------------------------------------------------------------------------------------- the adapter
@pytest.fixture
def lineage_table(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-gov-west-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-gov-west-1")
        dynamodb.create_table(
            TableName="lineage",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("request_id", "status", "created_at")
            ],
            KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        yield boto3.resource("dynamodb", region_name="us-gov-west-1").Table("lineage")


def test_the_dynamodb_store_reads_the_by_status_index_and_marks_reported(lineage_table: Any) -> None:
    store = DynamoLineageStore("lineage")
    old, young = _accepted("old", timedelta(hours=2)), _accepted("young", timedelta(minutes=1))
    for item in (old, young):
        lineage_table.put_item(Item=item.model_dump(exclude_none=True))
    bound = (NOW - BOUND).isoformat(timespec="milliseconds")

    assert [i.request_id for i in store.accepted_before(bound, 10)] == ["old"]
    assert store.accepted_before(bound, 10, keep=lambda request_id: request_id != "old") == []

    parts = Reaper(store, FakeExecutionControl(), _RefusingBus(), BOUND, max_items=10)
    with pytest.raises(RuntimeError):
        reap(parts, NOW)
    assert store.accepted_before(bound, 10) == []
    since = (NOW - timedelta(days=7)).isoformat()
    later = (NOW + RUN_GRACE * 2).isoformat()
    assert [i.request_id for i in store.unreported_abandoned(since, bound, later, ABANDONED)] == ["old"]
    assert store.unreported_abandoned(since, bound, NOW.isoformat(), ABANDONED) == []

    store.mark_reported("old", later)
    assert store.unreported_abandoned(since, bound, later, ABANDONED) == []
    assert lineage_table.get_item(Key={"request_id": "old"})["Item"][REPORTED_AT] == later
    assert store.abandon(old) is False  # final already: a second write is refused


def test_a_queue_request_is_reaped_once_its_express_run_is_over_without_reading_an_execution() -> None:
    # GIVEN the queue path's Express runs (5 minutes at most) and a Standard workflow's longer bound
    lineage, executions, events = FakeAbandonedLineage(), FakeExecutionControl(), FakeEventPublisher()
    reaper = Reaper(
        lineage, executions, events, BOUND, max_items=50, express_abandon_after=timedelta(seconds=420)
    )
    # a queue request claimed 8 minutes ago, a queue request claimed 6 minutes ago, and an API submit's
    # (the Standard workflow) claimed 8 minutes ago
    lineage.put(_accepted("queued-old", timedelta(minutes=8)))
    lineage.put(_accepted("queued-young", timedelta(minutes=6)))
    lineage.put(_accepted("submitted", timedelta(minutes=8)).model_copy(update={"source": "api"}))

    # WHEN the reaper runs
    report = reap(reaper, NOW)

    # THEN only the queue request past its Express run ends, with its one event, and no execution was
    # inspected or stopped (an Express execution has neither DescribeExecution nor StopExecution)
    assert report.reaped == ["queued-old"]
    assert [d["request_id"] for _, d in events.published] == ["queued-old"]
    assert executions.inspected == [] and executions.stopped == []
    assert lineage.items["queued-young"].status == "ACCEPTED"
    assert lineage.items["submitted"].status == "ACCEPTED"


def test_an_abandoned_claim_that_counted_a_late_answer_keeps_the_count(lineage_table: Any) -> None:
    # GIVEN two queue claims whose process step counted a late Bedrock answer on them (its run was about
    # to end): one whose run ended before the record step, one whose record step ran
    claims, store = DynamoLineageClaims("lineage"), DynamoLineageStore("lineage")
    token = "run-1#0@2026-03-01T11:51:00.000Z"
    abandoned = _accepted("abandoned", timedelta(minutes=8)).model_copy(update={"claimed_by": token})
    recorded = _accepted("recorded", timedelta(minutes=8)).model_copy(update={"claimed_by": token})
    for item in (abandoned, recorded):
        lineage_table.put_item(Item=item.model_dump(exclude_none=True))
        assert claims.count_answer(item.request_id, token)
    # (another execution's token, or a final item, is not counted on)
    assert not claims.count_answer("abandoned", "run-2#0@2026-03-01T11:52:00.000Z")
    assert store.finalize(
        recorded.model_copy(update={"status": "COMPLETED", "completed_at": NOW.isoformat()})
    )
    assert not claims.count_answer("recorded", token)

    # WHEN the reaper ends the abandoned one
    express = timedelta(minutes=7)
    events = FakeEventPublisher()
    reaper = Reaper(store, FakeExecutionControl(), events, BOUND, 10, express_abandon_after=express)
    assert reap(reaper, NOW).reaped == ["abandoned"]

    # THEN lineage counts its billed answer, and the recorded one holds its answer and no lost one
    ended = lineage_table.get_item(Key={"request_id": "abandoned"})["Item"]
    assert (ended["status"], ended["error"]["code"], ended["bedrock_calls_unanswered"]) == (
        "FAILED",
        ABANDONED,
        1,
    )
    assert "bedrock_calls_unanswered" not in lineage_table.get_item(Key={"request_id": "recorded"})["Item"]


# ------------------------------------------------------------------------------ two regions: the takeover
WEST, EAST = "us-gov-west-1", "us-gov-east-1"


def _two_regions(region: str = WEST) -> _Parts:
    parts = _Parts()
    parts.reaper = Reaper(parts.lineage, parts.executions, parts.events, BOUND, max_items=50, region=region)
    return parts


def test_a_reaper_ends_only_its_own_regions_stale_requests() -> None:
    # GIVEN one global table: stale claims minted for this region, for the other region, and for none
    parts = _two_regions(WEST)
    for request_id in (f"{WEST}.mine", f"{EAST}.theirs", "unminted"):
        parts.lineage.put(_accepted(request_id, timedelta(hours=2)))

    # WHEN this region's reaper runs
    report = reap(parts.reaper, NOW)

    # THEN it ends its own and the unminted one; the other region's is left to that region's reaper (both
    # ending it would write FAILED in each replica and publish two events)
    assert sorted(report.reaped) == sorted([f"{WEST}.mine", "unminted"])
    assert parts.lineage.items[f"{EAST}.theirs"].status == "ACCEPTED"


def test_another_regions_stale_requests_do_not_crowd_out_this_regions() -> None:
    # GIVEN more stale claims of the other region than a run takes, older than this region's one
    parts = _two_regions(WEST)
    parts.reaper = Reaper(parts.lineage, parts.executions, parts.events, BOUND, max_items=2, region=WEST)
    for n in range(3):
        parts.lineage.put(_accepted(f"{EAST}.old-{n}", timedelta(hours=3)))
    parts.lineage.put(_accepted(f"{WEST}.mine", timedelta(hours=2)))

    # WHEN this region's reaper runs THEN its own is taken
    assert reap(parts.reaper, NOW).reaped == [f"{WEST}.mine"]


def test_the_takeover_ends_a_lost_regions_requests_once_each_with_one_event() -> None:
    # GIVEN the lost region's claims, just made (its runs died with it) and older, one of them final
    # already, and this region's own young claim
    parts = _two_regions(WEST)
    parts.lineage.put(_accepted(f"{EAST}.young", timedelta(seconds=2)))
    parts.lineage.put(_accepted(f"{EAST}.older", timedelta(minutes=3)))
    parts.lineage.put(
        _accepted(f"{EAST}.done", timedelta(minutes=1)).model_copy(update={"status": "COMPLETED"})
    )
    parts.lineage.put(_accepted(f"{WEST}.mine", timedelta(seconds=2)))

    # WHEN an operator takes the lost region over, twice
    first = take_over(parts.reaper, EAST, NOW)
    second = take_over(parts.reaper, EAST, NOW)

    # THEN its ACCEPTED requests end FAILED as RegionLost, whatever their age, each with one event, and
    # nothing of this region's (running here) or of its final ones is touched
    assert sorted(first.ended) == [f"{EAST}.older", f"{EAST}.young"] and not first.more
    assert second.ended == [] and second.reported_late == []
    published = [(kind, d["request_id"], d["error"]["code"]) for kind, d in parts.events.published]
    assert sorted(published) == [
        ("Inference Failed", f"{EAST}.older", REGION_LOST),
        ("Inference Failed", f"{EAST}.young", REGION_LOST),
    ]
    assert parts.lineage.items[f"{EAST}.young"].error == LineageError(
        code=REGION_LOST, message=MESSAGES[REGION_LOST]
    )
    assert parts.lineage.items[f"{WEST}.mine"].status == "ACCEPTED"
    assert parts.lineage.items[f"{EAST}.done"].status == "COMPLETED"
    assert parts.executions.inspected == [] and parts.executions.stopped == []


def test_a_takeover_written_but_not_published_is_published_by_a_later_takeover_once() -> None:
    # GIVEN a takeover whose events the bus refused
    parts = _two_regions(WEST)
    parts.lineage.put(_accepted(f"{EAST}.stuck", timedelta(seconds=5)))
    refused = Reaper(parts.lineage, parts.executions, _RefusingBus(), BOUND, max_items=50, region=WEST)
    with pytest.raises(RuntimeError):
        take_over(refused, EAST, NOW)

    # WHEN it is run again at once, and once the first run is surely over
    at_once = take_over(parts.reaper, EAST, NOW)
    later = take_over(parts.reaper, EAST, NOW + RUN_GRACE * 2)
    again = take_over(parts.reaper, EAST, NOW + RUN_GRACE * 3)

    # THEN its event is published once, by the run after the grace; the scheduled reaper leaves it alone
    assert at_once.reported_late == [] and again.reported_late == []
    assert later.reported_late == [f"{EAST}.stuck"]
    assert [d["request_id"] for _, d in parts.events.published] == [f"{EAST}.stuck"]
    assert reap(parts.reaper, NOW + RUN_GRACE * 4).reported_late == []


def test_a_region_cannot_take_itself_over_nor_a_misspelt_region() -> None:
    parts = _two_regions(WEST)
    for region in (WEST, "us-gov-est"):
        with pytest.raises(RequestInvalid):
            take_over(parts.reaper, region, NOW)


def test_the_handler_takes_over_the_region_the_operator_names(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _two_regions(WEST)
    parts.lineage.put(_accepted(f"{EAST}.via-handler", timedelta(seconds=5)))
    monkeypatch.setattr(dependencies, "reaper", lambda: parts.reaper)

    result: dict[str, Any] = reap_handler.handler({"takeover_region": EAST}, FakeLambdaContext())

    assert (result["region"], result["ended"]) == (EAST, [f"{EAST}.via-handler"])
