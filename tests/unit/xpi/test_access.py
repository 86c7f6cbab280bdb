"""Fine-grained permissions (xpi.domain.access, applied by xpi.domain.routing.decide and the route step):
project, model allow-list, clearance and daily budgets, decided before Bedrock; the queue path and the
sync path refuse alike, lineage names the refusal, GET /v1/models shows the grant."""

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from xpi.adapters.budget_table import DynamoBudgetLedger
from xpi.domain.access import (
    Budget,
    Charge,
    Clearance,
    Refusal,
    Refused,
    cleared,
    fits,
    remaining,
    usage_expires_at,
)
from xpi.domain.errors import (
    BudgetExhausted,
    ClearanceRefused,
    InternalError,
    ModelNotAllowedForCaller,
    ProjectNotAllowed,
    RequestInvalid,
)
from xpi.domain.policy import load_default_policy
from xpi.domain.routing import RoutingConfig, decide, grant_for, load_default_routing
from xpi.models.request import InferenceRequest
from xpi.models.workflow import BudgetCharge, ExecutionInput, Source, WorkflowState
from xpi.services import api, classification, invocation, sync_invoke
from xpi.services.recording import record_outcome
from xpi.services.routing import route, settlement
from xpi.services.validation import validate

from tests.helpers.events import sample_request
from tests.helpers.fakes import (
    FakeBedrockGateway,
    FakeBudgetLedger,
    FakeEventPublisher,
    FakeHashKey,
    FakeLineageStore,
    FakeObjectStore,
    FakePayloadStore,
    FakeSyncLedger,
)

NOW = datetime(2025, 3, 12, 14, 5, 12, 7000, tzinfo=UTC)
TODAY = NOW.date()
NARROW_ARN = "arn:aws-us-gov:iam::123456789012:user/narrow"
NARROW_ID = "AIDANARROW"  # the same caller's aws:userid, as SQS gives it (SenderId)
OTHER = "arn:aws-us-gov:iam::123456789012:user/alice"
MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"


def access_routing(**changes: Any) -> RoutingConfig:
    """The shipped routing with a narrow caller (by ARN and by its unique id: one caller) in project
    'benefits', everyone else as shipped."""
    document = load_default_routing().model_dump(mode="json")
    narrow = {
        "name": "narrow",
        "allow": [MICRO, LITE],
        "projects": ["benefits", "it-service-desk"],
        "clearance": [{"category": "pii.*", "send": "redacted", "models": [MICRO]}],
    } | changes.pop("narrow", {})
    document["callers"] = [
        {"principal": NARROW_ARN} | narrow,
        {"principal": NARROW_ID} | narrow,
        *document["callers"],
    ]
    document["projects"] = {
        "benefits": {"allow": [MICRO]},
        "it-service-desk": {},
    } | changes.pop("projects", {})
    return RoutingConfig.model_validate(document | changes)


# ------------------------------------------------------------------------------ domain
def test_a_caller_outside_the_requests_project_is_refused() -> None:
    decision = decide(
        access_routing(), NARROW_ARN, project="apollo", model_id=MICRO, categories={}, actions={}
    )
    assert isinstance(decision, Refused) and decision.reason is Refusal.PROJECT


def test_the_project_narrows_the_callers_allow_list() -> None:
    # GIVEN a caller allowed micro and lite, in a project allowed micro only
    config = access_routing()
    # THEN acting for that project lite is refused, micro is not; for its other project both are allowed
    refused = decide(config, NARROW_ARN, project="benefits", model_id=LITE, categories={}, actions={})
    assert isinstance(refused, Refused) and refused.reason is Refusal.MODEL
    assert not isinstance(
        decide(config, NARROW_ARN, project="benefits", model_id=MICRO, categories={}, actions={}), Refused
    )
    assert not isinstance(
        decide(config, NARROW_ARN, project="it-service-desk", model_id=LITE, categories={}, actions={}),
        Refused,
    )


def test_without_a_project_claimed_the_callers_first_project_applies() -> None:
    grant = grant_for(access_routing(), NARROW_ID, None)
    assert not isinstance(grant, Refused) and grant.project == "benefits" and grant.models == {MICRO}


def test_a_caller_bound_to_no_project_keeps_the_requests_project_as_metadata_only() -> None:
    grant = grant_for(access_routing(), OTHER, "anything")
    assert not isinstance(grant, Refused) and grant.project is None and not grant.limits


