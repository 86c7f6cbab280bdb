"""The API function's routes, with in-memory fakes behind its Protocols; every response is validated
against api/openapi.yaml (the route must declare the status, the body must match its schema)."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from xpi import dependencies
from xpi.domain.errors import ModelNotApproved
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import RoutingConfig, load_default_routing
from xpi.handlers import admin as admin_handler
from xpi.handlers import api as api_handler
from xpi.handlers import api_invoke as api_invoke_handler
from xpi.models.lineage import LineageItem
from xpi.services.sync_invoke import Judgement, SyncPorts

from tests.helpers.context import FakeLambdaContext
from tests.helpers.fakes import (
    FakeAdminActions,
    FakeBatchStatus,
    FakeBedrockGateway,
    FakeBudgetLedger,
    FakeEventPublisher,
    FakeExecutions,
    FakeHashKey,
    FakeLineageStore,
    FakeObjectStore,
    FakeSyncLedger,
    FakeWorkflowStarter,
)
from tests.helpers.openapi import DOCUMENT, deref

ROOT = Path(__file__).resolve().parents[3]
ALICE = "arn:aws-us-gov:iam::123456789012:user/alice"
ADMIN = "arn:aws-us-gov:iam::111122223333:user/admin"
BOB = "arn:aws-us-gov:iam::123456789012:user/bob"
AUDITOR = "arn:aws-us-gov:sts::123456789012:assumed-role/xpi-prod-auditor/jane"
AUDITOR_ROLE = "arn:aws-us-gov:iam::123456789012:role/xpi-prod-auditor"
PRODUCER_SESSION_A = "arn:aws-us-gov:sts::123456789012:assumed-role/claims-producer/alice"
PRODUCER_SESSION_B = "arn:aws-us-gov:sts::123456789012:assumed-role/claims-producer/nightly-job"
OTHER_ROLE_SAME_SESSION = "arn:aws-us-gov:sts::123456789012:assumed-role/hr-producer/alice"


def _resource(path: str) -> str:
    for resource in DOCUMENT["paths"]:
        parts, actual = resource.split("/"), path.split("/")
        if len(parts) == len(actual) and all(
            p == a or p.startswith("{") for p, a in zip(parts, actual, strict=True)
        ):
            return str(resource)
    return path


def call(
    method: str,
    path: str,
    body: Any = None,
    *,
    principal: str = ALICE,
    query: dict[str, str] | None = None,
    identity: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Invoke the handler with API Gateway's REST proxy event; validate the answer against the document."""
    resource = _resource(path)
    parameters = None
    if "{" in resource:
        parameters = {
            p.strip("{}"): a
            for p, a in zip(resource.split("/"), path.split("/"), strict=True)
            if p.startswith("{")
        }
    event = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": "0b1e7a4c-1111-2222-3333-444455556666",
            "stage": "api",
            "accountId": "111122223333",  # the account of FakeLambdaContext's function
            "apiId": "a1b2c3d4e5",
            "identity": identity
            if identity is not None
            else {"userArn": principal, "caller": "AIDAEXAMPLE", "accessKey": "AKIAEXAMPLE"},
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }
    for name, value in (context or {}).items():  # None removes the field
        if value is None:
            event["requestContext"].pop(name, None)  # type: ignore[attr-defined]
        else:
            event["requestContext"][name] = value  # type: ignore[index]
    handler = api_handler.handler
    if path.startswith("/v1/admin/"):
        handler = admin_handler.handler
    elif path == "/v1/invoke":
        handler = api_invoke_handler.handler
    response = handler(event, FakeLambdaContext())
    status, answer = response["statusCode"], json.loads(response["body"])
    operation = DOCUMENT["paths"].get(resource, {}).get(method.lower())
    if operation is None:  # not a route of the API: still the one error shape
        OAS30Validator(deref(DOCUMENT["components"]["schemas"]["Error"])).validate(answer)
    else:
        declared = str(status) if str(status) in operation["responses"] else "default"
        assert declared != "default" or status >= 500, (
            f"{method} {resource} may not answer {status}: {answer}"
        )
        schema = deref(operation["responses"][declared])["content"]["application/json"]["schema"]
        OAS30Validator(schema).validate(answer)
    return status, answer


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("LINEAGE_RETENTION_DAYS", "30")
    monkeypatch.setenv("API_AUDITOR_PRINCIPALS", AUDITOR_ROLE)
    monkeypatch.setenv("API_INVOKE_WAIT_S", "0.5")
    lineage, starter, events = FakeLineageStore(), FakeWorkflowStarter(), FakeEventPublisher()
    executions, batches, admin = FakeExecutions(), FakeBatchStatus(), FakeAdminActions()
    monkeypatch.setattr(dependencies, "lineage_store", lambda: lineage)
    monkeypatch.setattr(dependencies, "workflow_starter", lambda: starter)
    monkeypatch.setattr(dependencies, "event_publisher", lambda: events)
    monkeypatch.setattr(dependencies, "executions", lambda: executions)
    monkeypatch.setattr(dependencies, "batch_status_reader", lambda: batches)
    monkeypatch.setattr(dependencies, "admin_actions", lambda: admin)
    ledger, gateway = FakeSyncLedger(lineage), FakeBedrockGateway()
    sync_ports = SyncPorts(
        ledger=ledger, lineage=lineage, events=events, hash_key=FakeHashKey(), gateway=gateway,
        objects=FakeObjectStore(), retention_days=30, inline_max_bytes=32_768, region="us-east-1",
        endpoint="",
    )  # fmt: skip
    monkeypatch.setattr(dependencies, "sync_ports", lambda: sync_ports)
    monkeypatch.setattr(
        dependencies,
        "judgement",
        lambda: Judgement(policy=load_default_policy(), routing=load_default_routing(), detectors=()),
    )
    return {"lineage": lineage, "starter": starter, "events": events, "executions": executions,
            "batches": batches, "admin": admin, "ledger": ledger, "gateway": gateway}  # fmt: skip


