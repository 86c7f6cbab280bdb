"""Every function of template.yaml under `sam local invoke`, with its sample event from events/, against
a running local stack (moto for the AWS APIs, the emulator for commercial Bedrock).

The containers reach the stack over loopback and unix sockets only (see conftest.stack_invoke). A sample
whose result depends on lineage or idempotency state is sent as a copy with a fresh request id, so the
tests do not depend on their order or on earlier runs.

The batch functions run on copies of the samples in events/batch/ rewritten to the local
stack's bucket and table and to a fresh batch id. What a function needs first (the uploaded file, a
split batch, recorded lines) is made through AWS APIs, by running the stack's own deployed functions
(Lambda Invoke) where a batch has to be split or lines recorded.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]
from xpi.adapters import aws
from xpi.domain.batch import batch_id_for, uploader_of
from xpi.domain.errors import MESSAGES

from tests.container.conftest import REPO, StackInvoke, local_invoke

pytestmark = pytest.mark.container

EVENTS = REPO / "events"
# The sample event(s) each test below runs: a function added to the template needs a line here.
SAMPLES = {
    "ConsumeRequestsFunction": ["consume/sqs-batch.json"],
    "ProcessRequestFunction": ["process/queued-request.json"],
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
    ],
    "RecordRejectionFunction": [
        "record-rejection/rejected-input.json",
        "record-rejection/validate-failed.json",
    ],
    "ApiFunction": ["api/models.json", "api/submit.json"],
    "AdminFunction": ["admin/redrive.json"],
    "BatchStartFunction": ["batch/start/sqs-s3-notification.json"],
    "BatchSplitFunction": ["batch/split/workflow-input.json"],
    "BatchReleaseFunction": ["batch/release/task.json"],
    "BatchProgressFunction": ["batch/progress/sqs-result-event.json"],
    "BatchAssembleFunction": ["batch/assemble/workflow-state.json"],
    "BatchRecordFailureFunction": ["batch/record-failure/failure-state.json"],
    "BatchReconcileFunction": ["batch/reconcile/heartbeat-timeout.json"],
    "BatchJobFunction": ["batch/job/start.json"],
    "ReaperFunction": ["reap/scheduled.json"],
    "SyncInvokeFunction": ["api-invoke/invoke.json"],
    "RotateCredentialsFunction": ["rotate/create-secret.json"],
    "LineageSealFunction": ["seal/scheduled.json"],
    "ComplianceCheckFunction": ["compliance-check/scheduled.json"],
    "ComplianceReportFunction": ["compliance-report/csv.json"],
    "UsageReportFunction": ["usage/csv.json"],
    "PathHealthFunction": ["check-paths/scheduled.json"],
    "DashboardSignInFunction": ["sign-in/pre-token.json"],
    "DashboardPageFunction": ["dashboard-page/sign-in-config.json"],
}


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def fresh_id(label: str) -> str:
    return f"ct-{label}-{uuid.uuid4().hex[:12]}"


def for_request(state: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A copy of a workflow state (or workflow input) for another request id."""
    state = copy.deepcopy(state)
    if "request" in state:  # a workflow input carries only a reference to its request
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
    found: dict[str, Any] | None = item.get("Item")
    return found


def test_every_function_of_the_template_has_a_sample_here(stack_invoke: StackInvoke) -> None:
    template = yaml_parse((REPO / "template.yaml").read_text())  # as SAM reads it (!Ref and the like)
    in_template = set(local_invoke.function_ids(template))
    assert not in_template - set(SAMPLES), "functions without a sam local invoke test here"
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
    # the two valid ones started one queue workflow execution in the local stack, bodies inline
    stepfunctions = stack_invoke.aws("stepfunctions")
    queued: list[str] = []
    for execution in stepfunctions.list_executions(
        stateMachineArn=stack_invoke.state["outputs"]["QueueStateMachineArn"]
    )["executions"]:
        described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
        items = json.loads(described["input"])["requests"]
        if any(item["request"]["request_id"] in request_ids for item in items):
            queued.extend(item["request"]["request_id"] for item in items)
    assert sorted(queued) == sorted(request_ids[:2])
    # and the malformed one was answered once: a FAILED lineage item
    item = lineage(stack_invoke, request_ids[2])
    assert item is not None
    assert item["status"] == {"S": "FAILED"}


def test_process_claims_and_answers_a_queued_request(stack_invoke: StackInvoke) -> None:
    event = sample("process/queued-request.json")
    request_id = fresh_id("process")
    event["item"]["request"]["request_id"] = request_id

    result = stack_invoke("ProcessRequestFunction", event)

    assert not result.is_error, result.payload
    assert result.payload["owned"] is True
    assert result.payload["state"]["response"]["output_text"]
    item = lineage(stack_invoke, request_id)
    assert item is not None and item["status"] == {"S": "ACCEPTED"}


