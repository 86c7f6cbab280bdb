"""The consumer holding the queue's backlog in SQS while the Bedrock quota is spent: the decision
(xpi.domain.queue_hold, pure), the service over an in-memory bucket table and queue, and the consumer
handler over moto (held messages sent back with their mark, a mark believed only from the consumer's
own role)."""

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import boto3
import pytest
from xpi.domain.pacing import BucketState, Quota, full_bucket, take
from xpi.domain.queue_hold import MAX_DELAY_S, due_in, hold_delay
from xpi.domain.routing import load_default_routing
from xpi.handlers import consume
from xpi.models.hold import ATTRIBUTE, HeldMessage, HoldMark
from xpi.models.intake import OriginalSender
from xpi.models.request import InferenceRequest
from xpi.services.queue_hold import Pending, QueueHold

from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event

NOW = 1_700_000_000.0
QUOTA = Quota(requests_per_minute=60, tokens_per_minute=15_000)
MODEL = "us.amazon.nova-lite-v1:0"
BUCKET = f"{MODEL}#us-east-1"
HOLDER_ROLE_ID = "AROAQXZEXAMPLECONSUMER"
BATCH = "consume/sqs-batch.json"


def booked_ahead(seconds: float, quota: Quota = QUOTA) -> BucketState:
    """A bucket whose reservations reach `seconds` ahead (process steps already waiting on it)."""
    state = full_bucket(quota, NOW)
    while True:
        taken, wait = take(state, quota, 1, NOW)
        assert taken is not None
        state = taken
        if wait >= seconds:
            return state


class TestHoldDecision:
    def test_a_batch_the_bucket_serves_within_the_horizon_starts(self) -> None:
        # GIVEN a full bucket and ten short requests (ten seconds of a 60 RPM quota: the first is due now)
        # WHEN / THEN
        assert hold_delay(None, QUOTA, [200] * 10, NOW, horizon_s=3, holds=0, max_holds=5, jitter=0.5) == 0

    def test_a_batch_behind_a_booked_bucket_is_held_until_the_bucket_is_nearly_free(self) -> None:
        # GIVEN a bucket booked 30 s ahead
        state = booked_ahead(30)
        demands = [200] * 10
        first, _ = due_in(state, QUOTA, demands, NOW)

        # WHEN the batch is weighed (no jitter)
        delay = hold_delay(state, QUOTA, demands, NOW, horizon_s=3, holds=0, max_holds=5, jitter=0.0)

        # THEN it is held until the bucket is booked no further than the horizon, and then it starts
        assert delay > 0 and delay - 1 < first - 3 <= delay
        later = NOW + delay
        assert hold_delay(state, QUOTA, demands, later, horizon_s=3, holds=0, max_holds=5, jitter=0.0) == 0

    def test_work_the_consumer_started_itself_holds_the_next_batch_though_the_bucket_shows_none(self) -> None:
        # GIVEN a free bucket, and a batch this consumer started that needs it for the next 15 s
        demands = [200] * 10

        # WHEN the next batch is weighed
        delay = hold_delay(
            None, QUOTA, demands, NOW, horizon_s=3, holds=0, max_holds=5, jitter=0.0, busy_until=NOW + 15
        )

        # THEN it is held until that work is nearly done
        assert delay == 12

    def test_the_jitter_spreads_held_batches_over_their_own_time_however_often_held(self) -> None:
        state = booked_ahead(30)
        demands = [200] * 10
        own = due_in(state, QUOTA, demands, NOW)[1] - due_in(state, QUOTA, demands, NOW)[0]

        def delay(holds: int, jitter: float) -> int:
            return hold_delay(
                state, QUOTA, demands, NOW, horizon_s=20, holds=holds, max_holds=50, jitter=jitter
            )

        assert own - 1 <= delay(0, 0.99) - delay(0, 0.0) <= own + 1
        assert delay(0, 0.99) == delay(1, 0.99) == delay(10, 0.99)  # the last held come back in time
        far = booked_ahead(2_000, Quota(requests_per_minute=60))
        assert (
            hold_delay(far, Quota(60), demands, NOW, horizon_s=0, holds=0, max_holds=5, jitter=0)
            == MAX_DELAY_S
        )

    @pytest.mark.parametrize(
        ("quota", "holds", "demands"),
        [(Quota(), 0, [200] * 10), (QUOTA, 5, [200] * 10), (QUOTA, 0, [])],
        ids=["unpaced", "held-the-most-times-already", "nothing-to-start"],
    )
    def test_never_held(self, quota: Quota, holds: int, demands: list[int]) -> None:
        state = booked_ahead(300)
        assert hold_delay(state, quota, demands, NOW, horizon_s=20, holds=holds, max_holds=5, jitter=0.5) == 0


