"""POST /v1/invoke on the local stack: the sync path (the workflow's steps in one function) against the
queue path (the inference workflow), with the same requests, compared field by field in lineage and in
the result events; its guarantees under concurrent duplicates; and its role's grants, used here under
the local stack's IAM enforcement (the commercial secret's policy names the role)."""

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from xpi_tools.emulator.client import EmulatorControl

from tests.helpers.delivery import without_delivery_fields
from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import wait_until
from tests.integration.test_api import ApiClient, assert_matches_document

pytestmark = pytest.mark.integration

DEFAULT_MODEL = "us.amazon.nova-lite-v1:0"
# The same content through both paths: allowed, redacted, blocked (a CUI marking), a model the routing
# does not know (fails at the route step), and an answer too large to travel inline (stored in S3).
CASES = {
    "allow": {"model": "default", "prompt": "Name three rivers in Oregon.", "caller": {"project": "sync"}},
    "redact": {"model": "default", "prompt": "Reply to jo.doe@example.com about the schedule."},
    "block": {"model": "default", "prompt": "CUI//SP-PRVCY\nRoster of the office."},
    "unknown-model": {"model": "no-such-model", "prompt": "hello"},
    "large-output": {
        "model": "claude",
        "prompt": "Write at length. [[emulator:output_chars=40000]]",
        "inference": {"max_tokens": 60000},
    },
}


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.set_latency(DEFAULT_MODEL)
    control.clear_faults()


