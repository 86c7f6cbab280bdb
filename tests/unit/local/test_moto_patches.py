"""The local stack's patches into moto (tools/xpi_tools/local/moto_patches.py, docs/local-stack.md),
one test per patch, on moto's own objects."""

import contextlib
import importlib
import io
import json
import sys
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from xpi_tools.local import moto_patches
from xpi_tools.local.principals import LAMBDA_SERVICE, STATES_SERVICE, RoleSessions
from xpi_tools.local.usage import UsageLog, read_usage

from tests.helpers.aws import create_table
from tests.helpers.waiting import wait_until

REGION = "us-gov-west-1"
COMMERCIAL = "us-east-1"
ACCOUNT = "123456789012"


def _role(name: str, service: str, statements: list[dict[str, Any]]) -> str:
    """A role in moto's GovCloud partition, where the local stack's roles live."""
    from moto.iam.models import iam_backends

    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    iam = iam_backends[ACCOUNT]["aws-us-gov"]
    role = iam.create_role(name, json.dumps(trust), "/", None, "", [], None)
    if statements:
        iam.put_role_policy(name, "p", json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return str(role.arn)


def _client_as(service: str, credentials: Any) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )


def test_the_patches_refuse_a_moto_they_were_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the installed moto is the one the patches name THEN the check passes
    moto_patches.check_moto_version()
    # WHEN another version is named THEN the stack refuses to patch it
    monkeypatch.setattr(moto_patches, "MOTO_VERSION", "0.0.1")
    with pytest.raises(RuntimeError, match=r"written for moto 0\.0\.1"):
        moto_patches.check_moto_version()


def test_every_function_invoke_goes_to_the_given_runtime() -> None:
    calls: list[tuple[str, str]] = []

    def runtime(function: Any, payload: str) -> tuple[bytes, str | None]:
        calls.append((function.function_name, payload))
        return b'{"errorType": "Boom"}', "Unhandled"

    restore = moto_patches.patch_lambda_invoke(runtime)
    try:
        with mock_aws():
            role = _role("fn-role", LAMBDA_SERVICE, [])
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as archive:
                archive.writestr("handler.py", "def handler(event, context): return event")
            lambda_api = boto3.client("lambda", region_name=REGION)
            lambda_api.create_function(
                FunctionName="fn", Runtime="python3.13", Role=role, Handler="handler.handler",
                Code={"ZipFile": code.getvalue()},
            )  # fmt: skip

            # WHEN the function is invoked through the Lambda API
            response = lambda_api.invoke(FunctionName="fn", Payload=b'{"a": 1}')

        # THEN the runtime ran it, and its error is the function's error
        assert calls == [("fn", '{"a": 1}')]
        assert response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read()) == {"errorType": "Boom"}
    finally:
        restore()


def test_the_interpreter_calls_aws_as_the_state_machines_role() -> None:
    credentials_module: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials"
    )
    lambda_utils: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
    )
    original = lambda_utils.boto_client_for
    with mock_aws():
        role = _role("sm-role", STATES_SERVICE, [])
        sessions = RoleSessions(ACCOUNT, REGION)
        # GIVEN the patch, minting the state machine role's session
        restore = moto_patches.patch_interpreter_clients(
            lambda arn: sessions.credentials(arn, STATES_SERVICE, "execution")
        )
        try:
            # WHEN a task of an execution run as that role asks for a client (as the interpreter does)
            state = credentials_module.StateCredentials(role_arn=role)
            client = lambda_utils.boto_client_for(region=REGION, service="lambda", state_credentials=state)

            # THEN the client signs as the role's session, and is made once per service and role
            signing = client._request_signer._credentials
            expected = sessions.credentials(role, STATES_SERVICE, "execution")
            assert signing.access_key == expected.access_key_id and signing.token == expected.session_token
            assert lambda_utils.boto_client_for(REGION, "lambda", state) is client
        finally:
            restore()
    # AND moto's own function is back everywhere
    assert lambda_utils.boto_client_for is original


def test_a_role_that_does_not_trust_the_service_gets_no_session() -> None:
    from xpi_tools.local.principals import UntrustedRole

    with mock_aws():
        role = _role("states-only", STATES_SERVICE, [])
        # WHEN Lambda would assume a role made for Step Functions THEN it is refused, as on AWS
        with pytest.raises(UntrustedRole):
            RoleSessions(ACCOUNT, REGION).credentials(role, LAMBDA_SERVICE, "fn")


@pytest.fixture
def enforced() -> Iterator[list[tuple[str, Any]]]:
    """moto with IAM enforced and decided by iam_authorization.py; yields the recorded decisions."""
    decisions: list[tuple[str, Any]] = []
    restore_evaluation = moto_patches.patch_iam_evaluation(
        lambda principal, d: decisions.append((principal, d))
    )
    with mock_aws():
        restore_enforcement = moto_patches.enable_iam_enforcement()
        try:
            yield decisions
        finally:
            restore_enforcement()
            restore_evaluation()


