"""Services against in-memory fakes of the ports: submission, recording, invocation, classification."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from xpi.domain.errors import (
    AwsUnavailable,
    BedrockThrottled,
    ClassificationMismatch,
    ConfigSnapshotInvalid,
    InternalError,
    ModelNotAllowedForCaller,
    PayloadMismatch,
    RequestInvalid,
)
from xpi.domain.hashing import canonical_sha256, keyed_hash, sha256_text
from xpi.domain.payload import outbound_hmac, request_bytes
from xpi.domain.policy import Policy, load_default_policy
from xpi.domain.routing import RoutingConfig, estimate_cost, load_default_routing
from xpi.models.events import INFERENCE_FAILED
from xpi.models.request import InferenceRequest
from xpi.models.workflow import (
    Classification,
    ExecutionInput,
    Route,
    Usage,
    WorkflowInput,
    WorkflowState,
)
from xpi.services import classification, invocation
from xpi.services import routing as routing_service
from xpi.services.recording import record_outcome
from xpi.services.routing import carried_routing, route, snapshot
from xpi.services.submission import Submitted, submit
from xpi.services.validation import load_raw, validate
from xpi.settings import Settings

from tests.helpers.errors import raises_with_reason
from tests.helpers.events import (
    PAYLOADS,
    make_request,
    make_source,
    make_state,
    sample_request,
    state_from_event,
)
from tests.helpers.fakes import (
    TEST_HASH_KEY,
    FakeBedrockGateway,
    FakeEventPublisher,
    FakeHashKey,
    FakeLineageStore,
    FakeObjectStore,
    FakeWorkflowStarter,
)

NOW = datetime(2025, 3, 12, 14, 5, 12, 7000, tzinfo=UTC)


def classify(state: WorkflowState, **arguments: Any) -> WorkflowState:
    """The classify service with the request bodies of make_state and the unit tests' hash key."""
    return classification.classify(state, payloads=PAYLOADS, hash_key=FakeHashKey(), **arguments)


def invoke_model(state: WorkflowState, *arguments: Any, **keywords: Any) -> Any:
    return invocation.invoke_model(state, *arguments, payloads=PAYLOADS, hash_key=FakeHashKey(), **keywords)


def stored(state: WorkflowState) -> InferenceRequest:
    """The request body the state refers to."""
    return InferenceRequest.model_validate_json(PAYLOADS.get(state.payload))


def replace_stored(state: WorkflowState, request: InferenceRequest) -> None:
    """Point the state at another body (a reference without a keyed hash, as a producer's is)."""
    state.payload = PAYLOADS.put(f"{request.request_id}/replaced.json", request_bytes(request))


MESSAGE_ID = "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a03"


class Submission:
    """One consumer's view: the same fakes across several deliveries."""

    def __init__(self) -> None:
        self.starter = FakeWorkflowStarter()
        self.lineage = FakeLineageStore()
        self.events = FakeEventPublisher()

    def submit(self, body: str | dict[str, Any], message_id: str = MESSAGE_ID) -> Submitted:
        text = body if isinstance(body, str) else json.dumps(body)
        outcome, _ = submit(
            text,
            source=make_source(reference=message_id),
            fallback_id=message_id,
            starter=self.starter,
            lineage=self.lineage,
            events=self.events,
            now=NOW,
            retention_days=400,
        )
        return outcome


MALFORMED = {
    "version": "1",
    "request_id": "req-batch-0103",
    "prompt": "Translate 'good morning'.",
    "max_token": 64,
}


