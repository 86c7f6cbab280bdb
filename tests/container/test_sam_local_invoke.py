"""Every function of template.yaml under `sam local invoke`, with its sample event from events/, against
a running local stack (moto for the AWS APIs, the emulator for commercial Bedrock).

The containers reach the stack over loopback and unix sockets only (see conftest.stack_invoke). A sample
whose result depends on lineage or idempotency state is sent as a copy with a fresh request id, so the
tests do not depend on their order or on earlier runs.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]

from tests.container.conftest import REPO, StackInvoke, local_invoke

pytestmark = pytest.mark.container

EVENTS = REPO / "events"
# The sample event(s) each test below runs: a function added to the template needs a line here.
SAMPLES = {
    "ConsumeRequestsFunction": ["consume/sqs-batch.json"],
    "ValidateFunction": ["validate/workflow-input.json"],
    "ClassifyFunction": [
        "classify/state-allow.json",
        "classify/state-redact.json",
        "classify/state-block.json",
    ],
    "RouteFunction": ["route/state.json"],
    "InvokeModelFunction": ["invoke/state.json"],
    "RecordOutcomeFunction": [
        "record/state-completed.json",
        "record/state-blocked.json",
        "record/state-failed.json",
        "record/rejected-input.json",
    ],
    "ApiFunction": ["api/models.json", "api/submit.json"],
}


# The S3 batch functions (issue 6) are exercised by tests/integration/test_batch.py on the local stack;
# their sam local invoke tests are still to be written (each needs its batch's S3 objects and task token).
NOT_YET_HERE = {
    "BatchStartFunction",
    "BatchSplitFunction",
    "BatchReleaseFunction",
    "BatchProgressFunction",
    "BatchAssembleFunction",
}


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def fresh_id(label: str) -> str:
    return f"ct-{label}-{uuid.uuid4().hex[:12]}"


def for_request(state: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A copy of a workflow state (or workflow input) for another request id."""
    state = copy.deepcopy(state)
    state["request"]["request_id"] = request_id
    if "claim" in state:
        state["claim"]["request_id"] = request_id
    if "execution" in state:
        state["execution"] = request_id
    return state


def lineage(stack_invoke: StackInvoke, request_id: str) -> dict[str, Any] | None:
    table = stack_invoke.state["outputs"]["LineageTableName"]
    item = stack_invoke.aws("dynamodb").get_item(
        TableName=table, Key={"request_id": {"S": request_id}}, ConsistentRead=True
    )
    return item.get("Item")


def test_every_function_of_the_template_has_a_sample_here(stack_invoke: StackInvoke) -> None:
    template = yaml_parse((REPO / "template.yaml").read_text())  # as SAM reads it (!Ref and the like)
    in_template = set(local_invoke.function_ids(template))
    assert not in_template - set(SAMPLES) - NOT_YET_HERE, "functions without a sam local invoke test here"
    assert not set(SAMPLES) - in_template, "tests here for functions the template no longer has"
    assert set(SAMPLES) <= set(stack_invoke.functions), "the build lacks functions: run `make build`"
    for names in SAMPLES.values():
        for name in names:
            assert (EVENTS / name).is_file(), name


def test_consume_starts_the_valid_requests_and_reports_only_the_malformed_record(
    stack_invoke: StackInvoke,
) -> None:
    # GIVEN the sample batch, with fresh request ids in its bodies
    event = sample("consume/sqs-batch.json")
    request_ids = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        body["request_id"] = fresh_id("consume")
        request_ids.append(body["request_id"])
        record["body"] = json.dumps(body)
    malformed = event["Records"][2]

    # WHEN
    result = stack_invoke("ConsumeRequestsFunction", event)

    # THEN exactly the malformed record (no model, unknown field) comes back for a retry
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": malformed["messageId"]}]}, (
        result.stderr
    )
    # the two valid ones started their workflow in the local stack (execution name = request id)
    executions = stack_invoke.state["outputs"]["StateMachineArn"].replace(":stateMachine:", ":execution:")
    stepfunctions = stack_invoke.aws("stepfunctions")
    for request_id in request_ids[:2]:
        described = stepfunctions.describe_execution(executionArn=f"{executions}:{request_id}")
        assert described["status"] in {"RUNNING", "SUCCEEDED"}
    # and the malformed one was answered once: a FAILED lineage item
    item = lineage(stack_invoke, request_ids[2])
    assert item is not None
    assert item["status"] == {"S": "FAILED"}


def test_validate_returns_a_claim_for_the_request(stack_invoke: StackInvoke) -> None:
    event = sample("validate/workflow-input.json")

    result = stack_invoke("ValidateFunction", event)

    assert not result.is_error, result.payload
    claim = result.payload["claim"]
    assert claim["request_id"] == event["request"]["request_id"] == result.payload["request"]["request_id"]
    assert claim["caller_principal"] == event["source"]["principal"]
    assert re.fullmatch(r"[0-9a-f]{64}", claim["request_sha256"])
    assert "validated_at" in result.payload["timings"]


