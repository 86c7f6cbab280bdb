"""The end of every request: final status, error description, result event detail, lineage item."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import MESSAGES
from xpi.domain.hashing import canonical_sha256
from xpi.domain.inspection import segments_with_paths
from xpi.domain.outcome import (
    describe_error,
    detail_type,
    final_status,
    lineage_item,
    rejection_error,
    result_detail,
)
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.models.events import ResultDetail
from xpi.models.workflow import Classification, ModelResponse, StepError, WorkflowState
from xpi.services.routing import snapshot

from tests.helpers.events import make_state, request_of, sample_request, state_from_event

COMPLETED_AT = datetime(2025, 3, 12, 14, 7, 5, 402000, tzinfo=UTC)


def stored_attributes(state: WorkflowState) -> dict[str, Any]:
    """The final lineage item's attributes as DynamoLineageStore writes them (None left out)."""
    return lineage_item(state, result_detail(state, completed_at=COMPLETED_AT)).model_dump(exclude_none=True)


def response() -> ModelResponse:
    return ModelResponse(
        output_text="ok",
        output_bytes=2,
        output_sha256="ab" * 32,
        output_hmac="cd" * 32,
        credential_version="v1",
    )


def classification(decision: str) -> Classification:
    return Classification.model_validate({"decision": decision, "classifier": "xpi-rules/1"})


class TestFinalStatus:
    def test_a_response_completes(self) -> None:
        assert final_status(make_state(response=response())) == "COMPLETED"

    def test_a_block_decision_blocks(self) -> None:
        assert final_status(make_state(classification=classification("block"))) == "BLOCKED"

    def test_an_error_fails_even_after_a_response(self) -> None:
        state = make_state(response=response(), error=StepError(Error="States.Timeout"))

        assert final_status(state) == "FAILED"

    def test_an_error_wins_over_a_block(self) -> None:
        state = make_state(classification=classification("block"), error=StepError(Error="X"))

        assert final_status(state) == "FAILED"

    def test_no_response_and_no_error_is_a_failure(self) -> None:
        assert final_status(make_state(classification=classification("allow"))) == "FAILED"

    @pytest.mark.parametrize(
        ("event", "status"),
        [
            ("record/state-completed.json", "COMPLETED"),
            ("record/state-failed.json", "FAILED"),
            ("record/state-blocked.json", "BLOCKED"),
        ],
    )
    def test_sample_states(self, event: str, status: str) -> None:
        assert final_status(state_from_event(event)) == status


class TestDescribeError:
    def test_a_state_over_the_payload_limit_fails_as_payload_limit_exceeded(self) -> None:
        # GIVEN what a Catch of States.DataLimitExceeded leaves at $.error
        error = StepError(
            Error="States.DataLimitExceeded",
            Cause="The state/task 'RecordOutcome' returned a result with a size exceeding the maximum number "
            "of bytes service limit.",
        )
        state = make_state(error=error)

        # WHEN / THEN the request fails with a fixed code and message, lineage and one event
        assert describe_error(error) == (
            "PayloadLimitExceeded",
            MESSAGES["PayloadLimitExceeded"],
        )
        detail = result_detail(state, completed_at=COMPLETED_AT)
        assert detail.status == "FAILED"
        assert detail.error is not None and detail.error.code == "PayloadLimitExceeded"
        assert lineage_item(state, detail).error is not None

    def test_a_lambda_cause_gives_its_error_message(self) -> None:
        error = StepError(
            Error="BedrockRejected",
            Cause=json.dumps(
                {
                    "errorMessage": "ValidationException: Input is too long for requested model.",
                    "errorType": "BedrockRejected",
                    "requestId": "3f1c9a7e-2b4d-4e6f-8a0b-1c2d3e4f5a6b",
                    "stackTrace": ['  File "/var/task/xpi/adapters/bedrock.py", line 142'],
                }
            ),
        )

        # THEN only the code's fixed message: Bedrock's text never goes on
        assert describe_error(error) == ("BedrockRejected", "commercial Bedrock rejected the request")

    def test_a_bedrock_error_keeps_bedrocks_code_from_its_fixed_rendering(self) -> None:
        cause = json.dumps({"errorMessage": "commercial Bedrock rejected the request (ValidationException)"})

        assert describe_error(StepError(Error="BedrockRejected", Cause=cause)) == (
            "BedrockRejected",
            "commercial Bedrock rejected the request (ValidationException)",
        )

    def test_a_pydantic_error_from_a_crashed_step_is_an_internal_error_without_its_text(self) -> None:
        # GIVEN a step crashed with pydantic's error, which quotes its input
        cause = json.dumps(
            {
                "errorMessage": "1 validation error for InferenceRequest\nprompt\n  String should have at "
                "most 150000 characters [type=string_too_long, input_value='Mail alice@example.com', "
                "input_type=str]",
                "errorType": "ValidationError",
            }
        )

        code, message = describe_error(StepError(Error="ValidationError", Cause=cause))

        assert (code, message) == ("InternalError", "an internal error occurred")

    def test_a_plain_text_cause_is_not_copied(self) -> None:
        error = StepError(Error="States.Timeout", Cause="Task timed out after 180.00 seconds")

        assert describe_error(error) == ("States.Timeout", "a workflow step timed out")

    def test_no_cause_gives_the_codes_message(self) -> None:
        assert describe_error(StepError(Error="States.TaskFailed")) == (
            "States.TaskFailed",
            "a workflow step failed",
        )

    @pytest.mark.parametrize(
        "cause",
        [
            '{"message": "no errorMessage key"}',
            '["a list"]',
            '{"errorMessage": 5}',
            json.dumps(
                {"errorMessage": f"{MESSAGES['BedrockRejected']} (ValidationException) alice@example.com"}
            ),
        ],
    )
    def test_a_cause_that_is_not_a_fixed_rendering_gives_the_fixed_message(self, cause: str) -> None:
        assert describe_error(StepError(Error="BedrockRejected", Cause=cause)) == (
            "BedrockRejected",
            "commercial Bedrock rejected the request",
        )


