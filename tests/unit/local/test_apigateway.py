"""The local API Gateway's authorization: each method's from the document as API Gateway imports it, and
the API's resource policy from the template as samtranslator deploys it, evaluated with the callers'
IAM policies as API Gateway does for a caller in the API's account."""

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws
from xpi_tools.local.apigateway import (
    HTTP_METHODS,
    MISSING_TOKEN,
    IamDirectory,
    LocalApiGateway,
    Principal,
    decide,
    integration_functions,
    method_authorization,
    resolve_template_policy,
    resource_policy_statements,
    routes_of,
)
from xpi_tools.local.deploy import load_template, translate

from tests.helpers.openapi import DOCUMENT

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT, REGION, PARTITION = "123456789012", "us-gov-west-1", "aws-us-gov"
API_ID, STAGE = "a1b2c3d4e5", "api"
SIGV4_SCHEME = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "x-amazon-apigateway-authtype": "awsSigv4",
}
INVOKE_EVERYTHING = [{"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"}]


def document_with(operations: dict[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A document whose paths hold these operations ({"get /v1/x": operation}) and the sigv4 scheme."""
    paths: dict[str, dict[str, Any]] = {}
    for key, operation in operations.items():
        method, path = key.split(" ")
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.1",
        "paths": paths,
        "components": {"securitySchemes": {"sigv4": SIGV4_SCHEME}},
        **top,
    }


def method_arn(method: str, path: str) -> str:
    return f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{method}{path}"


def document_routes() -> Iterator[tuple[str, str]]:
    """(METHOD, path with its parameters filled) of every operation the real document declares."""
    for path, operations in DOCUMENT["paths"].items():
        for method in operations:
            if method.upper() in HTTP_METHODS:
                yield method.upper(), path.replace("{id}", "probe-1")


def user(name: str, *, mfa: bool = False, mfa_age_s: float = 60) -> Principal:
    return Principal(
        name, f"AIDA{name.upper()}", f"arn:{PARTITION}:iam::{ACCOUNT}:user/{name}", "AKIA", "s", mfa,
        mfa_authenticated_at=time.time() - mfa_age_s if mfa else None,
    )  # fmt: skip


def template_resource_policy(**parameters: str) -> list[dict[str, Any]]:
    """The API's resource policy as deployed: XpiApi (with its parameters and conditions) translated by
    samtranslator, the RestApi's Policy resolved for these parameter values."""
    template = load_template(ROOT / "template.yaml")
    api = copy.deepcopy(template["Resources"]["XpiApi"])
    api["Properties"]["DefinitionBody"] = load_template(ROOT / "api" / "openapi.yaml")  # the include
    only_the_api = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": template["Transform"],
        "Parameters": template["Parameters"],
        "Conditions": template["Conditions"],
        "Resources": {"XpiApi": api},
    }
    translated = translate(only_the_api, parameters, REGION)
    assert translated["Resources"]["XpiApi"]["Type"] == "AWS::ApiGateway::RestApi"
    policy = resolve_template_policy(
        translated, "XpiApi", parameters, account_id=ACCOUNT, region=REGION, partition=PARTITION
    )
    statements = resource_policy_statements(policy)
    assert statements is not None, "XpiApi has no resource policy"
    return statements


class RecordingFunction:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, payload: bytes) -> tuple[bytes, str | None]:
        self.events.append(json.loads(payload))
        return json.dumps({"statusCode": 200, "body": '{"ok": true}'}).encode(), None


def gateway_for(
    document: dict[str, Any],
    function: RecordingFunction,
    *,
    resource_policy: dict[str, Any] | None = None,
    iam: Any = None,
) -> LocalApiGateway:
    return LocalApiGateway(
        document=document,
        api_id=API_ID,
        stage=STAGE,
        region=REGION,
        account_id=ACCOUNT,
        partition=PARTITION,
        directory=IamDirectory(iam, ACCOUNT, PARTITION),
        invoke=function,
        resource_policy=resource_policy,
    )


