"""Every IAM policy of template.yaml as it would be deployed, resolved to plain JSON, offline.

The template is translated the way the local stack translates it (`load_template`, `translate` of
xpi_tools.local.deploy), so SAM's policy templates (SQSPollerPolicy, ...) and the roles SAM creates
are expanded by samtranslator itself. Local code locations become placeholder S3 locations (nothing
is built or uploaded) and AWS::Include documents are inlined, as CloudFormation would.

Intrinsics are then resolved for a fixed, plausible deployment: the template's default parameters
(or the given ones), its conditions, partition aws-us-gov, region us-gov-west-1, account
123456789012, stack xpi-local. A Ref or Fn::GetAtt of a resource becomes the physical name or ARN
CloudFormation would give a resource of that type (`<stack>-<logical id>` where the template names
none), e.g. arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/xpi-local-LineageTable.
Anything that cannot be resolved raises UnresolvedIntrinsicError rather than pass through.
"""

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from xpi_tools.local.deploy import inline_includes, load_template, translate

PARTITION = "aws-us-gov"
REGION = "us-gov-west-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "xpi-local"
PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/"
    + str(uuid.uuid5(uuid.NAMESPACE_URL, STACK_NAME)),
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
# Stands in for local code and definition files: translation needs a location, never its content.
PLACEHOLDER_BUCKET = "xpi-iam-lint-placeholder"

# The property that names a resource, where CloudFormation lets the template choose the name.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::SecretsManager::Secret": "Name",
}
ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    "AWS::SQS::Queue": "arn:{partition}:sqs:{region}:{account}:{name}",
    "AWS::SNS::Topic": "arn:{partition}:sns:{region}:{account}:{name}",
    "AWS::Lambda::Function": "arn:{partition}:lambda:{region}:{account}:function:{name}",
    "AWS::StepFunctions::StateMachine": "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
    "AWS::KMS::Key": "arn:{partition}:kms:{region}:{account}:key/{name}",
    "AWS::SecretsManager::Secret": "arn:{partition}:secretsmanager:{region}:{account}:secret:{name}",
    "AWS::Events::EventBus": "arn:{partition}:events:{region}:{account}:event-bus/{name}",
    "AWS::Events::Rule": "arn:{partition}:events:{region}:{account}:rule/{name}",
    "AWS::Logs::LogGroup": "arn:{partition}:logs:{region}:{account}:log-group:{name}:*",
    "AWS::S3::Bucket": "arn:{partition}:s3:::{name}",
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role/{name}",
    "AWS::IAM::ManagedPolicy": "arn:{partition}:iam::{account}:policy/{name}",
}
# Types whose Ref is their ARN rather than their name.
REF_IS_ARN = {
    "AWS::StepFunctions::StateMachine",
    "AWS::SNS::Topic",
    "AWS::SecretsManager::Secret",
    "AWS::IAM::ManagedPolicy",
}
# Resource-based policies: (resource type, property holding the document, what to call it).
RESOURCE_POLICY_PROPERTIES = (
    ("AWS::SQS::QueuePolicy", "PolicyDocument", "queue policy"),
    ("AWS::SNS::TopicPolicy", "PolicyDocument", "topic policy"),
    ("AWS::S3::BucketPolicy", "PolicyDocument", "bucket policy"),
    ("AWS::KMS::Key", "KeyPolicy", "key policy"),
    ("AWS::SecretsManager::ResourcePolicy", "ResourcePolicy", "secret policy"),
    ("AWS::ApiGateway::RestApi", "Policy", "API resource policy"),
)
AWS_MANAGED_POLICY_ARN = re.compile(r"^arn:[\w-]+:iam::aws:policy/(?:.*/)?(?P<name>[^/]+)$")
ROLE_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class UnresolvedIntrinsicError(ValueError):
    """An intrinsic function or reference this resolver cannot give a plausible value."""


