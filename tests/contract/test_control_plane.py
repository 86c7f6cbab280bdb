"""The `bedrock` control plane (foundation models, inference profiles) and the per-region catalogue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

from .support import (
    HAIKU,
    KEY_ID,
    NOVA_PRO,
    SECRET,
    SONNET_37,
    SONNET_37_PROFILE,
    TITAN_EMBED_V2,
    error_of,
    user,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

    from .conftest import ClientFactory

SONNET_35_V2 = "anthropic.claude-3-5-sonnet-20241022-v2:0"


def test_list_foundation_models_describes_the_regions_models(bedrock: BedrockClient) -> None:
    summaries = bedrock.list_foundation_models()["modelSummaries"]

    by_id = {s["modelId"]: s for s in summaries}
    assert {HAIKU, SONNET_37, NOVA_PRO, TITAN_EMBED_V2} <= set(by_id)
    haiku = by_id[HAIKU]
    assert haiku["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    assert haiku["providerName"] == "Anthropic"
    assert haiku["inferenceTypesSupported"] == ["ON_DEMAND"]
    assert haiku["responseStreamingSupported"] is True
    assert haiku["modelLifecycle"]["status"] == "ACTIVE"
    assert by_id[SONNET_37]["inferenceTypesSupported"] == ["INFERENCE_PROFILE"]
    assert by_id[TITAN_EMBED_V2]["outputModalities"] == ["EMBEDDING"]


def test_list_foundation_models_filters(bedrock: BedrockClient) -> None:
    anthropic = bedrock.list_foundation_models(byProvider="anthropic")["modelSummaries"]
    embeddings = bedrock.list_foundation_models(byOutputModality="EMBEDDING")["modelSummaries"]
    on_demand = bedrock.list_foundation_models(byInferenceType="ON_DEMAND")["modelSummaries"]

    assert anthropic
    assert {s["providerName"] for s in anthropic} == {"Anthropic"}
    assert {s["modelId"] for s in embeddings} == {"amazon.titan-embed-text-v1", TITAN_EMBED_V2}
    assert SONNET_37 not in {s["modelId"] for s in on_demand}


def test_get_foundation_model_by_id_and_arn(bedrock: BedrockClient) -> None:
    by_id = bedrock.get_foundation_model(modelIdentifier=NOVA_PRO)["modelDetails"]
    by_arn = bedrock.get_foundation_model(
        modelIdentifier=f"arn:aws:bedrock:us-east-1::foundation-model/{NOVA_PRO}"
    )["modelDetails"]

    assert by_id == by_arn
    assert by_id["modelName"] == "Nova Pro"


def test_get_foundation_model_of_an_unknown_model_is_not_found(bedrock: BedrockClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        bedrock.get_foundation_model(modelIdentifier="anthropic.claude-unknown-v1:0")

    code, _, status = error_of(excinfo)
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_list_inference_profiles_with_pagination(bedrock: BedrockClient, emulator: BedrockEmulator) -> None:
    account = emulator.control.health()["account_id"]
    first = bedrock.list_inference_profiles(maxResults=3)
    rest = bedrock.list_inference_profiles(maxResults=1000, nextToken=first["nextToken"])
    everything = bedrock.list_inference_profiles()

    assert len(first["inferenceProfileSummaries"]) == 3
    assert "nextToken" not in rest
    paged = first["inferenceProfileSummaries"] + rest["inferenceProfileSummaries"]
    assert [p["inferenceProfileId"] for p in paged] == [
        p["inferenceProfileId"] for p in everything["inferenceProfileSummaries"]
    ]
    profile = next(p for p in paged if p["inferenceProfileId"] == SONNET_37_PROFILE)
    assert profile["inferenceProfileArn"] == (
        f"arn:aws:bedrock:us-east-1:{account}:inference-profile/{SONNET_37_PROFILE}"
    )
    assert profile["type"] == "SYSTEM_DEFINED"
    assert profile["status"] == "ACTIVE"
    assert {m["modelArn"] for m in profile["models"]} == {
        f"arn:aws:bedrock:{region}::foundation-model/{SONNET_37}"
        for region in ("us-east-1", "us-east-2", "us-west-2")
    }
    assert bedrock.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"] == []


def test_the_paginator_walks_every_profile(bedrock: BedrockClient) -> None:
    pages = list(bedrock.get_paginator("list_inference_profiles").paginate(PaginationConfig={"PageSize": 4}))

    ids = [p["inferenceProfileId"] for page in pages for p in page["inferenceProfileSummaries"]]
    assert len(pages) > 1
    assert len(ids) == len(set(ids)) == len(bedrock.list_inference_profiles()["inferenceProfileSummaries"])


def test_get_inference_profile(bedrock: BedrockClient) -> None:
    profile = bedrock.get_inference_profile(inferenceProfileIdentifier=SONNET_37_PROFILE)

    assert profile["inferenceProfileName"] == "US Anthropic Claude 3.7 Sonnet"
    with pytest.raises(ClientError) as excinfo:
        bedrock.get_inference_profile(inferenceProfileIdentifier="us.anthropic.unknown-v1:0")
    assert error_of(excinfo)[0] == "ResourceNotFoundException"


def test_us_west_2_offers_on_demand_what_us_east_1_offers_only_through_a_profile(
    runtime: BedrockRuntimeClient, make_client: ClientFactory
) -> None:
    # GIVEN an emulator playing us-west-2
    with BedrockEmulator(EmulatorConfig(region="us-west-2", access_keys=[AccessKey(KEY_ID, SECRET)])) as west:
        west_runtime = make_client("bedrock-runtime", west.url, region="us-west-2")
        west_models = {
            s["modelId"]: s
            for s in make_client("bedrock", west.url, region="us-west-2").list_foundation_models()[
                "modelSummaries"
            ]
        }

        # THEN the bare id works in us-west-2 ...
        assert west_models[SONNET_35_V2]["inferenceTypesSupported"] == ["ON_DEMAND"]
        assert west_runtime.converse(modelId=SONNET_35_V2, messages=user("hi"))["stopReason"] == "end_turn"

    # ... and needs an inference profile in us-east-1
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=SONNET_35_V2, messages=user("hi"))
    assert "with on-demand throughput isn\u2019t supported" in error_of(excinfo)[1]
    assert runtime.converse(modelId=f"us.{SONNET_35_V2}", messages=user("hi"))["stopReason"] == "end_turn"


def test_a_govcloud_region_offers_fewer_models_in_its_own_partition(
    gov_emulator: BedrockEmulator, bedrock: BedrockClient, make_client: ClientFactory
) -> None:
    # GIVEN the same key against a us-gov-west-1 emulator
    gov_bedrock = make_client("bedrock", gov_emulator.url, region="us-gov-west-1")
    gov_runtime = make_client("bedrock-runtime", gov_emulator.url, region="us-gov-west-1")

    gov_models = {s["modelId"]: s for s in gov_bedrock.list_foundation_models()["modelSummaries"]}
    commercial_models = {s["modelId"] for s in bedrock.list_foundation_models()["modelSummaries"]}

    # THEN a smaller catalogue, ARNs in aws-us-gov, us-gov. profiles
    assert set(gov_models) < commercial_models
    assert gov_models[HAIKU]["modelArn"] == f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU}"
    profiles = [
        p["inferenceProfileId"] for p in gov_bedrock.list_inference_profiles()["inferenceProfileSummaries"]
    ]
    assert profiles
    assert all(p.startswith("us-gov.") for p in profiles)
    assert (
        gov_runtime.converse(modelId=f"us-gov.{SONNET_37}", messages=user("hi"))["stopReason"] == "end_turn"
    )
    for missing in (SONNET_35_V2, SONNET_37_PROFILE, NOVA_PRO):
        with pytest.raises(ClientError) as excinfo:
            gov_runtime.converse(modelId=missing, messages=user("hi"))
        assert error_of(excinfo) == ("ValidationException", "The provided model identifier is invalid.", 400)
