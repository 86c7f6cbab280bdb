"""Fine-grained permissions on the local stack (docs/security.md, "Fine-grained permissions"): a caller
role, known to the stack's IAM, with a narrow allow-list and a daily token budget in the routing
document (put through the admin route). It sends through the queue (its SenderId, `<role id>:<session>`),
through the API (its assumed-role ARN) and as a batch file (its upload's user id): all are one caller. The
process step, POST /v1/invoke and the batch workflow's route step refuse alike before Bedrock, with one
Inference Failed event and the refusal in lineage; GET /v1/models shows each caller its own grant and
what is left of its budget.

The functions cache the routing document for CONFIG_MAX_AGE_S (60 s): a request judged under an older
revision (lineage's `routing_revision`) is sent again until one is judged under the revision put here.
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from xpi.domain.batch import batch_id_for
from xpi_tools.emulator.client import EmulatorControl

from tests.helpers.stack import ROOT, LocalStackClient, ResultCollector
from tests.helpers.waiting import never_happens_within, wait_until
from tests.integration.test_api import ApiClient, assert_matches_document
from tests.integration.test_keys import _client, role_session

pytestmark = pytest.mark.integration

MICRO = "us.amazon.nova-micro-v1:0"
TOKENS_PER_DAY = 1_500
SHIPPED_ROUTING = json.loads(
    (ROOT / "functions" / "xpi" / "config" / "routing.json").read_text(encoding="utf-8")
)


@dataclass(frozen=True)
class Caller:
    """The narrow caller: its credentials for SQS and for the API, and its two principal forms."""

    aws: dict[str, str]
    api_keys: dict[str, str]
    user_id: str  # <role id>:<session>, the SenderId of what it sends
    arn: str  # arn:...:sts::<account>:assumed-role/<role>/<session>, the API's principal


@dataclass(frozen=True)
class Access:
    caller: Caller
    revision: int


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


@pytest.fixture(scope="module")
def access(local_stack: LocalStackClient, api: ApiClient) -> Iterator[Access]:
    policies = (local_stack.outputs["RequestsProducerPolicyArn"], local_stack.outputs["ApiCallerPolicyArn"])
    partition = local_stack.client("sts").get_caller_identity()["Arn"].split(":")[1]
    uploads = {  # batch files under its own prefix (the bucket policy allows no other)
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"arn:{partition}:s3:::{local_stack.outputs['BatchInputBucketName']}/incoming/*",
            }
        ],
    }
    with role_session(local_stack, managed=policies, inline=uploads) as session:
        identity = _client(local_stack, "sts", session).get_caller_identity()
        role_id = identity["UserId"].split(":", 1)[0]
        role_name = identity["Arn"].split("/")[1]
        caller = Caller(
            aws=session,
            api_keys={
                "aws_access_key_id": session["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": session["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": session["AWS_SESSION_TOKEN"],
            },
            user_id=identity["UserId"],
            arn=identity["Arn"],
        )
        # GIVEN the shipped routing with one narrow caller (both its forms, one name): micro only, in
        # project it-access, 1,500 tokens a day
        grant = {
            "name": "narrow",
            "allow": [MICRO],
            "projects": ["it-access"],
            "clearance": [{"category": "pii.*", "send": "redacted", "models": [MICRO]}],
            "budget": {"tokens_per_day": TOKENS_PER_DAY},
        }
        document = json.loads(json.dumps(SHIPPED_ROUTING))
        document["callers"] = [
            {"principal": f"{role_id}:*", **grant},
            {"principal": f"arn:*:sts::*:assumed-role/{role_name}/*", **grant},
            *document["callers"],
        ]
        document["projects"] = {"it-access": {}}
        status, body = api.call("operator_mfa", "PUT", "/v1/admin/routing", document)
        assert status == 200, body
        try:
            yield Access(caller, body["detail"]["revision"])
        finally:  # the shipped routing again, for the other tests (the narrow rules named a role now gone)
            assert api.call("operator_mfa", "PUT", "/v1/admin/routing", SHIPPED_ROUTING)[0] == 200


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> EmulatorControl:
    return EmulatorControl(local_stack.state["emulator_control"])


def _send(local_stack: LocalStackClient, caller: Caller, body: dict[str, Any]) -> str:
    request_id = f"acc-{uuid.uuid4().hex[:12]}"
    _client(local_stack, "sqs", caller.aws).send_message(
        QueueUrl=local_stack.outputs["RequestsQueueUrl"],
        MessageBody=json.dumps({"request_id": request_id, **body}),
    )
    return request_id


def _judged(
    send: Any, local_stack: LocalStackClient, results: ResultCollector, revision: int
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Send (`send()` -> (request id, tag)) until a request is judged under `revision`: its final lineage
    item, its result event and its tag."""
    found: list[tuple[dict[str, Any], dict[str, Any], str]] = []

    def judged_under_revision() -> bool:
        request_id, tag = send()
        event = results.wait_for(request_id, timeout_s=90)
        item = local_stack.lineage(request_id)
        assert item is not None
        found.append((item, event, tag))
        return int(item.get("routing_revision", 0)) == revision

    wait_until(
        judged_under_revision, timeout_s=150, interval_s=0.5, what=f"a request under revision {revision}"
    )
    return found[-1]


