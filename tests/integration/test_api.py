"""The xpi API on the local stack, as its callers see it: every request signed with SigV4 (botocore's
SigV4Auth) by IAM users that exist in the stack's IAM, through the local API Gateway, which checks the
signature and the callers' IAM policies and invokes the API function in the runtime pool.

Principals (created by the local stack, keys in its state file): `operator` (caller, operator and
admin policies; admin routes only through its MFA session `operator_mfa`), `caller2` (caller policy),
`auditor` (caller policy, under the IAM path `/xpi-auditors/`, which no longer makes an auditor: the
stack's `AuditorRole`, assumed through the local STS, does), `nobody` (no policy) and `unrestricted`
(execute-api:* on everything; the API's resource policy still wants its MFA session
`unrestricted_mfa` on the admin routes).
"""

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from openapi_schema_validator import OAS30Validator

from tests.helpers.openapi import DOCUMENT, deref
from tests.helpers.stack import ROOT, LocalStackClient, ResultCollector
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

MISSING_TOKEN = {"message": "Missing Authentication Token"}
HTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}


def declared_routes(prefix: str = "/") -> list[tuple[str, str]]:
    """(METHOD, path with its parameters filled) of every operation the document declares."""
    return [
        (method.upper(), re.sub(r"{[^}/]+}", "probe-1", path))
        for path, operations in DOCUMENT["paths"].items()
        if path.startswith(prefix)
        for method in operations
        if method.upper() in HTTP_METHODS
    ]


def assert_matches_document(route: str, method: str, status: int, body: Any) -> None:
    """The response is one the OpenAPI document declares for this route and status, in its schema."""
    responses = DOCUMENT["paths"][route][method.lower()]["responses"]
    declared = str(status) if str(status) in responses else "default"
    assert declared != "default" or status >= 500, f"{method} {route} may not answer {status}: {body}"
    schema = deref(responses[declared])["content"]["application/json"]["schema"]
    OAS30Validator(schema).validate(body)


