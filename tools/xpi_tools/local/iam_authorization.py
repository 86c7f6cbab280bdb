"""IAM authorization of the local stack's AWS API, as moto's enforcement is switched on for it.

moto authenticates every signed request (access key, session token, SigV4) and collects the caller's
identity policies (an assumed role's inline and attached policies, a user's, its groups'), but its own
evaluation knows a resource only for S3, SQS, IAM and STS, and names some actions by their API operation
rather than their IAM action (`lambda:Invoke` for `lambda:InvokeFunction`, `sqs:SendMessageBatch`, a
DynamoDB transaction). This module is the evaluation the local stack uses instead (`moto_patches.py`
wires it in):

  - the IAM action(s) a request needs, from its operation (a transaction needs one per item; an SQS
    message move task the actions SQS performs as its starter);
  - the resource each applies to, read from the request where the service names it (DynamoDB tables and
    indexes, API Gateway resource paths (its actions are HTTP methods: apigateway:GET), Lambda
    functions, Step Functions state machines and executions, Secrets Manager secret ARNs,
    EventBridge buses, SSM parameters, KMS keys by id or ARN; moto's own for S3 and SQS); `*` for
    actions that take no resource (for example `states:SendTaskSuccess`), so a grant scoped to an ARN
    fails as on AWS;
  - identity policies evaluated as IAM does: an explicit Deny wins, else any Allow; Action/NotAction,
    Resource/NotResource with `*` and `?` wildcards;
  - an explicit Deny in a Secrets Manager secret's resource policy (`denied_by_secret_policy`), which
    wins over any identity Allow, with its `aws:PrincipalArn` conditions evaluated.

  - an event bus's resource policy: its Deny statements for events:PutEvents
    (`put_events_denied_by_bus_policy`, with the conditions on `events:source` and `aws:PrincipalArn`).

What it does not do (docs/local-stack.md; the policy linter and checkov cover these statically):
identity policy conditions are not evaluated (a statement applies as if its condition held), resource
policies other than a secret's and a bus's Deny (queue, bucket, key policies, a secret's Allow) and permission
boundaries are not applied, and a resource the request does not name is not checked (any resource
matches). KMS calls made by a service on the caller's behalf (SSE-KMS) are not modelled.

Every decision is written to a call log (`CallLog`), keyed by the caller's principal ARN, from which
`xpi iam usage` reports used-but-not-granted and granted-but-never-used actions per role.
"""

import dataclasses
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

_LOG = logging.getLogger(__name__)

# A resource the request does not name: any statement's Resource matches it.
UNKNOWN_RESOURCE = None

# API operations whose IAM action has another name.
_RENAMED_ACTIONS = {
    "lambda:invoke": "lambda:InvokeFunction",
    "lambda:invokeasync": "lambda:InvokeAsync",
    "sqs:sendmessagebatch": "sqs:SendMessage",
    "sqs:deletemessagebatch": "sqs:DeleteMessage",
    "sqs:changemessagevisibilitybatch": "sqs:ChangeMessageVisibility",
}
# IAM actions with no resource-level permissions: IAM evaluates them against "*" (service authorization
# reference), so only a statement whose Resource is "*" grants them.
_NO_RESOURCE_LEVEL = {
    "states:sendtasksuccess",
    "states:sendtaskfailure",
    "states:sendtaskheartbeat",
    "comprehend:detectpiientities",
    "sts:getcalleridentity",
}
_MESSAGE_MOVE_SOURCE_ACTIONS = (
    "sqs:StartMessageMoveTask",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
)
_TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@dataclass(frozen=True)
class RequestContext:
    """What one signed request to the local AWS API says about itself."""

    action: str  # "service:Operation" as moto names it
    region: str
    account_id: str
    partition: str
    path: str
    body: bytes
    moto_resource: str  # the resource moto determined, "*" when it did not


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str | None
    allowed: bool


Permissions = list[tuple[str, str | None]]


# API Gateway's management API is authorised by HTTP method on the resource's path (apigateway:GET on
# arn:<partition>:apigateway:<region>::/restapis/<id>/resources), where moto names the operation.
_APIGATEWAY_VERBS: dict[str, str] = {
    "Get": "GET",
    "Create": "POST",
    "Put": "PUT",
    "Import": "PUT",
    "Update": "PATCH",
    "Delete": "DELETE",
    "Flush": "DELETE",
}


