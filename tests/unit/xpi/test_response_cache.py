"""The exact-match response cache and Bedrock prompt caching's prices, against in-memory fakes."""

from typing import Any

import pytest
from pydantic import ValidationError
from xpi.domain.outcome import lineage_item, result_detail
from xpi.domain.policy import load_default_policy
from xpi.domain.pricing import price_table
from xpi.domain.routing import RoutingConfig, estimate_cost, load_default_routing
from xpi.models.request import InferenceRequest
from xpi.models.workflow import BudgetCharge, Route, Usage, WorkflowState
from xpi.services import classification, invocation
from xpi.services.invocation import CACHE_CREDENTIAL

from tests.helpers.events import PAYLOADS, make_state
from tests.helpers.fakes import (
    FakeBedrockGateway,
    FakeBudgetLedger,
    FakeEventPublisher,
    FakeHashKey,
    FakeObjectStore,
    FakeResponseCache,
)

MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
NOW = 1_765_000_000.0
PROMPT = "List the three stages of the agency's change-control procedure."


def routing(**caller: Any) -> RoutingConfig:
    document = load_default_routing().model_dump(mode="json", exclude_none=True)
    document["callers"] = [{"principal": "*", "allow": ["*"], **caller}]
    return RoutingConfig.model_validate(document)


def routed(
    request: dict[str, Any], *, config: RoutingConfig | None = None, project: str | None = None
) -> WorkflowState:
    body = {"request_id": "req-cache-0001", "model": MODEL, "prompt": PROMPT, **request}
    state = classification.classify(
        make_state(body),
        policy=load_default_policy(),
        detectors=(),
        routing=config or routing(),
        events=FakeEventPublisher(),
        payloads=PAYLOADS,
        hash_key=FakeHashKey(),
    )
    state.route = Route(model_id=MODEL, region="us-east-1", endpoint="", api="converse", project=project)
    return state


def invoke(
    state: WorkflowState, gateway: FakeBedrockGateway, cache: Any, now: float = NOW, **more: Any
) -> Any:
    return invocation.invoke_model(
        state,
        gateway,
        FakeObjectStore(),
        32_768,
        payloads=PAYLOADS,
        hash_key=FakeHashKey(),
        cache=cache,
        now=lambda: now,
        **more,
    )


DETERMINISTIC = {"inference": {"temperature": 0}, "cache": {"ttl_s": 600}}