def call(
    gateway: LocalApiGateway, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    status, _, body = gateway.handle(
        method, f"/{STAGE}{path}", headers or {}, b"", routes_of(gateway.document)
    )
    return status, json.loads(body)


# ------------------------------------------------------------------ each method's authorization
def test_document_level_security_alone_leaves_the_method_open() -> None:
    document = document_with({"get /v1/models": {}}, security=[{"sigv4": []}])
    assert method_authorization(document, "/v1/models", "GET") == "NONE"


def test_operation_security_naming_the_sigv4_scheme_is_aws_iam() -> None:
    document = document_with({"get /v1/models": {"security": [{"sigv4": []}]}})
    assert method_authorization(document, "/v1/models", "get") == "AWS_IAM"


def test_empty_operation_security_is_open_even_under_document_security() -> None:
    document = document_with({"get /v1/models": {"security": []}}, security=[{"sigv4": []}])
    assert method_authorization(document, "/v1/models", "GET") == "NONE"


def test_scheme_with_the_aws_iam_auth_extension_is_aws_iam() -> None:
    document = document_with({"post /v1/invoke": {"security": [{"iam": []}]}})
    document["components"]["securitySchemes"]["iam"] = {"x-amazon-apigateway-auth": {"type": "AWS_IAM"}}
    assert method_authorization(document, "/v1/invoke", "POST") == "AWS_IAM"


def test_security_naming_another_kind_of_scheme_is_not_aws_iam() -> None:
    document = document_with({"get /v1/models": {"security": [{"key": []}]}})
    document["components"]["securitySchemes"]["key"] = {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert method_authorization(document, "/v1/models", "GET") == "NONE"


def test_every_operation_of_the_api_document_is_aws_iam() -> None:
    # WHEN each operation of api/openapi.yaml is imported as API Gateway would
    open_methods = [
        f"{method.upper()} {path}"
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method.upper() in HTTP_METHODS and method_authorization(DOCUMENT, path, method) != "AWS_IAM"
    ]
    # THEN none is left open (an operation without its own `security` would be) but the dashboard page's
    # two, deliberately: the browser loads it before it signs in
    assert open_methods == ["GET /dashboard", "GET /dashboard/{file}"]
    assert len(routes_of(DOCUMENT)) >= 10


def test_an_anonymous_caller_reaches_the_dashboard_page_and_nothing_else() -> None:
    # GIVEN the template's resource policy (the open methods' only check)
    statements = template_resource_policy()
    # WHEN / THEN an anonymous caller may load the page, and no other route
    for method, path in document_routes():
        decision = decide([], statements, "execute-api:Invoke", method_arn(method, path), None)
        page = method == "GET" and path.startswith("/dashboard")
        assert (decision == "ALLOW") == page, (method, path, decision)
    file_arn = method_arn("GET", "/dashboard/index.html")
    assert decide([], statements, "execute-api:Invoke", file_arn, None) == "ALLOW"
    assert decide([], statements, "execute-api:Invoke", method_arn("POST", "/dashboard/x"), None) != "ALLOW"


# ------------------------------------------------------------------ the gateway serves what it builds
def test_method_without_aws_iam_is_served_unsigned_with_no_identity() -> None:
    # GIVEN a document where one operation has no security of its own
    document = document_with(
        {"get /v1/open": {}, "get /v1/closed": {"security": [{"sigv4": []}]}}, security=[{"sigv4": []}]
    )
    function = RecordingFunction()
    gateway = gateway_for(document, function)

    # WHEN both are called unsigned
    open_answer = call(gateway, "GET", "/v1/open")
    closed_answer = call(gateway, "GET", "/v1/closed")

    # THEN the open one reaches the function, with no IAM identity in the event, like on AWS
    assert open_answer == (200, {"ok": True})
    assert [event["resource"] for event in function.events] == ["/v1/open"]
    identity = function.events[0]["requestContext"]["identity"]
    assert (identity["userArn"], identity["caller"], identity["accessKey"]) == (None, None, None)
    # AND the AWS_IAM one is refused by API Gateway before any function runs
    assert closed_answer == (403, {"message": MISSING_TOKEN})


def test_open_method_under_a_resource_policy_needs_its_explicit_allow() -> None:
    # GIVEN an open method and a resource policy that only delegates to the account's IAM policies
    policy = {"Statement": template_resource_policy()}
    function = RecordingFunction()
    gateway = gateway_for(
        document_with({"get /v1/open": {}}), function, resource_policy={"Version": "2012-10-17", **policy}
    )

    # WHEN it is called anonymously
    status, body = call(gateway, "GET", "/v1/open")

    # THEN API Gateway's resource-policy-only flow finds no Allow for an anonymous caller
    assert status == 403
    assert body["Message"].startswith("User: anonymous is not authorized to perform: execute-api:Invoke")
    assert function.events == []


# ------------------------------------------------------------------ the template's resource policy
def test_admin_routes_need_mfa_even_with_execute_api_everywhere() -> None:
    statements = template_resource_policy()
    admin_routes = [(m, p) for m, p in document_routes() if p.startswith("/v1/admin/")]
    assert {("PUT", "/v1/admin/policy"), ("POST", "/v1/admin/dlq/redrive")} <= set(admin_routes)
    for method, path in admin_routes:
        arn = method_arn(method, path)
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u")) == "EXPLICIT_DENY"
        assert (
            decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u", mfa=True)) == "ALLOW"
        )


def test_admin_routes_refuse_an_mfa_session_older_than_an_hour() -> None:
    # GIVEN a principal allowed execute-api:* everywhere, signed in with MFA 61 minutes ago
    statements = template_resource_policy()
    stale, fresh = user("u", mfa=True, mfa_age_s=3660), user("u", mfa=True, mfa_age_s=600)
    for method, path in document_routes():
        arn = method_arn(method, path)
        # WHEN / THEN the admin routes deny it explicitly; a fresh session and the other routes are let be
        expected = "EXPLICIT_DENY" if path.startswith("/v1/admin/") else "ALLOW"
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, stale) == expected, path
        assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, fresh) == "ALLOW", path