class TestSubmit:
    def test_a_valid_request_starts_its_workflow_named_by_its_id(self) -> None:
        # GIVEN
        consumer = Submission()

        # WHEN
        outcome = consumer.submit(sample_request("converse-system"))

        # THEN
        assert outcome is Submitted.STARTED
        assert list(consumer.starter.started) == ["req-converse-0002"]
        started = consumer.starter.started["req-converse-0002"]
        assert started.source == make_source(reference=MESSAGE_ID)
        assert started.request["model"] == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        assert consumer.lineage.calls == [] and consumer.events.published == []

    def test_the_workflow_input_round_trips_through_json(self) -> None:
        consumer = Submission()
        consumer.submit(sample_request("pii-redact"))

        started = consumer.starter.started["req-pii-0003"]

        assert WorkflowInput.model_validate_json(started.model_dump_json(exclude_none=True)) == started

    def test_a_request_without_an_id_is_named_by_its_message_id(self) -> None:
        consumer = Submission()
        body = sample_request("plain-prompt")
        del body["request_id"]

        consumer.submit(body, message_id="5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a09")

        assert list(consumer.starter.started) == ["5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a09"]

    def test_a_second_request_with_the_same_id_is_a_duplicate(self) -> None:
        consumer = Submission()
        consumer.submit(sample_request("plain-prompt"), message_id="m-1")

        outcome = consumer.submit(sample_request("plain-prompt"), message_id="m-2")

        assert outcome is Submitted.DUPLICATE
        assert consumer.starter.started["req-plain-0001"].source.reference == "m-1"

    def test_malformed_with_a_usable_id_is_answered_exactly_once(self) -> None:
        # GIVEN
        consumer = Submission()

        # WHEN
        with pytest.raises(RequestInvalid) as caught:
            consumer.submit(MALFORMED)

        # THEN the producer gets one Inference Failed event naming the problems
        assert "model: Field required" in caught.value.reason
        assert [detail_type for detail_type, _ in consumer.events.published] == [INFERENCE_FAILED]
        _, detail = consumer.events.published[0]
        assert detail["request_id"] == "req-batch-0103"
        assert detail["status"] == "FAILED"
        assert detail["error"]["code"] == "RequestInvalid"
        assert detail["error"]["message"] == "the request is not a valid inference request"
        # the unknown key is the caller's own text: its location shows as `*`
        assert {"location": "*", "type": "extra_forbidden"} in detail["error"]["problems"]
        assert detail["source_reference"] == MESSAGE_ID
        assert detail["model"] == {"requested": ""}
        # AND lineage is written only if nothing was there before
        assert len(consumer.lineage.calls) == 1
        call = consumer.lineage.calls[0]
        assert call.item.request_id == "req-batch-0103"
        assert call.only_if_new is True
        assert call.item.status == "FAILED"
        assert call.item.request_hmac is None  # it never validated
        assert (call.item.created_at, call.item.day, call.item.expires_at) == (
            "2025-03-12T14:05:12.007+00:00",
            "2025-03-12",
            int((NOW + timedelta(days=400)).timestamp()),
        )
        # AND no workflow starts
        assert consumer.starter.started == {}

    def test_redelivery_of_a_malformed_request_does_not_answer_twice(self) -> None:
        consumer = Submission()
        for _ in range(3):  # maxReceiveCount deliveries before the DLQ
            with pytest.raises(RequestInvalid):
                consumer.submit(MALFORMED)

        assert len(consumer.events.published) == 1
        assert consumer.lineage.items["req-batch-0103"].status == "FAILED"

    def test_a_malformed_request_never_overwrites_an_existing_lineage_item(self) -> None:
        # GIVEN the id already belongs to an accepted request
        consumer = Submission()
        consumer.lineage.claim(make_state(make_request(request_id="req-batch-0103")).claim)

        # WHEN a malformed message reuses it
        with pytest.raises(RequestInvalid):
            consumer.submit(MALFORMED)

        # THEN the accepted request's lineage and result are left alone
        assert consumer.lineage.items["req-batch-0103"].status == "ACCEPTED"
        assert consumer.events.published == []

    @pytest.mark.parametrize(
        "body",
        [
            "Hello from SQS!",
            '{"request_id": "req-1", "model": ',
            "[]",
            '"a string"',
            json.dumps({"request_id": "bad id!"}),
        ],
        ids=["not-json", "truncated", "array", "string", "malformed-id"],
    )
    def test_malformed_without_a_usable_id_is_answered_once_under_its_message_id(self, body: str) -> None:
        # GIVEN a body that is not JSON, not an object, or names no well-formed id
        consumer = Submission()

        # WHEN it is delivered, and delivered again
        for _ in range(2):
            with pytest.raises(RequestInvalid):
                consumer.submit(body)

        # THEN it is answered once, under the SQS message id, as RequestInvalid
        [(detail_type, detail)] = consumer.events.published
        assert detail_type == INFERENCE_FAILED
        assert detail["request_id"] == MESSAGE_ID == detail["source_reference"]
        assert detail["error"]["code"] == "RequestInvalid"
        assert consumer.lineage.items[MESSAGE_ID].status == "FAILED"
        assert consumer.starter.started == {}

    def test_an_oversized_request_is_answered_under_its_own_id(self) -> None:
        # GIVEN a body over 200,000 bytes that names its request id after the long prompt, and a
        # "request_id" nested in a value and quoted inside the prompt that must not be taken for it
        body = {
            "caller": {"request_id": "nested-id"},
            "model": "default",
            "prompt": 'say "request_id": "quoted-id" ' + "x" * 210_000,
            "request_id": "req-big-0001",
        }

        # WHEN it is delivered twice
        consumer = Submission()
        for _ in range(2):
            with pytest.raises(RequestInvalid) as caught:
                consumer.submit(body)

        # THEN it is answered once, under its own id, as RequestInvalid (too long)
        assert ("request", "too_long") in [tuple(p) for p in caught.value.problems]
        [(detail_type, detail)] = consumer.events.published
        assert detail_type == INFERENCE_FAILED
        assert detail["request_id"] == "req-big-0001"
        assert detail["error"]["code"] == "RequestInvalid"
        assert set(consumer.lineage.items) == {"req-big-0001"}

    def test_an_oversized_request_without_a_top_level_id_is_answered_under_its_message_id(self) -> None:
        body = {"caller": {"request_id": "nested-id"}, "model": "default", "prompt": "x" * 210_000}
        consumer = Submission()

        with pytest.raises(RequestInvalid):
            consumer.submit(body)

        [(_, detail)] = consumer.events.published
        assert detail["request_id"] == MESSAGE_ID

    def test_the_failure_event_echoes_model_and_string_reply_fields_only(self) -> None:
        consumer = Submission()
        body = {
            **MALFORMED,
            "model": "default",
            "reply": {"ticket": "INC-1", "count": 3, "nested": {"a": "b"}},
        }

        with pytest.raises(RequestInvalid):
            consumer.submit(body)

        _, detail = consumer.events.published[0]
        assert detail["model"] == {"requested": "default"}
        assert detail["reply"] == {"ticket": "INC-1"}

    def test_the_failure_event_never_carries_the_request_text(self) -> None:
        consumer = Submission()
        body = {**MALFORMED, "prompt": "Applicant SSN 123-45-6789"}

        with pytest.raises(RequestInvalid):
            consumer.submit(body)

        assert "123-45-6789" not in json.dumps(consumer.events.published)
        assert "123-45-6789" not in json.dumps([c.item.model_dump() for c in consumer.lineage.calls])