class TestResponseCache:
    def test_a_repeated_deterministic_request_is_answered_from_the_cache_without_bedrock(self) -> None:
        # GIVEN a deterministic request that asks for the cache, answered once by Bedrock
        cache, gateway = FakeResponseCache(), FakeBedrockGateway(answer_text="Draft, review, approve.")
        first = invoke(routed(DETERMINISTIC), gateway, cache)
        # WHEN the same request comes again within the TTL
        state = routed({**DETERMINISTIC, "request_id": "req-cache-0002"})
        second = invoke(state, gateway, cache, now=NOW + 599)
        # THEN Bedrock was called once; the second answer is the first's, free, with what it saved
        assert len(gateway.calls) == 1
        assert first.cache.status == "miss" and first.estimated_cost_usd > 0
        assert second.output_text == "Draft, review, approve."
        assert second.output_hmac == first.output_hmac
        assert second.cache.status == "hit" and second.cache.saved_usd == first.estimated_cost_usd
        assert second.usage == Usage() and second.estimated_cost_usd == 0.0
        assert second.credential_version == CACHE_CREDENTIAL

    def test_a_hit_is_recorded_in_lineage_and_the_result_event_with_the_cost_saved(self) -> None:
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        first = invoke(routed(DETERMINISTIC), gateway, cache)
        state = routed({**DETERMINISTIC, "request_id": "req-cache-0002"})
        state.response = invoke(state, gateway, cache)
        from datetime import UTC, datetime

        detail = result_detail(state, completed_at=datetime.now(UTC))
        item = lineage_item(state, detail)
        assert item.cache is not None and item.cache.status == "hit"
        assert item.cache.saved_usd == str(first.estimated_cost_usd)
        assert item.estimated_cost_usd == "0.0"
        assert detail.usage is not None and detail.usage.cache == "hit"
        assert detail.usage.saved_usd == first.estimated_cost_usd

    def test_an_expired_answer_is_a_miss(self) -> None:
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        invoke(routed(DETERMINISTIC), gateway, cache)
        again = invoke(
            routed({**DETERMINISTIC, "request_id": "req-cache-0002"}), gateway, cache, now=NOW + 600
        )
        assert len(gateway.calls) == 2 and again.cache.status == "miss"

    @pytest.mark.parametrize(
        "change",
        [
            {"prompt": PROMPT + " Briefly."},  # another request
            {"inference": {"temperature": 0, "max_tokens": 99}},  # other settings
        ],
    )
    def test_another_request_is_a_miss(self, change: dict[str, Any]) -> None:
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        invoke(routed(DETERMINISTIC), gateway, cache)
        invoke(routed({**DETERMINISTIC, **change, "request_id": "req-cache-0002"}), gateway, cache)
        assert len(gateway.calls) == 2

    def test_another_model_policy_or_project_never_shares_an_answer(self) -> None:
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        invoke(routed(DETERMINISTIC), gateway, cache)
        other_model = routed(DETERMINISTIC)
        assert other_model.route is not None
        other_model.route = other_model.route.model_copy(update={"model_id": "us.amazon.nova-lite-v1:0"})
        other_policy = routed(DETERMINISTIC)
        assert other_policy.config is not None
        other_policy.config = other_policy.config.model_copy(update={"policy_sha256": "0" * 64})
        other_project = routed(DETERMINISTIC, project="records")
        for state in (other_model, other_policy, other_project):
            assert invoke(state, gateway, cache).cache.status == "miss"
        assert len(gateway.calls) == 4

    def test_the_key_is_a_keyed_hash_and_the_cache_holds_no_request_text(self) -> None:
        cache = FakeResponseCache()
        invoke(routed(DETERMINISTIC), FakeBedrockGateway(), cache)
        ((key, answer),) = cache.items.items()
        assert len(key) == 64 and PROMPT not in answer.model_dump_json()
        assert answer.expires_at == int(NOW) + 600 and answer.first_request_id == "req-cache-0001"

    def test_a_request_that_asks_for_the_cache_must_be_deterministic(self) -> None:
        for inference in ({}, {"temperature": 0.7}):
            with pytest.raises(
                ValidationError, match=r"deterministic requests: inference\.temperature must be 0"
            ):
                InferenceRequest.model_validate(
                    {"model": MODEL, "prompt": PROMPT, "inference": inference, "cache": {"ttl_s": 60}}
                )
        with pytest.raises(ValidationError, match="Converse only"):
            InferenceRequest.model_validate(
                {"model": MODEL, "api": "invoke_model", "body": {"inputText": PROMPT}, "cache": {"ttl_s": 60}}
            )

    def test_a_callers_cache_bypasses_a_non_deterministic_request_with_its_reason(self) -> None:
        # GIVEN a caller whose rule caches its requests, sending one at temperature 0.7
        config = routing(cache_ttl_s=300)
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        for _ in range(2):
            response = invoke(routed({"inference": {"temperature": 0.7}}, config=config), gateway, cache)
            # THEN Bedrock answers each, nothing is stored, and the response says why
            assert response.cache.status == "bypass"
            assert response.cache.reason == "inference.temperature must be 0"
        assert len(gateway.calls) == 2 and not cache.items

    def test_a_callers_cache_applies_to_its_deterministic_requests(self) -> None:
        config = routing(cache_ttl_s=300)
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        invoke(routed({"inference": {"temperature": 0}}, config=config), gateway, cache)
        again = invoke(routed({"inference": {"temperature": 0}}, config=config), gateway, cache)
        assert again.cache.status == "hit" and again.cache.ttl_s == 300 and len(gateway.calls) == 1

    def test_no_cache_asked_for_records_nothing(self) -> None:
        cache, gateway = FakeResponseCache(), FakeBedrockGateway()
        response = invoke(routed({"inference": {"temperature": 0}}), gateway, cache)
        assert response.cache is None and not cache.items and cache.gets == 0

    def test_a_deployment_without_a_cache_answers_and_says_so(self) -> None:
        response = invoke(routed(DETERMINISTIC), FakeBedrockGateway(), None)
        assert response.cache.status == "bypass"
        assert response.cache.reason == "no response cache in this deployment"

    def test_a_cache_out_of_reach_never_fails_the_request(self) -> None:
        gateway = FakeBedrockGateway()
        response = invoke(routed(DETERMINISTIC), gateway, FakeResponseCache(broken=True))
        assert response.output_text and len(gateway.calls) == 1 and response.cache.status == "miss"

    def test_a_hit_releases_the_budget_reservation(self) -> None:
        # GIVEN a stored answer and a request that reserved 500 tokens and $0.01 on its caller's budget
        cache, gateway, budgets = FakeResponseCache(), FakeBedrockGateway(), FakeBudgetLedger()
        invoke(routed(DETERMINISTIC), gateway, cache)
        state = routed(DETERMINISTIC)
        assert state.route is not None
        reserved = BudgetCharge(item="caller:*#2025-12-05", tokens=500, usd=0.01, expires_at=2)
        state.route = state.route.model_copy(update={"budget": [reserved]})
        budgets.usage[reserved.item] = (500, 0.01)
        # WHEN it is answered from the cache
        invoke(state, gateway, cache, budgets=budgets)
        # THEN the whole reservation is given back
        assert budgets.usage[reserved.item] == (0, 0.0)


