"""The SQS-fed inference workflow on the local stack, through AWS APIs only.

Each test plays a producer (SendMessage on the requests queue), a subscriber (result events arriving
on the example subscriber queue through the EventBridge rule) and an auditor (the lineage item).
The commercial side is the Bedrock emulator; its control endpoint injects faults and counts calls.
"""

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import boto3
import pytest
from xpi_tools.emulator import EmulatorControl
from xpi_tools.emulator.client import ErrorCode

from tests.helpers.stack import LocalStackClient, ResultCollector, queue_is_drained
from tests.helpers.waiting import poll_until, wait_until

pytestmark = pytest.mark.integration

DEFAULT_MODEL = "us.amazon.nova-lite-v1:0"


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.clear_faults()


def _prompt(text: str, model: str = "default", **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "prompt": text,
        "caller": {"project": "integration", "cost_centre": "cc-1"},
        **extra,
    }


def test_happy_path_one_completed_event_with_lineage(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a valid request with a reply hint
    request_id = local_stack.send(
        _prompt("Summarise the history of the Hoover Dam.", reply={"ticket": "T-1"})
    )

    # WHEN it goes through the pipeline
    event = results.wait_for(request_id)

    # THEN the subscriber gets exactly one Inference Completed event with the model's answer
    assert event["detail-type"] == "Inference Completed"
    assert event["source"] == "xpi.inference"
    detail = event["detail"]
    assert detail["status"] == "COMPLETED"
    assert detail["model"] == {"requested": "default", "resolved": DEFAULT_MODEL, "region": "us-east-1"}
    assert detail["output"]["text"]
    assert detail["output"]["sha256"] == hashlib.sha256(detail["output"]["text"].encode()).hexdigest()
    assert detail["usage"]["input_tokens"] > 0 and detail["usage"]["output_tokens"] > 0
    assert detail["reply"] == {"ticket": "T-1"}
    assert detail["caller"]["project"] == "integration"
    # AND the auditor finds a final lineage item without the payloads
    item = local_stack.lineage(request_id)
    assert item is not None
    assert item["status"] == "COMPLETED"
    assert item["source"] == "sqs"
    assert item["model_id"] == DEFAULT_MODEL
    assert item["commercial_region"] == "us-east-1"
    assert len(item["response_hmac"]) == 64 and item["response_hmac"] != detail["output"]["sha256"]
    assert len(item["request_hmac"]) == 64
    assert item["credential_version"]
    assert item["classification"]["decision"] == "allow"
    assert {"received_at", "validated_at", "classified_at", "routed_at", "invoked_at", "completed_at"} <= set(
        item["steps"]
    )
    assert "Hoover" not in json.dumps(item, default=str)
    # AND no second event: with its workflow over and every event collected, one would be here by now
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], request_id
    )
    assert len(results.events_for(request_id)) == 1


def test_pii_is_redacted_before_it_crosses(local_stack: LocalStackClient, results: ResultCollector) -> None:
    request_id = local_stack.send(
        _prompt("Draft a letter to John, SSN 123-45-6789, email john.doe@example.com.")
    )

    event = results.wait_for(request_id)

    assert event["detail-type"] == "Inference Completed"
    assert event["detail"]["classification"]["decision"] == "redact"
    assert {"pii.ssn", "pii.email"} <= set(event["detail"]["classification"]["categories"])
    item = local_stack.lineage(request_id)
    assert item is not None and item["classification"]["decision"] == "redact"
    assert "123-45-6789" not in json.dumps(item, default=str)


