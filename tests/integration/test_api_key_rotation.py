"""Rotation of a long-term Bedrock API key on the local stack (`xpi local up --commercial-credentials
api-key`): the credentials secret holds a service-specific credential of the commercial Bedrock user,
the key manager secret the access key of the user allowed to manage that user's credentials only.
Secrets Manager's RotateSecret runs the rotation function while requests flow (docs/operations.md,
"Bedrock API key rotation")."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.stack import (
    LocalStackClient,
    ResultCollector,
    own_stack,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_key_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    with own_stack(
        tmp_path_factory.mktemp("stack-api-key"), "api-key-stack.log", "--commercial-credentials", "api-key"
    ) as stack:
        yield stack


def current(stack: LocalStackClient) -> tuple[str, dict[str, Any]]:
    """The current version and value, read as the rotation function's role (the operator may not)."""
    import boto3

    role = stack.state["function_credentials"]["RotateCredentialsFunction"]
    secrets = boto3.client(
        "secretsmanager", endpoint_url=stack.state["aws"], region_name=stack.state["region"],
        aws_access_key_id=role["AWS_ACCESS_KEY_ID"], aws_secret_access_key=role["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=role["AWS_SESSION_TOKEN"],
    )  # fmt: skip
    arn = stack.outputs["CommercialCredentialsSecretArn"]
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    version = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
    return version, json.loads(secrets.get_secret_value(SecretId=arn, VersionId=version)["SecretString"])


def test_an_api_key_rotation_while_requests_flow_fails_none_and_leaves_only_the_new_credential(
    api_key_stack: LocalStackClient,
) -> None:
    from xpi_tools.emulator import EmulatorControl

    stack = api_key_stack
    control = EmulatorControl(stack.state["emulator_control"])
    results = ResultCollector(stack.client("sqs"), stack.outputs["SubscriberQueueUrl"])
    # GIVEN the stack's Bedrock API key, the only credential of the commercial user
    old_version, old = current(stack)
    assert old["type"] == "api_key"
    assert set(control.keys()["api_keys"]) == {old["credential_id"]}
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set() or len(sent) < 12:
            sent.append(stack.send({"model": "default", "prompt": f"api key rotation traffic {len(sent)}"}))
            stop.wait(0.25)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        # WHEN the secret is rotated while requests flow
        stack.client("secretsmanager").rotate_secret(SecretId=stack.outputs["CommercialCredentialsSecretArn"])
        rotated_at = time.time()
        while time.time() - rotated_at < 3:
            stop.wait(0.25)
    finally:
        stop.set()
        producer.join(timeout=30)
    try:
        # THEN every request was answered, none failed
        outcomes = {r: results.wait_for(r, timeout_s=180) for r in sent}
    finally:
        results.stop()
    failed = {
        r: e["detail"].get("error") for r, e in outcomes.items() if e["detail-type"] != "Inference Completed"
    }
    assert failed == {}
    # AND the current value is a new API key of the same user, naming the credential it replaced
    new_version, new = current(stack)
    assert new_version != old_version
    assert new["type"] == "api_key" and new["user_name"] == old["user_name"]
    assert new["previous_credential_id"] == old["credential_id"]
    # AND the commercial user holds exactly one credential: the new one (the old one is deleted)
    assert set(control.keys()["api_keys"]) == {new["credential_id"]}
    # AND the last requests carried the new key
    lineage = stack.lineage(sent[-1]) or {}
    assert lineage.get("credential_version") == new_version
    assert lineage.get("credential_type") == "bedrock-api-key"