class _NoValue:
    """AWS::NoValue: the property or list element disappears."""


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class RolePolicies:
    role: str  # logical id of the AWS::IAM::Role, e.g. "InvokeModelFunctionRole"
    used_by: tuple[str, ...]  # logical ids of the functions / state machines whose Role it is
    documents: tuple[dict[str, Any], ...]  # resolved inline policies (and the template's attached ones)
    managed_policy_arns: tuple[str, ...]  # e.g. AWSLambdaBasicExecutionRole, resolved to aws-us-gov


@dataclass(frozen=True)
class NamedPolicy:
    """One policy document to lint, named the way a reader finds it in the template."""

    principal: str  # logical id of the role, managed policy or policy resource; "AWS managed" for AWS's
    policy: str  # inline policy name, managed policy name, or kind of resource policy
    kind: str  # "identity" or "resource"
    document: dict[str, Any]


def _is_intrinsic(value: dict[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Ref" or key.startswith("Fn::")


def _stable_token(text: str, length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
    """Deterministic stand-in for the random part of a generated id (findings must not move)."""
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    token = ""
    for _ in range(length):
        digest, index = divmod(digest, len(alphabet))
        token += alphabet[index]
    return token


class Resolver:
    """Resolves intrinsics of a translated (plain CloudFormation) template."""

    def __init__(self, cfn: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> None:
        self.resources: dict[str, Any] = dict(cfn.get("Resources", {}))
        self.mappings: dict[str, Any] = dict(cfn.get("Mappings", {}))
        self.condition_definitions: dict[str, Any] = dict(cfn.get("Conditions", {}))
        self.parameters = self._parameter_values(cfn.get("Parameters", {}), parameters or {})
        self._conditions: dict[str, bool] = {}

    @staticmethod
    def _parameter_values(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            if name in given:
                raw: Any = given[name]
            elif "Default" in declaration:
                raw = declaration["Default"]
            else:
                raise UnresolvedIntrinsicError(f"parameter {name} has no default and no value was given")
            if str(declaration.get("Type", "String")).startswith(("CommaDelimitedList", "List<")):
                values[name] = (
                    raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
                )
            else:
                values[name] = str(raw)
        return values

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.condition_definitions:
                raise UnresolvedIntrinsicError(f"unknown condition {name}")
            self._conditions[name] = self._evaluate(self.condition_definitions[name])
        return self._conditions[name]

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            (function, argument), *_ = expression.items()
            match function:
                case "Condition":
                    return self.condition(argument)
                case "Fn::Equals":
                    left, right = (self.resolve(item) for item in argument)
                    return str(left) == str(right)
                case "Fn::Not":
                    return not self._evaluate(argument[0])
                case "Fn::And":
                    return all(self._evaluate(item) for item in argument)
                case "Fn::Or":
                    return any(self._evaluate(item) for item in argument)
        raise UnresolvedIntrinsicError(f"cannot evaluate condition {json.dumps(expression)}")

    def exists(self, logical_id: str) -> bool:
        """False for a resource whose Condition is false (CloudFormation does not create it)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    # ------------------------------------------------------------------ values
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = (self.resolve(item) for item in value)
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if _is_intrinsic(value):
            return self._intrinsic(*next(iter(value.items())))
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _intrinsic(self, function: str, argument: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "Ref": lambda name: self.ref(str(name)),
            "Fn::GetAtt": self._get_att_intrinsic,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::If": self._if,
            "Fn::Select": lambda select: self.resolve(select[1])[int(self.resolve(select[0]))],
            "Fn::Split": lambda split: str(self.resolve(split[1])).split(split[0]),
            "Fn::FindInMap": self._find_in_map,
        }
        if function not in handlers:
            raise UnresolvedIntrinsicError(f"{function} is not resolved offline: {json.dumps(argument)}")
        return handlers[function](argument)

    def _get_att_intrinsic(self, argument: Any) -> Any:
        logical_id, attribute = (
            argument.split(".", 1) if isinstance(argument, str) else self.resolve(argument)
        )
        return self.get_att(logical_id, attribute)

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _find_in_map(self, argument: Any) -> Any:
        map_name, first, second = self.resolve(argument)
        return self.mappings[map_name][first][second]

    def _sub(self, argument: Any) -> str:
        template, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: self.resolve(value) for name, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is written as ${Literal}
                return "${" + name[1:] + "}"
            if name in local:
                value = local[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            if isinstance(value, (dict, list)):
                raise UnresolvedIntrinsicError(f"${{{name}}} in Fn::Sub is not a string: {value!r}")
            return str(value)

        return SUB_VARIABLE.sub(substitute, str(template))

    # ------------------------------------------------------------------ references
    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource_ref(name)

    def _resource_ref(self, logical_id: str) -> str:
        kind = self._type(logical_id)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{self.physical_name(logical_id)}"
        if kind == "AWS::KMS::Key":
            return self._key_id(logical_id)
        if kind == "AWS::ApiGateway::RestApi":
            return _stable_token(logical_id, 10)
        return self.arn(logical_id) if kind in REF_IS_ARN else self.physical_name(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self._type(logical_id)
        if attribute == "Arn" and kind in ARN_FORMATS:
            return self.arn(logical_id)
        attributes: dict[tuple[str, str], Callable[[str], str]] = {
            ("AWS::SQS::Queue", "QueueName"): self.physical_name,
            ("AWS::SQS::Queue", "QueueUrl"): self._resource_ref,
            ("AWS::Events::EventBus", "Name"): self.physical_name,
            ("AWS::StepFunctions::StateMachine", "Name"): self.physical_name,
            ("AWS::KMS::Key", "KeyId"): self._key_id,
            ("AWS::DynamoDB::Table", "StreamArn"): lambda table: (
                self.arn(table) + "/stream/2024-01-01T00:00:00.000"
            ),
            ("AWS::IAM::Role", "RoleId"): lambda role: "AROA" + _stable_token(role, 17, ROLE_ID_ALPHABET),
            ("AWS::ApiGateway::RestApi", "RootResourceId"): lambda api: _stable_token(api + "/", 10),
        }
        if (kind, attribute) not in attributes:
            raise UnresolvedIntrinsicError(
                f"no plausible value for Fn::GetAtt {logical_id}.{attribute} ({kind})"
            )
        return attributes[(kind, attribute)](logical_id)

    def _type(self, logical_id: str) -> str:
        if logical_id not in self.resources:
            raise UnresolvedIntrinsicError(f"Ref to {logical_id}: no such parameter or resource")
        if not self.exists(logical_id):
            raise UnresolvedIntrinsicError(f"{logical_id} is referenced but its condition is false")
        return str(self.resources[logical_id]["Type"])

    def _key_id(self, logical_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{STACK_NAME}/{logical_id}"))

    def physical_name(self, logical_id: str) -> str:
        kind = self._type(logical_id)
        properties = self.resources[logical_id].get("Properties", {})
        name_property = NAME_PROPERTIES.get(kind)
        if name_property and name_property in properties:
            return str(self.resolve(properties[name_property]))
        generated = f"{STACK_NAME}-{logical_id}"
        return generated.lower() if kind == "AWS::S3::Bucket" else generated

    def arn(self, logical_id: str) -> str:
        kind = self._type(logical_id)
        name = self.physical_name(logical_id)
        properties = self.resources[logical_id].get("Properties", {})
        match kind:
            case "AWS::KMS::Key":
                name = self._key_id(logical_id)
            case "AWS::SecretsManager::Secret":  # Secrets Manager appends six random characters
                name = f"{name}-{_stable_token(logical_id, 6)}"
            case "AWS::Events::Rule" if "EventBusName" in properties:
                bus = str(self.resolve(properties["EventBusName"])).rsplit("/", 1)[-1]
                name = name if bus == "default" else f"{bus}/{name}"
            case "AWS::IAM::Role" | "AWS::IAM::ManagedPolicy":
                path = str(self.resolve(properties.get("Path", "/")))
                name = path.lstrip("/") + name
        return ARN_FORMATS[kind].format(partition=PARTITION, region=REGION, account=ACCOUNT_ID, name=name)


# ---------------------------------------------------------------------- translation
def _placeholder_locations(template: dict[str, Any]) -> None:
    """Local code and definition paths become S3 locations: translation only needs them to exist."""
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.setdefault("Properties", {})
        placeholder = {"Bucket": PLACEHOLDER_BUCKET, "Key": logical_id}
        match resource.get("Type"):
            case "AWS::Serverless::Function" if (
                "InlineCode" not in properties and "ImageUri" not in properties
            ):
                properties["CodeUri"] = placeholder
            case "AWS::Serverless::LayerVersion":
                properties["ContentUri"] = placeholder
            case "AWS::Serverless::StateMachine" | "AWS::Serverless::Api" | "AWS::Serverless::HttpApi":
                if isinstance(properties.get("DefinitionUri"), str):
                    properties["DefinitionUri"] = placeholder


def translated_template(template_path: Path, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template after the SAM transform, as the local stack translates it (no build, no network)."""
    template = inline_includes(load_template(template_path), template_path.parent)
    _placeholder_locations(template)
    return translate(template, dict(parameters or {}), REGION)


# ---------------------------------------------------------------------- policies
def _referenced_logical_id(value: Any, attribute: str) -> str | None:
    """X for {"Fn::GetAtt": [X, attribute]} (or "X.attribute"); None for anything else."""
    if not isinstance(value, dict) or "Fn::GetAtt" not in value:
        return None
    target = value["Fn::GetAtt"]
    logical_id, got = target.split(".", 1) if isinstance(target, str) else target
    return str(logical_id) if got == attribute else None


def _attached_roles(properties: Mapping[str, Any], resolver: "Resolver | None" = None) -> set[str]:
    roles = properties.get("Roles", [])
    if isinstance(roles, dict) and "Fn::If" in roles and resolver is not None:  # a conditional list
        condition, when_true, when_false = roles["Fn::If"]
        roles = when_true if resolver.condition(condition) else when_false
    return (
        {str(role["Ref"]) for role in roles if isinstance(role, dict) and "Ref" in role}
        if isinstance(roles, list)
        else set()
    )


class TemplatePolicies:
    """The translated template with its resolver; one translation serves every question."""

    def __init__(self, template_path: Path, parameters: Mapping[str, str] | None = None) -> None:
        self.cfn = translated_template(template_path, parameters)
        self.resolver = Resolver(self.cfn, parameters)

    def _existing(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.cfn["Resources"].items():
            if resource["Type"] in types and self.resolver.exists(logical_id):
                yield logical_id, resource.get("Properties", {})

    def _users_of_roles(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        for logical_id, resource in self.cfn["Resources"].items():
            role_property = {"AWS::Lambda::Function": "Role", "AWS::StepFunctions::StateMachine": "RoleArn"}
            if resource["Type"] not in role_property or not self.resolver.exists(logical_id):
                continue
            role = _referenced_logical_id(resource["Properties"].get(role_property[resource["Type"]]), "Arn")
            if role:
                users.setdefault(role, []).append(logical_id)
        return users

    def role_policies(self) -> dict[str, RolePolicies]:
        users = self._users_of_roles()
        template_managed = {
            self.resolver.arn(logical_id): (logical_id, properties)
            for logical_id, properties in self._existing("AWS::IAM::ManagedPolicy")
        }
        attached_policies = list(self._existing("AWS::IAM::Policy"))
        roles: dict[str, RolePolicies] = {}
        for role, properties in self._existing("AWS::IAM::Role"):
            resolved = self.resolver.resolve(properties)
            managed_arns = tuple(str(arn) for arn in resolved.get("ManagedPolicyArns", []))
            documents = [policy["PolicyDocument"] for policy in resolved.get("Policies", [])]
            documents += [
                self.resolver.resolve(policy["PolicyDocument"])
                for _, policy in attached_policies
                if role in _attached_roles(policy, self.resolver)
            ]
            documents += [
                self.resolver.resolve(policy["PolicyDocument"])
                for arn, (_, policy) in template_managed.items()
                if arn in managed_arns or role in _attached_roles(policy, self.resolver)
            ]
            roles[role] = RolePolicies(
                role=role,
                used_by=tuple(users.get(role, ())),
                documents=tuple(documents),
                managed_policy_arns=managed_arns,
            )
        return roles

    def policies_to_lint(self) -> list[NamedPolicy]:
        """Identity policies (inline, IAM::Policy, IAM::ManagedPolicy, AWS managed ones attached, each
        once) and resource policies (queues, topics, buckets, KMS keys, secrets, the API)."""
        named: list[NamedPolicy] = []
        aws_managed: set[str] = set()
        for role, properties in self._existing("AWS::IAM::Role"):
            resolved = self.resolver.resolve(properties)
            for policy in resolved.get("Policies", []):
                named.append(
                    NamedPolicy(role, str(policy["PolicyName"]), "identity", policy["PolicyDocument"])
                )
            aws_managed.update(
                str(arn)
                for arn in resolved.get("ManagedPolicyArns", [])
                if AWS_MANAGED_POLICY_ARN.match(str(arn))
            )
        for logical_id, properties in self._existing("AWS::IAM::Policy"):
            document = self.resolver.resolve(properties["PolicyDocument"])
            named.append(
                NamedPolicy(logical_id, str(properties.get("PolicyName", logical_id)), "identity", document)
            )
        for logical_id, properties in self._existing("AWS::IAM::ManagedPolicy"):
            document = self.resolver.resolve(properties["PolicyDocument"])
            named.append(NamedPolicy(logical_id, "managed policy", "identity", document))
        for arn in sorted(aws_managed):
            name, document = aws_managed_policy(arn)
            named.append(NamedPolicy("AWS managed", name, "identity", document))
        for resource_type, document_property, description in RESOURCE_POLICY_PROPERTIES:
            for logical_id, properties in self._existing(resource_type):
                if document_property in properties:
                    document = self.resolver.resolve(properties[document_property])
                    named.append(NamedPolicy(logical_id, description, "resource", document))
        for logical_id, properties in self._existing("AWS::ApiGateway::RestApi"):
            body = properties.get("Body")
            if isinstance(body, dict) and "x-amazon-apigateway-policy" in body:
                document = self.resolver.resolve(body["x-amazon-apigateway-policy"])
                named.append(NamedPolicy(logical_id, "API resource policy", "resource", document))
        return named


def role_policies(
    template_path: Path, parameters: Mapping[str, str] | None = None
) -> dict[str, RolePolicies]:
    """Every AWS::IAM::Role of the translated template, by logical id, with its resolved policies."""
    return TemplatePolicies(template_path, parameters).role_policies()


@cache
def _aws_managed_policy_documents() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    documents: dict[str, Any] = json.loads(aws_managed_policies_data)
    return documents


def aws_managed_policy(arn: str) -> tuple[str, dict[str, Any]]:
    """(name, document) of an AWS managed policy, from the copy bundled with moto (offline)."""
    match = AWS_MANAGED_POLICY_ARN.match(arn)
    if not match:
        raise ValueError(f"{arn} is not an AWS managed policy ARN")
    name = match.group("name")
    if name not in _aws_managed_policy_documents():
        raise KeyError(f"AWS managed policy {name} is not in moto's bundled copy")
    return name, copy.deepcopy(_aws_managed_policy_documents()[name]["Document"])


def _allowed_actions(document: Mapping[str, Any]) -> set[str]:
    statements = document.get("Statement", [])
    actions: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue  # NotAction cannot be listed as actions
        action = statement["Action"]
        actions.update(str(a).lower() for a in (action if isinstance(action, list) else [action]))
    return actions


def granted_actions(policies: RolePolicies) -> set[str]:
    """Every action an Allow statement grants, lower-cased "service:action" as written (wildcards such
    as "kms:reencrypt*" are not expanded). AWS managed policies come from moto's bundled copy; ARNs of
    other managed policies are skipped (the template's own are already among `documents`)."""
    actions: set[str] = set()
    for document in policies.documents:
        actions |= _allowed_actions(document)
    for arn in policies.managed_policy_arns:
        if AWS_MANAGED_POLICY_ARN.match(arn):
            actions |= _allowed_actions(aws_managed_policy(arn)[1])
    return actions