def test_resource_policy_leaves_the_other_routes_to_identity_policies() -> None:
    statements = template_resource_policy()
    for method, path in document_routes():
        arn = method_arn(method, path)
        if not path.startswith("/v1/admin/"):
            assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u")) == "ALLOW"
        if path.startswith("/dashboard"):  # the page, open to anyone (the test above)
            continue
        # the account-root Allow delegates: a principal without an identity policy gets nothing
        assert decide([], statements, "execute-api:Invoke", arn, user("nobody", mfa=True)) == "IMPLICIT_DENY"
        assert decide([], statements, "execute-api:Invoke", arn, None) != "ALLOW"


def test_a_principal_tagged_suspended_sends_no_inference_but_reads_its_own() -> None:
    # GIVEN the deployed resource policy and a principal allowed execute-api:* everywhere
    statements = template_resource_policy()
    inference = {("POST", "/v1/invoke"), ("POST", "/v1/requests")}
    assert inference <= set(document_routes())
    for method, path in document_routes():
        if path.startswith("/v1/admin/"):
            continue
        arn = method_arn(method, path)
        # WHEN it is tagged xpi-access=suspended, THEN the inference routes deny it explicitly
        suspended = decide(
            INVOKE_EVERYTHING,
            statements,
            "execute-api:Invoke",
            arn,
            user("u"),
            tags={"xpi-access": "suspended"},
        )
        assert suspended == ("EXPLICIT_DENY" if (method, path) in inference else "ALLOW"), path
        # AND untagged, or tagged otherwise, nothing changes (the tag key is understood, absent or not)
        for tags in ({}, {"xpi-access": "active"}, {"xpi-project": "benefits"}):
            assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u"), tags=tags) == (
                "ALLOW"
            ), (path, tags)


def test_vpc_restrictions_exist_only_when_their_parameter_is_set() -> None:
    # GIVEN the parameters' defaults (empty)
    assert "SourceVpc" not in json.dumps(template_resource_policy())
    # WHEN a VPC endpoint or a VPC is set
    for parameter in (
        {"ApiAllowedSourceVpcEndpoint": "vpce-0abc1234"},
        {"ApiAllowedSourceVpc": "vpc-0abc1234"},
    ):
        statements = template_resource_policy(**parameter)
        # THEN every route is denied to a request that does not come through it (locally: none does)
        for method, path in document_routes():
            arn = method_arn(method, path)
            assert decide(INVOKE_EVERYTHING, statements, "execute-api:Invoke", arn, user("u", mfa=True)) == (
                "EXPLICIT_DENY"
            ), (parameter, method, path)


# ------------------------------------------------------------------ evaluation
def test_condition_not_understood_fails_closed_for_allow_and_applies_for_deny() -> None:
    arn = method_arn("GET", "/v1/models")
    unknown = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    allow = [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*", "Condition": unknown}]
    deny = [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "execute-api:Invoke",
            "Resource": "*",
            "Condition": unknown,
        }
    ]
    assert decide(allow, None, "execute-api:Invoke", arn, user("u")) == "IMPLICIT_DENY"
    assert decide(INVOKE_EVERYTHING, deny, "execute-api:Invoke", arn, user("u")) == "EXPLICIT_DENY"


