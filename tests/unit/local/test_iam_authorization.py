"""The local stack's IAM evaluation (iam_authorization.py): the permissions a request needs, and how
identity policies decide them."""

import json
from pathlib import Path

import pytest
from xpi_tools.local.iam_authorization import (
    Authorization,
    CallLog,
    RequestContext,
    denied_by_resource_policy,
    denied_by_secret_policy,
    is_allowed,
    principal_arn,
    put_events_denied_by_bus_policy,
    required_permissions,
)

ARN = "arn:aws-us-gov:{service}:us-gov-west-1:123456789012:{rest}"


def _request(action: str, body: object = None, path: str = "/", moto_resource: str = "*") -> RequestContext:
    return RequestContext(
        action=action,
        region="us-gov-west-1",
        account_id="123456789012",
        partition="aws-us-gov",
        path=path,
        body=json.dumps(body or {}).encode(),
        moto_resource=moto_resource,
    )


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            _request("dynamodb:Query", {"TableName": "t", "IndexName": "by-day"}),
            [("dynamodb:Query", ARN.format(service="dynamodb", rest="table/t/index/by-day"))],
        ),
        (
            _request("lambda:Invoke", path="/2015-03-31/functions/fn/invocations"),
            [("lambda:InvokeFunction", ARN.format(service="lambda", rest="function:fn"))],
        ),
        (
            _request("states:StartExecution", {"stateMachineArn": "arn:sm"}),
            [("states:StartExecution", "arn:sm")],
        ),
        (_request("states:SendTaskSuccess", {"taskToken": "t"}), [("states:SendTaskSuccess", "*")]),
        (
            _request("events:PutEvents", {"Entries": [{"EventBusName": "bus"}, {}]}),
            [
                ("events:PutEvents", ARN.format(service="events", rest="event-bus/bus")),
                ("events:PutEvents", ARN.format(service="events", rest="event-bus/default")),
            ],
        ),
        (
            _request("ssm:GetParameter", {"Name": "/xpi/s/policy"}),
            [("ssm:GetParameter", ARN.format(service="ssm", rest="parameter/xpi/s/policy"))],
        ),
        (
            _request("secretsmanager:GetSecretValue", {"SecretId": "arn:secret-x"}),
            [("secretsmanager:GetSecretValue", "arn:secret-x")],
        ),
        (
            _request("secretsmanager:GetSecretValue", {"SecretId": "by-name"}),
            [("secretsmanager:GetSecretValue", None)],
        ),
        (_request("sqs:SendMessageBatch", moto_resource="arn:q"), [("sqs:SendMessage", "arn:q")]),
        (_request("kms:Decrypt"), [("kms:Decrypt", None)]),
        (
            _request("kms:GenerateDataKey", {"KeyId": "1234abcd-12ab"}),
            [("kms:GenerateDataKey", ARN.format(service="kms", rest="key/1234abcd-12ab"))],
        ),
        (
            _request("kms:Decrypt", {"KeyId": ARN.format(service="kms", rest="key/k1")}),
            [("kms:Decrypt", ARN.format(service="kms", rest="key/k1"))],
        ),
        (_request("kms:Encrypt", {"KeyId": "alias/xpi"}), [("kms:Encrypt", None)]),
        # S3 bucket configuration reads moto names s3:ListBucket: the subresource's action
        (
            _request("s3:ListBucket", path="/b?encryption", moto_resource="arn:aws-us-gov:s3:::b"),
            [("s3:GetEncryptionConfiguration", "arn:aws-us-gov:s3:::b")],
        ),
        (
            _request("s3:ListBucket", path="/b?publicAccessBlock=", moto_resource="arn:aws-us-gov:s3:::b"),
            [("s3:GetBucketPublicAccessBlock", "arn:aws-us-gov:s3:::b")],
        ),
        (
            _request("s3:ListBucket", path="/b?object-lock", moto_resource="arn:aws-us-gov:s3:::b"),
            [("s3:GetBucketObjectLockConfiguration", "arn:aws-us-gov:s3:::b")],
        ),
        (
            _request("s3:ListBucket", path="/b?list-type=2&prefix=x", moto_resource="arn:aws-us-gov:s3:::b"),
            [("s3:ListBucket", "arn:aws-us-gov:s3:::b")],
        ),
        # API Gateway: the HTTP method on the resource path, not the operation moto names
        (
            _request("apigateway:GetResources", path="/restapis/abc123/resources?embed=methods"),
            [("apigateway:GET", "arn:aws-us-gov:apigateway:us-gov-west-1::/restapis/abc123/resources")],
        ),
        (
            _request("apigateway:GetRestApi", path="/restapis/abc123"),
            [("apigateway:GET", "arn:aws-us-gov:apigateway:us-gov-west-1::/restapis/abc123")],
        ),
        (
            _request("apigateway:DeleteRestApi", path="/restapis/abc123"),
            [("apigateway:DELETE", "arn:aws-us-gov:apigateway:us-gov-west-1::/restapis/abc123")],
        ),
    ],
)
def test_the_iam_action_and_resource_a_request_needs(
    request_: RequestContext, expected: list[tuple[str, str | None]]
) -> None:
    assert required_permissions(request_) == expected


