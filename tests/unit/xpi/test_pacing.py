"""Pacing Bedrock calls to the quota (requests and tokens per minute), shared through one bucket table:
the arithmetic (xpi.domain.pacing) under a fake clock, the pacer over an in-memory table and over moto,
and the invoke step calling Bedrock only through it."""

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from xpi import dependencies
from xpi.adapters.pacing_table import DynamoPacingTable
from xpi.domain.errors import BedrockThrottled, QuotaExhausted
from xpi.domain.outcome import describe_error
from xpi.domain.pacing import (
    BucketState,
    Quota,
    after_throttle,
    effective_scale,
    estimate_tokens,
    full_bucket,
    take,
)
from xpi.domain.routing import RoutingConfig, load_default_routing
from xpi.handlers import invoke
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route, StepError, Usage
from xpi.services.pacing import QuotaPacer, paced_answer

from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event
from tests.helpers.fakes import FakeBedrockGateway

ROUTE = Route(model_id="us.amazon.nova-lite-v1:0", region="us-east-1", endpoint="", api="converse")
BUCKET = "us.amazon.nova-lite-v1:0#us-east-1"
WINDOW_S = 60.0


class FakeClock:
    """Time that moves only when something sleeps (or the test moves it)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakePacingTable:
    """The bucket table in memory, with the adapter's conditional semantics; `interfere` runs before
    each replace (another writer getting in between a read and a write)."""

    def __init__(self) -> None:
        self.items: dict[str, BucketState] = {}
        self.interfere: list[Any] = []
        self.replaces = 0

    def read(self, bucket: str) -> BucketState | None:
        return self.items.get(bucket)

    def replace(self, bucket: str, state: BucketState, *, expected: BucketState | None) -> bool:
        if self.interfere:
            self.interfere.pop(0)()
        current = self.items.get(bucket)
        if (current is None) != (expected is None) or (
            current is not None and expected is not None and current.version != expected.version
        ):
            return False
        self.items[bucket] = replace(state, version=(expected.version if expected else 0) + 1)
        self.replaces += 1
        return True

    def add_tokens(self, bucket: str, tokens: float) -> None:
        current = self.items.get(bucket)
        if current is not None:
            self.items[bucket] = replace(current, tokens=current.tokens + tokens, version=current.version + 1)


def pacer(table: FakePacingTable, clock: FakeClock, quota: Quota, max_wait_s: float = 5.0) -> QuotaPacer:
    return QuotaPacer(table, quota, max_wait_s=max_wait_s, clock=clock, sleep=clock.sleep)


def admitted_in_any_window(times: list[float], costs: list[float], window: float) -> float:
    """The largest sum of costs admitted within any `window` seconds (windows start at an admission)."""
    best, end, total = 0.0, 0, 0.0
    for start in range(len(times)):
        while end < len(times) and times[end] < times[start] + window:
            total += costs[end]
            end += 1
        best = max(best, total)
        total -= costs[start]
    return best


# ------------------------------------------------------------------------------------------ the arithmetic
class TestBucket:
    @settings(max_examples=60, deadline=None)
    @given(
        rpm=st.integers(min_value=2, max_value=240),
        tpm=st.integers(min_value=2_000, max_value=400_000),
        pattern=st.lists(
            st.tuples(st.floats(min_value=0, max_value=3), st.floats(min_value=0, max_value=1)),
            min_size=1,
            max_size=20,
        ),
        count=st.integers(min_value=1, max_value=600),
    )
    def test_never_admits_more_than_the_quota_in_any_minute(
        self, rpm: int, tpm: int, pattern: list[tuple[float, float]], count: int
    ) -> None:
        arrivals = [pattern[i % len(pattern)] for i in range(count)]
        # GIVEN callers arriving at any pace, each asking for up to the bucket's size in tokens
        quota = Quota(rpm, tpm)
        now = 0.0
        state = full_bucket(quota, now)
        capacity = full_bucket(quota, 0).tokens
        times: list[float] = []
        tokens: list[float] = []
        for gap, share in arrivals:
            now += gap
            cost = max(1, int(share * capacity))
            # WHEN each reserves in the bucket and goes when its reservation is due
            taken, wait = take(state, quota, cost, now)
            assert taken is not None
            state = taken
            times.append(now + wait)
            tokens.append(cost)
        order = sorted(range(len(times)), key=times.__getitem__)
        times, tokens = [times[i] for i in order], [tokens[i] for i in order]

        # THEN no 60 s window holds more than the quota of requests or tokens
        assert admitted_in_any_window(times, [1.0] * len(times), WINDOW_S) <= rpm
        assert admitted_in_any_window(times, tokens, WINDOW_S) <= tpm + 1e-6

    def test_a_backlog_is_admitted_at_no_less_than_ninety_percent_of_the_quota(self) -> None:
        # GIVEN a long backlog of small calls and 60 requests per minute
        quota = Quota(60, None)
        now, state, admitted = 0.0, full_bucket(quota, 0.0), 0
        # WHEN each call goes as soon as its reservation is due, for ten minutes
        while now < 600:
            taken, wait = take(state, quota, 100, now)
            assert taken is not None
            state, now, admitted = taken, now + wait, admitted + 1

        # THEN the rate is within 10 % of the quota, and not over it
        assert 0.9 * 600 <= admitted <= 600 + 3

    def test_a_call_larger_than_the_bucket_waits_for_a_full_bucket_and_is_not_starved(self) -> None:
        quota = Quota(None, 6_000)  # a bucket of 300 tokens, refilling 95 tokens a second
        state = replace(full_bucket(quota, 0.0), tokens=0.0)

        # WHEN a call of 5,000 tokens reserves, then a small one behind it
        large, large_wait = take(state, quota, 5_000, 0.0)
        assert large is not None
        small, small_wait = take(large, quota, 10, 0.0)

        # THEN the large one is due once a full bucket's worth has refilled, and leaves the bucket in
        # debt that the small one, queued behind it, waits out
        assert large_wait == pytest.approx(300 / 95)
        assert small is not None and small_wait > large_wait

    def test_a_reservation_past_the_horizon_is_refused_and_takes_nothing(self) -> None:
        quota = Quota(60, None)
        state = replace(full_bucket(quota, 0.0), requests=-10.0)

        taken, wait = take(state, quota, 10, 0.0, horizon_s=5)

        assert taken is None and wait > 5

    def test_a_throttle_halves_the_rate_once_per_cooldown_and_it_grows_back(self) -> None:
        quota = Quota(120, None)
        state = full_bucket(quota, 100.0)

        # WHEN Bedrock throttles two concurrent calls
        first = after_throttle(state, quota, 100.0)
        assert first is not None
        second = after_throttle(first, quota, 100.5)

        # THEN the rate is halved once and the request bucket emptied
        assert second is None
        assert effective_scale(first, 100.0) == pytest.approx(0.5)
        assert first.requests <= 0
        # AND it grows back to the configured quota within half a minute
        assert effective_scale(first, 115.0) == pytest.approx(0.75)
        assert effective_scale(first, 130.0) == 1.0

    @settings(max_examples=30, deadline=None)
    @given(throttles=st.integers(min_value=1, max_value=8))
    def test_recovers_to_ninety_percent_of_the_quota_after_throttles(self, throttles: int) -> None:
        # GIVEN Bedrock throttled the bucket several times in a row
        quota = Quota(60, None)
        now, state = 0.0, full_bucket(quota, 0.0)
        for _ in range(throttles):
            now += 3
            decreased = after_throttle(state, quota, now)
            assert decreased is not None
            state = decreased
        assert effective_scale(state, now) < 1

        # WHEN the throttles stop, the first minute after full recovery admits near the quota
        now += 60  # the scale is back to 1 after at most (1 - 0.1) * 60 s
        start, admitted = now, 0
        while now < start + WINDOW_S:
            taken, wait = take(state, quota, 1, now)
            assert taken is not None
            state, now = taken, now + wait
            admitted += now < start + WINDOW_S

        # THEN
        assert admitted >= 0.9 * 60

    def test_the_estimate_is_the_input_and_the_most_the_call_may_generate(self) -> None:
        request = InferenceRequest(model="default", prompt="x" * 400, inference={"max_tokens": 200})  # type: ignore[arg-type]

        assert 300 <= estimate_tokens(request) <= 330


# ---------------------------------------------------------------------------------------------- the pacer
class TestPacer:
    def test_waits_in_function_while_the_bucket_refills(self) -> None:
        # GIVEN a bucket emptied by earlier calls
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(60, None)
        paced = pacer(table, clock, quota)
        for _ in range(3):  # the bucket holds 3 s of the quota
            paced.acquire(ROUTE, quota, 10)
        assert not clock.slept

        # WHEN another call comes
        paced.acquire(ROUTE, quota, 10)

        # THEN it waited about the refill time of one request (60/57 s), no longer
        assert sum(clock.slept) == pytest.approx(60 / 57, rel=0.01)

    def test_raises_the_retryable_error_when_the_wait_would_pass_the_bound(self) -> None:
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(6, None)  # one request per ten seconds
        paced = pacer(table, clock, quota, max_wait_s=5)
        paced.acquire(ROUTE, quota, 10)

        with pytest.raises(QuotaExhausted):
            paced.acquire(ROUTE, quota, 10)
        assert sum(clock.slept) <= 5

    def test_two_pacers_share_one_bucket(self) -> None:
        # GIVEN two functions' pacers over the same table
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(60, None)
        one, other = pacer(table, clock, quota), pacer(table, clock, quota)

        # WHEN they take turns for a simulated minute
        admitted = 0
        start = clock.now
        while clock.now < start + WINDOW_S:
            (one if admitted % 2 else other).acquire(ROUTE, quota, 10)
            admitted += 1

        # THEN together they stay within the one quota
        assert admitted <= 60

    def test_a_write_lost_to_another_writer_is_retried_on_the_fresh_bucket(self) -> None:
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(60, None)
        paced, other = pacer(table, clock, quota), pacer(table, clock, quota)
        paced.acquire(ROUTE, quota, 10)
        # GIVEN another writer takes a request between this one's read and its write
        table.interfere.append(lambda: other.acquire(ROUTE, quota, 10))

        paced.acquire(ROUTE, quota, 10)

        # THEN both calls are counted (three requests gone from the bucket)
        assert table.items[BUCKET].requests == pytest.approx(0, abs=1e-6)
        assert table.items[BUCKET].version == 3

    def test_a_warm_pacer_reserves_with_one_write_and_no_read(self) -> None:
        # GIVEN a pacer that has reserved once (a read, then a write)
        clock, table = FakeClock(), CountingPacingTable()
        quota = Quota(60, 100_000)
        paced = pacer(table, clock, quota)
        paced.acquire(ROUTE, quota, 10)
        assert (table.reads, table.replaces) == (1, 1)

        # WHEN it reserves again, nobody else having written the bucket
        clock.now += 1
        paced.acquire(ROUTE, quota, 10)

        # THEN one conditional write, no read; the bucket counts both calls
        assert (table.reads, table.replaces) == (1, 2)
        assert table.items[BUCKET].requests == pytest.approx(3 - 2 + 57 / 60, abs=1e-6)
        assert table.items[BUCKET].version == 2

    def test_a_quota_of_zero_paces_nothing(self) -> None:
        clock, table = FakeClock(), FakePacingTable()
        paced = pacer(table, clock, Quota(None, None))

        assert paced.acquire(ROUTE, Quota(None, None), 10) is None
        assert not table.items

    def test_a_routing_entry_overrides_the_default_quota(self) -> None:
        routing = load_default_routing()
        document = routing.model_dump()
        document["models"][ROUTE.model_id]["requests_per_minute"] = 30
        document["models"][ROUTE.model_id]["tokens_per_minute"] = 0
        paced = pacer(FakePacingTable(), FakeClock(), Quota(200, 200_000))

        assert paced.quota_for(RoutingConfig.model_validate(document), ROUTE.model_id) == Quota(30, None)
        assert paced.quota_for(routing, ROUTE.model_id) == Quota(200, 200_000)


class CountingPacingTable(FakePacingTable):
    """The in-memory table, counting the calls a pacer makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.additions = 0

    def read(self, bucket: str) -> BucketState | None:
        self.reads += 1
        return super().read(bucket)

    def add_tokens(self, bucket: str, tokens: float) -> None:
        self.additions += 1
        super().add_tokens(bucket, tokens)


