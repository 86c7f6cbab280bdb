"""Every alarm of template.yaml fires on the local stack, from the condition it watches: the functions'
EMF metrics and Lambda's, SQS's and Step Functions' metrics reach moto's CloudWatch, the local evaluator
(xpi_tools.local.monitoring) applies each alarm's statistic, period, threshold and comparison, sets it to
ALARM and publishes CloudWatch's notification to the alarm topic, read here from a subscribed SQS queue.

A stack of its own: the drives throttle functions, fill DLQs and break the credentials secret. The local
profile's thresholds (LOCAL_PARAMETERS): 3 blocked requests in 5 minutes, a sync p95 over 2 s."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from xpi_tools.emulator.client import EmulatorControl
from xpi_tools.local.deploy import load_template

from tests.helpers.stack import ROOT, LocalStackClient, own_stack
from tests.helpers.waiting import wait_until
from tests.integration.test_api import ApiClient

pytestmark = pytest.mark.integration

DEFAULT_MODEL = "us.amazon.nova-lite-v1:0"
FIRE_WITHIN_S = 30  # the glue reads logs and evaluates once a second; a Lambda invoke takes a cold start


class AlarmInbox:
    """An SQS queue subscribed to the alarm topic: the notifications CloudWatch would send."""

    def __init__(self, stack: LocalStackClient) -> None:
        self.sqs, self.sns = stack.client("sqs"), stack.client("sns")
        self.url = self.sqs.create_queue(QueueName=f"alarm-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=stack.state["resources"]["AlarmTopic"], Protocol="sqs", Endpoint=arn)
        self.messages: list[dict[str, Any]] = []

    def _drain(self) -> None:
        for message in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            envelope = json.loads(message["Body"])
            self.messages.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def alarm_notice(self, alarm_name: str) -> dict[str, Any] | None:
        self._drain()
        return next(
            (m for m in self.messages if m["AlarmName"] == alarm_name and m["NewStateValue"] == "ALARM"), None
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    with own_stack(tmp_path_factory.mktemp("alarms"), "alarms-stack.log") as local:
        yield local


@pytest.fixture(scope="module")
def inbox(stack: LocalStackClient) -> AlarmInbox:
    return AlarmInbox(stack)


@pytest.fixture(scope="module")
def api(stack: LocalStackClient) -> ApiClient:
    return ApiClient(stack)


def resource(stack: LocalStackClient, logical_id: str) -> str:
    return str(stack.state["resources"][logical_id])


def fires(stack: LocalStackClient, inbox: AlarmInbox, suffix: str) -> dict[str, Any]:
    """Waits until the alarm is in ALARM and its notification is on the topic; returns the notification."""
    name = f"{stack.state['stack_name']}-{suffix}"
    cloudwatch = stack.client("cloudwatch")

    def in_alarm() -> bool:
        return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "ALARM"

    wait_until(in_alarm, FIRE_WITHIN_S, 0.25, what=f"{name} in ALARM")
    wait_until(
        lambda: inbox.alarm_notice(name), FIRE_WITHIN_S, 0.25, what=f"{name}'s notification on the topic"
    )
    notice = inbox.alarm_notice(name)
    assert notice is not None
    assert notice["subject"].startswith(f'ALARM: "{name}"')
    return notice


def sync_request(api: ApiClient, prompt: str) -> tuple[int, Any]:
    body = {"request_id": f"alarm-{uuid.uuid4().hex[:12]}", "model": "default", "prompt": prompt}
    return api.call("caller2", "POST", "/v1/invoke", body)


DLQS = [
    ("RequestsDLQ", "requests-dlq"),
    ("SubscriberDLQ", "subscriber-dlq"),
    ("BatchUploadsDLQ", "batch-uploads-dlq"),
    ("BatchProgressDLQ", "batch-progress-dlq"),
]
STATE_MACHINES = [
    ("InferenceStateMachine", "inference-executions-failed"),
    ("QueueStateMachine", "queue-executions-failed"),
    ("BatchStateMachine", "batch-executions-failed"),
]
ERROR_RATES = [
    ("SyncInvokeFunction", "sync-invoke-error-rate"),
    ("InvokeModelFunction", "invoke-model-error-rate"),
]
THROTTLES = [
    ("SyncInvokeFunction", "sync-invoke-throttles"),
    ("InvokeModelFunction", "invoke-model-throttles"),
]
# Each alarm a test below drives to ALARM (the parametrized tests, and one test each for the rest).
DRIVEN = {suffix for _, suffix in DLQS + STATE_MACHINES + ERROR_RATES + THROTTLES} | {
    "blocked-requests-spike",
    "security-alerts",
    "credential-past-max-age",
    "sync-latency-p95",
    "credential-rotation-failures",
}


def test_every_alarm_of_the_template_is_driven_here_and_starts_ok(stack: LocalStackClient) -> None:
    # GIVEN the template's alarms (AlarmName "${AWS::StackName}-<suffix>")
    template = load_template(ROOT / "template.yaml")
    suffixes = {
        resource["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    # THEN each has a test here that makes it fire, each was created on the stack, and each starts OK
    assert suffixes == DRIVEN
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert {a["AlarmName"].removeprefix(f"{stack.state['stack_name']}-") for a in alarms} == DRIVEN
    assert {a["StateValue"] for a in alarms} == {"OK"}
    dashboards = stack.client("cloudwatch").list_dashboards()["DashboardEntries"]
    assert [d["DashboardName"] for d in dashboards] == [f"{stack.state['stack_name']}-xpi"]


@pytest.mark.parametrize(("dlq", "suffix"), DLQS)
def test_a_message_in_a_dlq_fires_its_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, dlq: str, suffix: str
) -> None:
    # GIVEN a message that ended in the DLQ
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=resource(stack, dlq), MessageBody=json.dumps({"request_id": "dead-letter"}))

    # THEN the DLQ's depth alarm fires, naming the queue
    notice = fires(stack, inbox, suffix)
    assert notice["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert notice["Trigger"]["Dimensions"] == [
        {"name": "QueueName", "value": resource(stack, dlq).rsplit("/", 1)[1]}
    ]
    sqs.purge_queue(QueueUrl=resource(stack, dlq))


@pytest.mark.parametrize(("state_machine", "suffix"), STATE_MACHINES)
def test_a_failed_execution_fires_its_state_machines_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, state_machine: str, suffix: str
) -> None:
    # GIVEN an execution that fails as a workflow (an input its first state cannot read: States.Runtime)
    stepfunctions = stack.client("stepfunctions")
    arn = resource(stack, state_machine)
    execution = stepfunctions.start_execution(
        stateMachineArn=arn, name=f"alarm-{uuid.uuid4().hex[:8]}", input="[]"
    )
    wait_until(
        lambda: (
            stepfunctions.describe_execution(executionArn=execution["executionArn"])["status"] == "FAILED"
        ),
        FIRE_WITHIN_S,
        what="the execution failed",
    )

    # THEN its state machine's alarm fires
    notice = fires(stack, inbox, suffix)
    assert notice["Trigger"]["Dimensions"] == [{"name": "StateMachineArn", "value": arn}]


@pytest.mark.parametrize(("function", "suffix"), ERROR_RATES)
def test_failing_invocations_fire_the_functions_error_rate_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, function: str, suffix: str
) -> None:
    # GIVEN invocations that end in an unhandled error (an event the handler cannot read)
    answer = stack.client("lambda").invoke(FunctionName=resource(stack, function), Payload=b"{}")
    assert answer.get("FunctionError") == "Unhandled"

    # THEN the error rate (metric math over Errors and Invocations) crosses its threshold
    notice = fires(stack, inbox, suffix)
    assert notice["Trigger"]["Metrics"][-1]["Expression"] == "100 * errors / invocations"


@pytest.mark.parametrize(("function", "suffix"), THROTTLES)
def test_a_throttled_invoke_fires_the_functions_throttle_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, function: str, suffix: str
) -> None:
    # GIVEN the function's reserved concurrency used up (0 reserved: Lambda refuses every invoke)
    lambda_ = stack.session.client(  # no SDK retries: each would be one more throttle
        "lambda", endpoint_url=stack.state["aws"], config=Config(retries={"total_max_attempts": 1})
    )
    lambda_.put_function_concurrency(FunctionName=resource(stack, function), ReservedConcurrentExecutions=0)
    try:
        # WHEN it is invoked
        with pytest.raises(ClientError) as refused:
            lambda_.invoke(FunctionName=resource(stack, function), Payload=b"{}")
        assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    finally:
        lambda_.delete_function_concurrency(FunctionName=resource(stack, function))

    # THEN Lambda's Throttles fires its alarm
    fires(stack, inbox, suffix)


def test_a_spike_of_blocked_requests_fires_the_blocked_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, api: ApiClient
) -> None:
    # GIVEN as many blocked requests (a CUI marking) as the threshold, within 5 minutes
    for _ in range(3):
        status, answer = sync_request(api, "CUI//SP-PRVCY\nRoster of the office.")
        assert answer["status"] == "BLOCKED", (status, answer)

    # THEN the classify step's DecisionBlock count fires the spike alarm
    assert fires(stack, inbox, "blocked-requests-spike")["Trigger"]["MetricName"] == "DecisionBlock"


def test_a_security_alert_fires_the_security_alerts_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, api: ApiClient
) -> None:
    # GIVEN a request carrying a classified banner: blocked, and a Security Alert on the bus
    sync_request(api, "SECRET//NOFORN\nOperational summary for the task force.")

    # THEN SecurityAlerts fires its alarm
    assert fires(stack, inbox, "security-alerts")["Trigger"]["MetricName"] == "SecurityAlerts"


def test_a_credential_past_its_maximum_age_fires_the_credential_age_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, api: ApiClient
) -> None:
    # GIVEN the commercial key, recorded as made 100 days ago (its rotation kept failing); no function
    # has read the secret yet on this stack
    secret_id = stack.outputs["CommercialCredentialsSecretArn"]
    # (read as the invoke function's role: the secret's policy lets no other principal read it)
    invoke_role = stack.state["function_credentials"]["InvokeModelFunction"]
    reader = boto3.client(
        "secretsmanager",
        endpoint_url=stack.state["aws"],
        region_name=stack.state["region"],
        aws_access_key_id=invoke_role["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=invoke_role["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=invoke_role["AWS_SESSION_TOKEN"],
    )
    value = json.loads(reader.get_secret_value(SecretId=secret_id)["SecretString"])
    secrets = stack.client("secretsmanager")
    value["created_at"] = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))

    # WHEN a request is answered with it
    status, answer = sync_request(api, "Name three rivers in Oregon.")
    assert status == 200, answer

    # THEN CredentialPastMaxAge fires its alarm
    assert fires(stack, inbox, "credential-past-max-age")["Trigger"]["MetricName"] == "CredentialPastMaxAge"


def test_a_slow_sync_path_fires_the_p95_latency_alarm(
    stack: LocalStackClient, inbox: AlarmInbox, api: ApiClient
) -> None:
    # GIVEN a model answering slower than the p95 threshold (2 s locally)
    emulator = EmulatorControl(stack.state["emulator_control"])
    emulator.set_latency(DEFAULT_MODEL, time_to_first_token_ms=2500)
    try:
        # WHEN sync requests are answered by it
        for _ in range(2):
            status, answer = sync_request(api, "Name three rivers in Oregon.")
            assert status == 200, answer
    finally:
        emulator.set_latency(DEFAULT_MODEL)

    # THEN the sync function's p95 Duration fires its alarm
    notice = fires(stack, inbox, "sync-latency-p95")
    assert notice["Trigger"]["ExtendedStatistic"] == "p95"


def test_a_failed_rotation_fires_the_rotation_failures_alarm(
    stack: LocalStackClient, inbox: AlarmInbox
) -> None:
    # GIVEN a credentials secret its rotation cannot rotate (a Bedrock API key naming no user)
    secrets = stack.client("secretsmanager")
    secret_id = stack.outputs["CommercialCredentialsSecretArn"]
    secrets.put_secret_value(
        SecretId=secret_id, SecretString=json.dumps({"type": "api_key", "api_key": "ABSKx"})
    )

    # WHEN it is rotated
    with pytest.raises(ClientError):
        secrets.rotate_secret(SecretId=secret_id)

    # THEN CredentialRotationFailures fires its alarm
    notice = fires(stack, inbox, "credential-rotation-failures")
    assert notice["Trigger"]["MetricName"] == "CredentialRotationFailures"
