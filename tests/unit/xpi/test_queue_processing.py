"""The queue workflow's process step against in-memory fakes: one claim that is also the Bedrock call's
idempotency record (a retry never calls Bedrock twice, and ends the request at once), a request held by
another execution left to it, and what surely sent nothing retried in process."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from xpi.domain.errors import BedrockAnswerLost, BedrockThrottled
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.models.lineage import ACCEPTED
from xpi.models.queue import NotOwned, QueuedRequest, QueueTask
from xpi.models.workflow import Source, WorkflowState
from xpi.services import queue_processing
from xpi.services.recording import record_outcome
from xpi.services.sync_invoke import Judgement

from tests.helpers.events import sample_request
from tests.helpers.fakes import (
    FakeBedrockGateway,
    FakeEventPublisher,
    FakeHashKey,
    FakeLineageStore,
    FakeObjectStore,
    FakePayloadStore,
    FakeSyncLedger,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = Source(kind="sqs", principal="AROAPRODUCER:queue", reference="msg-1", received_at=NOW)


class World:
    def __init__(
        self, gateway: FakeBedrockGateway | None = None, time_left_s: float = 200.0, now: datetime = NOW
    ) -> None:
        self.now = now
        self.lineage = FakeLineageStore()
        self.claims = FakeSyncLedger(self.lineage)
        self.payloads = FakePayloadStore()
        self.gateway = gateway or FakeBedrockGateway()
        self.slept: list[float] = []
        self.time_left_s = time_left_s
        self.ports = queue_processing.QueuePorts(
            claims=self.claims,
            lineage=self.lineage,
            payloads=self.payloads,
            events=FakeEventPublisher(),
            hash_key=FakeHashKey(),
            gateway=self.gateway,
            objects=FakeObjectStore(),
            retention_days=30,
            inline_max_bytes=32_768,
            region="us-east-1",
            endpoint="",
        )

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time_left_s -= seconds

    def process(self, task: QueueTask) -> WorkflowState | NotOwned:
        budget = queue_processing.RetryBudget(
            time_left=lambda: self.time_left_s,
            reserve_s=130,
            clock=lambda: self.now,
            sleep=self.sleep,
            jitter=lambda low, high: high,
        )
        return queue_processing.process(task, ports=self.ports, judge=judgement, budget=budget)


def judgement() -> Judgement:
    return Judgement(policy=load_default_policy(), routing=load_default_routing(), detectors=())


def task(request: dict[str, Any], *, execution: str = "batch-1", index: int = 0) -> QueueTask:
    return QueueTask(
        item=QueuedRequest(request=request, source=SOURCE),
        execution=execution,
        started_at="2026-03-01T11:59:59.000Z",
        index=index,
    )


def owned(outcome: WorkflowState | NotOwned) -> WorkflowState:
    assert isinstance(outcome, WorkflowState)
    return outcome


def test_a_request_is_claimed_once_answered_and_nothing_of_it_is_stored() -> None:
    world = World()

    state = owned(world.process(task(sample_request("converse-system"))))

    assert state.response is not None and state.error is None
    assert len(world.gateway.calls) == 1
    # the claim is the lineage item, carrying this item's token; the final write is the record step's
    item = world.lineage.items[state.request.request_id]
    assert item.status == ACCEPTED
    assert item.claimed_by == "batch-1#0@2026-03-01T11:59:59.000Z"
    # the body travelled inline: no payload object
    assert world.payloads.objects == {}
    # and the record step makes it final as the execution's own (exactly one emit)
    outcome = record_outcome(state, world.lineage, NOW)
    assert outcome.emit and world.lineage.items[state.request.request_id].status == "COMPLETED"


def test_a_retry_meeting_its_own_claim_never_calls_bedrock_again_and_ends_the_request_at_once() -> None:
    # GIVEN an attempt that claimed the request and called Bedrock, then died before returning
    world = World()
    request = sample_request("converse-system")
    world.process(task(request))
    assert len(world.gateway.calls) == 1

    # WHEN the workflow retries the step
    retried = owned(world.process(task(request)))

    # THEN Bedrock is not called a second time
    assert len(world.gateway.calls) == 1
    # AND the request ends now, FAILED with the possibly billed call counted, with its one event
    assert retried.error is not None and retried.error.Error == BedrockAnswerLost.__name__
    outcome = record_outcome(retried, world.lineage, NOW)
    item = world.lineage.items[retried.request.request_id]
    assert outcome.emit and outcome.detail_type == "Inference Failed"
    assert (item.status, item.bedrock_calls_unanswered) == ("FAILED", 1)
    # (its claim's creation time kept)
    assert item.created_at == retried.claim.created_at


def test_a_replayed_retry_meeting_its_own_claim_answers_again_without_charging_the_budget_twice() -> None:
    # GIVEN a caller with a daily budget, and an attempt that claimed its request, reserved and settled
    # its budget on an answer that is kept (a batch job's), then died before the record step
    from tests.helpers.fakes import FakeBudgetLedger
    from tests.unit.xpi.test_access import NARROW_ID, access_routing, plain

    routing = access_routing(narrow={"budget": {"tokens_per_day": 100_000}})
    ledger = FakeBudgetLedger()
    world = World()
    ports = replace(world.ports, budgets=ledger)
    body = plain(project="benefits", max_tokens=100)
    body["model"] = "us.amazon.nova-micro-v1:0"
    item = QueueTask(
        item=QueuedRequest(request=body, source=SOURCE.model_copy(update={"principal": NARROW_ID})),
        execution="batch-1",
        started_at="2026-03-01T11:59:59.000Z",
        index=0,
    )

    def run() -> WorkflowState | NotOwned:
        return queue_processing.process(
            item,
            ports=ports,
            judge=lambda: Judgement(policy=load_default_policy(), routing=routing, detectors=()),
            budget=queue_processing.RetryBudget(time_left=lambda: 200.0, reserve_s=130, clock=lambda: NOW),
            replayed=True,
        )

    first = owned(run())
    assert first.response is not None and ledger.calls[0] == "reserve"  # the budget is charged
    charged, calls = dict(ledger.usage), len(ledger.calls)

    # WHEN the step is retried, meeting its own claim still ACCEPTED
    again = owned(run())

    # THEN the kept answer is the response again (no failure), and the budget is not touched again
    assert again.error is None and again.response is not None
    assert len(ledger.calls) == calls and ledger.usage == charged
    assert len(world.gateway.calls) == 2  # the gateway asked again: on the job path, the job's answer


def test_another_executions_claim_leaves_the_request_to_it() -> None:
    # GIVEN the request claimed by another execution (an SQS redelivery started a second one)
    world = World()
    request = sample_request("converse-system")
    first = owned(world.process(task(request, execution="batch-1")))

    # WHEN this execution's item runs
    outcome = world.process(task(request, execution="batch-2"))

    # THEN it stops without calling Bedrock or writing: the other execution answers
    assert outcome == NotOwned(request_id=first.request.request_id)
    assert len(world.gateway.calls) == 1
    assert world.lineage.items[first.request.request_id].status == ACCEPTED


def test_the_same_request_twice_in_one_batch_is_not_taken_for_a_retry() -> None:
    world = World()
    request = sample_request("converse-system")
    owned(world.process(task(request, index=0)))

    outcome = world.process(task(request, index=3))

    assert isinstance(outcome, NotOwned)
    assert len(world.gateway.calls) == 1


def test_a_throttle_is_retried_in_process_while_nothing_was_sent() -> None:
    # GIVEN Bedrock throttling the first two calls
    gateway = FakeBedrockGateway()
    answer = gateway.answer
    throttles = [BedrockThrottled("throttled"), BedrockThrottled("throttled")]

    def throttled_twice(*args: Any) -> Any:
        if throttles:
            gateway.calls.append(args)  # type: ignore[arg-type]
            raise throttles.pop()
        return answer(*args)

    gateway.answer = throttled_twice  # type: ignore[method-assign]
    world = World(gateway)

    # WHEN the request is processed
    state = owned(world.process(task(sample_request("converse-system"))))

    # THEN it was answered on the third call, after two jittered waits (capped full jitter: 1 s, 2 s)
    assert state.response is not None and state.error is None
    assert len(gateway.calls) == 3
    assert world.slept == [1.0, 2.0]


def test_retries_stop_while_a_bedrock_call_still_fits_in_the_function() -> None:
    # GIVEN Bedrock throttling every call, and less time left than a call and a wait need
    world = World(FakeBedrockGateway(error=BedrockThrottled("throttled")), time_left_s=130.5)

    state = owned(world.process(task(sample_request("converse-system"))))

    # THEN one call, no wait, and the throttle ends the request (the record step, one event)
    assert len(world.gateway.calls) == 1 and world.slept == []
    assert state.error is not None and state.error.Error == "BedrockThrottled"


def test_a_sent_call_whose_answer_was_lost_is_not_retried() -> None:
    world = World(FakeBedrockGateway(error=BedrockAnswerLost("read timeout")))

    state = owned(world.process(task(sample_request("converse-system"))))

    assert len(world.gateway.calls) == 1 and world.slept == []
    assert state.error is not None and state.error.Error == "BedrockAnswerLost"


def test_a_large_request_is_read_from_its_stored_body() -> None:
    # GIVEN a request too large to travel inline, stored by the consumer under payloads/
    world = World()
    request = sample_request("converse-system")
    ref = world.payloads.put("req/x.json", json.dumps(request).encode())
    large = QueueTask(
        item=QueuedRequest(payload=ref, source=SOURCE), execution="batch-1", started_at="2026-03-01T11:59:59Z"
    )

    # WHEN it is processed THEN it is answered from that body
    state = owned(world.process(large))
    assert state.response is not None and state.request.request_id == request["request_id"]


@pytest.mark.parametrize(
    "body", [{}, {"request": {"a": 1}, "payload": {"bucket": "b", "key": "k", "bytes": 1}}]
)
def test_a_queued_request_holds_its_body_one_way(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="inline or a reference"):
        QueuedRequest.model_validate({**body, "source": SOURCE.model_dump(mode="json")})


class _FailingAfterTheAnswer:
    """A quota pacer whose correction after the call fails as AWS does in an outage (a 503)."""

    def __init__(self) -> None:
        from botocore.exceptions import ClientError

        self.error = ClientError(
            {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
            "UpdateItem",
        )

    def acquire(self, *args: Any) -> None:
        return None

    def quota_for(self, *args: Any) -> Any:
        return None

    def settle(self, *args: Any) -> None:
        raise self.error

    def throttled(self, *args: Any) -> None:
        return None


def test_an_aws_fault_after_bedrock_answered_neither_loses_the_answer_nor_calls_again() -> None:
    # GIVEN the pacer's correction after the call failing for a passing AWS fault (an outage)
    world = World()
    world.ports = queue_processing.QueuePorts(**{**world.ports.__dict__, "pacer": _FailingAfterTheAnswer()})

    # WHEN the request is processed
    state = owned(world.process(task(sample_request("converse-system"))))

    # THEN Bedrock was called once, and its answer is the request's
    assert len(world.gateway.calls) == 1 and world.slept == []
    assert state.response is not None and state.error is None


class _RefusingClaims:
    """The claim's PutItem refused (a grant missing, or AWS out of reach past every retry)."""

    def claim(self, claim: Any) -> None:
        raise PermissionError("AccessDenied")

    def count_answer(self, request_id: str, claimed_by: str) -> bool:
        raise AssertionError("nothing claimed, nothing to count")


