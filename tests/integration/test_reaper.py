"""The reaper on the local stack: a request left ACCEPTED past the inference workflow's longest
possible run ends FAILED (RequestAbandoned) with exactly one Inference Failed event.

moto does not fire EventBridge schedules, so each test invokes ReaperFunction through the Lambda API
(with its own role, as its schedule would). The stuck request is made by backdating a claim.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from xpi_tools.emulator import EmulatorControl

from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import never_happens_within, wait_until

pytestmark = pytest.mark.integration

PAST_THE_BOUND = timedelta(hours=2)  # the bound is ReaperAbandonAfterSeconds (3900 s)


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.reset(counters=False, faults=True, quotas=False, latency=True, clock=False)


def _table(local_stack: LocalStackClient) -> Any:
    return local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.outputs["LineageTableName"]
    )


def _reap(local_stack: LocalStackClient) -> dict[str, Any]:
    response = local_stack.client("lambda").invoke(
        FunctionName=local_stack.outputs["ReaperFunctionName"],
        Payload=json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def test_a_claim_without_a_workflow_is_reaped_once(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a claim written two hours ago whose execution is absent (its workflow never ran on)
    request_id = f"it-reap-{uuid.uuid4().hex[:12]}"
    created = datetime.now(UTC) - PAST_THE_BOUND
    _table(local_stack).put_item(
        Item={
            "request_id": request_id,
            "status": "ACCEPTED",
            "created_at": created.isoformat(timespec="milliseconds"),
            "day": created.strftime("%Y-%m-%d"),
            "caller_principal": "arn:aws-us-gov:iam::123456789012:role/producer",
            "source": "sqs",
            "request_hmac": "0" * 64,
            "model_requested": "default",
            "expires_at": int(created.timestamp()) + 86_400,
        }
    )

    # WHEN the reaper runs, and runs again
    first = _reap(local_stack)
    event = results.wait_for(request_id)
    second = _reap(local_stack)

    # THEN the request is FAILED as RequestAbandoned, with one Inference Failed event
    assert request_id in first["reaped"] and request_id not in second["reaped"]
    assert request_id not in second["reported_late"]
    assert (event["detail-type"], event["detail"]["error"]["code"]) == (
        "Inference Failed",
        "RequestAbandoned",
    )
    item = local_stack.lineage(request_id)
    assert item is not None
    assert (item["status"], item["error"]["code"]) == ("FAILED", "RequestAbandoned")
    assert item["reported_at"]
    wait_until(results.caught_up, 30, what="subscriber queue drained")
    assert len(results.events_for(request_id)) == 1


def test_an_execution_running_past_the_bound_is_stopped_and_cannot_emit(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a request whose model call is slow, claimed and running, its claim backdated past the bound
    emulator.set_latency(time_to_first_token_ms=8000)
    request_id = local_stack.send({"model": "default", "prompt": "Take your time.", "caller": {}})
    state_machine = local_stack.outputs["StateMachineArn"]
    execution_arn = f"{state_machine.replace(':stateMachine:', ':execution:')}:{request_id}"
    stepfunctions = local_stack.client("stepfunctions")

    def claimed_and_running() -> bool:
        item = local_stack.lineage(request_id)
        return item is not None and item["status"] == "ACCEPTED"

    wait_until(claimed_and_running, 60, what="the request claimed")
    created = datetime.now(UTC) - PAST_THE_BOUND
    _table(local_stack).update_item(
        Key={"request_id": request_id},
        UpdateExpression="SET created_at = :c",
        ConditionExpression="#s = :accepted",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": created.isoformat(timespec="milliseconds"), ":accepted": "ACCEPTED"},
    )
    assert stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"

    # WHEN the reaper runs
    report = _reap(local_stack)

    # THEN it stopped the execution and ended the request as FAILED, with one event
    assert request_id in report["stopped"] and request_id in report["reaped"]
    event = results.wait_for(request_id)
    # (moto's interpreter reports ABORTED once the task it was in returns; AWS does at once)
    wait_until(
        lambda: stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "ABORTED",
        60,
        what="the execution aborted",
    )
    assert event["detail"]["error"]["code"] == "RequestAbandoned"
    # AND the model's late answer does not reach the stopped workflow: no second event, lineage unchanged
    assert never_happens_within(lambda: len(results.events_for(request_id)) > 1, 15)
    item = local_stack.lineage(request_id)
    assert item is not None and (item["status"], item["error"]["code"]) == ("FAILED", "RequestAbandoned")
