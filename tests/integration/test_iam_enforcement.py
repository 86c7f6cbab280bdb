"""IAM is enforced on the local stack as on AWS: every principal calls with its own role, and a role that
loses one permission breaks the very flow that needs it (docs/local-stack.md, "IAM on the local stack").

Each test strips one permission from one role through the IAM API (as an administrator would), shows
the flow failing and the denial in the stack's call log, and puts the policy back.
"""

import ast
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import never_happens_within, wait_until

pytestmark = pytest.mark.integration


@contextmanager
def without_permission(iam: Any, role_name: str, action: str, resource_part: str = "") -> Iterator[None]:
    """The role's inline policies with `action` removed (only where a statement's resource contains
    `resource_part`), restored on exit."""
    originals = {
        name: _document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    }
    stripped = 0
    for name, document in originals.items():
        kept = []
        for statement in _listed(document["Statement"]):
            actions = _listed(statement.get("Action", []))
            resources = " ".join(_listed(statement.get("Resource", [])))
            if action in actions and resource_part in resources:
                stripped += 1
                actions = [a for a in actions if a != action]
                if not actions:
                    continue
            kept.append({**statement, "Action": actions})
        if not kept:  # IAM refuses a policy with no statement: the whole policy goes
            iam.delete_role_policy(RoleName=role_name, PolicyName=name)
            continue
        iam.put_role_policy(
            RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": kept})
        )
    assert stripped, f"{role_name} has no statement granting {action} on *{resource_part}*"
    try:
        yield
    finally:
        for name, document in originals.items():
            iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(document))


def _document(value: Any) -> dict[str, Any]:
    """A policy document as GetRolePolicy returns it: a dict (boto3 decodes AWS's JSON), or, for a policy
    moto's CloudFormation created, the Python repr of one; with the Version PutRolePolicy requires (SAM's
    policy templates leave it out, which IAM reads as the same version)."""
    if isinstance(value, dict):
        return {"Version": "2012-10-17", **value}
    try:
        parsed: dict[str, Any] = json.loads(value)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(value)
    return {"Version": "2012-10-17", **parsed}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def denials(local_stack: LocalStackClient, role_name: str) -> list[dict[str, Any]]:
    """The denied calls of one role, from the stack's IAM call log."""
    lines = Path(local_stack.state["call_log"]).read_text(encoding="utf-8").splitlines()[1:]
    entries = [json.loads(line) for line in lines]
    return [e for e in entries if not e["allowed"] and f":assumed-role/{role_name}/" in e["principal"]]


def _start_standard(local_stack: LocalStackClient, request: dict[str, Any]) -> str:
    """The inference workflow started as its producers start it: the body under payloads/, the
    execution named by the request id with a reference to it."""
    request_id = str(request["request_id"])
    body = json.dumps(request).encode()
    bucket, key = local_stack.outputs["ArtifactsBucketName"], f"payloads/{request_id}/test.json"
    local_stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    source = {"kind": "api", "principal": "integration", "received_at": "2026-01-01T00:00:00Z"}
    local_stack.client("stepfunctions").start_execution(
        stateMachineArn=local_stack.outputs["StateMachineArn"],
        name=request_id,
        input=json.dumps({"payload": {"bucket": bucket, "key": key, "bytes": len(body)}, "source": source}),
    )
    return request_id


def _request(prompt: str) -> dict[str, Any]:
    return {"request_id": f"iam-{uuid.uuid4().hex[:10]}", "model": "default", "prompt": prompt}