@pytest.mark.parametrize(
    ("categories", "actions", "model_id", "refused"),
    [
        ({}, {}, LITE, False),  # nothing found: nothing to clear
        ({"pii.ssn": 1}, {"pii.ssn": "redact"}, MICRO, False),  # redacted, to a cleared model
        ({"pii.ssn": 1}, {"pii.ssn": "allow"}, MICRO, True),  # cleared only redacted, sent as it is
        ({"pii.ssn": 1}, {"pii.ssn": "redact"}, LITE, True),  # cleared, but not to this model
        ({"export.itar": 1}, {"export.itar": "redact"}, MICRO, True),  # not cleared at all
    ],
)
def test_the_clearance_decides_what_may_be_sent_how_and_where(
    categories: dict[str, int], actions: dict[str, str], model_id: str, refused: bool
) -> None:
    config = access_routing(projects={"it-service-desk": {}})
    decision = decide(
        config,
        NARROW_ARN,
        project="it-service-desk",
        model_id=model_id,
        categories=categories,
        actions=actions,
    )
    assert isinstance(decision, Refused) is refused
    if refused:
        assert isinstance(decision, Refused) and decision.reason is Refusal.CLEARANCE


def test_never_refuses_a_category_even_redacted() -> None:
    config = access_routing(
        narrow={
            "clearance": [{"category": "pii.*", "send": "as_is"}, {"category": "export.*", "send": "never"}]
        }
    )
    decision = decide(
        config,
        NARROW_ARN,
        project="it-service-desk",
        model_id=MICRO,
        categories={"export.itar": 1},
        actions={"export.itar": "redact"},
    )
    assert isinstance(decision, Refused) and decision.reason is Refusal.CLEARANCE


def test_a_project_naming_an_undefined_project_does_not_validate() -> None:
    document = load_default_routing().model_dump(mode="json")
    document["callers"].insert(0, {"principal": "x", "allow": ["*"], "projects": ["nowhere"]})
    with pytest.raises(ValueError, match="undefined projects"):
        RoutingConfig.model_validate(document)


CATEGORIES = st.sampled_from(["pii.ssn", "pii.email", "export.itar", "cui.banner", "content.uninspectable"])
CLEARANCE = st.builds(
    Clearance,
    category=st.sampled_from(["*", "pii.*", "export.*", "pii.ssn", "cui.*"]),
    send=st.sampled_from(["as_is", "redacted", "never"]),
    models=st.lists(st.sampled_from(["*", MICRO, LITE, "us.amazon.*"]), min_size=1, max_size=2),
)
LEVEL = st.lists(CLEARANCE, max_size=4).map(tuple)


@settings(max_examples=300, deadline=None)
@given(
    levels=st.lists(LEVEL, max_size=3).map(tuple),
    extra=LEVEL,
    category=CATEGORIES,
    action=st.sampled_from(["allow", "redact"]),
    model_id=st.sampled_from([MICRO, LITE]),
)
def test_a_further_level_of_clearance_never_clears_more(
    levels: tuple[tuple[Clearance, ...], ...],
    extra: tuple[Clearance, ...],
    category: str,
    action: str,
    model_id: str,
) -> None:
    # A project's clearance narrows its members': with one more level, what was refused stays refused.
    if not cleared(levels, category, action, model_id):
        assert not cleared((*levels, extra), category, action, model_id)