class MemoryTable:
    def __init__(self, items: dict[str, BucketState]) -> None:
        self.items = items
        self.reads = 0

    def read(self, bucket: str) -> BucketState | None:
        self.reads += 1
        return self.items.get(bucket)

    def replace(self, bucket: str, state: BucketState, *, expected: BucketState | None) -> bool:
        raise AssertionError("the hold never writes the bucket")

    def add_tokens(self, bucket: str, tokens: float) -> None:
        raise AssertionError("the hold never writes the bucket")


class MemoryQueue:
    def __init__(self, refuse: Sequence[str] = ()) -> None:
        self.sent: list[tuple[HeldMessage, int]] = []
        self.refuse = set(refuse)

    def hold(self, messages: Sequence[HeldMessage], delay_s: int) -> list[str]:
        self.sent.extend((m, delay_s) for m in messages if m.message_id not in self.refuse)
        return [m.message_id for m in messages if m.message_id in self.refuse]


def pending(count: int, holds: int = 0) -> list[Pending]:
    sender = OriginalSender(sender_id="AROAPRODUCER:app", message_id="m-0")
    return [
        Pending(
            message_id=f"m-{i}",
            body=json.dumps({"request_id": f"r-{i}", "model": "default", "prompt": "hi"}),
            request=InferenceRequest.model_validate(
                {"request_id": f"r-{i}", "model": "default", "prompt": "hi"}
            ),
            mark=HoldMark(
                sender=replace_sender(sender, f"m-{i}"), sent_timestamp_ms=1_700_000_000_000, holds=holds
            ),
        )
        for i in range(count)
    ]


def replace_sender(sender: OriginalSender, message_id: str) -> OriginalSender:
    return sender.model_copy(update={"message_id": message_id})


def hold_over(table: MemoryTable, queue: MemoryQueue) -> QueueHold:
    return QueueHold(
        table=table,
        holder=queue,
        routing=load_default_routing,
        quota_for=lambda routing, model: QUOTA,
        region="us-east-1",
        horizon_s=3,
        max_holds=5,
        clock=lambda: NOW,
        jitter=lambda: 0.0,
    )


class TestQueueHold:
    def test_one_read_and_the_batch_sent_back_delayed_with_its_marks_counted(self) -> None:
        # GIVEN the default model's bucket booked 60 s ahead
        assert load_default_routing().resolve_alias("default") == MODEL
        table, queue = MemoryTable({BUCKET: booked_ahead(60)}), MemoryQueue()

        # WHEN a batch of ten, held once before, is weighed
        held = hold_over(table, queue).held(pending(10, holds=1))

        # THEN all ten are sent back with the same delay, their marks' hold count one more; one read
        assert held == {f"m-{i}" for i in range(10)} and table.reads == 1
        assert {delay for _, delay in queue.sent} == {queue.sent[0][1]} and queue.sent[0][1] > 30
        assert all(m.mark.holds == 2 and m.mark.sender.message_id == m.message_id for m, _ in queue.sent)

    def test_a_consumer_that_started_a_batch_holds_the_next_until_that_one_is_nearly_done(self) -> None:
        # GIVEN a free bucket
        table, queue = MemoryTable({}), MemoryQueue()
        hold = hold_over(table, queue)

        # WHEN two batches come one after the other
        first = hold.held(pending(10))
        second = hold.held(pending(10))

        # THEN the first starts; the second, which the bucket alone would start, waits for it
        assert first == set() and second == {f"m-{i}" for i in range(10)}
        assert queue.sent[0][1] >= 5

    def test_a_message_the_queue_refused_starts_instead(self) -> None:
        table, queue = MemoryTable({BUCKET: booked_ahead(60)}), MemoryQueue(refuse=["m-3"])
        assert hold_over(table, queue).held(pending(10)) == {f"m-{i}" for i in range(10) if i != 3}

    def test_a_bucket_that_cannot_be_read_starts_the_batch(self) -> None:
        class Broken(MemoryTable):
            def read(self, bucket: str) -> BucketState | None:
                raise RuntimeError("DynamoDB out of reach")

        queue = MemoryQueue()
        assert hold_over(Broken({}), queue).held(pending(10)) == set() and queue.sent == []


