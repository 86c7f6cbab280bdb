"""Every function's handler, called as Lambda calls it, with its events/ sample: AWS in moto, commercial
Bedrock faked behind the BedrockGateway Protocol. Assertions are on what the handler returns and on
what it left in (moto's) AWS.

The classify handler has its own module (it depends on the classifier being written).
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from xpi import dependencies
from xpi.domain.errors import (
    BedrockThrottled,
    ClassificationMismatch,
    ConfigSnapshotInvalid,
    InvocationInProgress,
    ModelNotAllowedForCaller,
    ModelNotApproved,
    PayloadMismatch,
    RequestInvalid,
)
from xpi.domain.hashing import keyed_canonical_hash, keyed_hash, sha256_text
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import CallerRule, load_default_routing
from xpi.handlers import batch_start, consume, invoke, record, record_rejection, route, validate
from xpi.models.request import InferenceRequest
from xpi.models.workflow import RequestHeader, WorkflowState
from xpi.services.routing import snapshot

from tests.helpers import aws as aws_helpers
from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.errors import raises_with_reason
from tests.helpers.events import load_event, sample_request
from tests.helpers.fakes import TEST_HASH_KEY, FakeBedrockGateway

BATCH = "consume/sqs-batch.json"
MALFORMED_MESSAGE_ID = "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a03"


def state_event(relative: str, **request_changes: Any) -> dict[str, Any]:
    event = load_event(relative)
    event["request"].update(request_changes)
    return event


def payload_body(event: dict[str, Any]) -> bytes:
    ref = event["payload"]
    return aws_helpers.s3().get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()


class TestConsume:
    def test_partial_batch_failure_names_exactly_the_malformed_record(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # WHEN
        result = consume.handler(load_event(BATCH), lambda_context)

        # THEN
        assert result == {"batchItemFailures": [{"itemIdentifier": MALFORMED_MESSAGE_ID}]}

    def test_valid_records_start_one_queue_execution_with_their_bodies_inline_and_their_source(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = load_event(BATCH)

        consume.handler(event, lambda_context)

        # one Express execution for the batch's two accepted requests, none of the Standard workflow
        assert aws.queue_executions() == 1 and aws.executions() == {}
        queued = aws.queued()
        assert sorted(queued) == ["req-batch-0101", "req-batch-0102"]
        started = queued["req-batch-0102"]
        record_ = event["Records"][1]
        assert "payload" not in started  # an ordinary body travels inline: no object in S3
        assert InferenceRequest.model_validate(started["request"]) == InferenceRequest.model_validate_json(
            record_["body"]
        )
        assert started["source"] == {
            "kind": "sqs",
            "principal": "AROAQXZEXAMPLEROLEID1:claims-intake",
            "reference": record_["messageId"],
            "received_at": "2025-03-12T14:05:11.619000Z",
        }

    def test_a_large_body_travels_as_a_reference_the_others_inline_in_the_same_execution(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN a batch whose second request is over the inline limit (20 KiB)
        event = load_event(BATCH)
        event["Records"] = event["Records"][:2]
        large = json.loads(event["Records"][1]["body"])
        large["messages"][0]["content"][0]["text"] = "A long enquiry. " * 2_000
        event["Records"][1]["body"] = json.dumps(large)

        # WHEN it is consumed
        assert consume.handler(event, lambda_context) == {"batchItemFailures": []}

        # THEN one execution: the large body stored under payloads/ and referred to, the other inline
        assert aws.queue_executions() == 1
        queued = aws.queued()
        assert "request" not in queued[large["request_id"]]
        assert aws.stored_request(queued[large["request_id"]]["payload"]) == InferenceRequest.model_validate(
            large
        )
        assert "payload" not in queued["req-batch-0101"]

    def test_the_malformed_record_is_answered_once_in_lineage_and_on_the_bus(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        consume.handler(load_event(BATCH), lambda_context)

        item = aws.lineage_item("req-batch-0103")
        assert item is not None
        assert item["status"] == "FAILED"
        assert item["error"]["code"] == "RequestInvalid"
        assert item["source_reference"] == MALFORMED_MESSAGE_ID
        [event] = aws.subscriber_events()
        assert event["detail-type"] == "Inference Failed"
        assert event["detail"]["request_id"] == "req-batch-0103"
        assert event["detail"]["error"]["message"] == "the request is not a valid inference request"
        assert {"location": "model", "type": "missing"} in event["detail"]["error"]["problems"]

    def test_redelivery_does_not_answer_or_start_twice(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the batch was handled once
        consume.handler(load_event(BATCH), lambda_context)
        first_events = aws.subscriber_events()

        # WHEN SQS delivers it again (the malformed record returns until it reaches the DLQ)
        again = load_event(BATCH)
        for message in again["Records"]:
            message["attributes"]["ApproximateReceiveCount"] = "2"
        result = consume.handler(again, lambda_context)

        # THEN
        assert result == {"batchItemFailures": [{"itemIdentifier": MALFORMED_MESSAGE_ID}]}
        assert len(first_events) == 1
        assert aws.subscriber_events() == []
        # (the second execution's items meet the first's claims and stop: the claim, not the start, is
        # the duplicate check of an Express workflow)
        assert sorted(aws.queued()) == ["req-batch-0101", "req-batch-0102"]

    def test_a_second_message_with_an_accepted_id_does_not_fail_the_batch(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN a request already started from another message
        consume.handler(load_event(BATCH), lambda_context)
        duplicate = load_event(BATCH)
        duplicate["Records"] = duplicate["Records"][:1]
        duplicate["Records"][0]["messageId"] = "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a99"

        # WHEN / THEN
        assert consume.handler(duplicate, lambda_context) == {"batchItemFailures": []}
        assert sorted(aws.queued()) == ["req-batch-0101", "req-batch-0102"]


API_ROLE_ID = "AROAAPIFUNCTIONROLE1"  # the role that redrives the requests DLQ


def _redriven(record: dict[str, Any], new_message_id: str) -> dict[str, Any]:
    """The record as SQS delivers it after a DLQ redrive: same body, new id, sent by the redriver."""
    return {
        **record,
        "messageId": new_message_id,
        "attributes": {**record["attributes"], "SenderId": f"{API_ROLE_ID}:xpi-api"},
    }


class TestRedriveAttribution:
    def test_a_redriven_message_runs_as_its_original_sender_not_the_redriver(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REDRIVER_ROLE_IDS", API_ROLE_ID)
        # GIVEN a message without a request id whose workflow could not start (it goes to the DLQ)
        event = load_event(BATCH)
        record_ = event["Records"][1]
        body = json.loads(record_["body"])
        del body["request_id"]
        record_["body"] = json.dumps(body)
        first = {**event, "Records": [record_]}
        starter = dependencies.queue_starter()
        monkeypatch.setattr(dependencies, "queue_starter", _Unavailable)
        # its only record is reported failed: SQS gets it back
        assert consume.handler(first, lambda_context) == {
            "batchItemFailures": [{"itemIdentifier": record_["messageId"]}]
        }
        assert aws.queued() == {}
        monkeypatch.setattr(dependencies, "queue_starter", lambda: starter)

        # WHEN an admin redrives the DLQ (SQS re-sends it as the API function's role, with a new id)
        result = consume.handler(
            {**event, "Records": [_redriven(record_, "new-id-after-redrive")]}, lambda_context
        )

        # THEN it runs once, as its producer, under the id it was first sent with
        assert result == {"batchItemFailures": []}
        [(request_id, started)] = aws.queued().items()
        assert request_id == record_["messageId"]
        assert started["source"]["principal"] == "AROAQXZEXAMPLEROLEID1:claims-intake"
        assert started["source"]["reference"] == record_["messageId"]

    def test_a_redriven_message_with_no_known_sender_is_not_run(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REDRIVER_ROLE_IDS", API_ROLE_ID)
        event = load_event(BATCH)
        redriven = _redriven(event["Records"][0], "new-id-unknown")

        with pytest.raises(BatchProcessingError, match="RedriveUnattributed"):
            consume.handler({**event, "Records": [redriven]}, lambda_context)

        assert aws.queued() == {}

    def test_a_producer_naming_itself_like_a_redrive_is_still_itself(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another role's session called like the API's is not a redriver: only the role id counts.
        monkeypatch.setenv("REDRIVER_ROLE_IDS", API_ROLE_ID)
        event = load_event(BATCH)
        record_ = event["Records"][0]
        record_["attributes"]["SenderId"] = "AROAQXZEXAMPLEROLEID1:xpi-api"

        consume.handler({**event, "Records": [record_]}, lambda_context)

        assert aws.queued()["req-batch-0101"]["source"]["principal"] == "AROAQXZEXAMPLEROLEID1:xpi-api"


class _Unavailable:
    def start(self, batch: Any) -> list[str]:
        return [message_id for message_id, _ in batch]  # Step Functions unavailable: none started


class TestValidate:
    def test_the_state_carries_this_executions_token_for_the_final_lineage_write(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the input as the ASL passes it: the execution's name and start time
        event = {**load_event("validate/workflow-input.json"), "started_at": "2026-03-01T10:00:00.123Z"}

        # WHEN
        state = WorkflowState.model_validate(validate.handler(event, lambda_context))

        # THEN the token names this execution (a name alone is reused after 90 days)
        assert state.execution == "req-converse-0002@2026-03-01T10:00:00.123Z"

    def test_a_valid_request_becomes_the_workflow_state_with_its_claim(
        self, aws: XpiResources, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN
        monkeypatch.setenv("LINEAGE_RETENTION_DAYS", "400")
        event = load_event("validate/workflow-input.json")
        before = datetime.now(UTC)

        # WHEN
        result = validate.handler(event, lambda_context)

        # THEN
        state = WorkflowState.model_validate(result)
        assert state.request.request_id == event["execution"] == "req-converse-0002"
        request = aws.stored_request(event["payload"])
        assert state.request == RequestHeader.of(request)
        assert state.payload.key == event["payload"]["key"]
        assert state.payload.hmac == keyed_hash(TEST_HASH_KEY, payload_body(event))
        assert state.claim.request_hmac == keyed_canonical_hash(
            TEST_HASH_KEY, request.model_dump(mode="json")
        )
        assert "grant and a cooperative agreement" not in json.dumps(result)
        assert state.source.model_dump(mode="json", exclude_none=True) == event["source"]
        assert state.claim.request_id == "req-converse-0002"
        assert state.claim.caller_principal == "AROAQXZEXAMPLEROLEID1:claims-intake"
        expires = datetime.fromtimestamp(int(state.claim.expires_at), tz=UTC)
        assert (
            before + timedelta(days=400) - timedelta(seconds=1)
            <= expires
            <= datetime.now(UTC) + timedelta(days=400)
        )
        assert set(state.timings) == {"received_at", "validated_at"}
        assert json.loads(json.dumps(result)) == result  # what Step Functions can carry

    def test_the_execution_name_is_the_fallback_request_id(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = aws.change_request(load_event("validate/workflow-input.json"), remove=("request_id",))
        event["execution"] = "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a07"

        state = WorkflowState.model_validate(validate.handler(event, lambda_context))

        assert state.request.request_id == state.claim.request_id == "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a07"

    def test_an_invalid_request_raises_request_invalid(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = aws.change_request(
            load_event("validate/workflow-input.json"), prompt="both prompt and messages"
        )

        with raises_with_reason(RequestInvalid, "give exactly one of `messages` or `prompt`"):
            validate.handler(event, lambda_context)


class TestRoute:
    def test_the_sample_state_is_routed_with_the_default_routing(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the template's ROUTING_PARAMETER_NAME, with no such parameter in SSM
        assert "ROUTING_PARAMETER_NAME" in aws.environment()

        # WHEN
        result = route.handler(load_event("route/state.json"), lambda_context)

        # THEN
        state = WorkflowState.model_validate(result)
        assert state.route is not None
        assert state.route.model_dump(exclude_none=True) == {
            "model_id": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "region": "us-east-1",
            "endpoint": "https://bedrock-runtime.us-east-1.amazonaws.com",  # recorded in lineage as called
            "api": "converse",
        }
        assert "routed_at" in state.timings
        assert state.classification is not None  # earlier sections are carried along

    def test_region_and_endpoint_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
    ) -> None:
        monkeypatch.setenv("COMMERCIAL_REGION", "us-west-2")
        monkeypatch.setenv("COMMERCIAL_BEDROCK_ENDPOINT", "https://bedrock-runtime.vpce-0a1b.example")

        state = WorkflowState.model_validate(
            route.handler(state_event("route/state.json", model="fast"), lambda_context)
        )

        assert state.route is not None
        assert (state.route.model_id, state.route.region, state.route.endpoint) == (
            "us.amazon.nova-micro-v1:0",
            "us-west-2",
            "https://bedrock-runtime.vpce-0a1b.example",
        )

    def test_an_unknown_model_is_not_approved(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = state_event("route/state.json", model=sample_request("unknown-model")["model"])

        with pytest.raises(ModelNotApproved):
            route.handler(event, lambda_context)

    def test_routes_with_the_carried_snapshot_not_a_newer_parameter(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN an agency routing, put in SSM after the classify step recorded its snapshot, that lets
        # this caller use Nova only
        routing = {
            "version": "1",
            "aliases": {},
            "models": {"us.amazon.nova-lite-v1:0": {}, "us.anthropic.claude-3-5-haiku-20241022-v1:0": {}},
            "callers": [{"principal": "AROAQXZEXAMPLEROLEID1:*", "allow": ["us.amazon.*"]}],
        }
        aws.put_config("routing", routing)

        # WHEN
        state = WorkflowState.model_validate(route.handler(load_event("route/state.json"), lambda_context))

        # THEN the request is judged by the snapshot it carries
        assert state.route is not None
        assert state.route.model_id == "us.anthropic.claude-3-5-haiku-20241022-v1:0"

    def test_the_snapshot_decides(self, aws: XpiResources, lambda_context: FakeLambdaContext) -> None:
        # GIVEN a snapshot (as the classify step records it) that lets this caller use Nova only
        event = load_event("route/state.json")
        routing = load_default_routing().model_copy(
            update={"callers": [CallerRule(principal="AROAQXZEXAMPLEROLEID1:*", allow=["us.amazon.*"])]}
        )
        event["config"] = snapshot(load_default_policy(), routing).model_dump(mode="json")

        # WHEN / THEN
        with raises_with_reason(ModelNotAllowedForCaller, r"may not use model 'us\.anthropic\."):
            route.handler(event, lambda_context)

    def test_a_state_without_a_snapshot_is_refused(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = load_event("route/state.json")
        del event["config"]

        with pytest.raises(ConfigSnapshotInvalid):
            route.handler(event, lambda_context)


class TestInvoke:
    def test_the_response_joins_the_state(
        self, aws: XpiResources, bedrock: FakeBedrockGateway, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN
        event = load_event("invoke/state.json")

        # WHEN
        result = invoke.handler(event, lambda_context)

        # THEN
        state = WorkflowState.model_validate(result)
        assert state.response is not None
        assert state.response.output_text == "A short answer."
        assert state.response.output_sha256 == sha256_text("A short answer.")
        assert state.response.credential_version == bedrock.credential_version
        assert state.response.estimated_cost_usd == pytest.approx((120 * 0.0008 + 40 * 0.004) / 1000)
        assert "invoked_at" in state.timings
        [(called_route, called_request)] = bedrock.calls
        assert called_route.model_dump(exclude_none=True) == event["route"]
        assert called_request.request_id == "req-converse-0002"

    # The replayed result adds no token metrics, so Powertools notes that nothing is published.
    @pytest.mark.filterwarnings("ignore:No application metrics to publish")
    def test_a_retried_task_does_not_call_bedrock_twice(
        self, aws: XpiResources, bedrock: FakeBedrockGateway, lambda_context: FakeLambdaContext
    ) -> None:
        first = invoke.handler(load_event("invoke/state.json"), lambda_context)
        second = invoke.handler(load_event("invoke/state.json"), FakeLambdaContext())

        assert len(bedrock.calls) == 1
        assert second["response"] == first["response"]

    @pytest.mark.filterwarnings("ignore:Disabling idempotency is intended for development")
    def test_without_idempotency_every_call_reaches_bedrock(
        self,
        aws: XpiResources,
        bedrock: FakeBedrockGateway,
        lambda_context: FakeLambdaContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # GIVEN the control the test above relies on is switched off
        monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "true")

        invoke.handler(load_event("invoke/state.json"), lambda_context)
        invoke.handler(load_event("invoke/state.json"), lambda_context)

        assert len(bedrock.calls) == 2

    @pytest.mark.filterwarnings("ignore:No application metrics to publish")
    def test_throttling_raises_the_retryable_error_and_the_retry_calls_again(
        self, aws: XpiResources, bedrock: FakeBedrockGateway, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN Bedrock throttles the first attempt
        bedrock.error = BedrockThrottled("ThrottlingException: Too many requests")

        # WHEN / THEN the error name is what the ASL retries on
        with pytest.raises(BedrockThrottled):
            invoke.handler(load_event("invoke/state.json"), lambda_context)

        # AND the workflow's retry is not answered from the idempotency store
        bedrock.error = None
        result = invoke.handler(load_event("invoke/state.json"), lambda_context)
        assert len(bedrock.calls) == 2
        assert result["response"]["output_text"] == "A short answer."

    def test_an_attempt_that_finds_an_earlier_one_in_progress_raises_the_retried_error(
        self,
        aws: XpiResources,
        bedrock: FakeBedrockGateway,
        lambda_context: FakeLambdaContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # GIVEN an attempt is mid-call (as one killed after sending leaves its idempotency record)
        seen: list[Exception] = []
        answer = bedrock.answer

        def retried_meanwhile(route: Any, request: Any) -> Any:
            # WHEN the workflow's retry runs while the record is still in progress
            try:
                invoke.handler(load_event("invoke/state.json"), FakeLambdaContext())
            except Exception as error:
                seen.append(error)
            return answer(route, request)

        monkeypatch.setattr(bedrock, "answer", retried_meanwhile)
        first = invoke.handler(load_event("invoke/state.json"), lambda_context)

        # THEN the retry raises InvocationInProgress (retried by the workflow), not an InternalError
        # that would end the request FAILED, and makes no Bedrock call of its own
        assert [type(error) for error in seen] == [InvocationInProgress]
        assert len(bedrock.calls) == 1
        # AND once the first attempt has stored its answer, a retry returns it without a second call
        monkeypatch.setattr(bedrock, "answer", answer)
        again = invoke.handler(load_event("invoke/state.json"), FakeLambdaContext())
        assert again["response"] == first["response"]
        assert len(bedrock.calls) == 1

    def test_a_request_changed_since_classification_is_not_sent(
        self, aws: XpiResources, bedrock: FakeBedrockGateway, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the state refers to a request that differs from what the classify step hashed
        event = load_event("invoke/state.json")
        messages = aws.stored_request(event["payload"]).model_dump(mode="json", exclude_none=True)["messages"]
        messages[0]["content"][0]["text"] = "SSN 219-45-8832"
        event = aws.change_request(event, messages=messages)

        # WHEN / THEN the error name is what the workflow records (Inference Failed, lineage)
        with pytest.raises(ClassificationMismatch):
            invoke.handler(event, lambda_context)
        assert bedrock.calls == []

    def test_an_object_replaced_under_its_reference_is_not_sent(
        self, aws: XpiResources, bedrock: FakeBedrockGateway, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the object the state refers to was overwritten after the classify step
        event = load_event("invoke/state.json")
        ref = event["payload"]
        body = payload_body(event).replace(b"substantial involvement", b"substantial involvemenT")
        aws_helpers.s3().put_object(Bucket=ref["bucket"], Key=ref["key"], Body=body)

        # WHEN / THEN its keyed hash no longer matches the reference: nothing is sent
        with pytest.raises(PayloadMismatch):
            invoke.handler(event, lambda_context)
        assert bedrock.calls == []

    def test_a_large_output_is_stored_in_the_artifacts_bucket(
        self,
        aws: XpiResources,
        bedrock: FakeBedrockGateway,
        lambda_context: FakeLambdaContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("INLINE_OUTPUT_MAX_BYTES", "1024")
        bedrock.answer_text = "The agency reviews each stage. " * 100

        result = invoke.handler(load_event("invoke/state.json"), lambda_context)

        response = result["response"]
        assert "output_text" not in response
        assert response["output_s3_uri"] == f"s3://{aws.bucket}/outputs/req-converse-0002.txt"
        stored = aws_helpers.s3().get_object(Bucket=aws.bucket, Key="outputs/req-converse-0002.txt")
        body = stored["Body"].read()
        assert body == bedrock.answer_text.encode()
        assert response["output_sha256"] == sha256_text(body)
        assert response["output_bytes"] == len(body)


class TestRecord:
    @pytest.mark.parametrize(
        ("event_file", "detail_type", "status"),
        [
            ("record/state-completed.json", "Inference Completed", "COMPLETED"),
            ("record/state-failed.json", "Inference Failed", "FAILED"),
            ("record/state-blocked.json", "Inference Blocked", "BLOCKED"),
        ],
    )
    def test_lineage_becomes_final_and_the_outcome_is_shaped_for_the_asl(
        self,
        aws: XpiResources,
        lambda_context: FakeLambdaContext,
        event_file: str,
        detail_type: str,
        status: str,
    ) -> None:
        # GIVEN the Claim step's item
        event = load_event(event_file)
        aws.put_claim(WorkflowState.model_validate(event))

        # WHEN
        result = record.handler(event, lambda_context)

        # THEN
        outcome = result["outcome"]
        assert outcome["emit"] is True
        assert outcome["detail_type"] == detail_type
        assert outcome["detail"]["status"] == status
        item = aws.lineage_item(event["request"]["request_id"])
        assert item is not None and item["status"] == status
        assert item["created_at"] == event["claim"]["created_at"]
        # AND the event itself is left to the ASL's EmitResult state
        assert aws.subscriber_events() == []

    def test_failed_outcome_carries_the_code_and_its_fixed_message_not_bedrocks(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the Catch put Bedrock's own message in the cause (events/record/state-failed.json)
        result = record.handler(load_event("record/state-failed.json"), lambda_context)

        # THEN the event and the lineage item carry the code and its fixed message only
        expected = {"code": "BedrockRejected", "message": "commercial Bedrock rejected the request"}
        assert result["outcome"]["detail"]["error"] == expected
        item = aws.lineage_item(result["request"]["request_id"])
        assert item is not None and item["error"] == expected

    def test_a_second_record_does_not_emit(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = load_event("record/state-completed.json")
        aws.put_claim(WorkflowState.model_validate(event))
        record.handler(event, lambda_context)

        again = record.handler(load_event("record/state-completed.json"), lambda_context)

        assert again["outcome"]["emit"] is False

    def test_a_retry_after_a_crash_past_the_final_write_emits_the_result_once(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN this execution's RecordOutcome made the item final and crashed before returning
        event = {
            **load_event("record/state-completed.json"),
            "execution": "req-converse-0002@2026-03-01T10:00Z",
        }
        aws.put_claim(WorkflowState.model_validate(event))
        first = record.handler(event, lambda_context)
        item = aws.lineage_item("req-converse-0002")
        assert item is not None and item["recorded_by"] == event["execution"]

        # WHEN the workflow retries the step with the same input
        retried = record.handler(event, lambda_context)

        # THEN it finds the item final with its own outcome and emits it, with the stored completion time
        assert retried["outcome"]["emit"] is True
        detail, written = dict(retried["outcome"]["detail"]), dict(first["outcome"]["detail"])
        completed_at = datetime.fromisoformat(detail.pop("timings")["completed_at"])
        assert completed_at == datetime.fromisoformat(item["completed_at"])
        written.pop("timings")
        assert detail == written

    def test_a_late_duplicate_of_another_execution_does_not_emit(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN another execution made the item final
        event = load_event("record/state-completed.json")
        aws.put_claim(WorkflowState.model_validate(event))
        record.handler({**event, "execution": "req-converse-0002@2026-01-01T00:00Z"}, lambda_context)

        # WHEN this execution records
        late = record.handler({**event, "execution": "req-converse-0002@2026-03-01T10:00Z"}, lambda_context)

        # THEN it emits nothing
        assert late["outcome"]["emit"] is False

    def test_an_item_final_with_another_status_is_not_this_executions(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the item was made final FAILED under this token (say, by a writer that ended it early)
        event = {
            **load_event("record/state-completed.json"),
            "execution": "req-converse-0002@2026-03-01T10:00Z",
        }
        aws.put_claim(WorkflowState.model_validate(event))
        failed = {**load_event("record/state-failed.json"), "execution": event["execution"]}
        failed["request"] = event["request"]
        failed["claim"] = event["claim"]
        record.handler(failed, lambda_context)

        # WHEN / THEN a record of a COMPLETED outcome does not emit a second, different result
        assert record.handler(event, lambda_context)["outcome"]["emit"] is False

    def test_a_request_whose_bedrock_answer_was_lost_counts_the_unanswered_call(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN the invoke step ended on a read timeout (BedrockAnswerLost: not retried)
        event = load_event("record/state-failed.json")
        aws.put_claim(WorkflowState.model_validate(event))
        event["error"] = {
            "Error": "BedrockAnswerLost",
            "Cause": json.dumps({"errorType": "BedrockAnswerLost"}),
        }

        # WHEN
        result = record.handler(event, lambda_context)

        # THEN the caller sees BedrockUnavailable and lineage counts the possibly billed call
        assert result["outcome"]["detail"]["error"]["code"] == "BedrockUnavailable"
        item = aws.lineage_item(event["request"]["request_id"])
        assert item is not None and item["bedrock_calls_unanswered"] == 1

    def test_lineage_holds_hashes_not_payloads(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = load_event("record/state-completed.json")
        aws.put_claim(WorkflowState.model_validate(event))

        record.handler(event, lambda_context)

        item = aws.lineage_item("req-converse-0002")
        assert item is not None
        assert item["response_hmac"] == event["response"]["output_hmac"]
        assert "response_sha256" not in item and "request_sha256" not in item
        assert item["credential_version"] == event["response"]["credential_version"]
        stored = json.dumps(item, default=str)
        assert event["response"]["output_text"][:40] not in stored
        assert "cooperative agreement" not in stored


class TestRecordRejection:
    def test_a_rejected_input_is_answered_once(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # WHEN the RecordRejection state runs (twice: its Retry after a timeout, say)
        first = record_rejection.handler(load_event("record-rejection/rejected-input.json"), lambda_context)
        second = record_rejection.handler(load_event("record-rejection/rejected-input.json"), lambda_context)

        # THEN the producer gets exactly one Inference Failed event, published by the function itself
        [event] = aws.subscriber_events()
        assert event["detail-type"] == "Inference Failed"
        assert event["detail"]["request_id"] == "req-invalid-0007"
        assert event["detail"]["reply"] == {"ticket": "INC-66012"}
        assert event["detail"]["error"] == {
            "code": "RequestInvalid",
            "message": "the request is not a valid inference request",
        }
        # AND the ASL does not emit again
        assert (
            first["outcome"]
            == second["outcome"]
            == {
                "emit": False,
                "detail_type": "Inference Failed",
                "detail": {"request_id": "req-invalid-0007"},
            }
        )
        item = aws.lineage_item("req-invalid-0007")
        assert item is not None and item["status"] == "FAILED"
        assert item["error"]["code"] == "RequestInvalid"

    def test_a_platform_failure_of_validate_is_not_reported_as_an_invalid_request(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        # GIVEN Validate failed with Lambda.ServiceException through every retry: the request was never judged
        event = load_event("record-rejection/validate-failed.json")

        # WHEN
        result = record_rejection.handler(event, lambda_context)

        # THEN it is answered once as ValidationUnavailable, with that code's fixed message
        [published] = aws.subscriber_events()
        assert published["detail"]["error"] == {
            "code": "ValidationUnavailable",
            "message": "the request could not be validated for a platform reason; send it again",
        }
        assert result["outcome"]["emit"] is False
        item = aws.lineage_item("req-unvalidated-0008")
        assert item is not None and item["status"] == "FAILED"
        assert item["error"]["code"] == "ValidationUnavailable"

    def test_a_rejected_input_without_a_usable_id_is_answered_by_execution_name(
        self, aws: XpiResources, lambda_context: FakeLambdaContext
    ) -> None:
        event = load_event("record-rejection/rejected-input.json")
        event = aws.change_request(event, remove=("request_id", "model", "messages"))
        event["execution"] = "0b6e4d1c-8f2a-4c3b-9d5e-6a7b8c9d0e08"

        result = record_rejection.handler(event, lambda_context)

        assert result["outcome"]["detail"] == {"request_id": "0b6e4d1c-8f2a-4c3b-9d5e-6a7b8c9d0e08"}
        [published] = aws.subscriber_events()
        assert published["detail"]["request_id"] == "0b6e4d1c-8f2a-4c3b-9d5e-6a7b8c9d0e08"


class TestBatchStart:
    def test_an_upload_starts_its_batch_workflow_named_by_its_batch_id(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN the batch workflow (the inference one stands in: moto runs neither)
        monkeypatch.setenv("BATCH_STATE_MACHINE_ARN", aws.state_machine_arn)

        # WHEN the sample notification arrives, and is redelivered
        first = batch_start.handler(load_event("batch/start/sqs-s3-notification.json"), lambda_context)
        again = batch_start.handler(load_event("batch/start/sqs-s3-notification.json"), lambda_context)

        # THEN one execution, named by the batch id, with the batch as its input
        assert first == again == {"batchItemFailures": []}
        [(name, execution_input)] = aws.executions().items()
        assert name == execution_input["batch"]["batch_id"]
        assert (
            execution_input["batch"]["key"]
            == "incoming/AROAQXZEXAMPLEROLEID1:claims-intake/claims-2026-11-27.jsonl"
        )

    def test_a_body_that_is_not_a_notification_is_reported_as_a_failure(
        self, aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a batch of the sample notification and a body that is not one
        monkeypatch.setenv("BATCH_STATE_MACHINE_ARN", aws.state_machine_arn)
        event = load_event("batch/start/sqs-s3-notification.json")
        broken = {**event["Records"][0], "messageId": "0b6e4d1c-0000-4c3b-9d5e-6a7b8c9d0e01", "body": "{"}
        event["Records"].append(broken)

        # WHEN
        result = batch_start.handler(event, lambda_context)

        # THEN only that record returns (and reaches the DLQ after its retries); the upload starts
        assert result == {"batchItemFailures": [{"itemIdentifier": broken["messageId"]}]}
        assert len(aws.executions()) == 1
