"""Fallbacks along a route's hops, the shared circuit breaker, the route step's hops and the partition
policy in the classify step, and what lineage records of them."""

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.circuit_table import DynamoCircuitTable
from xpi.domain.circuit import BreakerSettings, CircuitState, circuit_key, is_open, opens_now
from xpi.domain.errors import (
    BedrockAnswerLost,
    BedrockRejected,
    BedrockThrottled,
    BedrockUnavailable,
    ClearanceRefused,
    CredentialsRejected,
    CredentialsUnavailable,
    ModelNotAllowedForCaller,
    QuotaExhausted,
)
from xpi.domain.outcome import lineage_item, result_detail
from xpi.domain.policy import Policy, load_default_policy
from xpi.domain.routing import RoutingConfig, load_default_routing
from xpi.models.bedrock import ModelAnswer
from xpi.models.workflow import ExecutionInput, Route, RouteHop, Source, Usage
from xpi.services import classification, invocation
from xpi.services.fallback import Breaker, answer_by_route
from xpi.services.routing import route
from xpi.services.validation import validate

from tests.helpers.events import sample_request
from tests.helpers.fakes import (
    FakeBedrockGateway,
    FakeBudgetLedger,
    FakeEventPublisher,
    FakeHashKey,
    FakeObjectStore,
    FakePayloadStore,
)
from tests.unit.xpi.test_access import NOW, _state, plain

MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"
PRO = "us.amazon.nova-pro-v1:0"
GOV = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CALLER = "AIDACALLER"
GOV_REGION, GOV_ENDPOINT = "us-gov-west-1", "https://bedrock-runtime.us-gov-west-1.amazonaws.com"


def three_hops() -> Route:
    return Route(
        model_id=MICRO,
        region="us-east-1",
        endpoint="",
        api="converse",
        strategy="chain",
        fallbacks=[
            RouteHop(model_id=LITE, region="us-east-1", endpoint=""),
            RouteHop(model_id=PRO, region="us-west-2", endpoint=""),
        ],
    )


@dataclass
class ScriptedCalls:
    """Raises the scripted error for a model (once each), answers otherwise; remembers each call."""

    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __call__(self, hop: Route) -> ModelAnswer:
        self.calls.append(hop.model_id)
        assert hop.fallbacks is None  # each call is one hop
        error = self.errors.pop(hop.model_id, None)
        if error is not None:
            raise error
        return ModelAnswer(
            text="ok", usage=Usage(input_tokens=1, output_tokens=1), latency_ms=1, credential_version="v"
        )


@dataclass
class FakeCircuitTable:
    states: dict[str, CircuitState] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def read(self, key: str) -> CircuitState | None:
        return self.states.get(key)

    def failed(self, key: str, now: float, settings: BreakerSettings) -> None:
        self.writes.append(f"failed {key}")
        before = self.states.get(key)
        failures = (before.failures if before else 0) + 1
        opened = now if opens_now(failures, before, now, settings) else (before.opened_at if before else None)
        self.states[key] = CircuitState(failures, opened)

    def closed(self, key: str) -> None:
        self.writes.append(f"closed {key}")
        self.states[key] = CircuitState()


# ------------------------------------------------------------------ fallbacks
@pytest.mark.parametrize(
    "error",
    [
        BedrockThrottled("t", bedrock_code="ThrottlingException"),
        BedrockUnavailable("u", bedrock_code="ServiceUnavailableException"),
        BedrockUnavailable("connect failed"),
        QuotaExhausted("paced"),
        BedrockRejected("not enabled", bedrock_code="AccessDeniedException"),
        BedrockRejected("not offered", bedrock_code="ResourceNotFoundException"),
        CredentialsUnavailable("the secret cannot be read"),
        CredentialsRejected("refused", bedrock_code="UnrecognizedClientException"),
    ],
)
def test_a_hop_that_surely_did_not_answer_moves_the_request_on(error: Exception) -> None:
    calls = ScriptedCalls({MICRO: error})
    answered = answer_by_route(three_hops(), calls)
    assert calls.calls == [MICRO, LITE]  # one call per hop, none after the answer
    assert answered.hop.model_id == LITE
    assert [(h.model_id, h.outcome) for h in answered.hops] == [
        (MICRO, getattr(error, "bedrock_code", None) or type(error).code),
        (LITE, "answered"),
    ]