def test_a_message_move_task_needs_what_sqs_does_as_its_starter() -> None:
    dlq, queue = ARN.format(service="sqs", rest="dlq"), ARN.format(service="sqs", rest="q")
    on_the_dlq = [
        "sqs:StartMessageMoveTask",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ]

    # GIVEN a move task to a named destination THEN it needs to take from the DLQ and send to that queue
    to_named = required_permissions(
        _request("sqs:StartMessageMoveTask", {"SourceArn": dlq, "DestinationArn": queue})
    )
    assert to_named == [*((action, dlq) for action in on_the_dlq), ("sqs:SendMessage", queue)]
    # GIVEN none named (back to the original queues) THEN the send's resource is one the request does not name
    to_origin = required_permissions(_request("sqs:StartMessageMoveTask", {"SourceArn": dlq}))
    assert to_origin[-1] == ("sqs:SendMessage", None)


def test_a_transaction_needs_the_action_of_each_item_on_its_table() -> None:
    # GIVEN a transaction that puts into one table and updates and checks another
    body = {
        "TransactItems": [
            {"Put": {"TableName": "a", "Item": {}}},
            {"Update": {"TableName": "b", "Key": {}}},
            {"ConditionCheck": {"TableName": "b", "Key": {}}},
        ]
    }
    # THEN each item needs its own IAM action (there is no dynamodb:TransactWriteItems action)
    assert required_permissions(_request("dynamodb:TransactWriteItems", body)) == [
        ("dynamodb:PutItem", ARN.format(service="dynamodb", rest="table/a")),
        ("dynamodb:UpdateItem", ARN.format(service="dynamodb", rest="table/b")),
        ("dynamodb:ConditionCheckItem", ARN.format(service="dynamodb", rest="table/b")),
    ]


TABLE = ARN.format(service="dynamodb", rest="table/lineage")
POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:Get*"],
            "Resource": [TABLE, f"{TABLE}/index/*"],
        },
        {"Effect": "Allow", "Action": "states:SendTaskSuccess", "Resource": "arn:aws-us-gov:states:*"},
        {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": f"{TABLE}-secret"},
    ]
}


@pytest.mark.parametrize(
    ("action", "resource", "allowed"),
    [
        ("dynamodb:PutItem", TABLE, True),
        ("DynamoDB:putitem", TABLE, True),  # actions are case-insensitive
        ("dynamodb:GetItem", f"{TABLE}/index/by-day", True),  # wildcards in actions and resources
        ("dynamodb:DeleteItem", TABLE, False),  # not granted
        ("dynamodb:PutItem", ARN.format(service="dynamodb", rest="table/other"), False),  # another resource
        ("dynamodb:PutItem", None, True),  # a resource the request does not name: not checked
        ("states:SendTaskSuccess", "*", False),  # takes no resource: a grant on an ARN does not match
    ],
)
def test_identity_policies_decide_as_iam_does(action: str, resource: str | None, allowed: bool) -> None:
    assert is_allowed([POLICY], action, resource) is allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    everything = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    assert is_allowed([everything], "dynamodb:GetItem", f"{TABLE}-secret")
    assert not is_allowed([everything, POLICY], "dynamodb:GetItem", f"{TABLE}-secret")


