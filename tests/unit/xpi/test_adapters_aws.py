"""The GovCloud adapters against moto: lineage conditions, events on the bus, workflow starts, outputs,
and the commercial credentials secret."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from pydantic import BaseModel
from xpi.adapters import aws as aws_clients
from xpi.adapters.admin import AwsAdminActions
from xpi.adapters.config_store import SigningState, parse_signing_secret
from xpi.adapters.credentials import SecretsManagerCredentials
from xpi.adapters.event_bus import EventBridgePublisher, EventPublishError
from xpi.adapters.hash_key import SecretsManagerHashKey
from xpi.adapters.lineage_store import DynamoLineageStore
from xpi.adapters.object_store import S3ObjectStore, S3PayloadStore
from xpi.adapters.workflow import StepFunctionsBatchStarter, StepFunctionsStarter
from xpi.domain.config_signing import verify
from xpi.domain.errors import CredentialsUnavailable, HashKeyUnavailable
from xpi.models.batch import BatchObject
from xpi.models.credentials import ApiKey, IamKeys
from xpi.models.events import EventCaller, EventModel, ResultDetail
from xpi.models.lineage import LineageError, LineageItem
from xpi.models.workflow import PayloadRef, WorkflowInput
from xpi_tools.local.moto_patches import patch_message_move_task

from tests.helpers import aws as aws_helpers
from tests.helpers.aws import REGION, XpiResources, create_xpi_resources
from tests.helpers.errors import raises_with_reason
from tests.helpers.events import make_source, sample_request
from tests.helpers.fakes import TEST_HASH_KEY

FIRST_SEEN = {"created_at": "2025-03-12T14:05:12.007+00:00", "day": "2025-03-12", "expires_at": 1776348312}
PRINCIPAL = "AROAQXZEXAMPLEROLEID1:claims-intake"
CLAIM_EXPIRES_AT = 1776348000


@pytest.fixture
def stack() -> Iterator[XpiResources]:
    with mock_aws():
        yield create_xpi_resources()


def final_item(request_id: str, status: str = "FAILED", **attributes: Any) -> LineageItem:
    """A final item as the record step or a rejection hands it to the store."""
    return LineageItem.model_validate(
        {
            "request_id": request_id,
            "status": status,
            "caller_principal": PRINCIPAL,
            "source": "sqs",
            "model_requested": "default",
            **FIRST_SEEN,
            **attributes,
        }
    )


class TestDynamoLineageStore:
    def claim(self, stack: XpiResources, request_id: str, status: str = "ACCEPTED") -> None:
        table = aws_helpers.dynamodb_resource().Table(stack.lineage_table)
        table.put_item(
            Item={
                "request_id": request_id,
                "status": status,
                "created_at": "2025-03-12T14:00:00.000+00:00",
                "day": "2025-03-12",
                "expires_at": CLAIM_EXPIRES_AT,
                "caller_principal": PRINCIPAL,
                "source": "sqs",
                "model_requested": "default",
            }
        )

    def test_a_new_item_is_written_with_its_first_seen_fields(self, stack: XpiResources) -> None:
        store = DynamoLineageStore(stack.lineage_table)
        error = LineageError(code="RequestInvalid", message="request is not valid JSON")

        written = store.finalize(final_item("req-1", error=error))

        assert written is True
        assert stack.lineage_item("req-1") == {
            "request_id": "req-1",
            "status": "FAILED",
            "caller_principal": PRINCIPAL,
            "source": "sqs",
            "model_requested": "default",
            "error": {"code": "RequestInvalid", "message": "request is not valid JSON"},
            "created_at": FIRST_SEEN["created_at"],
            "day": "2025-03-12",
            "expires_at": FIRST_SEEN["expires_at"],
        }

    def test_an_accepted_claim_becomes_final_and_keeps_its_created_at(self, stack: XpiResources) -> None:
        # GIVEN the claim the workflow wrote
        self.claim(stack, "req-2")
        store = DynamoLineageStore(stack.lineage_table)

        # WHEN
        written = store.finalize(final_item("req-2", "COMPLETED", response_bytes=244))

        # THEN
        assert written is True
        item = stack.lineage_item("req-2")
        assert item is not None
        assert item["status"] == "COMPLETED"
        assert item["response_bytes"] == 244
        # the claim's first-seen fields, not the final item's
        assert (item["created_at"], item["expires_at"]) == ("2025-03-12T14:00:00.000+00:00", CLAIM_EXPIRES_AT)

    @pytest.mark.parametrize("final", ["COMPLETED", "FAILED", "BLOCKED"])
    def test_a_final_item_is_never_rewritten(self, stack: XpiResources, final: str) -> None:
        self.claim(stack, "req-3", status=final)
        store = DynamoLineageStore(stack.lineage_table)

        written = store.finalize(final_item("req-3", stop_reason="late"))

        assert written is False
        item = stack.lineage_item("req-3")
        assert item is not None and item["status"] == final and "stop_reason" not in item

    def test_only_if_new_writes_a_missing_item(self, stack: XpiResources) -> None:
        store = DynamoLineageStore(stack.lineage_table)

        assert store.finalize(final_item("req-4"), only_if_new=True) is True
        assert store.get("req-4") == final_item("req-4")

    def test_only_if_new_leaves_an_accepted_claim_alone(self, stack: XpiResources) -> None:
        self.claim(stack, "req-5")
        store = DynamoLineageStore(stack.lineage_table)

        assert store.finalize(final_item("req-5"), only_if_new=True) is False
        item = store.get("req-5")
        assert item is not None and item.status == "ACCEPTED"

    def test_get_of_a_missing_item_is_none(self, stack: XpiResources) -> None:
        assert DynamoLineageStore(stack.lineage_table).get("nope") is None

    def test_an_attribute_the_model_does_not_know_is_left_out_on_read(self, stack: XpiResources) -> None:
        # GIVEN an item another version wrote with an attribute this one does not know
        self.claim(stack, "req-7")
        table = aws_helpers.dynamodb_resource().Table(stack.lineage_table)
        table.update_item(
            Key={"request_id": "req-7"},
            UpdateExpression="SET legacy_note = :n",
            ExpressionAttributeValues={":n": "kept by an older version"},
        )

        # WHEN / THEN it still reads
        item = DynamoLineageStore(stack.lineage_table).get("req-7")
        assert item is not None and item.status == "ACCEPTED" and item.expires_at == CLAIM_EXPIRES_AT

    def test_by_day_reads_newest_first_since_a_moment(self, stack: XpiResources) -> None:
        # moto answers the query only on the table's by-day index, so it is created as the template does
        aws_helpers.dynamodb().update_table(
            TableName=stack.lineage_table,
            AttributeDefinitions=[
                {"AttributeName": "day", "AttributeType": "S"},
                {"AttributeName": "created_at", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexUpdates=[
                {
                    "Create": {
                        "IndexName": "by-day",
                        "KeySchema": [
                            {"AttributeName": "day", "KeyType": "HASH"},
                            {"AttributeName": "created_at", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                }
            ],
        )
        store = DynamoLineageStore(stack.lineage_table)
        for minute, request_id in enumerate(["early", "middle", "late"]):
            store.finalize(final_item(request_id, created_at=f"2025-03-12T14:0{minute}:00.000+00:00"))

        items = store.by_day(datetime(2025, 3, 12, tzinfo=UTC).date(), "2025-03-12T14:01:00.000+00:00", 10)

        assert [item.request_id for item in items] == ["late", "middle"]

    def test_other_errors_are_raised(self, stack: XpiResources) -> None:
        store = DynamoLineageStore("no-such-table")

        with pytest.raises(Exception, match="ResourceNotFoundException"):
            store.finalize(final_item("req-6"))


def result_detail(request_id: str = "req-ev-1") -> ResultDetail:
    now = datetime(2025, 3, 12, 14, 7, 5, tzinfo=UTC)
    return ResultDetail(
        request_id=request_id,
        status="FAILED",
        source="sqs",
        caller=EventCaller(principal="AROAQXZEXAMPLEROLEID1:claims-intake"),
        model=EventModel(requested="default"),
        timings={"completed_at": now},
        lineage_key=request_id,
    )


class TestEventBridgePublisher:
    def test_the_event_reaches_a_subscriber_rule(self, stack: XpiResources) -> None:
        # GIVEN the example subscriber: a rule on source xpi.inference -> SQS
        publisher = EventBridgePublisher(stack.bus_name, "xpi.inference")

        # WHEN
        publisher.publish("Inference Failed", result_detail())

        # THEN
        [event] = stack.subscriber_events()
        assert event["source"] == "xpi.inference"
        assert event["detail-type"] == "Inference Failed"
        assert event["region"] == REGION
        assert event["detail"]["request_id"] == "req-ev-1"
        assert event["detail"]["timings"] == {"completed_at": "2025-03-12T14:07:05Z"}
        assert "output" not in event["detail"]  # None fields are left out, not sent as null

    def test_a_security_alert_counts_security_alerts_and_other_events_do_not(
        self, stack: XpiResources
    ) -> None:
        from xpi.observability import metrics

        publisher = EventBridgePublisher(stack.bus_name, "xpi.inference")

        # WHEN an ordinary event and then a Security Alert are published
        publisher.publish("Inference Failed", result_detail())
        assert "SecurityAlerts" not in metrics.provider.metric_set
        publisher.publish("Security Alert", result_detail())

        # THEN the alert counts one SecurityAlerts (the security-alerts alarm's metric)
        assert metrics.provider.metric_set["SecurityAlerts"]["Value"] == [1.0]

    def test_publish_all_sends_every_event_in_order_ten_to_a_request(
        self, stack: XpiResources, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN 23 result events
        calls: list[int] = []
        client = aws_clients.events()
        real = client.put_events

        def counted(**kwargs: Any) -> Any:
            calls.append(len(kwargs["Entries"]))
            return real(**kwargs)

        monkeypatch.setattr(client, "put_events", counted)
        events = [
            ("Inference Completed", result_detail().model_copy(update={"request_id": f"req-{n:02d}"}))
            for n in range(23)
        ]

        # WHEN they are published together
        EventBridgePublisher(stack.bus_name, "xpi.inference").publish_all(events)

        # THEN three PutEvents requests carried them, and the subscriber got each once
        assert calls == [10, 10, 3]
        got = sorted(event["detail"]["request_id"] for event in stack.subscriber_events())
        assert got == [f"req-{n:02d}" for n in range(23)]

    def test_publish_all_raises_when_an_entry_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        client = boto3.client("events", region_name=REGION)
        stubber = Stubber(client)
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"EventId": "1"}, {"ErrorCode": "InternalFailure"}]},
        )
        monkeypatch.setattr(aws_clients, "events", lambda: client)

        with stubber, pytest.raises(EventPublishError, match="1 of 2 events: InternalFailure"):
            EventBridgePublisher("xpi-prod-xpi", "xpi.inference").publish_all(
                [("Inference Failed", result_detail()), ("Inference Failed", result_detail())]
            )

    def test_another_source_does_not_match_the_rule(self, stack: XpiResources) -> None:
        EventBridgePublisher(stack.bus_name, "someone.else").publish("Inference Failed", result_detail())

        assert stack.subscriber_events() == []

    def test_a_refused_entry_raises(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # GIVEN EventBridge answers 200 with the entry refused (it does not raise by itself)
        client = boto3.client("events", region_name=REGION)
        stubber = Stubber(client)
        stubber.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
            },
        )
        monkeypatch.setattr(aws_clients, "events", lambda: client)

        # WHEN / THEN
        with stubber, pytest.raises(EventPublishError, match="InternalFailure try again"):
            EventBridgePublisher("xpi-prod-xpi", "xpi.inference").publish("Inference Failed", result_detail())


class TestStepFunctionsStarter:
    def workflow_input(self, reference: str) -> WorkflowInput:
        return WorkflowInput(request=sample_request("plain-prompt"), source=make_source(reference=reference))

    def starter(self, stack: XpiResources, arn: str | None = None) -> StepFunctionsStarter:
        return StepFunctionsStarter(arn or stack.state_machine_arn, S3PayloadStore(stack.bucket))

    def test_start_names_the_execution_by_request_id(self, stack: XpiResources) -> None:
        starter = self.starter(stack)

        assert starter.start("req-plain-0001", self.workflow_input("m-1")) is True

        executions = stack.executions()
        assert list(executions) == ["req-plain-0001"]
        assert executions["req-plain-0001"]["source"]["reference"] == "m-1"
        assert "execution" not in executions["req-plain-0001"]  # None is left out; the ASL injects it

    def test_the_execution_input_refers_to_the_stored_request_and_holds_none_of_it(
        self, stack: XpiResources
    ) -> None:
        # WHEN a request is started
        self.starter(stack).start("req-plain-0001", self.workflow_input("m-1"))

        # THEN its input is a reference to an SSE-KMS object under payloads/, not the request's text
        execution_input = stack.executions()["req-plain-0001"]
        assert sample_request("plain-prompt")["prompt"] not in json.dumps(execution_input)
        payload = execution_input["payload"]
        assert payload["bucket"] == stack.bucket and payload["key"].startswith("payloads/req-plain-0001/")
        stored = aws_helpers.s3().get_object(Bucket=stack.bucket, Key=payload["key"])
        assert stored["ServerSideEncryption"] == "aws:kms"
        body = stored["Body"].read()
        assert payload["bytes"] == len(body)
        assert json.loads(body) == sample_request("plain-prompt")

    def test_a_duplicate_name_is_reported_not_raised(self, stack: XpiResources) -> None:
        # GIVEN an execution for the request id, started from another message
        starter = self.starter(stack)
        starter.start("req-plain-0001", self.workflow_input("m-1"))

        # WHEN the same request id arrives again
        started = starter.start("req-plain-0001", self.workflow_input("m-2"))

        # THEN
        assert started is False
        assert stack.executions()["req-plain-0001"]["source"]["reference"] == "m-1"

    def test_other_errors_are_raised(self, stack: XpiResources) -> None:
        missing = stack.state_machine_arn.replace("xpi-prod-inference", "missing")

        with pytest.raises(Exception, match="StateMachineDoesNotExist"):
            self.starter(stack, missing).start("req-x", self.workflow_input("m-1"))


class TestStepFunctionsBatchStarter:
    BATCH = BatchObject(
        batch_id="b-fc8aba39b4e26d4c53e349c9",
        bucket="xpi-prod-batchinputbucket-1a2b3c4d5e6f",
        key="incoming/claims.jsonl",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=120,
        principal="AWS:AROAQXZEXAMPLEROLEID1:claims-intake",
        uploaded_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    )

    def test_an_object_version_starts_one_execution_named_by_its_batch_id(self, stack: XpiResources) -> None:
        starter = StepFunctionsBatchStarter(stack.state_machine_arn)
        assert starter.start(self.BATCH) is True

        # Step Functions answers a start with the same name and input as the first one (a redelivered
        # notification) like the first, and refuses the name with any other input.
        assert starter.start(self.BATCH) is True
        assert starter.start(self.BATCH.model_copy(update={"principal": "someone-else"})) is False
        executions = stack.executions()
        assert list(executions) == [self.BATCH.batch_id]
        assert executions[self.BATCH.batch_id] == {"batch": self.BATCH.model_dump(mode="json")}


PARAMETERS: dict[Any, str] = {"policy": "/xpi/xpi-prod/policy", "routing": "/xpi/xpi-prod/routing"}


def create_signing_secret() -> str:
    """The stack's signing secret as the template creates it (a random key, no watermarks yet)."""
    secret = aws_helpers.secretsmanager().create_secret(
        Name="xpi-prod-config-signing", SecretString=json.dumps({"key": "k" * 40})
    )
    return str(secret["ARN"])