class ApiClient:
    def __init__(self, stack: LocalStackClient) -> None:
        self.url, self.region = stack.state["api"], stack.state["region"]
        self.credentials = stack.state["api_credentials"]

    def call(
        self,
        who: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        secret_override: str | None = None,
        keys: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = AWSRequest(
            method=method,
            url=self.url + path,
            data=data,
            headers={"Content-Type": "application/json"} if data else {},
        )
        if who is not None or keys is not None:
            keys = keys or self.credentials[str(who)]
            SigV4Auth(
                Credentials(
                    keys["aws_access_key_id"],
                    secret_override or keys["aws_secret_access_key"],
                    keys.get("aws_session_token"),
                ),
                "execute-api",
                self.region,
            ).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(
            prepared.url, data=prepared.body, method=method, headers=dict(prepared.headers.items())
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=40) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def arn(self, who: str) -> str:
        return self.credentials[who]["arn"]


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


def _request(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"api-{uuid.uuid4().hex[:12]}",
        "model": "default",
        "prompt": text,
        "caller": {"project": "api-tests"},
        **extra,
    }


def _wait_final(api: ApiClient, who: str, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
    answers: list[tuple[int, Any]] = []

    def final() -> bool:
        answers.append(api.call(who, "GET", f"/v1/requests/{request_id}"))
        status, body = answers[-1]
        return status == 200 and body["status"] != "ACCEPTED"

    wait_until(final, timeout_s, interval_s=0.3, what=f"{request_id} final")
    body: dict[str, Any] = answers[-1][1]
    return body


# ------------------------------------------------------------------ authentication (API Gateway's own)
def test_unsigned_request_is_refused_like_api_gateway(api: ApiClient) -> None:
    assert api.call(None, "GET", "/v1/models") == (403, MISSING_TOKEN)


def test_every_declared_route_refuses_an_unsigned_call(api: ApiClient) -> None:
    # GIVEN every route of the API (each method is AWS_IAM only if its operation says so); the dashboard
    # page's are open (the next test)
    routes = declared_routes("/v1/")
    assert len(routes) >= 10
    # WHEN each is called without a signature
    answers = {f"{method} {path}": api.call(None, method, path) for method, path in routes}
    # THEN API Gateway refuses each one before any function runs
    assert answers == dict.fromkeys(answers, (403, MISSING_TOKEN))


def test_the_dashboard_page_is_served_unsigned_and_nothing_else_beside_it(api: ApiClient) -> None:
    def get(path: str, method: str = "GET") -> tuple[int, Any, bytes]:
        request = urllib.request.Request(api.url + path, method=method)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=40) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    # WHEN a browser without credentials loads the page, its sign-in configuration and the entry
    page = get("/dashboard/index.html")
    config = get("/dashboard/sign-in.json")
    entry = get("/dashboard")

    # THEN API Gateway lets the open route through to the page function, which answers the stack's files
    assert page[0] == 200 and b"<html" in page[2]
    assert page[1]["Content-Type"] == "text/html; charset=utf-8"
    assert page[1]["X-Frame-Options"] == "DENY" and page[1]["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in page[1]["Content-Security-Policy"]
    assert config[0] == 200 and json.loads(config[2])["signIn"] in {"oidc", "none"}
    assert config[1]["Cache-Control"] == "no-store"
    assert entry[0] == 302 and entry[1]["Location"].endswith("/dashboard/index.html")
    # AND nothing else is open: another file is 404 from the function, another method API Gateway's 403
    assert get("/dashboard/settings.py")[0] == 404
    assert get("/dashboard/index.html", "POST")[0] == 403


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_undeclared_route_is_refused_even_when_signed(api: ApiClient) -> None:
    assert api.call("operator", "GET", "/v1/secrets") == (403, MISSING_TOKEN)
    assert api.call("operator", "DELETE", "/v1/models") == (403, MISSING_TOKEN)


def test_bad_signature_is_refused(api: ApiClient) -> None:
    status, body = api.call("operator", "GET", "/v1/models", secret_override="not-the-secret")
    assert status == 403
    assert body["message"].startswith("The request signature we calculated does not match")


def test_body_changed_after_signing_is_refused(api: ApiClient) -> None:
    keys = api.credentials["operator"]
    request = AWSRequest(
        method="POST",
        url=api.url + "/v1/requests",
        data=json.dumps(_request("signed text")).encode(),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(
        Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]), "execute-api", api.region
    ).add_auth(request)
    prepared = request.prepare()
    tampered = json.dumps(_request("other text")).encode()
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    outgoing = urllib.request.Request(prepared.url, data=tampered, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(outgoing, timeout=10)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["message"].startswith("The request signature we calculated")


def test_mfa_session_token_must_match(api: ApiClient) -> None:
    forged = {**api.credentials["operator_mfa"], "aws_session_token": "mfa-forged"}
    api.credentials["forged_mfa"] = forged
    status, body = api.call("forged_mfa", "POST", "/v1/admin/dlq/redrive")
    assert (status, body) == (403, {"message": "The security token included in the request is invalid."})


def test_unknown_access_key_is_refused(api: ApiClient) -> None:
    api.credentials["ghost"] = {"aws_access_key_id": "AKIAGHOST0000000000", "aws_secret_access_key": "x" * 40}
    assert api.call("ghost", "GET", "/v1/models") == (
        403,
        {"message": "The security token included in the request is invalid."},
    )


def test_principal_without_policy_is_denied(api: ApiClient) -> None:
    status, body = api.call("nobody", "GET", "/v1/models")
    assert status == 403
    assert body["Message"].startswith(
        f"User: {api.arn('nobody')} is not authorized to perform: execute-api:Invoke"
    )


# ------------------------------------------------------------------ routes
def test_models_lists_what_the_caller_may_use(api: ApiClient) -> None:
    status, body = api.call("caller2", "GET", "/v1/models")
    assert status == 200
    assert_matches_document("/v1/models", "GET", status, body)
    assert body["principal"] == api.arn("caller2")
    assert "us.amazon.nova-lite-v1:0" in body["models"]
    assert body["aliases"]["default"] == "us.amazon.nova-lite-v1:0"


def test_submit_then_status_for_its_caller_and_auditor_only(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request submitted by the operator
    request = _request("Summarise the water cycle.", reply={"ticket": "A-1"})
    status, accepted = api.call("operator", "POST", "/v1/requests", request)
    assert status == 202, accepted
    assert_matches_document("/v1/requests", "POST", status, accepted)
    request_id = accepted["request_id"]
    assert request_id == request["request_id"]

    # WHEN it completes
    event = results.wait_for(request_id)
    final = _wait_final(api, "operator", request_id)

    # THEN its caller sees status, timings, decision, usage and the result, per the document
    assert_matches_document("/v1/requests/{id}", "GET", 200, final)
    assert event["detail-type"] == "Inference Completed"
    assert final["status"] == "COMPLETED"
    assert final["caller_principal"] == api.arn("operator")
    assert final["source"] == "api"
    assert final["classification"]["decision"] == "allow"
    assert final["usage"]["output_tokens"] > 0
    assert final["result"]["text"] == event["detail"]["output"]["text"]
    assert {s["step"] for s in final["timeline"]} >= {"received_at", "invoked_at", "completed_at"}
    # AND lineage records the caller's IAM principal
    item = local_stack.lineage(request_id)
    assert item is not None and item["caller_principal"] == api.arn("operator") and item["source"] == "api"
    # AND another caller cannot see it (answered exactly like a missing request)
    status, body = api.call("caller2", "GET", f"/v1/requests/{request_id}")
    assert status == 404 and body["error"]["code"] == "RequestNotFound"
    assert_matches_document("/v1/requests/{id}", "GET", status, body)
    # AND neither can a user under the IAM path auditors once had (the stack names its auditor exactly)
    status, body = api.call("auditor", "GET", f"/v1/requests/{request_id}")
    assert status == 404 and body["error"]["code"] == "RequestNotFound"
    # AND a session of the stack's auditor role, assumed through STS with stock boto3, can
    status, body = api.call(None, "GET", f"/v1/requests/{request_id}", keys=_assume_auditor(local_stack))
    assert status == 200 and body["request_id"] == request_id
    assert body["caller_principal"] == api.arn("operator")


def _assume_auditor(local_stack: LocalStackClient, session_name: str = "audit-jane") -> dict[str, str]:
    sts = local_stack.client("sts")
    assumed = sts.assume_role(
        RoleArn=local_stack.outputs["AuditorRoleArn"],
        RoleSessionName=session_name,
        SerialNumber="arn:aws-us-gov:iam::123456789012:mfa/operator",
        TokenCode="123456",
    )["Credentials"]
    return {
        "aws_access_key_id": assumed["AccessKeyId"],
        "aws_secret_access_key": assumed["SecretAccessKey"],
        "aws_session_token": assumed["SessionToken"],
    }


def test_the_auditor_role_reads_only_the_read_routes(api: ApiClient, local_stack: LocalStackClient) -> None:
    # GIVEN a session of the stack's auditor role
    keys = _assume_auditor(local_stack, "audit-routes")
    # WHEN it calls a read route and a write route
    read_status, _ = api.call(None, "GET", "/v1/requests/no-such-request", keys=keys)
    write_status, _ = api.call(None, "POST", "/v1/requests", _request("hello"), keys=keys)
    # THEN the read route is its to call (a 404 for a missing id), the write route is refused by IAM
    assert (read_status, write_status) == (404, 403)


def test_invoke_answers_synchronously_and_emits_one_event(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    request = _request("Name three rivers in Oregon.")
    started = time.perf_counter()
    status, body = api.call("caller2", "POST", "/v1/invoke", request)
    elapsed = time.perf_counter() - started
    assert status == 200, body
    assert_matches_document("/v1/invoke", "POST", status, body)
    assert body["status"] == "COMPLETED" and body["output"]["text"]
    assert body["caller"]["principal"] == api.arn("caller2")
    assert body["source"] == "api"
    assert elapsed < 25
    assert results.wait_for(request["request_id"])["detail"]["output"] == body["output"]
    # the sync path publishes before it answers: once the subscriber queue is drained, every event is in
    wait_until(results.caught_up, 30, what="the subscriber queue drained")
    assert len(results.events_for(request["request_id"])) == 1


def test_invoke_of_a_blocked_request_says_blocked(api: ApiClient) -> None:
    status, body = api.call("caller2", "POST", "/v1/invoke", _request("CUI//SP-PRVCY\nRoster of the office."))
    assert status == 200
    assert body["status"] == "BLOCKED" and body.get("output") is None


def test_invalid_request_gets_the_error_shape(api: ApiClient) -> None:
    status, body = api.call("operator", "POST", "/v1/requests", {"model": "default", "messages": "nope"})
    assert status == 400
    assert_matches_document("/v1/requests", "POST", status, body)
    assert body["error"]["code"] == "RequestInvalid"


def test_an_invalid_request_with_an_id_is_answered_under_it(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a request that names its id but does not validate
    request_id = f"api-invalid-{uuid.uuid4().hex[:8]}"
    status, body = api.call(
        "operator", "POST", "/v1/requests", {"request_id": request_id, "messages": "nope"}
    )
    # THEN the caller gets 400, and the id gets its one failure event and final lineage, like a queued one
    assert (status, body["error"]["code"]) == (400, "RequestInvalid")
    event = results.wait_for(request_id, detail_type="Inference Failed")
    assert event["detail"]["error"]["code"] == "RequestInvalid"
    item = local_stack.lineage(request_id)
    assert item is not None and item["status"] == "FAILED" and item["source"] == "api"


def test_duplicate_request_id_is_a_conflict(api: ApiClient) -> None:
    request = _request("Once only.")
    assert api.call("operator", "POST", "/v1/requests", request)[0] == 202
    status, body = api.call("operator", "POST", "/v1/requests", request)
    assert status == 409
    assert_matches_document("/v1/requests", "POST", status, body)
    assert body["error"] == {
        "code": "RequestExists",
        "message": "a request with this request_id exists already",
        "request_id": request["request_id"],
    }


def test_unknown_batch_is_not_found(api: ApiClient) -> None:
    status, body = api.call("operator", "GET", "/v1/batches/no-such-batch")
    assert status == 404
    assert_matches_document("/v1/batches/{id}", "GET", status, body)
    assert body["error"]["code"] == "BatchNotFound"


def test_unknown_request_is_not_found(api: ApiClient) -> None:
    status, body = api.call("operator", "GET", "/v1/requests/never-sent")
    assert (status, body["error"]["code"]) == (404, "RequestNotFound")


# ------------------------------------------------------------------ dashboard feed and admin
def test_dashboard_feed_for_operators_only(api: ApiClient) -> None:
    request = _request("For the dashboard.")
    assert api.call("caller2", "POST", "/v1/invoke", request)[0] == 200

    status, body = api.call("operator", "GET", "/v1/dashboard/requests?status=COMPLETED&limit=50")
    assert status == 200
    assert_matches_document("/v1/dashboard/requests", "GET", status, body)
    row = next(r for r in body["requests"] if r["request_id"] == request["request_id"])
    assert row["result"] is None  # lineage metadata only, never content
    assert all(r["status"] == "COMPLETED" for r in body["requests"])

    status, stats = api.call("operator", "GET", "/v1/dashboard/stats?minutes=30")
    assert status == 200
    assert_matches_document("/v1/dashboard/stats", "GET", status, stats)
    assert stats["totals"]["requests"] >= 1
    assert stats["models"]["us.amazon.nova-lite-v1:0"]["output_tokens"] > 0

    status, detail = api.call("operator", "GET", f"/v1/dashboard/requests/{request['request_id']}")
    assert status == 200 and detail["timeline"]

    assert api.call("caller2", "GET", "/v1/dashboard/stats")[0] == 403


def test_admin_routes_need_mfa(api: ApiClient) -> None:
    status, body = api.call("operator", "POST", "/v1/admin/dlq/redrive")
    assert status == 403 and "not authorized" in body["Message"]

    status, body = api.call("operator_mfa", "POST", "/v1/admin/dlq/redrive")
    assert status == 200, body
    assert_matches_document("/v1/admin/dlq/redrive", "POST", status, body)
    assert body["detail"]["by"] == api.arn("operator")


def test_resource_policy_wants_mfa_on_admin_routes_even_for_execute_api_everywhere(api: ApiClient) -> None:
    # GIVEN `unrestricted`, whose identity policy allows execute-api:* on every resource
    admin_routes = declared_routes("/v1/admin/")
    assert ("POST", "/v1/admin/dlq/redrive") in admin_routes and ("PUT", "/v1/admin/policy") in admin_routes
    assert api.call("unrestricted", "GET", "/v1/models")[0] == 200

    # WHEN it calls each admin route with its long-term keys
    refusals = {f"{method} {path}": api.call("unrestricted", method, path) for method, path in admin_routes}

    # THEN the API's resource policy denies each one explicitly
    for route, (status, body) in refusals.items():
        assert status == 403, (route, body)
        assert body["Message"].startswith(f"User: {api.arn('unrestricted')} is not authorized"), route
        assert body["Message"].endswith("with an explicit deny"), route
    # AND its MFA session is let through to the function
    status, body = api.call("unrestricted_mfa", "POST", "/v1/admin/dlq/redrive")
    assert status == 200, body
    assert_matches_document("/v1/admin/dlq/redrive", "POST", status, body)
    assert body["detail"]["by"] == api.arn("unrestricted")


SHIPPED_POLICY = json.loads(
    (ROOT / "functions" / "xpi" / "policy" / "default.json").read_text(encoding="utf-8")
)


def test_an_admin_with_mfa_replaces_the_policy(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the shipped policy, unchanged, so that the other tests see the same decisions
    ssm = local_stack.client("ssm")
    parameter = f"/xpi/{local_stack.state['stack_name']}/policy"

    # WHEN an admin with an MFA session puts it through the API
    status, body = api.call("operator_mfa", "PUT", "/v1/admin/policy", SHIPPED_POLICY)

    # THEN it is stored in the stack's policy parameter as the next signed revision (written with the
    # API function's own role, signed with the stack's signing secret)
    assert status == 200, body
    assert_matches_document("/v1/admin/policy", "PUT", status, body)
    stored = json.loads(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    assert (stored["kind"], stored["revision"]) == ("policy", body["detail"]["revision"])
    assert stored["document"]["categories"] == SHIPPED_POLICY["categories"]
    assert stored["sha256"] == body["detail"]["sha256"] and len(stored["mac"]) == 64
    # AND a Security Alert names the change and who asked for it
    alert = results.wait_for(body["detail"]["request_id"], detail_type="Security Alert")
    assert alert["detail"]["config"]["change"] == "changed"
    assert alert["detail"]["config"]["revision"] == stored["revision"]
    assert alert["detail"]["caller_principal"] == api.arn("operator")


def test_a_direct_invoke_with_a_forged_admin_identity_changes_no_policy(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the policy parameter as it is, and an event for PUT /v1/admin/policy claiming the operator
    ssm = local_stack.client("ssm")
    parameter = f"/xpi/{local_stack.state['stack_name']}/policy"
    before = ssm.get_parameter(Name=parameter)["Parameter"]["Version"]
    looser = json.loads(json.dumps(SHIPPED_POLICY))
    looser["categories"]["pii.email"] = "allow"
    event = json.loads((ROOT / "events" / "admin" / "redrive.json").read_text(encoding="utf-8"))
    event.update(
        resource="/v1/admin/policy", path="/v1/admin/policy", httpMethod="PUT", body=json.dumps(looser)
    )
    event["requestContext"]["identity"]["userArn"] = api.arn("operator")
    event["requestContext"]["requestId"] = f"forged-{uuid.uuid4().hex[:12]}"
    lambda_api = local_stack.client("lambda")

    # WHEN it is sent straight to the API function, and to the admin function (another account's "API")
    to_api = lambda_api.invoke(FunctionName=local_stack.outputs["ApiFunctionName"], Payload=json.dumps(event))
    to_admin = lambda_api.invoke(
        FunctionName=local_stack.outputs["AdminFunctionName"], Payload=json.dumps(event)
    )

    # THEN the API function has no admin route, the admin function refuses the event, the policy is
    # unchanged, and a Security Alert names the claimed caller
    assert json.loads(to_api["Payload"].read())["statusCode"] == 404
    assert json.loads(to_admin["Payload"].read())["statusCode"] == 500
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Version"] == before
    alert = results.wait_for(event["requestContext"]["requestId"], detail_type="Security Alert")
    assert (alert["detail"]["decision"], alert["detail"]["caller_principal"]) == (
        "refused",
        api.arn("operator"),
    )


def test_a_policy_put_with_ssm_by_hand_is_refused_and_raises_a_security_alert(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a signed policy in force, then a looser one (e-mail addresses allowed) written straight into
    # the parameter by someone holding ssm:PutParameter
    assert api.call("operator_mfa", "PUT", "/v1/admin/policy", SHIPPED_POLICY)[0] == 200
    ssm = local_stack.client("ssm")
    parameter = f"/xpi/{local_stack.state['stack_name']}/policy"
    looser = json.loads(json.dumps(SHIPPED_POLICY))
    looser["categories"]["pii.email"] = "allow"
    ssm.put_parameter(Name=parameter, Value=json.dumps(looser), Type="String", Overwrite=True)
    table = local_stack.client("dynamodb")
    answered: list[dict[str, Any]] = []
    try:
        # WHEN requests are classified (the functions' cached value expires within CONFIG_MAX_AGE_S)
        def refused() -> bool:
            status, body = api.call("caller2", "POST", "/v1/invoke", _request("Reply to jo.doe@example.com."))
            assert status == 200, body
            answered.append(body)
            item = table.get_item(
                TableName=local_stack.outputs["LineageTableName"],
                Key={"request_id": {"S": body["request_id"]}},
            )["Item"]
            return bool(item.get("config_fallback", {}).get("BOOL"))

        wait_until(refused, timeout_s=120, interval_s=2)

        # THEN the hand-written value was never applied: e-mail addresses are still redacted, the
        # lineage item says the shipped default was applied instead, and a Security Alert says why
        assert all(body["classification"]["decision"] == "redact" for body in answered)
        alert = results.wait_for("config-policy", detail_type="Security Alert")
        assert (alert["detail"]["config"]["change"], alert["detail"]["decision"]) == ("unsigned", "fallback")
    finally:
        # a signed shipped policy again, for the other tests
        assert api.call("operator_mfa", "PUT", "/v1/admin/policy", SHIPPED_POLICY)[0] == 200