class TestPacedAnswer:
    def test_the_estimate_is_corrected_from_the_usage_with_the_next_reservation(self) -> None:
        # GIVEN a call that reserves its estimate and uses 160 tokens
        clock, table = FakeClock(), CountingPacingTable()
        quota = Quota(None, 100_000)
        paced = pacer(table, clock, quota)
        request = InferenceRequest(model="default", prompt="Summarise lineage.")
        gateway = FakeBedrockGateway(usage=Usage(input_tokens=120, output_tokens=40))
        before = full_bucket(quota, clock.now).tokens

        paced_answer(gateway, paced, load_default_routing(), ROUTE, request)
        # THEN nothing is written on the way out: the unused tokens stay reserved for now
        assert table.additions == 0 and table.replaces == 1
        assert table.items[BUCKET].tokens == pytest.approx(before - estimate_tokens(request))

        # WHEN the next call reserves
        paced_answer(gateway, paced, load_default_routing(), ROUTE, request)

        # THEN its one write gave the first call's unused tokens back: both calls count what they used
        # (the second still holds its estimate), and the bucket was not read again
        assert table.items[BUCKET].tokens == pytest.approx(before - 160 - estimate_tokens(request))
        assert (table.reads, table.replaces, table.additions) == (1, 2, 0)

    def test_tokens_used_beyond_the_reservation_are_charged_at_once(self) -> None:
        # GIVEN a call that uses more tokens than it reserved
        clock, table = FakeClock(), CountingPacingTable()
        quota = Quota(None, 100_000)
        paced = pacer(table, clock, quota)
        request = InferenceRequest(model="default", prompt="x", inference={"max_tokens": 10})
        used = estimate_tokens(request) + 500
        gateway = FakeBedrockGateway(usage=Usage(input_tokens=used - 10, output_tokens=10))
        before = full_bucket(quota, clock.now).tokens

        paced_answer(gateway, paced, load_default_routing(), ROUTE, request)

        # THEN the bucket is charged for all of it before the call returns (the quota is never overrun)
        assert table.items[BUCKET].tokens == pytest.approx(before - used)
        assert table.additions == 1

    def test_a_throttle_halves_the_shared_rate_and_is_raised_for_the_workflow(self) -> None:
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(60, 100_000)
        paced = pacer(table, clock, quota)
        gateway = FakeBedrockGateway(error=BedrockThrottled("ThrottlingException"))

        with pytest.raises(BedrockThrottled):
            paced_answer(
                gateway, paced, load_default_routing(), ROUTE, InferenceRequest(model="d", prompt="x")
            )

        assert effective_scale(table.items[BUCKET], clock.now) == pytest.approx(0.5)

    def test_an_exhausted_quota_never_reaches_bedrock(self) -> None:
        clock, table = FakeClock(), FakePacingTable()
        quota = Quota(6, None)
        paced = pacer(table, clock, quota, max_wait_s=1)
        gateway = FakeBedrockGateway()
        request = InferenceRequest(model="default", prompt="x")
        paced_answer(gateway, paced, load_default_routing(), ROUTE, request)

        with pytest.raises(QuotaExhausted):
            paced_answer(gateway, paced, load_default_routing(), ROUTE, request)
        assert len(gateway.calls) == 1


