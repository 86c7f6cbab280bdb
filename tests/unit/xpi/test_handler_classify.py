"""The classify step's handler with its events/ samples: the shipped classifier and policy, AWS in moto."""

import json

from xpi.domain.hashing import canonical_sha256
from xpi.domain.payload import outbound_hmac
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.handlers import classify
from xpi.models.workflow import WorkflowState

from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event
from tests.helpers.fakes import TEST_HASH_KEY


def classified(event_file: str, context: FakeLambdaContext) -> tuple[WorkflowState, str]:
    result = classify.handler(load_event(event_file), context)
    return WorkflowState.model_validate(result), json.dumps(result)


def test_a_clean_request_is_allowed_unchanged(aws: XpiResources, lambda_context: FakeLambdaContext) -> None:
    # GIVEN
    before = WorkflowState.model_validate(load_event("classify/state-allow.json"))

    # WHEN
    state, _ = classified("classify/state-allow.json", lambda_context)

    # THEN
    assert state.classification is not None
    assert state.classification.decision == "allow"
    assert state.classification.categories == {}
    assert state.classification.classifier == "xpi-rules/1"
    assert state.request == before.request
    assert "classified_at" in state.timings
    assert aws.subscriber_events() == []


def test_pii_is_redacted_in_a_copy_the_state_refers_to_and_nowhere_left_in_the_state(
    aws: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    before = WorkflowState.model_validate(load_event("classify/state-redact.json"))
    state, rendered = classified("classify/state-redact.json", lambda_context)

    assert state.classification is not None
    assert state.classification.decision == "redact"
    assert state.classification.categories == {"pii.ssn": 1, "pii.email": 1}
    assert state.classification.findings == 2
    assert state.payload.key != before.payload.key and state.payload.hmac
    redacted = aws.stored_request(state.payload)
    text = redacted.messages[0].content[0].text
    assert text is not None
    assert "Applicant SSN: [REDACTED:SSN]." in text
    assert "Reply to [REDACTED:EMAIL] and confirm" in text
    assert "123-45-6789" not in rendered
    assert "jordan.alvarez@example.com" not in rendered


def test_a_cui_banner_blocks(aws: XpiResources, lambda_context: FakeLambdaContext) -> None:
    state, _ = classified("classify/state-block.json", lambda_context)

    assert state.classification is not None
    assert state.classification.decision == "block"
    assert state.classification.categories == {"cui.banner": 2}
    assert state.classification.security_alert is False
    assert aws.subscriber_events() == []


def test_a_classified_marking_raises_a_security_alert_without_its_text(
    aws: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a request carrying a classified banner
    event = aws.change_request(
        load_event("classify/state-allow.json"),
        system=["SECRET//NOFORN\n\nOperational summary follows.\n\nSECRET//NOFORN"],
    )

    # WHEN
    result = classify.handler(event, lambda_context)

    # THEN it is blocked, and security is told who sent what kind of content
    assert result["classification"]["decision"] == "block"
    [alert] = aws.subscriber_events()
    assert alert["detail-type"] == "Security Alert"
    assert alert["detail"] == {
        "version": "1",
        "request_id": "req-converse-0002",
        "caller_principal": "AROAQXZEXAMPLEROLEID1:claims-intake",
        "source": "sqs",
        "categories": {"classified.banner": 2},
        "decision": "block",
    }
    assert "Operational summary" not in json.dumps(alert)


def test_a_policy_in_ssm_applies_per_resolved_model(
    aws: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an agency policy that lets ECCN notices go to US inference profiles ("us.*")
    policy = load_default_policy().model_dump(mode="json")
    policy["model_rules"] = [
        {"name": "eccn-to-us-profiles", "models": ["us.*"], "categories": ["export.eccn"], "action": "allow"}
    ]
    aws.put_config("policy", policy)

    # WHEN the request asks for the "default" alias (us.amazon.nova-lite-v1:0)
    event = aws.change_request(
        load_event("classify/state-block.json"), prompt="ECCN 3A001.a.2 applies to the attached drawings."
    )
    state = WorkflowState.model_validate(classify.handler(event, lambda_context))

    # THEN the rule matched the resolved model id, not the alias
    assert state.request.model == "default"
    assert state.classification is not None
    assert state.classification.decision == "allow"
    assert any("eccn-to-us-profiles" in reason for reason in state.classification.reasons)


def test_the_configuration_read_here_is_carried_for_route_and_invoke(
    aws: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an agency routing document in SSM
    routing = load_default_routing().model_dump(mode="json")
    routing["aliases"]["default"] = "us.amazon.nova-micro-v1:0"
    aws.put_config("routing", routing)

    # WHEN
    state, _ = classified("classify/state-redact.json", lambda_context)

    # THEN the state carries that document and the hash of exactly what will be sent (after redaction)
    assert state.config is not None
    assert state.config.routing == routing
    assert state.config.policy_sha256 == canonical_sha256(load_default_policy().model_dump(mode="json"))
    assert state.classification is not None
    assert state.classification.payload_hmac == outbound_hmac(
        aws.stored_request(state.payload), TEST_HASH_KEY
    )