def test_validate_returns_a_claim_for_the_request(stack_invoke: StackInvoke) -> None:
    event = sample("validate/workflow-input.json")

    result = stack_invoke("ValidateFunction", event)

    assert not result.is_error, result.payload
    claim = result.payload["claim"]
    assert claim["request_id"] == event["execution"] == result.payload["request"]["request_id"]
    assert claim["caller_principal"] == event["source"]["principal"]
    assert re.fullmatch(r"[0-9a-f]{64}", claim["request_hmac"])
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


def test_dashboard_sign_in_gives_the_admin_role_only_with_a_second_factor(stack_invoke: StackInvoke) -> None:
    # GIVEN Cognito's pre token generation event for a member of the admin group who signed in with a code
    event = sample("sign-in/pre-token.json")
    password_only = copy.deepcopy(event)
    password_only["request"]["userAttributes"]["custom:amr"] = '["pwd"]'

    # WHEN the trigger runs for each
    with_code = stack_invoke("DashboardSignInFunction", event)
    without_code = stack_invoke("DashboardSignInFunction", password_only)

    # THEN the ID token's role claim is admin with the second factor, operator without it
    assert not with_code.is_error and not without_code.is_error, (with_code.payload, without_code.payload)
    claims = with_code.payload["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"]
    assert claims == {"xpi_role": "admin"}
    claims = without_code.payload["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"]
    assert claims == {"xpi_role": "operator"}


def test_invoke_gets_an_answer_from_the_emulator(stack_invoke: StackInvoke) -> None:
    # GIVEN the sample state, for a request id the idempotency table has not seen
    from xpi_tools.emulator.client import EmulatorControl

    event = for_request(sample("invoke/state.json"), fresh_id("invoke"))
    emulator = EmulatorControl(stack_invoke.state["emulator_control"])
    successes_before = emulator.counters().totals.successes
    # (its metadata: the secret's policy lets only the invoke function's role read the value)
    versions = stack_invoke.aws("secretsmanager").describe_secret(
        SecretId=stack_invoke.state["outputs"]["CommercialCredentialsSecretArn"]
    )["VersionIdsToStages"]
    current_version = next(v for v, stages in versions.items() if "AWSCURRENT" in stages)

    # WHEN
    result = stack_invoke("InvokeModelFunction", event)

    # THEN the emulator answered, signed with the keys of the stack's secret (its current version)
    assert not result.is_error, result.payload
    response = result.payload["response"]
    assert response["usage"]["input_tokens"] > 0
    assert response["usage"]["output_tokens"] > 0
    assert response["output_text"]
    assert response["credential_version"] == current_version
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


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("record-rejection/rejected-input.json", "RequestInvalid"),
        ("record-rejection/validate-failed.json", "ValidationUnavailable"),
    ],
)
def test_record_rejection_answers_an_input_validate_did_not_accept(
    stack_invoke: StackInvoke, name: str, code: str
) -> None:
    event = for_request(sample(name), fresh_id("rejected"))

    result = stack_invoke("RecordRejectionFunction", event)

    # The rejection's event is published by the function (guarded by lineage), not by the ASL.
    assert not result.is_error, result.payload
    assert result.payload["outcome"]["emit"] is False
    # answered under the request's own id when its stored body names one, else the execution's
    item = lineage(stack_invoke, result.payload["outcome"]["detail"]["request_id"])
    assert item is not None
    assert item["status"] == {"S": "FAILED"}
    # and only Validate's own verdict is reported as an invalid request
    assert item["error"]["M"]["code"] == {"S": code}


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


# ---------------------------------------------------------------------- batch
BATCH_FILES = EVENTS / "batch" / "files"
CLAIMS = "claims-2026-11-27"  # events/batch/files/<CLAIMS>.jsonl and its .manifest.json
# That file: lines 1-4 are requests (line 3 is CUI-marked, blocked later by the line's workflow, not by
# the split), line 5 is not JSON.
CLAIMS_VALID = [1, 2, 3, 4]
CLAIMS_NOT_JSON = 5
COUNTERS = ("done", "completed", "blocked", "failed", "input_tokens", "output_tokens", "estimated_cost_usd")
_deserializer = TypeDeserializer()


def fresh_batch_id() -> str:
    """A batch id of the shape batch_id_for makes (b- and 24 hex), unused before."""
    return f"b-{uuid.uuid4().hex[:24]}"


def batch_items(stack_invoke: StackInvoke, batch_id: str) -> dict[int, dict[str, Any]]:
    """The batch's items in the batch table by line (0 = the status item), as plain values."""
    pages = (
        stack_invoke.aws("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=stack_invoke.state["outputs"]["BatchTableName"],
            KeyConditionExpression="batch_id = :b",
            ExpressionAttributeValues={":b": {"S": batch_id}},
            ConsistentRead=True,
        )
    )
    items = {}
    for page in pages:
        for raw in page["Items"]:
            item = {name: aws.plain(_deserializer.deserialize(value)) for name, value in raw.items()}
            items[int(item["line"])] = item
    return items


def batch_status(stack_invoke: StackInvoke, batch_id: str) -> dict[str, Any]:
    status = batch_items(stack_invoke, batch_id).get(0)
    assert status is not None, f"no status item for {batch_id}"
    return status


