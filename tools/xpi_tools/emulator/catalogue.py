"""The per-region model catalogue: foundation models, how each region offers them, inference profiles.

The catalogue is representative of commercial Bedrock (and a smaller GovCloud), not authoritative:
it exists so that tests meet the same shapes of availability the real service has: a model offered
on demand in one region and only through a cross-region inference profile in another, a model a
region does not offer at all, profiles whose ARNs name the caller's account.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from xpi_tools.emulator.errors import (
    MSG_INVALID_MODEL,
    MSG_ON_DEMAND_UNSUPPORTED,
    BedrockError,
    validation,
)


class Family(StrEnum):
    """The request/response body family a model speaks through InvokeModel."""

    ANTHROPIC = "anthropic"
    NOVA = "nova"
    TITAN_TEXT = "titan-text"
    TITAN_EMBED = "titan-embed"
    LLAMA = "llama"


class Offer(StrEnum):
    ON_DEMAND = "ON_DEMAND"
    INFERENCE_PROFILE = "INFERENCE_PROFILE"


US_COMMERCIAL: Final = ("us-east-1", "us-east-2", "us-west-2")
US_GOV: Final = ("us-gov-west-1", "us-gov-east-1")
SUPPORTED_REGIONS: Final = US_COMMERCIAL + US_GOV

OD = Offer.ON_DEMAND
IP = Offer.INFERENCE_PROFILE


def partition_of(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def profile_prefix_of(region: str) -> str:
    return "us-gov" if region.startswith("us-gov-") else "us"


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    name: str
    provider: str
    family: Family
    max_output_tokens: int
    context_tokens: int
    offers: Mapping[str, Offer]
    input_modalities: tuple[str, ...] = ("TEXT",)
    output_modalities: tuple[str, ...] = ("TEXT",)
    streaming: bool = True
    customizations: tuple[str, ...] = ()
    # Offered through a cross-region inference profile (us. / us-gov.) where it is present.
    profiled: bool = False
    # The name Anthropic's messages API answers in "model" (Anthropic family only).
    api_name: str = ""
    embedding_dimensions: int = 0
    count_tokens_supported: bool = False

    @property
    def is_embedding(self) -> bool:
        return self.family is Family.TITAN_EMBED

    def foundation_arn(self, region: str) -> str:
        return f"arn:{partition_of(region)}:bedrock:{region}::foundation-model/{self.model_id}"


@dataclass(frozen=True)
class InferenceProfile:
    profile_id: str
    name: str
    model: ModelSpec
    regions: tuple[str, ...]
    created_at: str = "2024-08-27T00:00:00Z"
    description: str = field(default="")

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:{partition_of(region)}:bedrock:{region}:{account_id}:inference-profile/{self.profile_id}"


def _anthropic(
    model_id: str,
    name: str,
    api_name: str,
    max_output: int,
    offers: dict[str, Offer],
    *,
    images: bool = True,
    profiled: bool = True,
) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        name=name,
        provider="Anthropic",
        family=Family.ANTHROPIC,
        max_output_tokens=max_output,
        context_tokens=200_000,
        offers=offers,
        input_modalities=("TEXT", "IMAGE") if images else ("TEXT",),
        profiled=profiled,
        api_name=api_name,
        count_tokens_supported=True,
    )


def _nova(
    model_id: str, name: str, context: int, offers: dict[str, Offer], *, images: bool = True
) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        name=name,
        provider="Amazon",
        family=Family.NOVA,
        max_output_tokens=10_000,
        context_tokens=context,
        offers=offers,
        input_modalities=("TEXT", "IMAGE", "VIDEO") if images else ("TEXT",),
        customizations=("FINE_TUNING", "DISTILLATION"),
        profiled=True,
    )


def _llama(model_id: str, name: str, context: int, offers: dict[str, Offer], *, profiled: bool) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        name=name,
        provider="Meta",
        family=Family.LLAMA,
        max_output_tokens=2048,
        context_tokens=context,
        offers=offers,
        profiled=profiled,
    )


MODELS: Final[tuple[ModelSpec, ...]] = (
    _anthropic(
        "anthropic.claude-3-haiku-20240307-v1:0",
        "Claude 3 Haiku",
        "claude-3-haiku-20240307",
        4096,
        {"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
    ),
    _anthropic(
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "Claude 3.5 Sonnet",
        "claude-3-5-sonnet-20240620",
        4096,
        {"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
    ),
    _anthropic(
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "Claude 3.5 Sonnet v2",
        "claude-3-5-sonnet-20241022",
        8192,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": OD},
    ),
    _anthropic(
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "Claude 3.5 Haiku",
        "claude-3-5-haiku-20241022",
        8192,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": OD},
        images=False,
    ),
    _anthropic(
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "Claude 3.7 Sonnet",
        "claude-3-7-sonnet-20250219",
        64_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": IP, "us-gov-west-1": IP, "us-gov-east-1": IP},
    ),
    _anthropic(
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "Claude Sonnet 4",
        "claude-sonnet-4-20250514",
        64_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": IP},
    ),
    _anthropic(
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "Claude Opus 4.1",
        "claude-opus-4-1-20250805",
        32_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": IP},
    ),
    _nova(
        "amazon.nova-micro-v1:0",
        "Nova Micro",
        128_000,
        {"us-east-1": OD, "us-east-2": IP, "us-west-2": IP},
        images=False,
    ),
    _nova("amazon.nova-lite-v1:0", "Nova Lite", 300_000, {"us-east-1": OD, "us-east-2": IP, "us-west-2": IP}),
    _nova("amazon.nova-pro-v1:0", "Nova Pro", 300_000, {"us-east-1": OD, "us-east-2": IP, "us-west-2": IP}),
    _nova(
        "amazon.nova-premier-v1:0",
        "Nova Premier",
        1_000_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": IP},
    ),
    ModelSpec(
        model_id="amazon.titan-text-express-v1",
        name="Titan Text G1 - Express",
        provider="Amazon",
        family=Family.TITAN_TEXT,
        max_output_tokens=8192,
        context_tokens=8192,
        offers={"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
        customizations=("FINE_TUNING", "CONTINUED_PRE_TRAINING"),
    ),
    ModelSpec(
        model_id="amazon.titan-text-lite-v1",
        name="Titan Text G1 - Lite",
        provider="Amazon",
        family=Family.TITAN_TEXT,
        max_output_tokens=4096,
        context_tokens=4096,
        offers={"us-east-1": OD, "us-west-2": OD},
        customizations=("FINE_TUNING", "CONTINUED_PRE_TRAINING"),
    ),
    ModelSpec(
        model_id="amazon.titan-embed-text-v1",
        name="Titan Embeddings G1 - Text",
        provider="Amazon",
        family=Family.TITAN_EMBED,
        max_output_tokens=0,
        context_tokens=8192,
        offers={"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
        output_modalities=("EMBEDDING",),
        streaming=False,
        embedding_dimensions=1536,
    ),
    ModelSpec(
        model_id="amazon.titan-embed-text-v2:0",
        name="Titan Text Embeddings V2",
        provider="Amazon",
        family=Family.TITAN_EMBED,
        max_output_tokens=0,
        context_tokens=8192,
        offers={"us-east-1": OD, "us-east-2": OD, "us-west-2": OD, "us-gov-west-1": OD, "us-gov-east-1": OD},
        output_modalities=("EMBEDDING",),
        streaming=False,
        embedding_dimensions=1024,
    ),
    _llama(
        "meta.llama3-8b-instruct-v1:0",
        "Llama 3 8B Instruct",
        8192,
        {"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
        profiled=False,
    ),
    _llama(
        "meta.llama3-70b-instruct-v1:0",
        "Llama 3 70B Instruct",
        8192,
        {"us-east-1": OD, "us-west-2": OD, "us-gov-west-1": OD},
        profiled=False,
    ),
    _llama(
        "meta.llama3-1-8b-instruct-v1:0",
        "Llama 3.1 8B Instruct",
        128_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": OD},
        profiled=True,
    ),
    _llama(
        "meta.llama3-1-70b-instruct-v1:0",
        "Llama 3.1 70B Instruct",
        128_000,
        {"us-east-1": IP, "us-east-2": IP, "us-west-2": OD},
        profiled=True,
    ),
    _llama(
        "meta.llama3-3-70b-instruct-v1:0",
        "Llama 3.3 70B Instruct",
        128_000,
        {"us-east-1": IP, "us-east-2": OD, "us-west-2": IP},
        profiled=True,
    ),
)

MODELS_BY_ID: Final[dict[str, ModelSpec]] = {m.model_id: m for m in MODELS}


def _build_profiles() -> dict[str, InferenceProfile]:
    profiles: dict[str, InferenceProfile] = {}
    for model in MODELS:
        if not model.profiled:
            continue
        for geography, regions, label in (("us", US_COMMERCIAL, "US"), ("us-gov", US_GOV, "US-GOV")):
            present = tuple(r for r in regions if r in model.offers)
            if not present:
                continue
            profile_id = f"{geography}.{model.model_id}"
            name = f"{label} {model.provider} {model.name}"
            profiles[profile_id] = InferenceProfile(
                profile_id=profile_id,
                name=name,
                model=model,
                regions=present,
                description=f"Routes requests to {model.provider} {model.name} in {', '.join(present)}.",
            )
    return profiles


PROFILES: Final[dict[str, InferenceProfile]] = _build_profiles()


@dataclass(frozen=True)
class Resolved:
    """What a modelId in a runtime request designates in this region."""

    model: ModelSpec
    invoked_id: str  # the foundation-model id or the inference-profile id as called
    profile: InferenceProfile | None


class Catalogue:
    """The models and profiles one region offers."""

    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self.partition = partition_of(region)
        self.models: tuple[ModelSpec, ...] = tuple(m for m in MODELS if region in m.offers)
        self._models_by_id = {m.model_id: m for m in self.models}
        self.profiles: tuple[InferenceProfile, ...] = tuple(
            p for p in PROFILES.values() if region in p.regions
        )
        self._profiles_by_id = {p.profile_id: p for p in self.profiles}

    def offer(self, model: ModelSpec) -> Offer:
        return model.offers[self.region]

    def model(self, model_id: str) -> ModelSpec | None:
        return self._models_by_id.get(model_id)

    def profile(self, identifier: str) -> InferenceProfile | None:
        """A profile by id or by ARN in this region."""
        if identifier.startswith("arn:"):
            parts = identifier.split(":", 5)
            if (
                len(parts) != 6
                or parts[1] != self.partition
                or parts[2] != "bedrock"
                or parts[3] != self.region
            ):
                return None
            resource = parts[5]
            if not resource.startswith("inference-profile/"):
                return None
            identifier = resource.removeprefix("inference-profile/")
        return self._profiles_by_id.get(identifier)

    def resolve_for_invocation(self, identifier: str) -> Resolved:
        """Resolve a runtime modelId the way Bedrock does, with Bedrock's errors."""
        model_id = identifier
        if identifier.startswith("arn:"):
            parts = identifier.split(":", 5)
            if (
                len(parts) != 6
                or parts[1] != self.partition
                or parts[2] != "bedrock"
                or parts[3] != self.region
            ):
                raise validation(MSG_INVALID_MODEL)
            account, resource = parts[4], parts[5]
            if resource.startswith("foundation-model/") and account == "":
                model_id = resource.removeprefix("foundation-model/")
            elif resource.startswith("inference-profile/") and len(account) == 12 and account.isdigit():
                # Any well-formed account is accepted: system-defined profiles exist in every account.
                profile = self._profiles_by_id.get(resource.removeprefix("inference-profile/"))
                if profile is None:
                    raise validation(MSG_INVALID_MODEL)
                return Resolved(profile.model, profile.profile_id, profile)
            else:
                raise validation(MSG_INVALID_MODEL)
        elif "." in identifier and identifier.split(".", 1)[0] in ("us", "us-gov", "eu", "apac", "global"):
            profile = self._profiles_by_id.get(identifier)
            if profile is None:
                raise validation(MSG_INVALID_MODEL)
            return Resolved(profile.model, profile.profile_id, profile)
        model = self._models_by_id.get(model_id)
        if model is None:
            raise validation(MSG_INVALID_MODEL)
        if self.offer(model) is Offer.INFERENCE_PROFILE:
            raise validation(MSG_ON_DEMAND_UNSUPPORTED.format(model_id=model_id))
        return Resolved(model, model_id, None)

    def foundation_model(self, identifier: str) -> ModelSpec:
        """GetFoundationModel's lookup: an id or a foundation-model ARN of this region."""
        model_id = identifier
        if identifier.startswith("arn:"):
            prefix = f"arn:{self.partition}:bedrock:{self.region}::foundation-model/"
            if not identifier.startswith(prefix):
                raise validation(MSG_INVALID_MODEL)
            model_id = identifier.removeprefix(prefix)
        model = self._models_by_id.get(model_id)
        if model is None:
            # Emulator wording: the real message for a well-formed but unknown id was not available.
            raise BedrockError("ResourceNotFoundException", f"Could not find model {model_id}.")
        return model

    # -- control-plane shapes -------------------------------------------------------------------

    def model_summary(self, model: ModelSpec) -> dict[str, object]:
        return {
            "modelArn": model.foundation_arn(self.region),
            "modelId": model.model_id,
            "modelName": model.name,
            "providerName": model.provider,
            "inputModalities": list(model.input_modalities),
            "outputModalities": list(model.output_modalities),
            "responseStreamingSupported": model.streaming,
            "customizationsSupported": list(model.customizations),
            "inferenceTypesSupported": [self.offer(model).value],
            "modelLifecycle": {"status": "ACTIVE"},
        }

    def profile_summary(self, profile: InferenceProfile) -> dict[str, object]:
        return {
            "inferenceProfileName": profile.name,
            "description": profile.description,
            "createdAt": profile.created_at,
            "updatedAt": profile.created_at,
            "inferenceProfileArn": profile.arn(self.region, self.account_id),
            "models": [{"modelArn": profile.model.foundation_arn(r)} for r in profile.regions],
            "inferenceProfileId": profile.profile_id,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_page_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("offset:"):
            raise ValueError(text)
        return int(text.removeprefix("offset:"))
    except ValueError:
        raise validation("The provided pagination token is invalid.") from None
