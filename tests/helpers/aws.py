"""xpi's GovCloud resources created in moto (call inside `mock_aws()`), named as a deployment names them.

The lineage table, idempotency table, bus with the example subscriber rule and queue, state machine
(the real ASL, with its substitutions), artifacts bucket and commercial credentials secret.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
import moto  # noqa: F401  registers moto's request hook before the session below makes any client
from xpi.domain.config_signing import ConfigKind, sign
from xpi.models.lineage import LineageItem
from xpi.models.request import InferenceRequest
from xpi.models.workflow import PayloadRef, WorkflowState

from tests.helpers.events import EVENTS, REPO, TEST_HASH_KEY

# The unit tests' config signing key (the stack's ConfigSigningSecret holds {"key": ...}, 32+ characters).
TEST_CONFIG_SIGNING_KEY: Final = b"xpi-unit-test-config-signing-key-0123456789abcdef"


def signed_config(kind: ConfigKind, document: dict[str, Any], revision: int = 1) -> str:
    """A policy or routing document as the admin path stores it: signed with the test signing key."""
    return sign(
        document,
        kind=kind,
        revision=revision,
        changed_by="arn:aws-us-gov:iam::123456789012:role/xpi-admin",
        changed_at="2026-01-01T00:00:00+00:00",
        key=TEST_CONFIG_SIGNING_KEY,
    ).model_dump_json()


def create_config_signing_secret(name: str = "test-stack-ConfigSigningSecret") -> str:
    """The stack's signing secret holding the test key; its ARN (for CONFIG_SIGNING_SECRET_ID)."""
    return secretsmanager().create_secret(
        Name=name, SecretString=json.dumps({"key": TEST_CONFIG_SIGNING_KEY.decode()})
    )["ARN"]


if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

REGION: Final = "us-gov-west-1"
STACK = "xpi-prod"
ROLE_ARN = "arn:aws-us-gov:iam::123456789012:role/xpi-prod-InferenceStateMachineRole"
API_KEY = "bedrock-api-key-EXAMPLE-0123456789abcdef"


# The tests' own clients, made once: creating botocore clients is most of what a moto test costs. moto
# answers them inside the process under any `mock_aws()`; outside one, the socket guard refuses them.
@cache
def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION)


@cache
def dynamodb() -> "DynamoDBClient":
    return _session().client("dynamodb")


@cache
def dynamodb_resource() -> "DynamoDBServiceResource":
    return _session().resource("dynamodb")


@cache
def events() -> "EventBridgeClient":
    return _session().client("events")


@cache
def s3() -> "S3Client":
    return _session().client("s3")


@cache
def secretsmanager() -> "SecretsManagerClient":
    return _session().client("secretsmanager")


@cache
def sqs() -> "SQSClient":
    return _session().client("sqs")


@cache
def ssm() -> "SSMClient":
    return _session().client("ssm")


@cache
def stepfunctions() -> "SFNClient":
    return _session().client("stepfunctions")