@contextmanager
def notifications_paused(s3: Any, bucket: str) -> Iterator[None]:
    """The bucket's event notifications off while the block uploads (this stack is the test's own)."""
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    configuration.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)


def upload_batch_file(stack_invoke: StackInvoke, body: bytes | None = None) -> dict[str, Any]:
    """The sample file (or `body`) and the sample manifest, uploaded under a fresh folder; returns the
    batch workflow's `batch` for it: the split sample's, for this object and a fresh batch id.

    The folder is under incoming/, the only prefix BatchSplit's role may read, and the bucket's upload
    notifications are paused while the test uploads, so the stack's own BatchStart never starts a batch
    (and line workflows) for this file behind the test's back."""
    s3 = stack_invoke.aws("s3")
    bucket = stack_invoke.state["outputs"]["BatchInputBucketName"]
    folder = f"incoming/container-tests/{uuid.uuid4().hex}"
    manifest = (BATCH_FILES / f"{CLAIMS}.manifest.json").read_bytes()
    body = (BATCH_FILES / f"{CLAIMS}.jsonl").read_bytes() if body is None else body
    key = f"{folder}/{CLAIMS}.jsonl"
    with notifications_paused(s3, bucket):
        s3.put_object(Bucket=bucket, Key=f"{folder}/{CLAIMS}.manifest.json", Body=manifest)
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    batch: dict[str, Any] = sample("batch/split/workflow-input.json")["batch"]
    batch.update(
        batch_id=fresh_batch_id(),
        bucket=bucket,
        key=key,
        version_id=put.get("VersionId"),
        etag=put["ETag"].strip('"'),
        size=len(body),
    )
    return batch


def run_in_stack(stack_invoke: StackInvoke, function_id: str, event: Any) -> Any:
    """Run a function as the local stack deployed it (Lambda Invoke, in the stack's own runtime): how a
    test makes what the function under test needs, by the code path that makes it in the stack."""
    response = stack_invoke.aws("lambda").invoke(
        FunctionName=stack_invoke.state["resources"][function_id], Payload=json.dumps(event).encode()
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return payload


def split_in_stack(stack_invoke: StackInvoke, body: bytes | None = None) -> tuple[dict[str, Any], Any]:
    """GIVEN helper: a batch of the sample file (or `body`), split by the stack's BatchSplitFunction."""
    batch = upload_batch_file(stack_invoke, body)
    return batch, run_in_stack(stack_invoke, "BatchSplitFunction", {"batch": batch})


def all_lines_started(stack_invoke: StackInvoke, batch_id: str, valid: int) -> None:
    """GIVEN helper: the batch as BatchRelease leaves it once every valid line's workflow has started
    (status `released`, docs/batch.md), without starting any. Those workflows would report their own
    results through the stack's BatchProgress while the test counts the one result it delivers."""
    stack_invoke.aws("dynamodb").update_item(
        TableName=stack_invoke.state["outputs"]["BatchTableName"],
        Key={"batch_id": {"S": batch_id}, "line": {"N": "0"}},
        UpdateExpression="SET released = :valid",
        ExpressionAttributeValues={":valid": {"N": str(valid)}},
    )


def result_record(batch: dict[str, Any], line: int, *, blocked: bool = False) -> dict[str, Any]:
    """The progress sample's SQS record (line 1's `Inference Completed`), for `line` of `batch`; with
    `blocked`, that line's `Inference Blocked` instead (no model call: no output, no usage)."""
    record: dict[str, Any] = sample("batch/progress/sqs-result-event.json")["Records"][0]
    event = json.loads(record["body"])
    detail = event["detail"]
    request_id = f"{batch['batch_id']}-{line}"
    detail.update(
        batch_id=batch["batch_id"],
        request_id=request_id,
        lineage_key=request_id,
        source_reference=f"s3://{batch['bucket']}/{batch['key']}#{line}",
        reply={"row": str(line)},
    )
    if blocked:
        event["detail-type"] = "Inference Blocked"
        detail.update(status="BLOCKED", classification={"decision": "block", "categories": {"cui.banner": 1}})
        del detail["output"], detail["usage"]
    record.update(messageId=str(uuid.uuid4()), body=json.dumps(event))
    return record


def line_finished(
    stack_invoke: StackInvoke, batch: dict[str, Any], line: int, *, blocked: bool = False
) -> None:
    """GIVEN helper: the line's final lineage item, as its workflow writes it before emitting (BatchProgress
    counts a result event only when lineage corroborates it)."""
    request_id = f"{batch['batch_id']}-{line}"
    stack_invoke.aws("dynamodb").put_item(
        TableName=stack_invoke.state["outputs"]["LineageTableName"],
        Item={
            "request_id": {"S": request_id},
            "status": {"S": "BLOCKED" if blocked else "COMPLETED"},
            "created_at": {"S": "2026-11-27T09:00:00.000+00:00"},
            "day": {"S": "2026-11-27"},
            "expires_at": {"N": "4102444800"},
            "caller_principal": {"S": batch["principal"]},
            "source": {"S": "s3_batch"},
            "model_requested": {"S": "default"},
            "batch_id": {"S": batch["batch_id"]},
        },
    )


def executions_named(stack_invoke: StackInvoke, state_machine_arn: str, prefix: str) -> dict[str, str]:
    """{execution name: status} of the state machine's executions whose name starts with `prefix`."""
    found = {}
    pages = stack_invoke.aws("stepfunctions").get_paginator("list_executions")
    for page in pages.paginate(stateMachineArn=state_machine_arn):
        for execution in page["executions"]:
            if execution["name"].startswith(prefix):
                found[execution["name"]] = execution["status"]
    return found


def test_batch_start_starts_one_batch_workflow_per_object_and_reports_only_the_malformed_record(
    stack_invoke: StackInvoke,
) -> None:
    # GIVEN the sample notification, for a fresh key in the stack's bucket, noticed twice (a redelivered
    # notification), and a record whose body is not JSON. The object itself is not uploaded: an upload
    # under incoming/ makes the stack's own BatchStart (its SQS mapping) start the batch, and the test
    # could not tell whose start it saw. So the batch's Split fails later (no such object): not tested here.
    outputs = stack_invoke.state["outputs"]
    bucket = outputs["BatchInputBucketName"]
    key = f"incoming/container-tests/{uuid.uuid4().hex}/{CLAIMS}.jsonl"
    event = sample("batch/start/sqs-s3-notification.json")
    record = event["Records"][0]
    notification = json.loads(record["body"])
    s3_entity = notification["Records"][0]["s3"]
    s3_entity["bucket"].update(name=bucket, arn=f"arn:aws-us-gov:s3:::{bucket}")
    s3_entity["object"]["key"] = key
    record["body"] = json.dumps(notification)
    again = {**record, "messageId": str(uuid.uuid4())}
    malformed = {**record, "messageId": str(uuid.uuid4()), "body": "{not json"}
    event["Records"] = [record, again, malformed]
    batch_id = batch_id_for(bucket, key, s3_entity["object"]["eTag"])

    # WHEN
    result = stack_invoke("BatchStartFunction", event)

    # THEN only the malformed record comes back for a retry; the object noticed twice is not a failure
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": malformed["messageId"]}]}, (
        result.stderr
    )
    # and one batch workflow runs for the object, named by its batch id, with the split sample's input
    # (the input BatchStart gives the workflow) for this object
    batch_machine = outputs["BatchStateMachineArn"]
    assert list(executions_named(stack_invoke, batch_machine, batch_id)) == [batch_id]
    described = stack_invoke.aws("stepfunctions").describe_execution(
        executionArn=f"{batch_machine.replace(':stateMachine:', ':execution:')}:{batch_id}"
    )
    expected = sample("batch/split/workflow-input.json")
    # (its caller: the upload folder's aws:userid, here the test's own folder)
    expected["batch"].update(batch_id=batch_id, bucket=bucket, key=key, principal="container-tests")
    assert json.loads(described["input"]) == expected


