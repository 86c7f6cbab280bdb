"""The emulator's commercial IAM side, driven through stock boto3: a user's access keys and Bedrock
service-specific credentials, and short-term Bedrock API keys minted by aws-bedrock-token-generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_bedrock_token_generator import BedrockTokenGenerator
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

REGION = "us-east-1"
NO_RETRIES = Config(retries={"total_max_attempts": 1})
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(
        region=REGION,
        access_keys=[
            AccessKey("AKIAFIRST0000000", "first-secret", user="xpi-bedrock"),
            AccessKey("AKIAOTHER0000000", "o", user="other"),
        ],
    )
    with BedrockEmulator(config) as emu:
        yield emu


def iam(emu: BedrockEmulator, key_id: str, secret: str) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=emu.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=NO_RETRIES,
    )


def runtime(emu: BedrockEmulator, **credentials: Any) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=emu.url, region_name=REGION, config=NO_RETRIES, **credentials
    )


def converse_as(emu: BedrockEmulator, key_id: str, secret: str) -> Any:
    client = runtime(emu, aws_access_key_id=key_id, aws_secret_access_key=secret)
    return client.converse(modelId=MODEL, messages=MESSAGES)


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_a_user_rotates_its_own_access_key(emulator: BedrockEmulator) -> None:
    client = iam(emulator, "AKIAFIRST0000000", "first-secret")
    # WHEN the user creates a second key
    new = client.create_access_key()["AccessKey"]
    # THEN it signs Bedrock calls at once, and both keys are listed
    assert converse_as(emulator, new["AccessKeyId"], new["SecretAccessKey"])["stopReason"]
    listed = {k["AccessKeyId"]: k["Status"] for k in client.list_access_keys()["AccessKeyMetadata"]}
    assert listed == {"AKIAFIRST0000000": "Active", new["AccessKeyId"]: "Active"}
    # AND a third key is refused (an IAM user holds at most two)
    assert error_code(client.create_access_key) == "LimitExceeded"
    # WHEN the old key is made inactive, then deleted with the new one
    client.update_access_key(AccessKeyId="AKIAFIRST0000000", Status="Inactive")
    assert (
        error_code(lambda: converse_as(emulator, "AKIAFIRST0000000", "first-secret"))
        == "UnrecognizedClientException"
    )
    fresh = iam(emulator, new["AccessKeyId"], new["SecretAccessKey"])
    fresh.delete_access_key(AccessKeyId="AKIAFIRST0000000")
    # THEN only the new key is left
    assert [k["AccessKeyId"] for k in fresh.list_access_keys()["AccessKeyMetadata"]] == [new["AccessKeyId"]]
    assert (
        error_code(lambda: iam(emulator, "AKIAFIRST0000000", "first-secret").list_access_keys())
        == "InvalidClientTokenId"
    )


def test_a_user_cannot_touch_another_users_keys(emulator: BedrockEmulator) -> None:
    client = iam(emulator, "AKIAFIRST0000000", "first-secret")
    assert (
        error_code(lambda: client.delete_access_key(UserName="other", AccessKeyId="AKIAOTHER0000000"))
        == "AccessDenied"
    )
    assert error_code(lambda: client.delete_access_key(AccessKeyId="AKIAOTHER0000000")) == "NoSuchEntity"


def test_a_wrong_secret_is_refused_by_iam(emulator: BedrockEmulator) -> None:
    assert (
        error_code(lambda: iam(emulator, "AKIAFIRST0000000", "wrong").list_access_keys())
        == "SignatureDoesNotMatch"
    )


def test_bedrock_service_specific_credentials_are_long_term_api_keys(emulator: BedrockEmulator) -> None:
    client = iam(emulator, "AKIAFIRST0000000", "first-secret")
    created = client.create_service_specific_credential(
        UserName="xpi-bedrock", ServiceName="bedrock.amazonaws.com"
    )
    credential = created["ServiceSpecificCredential"]
    api_key = credential["ServiceCredentialSecret"]
    bearer = runtime(emulator, aws_access_key_id="x", aws_secret_access_key="y")
    assert converse_with_api_key(emulator, api_key)["stopReason"]
    # A reset replaces the secret: the old value stops at once
    reset = client.reset_service_specific_credential(
        UserName="xpi-bedrock", ServiceSpecificCredentialId=credential["ServiceSpecificCredentialId"]
    )["ServiceSpecificCredential"]["ServiceCredentialSecret"]
    assert error_code(lambda: converse_with_api_key(emulator, api_key)) == "AccessDeniedException"
    assert converse_with_api_key(emulator, reset)["stopReason"]
    listed = client.list_service_specific_credentials(
        UserName="xpi-bedrock", ServiceName="bedrock.amazonaws.com"
    )
    assert [c["ServiceSpecificCredentialId"] for c in listed["ServiceSpecificCredentials"]] == [
        credential["ServiceSpecificCredentialId"]
    ]
    assert "ServiceCredentialSecret" not in listed["ServiceSpecificCredentials"][0]
    client.create_service_specific_credential(UserName="xpi-bedrock", ServiceName="bedrock.amazonaws.com")
    assert (
        error_code(
            lambda: client.create_service_specific_credential(
                UserName="xpi-bedrock", ServiceName="bedrock.amazonaws.com"
            )
        )
        == "LimitExceeded"
    )
    client.delete_service_specific_credential(
        UserName="xpi-bedrock", ServiceSpecificCredentialId=credential["ServiceSpecificCredentialId"]
    )
    assert error_code(lambda: converse_with_api_key(emulator, reset)) == "AccessDeniedException"
    del bearer


def converse_with_api_key(emu: BedrockEmulator, api_key: str) -> Any:
    import botocore.session
    from botocore.tokens import FrozenAuthToken

    class Token:
        def load_token(self, **_: Any) -> FrozenAuthToken:
            return FrozenAuthToken(api_key)

    session = botocore.session.Session()
    session.register_component("token_provider", Token())
    client = boto3.Session(botocore_session=session).client(
        "bedrock-runtime",
        endpoint_url=emu.url,
        region_name=REGION,
        config=NO_RETRIES.merge(Config(signature_version="bearer")),
    )
    return client.converse(modelId=MODEL, messages=MESSAGES)


def test_short_term_api_keys_are_validated_until_they_expire(emulator: BedrockEmulator) -> None:
    token = BedrockTokenGenerator().get_token(Credentials("AKIAFIRST0000000", "first-secret"), REGION)
    assert converse_with_api_key(emulator, token)["stopReason"]
    forged = BedrockTokenGenerator().get_token(Credentials("AKIAFIRST0000000", "not-the-secret"), REGION)
    assert error_code(lambda: converse_with_api_key(emulator, forged)) == "AccessDeniedException"
    # 12 hours later the token has expired
    emulator.control.set_clock_offset(12 * 3600 + 1)
    assert error_code(lambda: converse_with_api_key(emulator, token)) == "AccessDeniedException"
    emulator.control.set_clock_offset(0)
    # and a token of a deleted key stops with the key
    iam(emulator, "AKIAOTHER0000000", "o")  # another user's client, unused
    client = iam(emulator, "AKIAFIRST0000000", "first-secret")
    new = client.create_access_key()["AccessKey"]
    iam(emulator, new["AccessKeyId"], new["SecretAccessKey"]).delete_access_key(
        AccessKeyId="AKIAFIRST0000000"
    )
    assert error_code(lambda: converse_with_api_key(emulator, token)) == "AccessDeniedException"


def test_a_role_session_manages_no_iam_user_keys() -> None:
    # A temporary key (a Roles Anywhere session's) is no IAM user: it signs Bedrock calls, not IAM's.
    session_key = AccessKey("ASIASESSION00000", "s", session_token="token", user="assumed-role/x")
    with BedrockEmulator(EmulatorConfig(region=REGION, access_keys=[session_key])) as emu:
        client = boto3.client(
            "iam", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="ASIASESSION00000",
            aws_secret_access_key="s", aws_session_token="token", config=NO_RETRIES,
        )  # fmt: skip
        assert error_code(client.create_access_key) == "AccessDenied"