def signing_state(secret_id: str) -> SigningState:
    return parse_signing_secret(
        aws_helpers.secretsmanager().get_secret_value(SecretId=secret_id)["SecretString"]
    )


class TestAwsAdminActions:
    @pytest.fixture
    def queues(self) -> Iterator[tuple[str, str]]:
        """The requests queue and its DLQ; moto with the local stack's StartMessageMoveTask (gap 15)."""
        restore = patch_message_move_task()
        try:
            with mock_aws():
                sqs = aws_helpers.sqs()
                dlq_url = sqs.create_queue(QueueName="xpi-prod-RequestsDLQ")["QueueUrl"]
                dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
                redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
                queue_url = sqs.create_queue(
                    QueueName="xpi-prod-RequestsQueue", Attributes={"RedrivePolicy": redrive}
                )["QueueUrl"]
                yield queue_url, dlq_url
        finally:
            restore()

    def test_each_policy_change_is_stored_as_the_next_signed_revision(self, queues: tuple[str, str]) -> None:
        # GIVEN the stack's signing secret
        secret_id = create_signing_secret()
        admin = AwsAdminActions(PARAMETERS, queues[1], secret_id)

        # WHEN two changes are stored
        first = admin.store_config("policy", {"version": 1}, changed_by="arn:admin", changed_at="t1")
        second = admin.store_config("policy", {"version": 1, "description": "2"}, changed_by="arn:admin",
                                    changed_at="t2")  # fmt: skip

        # THEN each is the next revision, signed, and the secret's watermark names the newest
        assert (first.revision, second.revision) == (1, 2)
        assert (first.parameter_version, second.parameter_version) == (1, 2)
        stored = aws_helpers.ssm().get_parameter(Name=PARAMETERS["policy"])["Parameter"]["Value"]
        state = signing_state(secret_id)
        envelope, verdict = verify(stored, kind="policy", key=state.key)
        assert verdict == "ok" and envelope is not None
        assert (envelope.revision, envelope.document, envelope.changed_by) == (
            2,
            {"version": 1, "description": "2"},
            "arn:admin",
        )
        assert state.watermark("policy") == 2 and state.watermark("routing") == 0

    def test_redrive_starts_an_sqs_move_task_back_to_the_requests_queue(
        self, queues: tuple[str, str]
    ) -> None:
        # GIVEN 12 dead letters
        queue_url, dlq_url = queues
        for number in range(12):
            aws_helpers.sqs().send_message(QueueUrl=dlq_url, MessageBody=f'{{"n": {number}}}')
        admin = AwsAdminActions(PARAMETERS, dlq_url, "unused")

        # WHEN
        started = admin.redrive()

        # THEN SQS's task was started on the DLQ, for all of them, and moved them to the queue
        assert started.task_handle
        assert started.messages_to_move == 12
        assert self.messages(queue_url) == "12"
        assert self.messages(dlq_url) == "0"

    @staticmethod
    def messages(queue_url: str) -> str:
        attributes = aws_helpers.sqs().get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return str(attributes["ApproximateNumberOfMessages"])