# Bucket configuration reads moto names s3:ListBucket (its default for a bucket GET): the IAM action is the
# one of the subresource the query names.
_S3_BUCKET_READS = {
    "encryption": "s3:GetEncryptionConfiguration",
    "publicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "object-lock": "s3:GetBucketObjectLockConfiguration",
}


def _s3_bucket_read(request: RequestContext) -> str:
    query = request.path.split("?", 1)[1] if "?" in request.path else ""
    keys = {part.split("=", 1)[0] for part in query.split("&") if part}
    return next((action for key, action in _S3_BUCKET_READS.items() if key in keys), request.action)


def _apigateway(request: RequestContext, operation: str) -> Permissions:
    verb = next((v for prefix, v in _APIGATEWAY_VERBS.items() if operation.startswith(prefix)), "GET")
    path = unquote(request.path.split("?", 1)[0])
    return [(f"apigateway:{verb}", f"arn:{request.partition}:apigateway:{request.region}::{path}")]


def required_permissions(request: RequestContext) -> Permissions:
    """The (IAM action, resource) pairs the request needs; resource None where the request names none."""
    service, _, operation = request.action.partition(":")
    body = _json(request.body)
    if service == "apigateway":
        return _apigateway(request, operation)
    if request.action == "s3:ListBucket":
        request = dataclasses.replace(request, action=_s3_bucket_read(request))
    if service == "dynamodb" and operation in _DYNAMODB_MULTI_TABLE:
        return _DYNAMODB_MULTI_TABLE[operation](request, body)
    if request.action == "sqs:StartMessageMoveTask":
        return _message_move_task(body)
    action = _RENAMED_ACTIONS.get(request.action.lower(), request.action)
    if action.lower() in _NO_RESOURCE_LEVEL:
        return [(action, "*")]
    if request.moto_resource != "*":
        return [(action, request.moto_resource)]
    named = _NAMED_RESOURCES.get(service)
    resources = named(request, body) if named else []
    return [(action, resource) for resource in resources] or [(action, UNKNOWN_RESOURCE)]


def _arn(request: RequestContext, service: str, rest: str) -> str:
    return f"arn:{request.partition}:{service}:{request.region}:{request.account_id}:{rest}"