def test_a_role_may_do_what_its_policy_grants_on_the_resource_it_names(enforced: list[Any]) -> None:
    from moto import settings

    # GIVEN (set up without enforcement) two tables and a role that may write only one of them
    with moto_patches_disabled():
        create_table("granted", "pk")
        create_table("other", "pk")
        table_arn = f"arn:aws-us-gov:dynamodb:{REGION}:{ACCOUNT}:table/granted"
        role = _role(
            "writer",
            LAMBDA_SERVICE,
            [{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn}],
        )
        credentials = RoleSessions(ACCOUNT, REGION).credentials(role, LAMBDA_SERVICE, "fn")
    assert settings.INITIAL_NO_AUTH_ACTION_COUNT == 0
    dynamodb = _client_as("dynamodb", credentials)

    # WHEN the role writes the table it was granted THEN it may
    dynamodb.put_item(TableName="granted", Item={"pk": {"S": "a"}})
    # WHEN it writes another table, or reads the granted one THEN AWS's AccessDenied
    for call in (
        lambda: dynamodb.put_item(TableName="other", Item={"pk": {"S": "a"}}),
        lambda: dynamodb.get_item(TableName="granted", Key={"pk": {"S": "a"}}),
    ):
        with pytest.raises(ClientError) as denied:
            call()
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "assumed-role/writer/fn is not authorized" in denied.value.response["Error"]["Message"]
    # AND every decision was recorded under the role's session
    recorded = {(d.action, d.resource.rsplit("/", 1)[-1], d.allowed) for _, d in enforced}
    assert recorded >= {
        ("dynamodb:PutItem", "granted", True),
        ("dynamodb:PutItem", "other", False),
        ("dynamodb:GetItem", "granted", False),
    }
    assert all(":assumed-role/writer/fn" in principal for principal, _ in enforced)


def moto_patches_disabled() -> Any:
    from moto.core.authorization import disable_iam_authentication

    return disable_iam_authentication()


def test_the_interpreters_thread_list_keeps_only_live_threads() -> None:
    # GIVEN moto's interpreter modules, imported (each holds TMP_THREADS by name)
    execute_state: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.execute_state"
    )
    program: Any = importlib.import_module("moto.stepfunctions.parser.asl.component.program.program")
    utils: Any = importlib.import_module("moto.stepfunctions.parser.utils")
    original = utils.TMP_THREADS

    # WHEN the list is shared out, and threads come and go as the interpreter starts them
    restore = moto_patches.patch_thread_list()
    try:
        shared = utils.TMP_THREADS
        assert shared is not original
        assert execute_state.TMP_THREADS is shared and program.TMP_THREADS is shared
        release = threading.Event()
        waiting = threading.Thread(target=release.wait)
        waiting.start()
        shared.append(waiting)
        for _ in range(50):
            finished = threading.Thread(target=lambda: None)
            finished.start()
            finished.join()
            shared.append(finished)

        # THEN only the live thread and the last one appended are kept
        assert list(shared) == [waiting, finished]
        release.set()
        waiting.join()
    finally:
        restore()
    # AND moto's own list is back in every module
    assert utils.TMP_THREADS is original and execute_state.TMP_THREADS is original


@pytest.fixture
def transactions_patched() -> Iterator[None]:
    restore = moto_patches.patch_transactions()
    yield
    restore()


@pytest.mark.usefixtures("transactions_patched")
def test_a_failed_transaction_is_rolled_back_item_by_item() -> None:
    # GIVEN moto with gap 12 filled: no table copies, the named items saved and restored instead
    assert isinstance(importlib.import_module("moto.dynamodb.models").copy, moto_patches.NoTableCopies)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-gov-west-1")
        create_table("t", "pk", "sk")
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"N": "0"}, "n": {"N": "5"}})
        new_item = {"pk": {"S": "a"}, "sk": {"N": "1"}}
        update = {
            "TableName": "t",
            "Key": {"pk": {"S": "a"}, "sk": {"N": "0"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        failing_check = {
            "TableName": "t",
            "Key": {"pk": {"S": "missing"}, "sk": {"N": "0"}},
            "ConditionExpression": "attribute_exists(pk)",
        }

        # WHEN a transaction that writes two items fails on its last condition
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": new_item}},
                    {"Update": update},
                    {"ConditionCheck": failing_check},
                ]
            )

        # THEN neither write is left: the new item is gone and the counter is back
        assert "Item" not in client.get_item(TableName="t", Key=new_item)
        kept = client.get_item(TableName="t", Key=update["Key"])["Item"]
        assert kept["n"] == {"N": "5"}
        # AND a transaction that succeeds keeps both writes
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": "t", "Item": new_item}}, {"Update": update}]
        )
        assert "Item" in client.get_item(TableName="t", Key=new_item)
        assert client.get_item(TableName="t", Key=update["Key"])["Item"]["n"] == {"N": "6"}


