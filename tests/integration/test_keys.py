"""Keys and the commercial secret on the local stack (docs/security.md, "Keys"): a producer holding the
producer policy sends requests but can use nothing of the data key; only the invoke function's role reads
the commercial credentials, whatever another role's identity policy grants it."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration


def _client(local_stack: LocalStackClient, service: str, credentials: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=local_stack.state["aws"],
        region_name=local_stack.state["region"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )


def _access_denied(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call()
    error: dict[str, Any] = refused.value.response["Error"]
    assert "AccessDenied" in error["Code"], error
    return error


@contextmanager
def role_session(
    local_stack: LocalStackClient, *, managed: tuple[str, ...] = (), inline: dict[str, Any] | None = None
) -> Iterator[dict[str, str]]:
    """Credentials of a new role of the account holding the given policies, removed afterwards. (A role of
    the template would keep, in the call log, a denial that tests/test_least_privilege.py counts.)"""
    iam = local_stack.client("iam")
    account = local_stack.client("sts").get_caller_identity()["Account"]
    name = f"xpi-test-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws-us-gov:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    for arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    if inline:
        iam.put_role_policy(RoleName=name, PolicyName="Inline", PolicyDocument=json.dumps(inline))
    credentials = local_stack.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="test")[
        "Credentials"
    ]
    try:
        yield {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }
    finally:
        for arn in managed:
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        if inline:
            iam.delete_role_policy(RoleName=name, PolicyName="Inline")
        iam.delete_role(RoleName=name)


@pytest.fixture(scope="module")
def producer(local_stack: LocalStackClient) -> Iterator[dict[str, str]]:
    """A role with only the stack's producer policy attached, as a producer's would be."""
    with role_session(local_stack, managed=(local_stack.outputs["RequestsProducerPolicyArn"],)) as session:
        yield session


def test_a_producer_sends_requests_with_the_queue_key(
    local_stack: LocalStackClient, results: ResultCollector, producer: dict[str, str]
) -> None:
    # WHEN a producer holding the producer policy sends a request
    request_id = f"keys-{uuid.uuid4().hex[:10]}"
    body = {"request_id": request_id, "model": "default", "prompt": "Hello from a producer"}
    _client(local_stack, "sqs", producer).send_message(
        QueueUrl=local_stack.outputs["RequestsQueueUrl"], MessageBody=json.dumps(body)
    )
    # THEN it is answered, and the producer may use the queue's key (what SQS does for it)
    assert results.wait_for(request_id, timeout_s=90)["detail-type"] == "Inference Completed"
    kms = _client(local_stack, "kms", producer)
    data_key = kms.generate_data_key(KeyId=local_stack.outputs["RequestsQueueKeyArn"], KeySpec="AES_256")
    assert (
        kms.decrypt(
            CiphertextBlob=data_key["CiphertextBlob"], KeyId=local_stack.outputs["RequestsQueueKeyArn"]
        )["Plaintext"]
        == data_key["Plaintext"]
    )


def test_a_producer_can_use_nothing_of_the_data_key(
    local_stack: LocalStackClient, producer: dict[str, str]
) -> None:
    # GIVEN data-key material (a data key the stack's data is encrypted under) and the lineage table
    data_key_arn = local_stack.outputs["KmsKeyArn"]
    assert data_key_arn != local_stack.outputs["RequestsQueueKeyArn"]
    ciphertext = local_stack.client("kms").generate_data_key(KeyId=data_key_arn, KeySpec="AES_256")[
        "CiphertextBlob"
    ]
    kms = _client(local_stack, "kms", producer)

    # THEN the producer can neither decrypt it nor make new material under the data key
    _access_denied(lambda: kms.decrypt(CiphertextBlob=ciphertext, KeyId=data_key_arn))
    _access_denied(lambda: kms.generate_data_key(KeyId=data_key_arn, KeySpec="AES_256"))
    # AND reads nothing the data key protects (lineage, results)
    dynamodb = _client(local_stack, "dynamodb", producer)
    _access_denied(
        lambda: dynamodb.get_item(
            TableName=local_stack.outputs["LineageTableName"], Key={"request_id": {"S": "any"}}
        )
    )
    s3 = _client(local_stack, "s3", producer)
    _access_denied(lambda: s3.list_objects_v2(Bucket=local_stack.outputs["ArtifactsBucketName"]))


def test_only_the_invoke_role_reads_the_commercial_credentials(local_stack: LocalStackClient) -> None:
    secret_arn = local_stack.outputs["CommercialCredentialsSecretArn"]
    # GIVEN another role of the account (another function's, say), granted the read by its identity
    # policy, as a mistake would: GetSecretValue on the secret and Decrypt on its key
    mistaken_grant = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": local_stack.outputs["CommercialCredentialsKeyArn"],
            },
        ],
    }
    with role_session(local_stack, inline=mistaken_grant) as other_function:
        other = _client(local_stack, "secretsmanager", other_function)
        # WHEN it reads the secret THEN the secret's policy denies it, whether named by ARN or by name
        _access_denied(lambda: other.get_secret_value(SecretId=secret_arn))
        name = secret_arn.rsplit(":", 1)[1].rsplit("-", 1)[0]
        _access_denied(lambda: other.get_secret_value(SecretId=name))

    # AND so is the operator, who may do anything else (describe the secret, put a new value)
    operator = local_stack.client("secretsmanager")
    _access_denied(lambda: operator.get_secret_value(SecretId=secret_arn))
    assert "AWSCURRENT" in str(operator.describe_secret(SecretId=secret_arn)["VersionIdsToStages"])

    # AND the invoke function's role reads it
    invoke = _client(
        local_stack, "secretsmanager", local_stack.state["function_credentials"]["InvokeModelFunction"]
    )
    assert json.loads(invoke.get_secret_value(SecretId=secret_arn)["SecretString"])["type"] == "iam"