def test_not_action_and_not_resource() -> None:
    policy = {"Statement": {"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{TABLE}-secret"}}
    assert is_allowed([policy], "dynamodb:GetItem", TABLE)
    assert not is_allowed([policy], "iam:CreateUser", TABLE)
    assert not is_allowed([policy], "dynamodb:GetItem", f"{TABLE}-secret")


def test_a_mapping_needs_the_three_poller_permissions_on_its_queue() -> None:
    from xpi_tools.local.iam_authorization import missing_poller_permissions

    queue = "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:progress"
    # GIVEN a role that may receive and delete on its queue, but not read the queue's attributes
    role = {
        "Statement": [
            {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"], "Resource": queue}
        ]
    }
    # THEN the mapping cannot be created, naming the missing permission; nor with grants on another queue
    assert missing_poller_permissions([role], queue) == ["sqs:GetQueueAttributes"]
    assert missing_poller_permissions([role], queue + "-other") == [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ]


INVOKE_ROLE = "arn:aws-us-gov:iam::123456789012:role/xpi-InvokeModelFunctionRole-X1"
SECRET = ARN.format(service="secretsmanager", rest="secret:xpi-CommercialCredentialsSecret-AbCdEf")
SECRET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalArn": INVOKE_ROLE}},
        }
    ],
}


def _session(role: str) -> str:
    return f"arn:aws-us-gov:sts::123456789012:assumed-role/{role}/a-session"


def test_an_assumed_role_session_is_its_role_for_principal_arn() -> None:
    assert principal_arn(_session("xpi-InvokeModelFunctionRole-X1")) == INVOKE_ROLE
    user = "arn:aws-us-gov:iam::123456789012:user/xpi-local-operator"
    assert principal_arn(user) == user


@pytest.mark.parametrize(
    ("caller", "action", "denied"),
    [
        (_session("xpi-InvokeModelFunctionRole-X1"), "secretsmanager:GetSecretValue", False),
        (_session("xpi-ClassifyFunctionRole-Y2"), "secretsmanager:GetSecretValue", True),
        ("arn:aws-us-gov:iam::123456789012:user/xpi-local-operator", "secretsmanager:GetSecretValue", True),
        # an operator putting a new value is not what the policy denies
        ("arn:aws-us-gov:iam::123456789012:user/xpi-local-operator", "secretsmanager:PutSecretValue", False),
    ],
)
def test_a_secret_policy_deny_names_every_principal_but_the_invoke_role(
    caller: str, action: str, denied: bool
) -> None:
    assert denied_by_resource_policy(SECRET_POLICY, caller, action, SECRET) is denied


def test_a_resource_policy_deny_wins_over_an_identity_allow_only_where_it_applies() -> None:
    # GIVEN a role whose identity policy allows reading the secret
    caller = _session("xpi-ClassifyFunctionRole-Y2")
    allow = {
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET}]
    }
    assert is_allowed([allow], "secretsmanager:GetSecretValue", SECRET)
    # THEN a Deny naming the caller (by role or session ARN, or "*") takes it away
    for principal in ("*", {"AWS": "arn:aws-us-gov:iam::123456789012:role/xpi-ClassifyFunctionRole-Y2"}):
        deny = {"Statement": [{"Effect": "Deny", "Principal": principal, "Action": "*", "Resource": "*"}]}
        assert denied_by_resource_policy(deny, caller, "secretsmanager:GetSecretValue", SECRET)
    # AND an Allow in a resource policy, a Deny of other principals, or a Deny whose condition cannot be
    # evaluated here, denies nothing
    others = {"AWS": "arn:aws-us-gov:iam::123456789012:role/someone-else"}
    for statement in (
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Principal": others, "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ):
        policy = {"Statement": [statement]}
        assert not denied_by_resource_policy(policy, caller, "secretsmanager:GetSecretValue", SECRET)


def test_principal_arn_conditions_with_wildcards() -> None:
    def deny_unless(operator: str, pattern: str) -> dict[str, object]:
        condition = {operator: {"aws:PrincipalArn": [pattern]}}
        return {
            "Statement": {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "*",
                "Resource": "*",
                "Condition": condition,
            }
        }

    caller = _session("xpi-InvokeModelFunctionRole-X1")
    assert not denied_by_resource_policy(
        deny_unless("ArnNotLike", "arn:*:iam::*:role/xpi-Invoke*"), caller, "a:b", None
    )
    assert denied_by_resource_policy(deny_unless("StringNotLike", "*:role/other-*"), caller, "a:b", None)
    assert denied_by_resource_policy(deny_unless("StringEquals", INVOKE_ROLE), caller, "a:b", None)


