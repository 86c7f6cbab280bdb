"""Which commercial model a request may reach, and its estimated cost."""

import json
from typing import Any

import pytest
from xpi.domain.errors import ModelNotAllowedForCaller, ModelNotApproved
from xpi.domain.routing import RoutingConfig, estimate_cost, load_default_routing, resolve_route
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Usage

from tests.helpers.errors import raises_with_reason
from tests.helpers.events import REPO, make_request, sample_request

PRINCIPAL = "AROAQXZEXAMPLEROLEID1:claims-intake"


def route(request: InferenceRequest, principal: str = PRINCIPAL, config: RoutingConfig | None = None) -> str:
    resolved = resolve_route(
        request, principal, config or load_default_routing(), region="us-east-1", endpoint=""
    )
    return resolved.model_id


def restricted_config() -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "aliases": {
                "default": "us.amazon.nova-lite-v1:0",
                "claude": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            },
            "models": {
                "us.amazon.nova-lite-v1:0": {
                    "usd_per_1k_input_tokens": 0.00006,
                    "usd_per_1k_output_tokens": 0.00024,
                },
                "us.amazon.nova-micro-v1:0": {},
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0": {"api": "converse"},
            },
            "callers": [
                {"principal": "AROA*:analytics-*", "allow": ["us.amazon.*"]},
                {"principal": "AROAQXZEXAMPLEROLEID1:*", "allow": ["*"]},
                {"principal": "111122223333", "allow": ["us.amazon.nova-micro-v1:0"]},
            ],
        }
    )


def test_shipped_routing_matches_the_json_file() -> None:
    shipped = json.loads((REPO / "functions" / "xpi" / "config" / "routing.json").read_text())

    assert load_default_routing() == RoutingConfig.model_validate(shipped)


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        ("default", "us.amazon.nova-lite-v1:0"),
        ("fast", "us.amazon.nova-micro-v1:0"),
        ("claude", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("us.amazon.nova-pro-v1:0", "us.amazon.nova-pro-v1:0"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
    ],
)
def test_aliases_and_ids_resolve_to_approved_models(requested: str, resolved: str) -> None:
    assert route(make_request(model=requested)) == resolved


def test_the_route_carries_region_endpoint_and_api() -> None:
    request = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))

    resolved = resolve_route(
        request, PRINCIPAL, load_default_routing(), region="us-east-2", endpoint="https://vpce-1.example"
    )

    assert resolved.model_dump(exclude_none=True) == {
        "model_id": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "region": "us-east-2",
        "endpoint": "https://vpce-1.example",
        "api": "invoke_model",
    }


@pytest.mark.parametrize(
    "model",
    ["anthropic.claude-opus-9-20300101-v1:0", "US.AMAZON.NOVA-LITE-V1:0", "nova-lite", "*", "us.amazon.*"],
)
def test_anything_not_on_the_approved_list_is_refused(model: str) -> None:
    with raises_with_reason(ModelNotApproved, "is not on this deployment's approved list"):
        route(make_request(model=model))


def test_unknown_model_sample_is_refused_by_name() -> None:
    request = InferenceRequest.model_validate(sample_request("unknown-model"))

    with pytest.raises(ModelNotApproved) as caught:
        route(request)

    assert caught.value.reason == (
        "model 'anthropic.claude-opus-9-20300101-v1:0' is not on this deployment's approved list"
    )
    assert caught.value.code == "ModelNotApproved"


def test_a_model_approved_for_one_api_only_refuses_the_other() -> None:
    # GIVEN the embedding model, approved for invoke_model only
    converse = make_request(model="embed")
    native = make_request(model="embed", api="invoke_model", body={"inputText": "hello"})

    # THEN
    with raises_with_reason(ModelNotApproved, "approved for invoke_model only, not converse"):
        route(converse)
    assert route(native) == "amazon.titan-embed-text-v2:0"


class TestCallerAllowList:
    @pytest.mark.parametrize(
        ("principal", "model", "allowed"),
        [
            ("AROAABCDEFGHIJKLMNOPQ:analytics-nightly", "default", True),
            ("AROAABCDEFGHIJKLMNOPQ:analytics-nightly", "claude", False),
            ("AROAQXZEXAMPLEROLEID1:claims-intake", "claude", True),
            ("111122223333", "us.amazon.nova-micro-v1:0", True),
            ("111122223333", "default", False),
            ("AROAOTHERROLEEXAMPLE1:reporting", "default", False),  # no rule matches: nothing allowed
        ],
    )
    def test_globs_over_principal_and_model(self, principal: str, model: str, allowed: bool) -> None:
        request = make_request(model=model)
        if allowed:
            route(request, principal, restricted_config())
        else:
            with raises_with_reason(ModelNotAllowedForCaller, f"caller '{principal}' may not use model"):
                route(request, principal, restricted_config())

    def test_the_first_matching_rule_applies_not_the_most_generous(self) -> None:
        # GIVEN a principal that matches both the analytics rule (first) and the role rule (second)
        principal = "AROAQXZEXAMPLEROLEID1:analytics-adhoc"

        # THEN the first rule's narrower allow-list is the one in force
        assert restricted_config().models_for(principal) == [
            "us.amazon.nova-lite-v1:0",
            "us.amazon.nova-micro-v1:0",
        ]
        with pytest.raises(ModelNotAllowedForCaller):
            route(make_request(model="claude"), principal, restricted_config())

    def test_patterns_are_case_sensitive(self) -> None:
        assert restricted_config().models_for("aroaabcdefghijklmnopq:analytics-x") == []

    def test_allow_lists_only_ever_name_approved_models(self) -> None:
        config = RoutingConfig.model_validate(
            {
                "models": {"a.model-v1": {}},
                "callers": [{"principal": "*", "allow": ["a.*", "b.not-approved"]}],
            }
        )

        assert config.models_for("anyone") == ["a.model-v1"]


def test_the_routing_config_refuses_unknown_fields() -> None:
    data: dict[str, Any] = {"models": {}, "callers": [], "model_aliases": {}}

    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        RoutingConfig.model_validate(data)


class TestEstimateCost:
    def test_input_and_output_tokens_are_priced_per_thousand(self) -> None:
        cost = estimate_cost(
            load_default_routing(),
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            Usage(input_tokens=2000, output_tokens=500),
        )

        assert cost == pytest.approx(2 * 0.003 + 0.5 * 0.015)

    def test_cost_is_rounded_to_eight_places(self) -> None:
        # GIVEN one input token of a model priced at 0.000035 USD per 1k: 0.000000035 USD unrounded
        unrounded = 0.000035 / 1000

        cost = estimate_cost(load_default_routing(), "us.amazon.nova-micro-v1:0", Usage(input_tokens=1))

        assert cost != unrounded
        assert cost == round(cost, 8) == pytest.approx(unrounded, abs=0.5e-8)

    def test_an_unpriced_or_unknown_model_costs_nothing(self) -> None:
        usage = Usage(input_tokens=1000, output_tokens=1000)

        assert estimate_cost(restricted_config(), "us.amazon.nova-micro-v1:0", usage) == 0.0
        assert estimate_cost(load_default_routing(), "not.a-model", usage) == 0.0

    def test_no_tokens_no_cost(self) -> None:
        assert estimate_cost(load_default_routing(), "us.amazon.nova-lite-v1:0", Usage()) == 0.0
