"""The sync path (POST /v1/invoke in one function) against in-memory fakes: the workflow's steps in
process, the same decisions, lineage and event as the queue path, and its guarantees (one claim, one
final write, exactly one event, never a second Bedrock call for one request id)."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from xpi.domain.errors import (
    BedrockAnswerLost,
    BedrockThrottled,
    BedrockUnavailable,
    InvocationTimeout,
    RequestExists,
    RequestInvalid,
)
from xpi.domain.pacing import Quota
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.models.bedrock import ModelAnswer
from xpi.models.request import InferenceRequest
from xpi.models.workflow import ExecutionInput, Route, Source
from xpi.services import classification, invocation, sync_invoke
from xpi.services.recording import record_outcome
from xpi.services.routing import route
from xpi.services.validation import validate

from tests.helpers.delivery import without_delivery_fields
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

NOW = datetime(2025, 3, 12, 14, 5, 12, 7000, tzinfo=UTC)
CALLER = "arn:aws-us-gov:iam::123456789012:user/alice"
REGION, ENDPOINT = "us-east-1", ""


class World:
    def __init__(self, gateway: FakeBedrockGateway | None = None) -> None:
        self.lineage = FakeLineageStore()
        self.ledger = FakeSyncLedger(self.lineage)
        self.events = FakeEventPublisher()
        self.gateway = gateway or FakeBedrockGateway()
        self.objects = FakeObjectStore()
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None
        self.ports = sync_invoke.SyncPorts(
            ledger=self.ledger,
            lineage=self.lineage,
            events=self.events,
            hash_key=FakeHashKey(),
            gateway=self.gateway,
            objects=self.objects,
            retention_days=30,
            inline_max_bytes=32_768,
            region=REGION,
            endpoint=ENDPOINT,
        )

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.on_sleep()

    def invoke(self, body: dict[str, Any] | str, *, api_request_id: str = "api-req-1") -> dict[str, Any]:
        return sync_invoke.invoke(
            body if isinstance(body, str) else json.dumps(body),
            principal=CALLER,
            api_request_id=api_request_id,
            ports=self.ports,
            judge=judgement,
            timing=sync_invoke.Timing(wait_s=2.0, clock=lambda: NOW, sleep=self.sleep, jitter=lambda a, b: b),
        )


def judgement() -> sync_invoke.Judgement:
    return sync_invoke.Judgement(policy=load_default_policy(), routing=load_default_routing(), detectors=())


def queue_path(
    body: dict[str, Any], gateway: FakeBedrockGateway
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The same request through the workflow's steps as Step Functions runs them (Validate, Claim,
    Classify, IsBlocked, Route, InvokeModel with its Catch, RecordOutcome, EmitResult): (lineage item,
    event detail, events emitted)."""
    payloads, lineage, events, key = (
        FakePayloadStore(),
        FakeLineageStore(),
        FakeEventPublisher(),
        FakeHashKey(),
    )
    request = InferenceRequest.model_validate(body)
    source = Source(kind="sqs", principal="AROAPRODUCER:queue", reference="msg-1", received_at=NOW)
    stored = json.dumps(request.model_dump(mode="json", exclude_none=True)).encode()
    execution = ExecutionInput(
        payload=payloads.put(f"{request.request_id}/x.json", stored),
        source=source,
        execution=request.request_id,
        started_at=NOW.isoformat(),
    )
    state = validate(execution, payloads=payloads, hash_key=key, now=NOW, retention_days=30)
    lineage.claim(state.claim)
    try:
        state = classification.classify(
            state,
            policy=load_default_policy(),
            detectors=(),
            routing=load_default_routing(),
            events=events,
            payloads=payloads,
            hash_key=key,
            clock=lambda: NOW,
        )
        if state.classification is not None and state.classification.decision != "block":
            state.route = route(state, region=REGION, endpoint=ENDPOINT)
            state.response = invocation.invoke_model(
                state, gateway, FakeObjectStore(), 32_768, payloads=payloads, hash_key=key
            )
    except Exception as error:  # the Catch to RecordOutcome
        state.error = sync_invoke.step_error(error)
    outcome = record_outcome(state, lineage, NOW)
    if outcome.emit:
        events.published.append((outcome.detail_type, outcome.detail))
    item = lineage.items[request.request_id].model_dump(exclude_none=True)
    return item, outcome.detail, len(events.published)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return without_delivery_fields(record)