def _body(model: str, text: str, tag: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": f"[[emulator:tag={tag}]] {text}",
        "inference": {"max_tokens": max_tokens},
        "caller": {"project": "it-access"},
    }


def test_models_shows_each_caller_its_own_grant(access: Access, api: ApiClient) -> None:
    # WHEN the narrow caller asks for its models (once the API function reads the new revision)
    answers: list[Any] = []

    def narrowed() -> bool:
        answers.append(api.call(None, "GET", "/v1/models", keys=access.caller.api_keys))
        return answers[-1][0] == 200 and answers[-1][1]["models"] == [MICRO]

    wait_until(narrowed, timeout_s=90, interval_s=1, what="GET /v1/models under the narrow grant")
    status, body = answers[-1]

    # THEN it sees micro only (and its alias), its project, its clearance and its budget for today
    assert_matches_document("/v1/models", "GET", status, body)
    assert body["principal"] == access.caller.arn and body["aliases"] == {"fast": MICRO}
    assert (body["project"], body["projects"]) == ("it-access", ["it-access"])
    assert body["clearance"] == [[{"category": "pii.*", "send": "redacted", "models": [MICRO]}]]
    [budget] = body["budgets"]
    assert (budget["scope"], budget["name"], budget["tokens_per_day"]) == ("caller", "narrow", TOKENS_PER_DAY)
    # AND another caller sees the shipped grant: every approved model, no clearance, no budget
    status, other = api.call("caller2", "GET", "/v1/models")
    assert status == 200 and len(other["models"]) == len(SHIPPED_ROUTING["models"])
    assert other["clearance"] is None and other["budgets"] == []
    # AND a project the caller does not act for is refused
    status, refused = api.call(None, "GET", "/v1/models?project=apollo", keys=access.caller.api_keys)
    assert (status, refused["error"]["code"]) == (400, "RequestInvalid")


def test_a_model_off_the_allow_list_is_refused_alike_through_the_queue_and_the_api(
    access: Access,
    api: ApiClient,
    local_stack: LocalStackClient,
    results: ResultCollector,
    emulator: EmulatorControl,
) -> None:
    def queued() -> tuple[str, str]:
        tag = f"q{uuid.uuid4().hex[:10]}"
        return _send(local_stack, access.caller, _body("claude", "Name a river.", tag, 100)), tag

    def synchronous() -> tuple[str, str]:
        tag = f"s{uuid.uuid4().hex[:10]}"
        body = {"request_id": f"acc-{uuid.uuid4().hex[:12]}", **_body("claude", "Name a river.", tag, 100)}
        status, answer = api.call(None, "POST", "/v1/invoke", body, keys=access.caller.api_keys)
        assert status == 200, answer
        return body["request_id"], tag

    # WHEN the narrow caller asks for a model it is not allowed, through the queue and through the API
    for send, principal, source in (
        (queued, access.caller.user_id, "sqs"),
        (synchronous, access.caller.arn, "api"),
    ):
        item, event, tag = _judged(send, local_stack, results, access.revision)

        # THEN each ends with one Inference Failed event, lineage naming the refusal, and no Bedrock call
        assert event["detail-type"] == "Inference Failed"
        assert event["detail"]["error"]["code"] == "ModelNotAllowedForCaller"
        assert (item["status"], item["error"]["code"], item["access_refusal"]) == (
            "FAILED",
            "ModelNotAllowedForCaller",
            "model_not_allowed",
        )
        assert (item["caller_principal"], item["source"]) == (principal, source)
        assert emulator.counters().tag(tag).calls == 0
        request_id = item["request_id"]
        if source == "sqs":
            local_stack.wait_until_nothing_more_can_come(
                results, local_stack.outputs["QueueStateMachineArn"], request_id
            )
        assert len(results.events_for(request_id)) == 1