class TestS3ObjectStore:
    def test_put_returns_the_s3_uri_and_stores_encrypted(self, stack: XpiResources) -> None:
        uri = S3ObjectStore(stack.bucket).put("outputs/req-1.txt", "é".encode(), "text/plain; charset=utf-8")

        assert uri == f"s3://{stack.bucket}/outputs/req-1.txt"
        stored = aws_helpers.s3().get_object(Bucket=stack.bucket, Key="outputs/req-1.txt")
        assert stored["Body"].read() == "é".encode()
        assert stored["ContentType"] == "text/plain; charset=utf-8"
        assert stored["ServerSideEncryption"] == "aws:kms"

    def test_every_object_is_written_with_an_s3_bucket_key(self, stack: XpiResources) -> None:
        # GIVEN objects written with and without the stack key named
        key_arn = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        S3ObjectStore(stack.bucket, key_arn).put("outputs/named.txt", b"x", "text/plain")
        S3ObjectStore(stack.bucket).put("outputs/default.txt", b"x", "text/plain")

        # THEN each uses a Bucket Key: S3 calls KMS per bucket key, not once per object read or written
        for key in ("outputs/named.txt", "outputs/default.txt"):
            assert aws_helpers.s3().head_object(Bucket=stack.bucket, Key=key)["BucketKeyEnabled"] is True


