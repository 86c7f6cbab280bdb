"""The local stack's IAM evaluation (iam_authorization.py): the permissions a request needs, and how
identity policies decide them."""

import json

import pytest
from xpi_tools.local.iam_authorization import (
    RequestContext,
    is_allowed,
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
