"""The inference workflow carries references, not content, on the local stack.

Step Functions keeps every state's input and output in a Standard execution's history (90 days): the
request's text, and the text of a blocked request, must live only in the payload object the states point
to. (The queue workflow is Express: no history, and its logs hold no execution data; its ordinary
requests travel inline, a large one as a reference.) Lineage holds keyed hashes (HMAC with the stack's
hash key), never a plain SHA-256 of the request.
"""

import hashlib
import json
import uuid
from typing import Any

import pytest

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration


def _start_standard(local_stack: LocalStackClient, request: dict[str, Any]) -> str:
    """Start the inference workflow as its producers do: the body stored under payloads/, the execution
    named by the request id with a reference to it."""
    request_id = f"it-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"request_id": request_id, **request}).encode()
    bucket, key = local_stack.outputs["ArtifactsBucketName"], f"payloads/{request_id}/test.json"
    local_stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    source = {"kind": "api", "principal": "integration", "received_at": "2026-01-01T00:00:00Z"}
    local_stack.client("stepfunctions").start_execution(
        stateMachineArn=local_stack.outputs["StateMachineArn"],
        name=request_id,
        input=json.dumps({"payload": {"bucket": bucket, "key": key, "bytes": len(body)}, "source": source}),
    )
    return request_id


def _history_text(local_stack: LocalStackClient, request_id: str) -> str:
    """Every event's input and output of the request's execution, as one string."""
    state_machine = local_stack.outputs["StateMachineArn"]
    execution_arn = f"{state_machine.replace(':stateMachine:', ':execution:')}:{request_id}"
    stepfunctions = local_stack.client("stepfunctions")
    pages = stepfunctions.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    events: list[dict[str, Any]] = [event for page in pages for event in page["events"]]
    assert events, "the execution has a history"
    return json.dumps(events, default=str)


def test_execution_history_holds_no_request_text(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request that completes and one that is blocked, each with a marker only its text holds,
    # started on the Standard workflow as a producer of it (POST /v1/requests, a batch line) starts it
    allowed_marker = f"zephyrine{uuid.uuid4().hex[:10]}"
    blocked_marker = f"quartzline{uuid.uuid4().hex[:10]}"
    allowed = _start_standard(
        local_stack, {"model": "default", "prompt": f"Describe the {allowed_marker} estuary in one line."}
    )
    blocked = _start_standard(
        local_stack,
        {"model": "default", "prompt": f"CUI//SP-PRVCY\nRoster of the {blocked_marker} program office."},
    )

    # WHEN both have gone through the workflow
    assert results.wait_for(allowed)["detail-type"] == "Inference Completed"
    assert results.wait_for(blocked)["detail-type"] == "Inference Blocked"
    state_machine = local_stack.outputs["StateMachineArn"]
    local_stack.wait_until_nothing_more_can_come(results, state_machine, allowed)
    local_stack.wait_until_nothing_more_can_come(results, state_machine, blocked)

    # THEN no event of either execution's history holds the request's text
    allowed_history = _history_text(local_stack, allowed)
    blocked_history = _history_text(local_stack, blocked)
    assert allowed_marker not in allowed_history
    assert blocked_marker not in blocked_history
    assert "CUI//SP-PRVCY" not in blocked_history
    # AND the states point at the payload object instead
    assert '\\"payload\\"' in allowed_history or '"payload"' in allowed_history


def test_lineage_holds_a_keyed_hash_of_the_request(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a short, guessable prompt
    request = {"request_id": f"it-{uuid.uuid4().hex[:12]}", "model": "default", "prompt": "Say yes."}
    request_id = local_stack.send(request)

    # WHEN it completes
    assert results.wait_for(request_id)["detail-type"] == "Inference Completed"

    # THEN lineage holds an HMAC of it that no plain SHA-256 of the request reproduces
    item = local_stack.lineage(request_id)
    assert item is not None
    assert "request_sha256" not in item
    assert len(item["request_hmac"]) == 64
    plain = {
        hashlib.sha256(json.dumps(form, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        for form in (request, {**request, "api": "converse", "version": "1"})
    }
    plain.add(hashlib.sha256(b"Say yes.").hexdigest())
    assert not plain & {str(value) for value in item.values()}


def test_a_request_near_the_size_limit_with_an_inline_output_completes_once(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request just under the 200 KB request limit whose answer (32,700 characters) is just small
    # enough to travel inline (32 KiB): over Step Functions' 256 KiB state limit had a state held the
    # request with the answer in the response and again in the result event's detail
    sentence = "The tide in the estuary rises at dawn and falls by noon. "
    prompt = "[[emulator:output_chars=32700]] " + sentence * (149_500 // len(sentence))
    system = [sentence * (48_000 // len(sentence))]
    request = {"model": "default", "prompt": prompt, "system": system, "inference": {"max_tokens": 9000}}
    assert 197_000 < len(json.dumps(request)) < 199_900
    request_id = local_stack.send(request)

    # WHEN it goes through the workflow
    event = results.wait_for(request_id, timeout_s=120)

    # THEN it completes with its output inline, once, with final lineage
    assert event["detail-type"] == "Inference Completed"
    assert len(event["detail"]["output"]["text"]) > 32_000
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], request_id
    )
    assert len(results.events_for(request_id)) == 1
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "COMPLETED"


def test_both_state_machines_are_encrypted_with_the_stack_key(local_stack: LocalStackClient) -> None:
    # The execution history (every state's input and output) is kept under the stack's key, not AWS's.
    stepfunctions = local_stack.client("stepfunctions")
    key_arn = local_stack.outputs["KmsKeyArn"]
    for output in ("StateMachineArn", "BatchStateMachineArn"):
        described = stepfunctions.describe_state_machine(stateMachineArn=local_stack.outputs[output])
        assert described["encryptionConfiguration"] == {
            "type": "CUSTOMER_MANAGED_KMS_KEY",
            "kmsKeyId": key_arn,
            "kmsDataKeyReusePeriodSeconds": 300,
        }, output