# ---------------------------------------------------------------------------------------------- over DynamoDB
@pytest.fixture
def pacing_table() -> Iterator[DynamoPacingTable]:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="pacing",
            AttributeDefinitions=[{"AttributeName": "bucket", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoPacingTable("pacing")


class TestDynamoPacingTable:
    def test_a_replace_is_refused_once_another_writer_changed_the_bucket(
        self, pacing_table: DynamoPacingTable
    ) -> None:
        state = BucketState(requests=2.5, tokens=100.25, at=10.0)
        assert pacing_table.replace(BUCKET, state, expected=None)
        assert not pacing_table.replace(BUCKET, state, expected=None)  # it exists now
        read = pacing_table.read(BUCKET)
        assert read is not None and read.version == 1 and read.tokens == 100.25

        assert pacing_table.replace(BUCKET, replace(read, requests=1.5), expected=read)
        assert not pacing_table.replace(BUCKET, replace(read, requests=0.5), expected=read)  # stale
        assert pacing_table.read(BUCKET) == replace(read, requests=1.5, version=2)

    def test_tokens_given_back_change_the_version(self, pacing_table: DynamoPacingTable) -> None:
        pacing_table.replace(BUCKET, BucketState(requests=1, tokens=10, at=1.0), expected=None)
        read = pacing_table.read(BUCKET)
        assert read is not None

        pacing_table.add_tokens(BUCKET, 32.5)
        pacing_table.add_tokens("absent#us-east-1", 5)

        assert pacing_table.read(BUCKET) == replace(read, tokens=42.5, version=2)
        assert pacing_table.read("absent#us-east-1") is None
        assert not pacing_table.replace(BUCKET, read, expected=read)  # a reader before the ADD lost

    def test_pacers_over_the_table_share_one_quota(self, pacing_table: DynamoPacingTable) -> None:
        clock = FakeClock()
        quota = Quota(60, None)
        one = QuotaPacer(pacing_table, quota, max_wait_s=5, clock=clock, sleep=clock.sleep)
        other = QuotaPacer(pacing_table, quota, max_wait_s=5, clock=clock, sleep=clock.sleep)

        for turn in range(6):
            (one if turn % 2 else other).acquire(ROUTE, quota, 10)

        # THEN the bucket (3 requests) ran dry after three calls: the next three each waited for one
        assert sum(clock.slept) == pytest.approx(3 * 60 / 57, rel=0.01)


# ----------------------------------------------------------------------------------------- the invoke step
class TestInvokeStepIsPaced:
    @pytest.mark.filterwarnings("ignore:No application metrics to publish")
    def test_the_invoke_step_takes_from_the_bucket_before_calling_bedrock(
        self,
        aws: XpiResources,
        bedrock: FakeBedrockGateway,
        lambda_context: FakeLambdaContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # GIVEN the invoke function with its pacing table and a quota
        boto3.client("dynamodb").create_table(
            TableName="pacing",
            AttributeDefinitions=[{"AttributeName": "bucket", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        monkeypatch.setenv("PACING_TABLE", "pacing")
        monkeypatch.setenv("BEDROCK_REQUESTS_PER_MINUTE", "60")
        monkeypatch.setenv("BEDROCK_TOKENS_PER_MINUTE", "100000")

        # WHEN it runs
        result = invoke.handler(load_event("invoke/state.json"), lambda_context)

        # THEN Bedrock was called once, and the call was counted in the route's shared bucket
        assert len(bedrock.calls) == 1
        route = bedrock.calls[0][0]
        stored = DynamoPacingTable("pacing").read(f"{route.model_id}#{route.region}")
        assert stored is not None and stored.version == 1  # the take; the correction rides the next one
        assert stored.requests == pytest.approx(2.0, abs=0.01)  # 3 s of 60 RPM, less this call
        assert result["response"]["usage"] == {"input_tokens": 120, "output_tokens": 40}
        assert dependencies.quota_pacer() is not None


class TestLineageOfAHeldBackRequest:
    def test_a_request_held_back_past_every_retry_is_reported_as_not_sent_not_as_a_bedrock_throttle(
        self,
    ) -> None:
        # GIVEN the invoke step's last attempt failed with QuotaExhausted (what Lambda reports)
        error = StepError(
            Error="QuotaExhausted",
            Cause=json.dumps({"errorMessage": QuotaExhausted().message, "errorType": "QuotaExhausted"}),
        )

        # WHEN the outcome describes it
        code, message = describe_error(error)

        # THEN lineage and the event say the request was held back and never sent
        assert code == "QuotaExhausted"
        assert message == "the request was held back within the commercial Bedrock quota; it was not sent"