def _spend_the_bucket(aws: XpiResources, monkeypatch: pytest.MonkeyPatch) -> str:
    """The consumer's environment for the hold (as the template sets it), the default model's bucket
    booked ten minutes ahead; the requests queue's URL."""
    region = "us-gov-west-1"
    dynamodb = boto3.client("dynamodb", region_name=region)
    dynamodb.create_table(
        TableName="pacing",
        KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "bucket", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_url = boto3.client("sqs", region_name=region).create_queue(QueueName="requests")["QueueUrl"]
    for name, value in {
        "PACING_TABLE": "pacing",
        "BEDROCK_REQUESTS_PER_MINUTE": "60",
        "BEDROCK_TOKENS_PER_MINUTE": "15000",
        "REQUESTS_QUEUE_URL": queue_url,
        "QUEUE_HOLDER_ROLE_IDS": HOLDER_ROLE_ID,
    }.items():
        monkeypatch.setenv(name, value)
    from xpi.adapters.pacing_table import DynamoPacingTable

    assert DynamoPacingTable("pacing").replace(
        BUCKET, replace(booked_ahead(600), at=time.time()), expected=None
    )
    return queue_url


def _received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-gov-west-1")
    messages: list[dict[str, Any]] = []
    # moto keeps a delayed message back until its delay passes: look past it (it is the held copy)
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    messages.extend(response.get("Messages", []))
    return messages


class TestConsumerHold:
    def test_a_spent_quota_holds_the_accepted_requests_in_the_queue_and_starts_nothing(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN the quota booked ten minutes ahead
        queue_url = _spend_the_bucket(aws, monkeypatch)
        sent: list[tuple[list[HeldMessage], int]] = []
        from xpi.adapters import queue_holder

        original = queue_holder.SqsQueueHolder.hold

        def recording(
            self: queue_holder.SqsQueueHolder, messages: Sequence[HeldMessage], delay_s: int
        ) -> list[str]:
            sent.append((list(messages), delay_s))
            return original(self, messages, 0)  # sent without the delay, so the test can read them

        monkeypatch.setattr(queue_holder.SqsQueueHolder, "hold", recording)
        event = load_event(BATCH)

        # WHEN the consumer takes the batch
        result = consume.handler(event, lambda_context)

        # THEN only the malformed record fails; the request for the default model (its bucket spent) is
        # not started but sent back delayed, with its original sender, message id and sent time; the
        # request for another model (its own bucket) starts
        assert len(result["batchItemFailures"]) == 1
        assert sorted(aws.queued()) == ["req-batch-0102"]
        assert len(sent) == 1 and sent[0][1] > 500
        held = event["Records"][0]
        copies = _received(queue_url)
        assert [m["Body"] for m in copies] == [held["body"]]
        assert HoldMark.model_validate_json(
            copies[0]["MessageAttributes"][ATTRIBUTE]["StringValue"]
        ) == HoldMark(
            sender=OriginalSender(sender_id=held["attributes"]["SenderId"], message_id=held["messageId"]),
            sent_timestamp_ms=int(held["attributes"]["SentTimestamp"]),
            holds=1,
        )

    def test_a_held_copy_runs_as_its_original_sender_and_a_forged_mark_is_ignored(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN two copies with the same mark: one sent by the consumer's role, one by a producer
        monkeypatch.setenv("QUEUE_HOLDER_ROLE_IDS", HOLDER_ROLE_ID)
        event = load_event(BATCH)
        event["Records"] = event["Records"][:2]
        mark = HoldMark(
            sender=OriginalSender(sender_id="AROAORIGINAL:producer", message_id="first-message-id"),
            sent_timestamp_ms=1_741_788_000_000,
            holds=1,
        )
        for record_, sender in zip(
            event["Records"], [f"{HOLDER_ROLE_ID}:consume", "AROAFORGER:app"], strict=True
        ):
            record_["attributes"]["SenderId"] = sender
            record_["messageAttributes"] = {
                ATTRIBUTE: {
                    "stringValue": mark.model_dump_json(),
                    "dataType": "String",
                    "stringListValues": [],
                    "binaryListValues": [],
                }
            }

        # WHEN the consumer takes them (no pacing table: nothing held)
        assert consume.handler(event, lambda_context) == {"batchItemFailures": []}

        # THEN the consumer's copy runs as the mark says; the forged mark is ignored
        sources = {s["source"]["reference"]: s["source"] for s in aws.queued().values()}
        assert sources["first-message-id"] == {
            "kind": "sqs",
            "principal": "AROAORIGINAL:producer",
            "reference": "first-message-id",
            "received_at": "2025-03-12T14:00:00Z",
        }
        forged = sources[event["Records"][1]["messageId"]]
        assert forged["principal"] == "AROAFORGER:app"
