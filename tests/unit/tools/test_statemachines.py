"""statemachines/*.asl.json: generated from statemachines/workflows.yaml and in step with it, and what
each Lambda task of them promises about the function it calls in template.yaml."""

import json
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]
from xpi.domain.errors import RequestInvalid, ValidationUnavailable
from xpi_tools import statemachines

from tests.helpers.events import REPO

TEMPLATE: dict[str, Any] = yaml_parse((REPO / "template.yaml").read_text(encoding="utf-8"))
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Lambda runs a function's init phase (up to 10 s) before, and outside, the invoke its Timeout limits.
LAMBDA_INIT_MAX_S = 10
LAMBDA_DEFAULT_TIMEOUT_S = 3


STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")


def definition_file(properties: dict[str, Any]) -> str:
    """The local definition file of a state machine (SAM's DefinitionUri or CloudFormation's
    DefinitionS3Location, both packaged by `sam build`)."""
    location = properties.get("DefinitionUri", properties.get("DefinitionS3Location"))
    assert isinstance(location, str), properties
    return location


def deployed_state_machines() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """{logical id: (definition as deployed, DefinitionSubstitutions)} of every state machine."""
    machines = {}
    for logical_id, resource in TEMPLATE["Resources"].items():
        if resource["Type"] in STATE_MACHINE_TYPES:
            properties = resource["Properties"]
            definition = json.loads((REPO / definition_file(properties)).read_text(encoding="utf-8"))
            machines[logical_id] = (definition, properties.get("DefinitionSubstitutions", {}))
    return machines


def lambda_tasks() -> list[tuple[str, str, dict[str, Any], str]]:
    """(state machine, state name, state, function logical id) of every task that invokes a function."""
    tasks = []
    for machine, (definition, substitutions) in deployed_state_machines().items():
        for name, state in definition["States"].items():
            if state["Type"] != "Task":
                continue
            resource = state["Resource"]
            if resource.startswith("arn:${Partition}:states:::lambda:invoke"):
                resource = state["Parameters"]["FunctionName"]
            if not (resource.startswith("${") and resource.endswith("FunctionArn}")):
                continue  # a service integration (DynamoDB, EventBridge)
            function, attribute = substitutions[resource[2:-1]]["Fn::GetAtt"]
            assert attribute == "Arn", (machine, name)
            tasks.append((machine, name, state, function))
    return tasks


def function_timeout(function: str) -> int:
    properties = TEMPLATE["Resources"][function]["Properties"]
    default = TEMPLATE.get("Globals", {}).get("Function", {}).get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S)
    return int(properties.get("Timeout", default))


def test_the_deployed_definitions_are_generated_from_their_source() -> None:
    # A change to statemachines/*.asl.json is made in statemachines/workflows.yaml, then regenerated.
    assert statemachines.main(["--check"]) == 0


def test_every_source_definition_is_deployed() -> None:
    deployed = {
        Path(definition_file(resource["Properties"])).name
        for resource in TEMPLATE["Resources"].values()
        if resource["Type"] in STATE_MACHINE_TYPES
    }

    assert deployed == {f"{name}.asl.json" for name in statemachines.definitions()}


def test_the_tasks_are_found() -> None:
    found = {(machine, name): function for machine, name, _, function in lambda_tasks()}

    assert found[("InferenceStateMachine", "InvokeModel")] == "InvokeModelFunction"
    assert found[("InferenceStateMachine", "RecordRejection")] == "RecordRejectionFunction"
    assert found[("BatchStateMachine", "AwaitLines")] == "BatchReleaseFunction"
    assert found[("BatchStateMachine", "RecordFailure")] == "BatchRecordFailureFunction"


LAMBDA_TASKS = [pytest.param(*task, id=f"{task[0]}.{task[1]}") for task in lambda_tasks()]


@pytest.mark.parametrize(("machine", "name", "state", "function"), LAMBDA_TASKS)
def test_a_lambda_task_outlasts_its_function(
    machine: str, name: str, state: dict[str, Any], function: str
) -> None:
    # The function's own Timeout must end an invocation before the task's TimeoutSeconds does. Step
    # Functions does not stop a Lambda invocation when the task times out: the invocation runs on while
    # the Retry starts another (for InvokeModel, a second paid Bedrock call racing the first) or the
    # Catch records an outcome the first may still contradict. The function's Timeout is what stops the
    # code, so it comes first (with room for the init phase, which it does not count); the task's timeout
    # is the backstop for an invocation Lambda itself never answers (States.Timeout).
    assert function_timeout(function) + LAMBDA_INIT_MAX_S <= state["TimeoutSeconds"], (
        f"{machine}.{name}: {function} Timeout {function_timeout(function)} s, "
        f"task TimeoutSeconds {state['TimeoutSeconds']} s"
    )


@pytest.mark.parametrize(("machine", "name", "state", "function"), LAMBDA_TASKS)
def test_a_lambda_task_retries_lambdas_transient_faults(
    machine: str, name: str, state: dict[str, Any], function: str
) -> None:
    retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}

    assert "States.ALL" in retried or retried >= LAMBDA_SERVICE_ERRORS, f"{machine}.{name}"


