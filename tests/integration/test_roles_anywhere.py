"""IAM Roles Anywhere mode on the local stack (`xpi local up --commercial-credentials roles-anywhere`):
the invoke step presents its certificate to the emulator's CreateSession and signs with the temporary
credentials it gets. No access key is stored anywhere: not in a secret, not in a function's
environment, not on the commercial side."""

import json
import re
from collections.abc import Iterator

import pytest

from tests.helpers.stack import (
    LocalStackClient,
    ResultCollector,
    own_stack,
)
from tests.integration.test_api import ApiClient

pytestmark = pytest.mark.integration

LONG_TERM_KEY = re.compile(r"AKIA[0-9A-Z]{12,}")


@pytest.fixture(scope="module")
def roles_anywhere_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackClient]:
    with own_stack(
        tmp_path_factory.mktemp("stack-ra"),
        "roles-anywhere-stack.log",
        "--commercial-credentials",
        "roles-anywhere",
    ) as stack:
        yield stack


def test_roles_anywhere_answers_end_to_end_with_no_access_key_stored(
    roles_anywhere_stack: LocalStackClient,
) -> None:
    from xpi_tools.emulator import EmulatorControl

    stack = roles_anywhere_stack
    control = EmulatorControl(stack.state["emulator_control"])
    results = ResultCollector(stack.client("sqs"), stack.outputs["SubscriberQueueUrl"])
    try:
        # WHEN requests are sent
        sent = [stack.send({"model": "default", "prompt": f"roles anywhere {n}"}) for n in range(3)]
        # THEN they are answered
        for request_id in sent:
            assert results.wait_for(request_id, timeout_s=120)["detail-type"] == "Inference Completed"
    finally:
        results.stop()
    # AND signed with Roles Anywhere sessions, each reused while valid: at most one CreateSession per
    # runtime process of the invoke function (two locally), as each Lambda environment keeps its own
    assert 1 <= control.counters().operations.get("CreateSession", 0) <= 2
    # AND POST /v1/invoke (its own function and role) answers in this mode too, with its own session
    status, answer = ApiClient(stack).call(
        "caller2", "POST", "/v1/invoke", {"model": "default", "prompt": "roles anywhere, synchronous"}
    )
    assert status == 200 and answer["status"] == "COMPLETED", answer
    assert (stack.lineage(answer["request_id"]) or {}).get("credential_type") == "roles-anywhere"
    lineage = stack.lineage(sent[-1]) or {}
    assert str(lineage.get("credential_version", "")).startswith("rolesanywhere:")
    assert lineage.get("credential_type") == "roles-anywhere"
    # AND every key the commercial side knows is temporary (a session token and an expiry)
    described = control.keys()["access_keys"]
    assert described and all(k["has_session_token"] and k["expires_at"] for k in described.values())
    # AND no secret of the stack holds an access key (read as the invoke role, which reads both
    # commercial secrets, the rotation role, the only reader of the key manager secret, and as the
    # operator, who reads the others)
    invoke = stack.state["function_credentials"]["InvokeModelFunction"]
    operator = stack.client("secretsmanager")
    import boto3

    as_invoke = boto3.client(
        "secretsmanager", endpoint_url=stack.state["aws"], region_name=stack.state["region"],
        aws_access_key_id=invoke["AWS_ACCESS_KEY_ID"], aws_secret_access_key=invoke["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=invoke["AWS_SESSION_TOKEN"],
    )  # fmt: skip
    rotation = stack.state["function_credentials"]["RotateCredentialsFunction"]
    as_rotation = boto3.client(
        "secretsmanager", endpoint_url=stack.state["aws"], region_name=stack.state["region"],
        aws_access_key_id=rotation["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=rotation["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=rotation["AWS_SESSION_TOKEN"],
    )  # fmt: skip
    readers = {
        stack.outputs["CommercialCredentialsSecretArn"]: as_invoke,
        stack.outputs["RolesAnywhereCertificateSecretArn"]: as_invoke,
        stack.outputs["ApiKeyManagerSecretArn"]: as_rotation,  # only the rotation role reads it
    }
    secrets = operator.list_secrets()["SecretList"]
    assert len(secrets) >= 3
    for secret in secrets:
        value = readers.get(secret["ARN"], operator).get_secret_value(SecretId=secret["ARN"])["SecretString"]
        assert "aws_secret_access_key" not in value and not LONG_TERM_KEY.search(value), secret["Name"]
    # AND no function's environment holds a commercial key
    lambda_api = stack.client("lambda")
    for function in lambda_api.list_functions()["Functions"]:
        environment = json.dumps(function.get("Environment", {}))
        assert not LONG_TERM_KEY.search(environment), function["FunctionName"]