def test_source_vpce_is_absent_locally() -> None:
    arn = method_arn("GET", "/v1/models")
    only_from_endpoint = [
        {
            "Effect": "Allow",
            "Action": "execute-api:Invoke",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0abc1234"}},
        }
    ]
    assert decide(only_from_endpoint, None, "execute-api:Invoke", arn, user("u")) == "IMPLICIT_DENY"


def test_resource_policy_allow_naming_the_caller_suffices_in_its_account() -> None:
    arn = method_arn("GET", "/v1/models")
    naming_the_user = [
        {
            "Effect": "Allow",
            "Principal": {"AWS": user("u").arn},
            "Action": "execute-api:Invoke",
            "Resource": "*",
        }
    ]
    assert decide([], naming_the_user, "execute-api:Invoke", arn, user("u")) == "ALLOW"
    assert decide([], naming_the_user, "execute-api:Invoke", arn, user("other")) == "IMPLICIT_DENY"


# ------------------------------------------------------------------ through SigV4, moto's IAM in-process
@pytest.fixture
def iam() -> Iterator[Any]:
    with mock_aws():
        # The regional host makes in-process moto keep the users in the GovCloud partition, as the local
        # stack's server does (it reads the region from the signature).
        yield boto3.client("iam", region_name=REGION, endpoint_url=f"https://iam.{REGION}.amazonaws.com")


def signed_headers(credentials: dict[str, str], method: str, path: str) -> dict[str, str]:
    request = AWSRequest(
        method=method, url=f"http://127.0.0.1:9/{STAGE}{path}", headers={"Host": "127.0.0.1:9"}
    )
    SigV4Auth(
        Credentials(
            credentials["aws_access_key_id"],
            credentials["aws_secret_access_key"],
            credentials.get("aws_session_token"),
        ),
        "execute-api",
        REGION,
    ).add_auth(request)
    return dict(request.headers.items())


def test_signed_admin_call_is_refused_by_the_resource_policy_without_mfa(iam: Any) -> None:
    # GIVEN a user whose identity policy allows execute-api:* on everything, and the template's policy
    iam.create_user(UserName="everything")
    iam.put_user_policy(
        UserName="everything",
        PolicyName="all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": INVOKE_EVERYTHING}),
    )
    key = iam.create_access_key(UserName="everything")["AccessKey"]
    keys = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    function = RecordingFunction()
    gateway = gateway_for(
        DOCUMENT, function, resource_policy={"Statement": template_resource_policy()}, iam=iam
    )
    mfa_keys = gateway.directory.mint_mfa_session("everything", key["AccessKeyId"])

    # WHEN it calls an admin route with its long-term keys, then with an MFA session
    without_mfa = call(
        gateway, "POST", "/v1/admin/dlq/redrive", signed_headers(keys, "POST", "/v1/admin/dlq/redrive")
    )
    with_mfa = call(
        gateway, "POST", "/v1/admin/dlq/redrive", signed_headers(mfa_keys, "POST", "/v1/admin/dlq/redrive")
    )

    # THEN the first is an explicit deny, the second reaches the function as that user
    assert without_mfa[0] == 403
    assert without_mfa[1]["Message"].endswith("with an explicit deny")
    assert with_mfa == (200, {"ok": True})
    assert [e["requestContext"]["identity"]["userArn"] for e in function.events] == [
        f"arn:{PARTITION}:iam::{ACCOUNT}:user/everything"
    ]


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "QUERY", "DELETE"])
def test_a_method_the_path_does_not_have_gets_api_gateways_403_over_http(method: str) -> None:
    import http.client

    # GIVEN the gateway serving the API's document over HTTP
    gateway = gateway_for(DOCUMENT, RecordingFunction())
    url = gateway.start()
    try:
        host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        # WHEN a method the document does not declare for a path is sent (some the HTTP server knows
        # no handler for)
        connection.request(method, f"/{STAGE}/v1/models")
        response = connection.getresponse()
        # THEN API Gateway's answer, not the HTTP server's 501
        assert (response.status, json.loads(response.read())) == (403, {"message": MISSING_TOKEN})
    finally:
        gateway.stop()


