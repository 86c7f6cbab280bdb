"""A/B experiments on the local stack (docs/routing.md, "Experiments"): an experiment put through the
admin route, its observed split matching its weights, the variant in lineage and the result event,
feedback from the request's own caller only, and the results read by an operator.

Assignment is sticky per project here, so each request names a project of its own (the shipped caller
rule binds callers to no project: the request's project is its own metadata) and the requests are as
many independent draws. The functions cache the routing document for CONFIG_MAX_AGE_S (60 s): requests
are sent until one is judged under the revision put here.
"""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.stack import ROOT, LocalStackClient, ResultCollector
from tests.helpers.waiting import wait_until
from tests.integration.test_api import ApiClient, assert_matches_document

pytestmark = pytest.mark.integration

MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"
SHIPPED_ROUTING = json.loads(
    (ROOT / "functions" / "xpi" / "config" / "routing.json").read_text(encoding="utf-8")
)
EXPERIMENT = "ab-size"
WEIGHTS = {"micro": 3.0, "lite": 1.0}
MODELS = {"micro": MICRO, "lite": LITE}
REQUESTS = 80
# The split's tolerance: 3.6 standard deviations of a binomial(80, 0.75) count (3.87), so a correct split
# fails it about once in 3,000 runs, and a 50/50 split (40 of 80 against 60) never passes it.
TOLERANCE = 14


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


@pytest.fixture(scope="module")
def revision(api: ApiClient) -> Iterator[int]:
    # GIVEN the shipped routing with an experiment on the alias "ab-test": micro 3, lite 1, per project
    document = json.loads(json.dumps(SHIPPED_ROUTING))
    document["aliases"] |= {"ab-test": MICRO}
    document["experiments"] = [
        {
            "name": EXPERIMENT,
            "models": ["ab-test"],
            "sticky": "project",
            "variants": [{"name": name, "model": MODELS[name], "weight": w} for name, w in WEIGHTS.items()],
            "stop_rule": {"min_feedback_per_variant": 1000, "alpha": 0.05},
        }
    ]
    status, body = api.call("operator_mfa", "PUT", "/v1/admin/routing", document)
    assert status == 200, body
    try:
        yield int(body["detail"]["revision"])
    finally:  # the shipped routing again, for the other tests
        assert api.call("operator_mfa", "PUT", "/v1/admin/routing", SHIPPED_ROUTING)[0] == 200


def _invoke(api: ApiClient, project: str, *, completed: bool = True) -> dict[str, Any]:
    body = {
        "request_id": f"ab-{uuid.uuid4().hex[:12]}",
        "model": "ab-test",
        "prompt": "Hi.",
        "caller": {"project": project},
        "inference": {"max_tokens": 20},
    }
    status, answer = api.call("caller2", "POST", "/v1/invoke", body)
    assert status == 200, answer
    assert answer["status"] == "COMPLETED" or not completed, answer
    return dict(answer)