@pytest.mark.parametrize(
    "error",
    [
        BedrockAnswerLost("sent, answer lost"),  # may have been billed: never a second paid answer
        BedrockRejected("bad request", bedrock_code="ValidationException"),
    ],
)
def test_a_hop_that_may_have_answered_or_was_refused_for_the_request_ends_it(error: Exception) -> None:
    calls = ScriptedCalls({MICRO: error})
    with pytest.raises(type(error)):
        answer_by_route(three_hops(), calls)
    assert calls.calls == [MICRO]


def test_when_every_hop_fails_the_last_error_ends_the_request() -> None:
    calls = ScriptedCalls(
        {
            MICRO: BedrockThrottled("t", bedrock_code="ThrottlingException"),
            LITE: BedrockThrottled("t", bedrock_code="ThrottlingException"),
            PRO: BedrockUnavailable("u", bedrock_code="InternalServerException"),
        }
    )
    with pytest.raises(BedrockUnavailable):
        answer_by_route(three_hops(), calls)
    assert calls.calls == [MICRO, LITE, PRO]


def test_a_route_without_fallbacks_is_called_once_and_never_reads_the_breaker() -> None:
    table = FakeCircuitTable({circuit_key(MICRO, "us-east-1"): CircuitState(9, opened_at=1e12)})
    single = Route(model_id=MICRO, region="us-east-1", endpoint="", api="converse")
    calls = ScriptedCalls({MICRO: BedrockThrottled("t")})
    with pytest.raises(BedrockThrottled):
        answer_by_route(single, calls, Breaker(table, clock=lambda: 1e12))
    assert calls.calls == [MICRO] and table.writes == []


# ------------------------------------------------------------------ circuit breaker
def test_a_hop_whose_circuit_is_open_is_passed_over_and_recorded() -> None:
    table = FakeCircuitTable({circuit_key(MICRO, "us-east-1"): CircuitState(3, opened_at=100.0)})
    calls = ScriptedCalls()
    answered = answer_by_route(three_hops(), calls, Breaker(table, clock=lambda: 110.0))
    assert calls.calls == [LITE]
    assert [(h.model_id, h.outcome) for h in answered.hops] == [(MICRO, "circuit_open"), (LITE, "answered")]
    assert table.writes == []  # a healthy hop answering writes nothing


def test_failures_in_a_row_open_the_circuit_and_an_answer_after_it_reopens_closes_it() -> None:
    settings = BreakerSettings(failures_to_open=2, open_for_s=30)
    table, now = FakeCircuitTable(), [1000.0]
    breaker = Breaker(table, settings, clock=lambda: now[0])
    key = circuit_key(MICRO, "us-east-1")
    for _ in range(2):
        answer_by_route(three_hops(), ScriptedCalls({MICRO: BedrockThrottled("t")}), breaker)
    assert is_open(table.states[key], now[0], settings)

    # WHILE open: skipped
    calls = ScriptedCalls()
    answer_by_route(three_hops(), calls, breaker)
    assert calls.calls == [LITE]

    # ONCE the period is over: tried again (half open), and its answer closes the circuit
    now[0] += 31
    calls = ScriptedCalls()
    answer_by_route(three_hops(), calls, breaker)
    assert calls.calls == [MICRO]
    assert table.states[key] == CircuitState() and table.writes[-1] == f"closed {key}"


def test_every_circuit_open_still_tries_the_hops_and_the_pacers_hold_does_not_count() -> None:
    table = FakeCircuitTable(
        {
            circuit_key(m, r): CircuitState(5, opened_at=100.0)
            for m, r in [(MICRO, "us-east-1"), (LITE, "us-east-1"), (PRO, "us-west-2")]
        }
    )
    calls = ScriptedCalls({MICRO: QuotaExhausted("paced")})
    answered = answer_by_route(three_hops(), calls, Breaker(table, clock=lambda: 101.0))
    assert calls.calls == [MICRO, LITE] and answered.hop.model_id == LITE
    assert f"failed {circuit_key(MICRO, 'us-east-1')}" not in table.writes


def test_a_broken_breaker_never_fails_the_request() -> None:
    class Broken(FakeCircuitTable):
        def read(self, key: str) -> CircuitState | None:
            raise RuntimeError("DynamoDB is out")

        def failed(self, key: str, now: float, settings: BreakerSettings) -> None:
            raise RuntimeError("DynamoDB is out")

    calls = ScriptedCalls({MICRO: BedrockThrottled("t")})
    assert answer_by_route(three_hops(), calls, Breaker(Broken())).hop.model_id == LITE


