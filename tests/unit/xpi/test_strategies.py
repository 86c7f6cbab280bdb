"""Routing strategies and the partition policy: a pure function of the routing document and the request
(xpi.domain.strategies, xpi.domain.routing.plan_route)."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from xpi.domain.routing import RoutingConfig, load_default_routing, plan_route
from xpi.domain.strategies import Hop, RouteContext, Target, draw, weighted_order

MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"
PRO = "us.amazon.nova-pro-v1:0"
GOV = "anthropic.claude-3-5-sonnet-20240620-v1:0"
GOV_LLAMA = "meta.llama3-8b-instruct-v1:0"
CALLER = "arn:aws-us-gov:sts::123456789012:assumed-role/claims/intake"


def config(routes: list[dict[str, Any]], **extra: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "aliases": {"default": LITE, "govcloud": GOV},
            "models": {
                MICRO: {},
                LITE: {},
                PRO: {},
                GOV: {"partition": "govcloud"},
                GOV_LLAMA: {"partition": "govcloud"},
            },
            "callers": [{"principal": "*", "allow": ["*"]}],
            "routes": routes,
            "partition_policy": {"govcloud_only": ["cui.*"]},
        }
        | extra
    )


def context(requested: str = "chat", **changes: Any) -> RouteContext:
    return RouteContext(**({"request_id": "r-1", "requested": requested, "principal": CALLER} | changes))


def models(plan_hops: tuple[Hop, ...]) -> list[str]:
    return [hop.model_id for hop in plan_hops]


def rule(name: str, kind: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "strategy": {"kind": kind, "targets": [{"model": t} for t in targets]}} | extra


# ------------------------------------------------------------------ strategies
def test_without_a_matching_rule_the_alias_table_routes_as_before() -> None:
    plan = plan_route(config([rule("other", "single", [PRO], models=["chat"])]), context("default"))
    assert (plan.strategy, models(plan.hops)) == (None, [LITE])


def test_single_and_ordered_fallback() -> None:
    routing = config(
        [
            rule("one", "single", [PRO], models=["solo"]),
            rule("chain", "fallback", [MICRO, LITE, PRO], models=["chat"]),
        ]
    )
    assert models(plan_route(routing, context("solo")).hops) == [PRO]
    plan = plan_route(routing, context("chat"))
    assert (plan.strategy, models(plan.hops)) == ("chain", [MICRO, LITE, PRO])


def test_a_single_strategy_names_exactly_one_target() -> None:
    with pytest.raises(ValidationError, match="exactly one target"):
        config([rule("one", "single", [PRO, LITE])])


def test_a_rule_naming_a_model_off_the_approved_list_does_not_validate() -> None:
    with pytest.raises(ValidationError, match="not approved"):
        config([rule("bad", "fallback", [MICRO, "some.unknown-model"])])


@pytest.mark.parametrize(
    ("when", "matching", "other"),
    [
        ({"categories": ["pii.*"]}, {"categories": {"pii.email": 1}}, {"categories": {"export.eccn": 1}}),
        ({"callers": ["*:assumed-role/claims/*"]}, {}, {"principal": "arn:aws-us-gov:iam::1:user/bob"}),
        ({"projects": ["apollo"]}, {"project": "apollo"}, {"project": "gemini"}),
        ({"tags": {"tier": "gold*"}}, {"tags": {"tier": "gold-2"}}, {"tags": {"tier": "silver"}}),
        ({"min_request_bytes": 1000}, {"request_bytes": 1000}, {"request_bytes": 999}),
        ({"max_request_bytes": 1000}, {"request_bytes": 1000}, {"request_bytes": 1001}),
    ],
)
def test_a_conditional_rule_applies_only_to_what_it_names(
    when: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    routing = config([rule("cond", "single", [PRO], when=when), rule("rest", "single", [MICRO])])
    assert models(plan_route(routing, context(**matching)).hops) == [PRO]
    assert models(plan_route(routing, context(**other)).hops) == [MICRO]


def test_the_first_matching_rule_wins_and_a_rule_can_be_for_some_requested_models_only() -> None:
    routing = config(
        [
            rule("embeddings", "single", [LITE], models=["embed*"]),
            rule("first", "single", [PRO]),
            rule("second", "single", [MICRO]),
        ]
    )
    assert plan_route(routing, context("embed-small")).strategy == "embeddings"
    assert plan_route(routing, context("chat")).strategy == "first"


def test_weighted_draw_is_fixed_by_the_request_id() -> None:
    routing = config(
        [
            {
                "name": "split",
                "strategy": {
                    "kind": "weighted",
                    "targets": [{"model": MICRO, "weight": 1}, {"model": LITE, "weight": 1}],
                },
            }
        ]
    )
    first = plan_route(routing, context(request_id="req-42"))
    assert plan_route(routing, context(request_id="req-42")) == first  # a retried step draws the same
    assert sorted(models(first.hops)) == sorted([MICRO, LITE])  # the other one is its fallback


# ------------------------------------------------------------------ partition policy
def test_cui_keeps_only_govcloud_native_models() -> None:
    routing = config([rule("mixed", "fallback", [PRO, GOV, MICRO, GOV_LLAMA])])
    plan = plan_route(routing, context(categories={"cui.specified": 1}))
    assert models(plan.hops) == [GOV, GOV_LLAMA]
    assert all(hop.partition == "govcloud" and hop.region is None for hop in plan.hops)


def test_cui_with_no_govcloud_native_model_routed_has_nowhere_to_go() -> None:
    plan = plan_route(config([]), context("default", categories={"cui.banner": 2}))
    assert plan.hops == ()


def test_the_prefer_govcloud_tag_puts_govcloud_native_models_first() -> None:
    routing = config([rule("mixed", "fallback", [PRO, GOV, MICRO])])
    preferred = plan_route(routing, context(tags={"xpi-govcloud-sufficient": "true"}))
    assert models(preferred.hops) == [GOV, PRO, MICRO]
    assert models(plan_route(routing, context(tags={"xpi-govcloud-sufficient": "no"})).hops) == [
        PRO,
        GOV,
        MICRO,
    ]


@pytest.mark.parametrize("pattern", ["classified.*", "*", "c*", "*.banner", "classified.banner"])
def test_no_partition_policy_reaches_classification_markings(pattern: str) -> None:
    with pytest.raises(ValidationError, match="classification markings"):
        config([], partition_policy={"govcloud_only": [pattern]})


def test_the_shipped_routing_keeps_cui_in_govcloud_and_names_a_govcloud_native_model() -> None:
    shipped = load_default_routing()
    assert shipped.partition_policy.govcloud_only == ["cui.*"]
    assert shipped.models[shipped.resolve_alias("govcloud")].partition == "govcloud"
    cui = RouteContext(request_id="r", requested="govcloud", principal=CALLER, categories={"cui.portion": 1})
    assert [hop.partition for hop in plan_route(shipped, cui).hops] == ["govcloud"]
    assert plan_route(shipped, RouteContext("r", "default", CALLER, categories={"cui.portion": 1})).hops == ()


# ------------------------------------------------------------------ properties
MODELS = [MICRO, LITE, PRO, GOV, GOV_LLAMA]
targets = st.lists(
    st.builds(Target, model=st.sampled_from(MODELS), weight=st.floats(0.01, 100)), min_size=1, max_size=5
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["fallback", "weighted"]),
    chosen=targets,
    categories=st.dictionaries(st.sampled_from(["cui.banner", "pii.email", "export.eccn"]), st.just(1)),
    prefer=st.booleans(),
    request_id=st.text(min_size=1, max_size=20),
)
def test_a_plan_never_leaves_its_targets_asks_no_place_twice_and_keeps_cui_in_govcloud(
    kind: str, chosen: list[Target], categories: dict[str, int], prefer: bool, request_id: str
) -> None:
    routing = config([{"name": "r", "strategy": {"kind": kind, "targets": [t.model_dump() for t in chosen]}}])
    tags = {"xpi-govcloud-sufficient": "true"} if prefer else {}
    plan = plan_route(routing, context(request_id=request_id, categories=categories, tags=tags))
    hops = models(plan.hops)
    assert set(hops) <= {t.model for t in chosen}
    assert len(hops) == len(set(hops))
    if any(c.startswith("cui.") for c in categories):
        assert set(hops) == {t.model for t in chosen if routing.models[t.model].partition == "govcloud"}
    else:
        assert set(hops) == {t.model for t in chosen}
        if prefer:  # every GovCloud-native hop before every commercial one
            partitions = [hop.partition for hop in plan.hops]
            assert partitions == sorted(partitions, key=lambda p: p != "govcloud")


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=6), point=st.floats(0, 1, exclude_max=True)
)
def test_a_weighted_order_puts_the_drawn_target_first_then_every_other_heavier_first(
    weights: list[float], point: float
) -> None:
    chosen = [Target(model=f"m{i}", weight=w) for i, w in enumerate(weights)]
    ordered = weighted_order(chosen, point)
    assert sorted(t.model for t in ordered) == sorted(t.model for t in chosen)
    rest = [t.weight for t in ordered[1:]]
    assert rest == sorted(rest, reverse=True)


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.integers(1, 9), min_size=2, max_size=4), salt=st.text(max_size=8))
def test_weighted_draws_over_many_requests_split_as_the_weights_say(weights: list[int], salt: str) -> None:
    chosen = [Target(model=f"m{i}", weight=w) for i, w in enumerate(weights)]
    n = 4000
    firsts = [weighted_order(chosen, draw(f"request-{i}", salt))[0].model for i in range(n)]
    for target in chosen:
        expected = n * target.weight / sum(weights)
        # 5 standard deviations of a binomial count: a correct draw essentially never fails it
        sd = (n * (target.weight / sum(weights)) * (1 - target.weight / sum(weights))) ** 0.5
        assert abs(firsts.count(target.model) - expected) <= 5 * sd + 1


@pytest.mark.parametrize(("sticky", "same"), [("caller", "principal"), ("project", "project")])
def test_a_sticky_weighted_draw_gives_one_caller_or_project_one_target(sticky: str, same: str) -> None:
    routing = config(
        [
            {
                "name": "experiment",
                "strategy": {
                    "kind": "weighted",
                    "sticky": sticky,
                    "targets": [{"model": MICRO, "weight": 1}, {"model": LITE, "weight": 1}],
                },
            }
        ]
    )

    def first(request_id: str, who: str) -> str:
        changes = {"principal": who} if same == "principal" else {"project": who}
        return plan_route(routing, context(request_id=request_id, **changes)).hops[0].model_id

    # every request of one caller (or project) draws the same target...
    for who in ("alpha", "bravo", "charlie"):
        assert len({first(f"r-{i}", who) for i in range(20)}) == 1
    # ...and callers (projects) are spread over the targets
    assert {first("r-0", f"team-{i}") for i in range(40)} == {MICRO, LITE}
