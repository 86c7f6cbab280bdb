"""The queue workflow answers a request its process step never ran for (Lambda refused the function for
good): the consumer's prepared answer, written and published by the workflow itself (RecordUnprocessed,
EmitUnprocessed), once, and only where the request holds no claim.

moto runs the real queue ASL here (`execute_state_machine`); its process function does not exist, so
every invoke is refused by the Lambda service (`Lambda.ResourceNotFoundException`, as Step Functions
names it: gap 31's patch), as a function refused or throttled for good would be.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from xpi.handlers import consume
from xpi_tools.local import moto_patches

from tests.helpers.aws import XpiResources, create_xpi_resources, dynamodb_resource, stepfunctions
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

    wait_until(over, 20, 0.05)
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
            "message": "the request's processing step could not run; send it again",
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
        "claimed_by": "batch-earlier@2026-03-01T10:00:00.000Z#0",
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