def test_an_experiments_split_matches_its_weights_and_its_results_read_back(
    api: ApiClient, local_stack: LocalStackClient, revision: int, results: ResultCollector
) -> None:
    items: list[dict[str, Any]] = []

    def judged_under_revision() -> bool:
        # (a runtime whose routing is older than the revision knows no "ab-test": that request fails)
        answer = _invoke(api, f"p-{uuid.uuid4().hex[:10]}", completed=False)
        item = local_stack.lineage(answer["request_id"])
        assert item is not None
        if int(item.get("routing_revision", 0)) != revision:
            return False
        assert answer["status"] == "COMPLETED", answer
        items.append(item)
        return True

    # GIVEN a first request judged under the experiment's revision
    wait_until(judged_under_revision, timeout_s=150, interval_s=0.5, what=f"routing revision {revision}")

    # WHEN more requests come, each for a project of its own, until 80 have been judged under it
    while len(items) < REQUESTS:
        judged_under_revision()

    # THEN each was assigned a variant, answered by the variant's model, and the split matches the weights
    variants = [item["variant"] for item in items]
    assert all(item["experiment"] == EXPERIMENT for item in items)
    assert all(item["model_id"] == MODELS[item["variant"]] for item in items), items
    expected = REQUESTS * WEIGHTS["micro"] / sum(WEIGHTS.values())
    assert abs(variants.count("micro") - expected) <= TOLERANCE, variants
    assert variants.count("micro") + variants.count("lite") == REQUESTS

    # AND the assignment is sticky: the first request's project gets its variant again
    first = items[0]
    again = _invoke(api, first["project"])
    again_item = local_stack.lineage(again["request_id"])
    assert again_item is not None and again_item["variant"] == first["variant"]
    # AND the result event names the experiment and the variant
    event = results.wait_for(again["request_id"], timeout_s=60)
    assert event["detail"]["experiment"] == {"name": EXPERIMENT, "variant": first["variant"]}

    # WHEN its caller rates two requests, one with a comment, and another caller tries to
    rated = [items[0], items[1]]
    status, recorded = api.call(
        "caller2", "POST", f"/v1/requests/{rated[0]['request_id']}/feedback", {"score": 5, "comment": "good"}
    )
    assert_matches_document("/v1/requests/{id}/feedback", "POST", status, recorded)
    assert status == 200 and recorded["variant"] == rated[0]["variant"], recorded
    repeat = api.call("caller2", "POST", f"/v1/requests/{rated[1]['request_id']}/feedback", {"score": 2})
    assert (
        repeat[0] == 200
        and api.call("caller2", "POST", f"/v1/requests/{rated[1]['request_id']}/feedback", {"score": 2})
        == repeat
    )
    not_owner = api.call("operator", "POST", f"/v1/requests/{rated[0]['request_id']}/feedback", {"score": 1})
    no_grant = api.call("nobody", "POST", f"/v1/requests/{rated[0]['request_id']}/feedback", {"score": 1})

    # THEN the caller's ratings are in lineage; the other caller's is refused as a missing request
    assert (not_owner[0], not_owner[1]["error"]["code"]) == (404, "RequestNotFound")
    assert no_grant[0] == 403
    stored = local_stack.lineage(rated[0]["request_id"])
    assert stored is not None and int(stored["feedback"]["score"]) == 5
    assert int(stored["feedback"]["comment_bytes"]) == 4 and "good" not in json.dumps(stored, default=str)

    # WHEN an operator reads the experiment's results (a caller may not)
    status, body = api.call("operator", "GET", f"/v1/experiments/{EXPERIMENT}/results")
    assert api.call("caller2", "GET", f"/v1/experiments/{EXPERIMENT}/results")[0] == 403

    # THEN every request judged under it is counted per variant, with the ratings and the verdict
    assert_matches_document("/v1/experiments/{id}/results", "GET", status, body)
    assert status == 200, body
    rows = {row["variant"]: row for row in body["variants"]}
    assert rows["micro"]["requests"] + rows["lite"]["requests"] >= REQUESTS + 1
    assert rows["micro"]["requests"] >= variants.count("micro")
    assert sum(row["feedback_count"] for row in rows.values()) == 2
    assert rows[rated[0]["variant"]]["positive"] >= 1
    assert all(row["latency_p50_ms"] is not None and row["cost_usd"] > 0 for row in rows.values())
    assert body["verdict"]["summary"] == "continue"


@pytest.mark.parametrize("path", ["queue", "workflow"])
def test_the_queue_and_the_workflow_carry_the_variant_to_lineage_and_the_event(
    path: str, api: ApiClient, local_stack: LocalStackClient, revision: int, results: ResultCollector
) -> None:
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def send() -> bool:
        # WHEN a request of the experiment comes through the queue or POST /v1/requests (the classify
        # step reads the routing document itself: sent until one is judged under the experiment's revision)
        project = f"p-{uuid.uuid4().hex[:10]}"
        request = {"request_id": f"ab-{uuid.uuid4().hex[:12]}", "model": "ab-test", "prompt": "Hi.",
                   "caller": {"project": project}, "inference": {"max_tokens": 20}}  # fmt: skip
        if path == "queue":
            local_stack.client("sqs").send_message(
                QueueUrl=local_stack.outputs["RequestsQueueUrl"], MessageBody=json.dumps(request)
            )
        else:
            status, accepted = api.call("caller2", "POST", "/v1/requests", request)
            assert status == 202, accepted
        event = results.wait_for(request["request_id"], timeout_s=90)
        item = local_stack.lineage(request["request_id"])
        assert item is not None
        found.append((event, item))
        return int(item.get("routing_revision", 0)) == revision

    wait_until(
        send, timeout_s=150, interval_s=0.5, what=f"a {path} request under routing revision {revision}"
    )

    # THEN it was assigned a variant, answered by its model, and both lineage and the event name it
    event, item = found[-1]
    assert event["detail-type"] == "Inference Completed", event["detail"]
    assert item["experiment"] == EXPERIMENT and item["model_id"] == MODELS[item["variant"]]
    assert event["detail"]["experiment"] == {"name": EXPERIMENT, "variant": item["variant"]}