class TestPromptCachingPrices:
    def test_cached_tokens_are_priced_at_the_price_tables_cache_prices(self) -> None:
        usage = Usage(
            input_tokens=100, output_tokens=50, cache_read_input_tokens=2000, cache_write_input_tokens=1000
        )
        line = price_table().models[MODEL]
        assert line.cache_read is not None and line.cache_write is not None
        expected = (100 * 0.0008 + 50 * 0.004 + 2000 * line.cache_read + 1000 * line.cache_write) / 1000
        assert estimate_cost(load_default_routing(), MODEL, usage) == round(expected, 8)
        # a read costs a tenth of the input price for this model
        assert line.cache_read == pytest.approx(0.0008 / 10)

    def test_the_routing_documents_cache_prices_win(self) -> None:
        document = load_default_routing().model_dump(mode="json", exclude_none=True)
        document["models"][MODEL]["usd_per_1k_cache_read_input_tokens"] = 0.0
        document["models"][MODEL]["usd_per_1k_cache_write_input_tokens"] = 0.0
        config = RoutingConfig.model_validate(document)
        usage = Usage(cache_read_input_tokens=5000, cache_write_input_tokens=5000)
        assert estimate_cost(config, MODEL, usage) == 0.0

    def test_a_model_without_cache_prices_is_charged_the_input_price(self) -> None:
        model = "meta.llama3-8b-instruct-v1:0"
        usage = Usage(cache_read_input_tokens=1000)
        assert estimate_cost(load_default_routing(), model, usage) == pytest.approx(0.0003)

    def test_every_price_line_has_a_source_and_a_date_and_every_approved_model_a_line(self) -> None:
        table = price_table()
        assert set(load_default_routing().models) <= set(table.models)
        for line in table.models.values():
            assert line.source.startswith("https://") and line.as_of

    def test_cache_points_pass_through_to_converse(self) -> None:
        from xpi.domain.payload import converse_arguments

        request = InferenceRequest.model_validate(
            {
                "model": MODEL,
                "system": ["You answer for the records office.", {"cachePoint": {"type": "default"}}],
                "messages": [
                    {
                        "role": "user",
                        "content": [{"text": "Policy text"}, {"cachePoint": {"type": "default"}}],
                    }
                ],
            }
        )
        arguments = converse_arguments(request)
        assert arguments["system"] == [
            {"text": "You answer for the records office."},
            {"cachePoint": {"type": "default"}},
        ]
        assert arguments["messages"][0]["content"][1] == {"cachePoint": {"type": "default"}}