def _comparable(record: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The record without its per-delivery fields, its own id (in an output's S3 key) made neutral."""
    kept = without_delivery_fields(record)
    return dict(json.loads(json.dumps(kept).replace(request_id, "<request id>")))


def _plain(item: dict[str, Any] | None) -> dict[str, Any]:
    assert item is not None
    return json.loads(json.dumps(item, default=lambda d: int(d) if d == int(d) else float(d)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_sync_path_decides_records_and_emits_as_the_queue_path(
    case: str, api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the same request content, once on the requests queue and once through POST /v1/invoke
    body = CASES[case]
    pairs: list[tuple[str, str, int, Any, dict[str, Any], dict[str, Any]]] = []

    def both_judged_under_one_configuration() -> bool:
        # Each function caches the policy and routing for CONFIG_MAX_AGE_S (60 s): just after another test
        # put a new revision, one path may still judge under the older one. Sent again until both agree.
        queued_id = local_stack.send(dict(body))
        sync_id = f"sync-{case}-{uuid.uuid4().hex[:8]}"
        status, answer = api.call("caller2", "POST", "/v1/invoke", {**body, "request_id": sync_id})
        queued_event, sync_event = results.wait_for(queued_id), results.wait_for(sync_id)
        pairs.append((queued_id, sync_id, status, answer, queued_event, sync_event))
        queued, synced = local_stack.lineage(queued_id) or {}, local_stack.lineage(sync_id) or {}
        revisions = ("policy_revision", "routing_revision")
        return all(queued.get(name) == synced.get(name) for name in revisions)

    # WHEN both are answered (under the same policy and routing revisions)
    wait_until(both_judged_under_one_configuration, timeout_s=150, interval_s=1, what="one configuration")
    queued_id, sync_id, status, answer, queued_event, sync_event = pairs[-1]

    # THEN the sync path answered with its result event's detail, in the document's shape
    assert status == 200, answer
    assert_matches_document("/v1/invoke", "POST", status, answer)
    assert answer == sync_event["detail"]
    # AND decisions, lineage and events agree field by field (but for who, when and how it came)
    assert sync_event["detail-type"] == queued_event["detail-type"]
    assert _comparable(sync_event["detail"], sync_id) == _comparable(queued_event["detail"], queued_id)
    queued_item, sync_item = _plain(local_stack.lineage(queued_id)), _plain(local_stack.lineage(sync_id))
    assert _comparable(sync_item, sync_id) == _comparable(queued_item, queued_id)
    assert (sync_item["source"], sync_item["caller_principal"]) == ("api", api.arn("caller2"))
    if case == "large-output":  # stored under outputs/ by each path, the event carrying the pointer
        assert "text" not in answer["output"] and answer["output"]["s3_uri"].endswith(
            f"/outputs/{sync_id}.txt"
        )
    # AND each got exactly one result event
    local_stack.wait_until_nothing_more_can_come(
        results, local_stack.outputs["QueueStateMachineArn"], queued_id
    )
    assert len(results.events_for(queued_id)) == 1 and len(results.events_for(sync_id)) == 1
    # AND the sync path started no workflow
    executions = local_stack.executions(local_stack.outputs["StateMachineArn"])
    assert not any(arn.endswith(f":{sync_id}") for arn in executions)
    assert not local_stack.queue_runs_of(sync_id)


def test_concurrent_duplicates_call_bedrock_once_and_get_the_same_answer(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a model slow enough for the calls to overlap, and a request tagged to count its Bedrock calls
    emulator.set_latency(DEFAULT_MODEL, time_to_first_token_ms=1500)
    tag = f"dup{uuid.uuid4().hex[:8]}"
    request = {"request_id": f"sync-dup-{tag}", "model": "default", "prompt": f"[[emulator:tag={tag}]] Hi."}
    answers: list[tuple[int, Any]] = []

    # WHEN three calls with the same request id arrive at once, and one more after they are answered
    def call() -> None:
        answers.append(api.call("caller2", "POST", "/v1/invoke", request))

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    call()

    # THEN every call got the one answer, Bedrock was called once, and one result event went out
    assert [status for status, _ in answers] == [200, 200, 200, 200], answers
    assert all(body == answers[0][1] for _, body in answers)
    assert emulator.counters().tag(tag).calls == 1
    results.wait_for(request["request_id"])
    assert results.caught_up()
    assert len(results.events_for(request["request_id"])) == 1


def test_an_invalid_request_ends_as_on_the_queue_path(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    request_id = f"sync-invalid-{uuid.uuid4().hex[:8]}"

    status, body = api.call("caller2", "POST", "/v1/invoke", {"request_id": request_id, "messages": "nope"})

    assert (status, body["error"]["code"]) == (400, "RequestInvalid")
    assert (
        results.wait_for(request_id, detail_type="Inference Failed")["detail"]["error"]["code"]
        == "RequestInvalid"
    )
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "FAILED" and item["source"] == "api"


def test_a_request_id_sent_through_the_queue_is_a_conflict(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    # GIVEN a request answered through the queue path
    tag = f"q{uuid.uuid4().hex[:8]}"
    request_id = local_stack.send({"model": "default", "prompt": f"[[emulator:tag={tag}]] Queued."})
    results.wait_for(request_id)

    # WHEN the same id comes to POST /v1/invoke
    status, body = api.call(
        "caller2", "POST", "/v1/invoke", {"request_id": request_id, "model": "default", "prompt": "Again."}
    )

    # THEN it is refused as a duplicate, with no second Bedrock call
    assert (status, body["error"]["code"], body["error"]["request_id"]) == (409, "RequestExists", request_id)
    assert emulator.counters().tag(tag).calls == 1


def test_the_sync_role_reads_the_commercial_credentials_and_the_api_role_does_not(
    local_stack: LocalStackClient,
) -> None:
    secret_arn = local_stack.outputs["CommercialCredentialsSecretArn"]
    credentials = local_stack.state["function_credentials"]

    def reader(function: str) -> Any:
        keys = credentials[function]
        return boto3.client(
            "secretsmanager",
            endpoint_url=local_stack.state["aws"],
            region_name=local_stack.state["region"],
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=keys["AWS_SESSION_TOKEN"],
        )

    # the sync path's role reads it (its Deny names the role beside the invoke step's)
    secret = json.loads(reader("SyncInvokeFunction").get_secret_value(SecretId=secret_arn)["SecretString"])
    assert secret["type"] in {"iam", "api_key"}
    # and the API function's role, which has no grant, does not
    with pytest.raises(Exception, match="AccessDenied"):
        reader("ApiFunction").get_secret_value(SecretId=secret_arn)


def test_the_api_invokes_its_function_as_api_gateway_does_not_as_a_signed_lambda_api_call(
    api: ApiClient, local_stack: LocalStackClient
) -> None:
    # GIVEN the stack's usage log (every AWS call its IAM layer allowed, every invocation) from here on
    from pathlib import Path

    from xpi_tools.local.usage import read_usage

    usage_log = Path(local_stack.state["usage_log"])
    offset = usage_log.stat().st_size
    function = local_stack.outputs["SyncInvokeFunctionName"]

    # WHEN a request is answered through POST /v1/invoke
    status, answer = api.call(
        "caller2", "POST", "/v1/invoke", {"request_id": f"sync-hop-{uuid.uuid4().hex[:8]}", **CASES["allow"]}
    )

    # THEN the API reached its integration and the function ran once, in its runtime
    assert status == 200, answer
    lines, _ = read_usage(usage_log, offset)
    assert [line for line in lines if line["kind"] == "api"] == [
        {"kind": "api", "principal": "", "function": function}
    ]
    assert len([line for line in lines if line["kind"] == "lambda" and line["function"] == function]) == 1
    # AND no principal called the Lambda API to get there: API Gateway's invoke is AWS's own, not a
    # request signed by an administrator and evaluated against their policies
    assert not [
        line
        for line in lines
        if line["kind"] == "call"
        and line["action"] == "lambda:InvokeFunction"
        and function in str(line["resource"])
    ]