@settings(max_examples=300, deadline=None)
@given(
    levels=st.lists(LEVEL, max_size=3).map(tuple),
    category=CATEGORIES,
    model_id=st.sampled_from([MICRO, LITE]),
)
def test_what_may_go_as_it_is_may_go_redacted(
    levels: tuple[tuple[Clearance, ...], ...], category: str, model_id: str
) -> None:
    if cleared(levels, category, "allow", model_id):
        assert cleared(levels, category, "redact", model_id)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(0, 5_000),
    usd_limit=st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
    requests=st.lists(st.tuples(st.integers(1, 900), st.floats(0, 0.3, allow_nan=False)), max_size=40),
)
def test_reservations_never_take_a_budget_past_its_limit(
    limit: int, usd_limit: float | None, requests: list[tuple[int, float]]
) -> None:
    # GIVEN a budget and any sequence of requests reserving against it (the ledger's atomic check)
    ledger = FakeBudgetLedger()
    item = "caller#narrow#2025-03-12"
    admitted = 0
    for tokens, usd in requests:
        charge = Charge(item, tokens, usd, usage_expires_at(TODAY), tokens_limit=limit, usd_limit=usd_limit)
        used_before = ledger.usage.get(item, (0, 0.0))
        ok = ledger.reserve([charge])
        # THEN a refusal is only ever for a request that would not have fit
        assert ok is fits(charge, *used_before)
        admitted += ok
    tokens_used, usd_used = ledger.usage.get(item, (0, 0.0))
    assert tokens_used <= limit
    assert usd_limit is None or usd_used <= usd_limit + 1e-6
    left_tokens, _ = remaining(Budget(tokens_per_day=limit, usd_per_day=usd_limit), tokens_used, usd_used)
    assert left_tokens == limit - tokens_used


def test_two_budgets_are_reserved_together_or_not_at_all() -> None:
    ledger = FakeBudgetLedger()
    expires = usage_expires_at(TODAY)
    ledger.usage["project#benefits#2025-03-12"] = (950, 0.0)
    caller = Charge("caller#narrow#2025-03-12", 100, 0.0, expires, tokens_limit=10_000)
    project = Charge("project#benefits#2025-03-12", 100, 0.0, expires, tokens_limit=1_000)
    assert not ledger.reserve([caller, project])
    assert "caller#narrow#2025-03-12" not in ledger.usage


def test_a_days_usage_is_kept_two_days_past_its_day() -> None:
    assert usage_expires_at(date(2025, 3, 12)) == int(datetime(2025, 3, 15, tzinfo=UTC).timestamp())


# ------------------------------------------------------------------------------ the route step
def _state(
    body: dict[str, Any], principal: str, routing: RoutingConfig, kind: str = "sqs"
) -> tuple[WorkflowState, FakePayloadStore]:
    """A request validated and classified (the workflow's first steps), carrying `routing`."""
    payloads, key = FakePayloadStore(), FakeHashKey()
    request = InferenceRequest.model_validate(body)
    source = Source(kind=kind, principal=principal, reference="msg-1", received_at=NOW)  # type: ignore[arg-type]
    stored = json.dumps(request.model_dump(mode="json", exclude_none=True)).encode()
    execution = ExecutionInput(
        payload=payloads.put(f"{request.request_id}/x.json", stored),
        source=source,
        execution=request.request_id,
        started_at=NOW.isoformat(),
    )
    state = validate(execution, payloads=payloads, hash_key=key, now=NOW, retention_days=30)
    state = classification.classify(
        state,
        policy=load_default_policy(),
        detectors=(),
        routing=routing,
        events=FakeEventPublisher(),
        payloads=payloads,
        hash_key=key,
        clock=lambda: NOW,
    )
    return state, payloads


def plain(model: str = "fast", project: str | None = None, max_tokens: int = 400) -> dict[str, Any]:
    body = sample_request("plain-prompt") | {"model": model}
    body["caller"] = {"project": project} if project else {}
    body["inference"] = {"max_tokens": max_tokens}
    return body


def test_the_route_step_refuses_with_the_refusals_error() -> None:
    config = access_routing()
    for body, error in [
        (plain(model="default", project="benefits"), ModelNotAllowedForCaller),  # lite, not in benefits
        (plain(project="apollo"), ProjectNotAllowed),
        (
            sample_request("pii-redact") | {"caller": {"project": "it-service-desk"}, "model": "default"},
            ClearanceRefused,
        ),
    ]:
        state, _ = _state(body, NARROW_ID, config)
        with pytest.raises(error):
            route(state, region="us-east-1", endpoint="", budgets=FakeBudgetLedger())


def test_a_route_without_budgets_makes_no_budget_call() -> None:
    ledger = FakeBudgetLedger()
    state, _ = _state(plain(project="benefits"), NARROW_ID, access_routing())
    routed = route(state, region="us-east-1", endpoint="", budgets=ledger)
    assert routed.model_id == MICRO and routed.project == "benefits" and routed.budget is None
    assert ledger.calls == []