def test_batch_split_counts_the_lines_writes_the_chunks_and_records_the_bad_line(
    stack_invoke: StackInvoke,
) -> None:
    # GIVEN the sample file and its manifest (the bare lines' defaults), uploaded
    batch = upload_batch_file(stack_invoke)
    batch_id, bucket = batch["batch_id"], batch["bucket"]
    event = {**sample("batch/split/workflow-input.json"), "batch": batch}
    concurrency = json.loads(
        stack_invoke.aws("lambda").get_function_configuration(
            FunctionName=stack_invoke.state["resources"]["BatchSplitFunction"]
        )["Environment"]["Variables"]["BATCH_MODEL_CONCURRENCY"]
    )

    # WHEN
    result = stack_invoke("BatchSplitFunction", event)

    # THEN the counts: 5 lines, 4 valid in one chunk, the not-JSON line invalid; the window is the
    # smallest concurrency of the batch's models (default, fast)
    assert not result.is_error, result.payload
    window = min(int(concurrency.get(model, concurrency.get("*", 4))) for model in ("default", "fast"))
    # and the wait's heartbeat period, as the stack configures it (BatchHeartbeatSeconds)
    heartbeat_s = result.payload.pop("heartbeat_s")
    assert isinstance(heartbeat_s, int) and heartbeat_s > 0
    assert result.payload == {"total": 5, "valid": 4, "invalid": 1, "chunks": 1, "window": window}
    # the chunk files hold the valid lines in input order, as requests with the manifest's defaults and
    # the line's request id
    s3 = stack_invoke.aws("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"work/{batch_id}/")
    chunk_keys = sorted(found["Key"] for found in listed.get("Contents", []))
    assert len(chunk_keys) == 1, chunk_keys
    entries = [
        entry
        for key in chunk_keys
        for entry in json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ]
    assert [entry["line"] for entry in entries] == CLAIMS_VALID
    requests = [entry["request"] for entry in entries]
    assert [r["request_id"] for r in requests] == [f"{batch_id}-{line}" for line in CLAIMS_VALID]
    assert [r["model"] for r in requests] == ["default", "default", "default", "fast"]
    assert all(r["caller"]["project"] == "claims" and r["inference"]["max_tokens"] == 512 for r in requests)
    assert [r["reply"] for r in requests] == [{"row": str(line)} for line in CLAIMS_VALID]
    # the status item: RUNNING, with the counts; the bad line is already done (failed)
    items = batch_items(stack_invoke, batch_id)
    status = items.pop(0)
    assert status["state"] == "RUNNING"
    assert {name: status[name] for name in ("total", "valid", "invalid", "done", "failed", "completed")} == {
        "total": 5,
        "valid": 4,
        "invalid": 1,
        "done": 1,
        "failed": 1,
        "completed": 0,
    }
    assert status["source_uri"] == f"s3://{bucket}/{batch['key']}"
    # and the not-JSON line is a FAILED line item with the reason; the valid lines have none yet
    assert list(items) == [CLAIMS_NOT_JSON]
    bad = items[CLAIMS_NOT_JSON]
    assert bad["status"] == "FAILED"
    assert bad["request_id"] == f"{batch_id}-{CLAIMS_NOT_JSON}"
    assert bad["error"]["message"] == MESSAGES["RequestInvalid"]  # fixed: nothing of the line
    assert "json_invalid" in bad["error"]["problems"]


def test_batch_progress_records_a_line_result_once(stack_invoke: StackInvoke) -> None:
    # GIVEN a split batch of the sample file, every valid line started, armed by the stack's BatchRelease
    # with the release sample's task token (it starts nothing more)
    batch, split = split_in_stack(stack_invoke)
    batch_id = batch["batch_id"]
    all_lines_started(stack_invoke, batch_id, split["valid"])
    token = sample("batch/release/task.json")["task_token"]
    assert run_in_stack(
        stack_invoke, "BatchReleaseFunction", {"batch_id": batch_id, "task_token": token}
    ) == {"started": 0}
    before = batch_status(stack_invoke, batch_id)
    # and the progress sample: line 1's result event, for this batch
    event = sample("batch/progress/sqs-result-event.json")
    event["Records"] = [result_record(batch, 1)]
    line_finished(stack_invoke, batch, 1)
    detail = json.loads(event["Records"][0]["body"])["detail"]

    # WHEN it is delivered
    first = stack_invoke("BatchProgressFunction", event)

    # THEN line 1 is recorded as COMPLETED, with its output, usage and reply fields
    assert first.payload == {"batchItemFailures": []}, first.stderr
    line = batch_items(stack_invoke, batch_id)[1]
    assert line["status"] == "COMPLETED"
    assert line["request_id"] == f"{batch_id}-1"
    assert line["output"] == detail["output"]
    assert line["usage"] == detail["usage"]
    assert line["reply"] == {"row": "1"}
    # the counters moved by this one line
    after = batch_status(stack_invoke, batch_id)
    assert after["done"] == before["done"] + 1
    assert after["completed"] == before["completed"] + 1
    assert after["input_tokens"] == before["input_tokens"] + detail["usage"]["input_tokens"]
    assert after["output_tokens"] == before["output_tokens"] + detail["usage"]["output_tokens"]
    # and, lines 2-4 not done, the batch still runs (its workflow is not resumed)
    assert after["state"] == "RUNNING"
    assert after["task_token"] == token

    # WHEN the same message is delivered again (SQS delivers at least once)
    again = stack_invoke("BatchProgressFunction", event)

    # THEN it is consumed, and counts nothing twice
    assert again.payload == {"batchItemFailures": []}, again.stderr
    now = batch_status(stack_invoke, batch_id)
    assert {name: now[name] for name in COUNTERS} == {name: after[name] for name in COUNTERS}
    assert now["state"] == "RUNNING"
    assert batch_items(stack_invoke, batch_id)[1] == line


def test_batch_assemble_writes_the_results_file_in_input_order(stack_invoke: StackInvoke) -> None:
    # GIVEN a split batch of the sample file whose every line has finished: lines 1-4 recorded from
    # their result events (line 3 blocked) by the stack's BatchProgress, line 5 failed at the split
    batch, split = split_in_stack(stack_invoke)
    batch_id, bucket = batch["batch_id"], batch["bucket"]
    all_lines_started(stack_invoke, batch_id, split["valid"])
    records = [result_record(batch, line, blocked=line == 3) for line in CLAIMS_VALID]
    for line in CLAIMS_VALID:
        line_finished(stack_invoke, batch, line, blocked=line == 3)
    assert run_in_stack(stack_invoke, "BatchProgressFunction", {"Records": records}) == {
        "batchItemFailures": []
    }
    assert set(batch_items(stack_invoke, batch_id)) == {0, *CLAIMS_VALID, CLAIMS_NOT_JSON}
    usage = json.loads(records[0]["body"])["detail"]["usage"]
    event = {**sample("batch/assemble/workflow-state.json"), "batch": batch}

    # WHEN
    result = stack_invoke("BatchAssembleFunction", event)

    # THEN a COMPLETED summary with the batch's counts and where its results are
    assert not result.is_error, result.payload
    summary = result.payload
    results_key = f"results/{uploader_of(batch['key'])}/{batch_id}.jsonl"
    assert summary["status"] == "COMPLETED"
    assert summary["batch_id"] == batch_id
    assert summary["source_uri"] == f"s3://{bucket}/{batch['key']}"
    assert summary["results_uri"] == f"s3://{bucket}/{results_key}"
    assert {name: summary[name] for name in ("total", "completed", "blocked", "failed", "invalid")} == {
        "total": 5,
        "completed": 3,
        "blocked": 1,
        "failed": 1,
        "invalid": 1,
    }
    assert summary["input_tokens"] == 3 * usage["input_tokens"]
    assert summary["output_tokens"] == 3 * usage["output_tokens"]
    # results/<batch>.jsonl: one line per input line, in input order
    body = stack_invoke.aws("s3").get_object(Bucket=bucket, Key=results_key)["Body"].read().decode()
    rows = [json.loads(row) for row in body.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4, 5]
    assert [row["request_id"] for row in rows] == [f"{batch_id}-{line}" for line in range(1, 6)]
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED", "BLOCKED", "COMPLETED", "FAILED"]
    assert [row["reply"] for row in rows[:4]] == [{"row": str(line)} for line in CLAIMS_VALID]
    assert rows[0]["output"]["text"] == json.loads(records[0]["body"])["detail"]["output"]["text"]
    assert rows[2]["classification"]["decision"] == "block"
    assert "output" not in rows[2]
    assert rows[4]["error"]["message"] == MESSAGES["RequestInvalid"]
    # and the status item says COMPLETED, with the results' place
    status = batch_status(stack_invoke, batch_id)
    assert status["state"] == "COMPLETED"
    assert status["results_uri"] == summary["results_uri"]


def test_batch_record_failure_records_why_a_batch_failed(stack_invoke: StackInvoke) -> None:
    # GIVEN the failure sample (a split that found the file empty), for a fresh batch in the stack's bucket
    event = sample("batch/record-failure/failure-state.json")
    batch = event["batch"]
    batch.update(batch_id=fresh_batch_id(), bucket=stack_invoke.state["outputs"]["BatchInputBucketName"])

    # WHEN
    result = stack_invoke("BatchRecordFailureFunction", event)

    # THEN a FAILED summary, with the reason taken from the error's cause, and no results file
    assert not result.is_error, result.payload
    summary = result.payload
    assert summary["status"] == "FAILED"
    assert summary["batch_id"] == batch["batch_id"]
    assert summary["reason"] == f"BatchInvalid: {MESSAGES['BatchInvalid']} (empty)"
    assert summary["source_uri"] == f"s3://{batch['bucket']}/{batch['key']}"
    assert "results_uri" not in summary
    # and the status item says FAILED, with the reason
    status = batch_status(stack_invoke, batch["batch_id"])
    assert status["state"] == "FAILED"
    assert status["reason"] == summary["reason"]


def test_batch_release_keeps_the_task_token_and_starts_at_most_a_window_of_lines(
    stack_invoke: StackInvoke,
) -> None:
    # (Last of the batch tests: the lines it starts run on in the stack after it.)
    # GIVEN a split batch with more valid lines than its window: the sample file and three more requests
    extra = "".join(
        json.dumps({"prompt": f"Say the number {n}.", "reply": {"row": str(n)}}) + "\n" for n in (6, 7, 8)
    )
    body = (BATCH_FILES / f"{CLAIMS}.jsonl").read_bytes() + extra.encode()
    batch, split = split_in_stack(stack_invoke, body)
    batch_id = batch["batch_id"]
    valid_lines = [*CLAIMS_VALID, 6, 7, 8]
    assert split["valid"] == len(valid_lines) > split["window"] >= 1, split
    # and the release sample (the AwaitLines payload), for this batch
    event = {**sample("batch/release/task.json"), "batch_id": batch_id}

    # WHEN
    result = stack_invoke("BatchReleaseFunction", event)

    # THEN it started some lines, never more than the window in flight at once: a line that ends while
    # the release is still starting lines hands its slot on, so more than the window may start in all
    assert not result.is_error, result.payload
    started = result.payload["started"]
    finished = int(batch_status(stack_invoke, batch_id).get("done", 0))
    assert 1 <= started <= split["window"] + finished, (result.payload, finished)
    # and kept the task token the batch workflow waits on
    assert batch_status(stack_invoke, batch_id)["task_token"] == event["task_token"]
    # and the lines' workflows run in the inference state machine, named <batch>-<line>: the first
    # `started` valid lines (later ones start only as results come back), never more than the window at once
    executions = executions_named(
        stack_invoke, stack_invoke.state["outputs"]["StateMachineArn"], f"{batch_id}-"
    )
    assert {f"{batch_id}-{line}" for line in valid_lines[:started]} <= set(executions)
    assert set(executions) <= {f"{batch_id}-{line}" for line in valid_lines}
    assert sum(status == "RUNNING" for status in executions.values()) <= split["window"]


def test_batch_reconcile_recounts_a_batch_whose_lines_are_not_all_done(stack_invoke: StackInvoke) -> None:
    # GIVEN a split batch of the sample file, every valid line started, one line's result recorded
    batch, split = split_in_stack(stack_invoke)
    batch_id = batch["batch_id"]
    all_lines_started(stack_invoke, batch_id, split["valid"])
    line_finished(stack_invoke, batch, 1)
    assert run_in_stack(stack_invoke, "BatchProgressFunction", {"Records": [result_record(batch, 1)]}) == {
        "batchItemFailures": []
    }
    event = sample("batch/reconcile/heartbeat-timeout.json")
    event["batch_id"] = batch_id
    event["state"] = {"batch": batch, "split": split}

    # WHEN the wait's heartbeat timed out and the reconciliation runs
    result = stack_invoke("BatchReconcileFunction", event)

    # THEN it is not finished: the bad line and line 1 are done, the other lines are still running
    assert not result.is_error, result.payload
    assert result.payload["finished"] is False
    assert (result.payload["done"], result.payload["total"]) == (2, 5)


def test_the_reaper_ends_a_request_left_accepted_past_the_longest_run(stack_invoke: StackInvoke) -> None:
    # GIVEN a lineage item claimed long ago whose workflow never finished (no execution by its name)
    request_id = fresh_id("abandoned")
    stack_invoke.aws("dynamodb").put_item(
        TableName=stack_invoke.state["outputs"]["LineageTableName"],
        Item={
            "request_id": {"S": request_id},
            "status": {"S": "ACCEPTED"},
            "created_at": {"S": "2026-01-01T00:00:00.000+00:00"},
            "day": {"S": "2026-01-01"},
            "expires_at": {"N": "4102444800"},
            "caller_principal": {"S": "AROAQXZEXAMPLEROLEID1:claims-intake"},
            "source": {"S": "sqs"},
            "model_requested": {"S": "default"},
        },
    )

    # WHEN the scheduled reaper runs
    result = stack_invoke("ReaperFunction", sample("reap/scheduled.json"))

    # THEN it ends that request as FAILED (RequestAbandoned)
    assert not result.is_error, result.payload
    assert request_id in result.payload["reaped"]
    item = lineage(stack_invoke, request_id)
    assert item is not None
    assert item["status"] == {"S": "FAILED"}
    assert item["error"]["M"]["code"] == {"S": "RequestAbandoned"}


def test_sync_invoke_answers_the_signed_caller_in_one_function(stack_invoke: StackInvoke) -> None:
    # GIVEN the sample POST /v1/invoke, for a request id not seen before
    event = sample("api-invoke/invoke.json")
    request = json.loads(event["body"]) | {"request_id": fresh_id("sync")}
    event["body"] = json.dumps(request)

    # WHEN
    result = stack_invoke("SyncInvokeFunction", event)

    # THEN the emulator's answer comes back at once, and lineage is final
    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 200, result.payload
    body = json.loads(result.payload["body"])
    assert (body["request_id"], body["status"]) == (request["request_id"], "COMPLETED")
    assert body["output"]["text"]
    item = lineage(stack_invoke, request["request_id"])
    assert item is not None and item["status"] == {"S": "COMPLETED"}


def test_rotation_makes_a_new_commercial_key_current_in_four_steps(stack_invoke: StackInvoke) -> None:
    # GIVEN the stack's commercial secret and its current version
    secrets = stack_invoke.aws("secretsmanager")
    secret_arn = stack_invoke.state["outputs"]["CommercialCredentialsSecretArn"]
    before = secrets.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
    previous = next(v for v, stages in before.items() if "AWSCURRENT" in stages)
    token = str(uuid.uuid4())

    # WHEN Secrets Manager would run the four steps (moto runs no schedule)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        event = sample("rotate/create-secret.json") | {
            "Step": step,
            "SecretId": secret_arn,
            "ClientRequestToken": token,
        }
        result = stack_invoke("RotateCredentialsFunction", event)
        assert not result.is_error, f"{step}: {result.payload}\n{result.stderr[-4000:]}"

    # THEN the new version is current and the previous one is not
    after = secrets.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
    assert "AWSCURRENT" in after[token]
    assert "AWSCURRENT" not in after.get(previous, [])