class TestS3PayloadStore:
    def test_a_body_is_stored_under_payloads_with_the_stack_key_and_read_back(
        self, stack: XpiResources
    ) -> None:
        key_arn = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        store = S3PayloadStore(stack.bucket, key_arn)

        ref = store.put("req-1/a.json", b'{"prompt": "x"}', hmac="ab" * 32)

        assert (ref.bucket, ref.key, ref.bytes, ref.hmac) == (
            stack.bucket,
            "payloads/req-1/a.json",
            15,
            "ab" * 32,
        )
        stored = aws_helpers.s3().get_object(Bucket=stack.bucket, Key="payloads/req-1/a.json")
        assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", key_arn)
        assert store.get(ref) == b'{"prompt": "x"}'

    def test_a_reference_outside_the_stacks_payloads_is_refused(self, stack: XpiResources) -> None:
        store = S3PayloadStore(stack.bucket)
        outside = [
            PayloadRef(bucket="another-bucket", key="payloads/req-1/a.json", bytes=1),
            PayloadRef(bucket=stack.bucket, key="outputs/req-1.txt", bytes=1),
        ]

        for ref in outside:
            with pytest.raises(ValueError, match="outside this stack's payloads"):
                store.get(ref)


class TestSecretsManagerHashKey:
    def test_the_generated_secret_is_the_key(self, stack: XpiResources) -> None:
        key = SecretsManagerHashKey(stack.hash_key_secret_id, max_age_s=300).get()

        assert key == TEST_HASH_KEY

    def test_a_missing_secret_fails_closed(self, stack: XpiResources) -> None:
        with raises_with_reason(HashKeyUnavailable, "cannot read the hash key secret"):
            SecretsManagerHashKey(stack.hash_key_secret_id + "-missing", max_age_s=0).get()