def _record_line_twice_concurrently(lines: int) -> dict[str, Any]:
    """What a batch's progress and its reconciliation do when both record the same lines at once:
    per line, two threads run the same transaction (the line's item if absent, and ADD done 1 to the
    status item); the one whose condition fails is cancelled and rolled back. Alongside, two threads
    claim the same release indexes (`released = :i` -> i + 1). What the status item holds after."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_table("batches", "batch_id", "line")
    status = {"batch_id": {"S": "b"}, "line": {"N": "0"}}
    client.put_item(TableName="batches", Item={**status, "done": {"N": "0"}, "released": {"N": "0"}})
    claims: list[int] = []

    def record(line: int) -> None:
        with contextlib.suppress(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": "batches",
                            "Item": {"batch_id": {"S": "b"}, "line": {"N": str(line)}},
                            "ConditionExpression": "attribute_not_exists(batch_id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": "batches",
                            "Key": status,
                            "UpdateExpression": "ADD done :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )

    def claim(index: int) -> None:
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName="batches",
                Key=status,
                UpdateExpression="SET released = :next",
                ConditionExpression="released = :index",
                ExpressionAttributeValues={":next": {"N": str(index + 1)}, ":index": {"N": str(index)}},
            )
            claims.append(index)

    def worker() -> None:
        for line in range(1, lines + 1):
            record(line)
            claim(line - 1)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as a loaded machine does
    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    item = client.get_item(TableName="batches", Key=status, ConsistentRead=True)["Item"]
    return {"done": int(item["done"]["N"]), "released": int(item["released"]["N"]), "claims": claims}


@pytest.mark.usefixtures("transactions_patched")
def test_each_request_is_atomic_whatever_other_threads_write() -> None:
    # GIVEN moto's server answering requests on many threads (gap 37 filled: one request at a time
    # inside the DynamoDB backend, as DynamoDB makes each request atomic)
    with mock_aws():
        # WHEN two threads record the same lines and claim the same indexes at once
        outcome = _record_line_twice_concurrently(lines=150)

    # THEN every line is counted once (no rolled-back transaction undid another's ADD) and every
    # index is claimed by one thread only (no two conditional writes passed the same check)
    assert outcome["done"] == 150
    assert outcome["released"] == 150
    assert sorted(outcome["claims"]) == list(range(150))


@pytest.mark.usefixtures("transactions_patched")
def test_a_failed_transaction_loses_no_other_request_s_write_to_its_items() -> None:
    # GIVEN a counter item, and line items counted once each by a transaction (the batch table's
    # record_line: the line item if new, and the counter ADD), from two threads as moto's server runs them
    with mock_aws():
        create_table("t", "pk", "sk")
        boto3.client("dynamodb", region_name="us-gov-west-1").put_item(
            TableName="t", Item={"pk": {"S": "a"}, "sk": {"N": "0"}, "n": {"N": "0"}}
        )
        lines = 150

        def record(line: int) -> None:
            client = boto3.client("dynamodb", region_name="us-gov-west-1")
            item = {"pk": {"S": "a"}, "sk": {"N": str(line)}}
            count = {
                "TableName": "t",
                "Key": {"pk": {"S": "a"}, "sk": {"N": "0"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
            with contextlib.suppress(client.exceptions.TransactionCanceledException):  # counted before
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": "t",
                                "Item": item,
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {"Update": count},
                    ]
                )

        # WHEN one thread counts every line while another counts each again (a duplicate: it fails)
        def first() -> None:
            for line in range(1, lines + 1):
                record(line)

        def again() -> None:
            for _ in range(lines):
                record(1)  # always a duplicate once line 1 is in

        record(1)
        threads = [threading.Thread(target=first), threading.Thread(target=again)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # THEN every line is counted once: no failed duplicate undid another's count
        client = boto3.client("dynamodb", region_name="us-gov-west-1")
        counter = client.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"N": "0"}})["Item"]
        assert counter["n"] == {"N": str(lines)}


def test_a_signed_get_with_path_parameters_is_authenticated(enforced: list[Any]) -> None:
    from xpi_tools.local.principals import OPERATOR_KEYS, create_operator

    # GIVEN the operator (every permission) and enforcement on
    with moto_patches_disabled():
        create_operator(ACCOUNT, REGION)
    lambda_api = boto3.client(
        "lambda",
        region_name=REGION,
        aws_access_key_id=OPERATOR_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OPERATOR_KEYS["AWS_SECRET_ACCESS_KEY"],
    )
    # WHEN it signs a REST GET whose path names a function
    with pytest.raises(ClientError) as answered:
        lambda_api.get_function_configuration(FunctionName="absent")
    # THEN the signature holds and moto answers the call itself (moto alone: SignatureDoesNotMatch)
    assert answered.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_messages_sender_is_its_signer() -> None:
    from moto.sqs.models import SQSBackend
    from moto.sqs.responses import SQSResponse

    before = (SQSResponse.send_message, SQSResponse.send_message_batch, SQSBackend.send_message)
    # IAM is global: its users and roles are the commercial partition's unless the endpoint is GovCloud's
    # (as on the local stack), so every client here is in one partition for STS to find them.
    restore = moto_patches.patch_sender_id()
    try:
        with mock_aws():
            iam = boto3.client("iam", region_name=COMMERCIAL)
            sts = boto3.client("sts", region_name=COMMERCIAL)
            account = sts.get_caller_identity()["Account"]
            user = iam.create_user(UserName="producer")["User"]
            user_keys = iam.create_access_key(UserName="producer")["AccessKey"]
            trust = {
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}]
            }
            role = iam.create_role(RoleName="producer-role", AssumeRolePolicyDocument=json.dumps(trust))[
                "Role"
            ]
            session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="nightly")["Credentials"]
            url = boto3.client("sqs", region_name=COMMERCIAL).create_queue(QueueName="requests")["QueueUrl"]

            # WHEN a user sends one message and a role session a batch of one
            as_user = boto3.client(
                "sqs",
                region_name=COMMERCIAL,
                aws_access_key_id=user_keys["AccessKeyId"],
                aws_secret_access_key=user_keys["SecretAccessKey"],
            )
            as_user.send_message(QueueUrl=url, MessageBody="from the user")
            as_role = boto3.client(
                "sqs",
                region_name=COMMERCIAL,
                aws_access_key_id=session["AccessKeyId"],
                aws_secret_access_key=session["SecretAccessKey"],
                aws_session_token=session["SessionToken"],
            )
            as_role.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "from the role"}])

            # THEN each message's SenderId is its signer's aws:userid, as SQS gives it
            messages = boto3.client("sqs", region_name=COMMERCIAL).receive_message(
                QueueUrl=url, AttributeNames=["SenderId"], MaxNumberOfMessages=10
            )["Messages"]
            senders = {m["Body"]: m["Attributes"]["SenderId"] for m in messages}
            assert senders == {
                "from the user": user["UserId"],
                "from the role": f"{role['RoleId']}:nightly",
            }
    finally:
        restore()
    assert (SQSResponse.send_message, SQSResponse.send_message_batch, SQSBackend.send_message) == before


def test_a_message_move_task_returns_dead_letters_to_their_queue() -> None:
    from moto.sqs.responses import SQSResponse

    restore = moto_patches.patch_message_move_task()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name=REGION)
            dlq_url = sqs.create_queue(QueueName="requests-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
            queue_url = sqs.create_queue(QueueName="requests", Attributes={"RedrivePolicy": redrive})[
                "QueueUrl"
            ]
            # GIVEN a message with an attribute that failed once and was dead-lettered
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody='{"n": 1}',
                MessageAttributes={"origin": {"DataType": "String", "StringValue": "claims"}},
            )
            [first] = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
            )
            assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)
            assert _visible(sqs, dlq_url) == "1"

            # WHEN a move task starts on the DLQ, without a destination
            handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]

            # THEN the message is back in the queue it came from, body and attributes as sent, as a new
            # message (as on AWS: a new id, sent by the task's starter, not by the original producer)
            assert handle
            assert _visible(sqs, dlq_url) == "0"
            [moved] = sqs.receive_message(
                QueueUrl=queue_url, AttributeNames=["All"], MessageAttributeNames=["All"]
            )["Messages"]
            assert moved["Body"] == '{"n": 1}' and moved["MessageId"] != first["MessageId"]
            assert moved["MessageAttributes"]["origin"]["StringValue"] == "claims"
            starter = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
            assert moved["Attributes"]["SenderId"] == starter  # no IAM user holds the mock's keys: root
            assert moved["Attributes"]["ApproximateReceiveCount"] == "1"
            # AND a source that is no queue's DLQ needs a destination
            with pytest.raises(ClientError, match="needs a DestinationArn"):
                sqs.start_message_move_task(SourceArn=dlq_arn.replace("requests-dlq", "requests"))
    finally:
        restore()
    assert not hasattr(SQSResponse, "start_message_move_task")


def _visible(sqs: Any, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return str(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _rotation_world(fail_at: str | None) -> tuple[list[str], Any]:
    """A rotation function run in-process: records each step and does what a rotation does."""
    steps: list[str] = []
    secrets = boto3.client("secretsmanager", region_name=REGION)

    def runtime(function: Any, payload: str) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        steps.append(f"{event['Step']} {event['SecretId'].startswith('arn:')}")
        if event["Step"] == fail_at:
            return b'{"errorType": "CredentialRotationFailed"}', "Unhandled"
        token, secret = event["ClientRequestToken"], event["SecretId"]
        if event["Step"] == "createSecret":
            secrets.put_secret_value(
                SecretId=secret, ClientRequestToken=token, SecretString="new", VersionStages=["AWSPENDING"]
            )
        if event["Step"] == "finishSecret":
            current = secrets.describe_secret(SecretId=secret)["VersionIdsToStages"]
            old = next(v for v, labels in current.items() if "AWSCURRENT" in labels)
            secrets.update_secret_version_stage(
                SecretId=secret, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=old
            )
        return b"null", None

    return steps, runtime


@pytest.mark.parametrize("fail_at", [None, "testSecret"])
def test_rotate_secret_runs_the_configured_function_and_stops_at_a_failed_step(fail_at: str | None) -> None:
    with mock_aws():
        steps, runtime = _rotation_world(fail_at)
        restores = [moto_patches.patch_lambda_invoke(runtime), moto_patches.patch_rotate_secret()]
        try:
            role = _role("rotation-role", LAMBDA_SERVICE, [])
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as archive:
                archive.writestr("handler.py", "def handler(event, context): return None")
            function_arn = boto3.client("lambda", region_name=REGION).create_function(
                FunctionName="rotate", Runtime="python3.13", Role=role, Handler="handler.handler",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]  # fmt: skip
            secrets = boto3.client("secretsmanager", region_name=REGION)
            arn = secrets.create_secret(Name="credentials", SecretString="old")["ARN"]
            # GIVEN the secret's rotation function configured (as the RotationSchedule does)
            from moto.secretsmanager.models import secretsmanager_backends

            secretsmanager_backends[ACCOUNT][REGION].secrets[arn].rotation_lambda_arn = function_arn

            # WHEN RotateSecret names no function
            if fail_at is None:
                secrets.rotate_secret(SecretId=arn)
            else:
                with pytest.raises(ClientError) as refused:
                    secrets.rotate_secret(SecretId=arn)
                assert refused.value.response["Error"]["Code"] == "InvalidRequestException"

            # THEN the configured function ran its steps in order, each given the secret's ARN,
            expected = ["createSecret", "setSecret", "testSecret", "finishSecret"]
            ran = expected if fail_at is None else expected[: expected.index(fail_at) + 1]
            assert steps == [f"{step} True" for step in ran]
            # and a read without a stage answers the new value only when every step succeeded
            assert secrets.get_secret_value(SecretId=arn)["SecretString"] == (
                "new" if fail_at is None else "old"
            )
        finally:
            for restore in reversed(restores):
                restore()


def test_usage_metering_sizes_dynamodb_capacity_and_counts_kms_and_event_chunks(tmp_path: Any) -> None:
    # GIVEN moto with the usage meter patched in
    usage = UsageLog(tmp_path / "usage.jsonl")
    restore = moto_patches.patch_usage_metering(usage)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name=REGION)
            create_table("t", "pk")
            key = {"pk": {"S": "a"}}

            # WHEN items of 1.5 KB then 3.5 KB are written, read strongly and eventually, and a
            # conditional write fails on the stored 3.5 KB item
            client.put_item(TableName="t", Item={**key, "v": {"S": "x" * 1500}})
            client.update_item(
                TableName="t",
                Key=key,
                UpdateExpression="SET w = :w",
                ExpressionAttributeValues={":w": {"S": "y" * 2000}},
            )
            client.get_item(TableName="t", Key=key, ConsistentRead=True)
            client.get_item(TableName="t", Key=key)
            with pytest.raises(client.exceptions.ConditionalCheckFailedException):
                client.put_item(TableName="t", Item=key, ConditionExpression="attribute_not_exists(pk)")

            # AND objects are written SSE-KMS with and without an S3 Bucket Key, and read back
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="usage-meter", CreateBucketConfiguration={"LocationConstraint": REGION})
            s3.put_object(Bucket="usage-meter", Key="plain", Body=b"x", ServerSideEncryption="aws:kms")
            s3.put_object(
                Bucket="usage-meter",
                Key="keyed",
                Body=b"x",
                ServerSideEncryption="aws:kms",
                BucketKeyEnabled=True,
            )
            s3.get_object(Bucket="usage-meter", Key="plain")
            s3.get_object(Bucket="usage-meter", Key="keyed")

            # AND one event of 70 KB is put
            boto3.client("events", region_name=REGION).put_events(
                Entries=[{"Source": "s", "DetailType": "d", "Detail": json.dumps({"v": "z" * 70_000})}]
            )
    finally:
        restore()

    # THEN DynamoDB is billed by item size (1 KB per write unit, 4 KB per read unit, half for an
    # eventually consistent read), S3 calls KMS only for the object without a Bucket Key, and the
    # event is two 64 KB chunks
    lines, _ = read_usage(usage.path)
    dynamodb = [
        (line["operation"], line["read_units"], line["write_units"])
        for line in lines
        if line["kind"] == "dynamodb"
    ]
    assert dynamodb == [
        ("put_item", 0.0, 2.0),
        ("update_item", 0.0, 4.0),
        ("get_item", 1.0, 0.0),
        ("get_item", 0.5, 0.0),
        ("put_item", 0.0, 4.0),
    ]
    assert [(line["operation"], line["bucket"]) for line in lines if line["kind"] == "kms"] == [
        ("GenerateDataKey", "usage-meter"),
        ("Decrypt", "usage-meter"),
    ]
    assert [(line["entries"], line["chunks"]) for line in lines if line["kind"] == "events"] == [(1, 2)]
    # AND the patch is undone
    from moto.dynamodb.responses import DynamoHandler

    assert DynamoHandler.put_item.__name__ == "put_item"


def test_moto_keeps_no_model_object_its_state_has_let_go_except_s3s() -> None:
    # GIVEN moto's models, with every instance tracked by class as moto does
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.s3.models import FakeKey
    from moto.sqs.models import Message

    restore = moto_patches.patch_instance_tracking()
    try:
        # WHEN an SQS message, a DynamoDB item and an S3 key are made
        message = Message("m-1", "body", [])
        item = Item(DynamoType({"S": "k"}), None, {"k": {"S": "k"}})
        key = FakeKey("k", b"value", account_id="123456789012", region_name="us-gov-west-1")

        # THEN only S3's key is tracked (moto's reset closes its temporary file through the list)
        assert all(tracked is not message for tracked in Message.instances_tracked)  # type: ignore[attr-defined]
        assert all(tracked is not item for tracked in Item.instances_tracked)  # type: ignore[attr-defined]
        assert any(tracked is key for tracked in FakeKey.instances_tracked)  # type: ignore[attr-defined]
    finally:
        restore()
    # AND undone, moto tracks every instance again
    again = Message("m-2", "body", [])
    assert any(tracked is again for tracked in Message.instances_tracked)  # type: ignore[attr-defined]
    key.dispose()


_SIGNING_TEMPLATE = {
    "Resources": {
        "Signer": {
            "Type": "AWS::KMS::Key",
            "Properties": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "KeyPolicy": {}},
        },
        "Locked": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "ObjectLockEnabled": True,
                "VersioningConfiguration": {"Status": "Enabled"},
                "ObjectLockConfiguration": {
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
                },
            },
        },
    },
    "Outputs": {"Key": {"Value": {"Ref": "Signer"}}, "Bucket": {"Value": {"Ref": "Locked"}}},
}


def test_a_template_signing_key_signs_and_its_bucket_locks_every_version() -> None:
    restore = moto_patches.patch_signing_keys_and_locks()
    try:
        with mock_aws():
            cloudformation = boto3.client("cloudformation", region_name=REGION)
            cloudformation.create_stack(StackName="locks", TemplateBody=json.dumps(_SIGNING_TEMPLATE))
            outputs = cloudformation.describe_stacks(StackName="locks")["Stacks"][0]["Outputs"]
            named = {o["OutputKey"]: o["OutputValue"] for o in outputs}
            kms = boto3.client("kms", region_name=REGION)
            signed = kms.sign(
                KeyId=named["Key"], Message=b"digest", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
            )
            from xpi_tools.audit_cli import signature_valid

            public = kms.get_public_key(KeyId=named["Key"])["PublicKey"]
            assert signature_valid(public, "ECDSA_SHA_256", b"digest", signed["Signature"])
            s3 = boto3.client("s3", region_name=REGION)
            lock = s3.get_object_lock_configuration(Bucket=named["Bucket"])["ObjectLockConfiguration"]
            retention = lock["Rule"]["DefaultRetention"]
            assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 30)
            version = s3.put_object(Bucket=named["Bucket"], Key="d.json", Body=b"{}")["VersionId"]
            with pytest.raises(ClientError):
                s3.delete_object(Bucket=named["Bucket"], Key="d.json", VersionId=version)
    finally:
        restore()


def test_eventbridge_parses_each_input_path_once_and_still_delivers_the_event() -> None:
    # GIVEN moto's EventBridge with a rule sending every event of a source to a queue, and the patch
    jsonpath_ext: Any = importlib.import_module("jsonpath_ng.ext")
    original = jsonpath_ext.parse
    parsed: list[str] = []

    def counting_parse(path: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(path)
        return original(path, *args, **kwargs)

    jsonpath_ext.parse = counting_parse
    restore = moto_patches.patch_event_paths()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name=REGION)
            events = boto3.client("events", region_name=REGION)
            queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            events.put_rule(Name="all", EventPattern=json.dumps({"source": ["xpi.test"]}))
            events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": queue_arn}])

            # WHEN three events are put
            for number in range(3):
                events.put_events(
                    Entries=[{"Source": "xpi.test", "DetailType": "t", "Detail": json.dumps({"n": number})}]
                )

            # THEN every event reaches the queue whole
            bodies = []
            while len(bodies) < 3:
                got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                assert got, "an event was not delivered"
                bodies += [json.loads(m["Body"]) for m in got]
            assert sorted(body["detail"]["n"] for body in bodies) == [0, 1, 2]
            # AND each input path was parsed once, not once per event
            assert parsed, "moto no longer parses input paths through jsonpath_ng.ext.parse"
            assert len(parsed) == len(set(parsed))
    finally:
        restore()
        jsonpath_ext.parse = original
    # AND moto's own parse is back
    assert jsonpath_ext.parse is original


def test_an_ended_execution_keeps_its_history_not_the_interpreters_environment() -> None:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    definition = {
        "StartAt": "Shape",
        "States": {
            "Shape": {"Type": "Pass", "Parameters": {"answer.$": "$.question"}, "Next": "Branches"},
            "Branches": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "One", "States": {"One": {"Type": "Pass", "End": True}}}],
                "OutputPath": "$[0]",
                "End": True,
            },
        },
    }
    restore = moto_patches.patch_finished_environments()
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            sfn = boto3.client("stepfunctions", region_name=REGION)
            role = f"arn:aws-us-gov:iam::{ACCOUNT}:role/sm"
            machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn=role)
            # GIVEN an execution that ran to its end (a Parallel state: a child frame of the environment)
            arn = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], input=json.dumps({"question": "q" * 5000})
            )["executionArn"]
            wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", 10, 0.05)

            # WHEN it is read afterwards
            described = sfn.describe_execution(executionArn=arn)
            history = sfn.get_execution_history(executionArn=arn)["events"]
            stop = sfn.stop_execution(executionArn=arn)

            # THEN its description and history are what they were, and stopping it changes nothing
            assert described["status"] == "SUCCEEDED"
            assert json.loads(described["output"]) == {"answer": "q" * 5000}
            assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
            assert "stopDate" in stop
            assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
            # AND what moto keeps of its interpreter is that history, not its stack, heap and frames
            [execution] = [
                execution
                for backend in stepfunctions_parser_backends[ACCOUNT].values()
                for machine_object in backend.state_machines
                for execution in machine_object.executions
            ]
            kept = execution.exec_worker.env
            assert isinstance(kept, moto_patches.FinishedEnvironment)
            assert not hasattr(kept, "stack") and not hasattr(kept, "_frames") and not hasattr(kept, "states")
    finally:
        restore()


def test_moto_lists_its_services_and_each_classs_methods_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto's server dispatch, with the package listing and getmembers counted, and the patch
    import inspect
    import os

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    listed: list[str] = []
    members: list[object] = []
    real_listdir, real_getmembers = os.listdir, inspect.getmembers

    def counting_listdir(path: Any) -> list[str]:
        listed.append(str(path))
        return real_listdir(path)

    def counting_getmembers(thing: Any, predicate: Any = None) -> Any:
        members.append(thing)
        return real_getmembers(thing, predicate)

    restore = moto_patches.patch_request_dispatch()
    monkeypatch.setattr(os, "listdir", counting_listdir)
    monkeypatch.setattr(inspect, "getmembers", counting_getmembers)
    try:
        dispatcher = DomainDispatcherApplication(create_backend_app)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            dynamodb.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            )

            # WHEN hosts are resolved and several calls are dispatched
            listed.clear()
            members.clear()
            resolved = [dispatcher.get_backend_for_host(host) for host in ("dynamodb", "sqs", "nope.local")]
            for number in range(3):
                dynamodb.put_item(TableName="t", Item={"id": {"S": str(number)}})
            items = dynamodb.scan(TableName="t")["Items"]

        # THEN the hosts resolve as before and every call did its work
        assert resolved == ["dynamodb", "sqs", None]
        assert sorted(item["id"]["S"] for item in items) == ["0", "1", "2"]
        # AND moto's folder was not listed again, nor the handler's methods read once per call
        assert not [path for path in listed if path.rstrip("/").endswith("moto")]
        from moto.dynamodb.responses import DynamoHandler

        assert members.count(DynamoHandler) <= 1
    finally:
        restore()
    # AND moto's own functions are back
    from moto import backends
    from moto.core import responses, utils

    assert responses.method_names_from_class is utils.method_names_from_class
    assert "dynamodb" in list(backends.list_of_moto_modules())


def test_an_ended_express_execution_keeps_its_description_and_no_history() -> None:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    definition = {"StartAt": "Shape", "States": {"Shape": {"Type": "Pass", "End": True}}}
    restore = moto_patches.patch_finished_environments()
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            sfn = boto3.client("stepfunctions", region_name=REGION)
            role = f"arn:aws-us-gov:iam::{ACCOUNT}:role/sm"
            machine = sfn.create_state_machine(
                name="m", definition=json.dumps(definition), roleArn=role, type="EXPRESS"
            )
            # GIVEN an Express execution that ran to its end
            arn = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], input=json.dumps({"question": "q" * 5000})
            )["executionArn"]
            wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", 10, 0.05)

            # WHEN what moto keeps of it is read
            described = sfn.describe_execution(executionArn=arn)
            [execution] = [
                execution
                for backend in stepfunctions_parser_backends[ACCOUNT].values()
                for machine_object in backend.state_machines
                for execution in machine_object.executions
            ]

            # THEN its description (status, input, start and stop) stays, and no history (AWS keeps none)
            assert described["status"] == "SUCCEEDED" and "stopDate" in described
            assert json.loads(described["input"]) == {"question": "q" * 5000}
            assert execution.exec_worker.env.event_manager.get_event_history() == []
    finally:
        restore()


def test_a_refused_lambda_invoke_is_reported_as_step_functions_names_it() -> None:
    # GIVEN a Lambda task whose invoke the Lambda service refuses (no such function: a 404 answer) and a
    # Catch naming the error as Step Functions reports it
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": f"arn:aws-us-gov:lambda:{REGION}:{ACCOUNT}:function:absent",
                "Catch": [
                    {
                        "ErrorEquals": ["Lambda.ResourceNotFoundException"],
                        "ResultPath": "$.error",
                        "Next": "Caught",
                    }
                ],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    restore = moto_patches.patch_lambda_service_errors()
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            sfn = boto3.client("stepfunctions", region_name=REGION)
            role = f"arn:aws-us-gov:iam::{ACCOUNT}:role/sm"
            machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn=role)

            # WHEN it runs
            arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
            wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", 10, 0.05)
            described = sfn.describe_execution(executionArn=arn)
    finally:
        restore()

    # THEN the error is Lambda.<the service's code>, which the Catch took (moto alone says "Exception")
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == "Lambda.ResourceNotFoundException"


def test_a_queue_remembers_only_its_recent_deleted_receipt_handles() -> None:
    restore = moto_patches.patch_deleted_receipts(remembered=3)
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name=REGION)
            queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
            # GIVEN five messages received and deleted
            handles = []
            for n in range(5):
                sqs.send_message(QueueUrl=queue_url, MessageBody=str(n))
                [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                handles.append(message["ReceiptHandle"])

            # WHEN the last one is deleted again, and the first
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handles[-1])
            with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handles[0])

            # THEN a recent handle's delete succeeds again; the oldest is forgotten (moto kept all five)
            from moto.sqs.models import sqs_backends

            [queue] = sqs_backends[ACCOUNT][REGION].queues.values()
            assert len(queue.deleted_messages) == 3
    finally:
        restore()


@pytest.mark.parametrize(
    ("code", "status", "reported"),
    [
        ("TooManyRequestsException", 429, "Lambda.TooManyRequestsException"),
        ("ServiceException", 500, "Lambda.ServiceException"),
        ("ResourceNotFoundException", 404, "Lambda.ResourceNotFoundException"),
        # an outage in front of the service: not a Lambda code, a server error the workflows retry
        ("ServiceUnavailable", 503, "Lambda.AWSLambdaException"),
        ("", 502, "Lambda.AWSLambdaException"),
    ],
)
def test_a_lambda_invoke_error_is_named_as_step_functions_names_it(
    code: str, status: int, reported: str
) -> None:
    assert moto_patches.lambda_task_error(code, status) == reported


def test_a_compressed_request_is_authenticated_on_the_bytes_it_signed(enforced: list[Any]) -> None:
    from xpi_tools.local.principals import OPERATOR_KEYS, create_operator

    # GIVEN the operator (every permission), enforcement on, and the compressed-body patch
    with moto_patches_disabled():
        create_operator(ACCOUNT, REGION)
    restore = moto_patches.patch_compressed_signatures()
    cloudwatch = boto3.client(
        "cloudwatch",
        region_name=REGION,
        aws_access_key_id=OPERATOR_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OPERATOR_KEYS["AWS_SECRET_ACCESS_KEY"],
    )
    sent: list[str] = []
    cloudwatch.meta.events.register(
        "before-send.cloudwatch.PutMetricData",
        lambda request, **_: sent.append(request.headers.get("Content-Encoding", b"").decode() or "none"),
    )
    try:
        # WHEN it sends more metric data than botocore sends uncompressed (10 KiB: gzip, signed as sent)
        data = [
            {"MetricName": f"Metric{n}", "Dimensions": [{"Name": "Line", "Value": f"{n:06d}"}], "Value": n}
            for n in range(400)
        ]
        for start in range(0, len(data), 200):
            cloudwatch.put_metric_data(Namespace="xpi/test", MetricData=data[start : start + 200])
        # THEN the signature holds, and moto keeps every datum it decompressed
        assert sent == ["gzip", "gzip"]
        names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="xpi/test")["Metrics"]}
        assert names == {f"Metric{n}" for n in range(400)}
    finally:
        restore()