# ---------------------------------------------------------------------------------------------- answers
def test_a_request_is_answered_with_one_claim_one_final_write_and_one_event() -> None:
    # GIVEN
    world = World()
    body = sample_request("plain-prompt") | {"request_id": "sync-1"}

    # WHEN
    detail = world.invoke(body)

    # THEN the answer is the result event, published once, and kept for a repeated call
    assert detail["status"] == "COMPLETED" and detail["output"]["text"] == "A short answer."
    assert world.events.published == [("Inference Completed", detail)]
    assert (world.ledger.claims, world.ledger.finishes, len(world.gateway.calls)) == (1, 1, 1)
    assert world.ledger.answers["sync-1"].detail == detail
    item = world.lineage.items["sync-1"]
    assert (
        item.status == "COMPLETED"
        and item.recorded_by == f"sync-api-req-1@{NOW.isoformat(timespec='milliseconds')}"
    )
    assert detail["source"] == "api" and detail["caller"]["principal"] == CALLER
    assert set(detail["timings"]) == {
        "received_at", "validated_at", "classified_at", "routed_at", "invoked_at", "completed_at",
    }  # fmt: skip


@pytest.mark.parametrize(
    "sample",
    [
        "plain-prompt",
        "pii-redact",
        "cui-banner",
        "unknown-model",
        "converse-system",
        "invoke-model-anthropic",
    ],
)
def test_the_sync_path_decides_records_and_emits_as_the_queue_path(sample: str) -> None:
    # GIVEN the same request, once through the workflow's steps and once through the sync path
    body = sample_request(sample) | {"request_id": f"same-{sample}"}
    queue_item, queue_detail, queue_events = queue_path(body, FakeBedrockGateway())
    world = World()

    # WHEN
    detail = world.invoke(body)

    # THEN decisions, lineage and the event agree field by field (but for who sent it, when, and how)
    sync_item = world.lineage.items[body["request_id"]].model_dump(exclude_none=True)
    assert comparable(sync_item) == comparable(queue_item)
    assert comparable(detail) == comparable(queue_detail)
    assert (queue_events, len([t for t, _ in world.events.published if t.startswith("Inference")])) == (1, 1)


def test_a_repeated_call_gets_the_kept_answer_without_a_second_bedrock_call() -> None:
    world = World()
    body = sample_request("plain-prompt") | {"request_id": "sync-again"}
    first = world.invoke(body, api_request_id="api-1")

    second = world.invoke(body, api_request_id="api-2")

    assert second == first
    assert len(world.gateway.calls) == 1 and len(world.events.published) == 1


def test_a_concurrent_duplicate_waits_for_the_first_calls_answer() -> None:
    # GIVEN a first call holding the claim, its answer not yet kept (its Bedrock call still running)
    world = World()
    body = sample_request("plain-prompt") | {"request_id": "sync-racing"}
    kept = world.invoke(body, api_request_id="api-1")
    answer = world.ledger.answers.pop("sync-racing")
    final = world.lineage.items["sync-racing"]
    world.lineage.items["sync-racing"] = final.model_copy(update={"status": "ACCEPTED"})
    calls, events = len(world.gateway.calls), len(world.events.published)

    def first_call_finishes() -> None:
        if len(world.slept) == 3:
            world.lineage.items["sync-racing"] = final
            world.ledger.answers["sync-racing"] = answer

    world.on_sleep = first_call_finishes

    # WHEN the duplicate arrives
    detail = world.invoke(body, api_request_id="api-2")

    # THEN it answers with the first call's answer, and never calls Bedrock or publishes itself
    assert detail == kept
    assert (len(world.gateway.calls), len(world.events.published)) == (calls, events) == (1, 1)


