"""Imported models, provisioned throughput and application inference profiles: ARNs of the account's
own resources that the runtime answers with their base model's behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from xpi_tools.emulator import BedrockEmulator, EmulatorControl

from .support import HAIKU, SONNET_37, SONNET_37_PROFILE, error_of, user

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

LLAMA31_8B = "meta.llama3-1-8b-instruct-v1:0"
ACCOUNT = "123456789012"


@pytest.fixture
def custom(emulator: BedrockEmulator, control: EmulatorControl) -> Iterator[EmulatorControl]:
    control.clear_custom_models()
    yield control
    control.clear_custom_models()


def test_an_imported_model_answers_invoke_model_in_its_base_models_body_format(
    runtime: BedrockRuntimeClient, custom: EmulatorControl
) -> None:
    arn = custom.add_custom_model("imported-model", LLAMA31_8B, resource_id="abcdef123456")
    assert arn == f"arn:aws:bedrock:us-east-1:{ACCOUNT}:imported-model/abcdef123456"

    response = runtime.invoke_model(
        modelId=arn, body=json.dumps({"prompt": "Say hello. [[emulator:reply=hello]]", "max_gen_len": 16})
    )

    body = json.loads(response["body"].read())
    assert body["generation"] == "hello"
    assert body["stop_reason"] == "stop"
    assert custom.counters().model(LLAMA31_8B).successes == 1


def test_a_provisioned_model_answers_converse_exactly_as_its_base_model(
    runtime: BedrockRuntimeClient, custom: EmulatorControl
) -> None:
    arn = custom.add_custom_model("provisioned-model", HAIKU)
    assert arn.startswith(f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/")

    provisioned = runtime.converse(modelId=arn, messages=user("Describe the sea."))
    base = runtime.converse(modelId=HAIKU, messages=user("Describe the sea."))

    assert provisioned["output"] == base["output"]
    assert provisioned["usage"] == base["usage"]


def test_an_application_inference_profile_answers_as_the_profile_it_copies(
    runtime: BedrockRuntimeClient, custom: EmulatorControl
) -> None:
    # Claude 3.7 Sonnet is offered in us-east-1 only through an inference profile
    arn = custom.add_custom_model("application-inference-profile", SONNET_37_PROFILE, name="team-a")

    answer = runtime.converse(modelId=arn, messages=user("[[emulator:reply=ok]]"))

    assert answer["output"]["message"]["content"][0]["text"] == "ok"
    assert custom.counters().model(SONNET_37).successes == 1


@pytest.mark.parametrize(
    "identifier",
    [
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/zzzzzzzzzzzz",  # not registered
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:imported-model/zzzzzzzzzzzz",
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/zzzzzzzzzzzz",
    ],
)
def test_an_unregistered_arn_is_an_invalid_model_identifier(
    runtime: BedrockRuntimeClient, custom: EmulatorControl, identifier: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=identifier, messages=user("Hi."))

    assert error_of(excinfo)[:1] == ("ValidationException",)


def test_registration_refuses_an_unknown_base_model_or_kind(custom: EmulatorControl) -> None:
    from xpi_tools.emulator import EmulatorControlError

    with pytest.raises(EmulatorControlError):
        custom.add_custom_model("imported-model", "acme.unknown-model-v1:0")
    with pytest.raises(EmulatorControlError):
        custom.add_custom_model("custom-model", HAIKU)  # type: ignore[arg-type]
    assert custom.custom_models() == []