def test_the_seal_chains_and_signs_the_last_closed_day(stack_invoke: StackInvoke) -> None:
    # GIVEN a final lineage record on the last closed day (the stack's settle time: LINEAGE_SEAL_SETTLE_S)
    from datetime import UTC, datetime, timedelta

    # (not xpi.services.sealing.last_closed_day: importing the package here would build its Metrics
    # before the unit tests' environment names their namespace)
    day = ((datetime.now(UTC) - timedelta(seconds=7200)).date() - timedelta(days=1)).isoformat()
    request_id = fresh_id("sealed")
    table = stack_invoke.state["outputs"]["LineageTableName"]
    bucket = stack_invoke.state["outputs"]["LineageDigestBucketName"]
    s3 = stack_invoke.aws("s3")
    sealed_before = s3.list_objects_v2(Bucket=bucket, Prefix=f"lineage-digests/{day}").get("KeyCount", 0)
    stack_invoke.aws("dynamodb").put_item(
        TableName=table,
        Item={
            "request_id": {"S": request_id},
            "status": {"S": "COMPLETED"},
            "created_at": {"S": f"{day}T12:00:00.000+00:00"},
            "day": {"S": day},
            "expires_at": {"N": "4102444800"},
            "caller_principal": {"S": "AROAQXZEXAMPLEROLEID1:claims-intake"},
            "source": {"S": "sqs"},
            "model_requested": {"S": "default"},
        },
    )

    # WHEN the scheduled seal runs
    result = stack_invoke("LineageSealFunction", sample("seal/scheduled.json"))

    # THEN that day's digest is in the locked bucket and, sealed by this run, the record carries its link
    assert not result.is_error, result.payload
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"lineage-digests/{day}").get("KeyCount", 0) == 1
    if not sealed_before:  # a stack reused from an earlier run may have sealed that day already
        assert day in [sealed["day"] for sealed in result.payload["sealed"]], result.payload
        item = lineage(stack_invoke, request_id)
        assert item is not None and "chain_hash" in item and "chain_prev" in item