def test_a_function_role_without_its_table_write_fails_the_request(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the queue workflow's process step's role without dynamodb:PutItem on the lineage table (its
    # claim)
    role = local_stack.state["resources"]["ProcessRequestFunctionRole"]
    with without_permission(local_stack.client("iam"), role, "dynamodb:PutItem", "LineageTable"):
        # WHEN a request that would be answered is sent
        request_id = local_stack.send(_request("a request that needs its lineage claim"))
        event = results.wait_for(request_id, timeout_s=90)

    # THEN it fails instead of completing (answered once by the step that could not claim it), and the
    # denial is the role's, for that action
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "ValidationUnavailable"
    denied = denials(local_stack, role)
    assert any(d["action"] == "dynamodb:PutItem" and "LineageTable" in d["resource"] for d in denied)


def test_the_state_machine_role_without_invoke_on_one_step_fails_at_that_step(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the Standard workflow's role (POST /v1/requests, batch lines) without lambda:InvokeFunction
    # on the route step's function
    role = local_stack.state["resources"]["InferenceStateMachineRole"]
    route_function = local_stack.state["resources"]["RouteFunction"]
    with without_permission(local_stack.client("iam"), role, "lambda:InvokeFunction", route_function):
        # WHEN a request goes through the workflow (started as its producers start it)
        request_id = _start_standard(local_stack, _request("a request the route step must see"))
        event = results.wait_for(request_id, timeout_s=90)

    # THEN the workflow's tasks ran as its role: the route step was refused, the request failed
    assert event["detail-type"] == "Inference Failed"
    assert any(
        d["action"] == "lambda:InvokeFunction" and d["resource"].endswith(route_function)
        for d in denials(local_stack, role)
    )


def test_the_queue_is_polled_with_the_functions_role(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the consumer's role without sqs:ReceiveMessage
    role = local_stack.state["resources"]["ConsumeRequestsFunctionRole"]
    with without_permission(local_stack.client("iam"), role, "sqs:ReceiveMessage"):
        # THEN the poller is refused as the function's role (one poller per mapping: once it has been
        # refused, no receive allowed earlier is still in flight)
        wait_until(lambda: any(d["action"] == "sqs:ReceiveMessage" for d in denials(local_stack, role)), 30)
        # WHEN a request is sent THEN nothing receives it: no workflow claims it in the seconds a
        # receive (one-second long polls) would have taken
        request_id = local_stack.send(_request("a request waiting for a poller that may read"))
        assert never_happens_within(lambda: local_stack.lineage(request_id), would_have_taken_s=5)

    # AND once the permission is back the same message is answered
    assert results.wait_for(request_id, timeout_s=90)["detail-type"] == "Inference Completed"


def test_requests_signed_with_unknown_keys_are_refused(local_stack: LocalStackClient) -> None:
    # GIVEN a client holding keys no IAM user or role session owns
    stranger = boto3.client(
        "sqs",
        endpoint_url=local_stack.state["aws"],
        region_name=local_stack.state["region"],
        aws_access_key_id="AKIA" + uuid.uuid4().hex[:16].upper(),
        aws_secret_access_key="not-a-key",
    )
    # WHEN it sends to the requests queue THEN moto refuses it as AWS would
    with pytest.raises(ClientError) as refused:
        stranger.send_message(QueueUrl=local_stack.outputs["RequestsQueueUrl"], MessageBody="{}")
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, error
    assert "InvalidClientTokenId" in str(error) or "security token" in str(error), error


def test_each_function_runs_with_its_own_role(local_stack: LocalStackClient) -> None:
    # GIVEN the credentials the stack hands each function (as Lambda puts them in its environment)
    credentials = local_stack.state["function_credentials"]
    assert set(credentials) >= {"ConsumeRequestsFunction", "InvokeModelFunction", "ApiFunction"}
    for logical_id, env in credentials.items():
        # WHEN the function asks STS who it is
        sts = boto3.client(
            "sts",
            endpoint_url=local_stack.state["aws"],
            region_name=local_stack.state["region"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )
        arn = sts.get_caller_identity()["Arn"]
        # THEN it is a session of its own execution role, in the GovCloud partition
        role = local_stack.state["resources"][f"{logical_id}Role"]
        assert arn.startswith("arn:aws-us-gov:sts::") and f":assumed-role/{role}/" in arn


def test_only_xpis_roles_put_xpi_events_on_the_bus(local_stack: LocalStackClient) -> None:
    # GIVEN the operator, whose identity policy allows every action (as an account administrator's may)
    events = local_stack.client("events")
    bus = local_stack.outputs["EventBusName"]
    assert "OnlyXpiRolesPublishXpiSources" in events.describe_event_bus(Name=bus)["Policy"]
    forged = {
        "EventBusName": bus,
        "Source": "xpi.inference",
        "DetailType": "Inference Completed",
        "Detail": json.dumps({"request_id": f"b-{uuid.uuid4().hex[:24]}-1", "status": "COMPLETED"}),
    }

    # WHEN it puts an event of xpi's source on the bus, THEN the bus policy's Deny refuses it
    with pytest.raises(ClientError, match="AccessDenied"):
        events.put_events(Entries=[forged])
    # AND an event of its own source is still its to put
    response = events.put_events(Entries=[{**forged, "Source": "claims.app"}])
    assert response["FailedEntryCount"] == 0


def test_a_dlq_redrive_runs_as_the_original_sender_not_the_api_role(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    from tests.integration.test_api import ApiClient

    sqs = local_stack.client("sqs")
    dlq = local_stack.outputs["RequestsDLQUrl"]
    role = local_stack.state["resources"]["ConsumeRequestsFunctionRole"]
    # GIVEN a valid request without a request id whose workflow the consumer cannot start, until SQS
    # moves it to the DLQ (visibility 4 s, maxReceiveCount 3)
    marker = f"redrive-{uuid.uuid4().hex[:8]}"
    with without_permission(local_stack.client("iam"), role, "states:StartExecution"):
        sent = sqs.send_message(
            QueueUrl=local_stack.outputs["RequestsQueueUrl"],
            MessageBody=json.dumps({"model": "default", "prompt": f"Name a river ({marker})."}),
        )
        original_id = sent["MessageId"]
        wait_until(
            lambda: (
                int(
                    sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
                        "Attributes"
                    ]["ApproximateNumberOfMessages"]
                )
                > 0
            ),
            60,
        )
    assert local_stack.lineage(original_id) is None

    # WHEN an admin redrives the DLQ through the API (SQS re-sends as the admin function's role, new ids)
    status, body = ApiClient(local_stack).call("operator_mfa", "POST", "/v1/admin/dlq/redrive")
    assert status == 200, body

    # THEN the request runs once under the id it was first sent with, as its original sender
    event = results.wait_for(original_id, timeout_s=90)
    assert event["detail-type"] == "Inference Completed"
    item = local_stack.lineage(original_id)
    assert item is not None and item["source_reference"] == original_id
    redriver_role_id = local_stack.client("iam").get_role(
        RoleName=local_stack.state["resources"]["AdminFunctionRole"]
    )["Role"]["RoleId"]
    assert not item["caller_principal"].startswith(redriver_role_id)
    assert event["detail"]["caller"]["principal"] == item["caller_principal"]
