"""A/B experiments (xpi.domain.experiments): assignment by weight, sticky per caller or project and
stable across processes; the routing document's validation of them; the route step keeping a request
out of a variant it may not use; the variant in lineage and the result event; the results' statistics
and the stop rule."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from xpi.domain.experiments import (
    Experiment,
    Observation,
    assign,
    bucket,
    results,
    student_t_two_sided_p,
    two_proportion_z,
    welch_t,
)
from xpi.domain.outcome import lineage_item, result_detail
from xpi.domain.routing import RoutingConfig, plan_route
from xpi.domain.strategies import RouteContext
from xpi.services.routing import route

from tests.helpers.fakes import FakeBudgetLedger
from tests.unit.xpi.test_access import NOW, _state, plain

MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"
PRO = "us.amazon.nova-pro-v1:0"
GOV = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CALLER = "arn:aws-us-gov:sts::123456789012:assumed-role/claims/intake"


def experiment(**changes: Any) -> dict[str, Any]:
    return {
        "name": "size",
        "models": ["fast"],
        "variants": [
            {"name": "micro", "model": MICRO, "weight": 3},
            {"name": "lite", "model": LITE, "weight": 1},
        ],
    } | changes


def config(experiments: list[dict[str, Any]], **extra: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "aliases": {"default": LITE, "fast": MICRO, "govcloud": GOV},
            "models": {MICRO: {}, LITE: {}, PRO: {}, GOV: {"partition": "govcloud"}},
            "callers": [{"principal": "*", "allow": ["*"]}],
            "partition_policy": {"govcloud_only": ["cui.*"]},
            "experiments": experiments,
        }
        | extra
    )


def context(principal: str = CALLER, **changes: Any) -> RouteContext:
    return RouteContext(**({"request_id": "r-1", "requested": "fast", "principal": principal} | changes))


# ------------------------------------------------------------------ assignment
@settings(max_examples=25, deadline=None)
@given(weights=st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=4))
def test_the_split_over_many_callers_matches_the_weights(weights: list[int]) -> None:
    # GIVEN an experiment with these weights
    variants = [{"name": f"v{i}", "model": MICRO, "weight": w} for i, w in enumerate(weights)]
    chosen = Experiment.model_validate(experiment(variants=variants))
    callers = 4000

    # WHEN 4,000 callers are assigned
    counts = dict.fromkeys((v["name"] for v in variants), 0)
    for index in range(callers):
        counts[assign(chosen, context(f"arn:aws-us-gov:iam::123456789012:user/u{index}")).name] += 1

    # THEN each variant's share is its weight's within 4 standard deviations of a binomial count
    for variant in variants:
        share = variant["weight"] / sum(weights)
        tolerance = 4 * (callers * share * (1 - share)) ** 0.5
        assert abs(counts[variant["name"]] - callers * share) <= tolerance, (counts, weights)


def test_assignment_is_sticky_per_caller_whatever_the_request() -> None:
    chosen = Experiment.model_validate(experiment())
    first = assign(chosen, context(request_id="r-1"))
    assert all(assign(chosen, context(request_id=f"r-{n}")) == first for n in range(50))


def test_assignment_sticky_per_project_gives_every_caller_of_a_project_one_variant() -> None:
    chosen = Experiment.model_validate(experiment(sticky="project"))
    by_project = {
        project: {assign(chosen, context(f"user/{n}", project=project)).name for n in range(30)}
        for project in ("benefits", "claims", "hr", "it")
    }
    assert all(len(names) == 1 for names in by_project.values()), by_project
    # AND a request without a project is assigned by its caller
    assert assign(chosen, context(project=None)) == assign(Experiment.model_validate(experiment()), context())


def test_assignment_is_the_same_in_another_process() -> None:
    # GIVEN the bucket of a caller here
    here = bucket("size", f"caller\x00{CALLER}")
    # WHEN another interpreter, with another hash seed, computes it
    code = f"from xpi.domain.experiments import bucket; print(repr(bucket('size', 'caller\\x00{CALLER}')))"
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    # THEN it is the same number
    assert float(there) == here


def test_the_variant_routes_the_request_and_names_itself_in_the_plan() -> None:
    routing = config([experiment()])
    plan = plan_route(routing, context())
    assert plan.experiment == "size" and plan.variant in {"micro", "lite"}
    assert [hop.model_id for hop in plan.hops] == [MICRO if plan.variant == "micro" else LITE]
    # a model the experiment does not name is routed as before
    assert plan_route(routing, context(requested="default")).experiment is None


@pytest.mark.parametrize(
    ("changes", "at"),
    [
        ({"status": "stopped"}, NOW),
        ({"start": (NOW + timedelta(hours=1)).isoformat()}, NOW),
        ({"stop": (NOW - timedelta(hours=1)).isoformat()}, NOW),
    ],
)
def test_a_stopped_or_out_of_window_experiment_assigns_nothing(changes: dict[str, Any], at: datetime) -> None:
    plan = plan_route(config([experiment(**changes)]), context(at=at))
    assert (plan.experiment, plan.strategy, [h.model_id for h in plan.hops]) == (None, None, [MICRO])


# ------------------------------------------------------------------ validation at config load
def document(*experiments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return config([]).model_dump() | {"experiments": list(experiments)} | extra


UNKNOWN = [{"name": "a", "model": MICRO}, {"name": "b", "model": "x.unknown"}]
SAME_NAME = [{"name": "a", "model": MICRO}, {"name": "a", "model": LITE}]
ONE_API_EACH = {MICRO: {"api": "converse"}, LITE: {"api": "invoke_model"}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (document(experiment(variants=UNKNOWN)), "not approved"),
        (document(experiment(), experiment()), "distinct names"),
        (document(experiment(variants=SAME_NAME)), "distinct variant names"),
        (document(experiment(when={"categories": ["cui.specified"]})), "commercial variant"),
        (document(experiment(), callers=[{"principal": "*", "allow": [MICRO]}]), "may use"),
        (
            document(
                experiment(),
                projects={"benefits": {"allow": [LITE]}},
                callers=[{"principal": "*", "allow": ["*"], "projects": ["benefits"]}],
            ),
            "may use",
        ),
        (document(experiment(), models=ONE_API_EACH, aliases={}), "mixes"),
    ],
)
def test_an_experiment_outside_what_its_traffic_may_use_does_not_validate(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        RoutingConfig.model_validate(document)


def test_an_experiment_on_govcloud_only_content_with_govcloud_variants_validates() -> None:
    only_gov = experiment(
        when={"categories": ["cui.*"]},
        variants=[{"name": "a", "model": GOV}, {"name": "b", "model": GOV, "weight": 2}],
    )
    assert config([only_gov]).experiments[0].name == "size"


# ------------------------------------------------------------------ validation again at routing time
def _experiment_routing(**changes: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "aliases": {"default": LITE, "fast": MICRO, "govcloud": GOV},
            "models": {MICRO: {}, LITE: {}, GOV: {"partition": "govcloud"}},
            "callers": [{"principal": "*", "allow": ["*"]}],
            "partition_policy": {"govcloud_only": ["cui.*"]},
            "experiments": [
                experiment(
                    models=["*"],
                    variants=[{"name": "micro", "model": MICRO}, {"name": "lite", "model": LITE}],
                )
                | changes
            ],
        }
    )


def test_the_route_step_sends_the_request_to_its_variant_and_records_it() -> None:
    # GIVEN a plain request under a running experiment
    state, _ = _state(plain(model="fast"), CALLER, _experiment_routing())

    # WHEN routed
    state.route = route(state, region="us-east-1", endpoint="", budgets=FakeBudgetLedger())

    # THEN it goes to its variant's model, and the route, lineage and result event name the variant
    variant = assign(_experiment_routing().experiments[0], context())
    assert (state.route.experiment, state.route.variant, state.route.model_id) == (
        "size",
        variant.name,
        variant.model,
    )
    detail = result_detail(state, NOW)
    assert detail.experiment is not None
    assert (detail.experiment.name, detail.experiment.variant) == ("size", variant.name)
    item = lineage_item(state, detail)
    assert (item.experiment, item.variant) == ("size", variant.name)


def test_a_cui_request_never_goes_to_a_commercial_variant_and_leaves_the_experiment() -> None:
    # GIVEN a CUI request for the GovCloud model while an experiment of commercial variants covers every model
    body = plain(model="govcloud") | {"prompt": "CUI//SP-PRVCY\nSummarise the roster of the office."}
    state, _ = _state(body, CALLER, _experiment_routing())
    assert state.classification is not None and state.classification.decision == "allow"

    # WHEN routed
    routed = route(state, region="us-east-1", endpoint="", budgets=FakeBudgetLedger())

    # THEN it goes to the GovCloud-native model as without the experiment, and is not counted in it
    assert (routed.model_id, routed.partition, routed.experiment, routed.variant) == (
        GOV,
        "govcloud",
        None,
        None,
    )


def test_a_request_judged_more_strictly_for_the_variant_leaves_the_experiment() -> None:
    # GIVEN the route step's state for a request whose classification judged only the requested model fit
    state, _ = _state(plain(model="fast"), CALLER, _experiment_routing())
    assert state.classification is not None
    variant = assign(_experiment_routing().experiments[0], context())
    other = LITE if variant.model == MICRO else MICRO
    state.classification.models = [other]
    state.request.model = "default" if other == LITE else "fast"

    # WHEN routed
    routed = route(state, region="us-east-1", endpoint="", budgets=FakeBudgetLedger())

    # THEN the variant's model is never reached: the request leaves the experiment
    assert routed.model_id == other and routed.experiment is None


# ------------------------------------------------------------------ statistics and the stop rule
def test_two_proportion_z_matches_the_textbook_value() -> None:
    z, p = two_proportion_z(60, 100, 40, 100) or (0.0, 1.0)
    assert z == pytest.approx(2.8284, abs=1e-4) and p == pytest.approx(0.004678, abs=1e-5)


@pytest.mark.parametrize(
    ("t", "df", "p"), [(2.228, 10, 0.05), (1.96, 1e6, 0.05), (2.0, 5, 0.1019), (0.0, 7, 1.0)]
)
def test_students_t_p_values_match_the_tables(t: float, df: float, p: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(p, abs=5e-4)


def test_welch_t_on_two_samples() -> None:
    # means 3 and 5, variances 2.5: t = -2 on 8 degrees of freedom, two-sided p = 0.0805
    t, p = welch_t([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) or (0.0, 1.0)
    assert t == pytest.approx(-2.0, abs=1e-4) and p == pytest.approx(0.0805, abs=5e-4)


def _observations(
    variant: str, requests: int, positive: int, rated: int, failed: int = 0
) -> list[Observation]:
    found = []
    for index in range(requests):
        score = (5 if index < positive else 2) if index < rated else None
        status = "FAILED" if index >= requests - failed else "COMPLETED"
        found.append(
            Observation(variant, status, latency_ms=100 + index, cost_usd=Decimal("0.001"), score=score)
        )
    return found


RULE = {"min_feedback_per_variant": 100, "alpha": 0.05}


def test_the_stop_rule_continues_below_the_minimum_samples() -> None:
    chosen = Experiment.model_validate(experiment(stop_rule=RULE))
    found = results(chosen, _observations("micro", 120, 60, 99) + _observations("lite", 120, 10, 120))
    assert (found.verdict.decision, found.verdict.summary) == ("continue", "continue")
    assert "micro" in found.verdict.reason


def test_the_stop_rule_names_a_significant_winner() -> None:
    chosen = Experiment.model_validate(experiment(stop_rule=RULE))
    found = results(chosen, _observations("micro", 150, 90, 150) + _observations("lite", 150, 50, 150))
    assert found.verdict.summary == "stop: winner micro"
    assert found.leader == "micro" and found.comparisons[0].positive_p is not None
    assert found.comparisons[0].positive_p < 0.05
    micro = found.variants[0]
    assert (micro.requests, micro.feedback_count, micro.positive) == (150, 150, 90)
    assert micro.latency_p50_ms == 174 and micro.latency_p95_ms == 242
    assert micro.cost_usd == pytest.approx(0.15)


def test_the_stop_rule_continues_without_significance() -> None:
    chosen = Experiment.model_validate(experiment(stop_rule=RULE))
    found = results(chosen, _observations("micro", 150, 80, 150) + _observations("lite", 150, 75, 150))
    assert found.verdict.decision == "continue" and found.leader == "micro"


def test_the_error_guardrail_stops_the_experiment_for_the_healthy_variant() -> None:
    rule = RULE | {"max_error_rate": 0.1, "min_requests_for_guardrail": 50}
    chosen = Experiment.model_validate(experiment(stop_rule=rule))
    found = results(
        chosen, _observations("micro", 60, 0, 0, failed=20) + _observations("lite", 60, 0, 0, failed=1)
    )
    assert found.verdict.summary == "stop: winner lite"
    assert found.variants[0].error_rate == pytest.approx(20 / 60)


def test_results_ignore_requests_still_running_and_unknown_variants() -> None:
    chosen = Experiment.model_validate(experiment())
    found = results(chosen, [Observation("micro", "ACCEPTED"), Observation("gone", "COMPLETED", score=5)])
    assert [v.requests for v in found.variants] == [0, 0] and found.leader is None


def test_a_stopped_experiments_window_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="stops before it starts"):
        Experiment.model_validate(
            experiment(
                start=datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
                stop=datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
            )
        )