@pytest.mark.parametrize(
    ("name", "decision"),
    [
        ("classify/state-allow.json", "allow"),
        ("classify/state-redact.json", "redact"),
        ("classify/state-block.json", "block"),
    ],
)
def test_classify_decides_by_the_policy(stack_invoke: StackInvoke, name: str, decision: str) -> None:
    result = stack_invoke("ClassifyFunction", sample(name))

    assert not result.is_error, result.payload
    classification = result.payload["classification"]
    assert classification["decision"] == decision
    if decision == "redact":
        sent = json.dumps(result.payload["request"])
        assert "123-45-6789" not in sent
        assert "jordan.alvarez@example.com" not in sent
    if decision == "block":
        assert classification["categories"] == {"cui.banner": 2}


def test_route_resolves_the_model_and_the_local_bedrock_endpoint(stack_invoke: StackInvoke) -> None:
    event = sample("route/state.json")

    result = stack_invoke("RouteFunction", event)

    assert not result.is_error, result.payload
    assert result.payload["route"] == {
        "model_id": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "region": "us-east-1",
        # COMMERCIAL_BEDROCK_ENDPOINT from --env-vars: the emulator, through the container's relay
        "endpoint": local_invoke.CONTAINER_BEDROCK_URL,
        "api": "converse",
    }


def test_invoke_gets_an_answer_from_the_emulator(stack_invoke: StackInvoke) -> None:
    # GIVEN the sample state, for a request id the idempotency table has not seen
    from xpi_tools.emulator.client import EmulatorControl

    event = for_request(sample("invoke/state.json"), fresh_id("invoke"))
    emulator = EmulatorControl(stack_invoke.state["emulator_control"])
    successes_before = emulator.counters().totals.successes
    secret = stack_invoke.aws("secretsmanager").get_secret_value(
        SecretId=stack_invoke.state["outputs"]["CommercialCredentialsSecretArn"]
    )

    # WHEN
    result = stack_invoke("InvokeModelFunction", event)

    # THEN the emulator answered, signed with the keys of the stack's secret (its current version)
    assert not result.is_error, result.payload
    response = result.payload["response"]
    assert response["usage"]["input_tokens"] > 0
    assert response["usage"]["output_tokens"] > 0
    assert response["output_text"]
    assert response["credential_version"] == secret["VersionId"]
    assert emulator.counters().totals.successes > successes_before


def test_record_emits_once_for_a_fresh_request(stack_invoke: StackInvoke) -> None:
    event = for_request(sample("record/state-completed.json"), fresh_id("record"))

    first = stack_invoke("RecordOutcomeFunction", event)
    again = stack_invoke("RecordOutcomeFunction", event)

    assert not first.is_error, first.payload
    assert first.payload["outcome"]["emit"] is True
    assert first.payload["outcome"]["detail_type"] == "Inference Completed"
    item = lineage(stack_invoke, event["request"]["request_id"])
    assert item is not None
    assert item["status"] == {"S": "COMPLETED"}
    # A late duplicate finds lineage final: no second result event.
    assert again.payload["outcome"]["emit"] is False


@pytest.mark.parametrize(
    ("name", "detail_type", "status"),
    [
        ("record/state-blocked.json", "Inference Blocked", "BLOCKED"),
        ("record/state-failed.json", "Inference Failed", "FAILED"),
    ],
)
def test_record_final_states(stack_invoke: StackInvoke, name: str, detail_type: str, status: str) -> None:
    event = for_request(sample(name), fresh_id("record"))

    result = stack_invoke("RecordOutcomeFunction", event)

    assert not result.is_error, result.payload
    assert result.payload["outcome"]["emit"] is True
    assert result.payload["outcome"]["detail_type"] == detail_type
    item = lineage(stack_invoke, event["request"]["request_id"])
    assert item is not None
    assert item["status"] == {"S": status}


def test_record_answers_a_rejected_input_itself(stack_invoke: StackInvoke) -> None:
    event = for_request(sample("record/rejected-input.json"), fresh_id("rejected"))

    result = stack_invoke("RecordOutcomeFunction", event)

    # The rejection's event is published by the function (guarded by lineage), not by the ASL.
    assert not result.is_error, result.payload
    assert result.payload["outcome"]["emit"] is False
    item = lineage(stack_invoke, event["request"]["request_id"])
    assert item is not None
    assert item["status"] == {"S": "FAILED"}


def test_api_answers_the_models_route_for_the_signed_caller(stack_invoke: StackInvoke) -> None:
    result = stack_invoke("ApiFunction", sample("api/models.json"))

    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 200
    body = json.loads(result.payload["body"])
    assert "us.amazon.nova-lite-v1:0" in body["models"]
    assert body["principal"] == sample("api/models.json")["requestContext"]["identity"]["userArn"]


def test_api_submit_starts_a_workflow_for_the_caller(stack_invoke: StackInvoke) -> None:
    event = sample("api/submit.json")
    request = json.loads(event["body"])
    request["request_id"] = fresh_id("api")
    event["body"] = json.dumps(request)

    result = stack_invoke("ApiFunction", event)

    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 202, result.payload
    assert json.loads(result.payload["body"])["request_id"] == request["request_id"]
