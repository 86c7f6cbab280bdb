"""Which commercial model a request may reach, and at what price: a pure function of configuration.

The agency approves models (by id or inference profile id) and lists, per caller principal pattern,
which of them each caller may use. Aliases let producers ask for "default" or "fast" without knowing
ids. The first caller rule whose pattern matches the caller's principal applies.
"""

import json
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from xpi.domain.errors import ModelNotAllowedForCaller, ModelNotApproved
from xpi.models.request import InferenceRequest
from xpi.models.workflow import RequestHeader, Route, Usage


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovedModel(_Config):
    usd_per_1k_input_tokens: Annotated[float, Field(ge=0)] = 0.0
    usd_per_1k_output_tokens: Annotated[float, Field(ge=0)] = 0.0
    api: Literal["converse", "invoke_model", "both"] = "both"
    # This model's commercial quota in the region it is called in, overriding the stack's default
    # (BEDROCK_REQUESTS_PER_MINUTE / BEDROCK_TOKENS_PER_MINUTE); 0 turns that dimension's pacing off.
    requests_per_minute: Annotated[float, Field(ge=0)] | None = None
    tokens_per_minute: Annotated[float, Field(ge=0)] | None = None


class CallerRule(_Config):
    principal: str = Field(description="glob over the caller principal (ARN, SenderId or account)")
    allow: list[str] = Field(description="globs over approved model ids")


class RoutingConfig(_Config):
    version: Literal["1"] = "1"
    aliases: dict[str, str] = {}
    models: dict[str, ApprovedModel]
    callers: list[CallerRule]

    def resolve_alias(self, requested: str) -> str:
        return self.aliases.get(requested, requested)

    def models_for(self, principal: str) -> list[str]:
        rule = next((r for r in self.callers if fnmatchcase(principal, r.principal)), None)
        if rule is None:
            return []
        return sorted(m for m in self.models if any(fnmatchcase(m, pattern) for pattern in rule.allow))


@cache
def load_default_routing() -> RoutingConfig:
    text = resources.files("xpi.config").joinpath("routing.json").read_text(encoding="utf-8")
    return RoutingConfig.model_validate(json.loads(text))


def resolve_route(
    request: InferenceRequest | RequestHeader,
    principal: str,
    config: RoutingConfig,
    region: str,
    endpoint: str,
) -> Route:
    model_id = config.resolve_alias(request.model)
    approved = config.models.get(model_id)
    if approved is None:
        raise ModelNotApproved(f"model '{request.model}' is not on this deployment's approved list")
    if approved.api not in ("both", request.api):
        raise ModelNotApproved(f"model '{model_id}' is approved for {approved.api} only, not {request.api}")
    if model_id not in config.models_for(principal):
        raise ModelNotAllowedForCaller(f"caller '{principal}' may not use model '{model_id}'")
    return Route(model_id=model_id, region=region, endpoint=endpoint, api=request.api)


def estimate_cost(config: RoutingConfig, model_id: str, usage: Usage) -> float:
    price = config.models.get(model_id)
    if price is None:
        return 0.0
    cost = (
        usage.input_tokens * price.usd_per_1k_input_tokens
        + usage.output_tokens * price.usd_per_1k_output_tokens
    ) / 1000
    return round(cost, 8)