def test_a_duplicate_whose_first_call_outlasts_the_wait_is_a_timeout_naming_the_id() -> None:
    world = World()
    body = sample_request("plain-prompt") | {"request_id": "sync-slow"}
    world.ledger.claim(_claim_of(body))  # the ACCEPTED claim of another call, still running

    with pytest.raises(InvocationTimeout) as raised:
        world.invoke(body)

    assert raised.value.request_id == "sync-slow"
    assert sum(world.slept) <= 2.0 and world.gateway.calls == []


def _claim_of(body: dict[str, Any]) -> Any:
    payloads = FakePayloadStore()
    source = Source(kind="api", principal=CALLER, received_at=NOW)
    execution = ExecutionInput(payload=payloads.put("x", json.dumps(body).encode()), source=source)
    return validate(execution, payloads=payloads, hash_key=FakeHashKey(), now=NOW, retention_days=30).claim


def test_a_request_id_that_went_through_the_queue_is_a_conflict() -> None:
    # GIVEN a request id whose lineage is final, answered by its workflow (no kept answer)
    world = World()
    body = sample_request("plain-prompt") | {"request_id": "queued-1"}
    world.ledger.claim(_claim_of(body))
    world.lineage.items["queued-1"] = world.lineage.items["queued-1"].model_copy(
        update={"status": "COMPLETED"}
    )

    with pytest.raises(RequestExists):
        world.invoke(body)
    assert world.gateway.calls == [] and world.events.published == []


# ---------------------------------------------------------------------------------------------- ends
def test_an_invalid_request_ends_as_on_the_queue_path() -> None:
    world = World()

    with pytest.raises(RequestInvalid):
        world.invoke({"request_id": "bad-1", "model": "default", "messages": 3})

    assert world.ledger.claims == 0 and world.gateway.calls == []
    assert [t for t, _ in world.events.published] == ["Inference Failed"]
    assert world.lineage.items["bad-1"].status == "FAILED" and world.lineage.items["bad-1"].source == "api"


def test_stream_is_refused_as_an_unknown_field() -> None:
    world = World()

    with pytest.raises(RequestInvalid) as raised:
        world.invoke(sample_request("plain-prompt") | {"request_id": "s-1", "stream": True})

    assert [(p.location, p.type) for p in raised.value.problems] == [("*", "extra_forbidden")]
    assert world.gateway.calls == []


def test_a_blocked_request_never_reaches_bedrock() -> None:
    world = World()

    detail = world.invoke(sample_request("cui-banner") | {"request_id": "blocked-1"})

    assert detail["status"] == "BLOCKED" and "output" not in detail
    assert world.gateway.calls == []
    assert [t for t, _ in world.events.published if t.startswith("Inference")] == ["Inference Blocked"]


class FlakyGateway(FakeBedrockGateway):
    def __init__(self, errors: list[Exception]) -> None:
        super().__init__()
        self.errors = errors

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        if self.errors:
            self.calls.append((route, request))
            raise self.errors.pop(0)
        return super().answer(route, request)


def test_a_throttled_or_unsent_call_is_tried_again() -> None:
    world = World(FlakyGateway([BedrockThrottled("x"), BedrockUnavailable("never sent")]))

    detail = world.invoke(sample_request("plain-prompt") | {"request_id": "flaky-1"})

    assert detail["status"] == "COMPLETED" and len(world.gateway.calls) == 3
    assert len(world.events.published) == 1


def test_throttled_every_time_ends_failed_with_its_code() -> None:
    world = World(FlakyGateway([BedrockThrottled("x") for _ in range(5)]))

    detail = world.invoke(sample_request("plain-prompt") | {"request_id": "throttled-1"})

    assert detail["status"] == "FAILED" and detail["error"]["code"] == "BedrockThrottled"
    assert len(world.gateway.calls) == sync_invoke.BEDROCK_ATTEMPTS
    assert world.events.published == [("Inference Failed", detail)]


