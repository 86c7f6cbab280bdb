"""POST /v1/requests/{id}/feedback and GET /v1/experiments/{id}/results through the API function, with
the fakes of tests/unit/xpi/test_api.py; every answer validated against api/openapi.yaml."""

import json
from typing import Any

import pytest
from xpi import dependencies
from xpi.domain.lineage_chain import record_hash
from xpi.domain.routing import RoutingConfig, load_default_routing

from tests.helpers.fakes import FakePayloadStore
from tests.unit.xpi import test_api
from tests.unit.xpi.test_api import (
    ALICE,
    AUDITOR,
    BOB,
    PRODUCER_SESSION_A,
    PRODUCER_SESSION_B,
    _final_item,
    call,
)

world = test_api.world  # the API function with in-memory fakes
MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"


@pytest.fixture
def payloads(monkeypatch: pytest.MonkeyPatch) -> FakePayloadStore:
    store = FakePayloadStore()
    monkeypatch.setattr(dependencies, "payload_store", lambda: store)
    return store


def _feedback(request_id: str, body: Any, principal: str = ALICE) -> tuple[int, dict[str, Any]]:
    return call("POST", f"/v1/requests/{request_id}/feedback", body, principal=principal)


# ------------------------------------------------------------------ feedback
def test_the_caller_rates_its_request_and_lineage_records_it(
    world: dict[str, Any], payloads: FakePayloadStore
) -> None:
    # GIVEN a completed request of an experiment's variant
    world["lineage"].items["r-1"] = _final_item("r-1", experiment="size", variant="micro")

    # WHEN its caller rates it with a comment
    status, body = _feedback("r-1", {"score": 4, "comment": "short and right"})

    # THEN the rating is recorded against lineage, the comment kept in the payload store only
    assert status == 200, body
    assert (body["score"], body["comment_bytes"], body["experiment"], body["variant"]) == (
        4,
        15,
        "size",
        "micro",
    )
    feedback = world["lineage"].items["r-1"].feedback
    assert feedback is not None and (feedback.score, feedback.comment_bytes) == (4, 15)
    assert "short and right" not in world["lineage"].items["r-1"].model_dump_json()
    assert json.loads(payloads.objects["payloads/feedback/r-1"]) == {"comment": "short and right"}


def test_feedback_is_idempotent_and_a_new_rating_replaces_the_old(
    world: dict[str, Any], payloads: FakePayloadStore
) -> None:
    world["lineage"].items["r-2"] = _final_item("r-2")
    first = _feedback("r-2", {"score": 2})
    # the same rating again changes nothing (not even its time)
    assert _feedback("r-2", {"score": 2}) == first
    # another replaces it
    status, _ = _feedback("r-2", {"score": 5})
    assert status == 200 and world["lineage"].items["r-2"].feedback.score == 5  # type: ignore[union-attr]


@pytest.mark.parametrize("principal", [BOB, AUDITOR])
def test_only_the_requests_own_caller_may_rate_it(
    world: dict[str, Any], payloads: FakePayloadStore, principal: str
) -> None:
    world["lineage"].items["r-3"] = _final_item("r-3")
    status, body = _feedback("r-3", {"score": 1}, principal=principal)
    assert (status, body["error"]["code"]) == (404, "RequestNotFound")
    assert world["lineage"].items["r-3"].feedback is None
    assert _feedback("missing", {"score": 1})[0] == 404


def test_another_session_of_the_sending_role_may_rate_it(
    world: dict[str, Any], payloads: FakePayloadStore
) -> None:
    world["lineage"].items["r-4"] = _final_item("r-4", principal=PRODUCER_SESSION_A)
    assert _feedback("r-4", {"score": 3}, principal=PRODUCER_SESSION_B)[0] == 200