def _final_item(request_id: str, principal: str = ALICE, **extra: Any) -> LineageItem:
    now = datetime.now(UTC)
    received = now - timedelta(seconds=2)
    return LineageItem.model_validate(
        {
            "request_id": request_id,
            "status": "COMPLETED",
            "caller_principal": principal,
            "source": "api",
            "created_at": received.isoformat(timespec="milliseconds"),
            "day": received.strftime("%Y-%m-%d"),
            "expires_at": int((now + timedelta(days=30)).timestamp()),
            "model_requested": "default",
            "model_id": "us.amazon.nova-lite-v1:0",
            "commercial_region": "us-east-1",
            "classification": {
                "decision": "allow",
                "categories": {},
                "findings": 0,
                "classifier": "xpi-rules/1",
            },
            "usage": {"input_tokens": 10, "output_tokens": 20},
            "estimated_cost_usd": "0.0000054",
            "steps": {
                "received_at": received.isoformat(timespec="milliseconds"),
                "invoked_at": (received + timedelta(milliseconds=1500)).isoformat(timespec="milliseconds"),
                "completed_at": now.isoformat(timespec="milliseconds"),
            },
            **extra,
        }
    )


def _execution_output(request_id: str, text: str = "the answer") -> dict[str, Any]:
    detail = {"request_id": request_id, "status": "COMPLETED", "output": {"text": text}}
    return {"outcome": {"emit": True, "detail_type": "Inference Completed", "detail": detail}}