def test_a_lost_answer_is_never_asked_again_and_is_counted() -> None:
    world = World(FlakyGateway([BedrockAnswerLost("read timeout")]))

    detail = world.invoke(sample_request("plain-prompt") | {"request_id": "lost-1"})

    assert detail["error"]["code"] == "BedrockUnavailable" and len(world.gateway.calls) == 1
    assert world.lineage.items["lost-1"].bedrock_calls_unanswered == 1


def test_a_passing_eventbridge_fault_is_retried_and_the_event_published_once() -> None:
    world = World()
    published = world.events.publish
    failures = [RuntimeError("EventBridge unavailable")]

    def flaky(kind: str, detail: Any) -> None:
        if failures:
            raise failures.pop()
        published(kind, detail)

    world.events.publish = flaky  # type: ignore[method-assign]

    world.invoke(sample_request("plain-prompt") | {"request_id": "emit-1"})

    assert len(world.events.published) == 1 and len(world.slept) == 1


def test_a_claim_made_final_by_another_writer_emits_nothing() -> None:
    # GIVEN the claim is made final meanwhile (the reaper, say) while Bedrock answers
    world = World()

    class ReapedMeanwhile(FakeBedrockGateway):
        def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
            item = world.lineage.items[request.request_id]
            world.lineage.items[request.request_id] = item.model_copy(update={"status": "FAILED"})
            return super().answer(route, request)

    world.ports = sync_invoke.SyncPorts(**{**world.ports.__dict__, "gateway": ReapedMeanwhile()})

    with pytest.raises(RequestExists):
        world.invoke(sample_request("plain-prompt") | {"request_id": "reaped-1"})
    assert world.events.published == [] and world.ledger.answers == {}


def test_the_kept_answer_expires_with_the_idempotency_records() -> None:
    assert timedelta(hours=24) == sync_invoke.ANSWER_TTL


def test_a_credential_past_its_maximum_age_raises_its_security_alert_on_the_sync_path_too() -> None:
    # GIVEN the sync path answered with a key older than its maximum age
    invocation._ALERTED_PAST_MAX_AGE.clear()
    aged = 91 * 86400
    world = World(FakeBedrockGateway(credential_age_s=aged))
    world.ports = sync_invoke.SyncPorts(**{**world.ports.__dict__, "credential_max_age_s": 90 * 86400})

    # WHEN
    detail = world.invoke(sample_request("plain-prompt") | {"request_id": "sync-aged"})

    # THEN the request is answered, and the alert names the credential's version and age, once
    assert detail["status"] == "COMPLETED"
    alerts = [d for kind, d in world.events.published if kind == "Security Alert"]
    assert [a["credentials"]["credential_age_s"] for a in alerts] == [aged]


def test_the_sync_path_draws_from_the_shared_quota_buckets() -> None:
    # GIVEN the sync path with the pacer the invoke step uses (one bucket per model and region)
    from tests.unit.xpi.test_pacing import FakeClock, FakePacingTable, pacer

    table = FakePacingTable()
    world = World()
    world.ports = sync_invoke.SyncPorts(
        **{**world.ports.__dict__, "pacer": pacer(table, FakeClock(), Quota(60, 100_000))}
    )

    # WHEN a request is answered
    detail = world.invoke(sample_request("plain-prompt") | {"request_id": "sync-paced"})

    # THEN its one Bedrock call took a request from the route's bucket
    assert detail["status"] == "COMPLETED" and len(world.gateway.calls) == 1
    route = world.gateway.calls[0][0]
    bucket = table.items[f"{route.model_id}#{route.region}"]
    assert bucket.requests < 3.0  # the bucket holds 3 s of 60 RPM, less this call