def test_the_route_reserves_the_callers_and_projects_budgets_in_one_call() -> None:
    # GIVEN a caller budget and a project budget
    config = access_routing(
        narrow={"budget": {"tokens_per_day": 100_000}},
        projects={"benefits": {"allow": [MICRO], "budget": {"usd_per_day": 5.0}}},
    )
    ledger = FakeBudgetLedger()
    state, _ = _state(plain(project="benefits", max_tokens=400), NARROW_ID, config)

    # WHEN routed
    routed = route(state, region="us-east-1", endpoint="", budgets=ledger, clock=lambda: NOW)

    # THEN both are reserved together: the input estimate (a token per four bytes) and max_tokens
    assert ledger.calls == ["reserve"]
    assert routed.budget is not None
    assert [c.item for c in routed.budget] == ["caller#narrow#2025-03-12", "project#benefits#2025-03-12"]
    tokens = -(-state.payload.bytes // 4) + 400
    assert {c.tokens for c in routed.budget} == {tokens}
    assert ledger.usage["caller#narrow#2025-03-12"][0] == tokens


def test_a_spent_budget_refuses_before_bedrock() -> None:
    config = access_routing(narrow={"budget": {"tokens_per_day": 1_000}})
    ledger = FakeBudgetLedger()
    ledger.usage["caller#narrow#2025-03-12"] = (900, 0.0)
    state, _ = _state(plain(project="benefits"), NARROW_ARN, config, kind="api")
    with pytest.raises(BudgetExhausted):
        route(state, region="us-east-1", endpoint="", budgets=ledger, clock=lambda: NOW)
    assert ledger.usage["caller#narrow#2025-03-12"] == (900, 0.0)


def test_a_budget_without_a_table_fails_closed() -> None:
    state, _ = _state(
        plain(project="benefits"), NARROW_ID, access_routing(narrow={"budget": {"usd_per_day": 1}})
    )
    with pytest.raises(InternalError):
        route(state, region="us-east-1", endpoint="", budgets=None)


def test_the_invoke_step_settles_the_reservation_with_what_the_call_used() -> None:
    # GIVEN a request routed with a reservation
    config = access_routing(narrow={"budget": {"tokens_per_day": 100_000, "usd_per_day": 1.0}})
    ledger = FakeBudgetLedger()
    state, payloads = _state(plain(project="benefits"), NARROW_ID, config)
    state.route = route(state, region="us-east-1", endpoint="", budgets=ledger, clock=lambda: NOW)

    # WHEN Bedrock answers (120 input, 40 output tokens)
    gateway = FakeBedrockGateway()
    response = invocation.invoke_model(
        state, gateway, FakeObjectStore(), 32_768, payloads=payloads, hash_key=FakeHashKey(), budgets=ledger
    )

    # THEN the day's usage is what was used, not what was reserved
    assert ledger.calls == ["reserve", "settle"]
    tokens, usd = ledger.usage["caller#narrow#2025-03-12"]
    assert tokens == 160 and usd == pytest.approx(response.estimated_cost_usd)


def test_settlement_gives_back_the_rest_and_skips_an_exact_estimate() -> None:
    reserved = [BudgetCharge(item="caller#x#2025-03-12", tokens=500, usd=0.01, expires_at=1)]
    [back] = settlement(reserved, 160, 0.002)
    assert (back.tokens, back.usd, back.tokens_limit) == (-340, pytest.approx(-0.008), None)
    assert settlement(reserved, 500, 0.01) == []


# ------------------------------------------------------------------------------ both paths
def queue_path(
    body: dict[str, Any], config: RoutingConfig, ledger: FakeBudgetLedger
) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """The request through the workflow's steps (Route raising to RecordOutcome as its Catch does):
    lineage item, event detail, events emitted, Bedrock calls."""
    state, payloads = _state(body, NARROW_ID, config)
    lineage, gateway = FakeLineageStore(), FakeBedrockGateway()
    lineage.claim(state.claim)
    try:
        state.route = route(state, region="us-east-1", endpoint="", budgets=ledger, clock=lambda: NOW)
        state.response = invocation.invoke_model(
            state,
            gateway,
            FakeObjectStore(),
            32_768,
            payloads=payloads,
            hash_key=FakeHashKey(),
            budgets=ledger,
        )
    except Exception as error:
        state.error = sync_invoke.step_error(error)
    outcome = record_outcome(state, lineage, NOW)
    item = lineage.items[state.request.request_id].model_dump(exclude_none=True)
    return item, outcome.detail, int(outcome.emit), len(gateway.calls)


def sync_path(
    body: dict[str, Any], config: RoutingConfig, ledger: FakeBudgetLedger
) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    lineage, events, gateway = FakeLineageStore(), FakeEventPublisher(), FakeBedrockGateway()
    ports = sync_invoke.SyncPorts(
        ledger=FakeSyncLedger(lineage, budgets=ledger),
        lineage=lineage,
        events=events,
        hash_key=FakeHashKey(),
        gateway=gateway,
        objects=FakeObjectStore(),
        retention_days=30,
        inline_max_bytes=32_768,
        region="us-east-1",
        endpoint="",
        budgets=ledger,
    )
    detail = sync_invoke.invoke(
        json.dumps(body),
        principal=NARROW_ARN,
        api_request_id="api-1",
        ports=ports,
        judge=lambda: sync_invoke.Judgement(policy=load_default_policy(), routing=config, detectors=()),
        timing=sync_invoke.Timing(wait_s=1.0, clock=lambda: NOW, sleep=lambda s: None),
    )
    item = lineage.items[body["request_id"]].model_dump(exclude_none=True)
    return item, detail, len(events.published), len(gateway.calls)


@pytest.mark.parametrize(
    ("body", "code", "refusal"),
    [
        (plain(model="default", project="benefits"), "ModelNotAllowedForCaller", "model_not_allowed"),
        (plain(project="apollo"), "ProjectNotAllowed", "project_not_allowed"),
        (
            sample_request("pii-redact") | {"caller": {"project": "it-service-desk"}, "model": "default"},
            "ClearanceRefused",
            "clearance",
        ),
    ],
)
def test_both_paths_refuse_alike_with_one_failed_event_and_the_refusal_in_lineage(
    body: dict[str, Any], code: str, refusal: str
) -> None:
    for path in (queue_path, sync_path):
        item, detail, emitted, bedrock_calls = path(
            body | {"request_id": "r-1"}, access_routing(), FakeBudgetLedger()
        )
        assert (detail["status"], detail["error"]["code"], emitted, bedrock_calls) == (
            "FAILED",
            code,
            1,
            0,
        ), path
        assert item["status"] == "FAILED" and item["access_refusal"] == refusal
        assert item["error"]["code"] == code


def test_both_paths_refuse_a_spent_budget_and_record_it() -> None:
    config = access_routing(narrow={"budget": {"tokens_per_day": 2_000}})
    for path in (queue_path, sync_path):
        ledger = FakeBudgetLedger()
        # the first request fits (about 60 + 1,000 tokens reserved, 160 used once settled) ...
        first, _, _, calls = path(
            plain(project="benefits", max_tokens=1_000) | {"request_id": "r-1"}, config, ledger
        )
        assert first["status"] == "COMPLETED" and calls == 1 and "access_refusal" not in first
        assert ledger.usage["caller#narrow#2025-03-12"][0] == 160
        # ... a second asking for more than is left is refused before Bedrock
        item, detail, emitted, calls = path(
            plain(project="benefits", max_tokens=1_900) | {"request_id": "r-2"}, config, ledger
        )
        assert (detail["error"]["code"], item["access_refusal"], emitted, calls) == (
            "BudgetExhausted",
            "budget",
            1,
            0,
        )


def test_the_sync_path_reserves_settles_in_its_final_write_and_reads_for_the_alerts() -> None:
    # GIVEN a caller with a budget, and one without
    with_budget = access_routing(narrow={"budget": {"tokens_per_day": 10_000}})
    for config, expected in ((with_budget, ["reserve", "used"]), (access_routing(), [])):
        ledger = FakeBudgetLedger()
        # WHEN a request is answered through POST /v1/invoke
        item, _, _, _ = sync_path(plain(project="benefits") | {"request_id": "r-1"}, config, ledger)
        # THEN the budget adds the reservation (the settlement rides the lineage write) and the day's
        # usage is read once for the 80 % and 100 % alerts; without a budget, nothing
        assert item["status"] == "COMPLETED" and ledger.calls == expected
    assert ledger.usage == {}


# ------------------------------------------------------------------------------ GET /v1/models
def test_models_answers_the_callers_grant_clearance_and_budget_left() -> None:
    config = access_routing(
        narrow={"budget": {"tokens_per_day": 10_000}},
        projects={"benefits": {"allow": [MICRO], "budget": {"usd_per_day": 2.0}}},
    )
    ledger = FakeBudgetLedger()
    ledger.usage["caller#narrow#2025-03-12"] = (2_500, 0.5)
    ledger.usage["project#benefits#2025-03-12"] = (2_500, 0.5)

    answer = api.models_for(NARROW_ARN, config, budgets=ledger, today=TODAY)

    assert answer.models == [MICRO] and answer.aliases == {"fast": MICRO}
    assert answer.project == "benefits" and answer.projects == ["benefits", "it-service-desk"]
    assert answer.clearance is not None and answer.clearance[0][0].category == "pii.*"
    caller, project = answer.budgets
    assert (caller.scope, caller.name, caller.tokens_remaining, caller.usd_remaining) == (
        "caller",
        "narrow",
        7_500,
        None,
    )
    assert (project.scope, project.name, project.usd_remaining, project.tokens_remaining) == (
        "project",
        "benefits",
        1.5,
        None,
    )


def test_models_for_another_project_and_a_project_not_the_callers() -> None:
    config = access_routing()
    assert api.models_for(NARROW_ARN, config, project="it-service-desk").models == [LITE, MICRO]
    with pytest.raises(RequestInvalid):
        api.models_for(NARROW_ARN, config, project="apollo")
    # a caller with no grant beyond the shipped one sees every model, no clearance, no budgets
    everyone = api.models_for(OTHER, config)
    assert (
        len(everyone.models) == len(config.models) and everyone.clearance is None and everyone.budgets == []
    )


# ------------------------------------------------------------------------------ over DynamoDB
@pytest.fixture
def budget_table() -> Iterator[DynamoBudgetLedger]:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="budgets",
            AttributeDefinitions=[{"AttributeName": "budget", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "budget", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoBudgetLedger("budgets")


def _charge(item: str, tokens: int, usd: float, **limits: Any) -> Charge:
    return Charge(item, tokens, usd, usage_expires_at(TODAY), **limits)


class TestDynamoBudgetLedger:
    def test_a_reservation_past_a_limit_is_refused_and_adds_nothing(
        self, budget_table: DynamoBudgetLedger
    ) -> None:
        item = "caller#narrow#2025-03-12"
        assert budget_table.reserve([_charge(item, 600, 0.25, tokens_limit=1_000, usd_limit=0.5)])
        assert budget_table.reserve([_charge(item, 400, 0.25, tokens_limit=1_000, usd_limit=0.5)])  # exactly
        assert not budget_table.reserve([_charge(item, 1, 0.0, tokens_limit=1_000)])
        assert not budget_table.reserve([_charge(item, 0, 0.01, usd_limit=0.5)])
        assert budget_table.used([item, "caller#absent#2025-03-12"]) == {item: (1_000, 0.5)}

    def test_caller_and_project_are_reserved_in_one_transaction(
        self, budget_table: DynamoBudgetLedger
    ) -> None:
        caller, project = "caller#narrow#2025-03-12", "project#benefits#2025-03-12"
        assert budget_table.reserve([_charge(project, 900, 0.0, tokens_limit=1_000)])
        # the project's budget has no room: the caller's is not charged either
        both = [
            _charge(caller, 200, 0.1, tokens_limit=10_000),
            _charge(project, 200, 0.1, tokens_limit=1_000),
        ]
        assert not budget_table.reserve(both)
        assert budget_table.used([caller, project]) == {project: (900, 0.0)}
        assert budget_table.reserve([_charge(caller, 50, 0.1), _charge(project, 50, 0.1, tokens_limit=1_000)])
        assert budget_table.used([caller, project]) == {caller: (50, 0.1), project: (950, 0.1)}

    def test_a_settlement_gives_back_without_a_condition(self, budget_table: DynamoBudgetLedger) -> None:
        item = "caller#narrow#2025-03-12"
        budget_table.reserve([_charge(item, 1_000, 0.5, tokens_limit=1_000)])
        budget_table.settle([_charge(item, -840, -0.4)])
        assert budget_table.used([item]) == {item: (160, 0.1)}
        raw = boto3.resource("dynamodb").Table("budgets").get_item(Key={"budget": item})["Item"]
        assert int(raw["expires_at"]) == usage_expires_at(TODAY)