def test_the_secret_policy_is_read_from_the_secret_the_request_names() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-gov-west-1")
        arn = secrets.create_secret(Name="xpi-credentials", SecretString="{}")["ARN"]
        request = _request("secretsmanager:GetSecretValue", {"SecretId": arn})
        by_name = _request("secretsmanager:GetSecretValue", {"SecretId": "xpi-credentials"})
        caller = _session("xpi-ClassifyFunctionRole-Y2")
        # GIVEN no policy on the secret THEN nothing is denied
        assert not denied_by_secret_policy(request, caller, "secretsmanager:GetSecretValue", arn)
        # WHEN the stack puts its policy THEN a request naming the secret by ARN or by name is denied
        secrets.put_resource_policy(SecretId=arn, ResourcePolicy=json.dumps(SECRET_POLICY))
        assert denied_by_secret_policy(request, caller, "secretsmanager:GetSecretValue", arn)
        assert denied_by_secret_policy(by_name, caller, "secretsmanager:GetSecretValue", None)
        # AND the invoke role is not, nor is a request to another service
        invoke = _session("xpi-InvokeModelFunctionRole-X1")
        assert not denied_by_secret_policy(request, invoke, "secretsmanager:GetSecretValue", arn)
        assert not denied_by_secret_policy(request, caller, "dynamodb:GetItem", arn)


# ------------------------------------------------------------------ an event bus's resource policy
BUS = ARN.format(service="events", rest="event-bus/xpi-local-xpi")
XPI_ROLE = "arn:aws-us-gov:iam::123456789012:role/xpi-local-ApiFunctionRole-1"
BUS_POLICY = [
    {
        "Sid": "OnlyXpiRolesPublishXpiSources",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": BUS,
        "Condition": {
            "StringLike": {"events:source": "xpi.*"},
            "ArnNotEquals": {"aws:PrincipalArn": [XPI_ROLE]},
        },
    }
]


@pytest.mark.parametrize(
    ("principal", "sources", "denied"),
    [
        ("arn:aws-us-gov:iam::123456789012:user/mallory", ["xpi.inference"], True),  # forging xpi's source
        ("arn:aws-us-gov:iam::123456789012:user/mallory", ["my.app", "xpi.batch"], True),  # one entry is
        ("arn:aws-us-gov:iam::123456789012:user/mallory", ["my.app"], False),  # its own source
        (XPI_ROLE, ["xpi.inference"], False),  # xpi's role
    ],
)
def test_the_bus_policy_denies_xpi_sources_to_other_principals(
    principal: str, sources: list[str], denied: bool
) -> None:
    assert (
        put_events_denied_by_bus_policy(BUS_POLICY, bus_arn=BUS, principal_arn=principal, sources=sources)
        is denied
    )


def test_a_bus_condition_not_understood_lets_the_deny_apply() -> None:
    policy = [{**BUS_POLICY[0], "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]
    assert put_events_denied_by_bus_policy(policy, bus_arn=BUS, principal_arn=XPI_ROLE, sources=["a"])


def test_the_call_log_remembers_a_bounded_number_of_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a call log that remembers three calls, and a call per request on a per-request resource
    monkeypatch.setattr(CallLog, "REMEMBERED", 3)
    log = CallLog(tmp_path / "calls.jsonl", roles={})
    principal = "arn:aws:sts::123456789012:assumed-role/xpi-invoke/session"

    def call(n: int) -> None:
        log.record(principal, Authorization("s3:GetObject", f"arn:aws:s3:::bucket/payloads/r-{n}", True))

    def lines() -> int:
        return len(log.path.read_text(encoding="utf-8").splitlines()) - 1  # the roles line aside

    # WHEN a thousand requests' calls are recorded
    for n in range(1000):
        call(n)

    # THEN what it holds in memory stays bounded, while every distinct call is in the file
    assert len(log._seen) == 3
    assert lines() == 1000
    # AND a recent call is not written again; a forgotten one is, once (read back as a set, harmlessly)
    call(999)
    assert lines() == 1000
    call(0)
    assert lines() == 1001