def test_the_compliance_checker_reads_the_live_configuration_and_keeps_its_run(
    stack_invoke: StackInvoke,
) -> None:
    # WHEN the scheduled configuration checks run in the function's container
    result = stack_invoke("ComplianceCheckFunction", sample("compliance-check/scheduled.json"))

    # THEN every check has a result, the pass rate is theirs, and the run is kept where the report reads it
    assert not result.is_error, result.payload
    checks = result.payload["checks"]
    assert checks and set(checks.values()) <= {"PASS", "FAIL"}, checks
    assert 0 <= result.payload["pass_rate"] <= 100
    bucket = stack_invoke.state["outputs"]["ArtifactsBucketName"]
    kept = stack_invoke.aws("s3").get_object(Bucket=bucket, Key="compliance/config-checks/latest.json")
    stored = json.loads(kept["Body"].read())
    assert stored["pass_rate"] == result.payload["pass_rate"]
    assert {c["check"]: c["status"] for c in stored["checks"]} == checks


def test_the_compliance_report_answers_its_period_as_csv(stack_invoke: StackInvoke) -> None:
    # WHEN the sample GET /v1/compliance/report?format=csv reaches the function
    result = stack_invoke("ComplianceReportFunction", sample("compliance-report/csv.json"))

    # THEN a CSV of the sample's period, each item's figures with the controls they evidence
    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 200, result.payload
    rows = result.payload["body"].splitlines()
    assert any(row.startswith("period,report,from,2026-11-20") for row in rows), rows[:5]
    assert any(row.startswith("item,tamper_check,") for row in rows), rows[:20]