class TestResultDetail:
    def test_completed(self) -> None:
        # GIVEN the state the invoke step hands to Record
        state = state_from_event("record/state-completed.json")

        # WHEN
        detail = result_detail(state, completed_at=COMPLETED_AT)

        # THEN
        assert detail_type(detail) == "Inference Completed"
        assert detail.status == "COMPLETED"
        assert detail.request_id == detail.lineage_key == "req-converse-0002"
        assert detail.source == "sqs"
        assert detail.source_reference == state.source.reference
        assert detail.caller.principal == state.source.principal
        assert detail.caller.project == "grants-portal"
        assert detail.caller.cost_centre == "CC-2207"
        assert detail.model.requested == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        assert detail.model.resolved == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        assert detail.usage is not None and detail.usage.billing is None  # an on-demand answer
        assert detail.model.region == "us-east-1"
        assert detail.output is not None and state.response is not None
        assert detail.output.text == state.response.output_text
        assert detail.output.sha256 == state.response.output_sha256
        assert detail.output.bytes == state.response.output_bytes
        assert detail.output.stop_reason == "end_turn"
        assert detail.usage is not None
        assert (detail.usage.input_tokens, detail.usage.output_tokens) == (118, 52)
        assert detail.usage.estimated_cost_usd == state.response.estimated_cost_usd
        assert detail.classification is not None and detail.classification.decision == "allow"
        assert detail.error is None
        assert detail.reply == {"thread": "conv-5531", "callback_queue": "grants-portal-results"}
        assert detail.timings == {**state.timings, "completed_at": COMPLETED_AT}

    def test_failed(self) -> None:
        state = state_from_event("record/state-failed.json")

        detail = result_detail(state, completed_at=COMPLETED_AT)

        assert detail_type(detail) == "Inference Failed"
        assert detail.status == "FAILED"
        assert detail.error is not None
        assert detail.error.code == "BedrockRejected"
        assert detail.error.message == "commercial Bedrock rejected the request"
        assert detail.output is None and detail.usage is None
        assert (
            detail.model.resolved == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        )  # it got as far as routing
        assert detail.reply == {"thread": "conv-5531", "callback_queue": "grants-portal-results"}

    def test_failed_after_a_response_keeps_usage_but_not_output(self) -> None:
        state = make_state(response=response(), error=StepError(Error="States.Timeout"))

        detail = result_detail(state, completed_at=COMPLETED_AT)

        assert detail.output is None
        assert detail.usage is not None

    def test_blocked(self) -> None:
        state = state_from_event("record/state-blocked.json")

        detail = result_detail(state, completed_at=COMPLETED_AT)

        assert detail_type(detail) == "Inference Blocked"
        assert detail.status == "BLOCKED"
        assert detail.classification is not None
        assert detail.classification.decision == "block"
        assert detail.classification.categories == {"cui.banner": 2}
        assert detail.error is None and detail.output is None and detail.usage is None
        assert detail.model.resolved is None

    def test_a_workflow_that_ended_without_a_response_says_so(self) -> None:
        detail = result_detail(make_state(classification=classification("allow")), completed_at=COMPLETED_AT)

        assert detail.status == "FAILED"
        assert detail.error is not None
        assert (detail.error.code, detail.error.message) == (
            "Incomplete",
            "the workflow ended without a model response",
        )

    def test_the_detail_is_valid_against_its_own_schema_after_a_json_round_trip(self) -> None:
        detail = result_detail(state_from_event("record/state-completed.json"), completed_at=COMPLETED_AT)

        assert ResultDetail.model_validate_json(detail.model_dump_json(exclude_none=True)) == detail