def test_validate_reports_a_platform_failure_apart_from_an_invalid_request() -> None:
    # GIVEN the inference workflow's way from Validate's Catch
    definition, _ = deployed_state_machines()["InferenceStateMachine"]
    states = definition["States"]
    *_, catch = states["Validate"]["Catch"]
    record = states[catch["Next"]]
    choice = states[record["Next"]]

    # THEN only Validate's own verdict ends as RequestInvalid; anything else as ValidationUnavailable
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
    [judged] = choice["Choices"]
    assert (judged["Variable"], judged["StringEquals"]) == ("$.error.Error", RequestInvalid.code)
    invalid, not_validated = states[judged["Next"]], states[choice["Default"]]
    assert (invalid["Type"], invalid["Error"]) == ("Fail", RequestInvalid.code)
    assert (not_validated["Type"], not_validated["Error"]) == ("Fail", ValidationUnavailable.code)


def all_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    """(state machine, state name, state) of every Task, Lambda or service integration."""
    return [
        (machine, name, state)
        for machine, (definition, _) in deployed_state_machines().items()
        for name, state in definition["States"].items()
        if state["Type"] == "Task"
    ]


@pytest.mark.parametrize(
    ("machine", "name", "state"),
    [pytest.param(*task, id=f"{task[0]}.{task[1]}") for task in all_tasks() if task[2].get("Catch")],
)
def test_a_state_over_the_payload_limit_is_caught_where_everything_else_is(
    machine: str, name: str, state: dict[str, Any]
) -> None:
    # States.ALL does not catch States.DataLimitExceeded (a state over 256 KiB): a task that catches
    # everything names it too, before States.ALL, and sends it the same way, so such a request still
    # ends through its recording step (lineage and one event) instead of failing the execution silently.
    catchers = state["Catch"]
    [everything] = [c for c in catchers if c["ErrorEquals"] == ["States.ALL"]]
    [data_limit] = [c for c in catchers if "States.DataLimitExceeded" in c["ErrorEquals"]]
    assert catchers.index(data_limit) < catchers.index(everything), f"{machine}.{name}"
    assert (data_limit["Next"], data_limit["ResultPath"]) == (everything["Next"], everything["ResultPath"])


@pytest.mark.parametrize("machine", sorted(deployed_state_machines()))
def test_every_state_machine_is_encrypted_with_the_stack_key(machine: str) -> None:
    # The execution history keeps every state's input and output for 90 days: under the stack's key,
    # not AWS's, so access to it is governed (and logged) by the key policy and IAM.
    assert TEMPLATE["Resources"][machine]["Properties"]["EncryptionConfiguration"] == {
        "Type": "CUSTOMER_MANAGED_KMS_KEY",
        "KmsKeyId": {"Fn::GetAtt": ["XpiKey", "Arn"]},
        "KmsDataKeyReusePeriodSeconds": 300,
    }


def _retrier_for(state: dict[str, Any], error: str) -> dict[str, Any] | None:
    """The Retry entry Step Functions would use for `error` (the first that names it, or States.ALL)."""
    for retrier in state.get("Retry", []):
        if error in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
            return dict(retrier)
    return None


def _inference_states() -> dict[str, Any]:
    definition, _ = deployed_state_machines()["InferenceStateMachine"]
    return dict(definition["States"])


@pytest.mark.parametrize("error", ["Runtime.ExitError", "Runtime.Unknown", "Lambda.Unknown"])
def test_the_invoke_step_retries_a_runtime_that_died_mid_invoke(error: str) -> None:
    # GIVEN the invoke task (idempotent on the request id: a retry returns a stored answer)
    invoke = _inference_states()["InvokeModel"]

    # THEN a runtime killed or crashed mid-invoke is retried, not caught as the request's failure
    retrier = _retrier_for(invoke, error)
    assert retrier is not None and retrier["MaxAttempts"] >= 1


@pytest.mark.parametrize("error", ["BedrockAnswerLost", "Sandbox.Timedout"])
def test_the_invoke_step_never_retries_a_call_whose_answer_may_have_been_billed(error: str) -> None:
    # A lost answer (read timeout) or a function timeout may follow an answer Bedrock billed and the
    # idempotency store did not keep: a retry would call again.
    assert _retrier_for(_inference_states()["InvokeModel"], error) is None


def test_the_invoke_step_waits_out_a_killed_attempts_idempotency_record() -> None:
    # GIVEN a killed attempt's in-progress record, which lasts until that invocation's timeout
    invoke = _inference_states()["InvokeModel"]
    retrier = _retrier_for(invoke, "InvocationInProgress")
    assert retrier is not None and "JitterStrategy" not in retrier

    # THEN the retries together wait longer than the function may run
    waits = [
        retrier["IntervalSeconds"] * retrier.get("BackoffRate", 2.0) ** n
        for n in range(retrier["MaxAttempts"])
    ]
    assert sum(waits) > function_timeout("InvokeModelFunction")


def test_the_record_step_learns_this_executions_token_from_validate() -> None:
    # The final lineage write carries the execution's name and start time, so a retried RecordOutcome
    # recognises an item it made final itself (and emits) from one another writer did (and does not).
    parameters = _inference_states()["Validate"]["Parameters"]

    assert parameters["execution.$"] == "$$.Execution.Name"
    assert parameters["started_at.$"] == "$$.Execution.StartTime"
