"""The queue workflow answers a request its process step never ran for (Lambda refused the function for
good): the consumer's prepared answer, written and published by the workflow itself (RecordUnprocessed,
EmitUnprocessed), once, and only where the request holds no claim.

moto runs the real queue ASL here (`execute_state_machine`); its process function does not exist, so
every invoke is refused by the Lambda service (`Lambda.ResourceNotFoundException`, as Step Functions
names it: gap 33's patch), as a function refused or throttled for good would be.
"""

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi.handlers import consume
from xpi_tools.local import moto_patches

from tests.helpers.aws import (
    REGION,
    STACK,
    XpiResources,
    create_xpi_resources,
    dynamodb_resource,
    stepfunctions,
)
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event
from tests.helpers.waiting import wait_until

BATCH = "consume/sqs-batch.json"
ACCEPTED_IDS = ["req-batch-0101", "req-batch-0102"]  # the batch's valid requests (0103 is malformed)


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> Iterator[XpiResources]:
    """xpi's resources in moto, with the workflows executed, and the functions' environment."""
    restore = moto_patches.patch_lambda_service_errors()
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            resources = create_xpi_resources()
            for name, value in resources.environment().items():
                monkeypatch.setenv(name, value)
            yield resources
    finally:
        restore()


def _queue_runs_over(resources: XpiResources) -> list[dict[str, Any]]:
    def over() -> bool:
        executions = stepfunctions().list_executions(stateMachineArn=resources.queue_state_machine_arn)
        return bool(executions["executions"]) and all(
            e["status"] != "RUNNING" for e in executions["executions"]
        )

    wait_until(over, 60, 0.05)  # a bound: moto runs each execution on its own thread
    return [
        stepfunctions().describe_execution(executionArn=e["executionArn"])
        for e in stepfunctions().list_executions(stateMachineArn=resources.queue_state_machine_arn)[
            "executions"
        ]
    ]


def _failed_events(resources: XpiResources) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in resources.subscriber_events():
        found.setdefault(event["detail"]["request_id"], []).append(event)
    return found


def test_a_request_whose_process_step_never_ran_is_answered_once_by_the_workflow(
    running: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a batch consumed and its execution started, its process function refused for every request
    consume.handler(load_event(BATCH), lambda_context)

    # WHEN the execution has run
    [execution] = _queue_runs_over(running)

    # THEN it succeeded, and each accepted request has one failure item and one Inference Failed event
    assert execution["status"] == "SUCCEEDED", execution
    events = _failed_events(running)
    for request_id in ACCEPTED_IDS:
        item = running.lineage_item(request_id)
        assert item is not None
        assert item["status"] == "FAILED"
        assert item["error"] == {
            "code": "RequestNotProcessed",
            "message": "the request's processing step did not run its course; send it again",
        }
        assert item["source"] == "sqs" and item["recorded_by"].startswith(execution["name"])
        [event] = events[request_id]
        assert event["detail-type"] == "Inference Failed"
        assert event["detail"]["error"]["code"] == "RequestNotProcessed"
        assert event["detail"]["source_reference"] == item["source_reference"]
    assert sorted(events) == sorted([*ACCEPTED_IDS, "req-batch-0103"])  # (0103: rejected, as ever)


def test_a_request_claimed_before_its_step_failed_is_left_to_its_claim(
    running: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN one request already claimed (its step claimed it, then failed for good)
    claim = {
        "request_id": ACCEPTED_IDS[0],
        "status": "ACCEPTED",
        "created_at": "2026-03-01T10:00:00.000Z",
        "day": "2026-03-01",
        "expires_at": 1_900_000_000,
        "caller_principal": "p",
        "source": "sqs",
        "model_requested": "m",
        "claimed_by": "batch-earlier#0@2026-03-01T10:00:00.000Z",
    }
    dynamodb_resource().Table(running.lineage_table).put_item(Item=claim)

    # WHEN the batch is consumed and its execution has run
    consume.handler(load_event(BATCH), lambda_context)
    _queue_runs_over(running)

    # THEN the claim is untouched (the reaper ends it) and nothing is published for it; the other is answered
    assert running.lineage_item(ACCEPTED_IDS[0]) == claim
    events = _failed_events(running)
    assert ACCEPTED_IDS[0] not in events
    assert len(events[ACCEPTED_IDS[1]]) == 1


def _process_function_that_claims_then_dies(resources: XpiResources) -> list[str]:
    """The process function deployed in moto, each invocation claiming its request (the claim carrying
    the step's token, execution#index@start, as the function writes it) and then killed before it
    answers (Runtime.ExitError), on every attempt. The tokens it claimed with are returned as it runs."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return event\n")
    from moto.iam.models import iam_backends

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    # (in moto's GovCloud partition, where the function's region looks for it)
    role = (
        iam_backends["123456789012"]["aws-us-gov"]
        .create_role("process", json.dumps(trust), "/", None, "", [], None)
        .arn
    )
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=f"{STACK}-ProcessRequestFunction",
        Runtime="python3.13",
        Role=str(role),
        Handler="handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    tokens: list[str] = []

    def invoke(function: Any, body: str) -> tuple[bytes, str | None]:
        task = json.loads(body)
        token = f"{task['execution']}#{task['index']}@{task['started_at']}"
        tokens.append(token)
        request_id = task["item"]["request"]["request_id"]
        claim = {"request_id": request_id, "status": "ACCEPTED", "claimed_by": token, "source": "sqs"}
        table = dynamodb_resource().Table(resources.lineage_table)
        if "Item" not in table.get_item(Key={"request_id": request_id}):
            table.put_item(Item={**claim, "created_at": "2026-03-01T10:00:00.000Z", "day": "2026-03-01"})
        killed = {
            "errorType": "Runtime.ExitError",
            "errorMessage": "Runtime exited with error: signal: killed",
        }
        return json.dumps(killed).encode(), "Unhandled"

    restore = moto_patches.patch_lambda_invoke(invoke)
    _RESTORES.append(restore)
    return tokens


_RESTORES: list[Any] = []


@pytest.fixture(autouse=True)
def _restore_patches() -> Iterator[None]:
    yield
    while _RESTORES:
        _RESTORES.pop()()


def test_a_request_whose_step_claimed_it_then_died_on_every_attempt_is_ended_once_by_the_workflow(
    running: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a process function that claims each request and is killed on every attempt
    tokens = _process_function_that_claims_then_dies(running)

    # WHEN a batch is consumed and its execution has run
    consume.handler(load_event(BATCH), lambda_context)
    [execution] = _queue_runs_over(running)

    # THEN each claim is ended FAILED by the workflow (not left to the reaper), its possible Bedrock call
    # counted, with exactly one Inference Failed event
    assert execution["status"] == "SUCCEEDED", execution
    # (the first attempt and its two retries, each; on a loaded machine a task that timed out in moto's
    # interpreter is retried as well, so more attempts can be seen: the outcome below is still one answer)
    assert len(tokens) >= 3 * len(ACCEPTED_IDS)
    events = _failed_events(running)
    for request_id in ACCEPTED_IDS:
        item = running.lineage_item(request_id)
        assert item is not None
        assert item["status"] == "FAILED"
        assert item["error"]["code"] == "RequestNotProcessed"
        assert item["bedrock_calls_unanswered"] == 1
        assert item["claimed_by"] in tokens  # (the claim's own fields are kept)
        [event] = events[request_id]
        assert event["detail"]["error"]["code"] == "RequestNotProcessed"