class TestLineageItem:
    @pytest.mark.parametrize(
        "event", ["record/state-completed.json", "record/state-failed.json", "record/state-blocked.json"]
    )
    def test_never_contain_request_or_response_text(self, event: str) -> None:
        # GIVEN every text the request carries, and the model's answer
        state = state_from_event(event)
        texts = [segment.text for _, segment in segments_with_paths(request_of(state)) if segment.text]
        if state.response and state.response.output_text:
            texts.append(state.response.output_text)
        assert texts

        # WHEN
        attributes = stored_attributes(state)

        # THEN none of it, nor a recognisable piece of it, is in the lineage item
        stored = json.dumps(attributes)
        for text in texts:
            for line in filter(None, (part.strip() for part in text.splitlines())):
                if len(line) > 8:
                    assert line[:40] not in stored

    def test_the_lineage_item_names_the_policy_and_routing_versions_it_was_judged_under(self) -> None:
        # GIVEN a request classified under policy revision 3 and the shipped routing
        policy = load_default_policy()
        routing = load_default_routing()
        versions = (
            ConfigVersion(kind="policy", revision=3, sha256="p" * 64, source="signed"),
            ConfigVersion(kind="routing", revision=0, sha256="r" * 64, source="default"),
        )
        state = make_state(classification=classification("allow"), config=snapshot(policy, routing, versions))

        # WHEN / THEN its lineage item records both revisions and hashes
        attributes = stored_attributes(state)
        assert (attributes["policy_revision"], attributes["routing_revision"]) == (3, 0)
        assert attributes["policy_sha256"] == canonical_sha256(policy.model_dump(mode="json"))
        assert attributes["routing_sha256"] == canonical_sha256(routing.model_dump(mode="json"))
        assert attributes["config_fallback"] is False

    def test_pii_sample_leaves_no_pii_in_lineage(self) -> None:
        state = make_state(sample_request("pii-redact"), classification=classification("redact"))

        stored = json.dumps(stored_attributes(state))

        assert "123-45-6789" not in stored
        assert "jordan.alvarez@example.com" not in stored

    def test_completed_attributes(self) -> None:
        state = state_from_event("record/state-completed.json")
        assert state.response is not None

        attributes = stored_attributes(state)

        assert attributes["status"] == "COMPLETED"
        assert attributes["request_hmac"] == state.claim.request_hmac
        assert attributes["response_hmac"] == state.response.output_hmac
        assert attributes["response_bytes"] == state.response.output_bytes
        assert attributes["credential_version"] == "7d4e1b2a-9c3f-4e5d-8a6b-0f1e2d3c4b5a"
        assert attributes["model_id"] == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        assert attributes["commercial_region"] == "us-east-1"
        assert attributes["usage"] == {"input_tokens": 118, "output_tokens": 52}
        assert attributes["estimated_cost_usd"] == str(
            state.response.estimated_cost_usd
        )  # DynamoDB: no floats
        assert attributes["classification"]["decision"] == "allow"
        assert attributes["completed_at"] == "2025-03-12T14:07:05.402+00:00"
        assert list(attributes["steps"]) == [
            "received_at",
            "validated_at",
            "classified_at",
            "routed_at",
            "invoked_at",
            "completed_at",
        ]
        assert "error" not in attributes

    def test_failed_attributes_carry_the_error_and_no_none_values(self) -> None:
        state = state_from_event("record/state-failed.json")

        attributes = stored_attributes(state)

        assert attributes["status"] == "FAILED"
        assert attributes["error"]["code"] == "BedrockRejected"
        assert None not in attributes.values()
        assert "response_hmac" not in attributes
        assert "batch_id" not in attributes

    def test_no_float_reaches_dynamodb(self) -> None:
        state: WorkflowState = state_from_event("record/state-completed.json")

        attributes = stored_attributes(state)

        def floats(value: object) -> list[float]:
            if isinstance(value, float):
                return [value]
            if isinstance(value, dict):
                return [f for item in value.values() for f in floats(item)]
            if isinstance(value, list):
                return [f for item in value for f in floats(item)]
            return []

        assert floats(attributes) == []


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        # Validate's own verdict: the request is invalid
        (
            StepError(Error="RequestInvalid", Cause=json.dumps({"errorMessage": "request: prompt is empty"})),
            "RequestInvalid",
            "the request is not a valid inference request",
        ),
        # the platform failed before the request was judged: never RequestInvalid
        (StepError(Error="States.Timeout"), "ValidationUnavailable", MESSAGES["ValidationUnavailable"]),
        (
            StepError(Error="Lambda.ServiceException", Cause="Lambda.ServiceException: internal error"),
            "ValidationUnavailable",
            MESSAGES["ValidationUnavailable"],
        ),
        (
            StepError(
                Error="Runtime.ExitError", Cause=json.dumps({"errorMessage": "exited with status 137"})
            ),
            "ValidationUnavailable",
            MESSAGES["ValidationUnavailable"],
        ),
    ],
)
def test_a_rejection_is_invalid_only_when_validate_judged_it_so(
    error: StepError, code: str, message: str
) -> None:
    rejection = rejection_error(error)

    assert (rejection.code, rejection.message) == (code, message)