def test_a_request_that_cannot_be_claimed_is_answered_once_and_never_sent() -> None:
    # GIVEN the claim refused
    world = World()
    world.ports = queue_processing.QueuePorts(**{**world.ports.__dict__, "claims": _RefusingClaims()})
    events = world.ports.events
    assert isinstance(events, FakeEventPublisher)

    # WHEN the request is processed
    request = sample_request("converse-system")
    outcome = world.process(task(request))

    # THEN Bedrock is not called, and the request is answered once: failure lineage and its event
    assert outcome == NotOwned(request_id=request["request_id"])
    assert world.gateway.calls == []
    item = world.lineage.items[request["request_id"]]
    assert item.status == "FAILED" and item.error is not None and item.error.code == "ValidationUnavailable"
    assert [(kind, detail["request_id"]) for kind, detail in events.published] == [
        ("Inference Failed", request["request_id"])
    ]


def test_a_request_minted_for_the_other_region_is_left_to_it() -> None:
    # GIVEN this stack in us-gov-east-1, and a request whose id was minted for us-gov-west-1
    world = World()
    world.ports = queue_processing.QueuePorts(**{**world.ports.__dict__, "govcloud_region": "us-gov-east-1"})
    request = {**sample_request("converse-system"), "request_id": "us-gov-west-1.0123abcd"}

    # WHEN its queue item runs here
    outcome = world.process(task(request))

    # THEN it is not claimed, not answered and not sent: the lineage replica stays the other region's
    assert outcome == NotOwned(request_id="us-gov-west-1.0123abcd")
    assert world.lineage.items == {} and world.gateway.calls == []
    # AND an id minted for this region, or for none, is processed here
    for request_id in ("us-gov-east-1.0123abcd", "it-0123abcd"):
        owned(world.process(task({**request, "request_id": request_id})))
    assert len(world.gateway.calls) == 2