@dataclass
class XpiResources:
    lineage_table: str
    idempotency_table: str
    bus_name: str
    subscriber_queue_url: str
    state_machine_arn: str
    bucket: str
    secret_id: str
    hash_key_secret_id: str
    config_signing_secret_id: str
    queue_state_machine_arn: str = ""
    _changes: list[str] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        """The functions' environment as template.yaml sets it (Globals and per-function)."""
        return {
            "LINEAGE_TABLE": self.lineage_table,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "EVENT_BUS_NAME": self.bus_name,
            "EVENT_SOURCE": "xpi.inference",
            "STATE_MACHINE_ARN": self.state_machine_arn,
            "QUEUE_STATE_MACHINE_ARN": self.queue_state_machine_arn,
            "ARTIFACTS_BUCKET": self.bucket,
            "COMMERCIAL_CREDENTIALS_SECRET_ID": self.secret_id,
            "HASH_KEY_SECRET_ID": self.hash_key_secret_id,
            "COMMERCIAL_REGION": "us-east-1",
            "LINEAGE_RETENTION_DAYS": "400",
            "POLICY_PARAMETER_NAME": f"/xpi/{STACK}/policy",
            "ROUTING_PARAMETER_NAME": f"/xpi/{STACK}/routing",
            "CONFIG_SIGNING_SECRET_ID": self.config_signing_secret_id,
        }

    def put_config(self, kind: ConfigKind, document: dict[str, Any], revision: int = 1) -> None:
        """An agency policy or routing document in its SSM parameter, signed as the admin path signs it."""
        ssm().put_parameter(
            Name=self.environment()[f"{kind.upper()}_PARAMETER_NAME"],
            Value=signed_config(kind, document, revision),
            Type="String",
            Overwrite=True,
        )

    # ------------------------------------------------------------------ request bodies by reference
    def stored_request(self, payload: PayloadRef | dict[str, Any]) -> InferenceRequest:
        """The request body a state's payload reference points at."""
        ref = PayloadRef.model_validate(payload)
        body = s3().get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        return InferenceRequest.model_validate_json(body)

    def change_request(
        self, event: dict[str, Any], remove: tuple[str, ...] = (), **changes: Any
    ) -> dict[str, Any]:
        """The event with its payload reference moved to a copy of its request body with `changes`
        (the copy carries no keyed hash, as a producer's object does not)."""
        ref = PayloadRef.model_validate(event["payload"])
        request = json.loads(s3().get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read())
        request.update(changes)
        for name in remove:
            del request[name]
        body = json.dumps(request).encode("utf-8")
        key = ref.key.replace("/sample.json", f"/changed-{len(self._changes)}.json")
        self._changes.append(key)
        s3().put_object(Bucket=ref.bucket, Key=key, Body=body)
        event["payload"] = {"bucket": ref.bucket, "key": key, "bytes": len(body)}
        return event

    # ------------------------------------------------------------------ reading what the code did
    def lineage_item(self, request_id: str) -> dict[str, Any] | None:
        table = dynamodb_resource().Table(self.lineage_table)
        item = table.get_item(Key={"request_id": request_id}).get("Item")
        return dict(item) if item else None

    def put_claim(self, state: WorkflowState) -> None:
        """What the workflow's Claim step (a conditional PutItem) leaves before Record runs."""
        table = dynamodb_resource().Table(self.lineage_table)
        table.put_item(Item=LineageItem.claimed(state.claim).model_dump(exclude_none=True))

    def subscriber_events(self) -> list[dict[str, Any]]:
        """Every event delivered to the example subscriber queue so far (drained)."""
        events: list[dict[str, Any]] = []
        while True:
            messages = (
                sqs()
                .receive_message(
                    QueueUrl=self.subscriber_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
                .get("Messages", [])
            )
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs().delete_message(
                    QueueUrl=self.subscriber_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def executions(self) -> dict[str, dict[str, Any]]:
        """Execution name -> its input, for every execution started on the state machine."""
        found = {}
        for execution in stepfunctions().list_executions(stateMachineArn=self.state_machine_arn)[
            "executions"
        ]:
            described = stepfunctions().describe_execution(executionArn=execution["executionArn"])
            found[execution["name"]] = json.loads(described.get("input", "{}"))
        return found

    def queued(self) -> dict[str, dict[str, Any]]:
        """Request id -> its item in the input of the queue workflow's executions (one per SQS batch)."""
        found = {}
        for execution in stepfunctions().list_executions(stateMachineArn=self.queue_state_machine_arn)[
            "executions"
        ]:
            described = stepfunctions().describe_execution(executionArn=execution["executionArn"])
            for item in json.loads(described.get("input", "{}"))["requests"]:
                request = item.get("request") or self.stored_request(item["payload"]).model_dump()
                found[request["request_id"]] = item
        return found

    def queue_executions(self) -> int:
        return len(
            stepfunctions().list_executions(stateMachineArn=self.queue_state_machine_arn)["executions"]
        )


def _definition(substitutions: Mapping[str, str], name: str = "inference") -> str:
    text = (REPO / "statemachines" / f"{name}.asl.json").read_text(encoding="utf-8")
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    return text


def create_table(name: str, hash_key: str, range_key: str | None = None) -> None:
    """An on-demand table keyed by a string hash key and, if given, a number range key."""
    keys: list[tuple[str, Literal["S", "N"], Literal["HASH", "RANGE"]]] = [(hash_key, "S", "HASH")]
    if range_key:
        keys.append((range_key, "N", "RANGE"))
    dynamodb().create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": kind} for key, kind, _ in keys],
        KeySchema=[{"AttributeName": key, "KeyType": role} for key, _, role in keys],
    )


def create_xpi_resources() -> XpiResources:
    lineage_table, idempotency_table = f"{STACK}-LineageTable", f"{STACK}-IdempotencyTable"
    create_table(lineage_table, "request_id")
    create_table(idempotency_table, "id")

    bus_name = f"{STACK}-xpi"
    events().create_event_bus(Name=bus_name)
    queue_url = sqs().create_queue(QueueName=f"{STACK}-SubscriberQueue")["QueueUrl"]
    queue_arn = sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events().put_rule(
        Name="ResultsToSubscriberRule",
        EventBusName=bus_name,
        EventPattern=json.dumps({"source": ["xpi.inference"]}),
        State="ENABLED",
    )
    events().put_targets(
        Rule="ResultsToSubscriberRule",
        EventBusName=bus_name,
        Targets=[{"Id": "subscriber-queue", "Arn": queue_arn}],
    )

    function_arn = f"arn:aws-us-gov:lambda:{REGION}:123456789012:function:{STACK}-" + "{}"
    definition = _definition(
        {
            "Partition": "aws-us-gov",
            "ValidateFunctionArn": function_arn.format("ValidateFunction"),
            "ClassifyFunctionArn": function_arn.format("ClassifyFunction"),
            "RouteFunctionArn": function_arn.format("RouteFunction"),
            "InvokeModelFunctionArn": function_arn.format("InvokeModelFunction"),
            "RecordOutcomeFunctionArn": function_arn.format("RecordOutcomeFunction"),
            "RecordRejectionFunctionArn": function_arn.format("RecordRejectionFunction"),
            "LineageTableName": lineage_table,
            "EventBusName": bus_name,
            "EventSource": "xpi.inference",
        }
    )
    state_machine_arn = stepfunctions().create_state_machine(
        name=f"{STACK}-inference", definition=definition, roleArn=ROLE_ARN
    )["stateMachineArn"]
    queue_definition = _definition(
        {
            "Partition": "aws-us-gov",
            "ProcessRequestFunctionArn": function_arn.format("ProcessRequestFunction"),
            "LineageTableName": lineage_table,
            "RecordOutcomeFunctionArn": function_arn.format("RecordOutcomeFunction"),
            "EventBusName": bus_name,
            "EventSource": "xpi.inference",
        },
        "queue",
    )
    queue_state_machine_arn = stepfunctions().create_state_machine(
        name=f"{STACK}-queue", definition=queue_definition, roleArn=ROLE_ARN, type="EXPRESS"
    )["stateMachineArn"]

    bucket = f"{STACK}-artifactsbucket-1x2y3z4w5v6u"
    s3().create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    secret_id = secretsmanager().create_secret(
        Name=f"{STACK}-CommercialCredentialsSecret",
        SecretString=json.dumps({"type": "api_key", "api_key": API_KEY}),
    )["ARN"]
    hash_key_secret_id = secretsmanager().create_secret(
        Name=f"{STACK}-XpiHashKeySecret", SecretString=TEST_HASH_KEY.decode()
    )["ARN"]
    config_signing_secret_id = create_config_signing_secret(f"{STACK}-ConfigSigningSecret")
    # The request bodies the sample states of events/ refer to (events/payloads/<name>.json).
    for path in sorted((EVENTS / "payloads").glob("*.json")):
        s3().put_object(Bucket=bucket, Key=f"payloads/{path.stem}/sample.json", Body=path.read_bytes())
    return XpiResources(
        lineage_table=lineage_table,
        idempotency_table=idempotency_table,
        bus_name=bus_name,
        subscriber_queue_url=queue_url,
        state_machine_arn=state_machine_arn,
        bucket=bucket,
        secret_id=secret_id,
        hash_key_secret_id=hash_key_secret_id,
        config_signing_secret_id=config_signing_secret_id,
        queue_state_machine_arn=queue_state_machine_arn,
    )