def test_blocked_request_never_reaches_bedrock(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a request carrying a CUI banner, to a model no other test uses
    model = "us.amazon.nova-micro-v1:0"
    calls_before = emulator.counters().totals.calls
    request_id = local_stack.send(
        _prompt("CUI//SP-PRVCY\nPersonnel roster for the program office.", model=model)
    )

    # WHEN it is classified
    event = results.wait_for(request_id)

    # THEN it is blocked, Bedrock was never called, and lineage says why (categories only)
    assert event["detail-type"] == "Inference Blocked"
    assert event["detail"]["status"] == "BLOCKED"
    assert any(c.startswith("cui.") for c in event["detail"]["classification"]["categories"])
    assert emulator.counters().totals.calls == calls_before
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "BLOCKED"
    assert "Personnel roster" not in json.dumps(item, default=str)


def test_throttled_then_succeeding(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN Bedrock throttles the next two calls
    emulator.inject_fault("ThrottlingException", count=2)
    throttles_before = emulator.counters().totals.throttles

    # WHEN a request arrives
    request_id = local_stack.send(_prompt("Name three rivers in Oregon."))

    # THEN the workflow retries with backoff and the request completes
    event = results.wait_for(request_id, timeout_s=90)
    assert event["detail-type"] == "Inference Completed"
    assert emulator.counters().totals.throttles - throttles_before == 2


def test_permanent_model_error_fails_once(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    emulator.inject_fault("ValidationException", count=1, message="Malformed input request, please reformat.")

    request_id = local_stack.send(_prompt("Hello"))

    event = results.wait_for(request_id)
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "BedrockRejected"
    assert "ValidationException" in event["detail"]["error"]["message"]
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "FAILED"
    assert item["error"]["code"] == "BedrockRejected"


@pytest.mark.parametrize(
    ("fault", "count", "message", "code", "rendered"),
    [
        # Bedrock's AccessDenied names the commercial account and IAM user (refused again after a re-read)
        (
            "AccessDeniedException",
            2,
            "User: arn:aws:iam::210987654321:user/xpi-bedrock-invoker is not authorized to perform: "
            "bedrock:InvokeModel",
            "BedrockRejected",
            "commercial Bedrock rejected the request (AccessDeniedException)",
        ),
        # a ValidationException can echo the prompt
        (
            "ValidationException",
            1,
            "Malformed input request: Zanzibar-7731 user/xpi-bedrock-invoker 210987654321",
            "BedrockRejected",
            "commercial Bedrock rejected the request (ValidationException)",
        ),
    ],
)
def test_bedrocks_message_and_the_prompt_stay_out_of_the_failure_event_and_lineage(
    local_stack: LocalStackClient,
    results: ResultCollector,
    emulator: EmulatorControl,
    fault: ErrorCode,
    count: int,
    message: str,
    code: str,
    rendered: str,
) -> None:
    # GIVEN Bedrock fails the call with a message naming the account, the IAM user and the prompt
    emulator.inject_fault(fault, count=count, message=message)

    # WHEN a request arrives
    request_id = local_stack.send(_prompt("Tell me about Zanzibar-7731."))

    # THEN the failure event and the lineage item carry the code and its fixed message only
    event = results.wait_for(request_id)
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"] == {"code": code, "message": rendered}
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "FAILED"
    assert item["error"] == {"code": code, "message": rendered}
    for text in (json.dumps(event), json.dumps(item, default=str)):
        assert "Zanzibar" not in text and "210987654321" not in text and "xpi-bedrock-invoker" not in text


def test_model_not_on_approved_list(local_stack: LocalStackClient, results: ResultCollector) -> None:
    request_id = local_stack.send(_prompt("Hello", model="cohere.command-r-v1:0"))

    event = results.wait_for(request_id)

    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "ModelNotApproved"


def test_malformed_message_fails_clearly_and_ends_in_dlq(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a message with a usable id but no model, and one that is not JSON at all, in one batch
    request_id = f"it-bad-{uuid.uuid4().hex[:8]}"
    good_id = local_stack.send(_prompt("A fine request in the same batch"))
    local_stack.send(json.dumps({"request_id": request_id, "prompt": "no model here"}))
    local_stack.send("this is { not json")

    # THEN the good one is not held up
    assert results.wait_for(good_id)["detail-type"] == "Inference Completed"
    # AND the malformed one is answered once, with a clear reason and a failure lineage record
    event = results.wait_for(request_id)
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "RequestInvalid"
    assert event["detail"]["error"]["message"] == "the request is not a valid inference request"
    assert {"location": "model", "type": "missing"} in event["detail"]["error"]["problems"]
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "FAILED"
    # AND both end in the DLQ after the configured receives (visibility 4 s, maxReceiveCount 3)
    sqs = local_stack.client("sqs")
    bodies: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(bodies) < 2:
        response = sqs.receive_message(
            QueueUrl=local_stack.outputs["RequestsDLQUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(
                QueueUrl=local_stack.outputs["RequestsDLQUrl"], ReceiptHandle=message["ReceiptHandle"]
            )
    assert any(request_id in body for body in bodies)
    assert "this is { not json" in bodies
    assert len(results.events_for(request_id)) == 1


def test_input_the_workflow_finds_invalid_fails_as_request_invalid(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a workflow input whose request has both a prompt and messages, started on the workflow itself
    # (the consumer and the API check first; the workflow's Validate is the last word)
    request_id = f"it-invalid-{uuid.uuid4().hex[:8]}"
    request = {
        **_prompt("Both forms"),
        "request_id": request_id,
        "messages": [{"role": "user", "content": [{"text": "x"}]}],
    }
    source = {
        "kind": "sqs",
        "principal": "integration",
        "reference": request_id,
        "received_at": "2026-01-01T00:00:00Z",
    }
    # (the workflow's input refers to the body in the artifacts bucket, as a producer's start does)
    bucket, key = local_stack.outputs["ArtifactsBucketName"], f"payloads/{request_id}/test.json"
    body = json.dumps(request).encode()
    local_stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    payload = {"bucket": bucket, "key": key, "bytes": len(body)}
    state_machine = local_stack.outputs["StateMachineArn"]
    stepfunctions = local_stack.client("stepfunctions")
    execution = stepfunctions.start_execution(
        stateMachineArn=state_machine,
        name=request_id,
        input=json.dumps({"payload": payload, "source": source}),
    )["executionArn"]

    # THEN it is answered once, as RequestInvalid, by RecordRejection
    event = results.wait_for(request_id)
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "RequestInvalid"
    assert event["detail"]["error"]["message"] == "the request is not a valid inference request"
    # AND the execution fails with Validate's verdict, not as a platform failure
    local_stack.wait_until_nothing_more_can_come(results, state_machine, request_id)
    described = stepfunctions.describe_execution(executionArn=execution)
    assert (described["status"], described.get("error")) == ("FAILED", "RequestInvalid")
    assert len(results.events_for(request_id)) == 1


def test_duplicate_delivery_yields_one_event_and_one_bedrock_call(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the same request delivered twice, to a model no other test uses
    model = "us.amazon.nova-pro-v1:0"
    body = {"request_id": f"it-dup-{uuid.uuid4().hex[:8]}", **_prompt("Twice delivered", model=model)}
    calls_before = emulator.counters().model(model).calls
    request_id = str(body["request_id"])
    state_machine = local_stack.outputs["QueueStateMachineArn"]

    # WHEN both deliveries are handled (in one batch's execution, or in two: Express names are not
    # unique, so the lineage claim is the duplicate check)
    local_stack.send(body)
    local_stack.send(body)

    # THEN, every run of it over and its events collected, one result event and one Bedrock call
    assert results.wait_for(request_id)["detail-type"] == "Inference Completed"
    sqs = local_stack.client("sqs")
    wait_until(
        lambda: queue_is_drained(sqs, local_stack.outputs["RequestsQueueUrl"]), 60, what="both handled"
    )
    local_stack.wait_until_nothing_more_can_come(results, state_machine, request_id)
    assert local_stack.queue_runs_of(request_id)
    assert len(results.events_for(request_id)) == 1
    assert emulator.counters().model(model).calls - calls_before == 1
    # AND the claim names the one run that answered it
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "COMPLETED" and item["claimed_by"]


def test_large_output_travels_through_s3(local_stack: LocalStackClient, results: ResultCollector) -> None:
    request_id = local_stack.send(
        _prompt(
            "Write at length. [[emulator:output_chars=120000]]",
            model="claude",
            inference={"max_tokens": 60000},
        )
    )

    event = results.wait_for(request_id)

    assert event["detail-type"] == "Inference Completed"
    output = event["detail"]["output"]
    assert "text" not in output
    assert output["s3_uri"].startswith(f"s3://{local_stack.outputs['ArtifactsBucketName']}/outputs/")
    bucket, key = output["s3_uri"].removeprefix("s3://").split("/", 1)
    body = local_stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(body) == output["bytes"] == 120_000
    assert hashlib.sha256(body).hexdigest() == output["sha256"]


def test_wrong_credentials_fail_with_a_clear_error(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the commercial key in the secret has been revoked on the commercial side
    key_id = next(iter(emulator.keys()["access_keys"]))
    # (read as the invoke function's role: the secret's policy lets no other principal read it)
    invoke_role = local_stack.state["function_credentials"]["InvokeModelFunction"]
    secret = json.loads(
        boto3.client(
            "secretsmanager",
            endpoint_url=local_stack.state["aws"],
            region_name=local_stack.state["region"],
            aws_access_key_id=invoke_role["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=invoke_role["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=invoke_role["AWS_SESSION_TOKEN"],
        ).get_secret_value(SecretId=local_stack.outputs["CommercialCredentialsSecretArn"])["SecretString"]
    )
    assert secret["aws_access_key_id"] == key_id
    emulator.revoke_access_key(key_id)
    try:
        # WHEN a request arrives
        request_id = local_stack.send(_prompt("Hello"))
        event = results.wait_for(request_id)
    finally:
        emulator.add_access_key(key_id, secret["aws_secret_access_key"])

    # THEN it fails with the credentials error, after one fresh read of the secret
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "CredentialsRejected"
    assert "UnrecognizedClientException" in event["detail"]["error"]["message"]


def test_classified_marking_blocks_and_raises_a_security_alert(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request carrying a classified banner
    request_id = local_stack.send(_prompt("SECRET//NOFORN\nOperational summary for the task force."))

    # WHEN it is classified
    blocked = results.wait_for(request_id, detail_type="Inference Blocked")
    alert = results.wait_for(request_id, detail_type="Security Alert")

    # THEN it is blocked, and a security alert names the categories (never the text)
    assert any(c.startswith("classified.") for c in blocked["detail"]["classification"]["categories"])
    assert alert["detail"]["decision"] == "block"
    assert any(c.startswith("classified.") for c in alert["detail"]["categories"])
    assert "task force" not in json.dumps(alert)


def test_lineage_is_queryable_by_caller_status_and_day(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a completed request
    request_id = local_stack.send(_prompt("Index me"))
    results.wait_for(request_id)
    item = local_stack.lineage(request_id)
    assert item is not None
    table = local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.outputs["LineageTableName"]
    )

    # WHEN an auditor queries each index
    by_caller = table.query(
        IndexName="by-caller",
        KeyConditionExpression="caller_principal = :p",
        ExpressionAttributeValues={":p": item["caller_principal"]},
    )["Items"]
    by_status = table.query(
        IndexName="by-status",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "COMPLETED"},
    )["Items"]
    by_day = table.query(
        IndexName="by-day",
        KeyConditionExpression="#d = :d AND created_at >= :t",
        ExpressionAttributeNames={"#d": "day"},
        ExpressionAttributeValues={":d": item["day"], ":t": item["created_at"]},
    )["Items"]

    # THEN the request is found through each of them
    for found in (by_caller, by_status, by_day):
        assert request_id in {i["request_id"] for i in found}


# A model no other test uses, made slow while a test writes the lineage item under the running workflow.
SLOW_MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


def _finalised_under_the_running_workflow(
    local_stack: LocalStackClient, emulator: EmulatorControl, recorded_by: Callable[[str], str]
) -> tuple[str, str]:
    """Sends a request to the slow model and, while its invoke step waits on Bedrock, makes its lineage
    item final COMPLETED as RecordOutcome writes it, carrying recorded_by(this execution's token) (the
    token Validate put in the state). Returns (request id, the completed_at written)."""
    emulator.set_latency(SLOW_MODEL, time_to_first_token_ms=6000)
    request_id = local_stack.send(_prompt("Record me", model=SLOW_MODEL))
    token: list[str] = []

    def validated_and_claimed() -> bool:
        item = local_stack.lineage(request_id)
        if item is None or item["status"] != "ACCEPTED":
            return False
        # the claim's token is the process step's item (execution#index@start); the final write
        # carries the execution's (execution@start)
        execution, rest = str(item["claimed_by"]).split("#", 1)
        token[:] = [f"{execution}@{rest.split('@', 1)[1]}"]
        return True

    wait_until(validated_and_claimed, 60, what=f"{request_id} validated and claimed")
    completed_at = "2026-01-02T03:04:05.678+00:00"
    local_stack.client("dynamodb").update_item(
        TableName=local_stack.outputs["LineageTableName"],
        Key={"request_id": {"S": request_id}},
        UpdateExpression="SET #s = :s, completed_at = :c, recorded_by = :r",
        ConditionExpression="#s = :accepted",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "COMPLETED"},
            ":c": {"S": completed_at},
            ":r": {"S": recorded_by(token[0])},
            ":accepted": {"S": "ACCEPTED"},
        },
    )
    return request_id, completed_at


def test_a_record_step_finding_its_own_final_write_emits_the_result_once(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the lineage item already final with this execution's outcome and token, as an earlier
    # attempt of RecordOutcome leaves it when it crashes after its write
    try:
        request_id, completed_at = _finalised_under_the_running_workflow(
            local_stack, emulator, lambda own: own
        )
    finally:
        emulator.set_latency(SLOW_MODEL)

    # WHEN the workflow reaches RecordOutcome, whose conditional write now fails
    event = results.wait_for(request_id)

    # THEN the result is emitted all the same, with the completion time of the write that made it final
    assert event["detail-type"] == "Inference Completed"
    emitted_completion = datetime.fromisoformat(event["detail"]["timings"]["completed_at"])
    assert emitted_completion == datetime.fromisoformat(completed_at)
    # AND once
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], request_id
    )
    assert len(results.events_for(request_id)) == 1


def test_a_record_step_finding_another_writers_final_item_emits_nothing(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN the lineage item made final by another writer (another token) while the workflow runs
    try:
        request_id, _ = _finalised_under_the_running_workflow(
            local_stack, emulator, lambda own: f"another-execution@{own}"
        )
    finally:
        emulator.set_latency(SLOW_MODEL)

    # WHEN the workflow has ended THEN it emitted nothing: the other writer answers for the request
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], request_id
    )
    assert results.events_for(request_id) == []


def test_not_json_not_an_object_and_oversized_messages_are_answered_under_the_best_id(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a body that is not JSON, one that is JSON but not an object, and one over 200,000 bytes that
    # names its request id after the prompt (with a nested "request_id" that must not be taken for it)
    sqs, queue = local_stack.client("sqs"), local_stack.outputs["RequestsQueueUrl"]
    not_json = sqs.send_message(QueueUrl=queue, MessageBody="plain words, no JSON")["MessageId"]
    not_object = sqs.send_message(QueueUrl=queue, MessageBody='["a", "list"]')["MessageId"]
    big_id = f"it-big-{uuid.uuid4().hex[:8]}"
    big = {
        **_prompt("x" * 205_000),
        "caller": {"project": "integration", "cost_centre": "cc-1", "tags": {"request_id": "nested"}},
        "request_id": big_id,
    }
    big_message = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(big))["MessageId"]

    # THEN each is answered Inference Failed, RequestInvalid: the first two under their message ids, the
    # large one under its own id
    for request_id, reference in ((not_json, not_json), (not_object, not_object), (big_id, big_message)):
        event = results.wait_for(request_id)
        assert event["detail-type"] == "Inference Failed"
        assert event["detail"]["error"]["code"] == "RequestInvalid"
        assert event["detail"]["source_reference"] == reference
        item = local_stack.lineage(request_id)
        assert item is not None and item["status"] == "FAILED"
    assert results.events_for(big_message) == [] and results.events_for("nested") == []
    # AND once each, however often SQS delivers them before the DLQ (visibility 4 s, maxReceiveCount 3)
    wait_until(lambda: queue_is_drained(sqs, queue), 90, what="the requests queue drained to the DLQ")
    assert results.caught_up()
    for request_id in (not_json, not_object, big_id):
        assert len(results.events_for(request_id)) == 1
    # (the three leave the DLQ again, for the tests that read it)
    dlq, mine = local_stack.outputs["RequestsDLQUrl"], {"plain words, no JSON", '["a", "list"]'}

    def collected() -> bool:
        for message in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
            if message["Body"] in mine or big_id in message["Body"]:
                mine.discard(message["Body"])
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        return not mine

    poll_until(collected, 30)