# The task's run started at 11:59:59 (task()); its Express run ends 5 minutes later.
LATE_IN_THE_RUN = datetime(2026, 3, 1, 12, 4, 10, tzinfo=UTC)  # 49 s left


def test_an_answer_late_in_the_run_is_counted_on_the_claim_until_the_record_step_runs() -> None:
    # GIVEN a request whose Bedrock answer comes 49 s before its Express run ends
    world = World(now=LATE_IN_THE_RUN)

    # WHEN it is processed
    state = owned(world.process(task(sample_request("converse-system"))))

    # THEN the claim, still ACCEPTED, counts the billed answer: should the run end before the record
    # step, the reaper's FAILED item keeps the count
    item = world.lineage.items[state.request.request_id]
    assert (item.status, item.bedrock_calls_unanswered) == (ACCEPTED, 1)
    # AND when the record step does run, the final item holds the answer and no count of a lost one
    outcome = record_outcome(state, world.lineage, LATE_IN_THE_RUN)
    final = world.lineage.items[state.request.request_id]
    assert outcome.emit and (final.status, final.bedrock_calls_unanswered) == ("COMPLETED", None)


def test_an_answer_in_good_time_writes_nothing_more() -> None:
    # GIVEN a request answered a second into its run (NOW)
    world = World()

    state = owned(world.process(task(sample_request("converse-system"))))

    # THEN the claim is as the claim wrote it: no extra write on the normal path
    item = world.lineage.items[state.request.request_id]
    assert item.bedrock_calls_unanswered is None


def test_a_replayed_answer_is_never_counted_on_the_claim_however_old_the_run() -> None:
    # GIVEN a batch job's line, whose task carries the batch's start (minutes before, as a job takes),
    # answered from the job's output (replayed): no Express run ends on it
    world = World(now=LATE_IN_THE_RUN)
    budget = queue_processing.RetryBudget(
        time_left=lambda: 200.0, reserve_s=130, clock=lambda: LATE_IN_THE_RUN
    )

    # WHEN it is processed
    state = owned(
        queue_processing.process(
            task(sample_request("converse-system")),
            ports=world.ports,
            judge=judgement,
            budget=budget,
            replayed=True,
        )
    )

    # THEN the claim carries no count of a lost answer: the answer is kept in the job's output
    item = world.lineage.items[state.request.request_id]
    assert (item.status, item.bedrock_calls_unanswered) == (ACCEPTED, None)