@mock_aws
def test_the_dynamodb_circuit_counts_opens_once_and_closes() -> None:
    boto3.client("dynamodb", region_name="us-gov-west-1").create_table(
        TableName="pacing",
        KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "bucket", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table, settings, key = (
        DynamoCircuitTable("pacing"),
        BreakerSettings(2, 30),
        circuit_key(MICRO, "us-east-1"),
    )
    table.failed(key, 100.0, settings)
    assert table.read(key) == CircuitState(1, None)
    table.failed(key, 101.0, settings)
    table.failed(key, 102.0, settings)  # already open: its opening time stays
    assert table.read(key) == CircuitState(3, 101.0)
    table.closed(key)
    assert table.read(key) == CircuitState(0, None)


# ------------------------------------------------------------------ the route step and the invoke step
def strategy_routing(**extra: Any) -> RoutingConfig:
    document = load_default_routing().model_dump(mode="json")
    document["routes"] = [
        {
            "name": "chain",
            "models": ["chain"],
            "strategy": {
                "kind": "fallback",
                "targets": [{"model": MICRO}, {"model": GOV}, {"model": PRO, "region": "us-west-2"}],
            },
        }
    ]
    return RoutingConfig.model_validate(document | extra)


def routed(body: dict[str, Any], routing: RoutingConfig, budgets: FakeBudgetLedger | None = None) -> Any:
    state, payloads = _state(body, CALLER, routing)
    state.route = route(
        state,
        region="us-east-1",
        endpoint="https://bedrock-runtime.us-east-1.amazonaws.com",
        budgets=budgets,
        clock=lambda: NOW,
        govcloud_region=GOV_REGION,
        govcloud_endpoint=GOV_ENDPOINT,
    )
    return state, payloads


def test_the_route_step_places_each_hop_in_its_partition_and_region() -> None:
    state, _ = routed(plain(model="chain"), strategy_routing())
    assert (state.route.model_id, state.route.partition, state.route.strategy) == (MICRO, None, "chain")
    assert [(h.model_id, h.partition, h.region, h.endpoint) for h in state.route.fallbacks] == [
        (GOV, "govcloud", GOV_REGION, GOV_ENDPOINT),
        (PRO, "commercial", "us-west-2", "https://bedrock-runtime.us-west-2.amazonaws.com"),
    ]


def test_the_route_step_drops_hops_the_caller_may_not_use_and_refuses_when_none_is_left() -> None:
    document = strategy_routing().model_dump(mode="json")
    document["callers"] = [{"principal": CALLER, "allow": [PRO]}]
    state, _ = routed(plain(model="chain"), RoutingConfig.model_validate(document))
    assert (state.route.model_id, state.route.fallbacks) == (PRO, None)
    document["callers"] = [{"principal": CALLER, "allow": [LITE]}]
    with pytest.raises(ModelNotAllowedForCaller):
        routed(plain(model="chain"), RoutingConfig.model_validate(document))


def test_a_budget_reserves_what_the_dearest_hop_may_cost() -> None:
    document = strategy_routing().model_dump(mode="json")
    document["callers"] = [{"principal": CALLER, "allow": ["*"], "budget": {"usd_per_day": 100}}]
    ledger = FakeBudgetLedger()
    state, _ = routed(plain(model="chain", max_tokens=1000), RoutingConfig.model_validate(document), ledger)
    pro = document["models"][PRO]
    assert state.route.budget[0].usd >= 1000 * pro["usd_per_1k_output_tokens"] / 1000


def test_cui_is_sent_as_it_is_to_the_govcloud_native_model_only() -> None:
    # GIVEN CUI asking for the route whose first hop is commercial
    body = {"request_id": "cui-1", "model": "chain", "prompt": "CUI//SP-PRVCY\nThe roster."}
    state, payloads = routed(body, strategy_routing())

    # THEN the classify step let it through (in partition only) and the route keeps the GovCloud hop alone
    assert state.classification.decision == "allow" and "cui.specified" in state.classification.categories
    assert (state.route.model_id, state.route.partition, state.route.fallbacks) == (GOV, "govcloud", None)

    # AND the invoke step calls GovCloud's Bedrock, and lineage says so, with no commercial region
    gateway = FakeBedrockGateway()
    state.response = invocation.invoke_model(
        state, gateway, FakeObjectStore(), 32_768, payloads=payloads, hash_key=FakeHashKey()
    )
    [(called, _)] = gateway.calls
    assert (called.partition, called.region) == ("govcloud", GOV_REGION)
    item = lineage_item(state, result_detail(state, NOW))
    assert (item.partition, item.model_id, item.commercial_region, item.commercial_endpoint) == (
        "govcloud",
        GOV,
        None,
        None,
    )


def test_cui_asking_for_a_commercial_model_stays_blocked() -> None:
    body = {"request_id": "cui-2", "model": "default", "prompt": "CUI//SP-PRVCY\nThe roster."}
    state, _ = _state(body, CALLER, strategy_routing())
    assert state.classification.decision == "block"


def test_cui_beside_a_classification_marking_stays_blocked() -> None:
    body = {
        "request_id": "cui-3",
        "model": "govcloud",
        "prompt": "SECRET//NOFORN\nCUI//SP-PRVCY\nThe roster.",
    }
    state, _ = _state(body, CALLER, strategy_routing())
    assert state.classification.decision == "block"


def test_cui_routed_where_govcloud_has_no_model_left_for_the_caller_is_refused_never_sent() -> None:
    document = strategy_routing().model_dump(mode="json")
    document["callers"] = [{"principal": CALLER, "allow": [MICRO, PRO]}]
    body = {"request_id": "cui-4", "model": "chain", "prompt": "CUI//SP-PRVCY\nThe roster."}
    with pytest.raises((ClearanceRefused, ModelNotAllowedForCaller)):
        routed(body, RoutingConfig.model_validate(document))


def test_lineage_and_the_event_name_the_hop_that_answered_and_every_hop_tried() -> None:
    # GIVEN a request on the chain whose first hop is throttled
    state, payloads = routed(plain(model="chain"), strategy_routing())

    class FirstThrottled(FakeBedrockGateway):
        def answer(self, route: Route, request: Any) -> ModelAnswer:
            if route.model_id == MICRO:
                self.calls.append((route, request))
                raise BedrockThrottled("t", bedrock_code="ThrottlingException")
            return super().answer(route, request)

    gateway = FirstThrottled()
    state.response = invocation.invoke_model(
        state, gateway, FakeObjectStore(), 32_768, payloads=payloads, hash_key=FakeHashKey()
    )

    # THEN one call per hop, and lineage and the event name the GovCloud hop that answered
    assert [r.model_id for r, _ in gateway.calls] == [MICRO, GOV]
    detail = result_detail(state, NOW)
    item = lineage_item(state, detail)
    assert (item.model_id, item.partition, item.route_strategy) == (GOV, "govcloud", "chain")
    assert [(h.model_id, h.outcome) for h in item.route_hops or []] == [
        (MICRO, "ThrottlingException"),
        (GOV, "answered"),
    ]
    assert detail.model.resolved == GOV and detail.model.region is None


def test_a_strategy_never_reaches_a_model_the_policy_would_handle_the_content_more_strictly_for() -> None:
    # GIVEN a policy that blocks PII for Lite (redacts it elsewhere), and the chain MICRO -> GOV -> PRO with
    # LITE added last
    policy = Policy.model_validate(
        load_default_policy().model_dump(mode="json")
        | {
            "model_rules": [
                {"name": "no-pii-to-lite", "models": [LITE], "categories": ["pii.*"], "action": "block"}
            ]
        }
    )
    document = strategy_routing().model_dump(mode="json")
    document["routes"][0]["strategy"]["targets"].append({"model": LITE})
    routing = RoutingConfig.model_validate(document)
    payloads, key = FakePayloadStore(), FakeHashKey()
    body = sample_request("pii-redact") | {"model": "chain"}
    stored = json.dumps(body).encode()
    execution = ExecutionInput(
        payload=payloads.put("pii/x.json", stored),
        source=Source(kind="sqs", principal=CALLER, reference="m", received_at=NOW),
        execution="pii",
        started_at=NOW.isoformat(),
    )
    state = validate(execution, payloads=payloads, hash_key=key, now=NOW, retention_days=30)

    # WHEN classified (redact, judged for the requested model) and routed
    state = classification.classify(
        state,
        policy=policy,
        detectors=(),
        routing=routing,
        events=FakeEventPublisher(),
        payloads=payloads,
        hash_key=key,
        clock=lambda: NOW,
    )
    routed = route(state, region="us-east-1", endpoint="", govcloud_region=GOV_REGION, govcloud_endpoint="")

    # THEN Lite, for which the policy would have blocked it, is no hop of the route
    assert state.classification is not None and state.classification.decision == "redact"
    assert LITE not in (state.classification.models or [])
    assert [routed.model_id, *(h.model_id for h in routed.fallbacks or [])] == [MICRO, GOV, PRO]
