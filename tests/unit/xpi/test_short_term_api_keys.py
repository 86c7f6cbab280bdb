"""The invoke step's short-term Bedrock API key mode: IAM keys from the secret mint a bearer token on
demand (aws-bedrock-token-generator); the emulator on loopback validates it as Bedrock would."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from xpi.adapters.bedrock import BotoBedrockGateway
from xpi.domain.errors import BedrockRejected, CredentialsRejected
from xpi.models.credentials import ApiKey, CommercialCredentials, IamKeys
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

KEY_ID, SECRET = "AKIASHORTTERM000", "short-term-secret"
API_KEY = "ABSKdW5pdC10ZXN0OmxvbmctdGVybS1hcGkta2V5"


class Keys:
    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        return CommercialCredentials(
            version_id="v-1",
            secret=IamKeys(aws_access_key_id=KEY_ID, aws_secret_access_key=SecretStr(self.secret)),
        )


@pytest.fixture
def emulator() -> Iterator[tuple[BedrockEmulator, list[str]]]:
    schemes: list[str] = []
    with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey(KEY_ID, SECRET)])) as emu:
        authenticate = emu.service._authenticate

        def recorded(request: Any) -> str:
            schemes.append((request.header("authorization") or "").split(" ", 1)[0])
            return authenticate(request)

        emu.service._authenticate = recorded  # type: ignore[method-assign]
        yield emu, schemes


def route(emu: BedrockEmulator) -> Route:
    return Route(
        model_id="anthropic.claude-3-haiku-20240307-v1:0",
        region="us-east-1",
        endpoint=emu.url,
        api="converse",
    )


def test_iam_keys_sign_a_short_term_api_key_and_calls_carry_it(
    emulator: tuple[BedrockEmulator, list[str]],
) -> None:
    emu, schemes = emulator
    gateway = BotoBedrockGateway(Keys(), timeout_s=10, short_term_api_keys=True)
    answer = gateway.answer(route(emu), InferenceRequest(model="m", prompt="hello"))
    assert answer.text and answer.credential_version == "v-1"
    assert schemes == ["Bearer"]
    assert answer.credential_type == "short-term-api-key"


def test_without_the_mode_iam_keys_sign_with_sigv4(emulator: tuple[BedrockEmulator, list[str]]) -> None:
    emu, schemes = emulator
    answer = BotoBedrockGateway(Keys(), timeout_s=10).answer(
        route(emu), InferenceRequest(model="m", prompt="hello")
    )
    assert schemes == ["AWS4-HMAC-SHA256"]
    assert (answer.credential_type, answer.credential_age_s) == ("iam-access-key", None)  # no created_at


def test_a_token_signed_with_a_wrong_secret_is_refused(emulator: tuple[BedrockEmulator, list[str]]) -> None:
    emu, _ = emulator
    gateway = BotoBedrockGateway(Keys("not-the-secret"), timeout_s=10, short_term_api_keys=True)
    # Bedrock refuses a bad API key with AccessDeniedException, which after the fresh read the gateway
    # cannot tell from a model access refusal: either way the request is not answered.
    with pytest.raises((CredentialsRejected, BedrockRejected)):
        gateway.answer(route(emu), InferenceRequest(model="m", prompt="hello"))


def test_a_rotated_bedrock_api_key_reports_its_type_and_age() -> None:
    # GIVEN a long-term Bedrock API key its rotation stored an hour ago
    created_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    class StoredApiKey:
        def get(self, *, refresh: bool = False) -> CommercialCredentials:
            return CommercialCredentials(
                version_id="v-api",
                secret=ApiKey(type="api_key", api_key=SecretStr(API_KEY), created_at=created_at),
            )

    with BedrockEmulator(EmulatorConfig(api_keys=[API_KEY])) as emu:
        # WHEN a call is answered with it
        answer = BotoBedrockGateway(StoredApiKey(), timeout_s=10).answer(
            route(emu), InferenceRequest(model="m", prompt="hello")
        )

    # THEN lineage gets its type and age, as for an IAM key
    assert answer.credential_type == "bedrock-api-key"
    assert answer.credential_age_s is not None and 3590 <= answer.credential_age_s <= 3700