def _table(request: RequestContext, name: str, index: str | None = None) -> str:
    return _arn(request, "dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))


def _transact_write(request: RequestContext, body: dict[str, Any]) -> Permissions:
    """A transaction needs the action of each of its items, on that item's table."""
    return [
        (_TRANSACT_WRITE_ACTIONS[kind], _table(request, detail["TableName"]))
        for item in body.get("TransactItems", [])
        for kind, detail in item.items()
    ]


def _transact_get(request: RequestContext, body: dict[str, Any]) -> Permissions:
    return [
        ("dynamodb:GetItem", _table(request, i["Get"]["TableName"])) for i in body.get("TransactItems", [])
    ]


def _batch(request: RequestContext, body: dict[str, Any]) -> Permissions:
    return [(request.action, _table(request, name)) for name in body.get("RequestItems", {})]


_DYNAMODB_MULTI_TABLE = {
    "TransactWriteItems": _transact_write,
    "TransactGetItems": _transact_get,
    "BatchWriteItem": _batch,
    "BatchGetItem": _batch,
}


def _message_move_task(body: dict[str, Any]) -> Permissions:
    """SQS moves the messages with its starter's permissions: receive, delete and read attributes on the
    source, send on the destination (the original source queues when DestinationArn is absent, which the
    request does not name)."""
    source = str(body.get("SourceArn", "")) or UNKNOWN_RESOURCE
    destination = str(body.get("DestinationArn", "")) or UNKNOWN_RESOURCE
    on_source = [(action, source) for action in _MESSAGE_MOVE_SOURCE_ACTIONS]
    return [*on_source, ("sqs:SendMessage", destination)]


def _dynamodb(request: RequestContext, body: dict[str, Any]) -> list[str]:
    return [_table(request, body["TableName"], body.get("IndexName"))] if "TableName" in body else []


def _lambda(request: RequestContext, body: dict[str, Any]) -> list[str]:
    match = re.search(r"/functions/([^/]+)", request.path)
    if not match:
        return []
    name = unquote(match.group(1))
    return [name if name.startswith("arn:") else _arn(request, "lambda", f"function:{name}")]


def _states(request: RequestContext, body: dict[str, Any]) -> list[str]:
    return [str(body[key]) for key in ("stateMachineArn", "executionArn") if key in body][:1]


def _secretsmanager(request: RequestContext, body: dict[str, Any]) -> list[str]:
    secret = str(body.get("SecretId", ""))
    return [secret] if secret.startswith("arn:") else []  # a name: its ARN has a suffix moto chose


def _events(request: RequestContext, body: dict[str, Any]) -> list[str]:
    buses = sorted({str(entry.get("EventBusName") or "default") for entry in body.get("Entries", [])})
    return [bus if bus.startswith("arn:") else _arn(request, "events", f"event-bus/{bus}") for bus in buses]


def _ssm(request: RequestContext, body: dict[str, Any]) -> list[str]:
    names = [body["Name"]] if "Name" in body else list(body.get("Names", []))
    return [_arn(request, "ssm", f"parameter/{str(name).lstrip('/')}") for name in names]


def _kms(request: RequestContext, body: dict[str, Any]) -> list[str]:
    """The key a KMS request names by id or key ARN (an alias, or Decrypt without KeyId: not named)."""
    key = str(body.get("KeyId", ""))
    if key.startswith("arn:"):
        return [key] if ":key/" in key else []
    return [_arn(request, "kms", f"key/{key}")] if key and not key.startswith("alias/") else []


_NAMED_RESOURCES = {
    "kms": _kms,
    "dynamodb": _dynamodb,
    "lambda": _lambda,
    "states": _states,
    "secretsmanager": _secretsmanager,
    "events": _events,
    "ssm": _ssm,
}


def is_allowed(documents: Iterable[Mapping[str, Any]], action: str, resource: str | None) -> bool:
    """IAM's evaluation of identity policies for one action on one resource (conditions not evaluated)."""
    allowed = False
    for document in documents:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if not _applies(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def principal_arn(caller_arn: str) -> str:
    """`aws:PrincipalArn` of a caller: an assumed role's session counts as its role (path "/")."""
    match = re.fullmatch(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/.+", caller_arn)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else caller_arn


# The condition operators a resource policy's Deny may put on aws:PrincipalArn, evaluated here.
_PRINCIPAL_ARN_OPERATORS = {
    "stringequals": (False, False),  # (negated, wildcards)
    "stringnotequals": (True, False),
    "stringlike": (False, True),
    "stringnotlike": (True, True),
    "arnequals": (False, True),
    "arnnotequals": (True, True),
    "arnlike": (False, True),
    "arnnotlike": (True, True),
}


def denied_by_resource_policy(
    policy: Mapping[str, Any], caller_arn: str, action: str, resource: str | None
) -> bool:
    """Whether a resource policy explicitly denies the caller the action (a Deny beats any Allow).

    A Deny statement applies to a caller its Principal names ("*", or the caller's ARN under "AWS"),
    for a matching Action/Resource, when its conditions hold. Only `aws:PrincipalArn` conditions can be
    evaluated here; a Deny with any other condition key is not applied (the linter reads it)."""
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Deny" or not _applies(statement, action, resource):
            continue
        if not _names_caller(statement, caller_arn) or not _conditions_hold(statement, caller_arn):
            continue
        return True
    return False


def _names_caller(statement: Mapping[str, Any], caller_arn: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    named = _listed(principal.get("AWS", [])) if isinstance(principal, Mapping) else []
    return "*" in named or caller_arn in named or principal_arn(caller_arn) in named


def _conditions_hold(statement: Mapping[str, Any], caller_arn: str) -> bool:
    value = principal_arn(caller_arn)
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            rule = _PRINCIPAL_ARN_OPERATORS.get(operator.lower())
            if key.lower() != "aws:principalarn" or rule is None:
                return False  # not evaluated here: the Deny is not applied
            negated, wildcards = rule
            matched = any(
                _wildcard(pattern, value) if wildcards else pattern == value for pattern in _listed(expected)
            )
            if matched == negated:
                return False
    return True


def denied_by_secret_policy(
    request: RequestContext, caller_arn: str, action: str, resource: str | None
) -> bool:
    """Whether the resource policy of the secret a Secrets Manager request names denies the caller."""
    if not action.lower().startswith("secretsmanager:"):
        return False
    secret_id = str(_json(request.body).get("SecretId", ""))
    policy = _secret_policy(request.account_id, request.region, secret_id) if secret_id else None
    return policy is not None and denied_by_resource_policy(policy, caller_arn, action, resource)


def _secret_policy(account_id: str, region: str, secret_id: str) -> dict[str, Any] | None:
    """The resource policy moto holds for the secret (by name or ARN), if it has one."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account_id][region].secrets.get(secret_id)
    document = getattr(secret, "policy", None)
    return _json(document.encode()) if isinstance(document, str) else None


def _applies(statement: Mapping[str, Any], action: str, resource: str | None) -> bool:
    if "NotAction" in statement:
        if any(_wildcard(p, action, case_sensitive=False) for p in _listed(statement["NotAction"])):
            return False
    elif not any(_wildcard(p, action, case_sensitive=False) for p in _listed(statement.get("Action", []))):
        return False
    if resource is UNKNOWN_RESOURCE:
        return True
    if "NotResource" in statement:
        return not any(_wildcard(p, resource) for p in _listed(statement["NotResource"]))
    return any(_wildcard(p, resource) for p in _listed(statement.get("Resource", [])))


def put_events_denied_by_bus_policy(
    statements: Iterable[Mapping[str, Any]], *, bus_arn: str, principal_arn: str, sources: Iterable[str]
) -> bool:
    """Whether an event bus's resource policy denies this PutEvents: a Deny statement for
    events:PutEvents on the bus, naming every principal (`*`) or this one, whose conditions hold for
    any of the entries (EventBridge authorizes each entry). Understood: String(Not)Equals/String(Not)Like
    on `events:source` (per entry) and Arn(Not)Equals/Arn(Not)Like on `aws:PrincipalArn` (the role's
    ARN for a role session); a condition not understood lets the Deny apply (fail closed)."""
    for statement in statements:
        if statement.get("Effect") != "Deny" or not _applies(statement, "events:PutEvents", bus_arn):
            continue
        principal = statement.get("Principal")
        named = principal == "*" or (
            isinstance(principal, Mapping)
            and any(p in ("*", principal_arn) for p in _listed(principal.get("AWS", [])))
        )
        if named and any(
            _bus_condition_holds(statement.get("Condition") or {}, principal_arn, source)
            for source in sources
        ):
            return True
    return False


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _like(pattern: str, value: str) -> bool:
    return _wildcard(pattern, value)


_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "stringequals": _equals,
    "stringlike": _like,
    "arnequals": _equals,
    "arnlike": _like,
}


def _bus_condition_holds(condition: Mapping[str, Any], principal_arn: str, source: str) -> bool:
    keys = {"events:source": source, "aws:principalarn": principal_arn}
    for operator, tests in condition.items():
        base = operator.lower()
        negated = "not" in base
        test = _STRING_TESTS.get(base.replace("not", ""))
        for key, expected in (tests or {}).items():
            if test is None or key.lower() not in keys:
                continue  # not understood: holds, so the Deny applies
            matched = any(test(pattern, keys[key.lower()]) for pattern in _listed(expected))
            if matched == negated:
                return False
    return True


def _wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


# What Lambda checks the execution role for when an SQS event source mapping is created: CloudFormation
# fails the mapping ("The provided execution role does not have permissions to call ReceiveMessage on
# SQS") when one is missing.
SQS_POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def missing_poller_permissions(documents: Iterable[Mapping[str, Any]], queue_arn: str) -> list[str]:
    listed = list(documents)
    return [action for action in SQS_POLLER_ACTIONS if not is_allowed(listed, action, queue_arn)]


class CallLog:
    """Every distinct (principal, action, resource, decision) the local AWS API saw, appended as JSON lines
    to one file per stack; `xpi iam usage` reads them back (as sets: a line written twice counts once).

    Only the most recent REMEMBERED distinct calls are remembered to skip repeats: resources are often
    per request (an object's key, an execution's ARN), and a set of every one the stack ever saw grew
    with every request it served (the soak). A call seen again after it was forgotten is written again."""

    REMEMBERED = 10_000

    def __init__(self, path: Path, roles: Mapping[str, str]) -> None:
        self.path = path
        # insertion-ordered: the oldest is forgotten first
        self._seen: OrderedDict[tuple[str, str, str | None, bool], None] = OrderedDict()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # The first line maps the stack's role names to their logical ids in the template.
        path.write_text(json.dumps({"roles": dict(roles)}) + "\n", encoding="utf-8")

    def record(self, principal: str, decision: Authorization) -> None:
        key = (principal, decision.action, decision.resource, decision.allowed)
        with self._lock:
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > self.REMEMBERED:
                self._seen.popitem(last=False)
            line = {"principal": principal, "action": decision.action, "resource": decision.resource}
            try:  # the log must never fail the request it describes
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({**line, "allowed": decision.allowed}) + "\n")
            except OSError:
                _LOG.exception("could not write the IAM call log %s", self.path)