class TestRecordOutcome:
    RECORDED_AT = datetime(2025, 3, 12, 14, 7, 5, 402000, tzinfo=UTC)

    def claimed(self, event: str) -> tuple[WorkflowState, FakeLineageStore]:
        state = state_from_event(event)
        lineage = FakeLineageStore()
        lineage.claim(state.claim)
        return state, lineage

    @pytest.mark.parametrize(
        ("event", "detail_type", "status"),
        [
            ("record/state-completed.json", "Inference Completed", "COMPLETED"),
            ("record/state-failed.json", "Inference Failed", "FAILED"),
            ("record/state-blocked.json", "Inference Blocked", "BLOCKED"),
        ],
    )
    def test_first_record_emits(self, event: str, detail_type: str, status: str) -> None:
        state, lineage = self.claimed(event)

        outcome = record_outcome(state, lineage, self.RECORDED_AT)

        assert outcome.emit is True
        assert outcome.detail_type == detail_type
        assert outcome.detail["status"] == status
        assert outcome.detail["request_id"] == state.request.request_id
        assert lineage.items[state.request.request_id].status == status

    def test_emit_is_false_when_lineage_is_already_final(self) -> None:
        # GIVEN a request already recorded once
        state, lineage = self.claimed("record/state-completed.json")
        record_outcome(state, lineage, self.RECORDED_AT)

        # WHEN a late duplicate (a retried task, a second execution) records it again
        again = record_outcome(state, lineage, self.RECORDED_AT + timedelta(seconds=3))

        # THEN it does not emit a second result
        assert again.emit is False
        assert again.detail_type == "Inference Completed"

    def test_the_claims_first_seen_fields_are_offered_for_a_missing_item(self) -> None:
        state = state_from_event("record/state-failed.json")
        lineage = FakeLineageStore()

        record_outcome(state, lineage, self.RECORDED_AT)

        call = lineage.calls[0]
        assert call.only_if_new is False
        assert (call.item.created_at, call.item.day, call.item.expires_at) == (
            state.claim.created_at,
            state.claim.day,
            int(state.claim.expires_at),
        )

    def test_the_detail_is_json_ready_for_the_asl_put_events(self) -> None:
        state, lineage = self.claimed("record/state-completed.json")

        outcome = record_outcome(state, lineage, self.RECORDED_AT)

        assert json.loads(json.dumps(outcome.detail)) == outcome.detail
        assert outcome.detail["timings"]["completed_at"] == "2025-03-12T14:07:05.402000Z"
        assert None not in outcome.detail.values()