def test_each_method_invokes_the_function_its_integration_names() -> None:
    # GIVEN the API's document and the stack's function names
    outputs = {
        "ApiFunctionName": "xpi-api",
        "AdminFunctionName": "xpi-admin",
        "SyncInvokeFunctionName": "xpi-sync",
        "ComplianceReportFunctionName": "xpi-compliance-report",
        "UsageReportFunctionName": "xpi-usage-report",
    }
    own_function = {
        "/v1/invoke": "xpi-sync",
        "/v1/compliance/report": "xpi-compliance-report",
        "/v1/usage": "xpi-usage-report",
        "/dashboard": "xpi-dashboard-page",
        "/dashboard/{file}": "xpi-dashboard-page",
    }

    # WHEN / THEN the admin routes go to the admin function, POST /v1/invoke to the sync invoke function,
    # the compliance report to its own function, every other route to the API function
    functions = integration_functions(DOCUMENT, outputs, "xpi")
    assert functions
    for (method, path), name in functions.items():
        expected = "xpi-admin" if path.startswith("/v1/admin/") else "xpi-api"
        assert name == own_function.get(path, expected), (method, path)
    # (the dashboard page's routes: the function the template names after the stack, here "xpi")
    # AND a method without a Lambda integration is refused rather than sent anywhere
    with pytest.raises(ValueError, match="no Lambda integration"):
        integration_functions(document_with({"get /v1/open": {}}), outputs)


# ------------------------------------------------------------------ the stage's access log
# The fields the stage's AccessLogSetting declares (its Format is a JSON object of $context values)
ACCESS_LOG_FIELDS = tuple(
    json.loads(
        load_template(ROOT / "template.yaml")["Resources"]["XpiApi"]["Properties"]["AccessLogSetting"][
            "Format"
        ]
    )
)


def test_each_request_writes_one_access_log_line_with_its_route_caller_and_status(iam: Any) -> None:
    # GIVEN the gateway with the template's resource policy, writing its access log, and a user allowed
    # execute-api:* everywhere
    iam.create_user(UserName="everything")
    iam.put_user_policy(
        UserName="everything",
        PolicyName="all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": INVOKE_EVERYTHING}),
    )
    key = iam.create_access_key(UserName="everything")["AccessKey"]
    keys = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    lines: list[dict[str, str]] = []
    gateway = gateway_for(
        DOCUMENT, RecordingFunction(), resource_policy={"Statement": template_resource_policy()}, iam=iam
    )
    gateway.access_log = lines.append
    mfa_keys = gateway.directory.mint_mfa_session("everything", key["AccessKeyId"])
    path = "/v1/admin/dlq/redrive"

    # WHEN an admin route is called without MFA, with MFA, and an undeclared route unsigned
    call(gateway, "POST", path, signed_headers(keys, "POST", path))
    call(gateway, "POST", path, signed_headers(mfa_keys, "POST", path))
    call(gateway, "GET", "/v1/nowhere")

    # THEN one line each, in the AccessLogSetting's fields: the route's resource path, the verified
    # caller, the status, and the gateway's own error message where it answered
    user_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:user/everything"
    assert [(line["method"], line["path"], line["caller"], line["status"]) for line in lines] == [
        ("POST", path, user_arn, "403"),
        ("POST", path, user_arn, "200"),
        ("GET", "-", "-", "403"),
    ]
    assert lines[0]["error"].endswith("with an explicit deny")
    assert lines[1]["error"] == "-"
    assert lines[2]["error"] == MISSING_TOKEN
    assert len({line["requestId"] for line in lines}) == 3
    assert set(lines[0]) == set(ACCESS_LOG_FIELDS)


def test_the_access_log_reaches_the_stages_log_group_in_the_background() -> None:
    from xpi_tools.local.apigateway import AccessLogWriter, deployed_access_log_group

    from tests.helpers.waiting import wait_until

    with mock_aws():
        # GIVEN the template's access-log group as deployed under some stack name, and another group
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName="/xpi/some-stack/api-access")
        logs.create_log_group(logGroupName="/xpi/some-stack/functions")
        template = load_template(ROOT / "template.yaml")
        group = deployed_access_log_group(template, logs)
        assert group == "/xpi/some-stack/api-access"

        # WHEN the writer is given a line
        writer = AccessLogWriter(logs, group)
        writer.write({"requestId": "r1", "path": "/v1/admin/policy", "status": "403"})

        # THEN it is delivered to that group, as JSON, a moment later
        def delivered() -> list[dict[str, Any]]:
            events = logs.filter_log_events(logGroupName=group).get("events", [])
            return [json.loads(e["message"]) for e in events]

        wait_until(lambda: delivered() != [], 10, what="the access-log line delivered")
        assert delivered() == [{"requestId": "r1", "path": "/v1/admin/policy", "status": "403"}]