@pytest.mark.parametrize("status_", ["ACCEPTED", "FAILED", "BLOCKED"])
def test_only_a_completed_request_can_be_rated(
    world: dict[str, Any], payloads: FakePayloadStore, status_: str
) -> None:
    world["lineage"].items["r-5"] = _final_item("r-5", status=status_)
    status, body = _feedback("r-5", {"score": 5})
    assert (status, body["error"]["code"]) == (409, "FeedbackNotAccepted")


@pytest.mark.parametrize(
    ("body", "location"),
    [({"score": 0}, "score"), ({"score": 6}, "score"), ({"score": "5"}, "score"), ({"score": 3, "x": 1}, "*"),
     ({}, "score"), ({"score": 3, "comment": "c" * 2001}, "comment")],
)  # fmt: skip
def test_a_bad_rating_is_400(
    world: dict[str, Any], payloads: FakePayloadStore, body: dict[str, Any], location: str
) -> None:
    world["lineage"].items["r-6"] = _final_item("r-6")
    status, answer = _feedback("r-6", body)
    assert status == 400 and answer["error"]["code"] == "RequestInvalid"
    assert [p["location"] for p in answer["error"]["problems"]] == [location]


def test_feedback_given_after_the_day_is_sealed_leaves_its_chain_valid(
    world: dict[str, Any], payloads: FakePayloadStore
) -> None:
    # GIVEN a final record and its sealed hash
    world["lineage"].items["r-7"] = _final_item("r-7")
    sealed = record_hash(world["lineage"].items["r-7"].model_dump(exclude_none=True), "prev")
    # WHEN its caller rates it afterwards
    assert _feedback("r-7", {"score": 5})[0] == 200
    # THEN the record, feedback and all, still has the hash it was sealed with
    rated = world["lineage"].items["r-7"].model_dump(exclude_none=True)
    assert "feedback" in rated and record_hash(rated, "prev") == sealed


# ------------------------------------------------------------------ results
def _routing_with_experiment() -> RoutingConfig:
    document = load_default_routing().model_dump(mode="json")
    document["experiments"] = [
        {
            "name": "size",
            "models": ["fast"],
            "variants": [{"name": "micro", "model": MICRO}, {"name": "lite", "model": LITE}],
            "stop_rule": {"min_feedback_per_variant": 20, "alpha": 0.05},
        }
    ]
    return RoutingConfig.model_validate(document)


def test_an_experiments_results_per_variant_with_the_verdict(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 30 rated requests per variant, micro rated well far more often
    monkeypatch.setattr(dependencies, "routing_config", _routing_with_experiment)
    for index in range(60):
        variant = "micro" if index % 2 == 0 else "lite"
        good = (index % 2 == 0 and index % 10 != 0) or (index % 2 == 1 and index % 6 == 1)
        world["lineage"].items[f"x-{index}"] = _final_item(
            f"x-{index}",
            experiment="size",
            variant=variant,
            latency_ms=100 + index,
            feedback={"score": 5 if good else 1, "at": "2026-12-05T12:00:00.000+00:00"},
        )
    world["lineage"].items["other"] = _final_item("other")

    # WHEN an operator reads its results
    status, body = call("GET", "/v1/experiments/size/results")

    # THEN every variant has its figures, the test its p-value, and the stop rule names the winner
    assert status == 200, body
    rows = {row["variant"]: row for row in body["variants"]}
    assert (rows["micro"]["requests"], rows["micro"]["feedback_count"], rows["micro"]["positive"]) == (
        30,
        30,
        24,
    )
    assert (rows["lite"]["requests"], rows["lite"]["positive"]) == (30, 10)
    assert rows["micro"]["latency_p50_ms"] is not None and rows["micro"]["cost_usd"] > 0
    assert body["leader"] == "micro" and body["comparisons"][0]["positive_p"] < 0.001
    assert body["verdict"]["summary"] == "stop: winner micro"


def test_an_unknown_experiment_is_404(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dependencies, "routing_config", _routing_with_experiment)
    status, body = call("GET", "/v1/experiments/nope/results")
    assert (status, body["error"]["code"]) == (404, "ExperimentNotFound")
