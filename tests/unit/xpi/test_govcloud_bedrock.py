"""GovCloud's own Bedrock, called in-partition: the adapter signs with the function's role (boto3's default
chain, what Lambda puts in the environment) and never reads the commercial credentials; the emulator
playing GovCloud's Bedrock authenticates the account's principals and authorizes each call by their
policies (the local stack answers these from moto: xpi_tools.local.govcloud_bedrock)."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.exceptions import ClientError
from xpi.adapters.bedrock import BotoBedrockGateway
from xpi.domain.errors import BedrockRejected
from xpi.models.credentials import CommercialCredentials
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

ROLE_KEY, ROLE_SECRET, ROLE_TOKEN = "ASIAROLESESSION001", "role-session-secret", "role-session-token"
ROLE_ARN = "arn:aws-us-gov:sts::123456789012:assumed-role/xpi-invoke/session"
GOV_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
GOV_ARN = f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{GOV_MODEL}"


@dataclass
class AccountPrincipals:
    """One role session, allowed the actions in `grants` on the resources listed there."""

    grants: dict[str, set[str]] = field(default_factory=dict)
    decisions: list[tuple[str, str, bool]] = field(default_factory=list)

    def access_key(self, access_key_id: str) -> AccessKey | None:
        if access_key_id != ROLE_KEY:
            return None
        return AccessKey(ROLE_KEY, ROLE_SECRET, ROLE_TOKEN, user=ROLE_ARN)

    def allowed(self, access_key_id: str, action: str, resources: list[str]) -> str | None:
        for resource in resources:
            allowed = resource in self.grants.get(action, set())
            self.decisions.append((action, resource, allowed))
            if not allowed:
                return ROLE_ARN
        return None


class NoCommercialCredentials:
    """A CredentialSource that fails the test if anything reads it."""

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        raise AssertionError("a GovCloud-native call read the commercial credentials")


@pytest.fixture
def principals() -> AccountPrincipals:
    return AccountPrincipals(
        {"bedrock:InvokeModel": {GOV_ARN}, "bedrock:InvokeModelWithResponseStream": {GOV_ARN}}
    )


@pytest.fixture
def govcloud(principals: AccountPrincipals) -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(region="us-gov-west-1", account_principals=principals)
    with BedrockEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def role_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The execution role's session credentials, as Lambda sets them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ROLE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ROLE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", ROLE_TOKEN)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)  # botocore reads it first


def govcloud_route(emulator: BedrockEmulator, model: str = GOV_MODEL, api: str = "converse") -> Route:
    return Route(
        model_id=model,
        region="us-gov-west-1",
        endpoint=emulator.url,
        api=api,
        partition="govcloud",  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("role_environment")
def test_a_govcloud_native_model_is_called_with_the_functions_role_never_the_commercial_keys(
    govcloud: BedrockEmulator, principals: AccountPrincipals
) -> None:
    gateway = BotoBedrockGateway(NoCommercialCredentials(), timeout_s=10)  # type: ignore[arg-type]

    answer = gateway.answer(govcloud_route(govcloud), InferenceRequest(model="govcloud", prompt="Hello"))

    assert answer.text and answer.credential_type == "function-role"
    assert govcloud.control.counters().key(ROLE_KEY).successes == 1
    assert principals.decisions == [("bedrock:InvokeModelWithResponseStream", GOV_ARN, True)]


@pytest.mark.usefixtures("role_environment")
def test_a_model_the_role_is_not_granted_is_refused_as_not_enabled_which_a_fallback_may_pass(
    govcloud: BedrockEmulator,
) -> None:
    gateway = BotoBedrockGateway(NoCommercialCredentials(), timeout_s=10)  # type: ignore[arg-type]
    request = InferenceRequest(model="m", prompt="Hello")

    with pytest.raises(BedrockRejected) as refused:
        gateway.answer(govcloud_route(govcloud, "meta.llama3-8b-instruct-v1:0"), request)

    assert refused.value.bedrock_code == "AccessDeniedException"


def test_the_govcloud_emulator_refuses_keys_its_account_does_not_know_and_offers_its_own_catalogue(
    govcloud: BedrockEmulator,
) -> None:
    def runtime(key: str, secret: str, token: str | None) -> object:
        return boto3.client(
            "bedrock-runtime",
            region_name="us-gov-west-1",
            endpoint_url=govcloud.url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )

    messages = [{"role": "user", "content": [{"text": "Hi"}]}]
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        runtime("AKIACOMMERCIALKEY1", "commercial-secret", None).converse(  # type: ignore[attr-defined]
            modelId=GOV_MODEL, messages=messages
        )
    with pytest.raises(ClientError, match="ValidationException"):  # Nova is not offered in GovCloud
        runtime(ROLE_KEY, ROLE_SECRET, ROLE_TOKEN).converse(  # type: ignore[attr-defined]
            modelId="amazon.nova-lite-v1:0", messages=messages
        )
    answer = runtime(ROLE_KEY, ROLE_SECRET, ROLE_TOKEN).converse(  # type: ignore[attr-defined]
        modelId=GOV_MODEL, messages=messages
    )
    assert answer["output"]["message"]["content"][0]["text"]