class TestInvokeModel:
    def routed(self, request: dict[str, Any] | None = None) -> WorkflowState:
        state = classify(
            make_state(request or sample_request("converse-system")),
            policy=load_default_policy(),
            detectors=(),
            routing=load_default_routing(),
            events=FakeEventPublisher(),
        )
        state.route = Route(
            model_id="us.anthropic.claude-3-5-haiku-20241022-v1:0",
            region="us-east-1",
            endpoint="",
            api="converse",
        )
        return state

    def test_a_credential_past_its_maximum_age_is_counted(self) -> None:
        from xpi.observability import metrics

        # GIVEN a key a day past its maximum age, then one within it
        for age, counted in ((90 * 86400 + 86400, True), (3600, False)):
            metrics.clear_metrics()
            gateway = FakeBedrockGateway(credential_age_s=age)
            # WHEN a request is answered with it
            invoke_model(self.routed(), gateway, FakeObjectStore(), inline_max_bytes=32_768,
                         credential_max_age_s=90 * 86400)  # fmt: skip
            # THEN the metric counts only the aged one
            assert ("CredentialPastMaxAge" in metrics.provider.metric_set) is counted

    def test_a_credential_past_its_maximum_age_raises_one_security_alert_per_version(self) -> None:
        invocation._ALERTED_PAST_MAX_AGE.clear()
        events = FakeEventPublisher()
        aged = 90 * 86400 + 86400
        # GIVEN three requests answered with one aged key, one with another aged version, one young key
        answers = [
            FakeBedrockGateway(credential_age_s=aged),
            FakeBedrockGateway(credential_age_s=aged),
            FakeBedrockGateway(credential_age_s=aged, credential_version="a2b3c4d5-other-version"),
            FakeBedrockGateway(credential_age_s=3600, credential_version="young-version"),
        ]
        # WHEN this function instance answers them
        for gateway in answers:
            invoke_model(self.routed(), gateway, FakeObjectStore(), inline_max_bytes=32_768,
                         credential_max_age_s=90 * 86400, events=events)  # fmt: skip
        # THEN one Security Alert per aged version, with its type, version and age, and no key
        assert [t for t, _ in events.published] == ["Security Alert", "Security Alert"]
        first = events.published[0][1]
        assert first["decision"] == "past_max_age" and first["source"] == "credentials"
        assert first["credentials"] == {
            "change": "past_max_age",
            "credential_version": answers[0].credential_version,
            "credential_age_s": aged,
        }
        assert events.published[1][1]["credentials"]["credential_version"] == "a2b3c4d5-other-version"

    def test_an_unpublished_age_alert_never_fails_the_request_and_is_tried_again(self) -> None:
        invocation._ALERTED_PAST_MAX_AGE.clear()

        class Down:
            def publish(self, detail_type: str, detail: Any) -> None:
                raise ConnectionError("bus unreachable")

        gateway = FakeBedrockGateway(credential_age_s=91 * 86400)
        response = invoke_model(self.routed(), gateway, FakeObjectStore(), inline_max_bytes=32_768,
                                credential_max_age_s=90 * 86400, events=Down())  # fmt: skip
        assert response.output_text
        assert gateway.credential_version not in invocation._ALERTED_PAST_MAX_AGE

    def test_a_small_text_output_stays_inline(self) -> None:
        # GIVEN
        gateway, objects = (
            FakeBedrockGateway(answer_text="Agency staff approve each stage."),
            FakeObjectStore(),
        )
        state = self.routed()

        # WHEN
        response = invoke_model(state, gateway, objects, inline_max_bytes=32_768)

        # THEN
        assert response.output_text == "Agency staff approve each stage."
        assert response.output_s3_uri is None
        assert response.output_bytes == len(b"Agency staff approve each stage.")
        assert response.output_sha256 == sha256_text("Agency staff approve each stage.")
        assert response.stop_reason == "end_turn"
        assert response.credential_version == gateway.credential_version
        assert objects.objects == {}
        assert gateway.calls == [(state.route, stored(state))]

    def test_a_large_output_goes_to_the_object_store_with_a_pointer_and_hash(self) -> None:
        # GIVEN an answer one byte over the inline limit (multi-byte characters count as bytes)
        text = "é" * 600 + "x"
        gateway, objects = FakeBedrockGateway(answer_text=text), FakeObjectStore()

        # WHEN
        response = invoke_model(self.routed(), gateway, objects, inline_max_bytes=1200)

        # THEN
        assert response.output_text is None
        assert response.output_s3_uri == "s3://xpi-prod-artifacts/outputs/req-converse-0002.txt"
        assert objects.objects["outputs/req-converse-0002.txt"] == (
            text.encode(),
            "text/plain; charset=utf-8",
        )
        assert response.output_bytes == 1201
        assert response.output_sha256 == sha256_text(text.encode())

    def test_an_answer_that_cannot_be_stored_fails_without_a_retryable_error(self) -> None:
        # GIVEN a large answer and an object store answering 503 (AWS's passing fault)
        class UnavailableObjectStore(FakeObjectStore):
            def put(self, key: str, body: bytes, content_type: str) -> str:
                raise ClientError(
                    {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                    "PutObject",
                )

        gateway = FakeBedrockGateway(answer_text="x" * 1300)

        # WHEN the invoke step stores the answer Bedrock already gave (and billed)
        with pytest.raises(InternalError) as caught:
            invoke_model(self.routed(), gateway, UnavailableObjectStore(), inline_max_bytes=1200)

        # THEN it fails as InternalError, not AwsUnavailable: a retry would call Bedrock again
        assert not isinstance(caught.value, AwsUnavailable)
        assert len(gateway.calls) == 1

    def test_exactly_the_inline_limit_stays_inline(self) -> None:
        gateway, objects = FakeBedrockGateway(answer_text="x" * 1024), FakeObjectStore()

        response = invoke_model(self.routed(), gateway, objects, inline_max_bytes=1024)

        assert response.output_text == "x" * 1024 and objects.objects == {}

    def test_a_native_body_is_hashed_as_json_and_stored_as_json_when_large(self) -> None:
        body = {"content": [{"type": "text", "text": "y" * 2000}], "stop_reason": "end_turn"}
        gateway, objects = FakeBedrockGateway(answer_body=body), FakeObjectStore()

        small = invoke_model(self.routed(), gateway, objects, inline_max_bytes=100_000)
        large = invoke_model(self.routed(), gateway, objects, inline_max_bytes=1024)

        assert small.output_body == body and small.output_text is None
        assert small.output_sha256 == large.output_sha256 == sha256_text(json.dumps(body))
        assert large.output_body is None
        assert objects.objects["outputs/req-converse-0002.json"][1] == "application/json"

    def test_cost_is_estimated_from_usage_and_the_routed_model(self) -> None:
        usage = Usage(input_tokens=2400, output_tokens=310)
        gateway = FakeBedrockGateway(usage=usage)
        state = self.routed()

        response = invoke_model(state, gateway, FakeObjectStore(), inline_max_bytes=32_768)

        assert response.usage == usage
        assert response.estimated_cost_usd == pytest.approx((2400 * 0.0008 + 310 * 0.004) / 1000)
        assert state.route is not None
        assert response.estimated_cost_usd == estimate_cost(
            load_default_routing(), state.route.model_id, usage
        )

    def test_bedrock_errors_propagate_unchanged_for_the_workflow_to_retry(self) -> None:
        gateway = FakeBedrockGateway(error=BedrockThrottled("ThrottlingException: slow down"))

        with pytest.raises(BedrockThrottled):
            invoke_model(self.routed(), gateway, FakeObjectStore(), inline_max_bytes=32_768)

    def test_an_unrouted_state_is_refused_before_calling_bedrock(self) -> None:
        gateway = FakeBedrockGateway()

        with pytest.raises(ValueError, match="the Route step must run first"):
            invoke_model(make_state(), gateway, FakeObjectStore(), inline_max_bytes=32_768)
        assert gateway.calls == []

    def test_the_classified_payload_is_sent(self) -> None:
        gateway = FakeBedrockGateway()
        state = self.routed()
        assert state.classification is not None
        assert state.classification.payload_hmac == outbound_hmac(stored(state), TEST_HASH_KEY)

        invoke_model(state, gateway, FakeObjectStore(), inline_max_bytes=32_768)

        assert len(gateway.calls) == 1

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(lambda r: r.update(system=["Ignore the policy."]), id="system"),
            pytest.param(
                lambda r: r["messages"][0]["content"][0].update(text="SSN 219-45-8832"), id="message"
            ),
            pytest.param(lambda r: r["inference"].update(stop_sequences=["219-45-8832"]), id="stop-sequence"),
            pytest.param(lambda r: r["inference"].update(max_tokens=301), id="inference-config"),
            pytest.param(lambda r: r["messages"].pop(), id="a-message-removed"),
        ],
    )
    def test_any_change_to_what_crosses_after_classification_is_refused(
        self, change: Callable[[dict[str, Any]], None]
    ) -> None:
        # GIVEN a classified, routed request whose content then changes
        state = self.routed()
        request = stored(state).model_dump(mode="json")
        change(request)
        replace_stored(state, InferenceRequest.model_validate(request))
        gateway = FakeBedrockGateway()

        # WHEN / THEN nothing is sent
        with raises_with_reason(ClassificationMismatch, "differs from the one that was classified"):
            invoke_model(state, gateway, FakeObjectStore(), inline_max_bytes=32_768)
        assert gateway.calls == []

    def test_a_native_body_change_is_refused(self) -> None:
        state = self.routed(sample_request("invoke-model-anthropic"))
        request = stored(state)
        assert request.body is not None
        replace_stored(state, request.model_copy(update={"body": {**request.body, "extra": 1}}))

        with pytest.raises(ClassificationMismatch):
            invoke_model(state, FakeBedrockGateway(), FakeObjectStore(), inline_max_bytes=32_768)

    def test_the_route_is_not_part_of_the_hash(self) -> None:
        # GIVEN the route picks another model than the one judged (the alias resolves at routing)
        state = self.routed()
        assert state.route is not None
        state.route = state.route.model_copy(update={"model_id": "us.amazon.nova-micro-v1:0"})
        gateway = FakeBedrockGateway()

        invoke_model(state, gateway, FakeObjectStore(), inline_max_bytes=32_768)

        assert len(gateway.calls) == 1

    @pytest.mark.parametrize(
        ("classification", "message"),
        [
            (None, "no classification"),
            ({"decision": "block", "classifier": "xpi-rules/1"}, "no classification"),
            ({"decision": "allow", "classifier": "xpi-rules/1"}, "no hash"),
            ({"decision": "allow", "classifier": "xpi-rules/1", "payload_hmac": "0" * 64}, "differs"),
        ],
    )
    def test_fails_closed_without_a_matching_classification(
        self, classification: dict[str, Any] | None, message: str
    ) -> None:
        state = self.routed()
        state.classification = (
            None if classification is None else Classification.model_validate(classification)
        )
        gateway = FakeBedrockGateway()

        with raises_with_reason(ClassificationMismatch, message):
            invoke_model(state, gateway, FakeObjectStore(), inline_max_bytes=32_768)
        assert gateway.calls == []

    def test_prices_come_from_the_carried_routing_snapshot(self) -> None:
        # GIVEN a snapshot whose price differs from the shipped routing
        routing = load_default_routing().model_dump(mode="json")
        routing["models"]["us.anthropic.claude-3-5-haiku-20241022-v1:0"]["usd_per_1k_input_tokens"] = 1.0
        state = self.routed()
        state.config = snapshot(load_default_policy(), RoutingConfig.model_validate(routing))

        response = invoke_model(
            state,
            FakeBedrockGateway(usage=Usage(input_tokens=1000, output_tokens=0)),
            FakeObjectStore(),
            inline_max_bytes=32_768,
        )

        assert response.estimated_cost_usd == pytest.approx(1.0)

    def test_a_missing_or_altered_snapshot_is_refused(self) -> None:
        state = self.routed()
        assert state.config is not None
        altered = state.config.model_copy(update={"routing": {**state.config.routing, "aliases": {}}})

        for config in (None, altered):
            state.config = config
            with pytest.raises(ConfigSnapshotInvalid):
                invoke_model(state, FakeBedrockGateway(), FakeObjectStore(), inline_max_bytes=32_768)