IAM_SECRET = {
    "type": "iam",
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


class TestSecretsManagerCredentials:
    @pytest.fixture
    def secrets(self) -> Iterator[Any]:
        with mock_aws():
            yield aws_helpers.secretsmanager()

    def create(
        self, secrets: Any, value: dict[str, Any] | str, name: str = "xpi-prod-commercial"
    ) -> tuple[str, str]:
        secret_string = value if isinstance(value, str) else json.dumps(value)
        created = secrets.create_secret(Name=name, SecretString=secret_string)
        return created["ARN"], created["VersionId"]

    def test_iam_keys_and_their_version_id(self, secrets: Any) -> None:
        arn, version = self.create(secrets, IAM_SECRET)

        credentials = SecretsManagerCredentials(arn, max_age_s=300).get()

        assert credentials.version_id == version
        assert isinstance(credentials.secret, IamKeys)
        assert credentials.secret.aws_access_key_id == "AKIAIOSFODNN7EXAMPLE"
        assert (
            credentials.secret.aws_secret_access_key.get_secret_value() == IAM_SECRET["aws_secret_access_key"]
        )
        assert credentials.secret.aws_session_token is None

    def test_an_api_key(self, secrets: Any) -> None:
        arn, _ = self.create(secrets, {"type": "api_key", "api_key": "bedrock-api-key-EXAMPLE"})

        credentials = SecretsManagerCredentials(arn, max_age_s=300).get()

        assert isinstance(credentials.secret, ApiKey)
        assert credentials.secret.api_key.get_secret_value() == "bedrock-api-key-EXAMPLE"

    def test_the_cache_is_honoured_and_refresh_rereads(self, secrets: Any) -> None:
        # GIVEN credentials read once
        arn, first_version = self.create(secrets, IAM_SECRET)
        source = SecretsManagerCredentials(arn, max_age_s=300)
        assert source.get().version_id == first_version

        # WHEN an operator puts rotated keys
        rotated = {**IAM_SECRET, "aws_secret_access_key": "rotatedSecretKeyEXAMPLE0000000000000000"}
        second_version = secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(rotated))["VersionId"]
        assert second_version != first_version

        # THEN the cached value is served until a refresh is asked for
        assert source.get().version_id == first_version
        refreshed = source.get(refresh=True)
        assert refreshed.version_id == second_version
        assert isinstance(refreshed.secret, IamKeys)
        assert refreshed.secret.aws_secret_access_key.get_secret_value() == rotated["aws_secret_access_key"]
        # AND the refreshed value is what the cache serves from then on
        assert source.get().version_id == second_version

    def test_a_zero_max_age_reads_every_time(self, secrets: Any) -> None:
        arn, first_version = self.create(secrets, IAM_SECRET)
        source = SecretsManagerCredentials(arn, max_age_s=0)
        source.get()

        second_version = secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(IAM_SECRET))[
            "VersionId"
        ]

        assert source.get().version_id == second_version != first_version

    @pytest.mark.parametrize(
        "value",
        [
            {"type": "api_key"},
            {"type": "oauth", "token": "x"},
            {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE"},
            "not json at all",
            "",
        ],
    )
    def test_an_unknown_shape_is_unavailable_and_names_only_the_version(
        self, secrets: Any, value: dict[str, Any] | str
    ) -> None:
        arn, version = self.create(secrets, value or " ")

        with pytest.raises(CredentialsUnavailable) as caught:
            SecretsManagerCredentials(arn, max_age_s=300).get()

        assert version in caught.value.reason
        assert "AKIAIOSFODNN7EXAMPLE" not in caught.value.reason
        assert caught.value.code == "CredentialsUnavailable"

    def test_a_missing_secret_is_unavailable(self, secrets: Any) -> None:
        with raises_with_reason(CredentialsUnavailable, "cannot read the commercial credentials secret"):
            SecretsManagerCredentials("xpi-prod-missing", max_age_s=300).get()

    @pytest.mark.parametrize(
        ("value", "secret_text"),
        [
            ({**IAM_SECRET, "aws_session_token": "FwoGZXIvYXdzEXAMPLETOKEN"}, "wJalrXUtnFEMI"),
            ({**IAM_SECRET, "aws_session_token": "FwoGZXIvYXdzEXAMPLETOKEN"}, "FwoGZXIvYXdzEXAMPLETOKEN"),
            ({"type": "api_key", "api_key": "bedrock-api-key-EXAMPLE"}, "bedrock-api-key-EXAMPLE"),
        ],
    )
    def test_the_secret_never_appears_in_repr_str_or_dumps(
        self, secrets: Any, value: dict[str, Any], secret_text: str
    ) -> None:
        arn, _ = self.create(secrets, value)

        credentials = SecretsManagerCredentials(arn, max_age_s=300).get()

        for rendered in (
            repr(credentials),
            str(credentials),
            repr(credentials.secret),
            str(credentials.secret),
            credentials.model_dump_json(),
            json.dumps(credentials.model_dump(mode="json")),
            f"{credentials}",
        ):
            assert secret_text not in rendered


def test_a_pydantic_model_of_a_secret_is_what_the_adapter_exposes() -> None:
    # A guard on the premise of the test above: SecretStr, not str, holds the secret parts.
    for model in (IamKeys, ApiKey):
        assert issubclass(model, BaseModel)
    assert IamKeys.model_fields["aws_secret_access_key"].annotation.__name__ == "SecretStr"  # type: ignore[union-attr]
    assert ApiKey.model_fields["api_key"].annotation.__name__ == "SecretStr"  # type: ignore[union-attr]
