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
EXPRESS_PAST_THE_BOUND = timedelta(minutes=8)  # a queue request's: REAPER_EXPRESS_ABANDON_AFTER_S (420 s)


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


def _start_standard(local_stack: LocalStackClient, request: dict[str, Any]) -> str:
    """Start the inference workflow as its producers do: the body stored under payloads/, the execution
    named by the request id with a reference to it."""
    request_id = f"it-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"request_id": request_id, **request}).encode()
    bucket, key = local_stack.outputs["ArtifactsBucketName"], f"payloads/{request_id}/test.json"
    local_stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    source = {"kind": "api", "principal": "integration", "received_at": datetime.now(UTC).isoformat()}
    local_stack.client("stepfunctions").start_execution(
        stateMachineArn=local_stack.outputs["StateMachineArn"],
        name=request_id,
        input=json.dumps({"payload": {"bucket": bucket, "key": key, "bytes": len(body)}, "source": source}),
    )
    return request_id


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
    # GIVEN a request of the Standard workflow (as POST /v1/requests starts it) whose model call is
    # slow, claimed and running, its claim backdated past the bound
    emulator.set_latency(time_to_first_token_ms=8000)
    request_id = _start_standard(local_stack, {"model": "default", "prompt": "Take your time.", "caller": {}})
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


def test_a_queue_request_whose_express_run_is_over_is_reaped_without_reading_its_execution(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a queue request whose model call is slow, claimed by its Express execution, its claim
    # backdated past the Express bound (5 minutes and a margin): as a run killed at 5 minutes leaves it
    # (moto does not end Express executions at 5 minutes, so this one still runs)
    emulator.set_latency(time_to_first_token_ms=8000)
    request_id = local_stack.send({"model": "default", "prompt": "Take your time, queued.", "caller": {}})

    def claimed() -> bool:
        item = local_stack.lineage(request_id)
        return item is not None and item["status"] == "ACCEPTED"

    wait_until(claimed, 60, what="the request claimed")
    created = datetime.now(UTC) - EXPRESS_PAST_THE_BOUND
    _table(local_stack).update_item(
        Key={"request_id": request_id},
        UpdateExpression="SET created_at = :c",
        ConditionExpression="#s = :accepted",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": created.isoformat(timespec="milliseconds"), ":accepted": "ACCEPTED"},
    )

    # WHEN the reaper runs
    report = _reap(local_stack)

    # THEN it ended the request as FAILED with one event, without inspecting or stopping an execution
    assert request_id in report["reaped"] and request_id not in report["stopped"]
    event = results.wait_for(request_id)
    assert event["detail"]["error"]["code"] == "RequestAbandoned"
    # AND the run's late answer finds the item final by another writer: no second event, lineage kept
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], request_id, timeout_s=90
    )
    assert len(results.events_for(request_id)) == 1
    item = local_stack.lineage(request_id)
    assert item is not None and (item["status"], item["error"]["code"]) == ("FAILED", "RequestAbandoned")


def _function_name(local_stack: LocalStackClient, logical_id: str) -> str:
    pages = local_stack.client("lambda").get_paginator("list_functions").paginate()
    functions = [function["FunctionName"] for page in pages for function in page["Functions"]]
    names = [name for name in functions if logical_id in name]
    assert len(names) == 1, names
    return str(names[0])


def test_an_abandoned_queue_request_whose_answer_was_billed_counts_it_in_lineage(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a queue request whose process step ran 250 s into its Express run (a backlog ahead of it):
    # Bedrock answers it with under a minute of the run left, and the run ends before its record step
    # (moto does not end Express runs at 5 minutes: the step is invoked as the run's Map item would,
    # with the function's own role, and its answer goes nowhere)
    request_id = f"it-late-{uuid.uuid4().hex[:12]}"
    started = datetime.now(UTC) - timedelta(seconds=250)
    sender = local_stack.client("sts").get_caller_identity()["UserId"]
    task = {
        "item": {
            "request": {
                "request_id": request_id,
                "model": "default",
                "prompt": f"Answer late in the run. [[emulator:tag={request_id}]]",
                "caller": {},
            },
            "source": {
                "kind": "sqs",
                "principal": sender,
                "reference": f"msg-{request_id}",
                "received_at": started.isoformat(),
            },
        },
        "execution": f"it-run-{uuid.uuid4().hex[:12]}",
        "started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "index": 0,
    }
    response = local_stack.client("lambda").invoke(
        FunctionName=_function_name(local_stack, "ProcessRequestFunction"), Payload=json.dumps(task)
    )
    answer = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, answer
    assert answer["owned"] and answer["state"]["response"]
    assert emulator.counters().tag(request_id).successes == 1  # billed
    # (the claim, still ACCEPTED, counts the answer already)
    claim = local_stack.lineage(request_id)
    assert claim is not None and (claim["status"], claim.get("bedrock_calls_unanswered")) == ("ACCEPTED", 1)

    # WHEN the run is over and the reaper ends the request
    created = datetime.now(UTC) - EXPRESS_PAST_THE_BOUND
    _table(local_stack).update_item(
        Key={"request_id": request_id},
        UpdateExpression="SET created_at = :c",
        ExpressionAttributeValues={":c": created.isoformat(timespec="milliseconds")},
    )
    assert request_id in _reap(local_stack)["reaped"]

    # THEN it is FAILED as RequestAbandoned with its one event, and lineage counts the billed answer:
    # as many as the emulator answered
    event = results.wait_for(request_id)
    assert event["detail"]["error"]["code"] == "RequestAbandoned"
    item = local_stack.lineage(request_id)
    assert item is not None
    assert (item["status"], item["error"]["code"]) == ("FAILED", "RequestAbandoned")
    assert item["bedrock_calls_unanswered"] == emulator.counters().tag(request_id).successes == 1
