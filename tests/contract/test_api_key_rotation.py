"""Rotation of a long-term Bedrock API key against the emulator's commercial side, through the rotation
function's own adapters (xpi.adapters.rotation): a key manager user that may manage only the Bedrock
user's service-specific credentials, and the probe call with the new key as a bearer token. Secrets
Manager is the in-memory fake of its versions and staging labels."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import SecretStr
from xpi.adapters.rotation import BedrockProbe, BotoCommercialIam
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import ApiKey, IamKeys, RotationEvent
from xpi.services.rotation import Rotator, rotate
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

from tests.helpers.fakes import FakeEventPublisher
from tests.helpers.fakes_rotation import FakeRotatingSecret

REGION = "us-east-1"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BEDROCK_USER = "xpi-bedrock"
MANAGER = IamKeys(aws_access_key_id="AKIAMANAGER00000", aws_secret_access_key=SecretStr("manager-secret"))
MANAGER_SECRET = "api-key-manager"


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(
        region=REGION,
        access_keys=[
            AccessKey("AKIABEDROCK00000", "bedrock-secret", user=BEDROCK_USER),
            AccessKey(MANAGER.aws_access_key_id, "manager-secret", user="xpi-key-manager"),
            AccessKey("AKIAOTHER0000000", "o", user="other"),
        ],
        key_managers={"xpi-key-manager": BEDROCK_USER},
    )
    with BedrockEmulator(config) as emu:
        yield emu


def manager_iam(emu: BedrockEmulator) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=emu.url,
        region_name="us-east-1",
        aws_access_key_id=MANAGER.aws_access_key_id,
        aws_secret_access_key="manager-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_the_key_manager_may_manage_only_the_bedrock_users_service_specific_credentials(
    emulator: BedrockEmulator,
) -> None:
    client = manager_iam(emulator)
    # GIVEN the key manager: it may make, list and delete the Bedrock user's API keys
    iam = BotoCommercialIam(emulator.url)
    made = iam.create_credential(MANAGER, BEDROCK_USER)
    assert [c.credential_id for c in iam.list_credentials(MANAGER, BEDROCK_USER)] == [made.credential_id]
    # THEN it may not make an access key for that user, nor touch another user's credentials
    assert error_code(lambda: client.create_access_key(UserName=BEDROCK_USER)) == "AccessDenied"
    assert error_code(lambda: client.list_access_keys(UserName=BEDROCK_USER)) == "AccessDenied"
    with pytest.raises(CredentialRotationFailed):
        iam.create_credential(MANAGER, "other")
    # AND the Bedrock user itself may not manage the key manager's credentials
    bedrock_user = IamKeys(
        aws_access_key_id="AKIABEDROCK00000", aws_secret_access_key=SecretStr("bedrock-secret")
    )
    with pytest.raises(CredentialRotationFailed):
        iam.list_credentials(bedrock_user, "xpi-key-manager")
    iam.delete_credential(MANAGER, BEDROCK_USER, made.credential_id or "")
    iam.delete_credential(MANAGER, BEDROCK_USER, made.credential_id or "")  # gone already: no error
    assert iam.list_credentials(MANAGER, BEDROCK_USER) == []


def test_the_probe_sends_an_api_key_as_a_bearer_token_and_reports_a_refused_one(
    emulator: BedrockEmulator,
) -> None:
    iam = BotoCommercialIam(emulator.url)
    probe = BedrockProbe(REGION, emulator.url, MODEL)
    key = iam.create_credential(MANAGER, BEDROCK_USER)
    probe.check(key)
    iam.delete_credential(MANAGER, BEDROCK_USER, key.credential_id or "")
    with pytest.raises(CredentialsRejected):
        probe.check(key)


def test_a_rotation_replaces_the_api_key_and_deletes_the_old_credential(emulator: BedrockEmulator) -> None:
    iam = BotoCommercialIam(emulator.url)
    probe = BedrockProbe(REGION, emulator.url, MODEL)
    old = iam.create_credential(MANAGER, BEDROCK_USER)
    # GIVEN a secret holding that API key, and the key manager's secret
    secret = FakeRotatingSecret(
        json.dumps(
            {
                "type": "api_key",
                "api_key": old.api_key.get_secret_value(),
                "user_name": BEDROCK_USER,
                "credential_id": old.credential_id,
            }
        )
    )
    secret.others[MANAGER_SECRET] = json.dumps(
        {
            "type": "iam",
            "aws_access_key_id": MANAGER.aws_access_key_id,
            "aws_secret_access_key": "manager-secret",
        }
    )
    waits: list[float] = []
    rotator = Rotator(
        secret=secret,
        iam=iam,
        probe=probe,
        grace_s=30,
        wait=waits.append,
        events=FakeEventPublisher(),
        now=lambda: datetime(2026, 12, 5, 5, 0, tzinfo=UTC),
        api_keys=iam,
        api_key_manager_secret_id=MANAGER_SECRET,
    )
    # WHEN Secrets Manager runs the four steps
    secret.begin("token-1")
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        rotate(rotator, RotationEvent(Step=step, SecretId="s", ClientRequestToken="token-1"))
    # THEN the current API key is a new credential that Bedrock accepts, and the old one is gone
    new = ApiKey.model_validate_json(secret.current())
    assert new.credential_id != old.credential_id
    assert new.previous_credential_id == old.credential_id
    probe.check(new)
    with pytest.raises(CredentialsRejected):
        probe.check(old)
    assert [c.credential_id for c in iam.list_credentials(MANAGER, BEDROCK_USER)] == [new.credential_id]
    assert waits == [30]