def test_a_spent_budget_refuses_the_next_request_on_every_path(
    access: Access,
    api: ApiClient,
    local_stack: LocalStackClient,
    results: ResultCollector,
    emulator: EmulatorControl,
) -> None:
    # GIVEN a first request through the queue that uses about 1,220 of the caller's 1,500 tokens today
    def spend() -> tuple[str, str]:
        tag = f"b{uuid.uuid4().hex[:10]}"
        return _send(
            local_stack, access.caller, _body("fast", "[[emulator:output_tokens=1200]] Go.", tag, 1300)
        ), tag

    first, event, _ = _judged(spend, local_stack, results, access.revision)
    assert event["detail-type"] == "Inference Completed", event["detail"].get("error")
    used = int(first["usage"]["input_tokens"]) + int(first["usage"]["output_tokens"])
    assert used >= 1200

    # THEN its settlement raised the 80 % budget alert on the bus, naming the budget, the day and it
    def alerts() -> list[dict[str, Any]]:  # they carry no request_id: the collector keeps them under "?"
        return [
            e["detail"] for e in results.events_for("?") if e["detail-type"] == "Budget Threshold Reached"
        ]

    wait_until(lambda: any(a["reached_by"] == first["request_id"] for a in alerts()), 30, what="the alert")
    alert = next(a for a in alerts() if a["reached_by"] == first["request_id"])
    assert (alert["scope"], alert["name"], alert["threshold"]) == ("caller", "narrow", 80)
    assert (alert["tokens_used"], alert["tokens_per_day"], alert["day"]) == (
        used,
        TOKENS_PER_DAY,
        first["day"],
    )

    # AND a small one through the API (its settlement rides the sync path's final transaction)
    def small() -> tuple[str, str]:
        tag = f"t{uuid.uuid4().hex[:10]}"
        body = {
            "request_id": f"acc-{uuid.uuid4().hex[:12]}",
            **_body("fast", "[[emulator:output_tokens=20]] Hi.", tag, 50),
        }
        status, answer = api.call(None, "POST", "/v1/invoke", body, keys=access.caller.api_keys)
        assert status == 200, answer
        return body["request_id"], tag

    second, event, _ = _judged(small, local_stack, results, access.revision)
    assert event["detail-type"] == "Inference Completed", event["detail"]
    used += int(second["usage"]["input_tokens"]) + int(second["usage"]["output_tokens"])

    # AND a small one through POST /v1/requests (the Standard workflow's invoke step settles it)
    def submitted() -> tuple[str, str]:
        tag = f"w{uuid.uuid4().hex[:10]}"
        body = {
            "request_id": f"acc-{uuid.uuid4().hex[:12]}",
            **_body("fast", "[[emulator:output_tokens=20]] Hi.", tag, 50),
        }
        status, answer = api.call(None, "POST", "/v1/requests", body, keys=access.caller.api_keys)
        assert status == 202, answer
        return body["request_id"], tag

    third, event, _ = _judged(submitted, local_stack, results, access.revision)
    assert event["detail-type"] == "Inference Completed", event["detail"]
    used += int(third["usage"]["input_tokens"]) + int(third["usage"]["output_tokens"])

    # AND, the budget still over 80 %, neither raised the 80 % alert again (once per threshold and day)
    def alerted_again() -> bool:
        return any(a["reached_by"] in (second["request_id"], third["request_id"]) for a in alerts())

    assert never_happens_within(alerted_again, 5)  # the first alert came with its result event

    # THEN GET /v1/models shows what is left: each reservation was settled to what its call used
    status, models = api.call(None, "GET", "/v1/models", keys=access.caller.api_keys)
    assert status == 200 and models["budgets"][0]["tokens_remaining"] == TOKENS_PER_DAY - used

    # WHEN the same caller asks for 900 more tokens (which a fresh day's budget would cover), through the
    # API and through the queue
    def synchronous() -> tuple[str, str]:
        tag = f"s{uuid.uuid4().hex[:10]}"
        body = {"request_id": f"acc-{uuid.uuid4().hex[:12]}", **_body("fast", "Go on.", tag, 900)}
        status, answer = api.call(None, "POST", "/v1/invoke", body, keys=access.caller.api_keys)
        assert status == 200, answer
        return body["request_id"], tag

    def queued() -> tuple[str, str]:
        tag = f"q{uuid.uuid4().hex[:10]}"
        return _send(local_stack, access.caller, _body("fast", "Go on.", tag, 900)), tag

    def batched() -> tuple[str, str]:  # a one-line file: its line is request <batch id>-1
        tag = f"f{uuid.uuid4().hex[:10]}"
        bucket = local_stack.outputs["BatchInputBucketName"]
        key = f"incoming/{access.caller.user_id}/{tag}.jsonl"
        line = json.dumps(_body("fast", "Go on.", tag, 900)) + "\n"
        etag = _client(local_stack, "s3", access.caller.aws).put_object(
            Bucket=bucket, Key=key, Body=line.encode()
        )["ETag"]
        return f"{batch_id_for(bucket, key, etag)}-1", tag

    for send in (synchronous, queued, batched):
        item, event, tag = _judged(send, local_stack, results, access.revision)

        # THEN each is refused before Bedrock, with the budget named in lineage
        assert (event["detail-type"], event["detail"]["error"]["code"]) == (
            "Inference Failed",
            "BudgetExhausted",
        )
        assert (item["status"], item["access_refusal"]) == ("FAILED", "budget")
        assert emulator.counters().tag(tag).calls == 0
    # AND nothing more was counted against the budget
    status, models = api.call(None, "GET", "/v1/models", keys=access.caller.api_keys)
    assert models["budgets"][0]["tokens_remaining"] == TOKENS_PER_DAY - used


