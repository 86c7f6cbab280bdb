"""Bedrock calls paced to the quota on the local stack: every call of the invoke step (both of its
runtimes, any request) draws from the one shared bucket item of its model and region, and a request that
finds the bucket empty past the wait bound is retried by the workflow, never sent early and never lost.
The local stack's quotas (tools/xpi_tools/local/stack.py) never bind on their own; bench/bench_quota.py
measures pacing at binding ones."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from xpi_tools.emulator import EmulatorControl

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration

MODEL = "us.amazon.nova-lite-v1:0"
BUCKET = f"{MODEL}#us-east-1"
LOCAL_TOKENS_PER_MINUTE = 100_000_000  # LOCAL_PARAMETERS["BedrockTokensPerMinute"]


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.clear_faults()


def _pacing_table(local_stack: LocalStackClient) -> Any:
    return local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.state["resources"]["PacingTable"]
    )


def _bucket(local_stack: LocalStackClient) -> dict[str, Any]:
    item = _pacing_table(local_stack).get_item(Key={"bucket": BUCKET}, ConsistentRead=True).get("Item")
    return dict(item) if item else {"version": 0}


def _request(text: str) -> dict[str, object]:
    return {"model": "default", "prompt": text, "inference": {"max_tokens": 200}}


def test_every_bedrock_call_of_every_runtime_draws_from_one_shared_bucket(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the shared bucket of the default model as it is, and Bedrock's call count
    before = _bucket(local_stack)
    calls_before = emulator.counters().model(MODEL).calls

    # WHEN several requests go through the pipeline at once (both invoke runtimes take part)
    ids = [local_stack.send(_request(f"Summarise record {n} of the lineage.")) for n in range(6)]
    events = [results.wait_for(request_id) for request_id in ids]

    # THEN each completed, with one Bedrock call each
    assert [event["detail-type"] for event in events] == ["Inference Completed"] * len(ids)
    assert emulator.counters().model(MODEL).calls - calls_before == len(ids)
    # AND each call took from the one bucket with one conditional write on the same item, whichever
    # runtime made it (what a call's usage did not need is given back with its runtime's next write)
    after = _bucket(local_stack)
    assert int(after["version"]) - int(before["version"]) == len(ids)
    assert Decimal(after["at"]) >= Decimal(before.get("at", 0))


def test_an_empty_bucket_holds_the_request_back_until_it_refills_then_sends_it_once(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the bucket deep in debt: about 8 s of the token quota, longer than a call may wait (5 s)
    table = _pacing_table(local_stack)
    request_id = local_stack.send(_request("Warm the bucket."))
    results.wait_for(request_id)
    bucket = _bucket(local_stack)
    debt = Decimal(LOCAL_TOKENS_PER_MINUTE) * 8 / 60
    table.update_item(
        Key={"bucket": BUCKET},
        UpdateExpression="ADD #tokens :debt, #version :one",
        ExpressionAttributeNames={"#tokens": "tokens", "#version": "version"},
        ExpressionAttributeValues={":debt": -debt - Decimal(bucket["tokens"]), ":one": 1},
    )
    calls_before = emulator.counters().model(MODEL).calls

    # WHEN a request comes
    sent_at = datetime.now(UTC)
    request_id = local_stack.send(_request("Summarise the pacing of calls."))
    event = results.wait_for(request_id, timeout_s=90)

    # THEN it completed with one Bedrock call, made only once the bucket had refilled: past the
    # in-function wait bound (held in the queue by the consumer, then waited for in the process step)
    assert event["detail-type"] == "Inference Completed"
    assert emulator.counters().model(MODEL).calls - calls_before == 1
    waited = datetime.fromisoformat(event["detail"]["timings"]["invoked_at"]) - sent_at
    assert waited.total_seconds() >= 5
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "COMPLETED" and "error" not in item


def test_a_burst_behind_a_spent_quota_is_held_in_the_queue_then_answered_as_its_sender(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the bucket booked 15 s of the token quota ahead: past the consumer's horizon (3 s)
    table = _pacing_table(local_stack)
    warm = results.wait_for(local_stack.send(_request("Warm the bucket.")))
    bucket = _bucket(local_stack)
    debt = Decimal(LOCAL_TOKENS_PER_MINUTE) * 15 / 60
    table.update_item(
        Key={"bucket": BUCKET},
        UpdateExpression="ADD #tokens :debt, #version :one",
        ExpressionAttributeNames={"#tokens": "tokens", "#version": "version"},
        ExpressionAttributeValues={":debt": -debt - Decimal(bucket["tokens"]), ":one": 1},
    )
    calls_before = emulator.counters().model(MODEL).calls

    # WHEN a burst comes
    sent_at = datetime.now(UTC)
    sqs = local_stack.client("sqs")
    message_ids = {}
    for n in range(4):
        body = {"request_id": f"it-held-{uuid.uuid4().hex[:12]}", **_request(f"Summarise held request {n}.")}
        sent = sqs.send_message(
            QueueUrl=local_stack.outputs["RequestsQueueUrl"], MessageBody=json.dumps(body)
        )
        message_ids[body["request_id"]] = sent["MessageId"]
    events = {request_id: results.wait_for(request_id, timeout_s=90) for request_id in message_ids}

    # THEN each completed with one Bedrock call, nothing failed
    assert [event["detail-type"] for event in events.values()] == ["Inference Completed"] * len(events)
    assert emulator.counters().model(MODEL).calls - calls_before == len(events)
    for request_id, event in events.items():
        detail = event["detail"]
        # AND it ran as its producer and under the message id it was sent with, not as the consumer
        # that held it and sent it again
        assert detail["caller"]["principal"] == warm["detail"]["caller"]["principal"]
        assert detail["source_reference"] == message_ids[request_id]
        # AND it waited in the queue: classified at least the 12 s it was held after it was sent
        classified = datetime.fromisoformat(detail["timings"]["classified_at"])
        assert (classified - sent_at).total_seconds() >= 9