class TestStateSize:
    # Step Functions fails a state over 256 KiB with States.DataLimitExceeded; the states carry a
    # reference to the request, so even the largest request with the largest inline output stays small.
    STATE_LIMIT = 256 * 1024

    def test_the_largest_request_with_the_largest_inline_output_keeps_every_state_small(self) -> None:
        # GIVEN a request at the size limit and an answer at the largest inline size settings allow
        sentence = "The tide in the estuary rises at dawn and falls by noon. "
        request = make_request(
            prompt=sentence * (149_000 // len(sentence)), system=[sentence * (45_000 // len(sentence))]
        )
        assert len(request_bytes(request)) > 190_000
        inline_max = Settings.model_fields["inline_output_max_bytes"].metadata[-1].le
        state = make_state(request)
        sizes = [len(state.model_dump_json())]

        # WHEN it goes through every step
        state = classify(
            state,
            policy=load_default_policy(),
            detectors=(),
            routing=load_default_routing(),
            events=FakeEventPublisher(),
        )
        sizes.append(len(state.model_dump_json()))
        state.route = route(state, region="us-east-1", endpoint="")
        state.response = invoke_model(
            state,
            FakeBedrockGateway(answer_text="y" * inline_max),
            FakeObjectStore(),
            inline_max_bytes=inline_max,
        )
        sizes.append(len(state.model_dump_json()))
        lineage = FakeLineageStore()
        lineage.claim(state.claim)
        state.outcome = record_outcome(state, lineage, NOW)
        sizes.append(len(state.model_dump_json()))

        # THEN no state holds the request, and the largest is far below the limit
        assert state.response is not None and state.response.output_text == "y" * inline_max
        assert "estuary" not in state.model_dump_json()
        assert max(sizes) < 2 * inline_max + 16_000 < self.STATE_LIMIT


class TestRouteWithSnapshot:
    def test_the_route_uses_the_carried_routing(self) -> None:
        # GIVEN a snapshot that lets nobody use any model
        routing = load_default_routing().model_copy(update={"callers": []})
        state = make_state(sample_request("converse-system"))
        state.config = snapshot(load_default_policy(), routing)

        with pytest.raises(ModelNotAllowedForCaller):
            route(state, region="us-east-1", endpoint="")

    def test_no_snapshot_no_route(self) -> None:
        with raises_with_reason(ConfigSnapshotInvalid, "no configuration snapshot"):
            route(make_state(sample_request("converse-system")), region="us-east-1", endpoint="")


TOOL_CALL: dict[str, Any] = {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}


def with_tool_input(tool_input: dict[str, Any], **tool_use: Any) -> dict[str, Any]:
    request = sample_request("converse-system")
    block = {"toolUse": {**TOOL_CALL["toolUse"], "input": tool_input, **tool_use}}
    request["messages"] = [
        {"role": "user", "content": [{"text": "look it up"}]},
        {"role": "assistant", "content": [block]},
    ]
    return request


def with_native_body(**members: Any) -> dict[str, Any]:
    request = sample_request("invoke-model-anthropic")
    request["body"].update(members)
    return request


def with_stop_sequence(text: str) -> dict[str, Any]:
    request = sample_request("converse-system")
    request["inference"]["stop_sequences"] = [text]
    return request


def with_document_name(name: str) -> dict[str, Any]:
    request = sample_request("converse-system")
    document = {"document": {"format": "txt", "name": name, "source": {"bytes": "aGVsbG8="}}}
    request["messages"][0]["content"].append(document)
    return request


class TestClassify:
    CLASSIFIED_AT = datetime(2025, 3, 12, 14, 5, 12, 500000, tzinfo=UTC)

    def classified(self, request: dict[str, Any]) -> tuple[WorkflowState, FakeEventPublisher]:
        events = FakeEventPublisher()
        state = classify(
            make_state(request),
            policy=load_default_policy(),
            detectors=(),
            routing=load_default_routing(),
            events=events,
            clock=lambda: self.CLASSIFIED_AT,
        )
        return state, events

    def test_pii_is_redacted_in_the_state_and_counted(self) -> None:
        state, events = self.classified(sample_request("pii-redact"))

        assert state.classification is not None
        assert state.classification.decision == "redact"
        assert state.classification.categories == {"pii.ssn": 1, "pii.email": 1}
        assert state.classification.classifier == "xpi-rules/1"
        assert "123-45-6789" not in state.model_dump_json() + stored(state).model_dump_json()
        assert state.timings["classified_at"] == self.CLASSIFIED_AT
        assert events.published == []

    def test_a_classified_marking_blocks_and_alerts_security_without_the_text(self) -> None:
        # GIVEN a request carrying a classified banner
        request = sample_request("plain-prompt")
        request["system"] = ["SECRET//NOFORN\n\nOperational summary follows.\n\nSECRET//NOFORN"]

        # WHEN
        state, events = self.classified(request)

        # THEN
        assert state.classification is not None and state.classification.decision == "block"
        [(detail_type, detail)] = events.published
        assert detail_type == "Security Alert"
        assert detail == {
            "version": "1",
            "request_id": "req-plain-0001",
            "caller_principal": state.source.principal,
            "source": "sqs",
            "categories": {"classified.banner": 2},
            "decision": "block",
        }
        assert "Operational summary" not in json.dumps(detail)

    @pytest.mark.parametrize(
        ("request_", "category"),
        [
            pytest.param(with_tool_input({"SECRET//NOFORN": "x"}), "classified.banner", id="tool-input-key"),
            pytest.param(
                with_native_body(metadata={"CUI//SP-PRVCY": 1}), "cui.specified", id="native-body-key"
            ),
            pytest.param(with_stop_sequence("SECRET//NOFORN"), "classified.banner", id="stop-sequence"),
            pytest.param(with_tool_input({}, name="(S//NF) lookup"), "classified.portion", id="tool-name"),
            pytest.param(with_native_body(system="CUI//SP-PRVCY"), "cui.specified", id="native-system"),
            pytest.param(
                with_native_body(tools=[{"name": "t", "description": "SECRET//NOFORN", "input_schema": {}}]),
                "classified.banner",
                id="native-tool-spec",
            ),
            pytest.param(
                with_native_body(messages=[{"role": "user", "content": [{"type": "SECRET//NOFORN"}]}]),
                "classified.banner",
                id="native-type-value",
            ),
        ],
    )
    def test_a_marking_anywhere_that_crosses_blocks(self, request_: dict[str, Any], category: str) -> None:
        state, _ = self.classified(request_)

        assert state.classification is not None
        assert state.classification.decision == "block"
        assert category in state.classification.categories
        assert state.classification.payload_hmac is None

    def test_pii_in_keys_is_redacted_and_the_body_stays_valid(self) -> None:
        # GIVEN a native body whose keys are an SSN and an e-mail address, one of them twice over
        state, _ = self.classified(
            with_native_body(metadata={"219-45-8832": "a", "SSN 219-45-8833": "b", "j.doe@example.com": "c"})
        )

        # THEN the keys are placeholders, distinct, and what will be sent is what was hashed
        assert state.classification is not None and state.classification.decision == "redact"
        assert state.classification.categories == {"pii.ssn": 2, "pii.email": 1}
        assert stored(state).body is not None
        assert stored(state).body["metadata"] == {
            "[REDACTED:SSN]": "a",
            "SSN [REDACTED:SSN]": "b",
            "[REDACTED:EMAIL]": "c",
        }
        assert state.classification.payload_hmac == outbound_hmac(stored(state), TEST_HASH_KEY)
        assert "219-45" not in state.model_dump_json() + stored(state).model_dump_json()

    def test_colliding_redacted_keys_stay_distinct(self) -> None:
        state, _ = self.classified(with_tool_input({"219-45-8832": 1, "219-45-8833": 2}))

        tool_use = stored(state).messages[1].content[0].toolUse
        assert tool_use is not None
        assert tool_use.input == {"[REDACTED:SSN]": 1, "[REDACTED:SSN] (2)": 2}

    @pytest.mark.parametrize(
        ("request_", "secret"),
        [
            pytest.param(with_stop_sequence("219-45-8832"), "219-45-8832", id="stop-sequence"),
            pytest.param(with_tool_input({}, toolUseId="219-45-8832"), "219-45-8832", id="tool-use-id"),
            pytest.param(
                with_native_body(anthropic_version="219-45-8832"), "219-45-8832", id="native-version"
            ),
            pytest.param(with_tool_input({"type": "ssn-219-45-8832"}), "219-45-8832", id="short-type-value"),
        ],
    )
    def test_pii_in_newly_inspected_places_is_redacted(self, request_: dict[str, Any], secret: str) -> None:
        state, _ = self.classified(request_)

        assert state.classification is not None and state.classification.decision == "redact"
        assert secret not in state.model_dump_json() + stored(state).model_dump_json()

    def test_a_document_name_is_inspected_even_where_documents_may_cross(self) -> None:
        # GIVEN a policy that lets unreadable documents cross
        document = load_default_policy().model_dump(mode="json")
        document["categories"]["content.uninspectable"] = "allow"
        policy = Policy.model_validate(document)

        state = classify(
            make_state(with_document_name("SSN 219-45-8832")),
            policy=policy,
            detectors=(),
            routing=load_default_routing(),
            events=FakeEventPublisher(),
        )

        assert state.classification is not None and state.classification.decision == "redact"
        document = stored(state).messages[0].content[1].document
        assert document is not None and document.name == "SSN [REDACTED:SSN]"

    def test_the_configuration_snapshot_is_recorded_once(self) -> None:
        state, _ = self.classified(sample_request("converse-system"))

        assert state.config is not None
        assert RoutingConfig.model_validate(state.config.routing) == load_default_routing()
        assert state.config.policy_sha256 == canonical_sha256(load_default_policy().model_dump(mode="json"))
        assert len(state.config.model_dump_json()) < 6144  # compact: Step Functions payloads are 256 KiB

    def test_the_snapshot_is_made_once_per_version_in_force(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # GIVEN the same policy and routing objects in force for two requests (cached per version)
        policy, routing = load_default_policy(), load_default_routing()
        hashed: list[object] = []
        monkeypatch.setattr(routing_service, "_last_snapshot", [])  # none made yet in this process
        monkeypatch.setattr(
            routing_service, "canonical_sha256", lambda value: hashed.append(value) or canonical_sha256(value)
        )

        # WHEN both are snapshotted, and a new routing version comes into force
        first, second = snapshot(policy, routing), snapshot(policy, routing)
        hashes_for_one_version = len(hashed)
        changed = RoutingConfig.model_validate({**routing.model_dump(mode="json"), "aliases": {}})
        third = snapshot(policy, changed)

        # THEN the first version's documents were hashed once (policy and routing), the new one's again
        assert second is first and hashes_for_one_version == 2
        assert third is not first and len(hashed) == 4
        assert third.routing_sha256 == canonical_sha256(changed.model_dump(mode="json"))

    def test_the_routing_carried_through_the_workflow_state_is_checked_and_read_again(self) -> None:
        # GIVEN a classified state, and the same state as the next step reads it (JSON, from Step Functions)
        state, _ = self.classified(sample_request("plain-prompt"))
        assert state.config is not None
        through_workflow = WorkflowState.model_validate_json(state.model_dump_json())
        assert through_workflow.config is not None
        altered = through_workflow.model_copy(deep=True)
        assert altered.config is not None
        altered.config.routing["aliases"] = {"default": "us.anthropic.claude-opus-4"}

        # THEN in process the routing is the one snapshotted; through the workflow it is checked again,
        # and an altered one refused
        assert carried_routing(state) is load_default_routing()
        assert carried_routing(through_workflow) == load_default_routing()
        assert carried_routing(through_workflow) is not load_default_routing()
        with pytest.raises(ConfigSnapshotInvalid):
            carried_routing(altered)


class TestValidate:
    def execution(self, body: bytes, **ref_changes: Any) -> ExecutionInput:
        payload = PAYLOADS.put("req-validate/x.json", body)
        return ExecutionInput(payload=payload.model_copy(update=ref_changes), source=make_source())

    def test_the_state_refers_to_the_body_with_its_keyed_hash_and_holds_none_of_it(self) -> None:
        body = json.dumps(sample_request("plain-prompt")).encode()

        state = validate(
            self.execution(body), payloads=PAYLOADS, hash_key=FakeHashKey(), now=NOW, retention_days=400
        )

        assert state.payload.key == "payloads/req-validate/x.json"
        assert state.payload.hmac == keyed_hash(TEST_HASH_KEY, body)
        assert sample_request("plain-prompt")["prompt"] not in state.model_dump_json()

    def test_an_object_of_another_size_than_its_reference_is_refused(self) -> None:
        body = json.dumps(sample_request("plain-prompt")).encode()

        with pytest.raises(PayloadMismatch):
            validate(
                self.execution(body, bytes=len(body) + 1),
                payloads=PAYLOADS,
                hash_key=FakeHashKey(),
                now=NOW,
                retention_days=400,
            )

    def test_an_unreadable_rejected_body_is_answered_without_its_fields(self) -> None:
        ref = PAYLOADS.put("req-validate/broken.json", b"not json")

        assert load_raw(ref, PAYLOADS) == {}
        assert load_raw(ref.model_copy(update={"bytes": 1}), PAYLOADS) == {}