def test_a_principal_tagged_suspended_is_refused_inference_by_api_gateway(
    access: Access, api: ApiClient, local_stack: LocalStackClient
) -> None:
    # GIVEN the caller's role tagged xpi-access=suspended (ABAC in the API's resource policy)
    iam = local_stack.client("iam")
    role_name = access.caller.arn.split("/")[1]
    iam.tag_role(RoleName=role_name, Tags=[{"Key": "xpi-access", "Value": "suspended"}])
    try:
        answers: list[tuple[int, Any]] = []
        bodies: list[dict[str, Any]] = []

        def refused() -> bool:
            # (the local API gateway reads a principal's tags again after at most 5 s)
            bodies.append(
                {"request_id": f"acc-{uuid.uuid4().hex[:12]}", **_body("fast", "Hello.", "none", 50)}
            )
            answers.append(api.call(None, "POST", "/v1/invoke", bodies[-1], keys=access.caller.api_keys))
            return answers[-1][0] == 403

        # WHEN it sends inference through the API, THEN API Gateway denies it explicitly, before any function
        wait_until(refused, timeout_s=30, interval_s=0.5, what="the suspended caller refused")
        assert "explicit deny" in answers[-1][1]["Message"]
        body = bodies[-1]
        assert local_stack.lineage(body["request_id"]) is None
        status, _ = api.call(None, "POST", "/v1/requests", body, keys=access.caller.api_keys)
        assert status == 403
        # AND it still reads (GET /v1/models is not an inference route)
        assert api.call(None, "GET", "/v1/models", keys=access.caller.api_keys)[0] == 200
    finally:
        iam.untag_role(RoleName=role_name, TagKeys=["xpi-access"])