# ------------------------------------------------------------------ submit
def test_submit_starts_the_workflow_with_the_callers_principal(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/requests", {"request_id": "r-1", "model": "default", "prompt": "hi"})

    assert status == 202
    assert body == {"request_id": "r-1", "status": "ACCEPTED", "links": {"status": "/v1/requests/r-1"}}
    source = world["starter"].started["r-1"].source
    assert (source.kind, source.principal) == ("api", ALICE)


def test_submit_without_id_uses_the_api_request_id(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/requests", {"model": "default", "prompt": "hi"})
    assert status == 202 and body["request_id"] == "0b1e7a4c-1111-2222-3333-444455556666"


def test_invalid_request_is_400_and_answered_once(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/requests", {"request_id": "bad-1", "model": "default", "messages": 3})

    assert status == 400 and body["error"]["code"] == "RequestInvalid"
    assert world["lineage"].items["bad-1"].caller_principal == ALICE
    assert [t for t, _ in world["events"].published] == ["Inference Failed"]


def test_not_json_is_400(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/requests", "{not json")
    assert status == 400 and body["error"]["code"] == "RequestInvalid"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"], ids=["not-json", "not-an-object"])
def test_a_body_without_a_readable_id_is_answered_under_the_api_request_id(
    world: dict[str, Any], text: str
) -> None:
    # GIVEN / WHEN a body that is not JSON, or not an object
    status, body = call("POST", "/v1/requests", text)

    # THEN the caller gets 400, and the API request id its one failure event and lineage
    assert status == 400 and body["error"]["code"] == "RequestInvalid"
    [(detail_type, detail)] = world["events"].published
    assert detail_type == "Inference Failed"
    assert detail["request_id"] == "0b1e7a4c-1111-2222-3333-444455556666"
    assert world["lineage"].items[detail["request_id"]].status == "FAILED"


def test_duplicate_is_409_with_the_id(world: dict[str, Any]) -> None:
    call("POST", "/v1/requests", {"request_id": "r-2", "model": "default", "prompt": "hi"})
    status, body = call("POST", "/v1/requests", {"request_id": "r-2", "model": "default", "prompt": "hi"})
    assert status == 409 and body["error"]["code"] == "RequestExists" and body["error"]["request_id"] == "r-2"


# ------------------------------------------------------------------ POST /v1/invoke (its own function)
def test_invoke_answers_with_the_result_event_in_one_call(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/invoke", {"request_id": "r-3", "model": "default", "prompt": "hi"})

    assert status == 200 and body["status"] == "COMPLETED" and body["output"]["text"] == "A short answer."
    assert (
        body["caller"]["principal"] == ALICE
        and body["source_reference"] == "0b1e7a4c-1111-2222-3333-444455556666"
    )
    assert world["events"].published == [("Inference Completed", body)]
    assert world["starter"].started == {}  # no workflow


def test_invoke_repeated_answers_the_same_without_a_second_bedrock_call(world: dict[str, Any]) -> None:
    request = {"request_id": "r-4", "model": "default", "prompt": "hi"}
    first = call("POST", "/v1/invoke", request)
    second = call("POST", "/v1/invoke", request)
    assert first == second and first[0] == 200
    assert len(world["gateway"].calls) == 1 and len(world["events"].published) == 1


def test_invoke_of_a_queued_request_id_is_409(world: dict[str, Any]) -> None:
    call("POST", "/v1/requests", {"request_id": "r-5", "model": "default", "prompt": "hi"})
    world["lineage"].items["r-5"] = _final_item("r-5")
    status, body = call("POST", "/v1/invoke", {"request_id": "r-5", "model": "default", "prompt": "hi"})
    assert status == 409 and body["error"]["code"] == "RequestExists" and body["error"]["request_id"] == "r-5"


def test_invoke_with_stream_is_400(world: dict[str, Any]) -> None:
    status, body = call(
        "POST", "/v1/invoke", {"request_id": "r-6", "model": "default", "prompt": "hi", "stream": True}
    )
    assert status == 400 and body["error"]["code"] == "RequestInvalid"
    assert world["gateway"].calls == []


def test_invoke_not_json_is_400(world: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/invoke", "{not json")
    assert status == 400 and body["error"]["code"] == "RequestInvalid"


# ------------------------------------------------------------------ reading requests
def test_caller_reads_status_timings_usage_and_result(world: dict[str, Any]) -> None:
    world["lineage"].items["r-7"] = _final_item("r-7")
    world["executions"].executions["r-7"] = ("SUCCEEDED", _execution_output("r-7"))

    status, body = call("GET", "/v1/requests/r-7")

    assert status == 200
    assert body["status"] == "COMPLETED" and body["result"]["text"] == "the answer"
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 20}
    assert [s["step"] for s in body["timeline"]] == ["received_at", "invoked_at", "completed_at"]
    assert body["timeline"][1]["elapsed_ms"] == 1500
    assert body["latency_ms"] == 2000


def test_large_output_is_its_s3_pointer(world: dict[str, Any]) -> None:
    world["lineage"].items["r-8"] = _final_item("r-8", output_s3_uri="s3://bucket/outputs/r-8.json")
    world["executions"].executions["r-8"] = (
        "SUCCEEDED",
        {"outcome": {"detail": {"output": {"s3_uri": "s3://bucket/outputs/r-8.json", "sha256": "ab"}}}},
    )
    status, body = call("GET", "/v1/requests/r-8")
    assert status == 200 and body["result"]["s3_uri"] == "s3://bucket/outputs/r-8.json"


def test_another_caller_gets_not_found(world: dict[str, Any]) -> None:
    world["lineage"].items["r-9"] = _final_item("r-9")
    status, body = call("GET", "/v1/requests/r-9", principal=BOB)
    assert status == 404 and body["error"]["code"] == "RequestNotFound"
    assert call("GET", "/v1/requests/missing", principal=BOB)[1]["error"]["code"] == "RequestNotFound"


def test_auditor_reads_any_request(world: dict[str, Any]) -> None:
    world["lineage"].items["r-10"] = _final_item("r-10")
    status, body = call("GET", "/v1/requests/r-10", principal=AUDITOR)
    assert status == 200 and body["caller_principal"] == ALICE


def test_two_sessions_of_one_role_are_one_owner(world: dict[str, Any]) -> None:
    # GIVEN a request sent by one session of a role
    world["lineage"].items["r-11"] = _final_item("r-11", principal=PRODUCER_SESSION_A)
    # WHEN another session of the same role, under another name, reads it
    status, body = call("GET", "/v1/requests/r-11", principal=PRODUCER_SESSION_B)
    # THEN it is the same owner (the role), whatever the sessions are called
    assert status == 200 and body["caller_principal"] == PRODUCER_SESSION_A


def test_a_session_of_another_role_with_the_same_session_name_is_not_the_owner(
    world: dict[str, Any],
) -> None:
    # GIVEN a request sent by the session "alice" of one role
    world["lineage"].items["r-12"] = _final_item("r-12", principal=PRODUCER_SESSION_A)
    # WHEN a session of another role, also named "alice", reads it
    status, body = call("GET", "/v1/requests/r-12", principal=OTHER_ROLE_SAME_SESSION)
    # THEN it is not found (the session name names nobody)
    assert status == 404 and body["error"]["code"] == "RequestNotFound"


@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws-us-gov:sts::123456789012:assumed-role/xpi-prod-auditor-not/jane",  # a longer role name
        "arn:aws-us-gov:iam::123456789012:user/xpi-auditors/mallory",  # a user under a path
        "arn:aws-us-gov:sts::123456789012:assumed-role/other/xpi-prod-auditor",  # the role's name as session
        "arn:aws-us-gov:sts::999999999999:assumed-role/xpi-prod-auditor/jane",  # another account
    ],
)
def test_only_the_named_auditor_role_is_an_auditor(world: dict[str, Any], principal: str) -> None:
    world["lineage"].items["r-13"] = _final_item("r-13")
    status, body = call("GET", "/v1/requests/r-13", principal=principal)
    assert status == 404 and body["error"]["code"] == "RequestNotFound"


def test_models_for_the_caller(world: dict[str, Any]) -> None:
    status, body = call("GET", "/v1/models")
    assert status == 200 and body["principal"] == ALICE and "us.amazon.nova-lite-v1:0" in body["models"]


def test_models_answers_the_callers_grant_for_a_project(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN alice in two projects with a token budget, a third of it used today
    document = load_default_routing().model_dump(mode="json")
    document["callers"].insert(
        0,
        {"principal": ALICE, "allow": ["us.amazon.nova-*"], "projects": ["benefits", "desk"],
         "budget": {"tokens_per_day": 3_000}},
    )  # fmt: skip
    document["projects"] = {"benefits": {"allow": ["us.amazon.nova-micro-v1:0"]}, "desk": {}}
    monkeypatch.setattr(dependencies, "routing_config", lambda: RoutingConfig.model_validate(document))
    budgets = FakeBudgetLedger()
    budgets.usage[f"caller#{ALICE}#{datetime.now(UTC).date().isoformat()}"] = (1_000, 0.0)
    monkeypatch.setattr(dependencies, "budget_ledger", lambda: budgets)

    # WHEN it asks for its models, for its default project and another (answers checked against the API)
    _, default = call("GET", "/v1/models")
    _, desk = call("GET", "/v1/models", query={"project": "desk"})
    status, refused = call("GET", "/v1/models", query={"project": "apollo"})

    # THEN each is that project's grant with what is left of the budget; a project not its own: 400
    assert (default["project"], default["models"]) == ("benefits", ["us.amazon.nova-micro-v1:0"])
    assert desk["project"] == "desk" and desk["models"] == [
        "us.amazon.nova-lite-v1:0", "us.amazon.nova-micro-v1:0", "us.amazon.nova-pro-v1:0"
    ]  # fmt: skip
    assert default["budgets"][0]["tokens_remaining"] == 2_000 and default["clearance"] is None
    assert (status, refused["error"]["code"], refused["error"]["problems"]) == (
        400, "RequestInvalid", [{"location": "project", "type": "not_allowed"}]
    )  # fmt: skip


def test_batches(world: dict[str, Any]) -> None:
    assert call("GET", "/v1/batches/b-1")[1]["error"]["code"] == "BatchNotFound"
    world["batches"].items["b-1"] = {
        "batch_id": "b-1",
        "line": 0,
        "state": "RUNNING",
        "total": 5,
        "completed": 2,
        "owner": "AIDAEXAMPLE",
    }
    status, body = call("GET", "/v1/batches/b-1")
    assert status == 200 and body == {"batch_id": "b-1", "status": "RUNNING", "total": 5, "completed": 2}
    # The table's per-model slots items are not batches.
    world["batches"].items["slots:fast"] = {"batch_id": "slots:fast", "line": 0, "in_flight": 2}
    assert call("GET", "/v1/batches/slots:fast")[1]["error"]["code"] == "BatchNotFound"


def _identity(arn: str, caller: str) -> dict[str, Any]:
    return {"userArn": arn, "caller": caller, "accessKey": "ASIAEXAMPLE"}


def test_a_batch_is_its_uploaders_only(world: dict[str, Any]) -> None:
    # GIVEN a batch uploaded by a session of one role (owner: the role's unique id)
    world["batches"].items["b-2"] = {
        "batch_id": "b-2",
        "line": 0,
        "state": "RUNNING",
        "owner": "AROAPRODUCER",
    }
    # WHEN another session of that role asks, and then a session of another role with the same name
    same_role = call(
        "GET", "/v1/batches/b-2", identity=_identity(PRODUCER_SESSION_B, "AROAPRODUCER:nightly-job")
    )
    other_role = call("GET", "/v1/batches/b-2", identity=_identity(OTHER_ROLE_SAME_SESSION, "AROAHR:alice"))
    # THEN the role's session reads it; the other gets the same 404 as for a missing batch
    assert same_role[0] == 200 and same_role[1]["status"] == "RUNNING"
    assert other_role[0] == 404 and other_role[1]["error"]["code"] == "BatchNotFound"
    # AND an IAM user who did not upload it does not read it either, while the auditor role does
    assert call("GET", "/v1/batches/b-2", principal=BOB)[0] == 404
    assert call("GET", "/v1/batches/b-2", identity=_identity(AUDITOR, "AROAAUDITOR:jane"))[0] == 200


def test_a_batch_without_a_recorded_owner_is_nobodys(world: dict[str, Any]) -> None:
    world["batches"].items["b-3"] = {"batch_id": "b-3", "line": 0, "state": "FAILED"}
    assert call("GET", "/v1/batches/b-3")[1]["error"]["code"] == "BatchNotFound"


# ------------------------------------------------------------------ dashboard and admin
def test_dashboard_requests_filters(world: dict[str, Any]) -> None:
    world["lineage"].items["d-1"] = _final_item("d-1")
    world["lineage"].items["d-2"] = _final_item(
        "d-2",
        principal=BOB,
        status="BLOCKED",
        classification={
            "decision": "block",
            "categories": {"cui.banner": 1},
            "findings": 1,
            "classifier": "xpi-rules/1",
        },
    )
    status, body = call("GET", "/v1/dashboard/requests", query={"status": "BLOCKED"})
    assert status == 200 and [r["request_id"] for r in body["requests"]] == ["d-2"]
    assert all(r["result"] is None for r in body["requests"])
    assert [
        r["request_id"]
        for r in call("GET", "/v1/dashboard/requests", query={"caller": "alice"})[1]["requests"]
    ] == ["d-1"]
    assert (
        call("GET", "/v1/dashboard/requests", query={"decision": "block"})[1]["requests"][0]["request_id"]
        == "d-2"
    )
    assert call("GET", "/v1/dashboard/requests", query={"model": "nope"})[1]["requests"] == []
    assert call("GET", "/v1/dashboard/requests", query={"limit": "0"})[0] == 400
    assert call("GET", "/v1/dashboard/requests", query={"since": "yesterday-ish"})[0] == 400


def test_the_dashboard_shows_the_commercial_credentials_type_version_and_age(world: dict[str, Any]) -> None:
    # GIVEN a request answered with an access key 40 days old
    world["lineage"].items["d-3"] = _final_item(
        "d-3", credential_type="iam-access-key", credential_version="v-2cfb", credential_age_s=40 * 86400
    )
    expected = {"type": "iam-access-key", "version": "v-2cfb", "age_s": 40 * 86400}
    # WHEN the dashboard asks for it, in the feed and in the detail
    feed = call("GET", "/v1/dashboard/requests")[1]["requests"]
    status, detail = call("GET", "/v1/dashboard/requests/d-3")
    # THEN both show the credential (the bodies are checked against api/openapi.yaml by `call`)
    assert [r["credential"] for r in feed if r["request_id"] == "d-3"] == [expected]
    assert status == 200 and detail["credential"] == expected
    # AND the caller's own view of the request does not
    assert call("GET", "/v1/requests/d-3")[1].get("credential") is None


def test_dashboard_stats(world: dict[str, Any]) -> None:
    world["lineage"].items["s-1"] = _final_item("s-1")
    world["lineage"].items["s-2"] = _final_item(
        "s-2", status="FAILED", error={"code": "BedrockThrottled", "message": "slow down"}, usage=None
    )
    world["lineage"].items["s-3"] = _final_item(
        "s-3",
        status="BLOCKED",
        classification={
            "decision": "block",
            "categories": {"cui.banner": 2, "pii.ssn": 1},
            "findings": 3,
            "classifier": "xpi-rules/1",
        },
    )
    status, body = call("GET", "/v1/dashboard/stats", query={"minutes": "10"})
    assert status == 200
    assert body["totals"] == {"requests": 3, "COMPLETED": 1, "FAILED": 1, "BLOCKED": 1}
    assert sum(b["requests"] for b in body["buckets"]) == 3
    assert sum(b["throttles"] for b in body["buckets"]) == 1
    assert body["models"]["us.amazon.nova-lite-v1:0"]["output_tokens"] == 40
    assert body["blocked_by_category"] == {"cui.banner": 1, "pii.ssn": 1}  # requests per category, no content


def test_admin_policy_is_validated_then_stored(world: dict[str, Any]) -> None:
    status, body = call("PUT", "/v1/admin/policy", {"version": 1, "nonsense": True})
    assert status == 400 and body["error"]["code"] == "PolicyInvalid"
    status, body = call("PUT", "/v1/admin/policy", {"version": 1})
    assert status == 200 and body["detail"]["version"] == 1 and world["admin"].policies


def test_a_policy_change_raises_a_security_alert_naming_revision_hash_and_claimed_caller(
    world: dict[str, Any],
) -> None:
    # WHEN an admin stores a policy
    status, body = call("PUT", "/v1/admin/policy", {"version": 1}, principal=ADMIN)

    # THEN the answer names its revision and hash, and a Security Alert carries them with the caller
    assert status == 200 and body["detail"]["revision"] == 1 and len(body["detail"]["sha256"]) == 64
    alerts = [d for t, d in world["events"].published if t == "Security Alert"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["source"], alert["decision"], alert["caller_principal"]) == ("admin", "changed", ADMIN)
    assert alert["config"]["document"] == "policy"
    assert alert["config"]["revision"] == 1 and alert["config"]["sha256"] == body["detail"]["sha256"]
    assert alert["config"]["claimed_identity"]["api_id"] == "a1b2c3d4e5"


def test_a_routing_change_goes_through_the_same_admin_path(world: dict[str, Any]) -> None:
    routing = {"models": {"us.amazon.nova-lite-v1:0": {}}, "callers": [{"principal": "*", "allow": ["*"]}]}
    status, body = call("PUT", "/v1/admin/routing", routing, principal=ADMIN)
    assert status == 200 and body["action"] == "routing"
    assert [d["config"]["document"] for t, d in world["events"].published if t == "Security Alert"] == [
        "routing"
    ]


@pytest.mark.parametrize(
    "document",
    [
        {"version": 1, "default_action": "allow"},
        {"version": 1, "categories": {"cui.*": "allow"}},
        {"version": 1, "model_rules": [{"models": ["us.*"], "categories": ["*"], "action": "redact"}]},
    ],
)
def test_a_policy_lowering_the_floor_is_refused_by_the_admin_path(
    world: dict[str, Any], document: dict[str, Any]
) -> None:
    status, body = call("PUT", "/v1/admin/policy", document, principal=ADMIN)
    assert status == 400 and body["error"]["code"] == "PolicyInvalid"
    assert not world["admin"].policies


@pytest.mark.parametrize(
    "forged",
    [
        {"accountId": "999999999999"},  # another account's "API"
        {"apiId": None},  # not from API Gateway at all
        {"stage": "test-invoke-stage"},  # another stage
    ],
    ids=["account", "api", "stage"],
)
def test_a_forged_admin_event_is_refused_and_raises_a_security_alert(
    world: dict[str, Any], forged: dict[str, Any]
) -> None:
    # GIVEN a direct lambda:InvokeFunction whose event claims an admin identity
    # WHEN it asks for a policy change
    status, body = call("PUT", "/v1/admin/policy", {"version": 1}, principal=ADMIN, context=forged)

    # THEN nothing is stored, and a Security Alert names the claimed caller
    assert status == 500 and body["error"]["code"] == "InternalError"
    assert not world["admin"].policies
    alerts = [d for t, d in world["events"].published if t == "Security Alert"]
    assert [(a["decision"], a["caller_principal"]) for a in alerts] == [("refused", ADMIN)]


def test_a_direct_invoke_of_the_api_function_with_a_forged_admin_identity_changes_nothing(
    world: dict[str, Any],
) -> None:
    # GIVEN an event for the policy route, as API Gateway would build it for an admin, sent straight to
    # the API function (lambda:InvokeFunction on it)
    event = json.loads((ROOT / "events" / "admin" / "redrive.json").read_text(encoding="utf-8"))
    event.update(
        resource="/v1/admin/policy", path="/v1/admin/policy", httpMethod="PUT", body='{"version": 1}'
    )

    # WHEN
    response = api_handler.handler(event, FakeLambdaContext())

    # THEN the API function has no admin route: nothing is stored
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "RouteNotFound"
    assert not world["admin"].policies


def test_admin_routes_accept_only_the_configured_admin_principals(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "API_ADMIN_PRINCIPALS", "arn:aws-us-gov:sts::111122223333:assumed-role/xpi-prod-admin/*"
    )
    status, _ = call("POST", "/v1/admin/dlq/redrive", principal=ADMIN)
    assert status == 500 and not world["admin"].redrives
    admin_role = "arn:aws-us-gov:sts::111122223333:assumed-role/xpi-prod-admin/jo"
    status, _ = call("POST", "/v1/admin/dlq/redrive", principal=admin_role)
    assert status == 200 and world["admin"].redrives


def test_admin_redrive_starts_a_move_task_for_the_dead_letters(world: dict[str, Any]) -> None:
    # WHEN an admin redrives the requests DLQ, which holds 3 messages
    status, body = call("POST", "/v1/admin/dlq/redrive")

    # THEN the answer names SQS's move task and what it is to move
    assert status == 200
    assert body["action"] == "redrive"
    assert {name: body["detail"][name] for name in ("task_handle", "messages_to_move")} == {
        "task_handle": "task-1",
        "messages_to_move": 3,
    }
    assert world["admin"].redrives


# ------------------------------------------------------------------ errors
def test_unknown_route_uses_the_error_shape(world: dict[str, Any]) -> None:
    status, body = call("GET", "/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "RouteNotFound"


def test_unexpected_failure_is_500_in_the_error_shape(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(dependencies, "lineage_store", broken)
    status, body = call("GET", "/v1/dashboard/stats")
    assert status == 500 and body["error"]["code"] == "InternalError" and "boom" not in json.dumps(body)


def test_an_invalid_request_is_answered_with_locations_and_types_never_its_text(
    world: dict[str, Any],
) -> None:
    # GIVEN a request whose prompt is too long and whose tags carry the caller's own keys
    prompt = "secret-marker " * 11_000
    body = {"request_id": "r-bad", "model": "default", "prompt": prompt, "caller": {"tags": {"k" * 300: "v"}}}

    # WHEN it is submitted
    status, answer = call("POST", "/v1/requests", body)

    # THEN the answer has the fixed message and where/what, but no text of the request
    assert status == 400
    assert answer["error"]["message"] == "the request is not a valid inference request"
    assert {"location": "prompt", "type": "string_too_long"} in answer["error"]["problems"]
    assert {"location": "caller.tags.*.[key]", "type": "string_too_long"} in answer["error"]["problems"]
    assert "secret-marker" not in json.dumps(answer) and "kkk" not in json.dumps(answer)
    # AND the Inference Failed event and lineage item say no more
    [(_, detail)] = world["events"].published
    assert "secret-marker" not in json.dumps(detail, default=str)
    assert world["lineage"].items["r-bad"].error.message == "the request is not a valid inference request"


def test_a_route_not_found_does_not_echo_the_path(world: dict[str, Any]) -> None:
    status, body = call("GET", "/v1/alice@example.com")
    assert status == 404 and body["error"] == {"code": "RouteNotFound", "message": "no such route"}


def test_a_lineage_error_written_with_raw_text_is_shown_with_its_fixed_message(world: dict[str, Any]) -> None:
    # GIVEN an item written before errors carried no content: Bedrock's message naming the account
    raw = {"code": "CredentialsRejected", "message": "AccessDenied: User: arn:aws:iam::210987654321:user/x"}
    world["lineage"].items["r-old"] = _final_item("r-old", status="FAILED", error=raw, usage=None)
    world["executions"].executions["r-old"] = ("FAILED", None)

    status, body = call("GET", "/v1/requests/r-old")

    assert status == 200
    assert body["error"] == {
        "code": "CredentialsRejected",
        "message": "commercial Bedrock rejected the commercial credentials",
    }


def test_the_logs_of_an_unexpected_failure_carry_its_class_not_its_text(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise RuntimeError("prompt text alice@example.com")

    monkeypatch.setattr(dependencies, "lineage_store", broken)
    call("GET", "/v1/dashboard/stats")

    assert "alice@example.com" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    assert any(getattr(r, "error_class", None) == "RuntimeError" for r in caplog.records)


def test_a_domain_error_without_an_http_answer_is_500_without_its_message(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unmapped() -> Any:
        raise ModelNotApproved("model 'x' is not on this deployment's approved list")

    monkeypatch.setattr(dependencies, "routing_config", unmapped)
    status, body = call("GET", "/v1/models")
    assert status == 500
    assert body["error"] == {
        "code": "InternalError",
        "message": "an internal error occurred",
        "request_id": "0b1e7a4c-1111-2222-3333-444455556666",
    }


def test_a_request_without_an_iam_identity_is_an_internal_error(world: dict[str, Any]) -> None:
    status, body = call("GET", "/v1/models", identity={"sourceIp": "10.0.0.1"})
    assert status == 500
    assert body == {"error": {"code": "InternalError", "message": "an internal error occurred"}}


def test_every_route_of_the_handlers_is_in_the_document() -> None:
    declared = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    served_by = {}
    for module in ("api", "api_invoke", "admin", "compliance_report", "usage_report", "dashboard_page"):
        source = (ROOT / f"functions/xpi/handlers/{module}.py").read_text(encoding="utf-8")
        for method, route in re.findall(r'@app\.(get|post|put|delete)\("([^"]+)"\)', source):
            path = route.replace("<file>", "{file}")  # the dashboard page's; every other parameter is an id
            served_by[(method.upper(), re.sub(r"<[^>]+>", "{id}", path))] = module
    assert set(served_by) == declared
    # the admin routes, and only they, are the admin function's (and its integration's); POST /v1/invoke,
    # and only it, the sync invoke function's
    function_of = {
        "admin": "${AdminFunction.Arn}",
        "api_invoke": "${SyncInvokeFunction.Arn}",
        "api": "${ApiFunction.Arn}",
        "compliance_report": "${ComplianceReportFunction.Arn}",
        "usage_report": "${UsageReportFunction.Arn}",
        "dashboard_page": "function:${AWS::StackName}-dashboard-page/invocations",  # named: no cycle
    }
    for (method, path), module in served_by.items():
        assert (module == "admin") == path.startswith("/v1/admin/"), (method, path)
        assert (module == "api_invoke") == (path == "/v1/invoke"), (method, path)
        uri = DOCUMENT["paths"][path][method.lower()]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        text = uri[0] if isinstance(uri, list) else uri  # Fn::Sub [string, variables]
        assert function_of[module] in text, (method, path)


@pytest.mark.parametrize("path", sorted((ROOT / "events").glob("api*/*.json")), ids=lambda p: p.name)
def test_sample_events_get_documented_answers(world: dict[str, Any], path: Path) -> None:
    """events/api/*.json are API Gateway REST proxy events as ApiFunction receives them."""
    event = json.loads(path.read_text(encoding="utf-8"))
    body = json.loads(event["body"]) if event["body"] else None
    method, resource = event["httpMethod"], event["resource"]
    if resource == "/v1/requests/{id}":
        world["lineage"].items["api-sample-1"] = _final_item(
            "api-sample-1", principal=event["requestContext"]["identity"]["userArn"]
        )
    status, _ = call(
        method,
        event["path"],
        body,
        principal=event["requestContext"]["identity"]["userArn"],
        query=event["queryStringParameters"],
    )
    assert status in {200, 202}