def test_the_usage_report_answers_its_period_as_csv(stack_invoke: StackInvoke) -> None:
    # WHEN the sample GET /v1/usage?group_by=project,model&format=csv reaches the function
    result = stack_invoke("UsageReportFunction", sample("usage/csv.json"))

    # THEN a CSV with the asked dimensions first, then the figures, and a last row of totals
    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 200, result.payload
    rows = result.payload["body"].splitlines()
    assert rows[0].startswith("project,model,requests"), rows[:2]
    assert rows[-1].startswith("total,"), rows[-2:]


def test_the_dashboard_page_answers_its_sign_in_configuration_unsigned(stack_invoke: StackInvoke) -> None:
    # WHEN the sample GET /dashboard/sign-in.json (no IAM identity: the route is open) reaches the function
    result = stack_invoke("DashboardPageFunction", sample("dashboard-page/sign-in-config.json"))

    # THEN the stack's sign-in configuration, never stored, under the page's Content-Security-Policy
    assert not result.is_error, result.payload
    assert result.payload["statusCode"] == 200, result.payload
    assert json.loads(result.payload["body"])["signIn"] in {"oidc", "none"}
    # A REST API's proxy answer carries its headers as multiValueHeaders (Powertools' resolver)
    headers = {name: values[0] for name, values in (result.payload.get("multiValueHeaders") or {}).items()}
    headers.update(result.payload.get("headers") or {})
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_the_path_health_check_reads_its_paths_and_reports_none_when_none_are_configured(
    stack_invoke: StackInvoke,
) -> None:
    # WHEN the scheduled probe runs on the local stack, which configures no egress paths
    result = stack_invoke("PathHealthFunction", sample("check-paths/scheduled.json"))

    # THEN it read the (absent) paths parameter under its own role and probed nothing
    assert not result.is_error, result.payload
    assert result.payload == {"paths": []}
