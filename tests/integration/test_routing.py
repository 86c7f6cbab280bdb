"""Routing on the local stack (docs/routing.md): GovCloud's own Bedrock (a second emulator, in the stack's
region, authorizing the function roles' moto sessions) and commercial Bedrock; strategies put through
the admin route.

- a CUI request asking for a GovCloud-native model is answered in GovCloud with the function's role, and
  nothing reaches commercial Bedrock; the same request asking for a commercial model stays BLOCKED;
- a throttled primary falls back to the next model: one Bedrock call per hop, one answer, both hops in
  lineage;
- a weighted strategy's observed split matches its weights within the test's tolerance.

The functions cache the routing document for CONFIG_MAX_AGE_S (60 s): a request judged under an older
revision (lineage's `routing_revision`) is sent again until one is judged under the revision put here.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from xpi_tools.emulator.client import EmulatorControl

from tests.helpers.stack import ROOT, LocalStackClient, ResultCollector
from tests.helpers.waiting import wait_until
from tests.integration.test_api import ApiClient

pytestmark = pytest.mark.integration

MICRO = "us.amazon.nova-micro-v1:0"
LITE = "us.amazon.nova-lite-v1:0"
GOVCLOUD_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SHIPPED_ROUTING = json.loads(
    (ROOT / "functions" / "xpi" / "config" / "routing.json").read_text(encoding="utf-8")
)
WEIGHTS = {MICRO: 3.0, LITE: 1.0}
WEIGHTED_REQUESTS = 60
# The split's tolerance: 3.6 standard deviations of a binomial(60, 0.75) count (3.35), so a correct split
# fails it about once in 3,000 runs, and a 50/50 split (30 of 60) never passes it.
WEIGHTED_TOLERANCE = 12


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


@pytest.fixture(scope="module")
def revision(api: ApiClient) -> Iterator[int]:
    # GIVEN the shipped routing (its GovCloud-native model, CUI kept in GovCloud) with two strategies
    document = json.loads(json.dumps(SHIPPED_ROUTING))
    document["aliases"] |= {"fallback-test": MICRO, "weighted-test": MICRO}
    document["routes"] = [
        {
            "name": "fallback-test",
            "models": ["fallback-test"],
            "strategy": {"kind": "fallback", "targets": [{"model": MICRO}, {"model": LITE}]},
        },
        {
            "name": "weighted-test",
            "models": ["weighted-test"],
            "strategy": {
                "kind": "weighted",
                "targets": [{"model": model, "weight": weight} for model, weight in WEIGHTS.items()],
            },
        },
    ]
    status, body = api.call("operator_mfa", "PUT", "/v1/admin/routing", document)
    assert status == 200, body
    try:
        yield int(body["detail"]["revision"])
    finally:  # the shipped routing again, for the other tests
        assert api.call("operator_mfa", "PUT", "/v1/admin/routing", SHIPPED_ROUTING)[0] == 200


@pytest.fixture
def commercial(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.clear_faults()


@pytest.fixture
def govcloud(local_stack: LocalStackClient) -> EmulatorControl:
    return EmulatorControl(local_stack.state["govcloud_bedrock"])


def _invoke(api: ApiClient, model: str, text: str, tag: str) -> dict[str, Any]:
    body = {
        "request_id": f"rt-{uuid.uuid4().hex[:12]}",
        "model": model,
        "prompt": f"[[emulator:tag={tag}]] {text}",
        "inference": {"max_tokens": 50},
    }
    status, answer = api.call("caller2", "POST", "/v1/invoke", body)
    assert status == 200, answer
    return dict(answer)


def _under(
    revision: int, local_stack: LocalStackClient, send: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send until a request is judged under `revision`: its answer and its lineage item."""
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def judged() -> bool:
        answer = send()
        item = local_stack.lineage(answer["request_id"])
        assert item is not None
        found.append((answer, item))
        return int(item.get("routing_revision", 0)) == revision

    wait_until(judged, timeout_s=150, interval_s=0.5, what=f"a request under routing revision {revision}")
    return found[-1]


def test_a_cui_request_is_answered_in_govcloud_and_never_crosses(
    api: ApiClient, local_stack: LocalStackClient, commercial: EmulatorControl, govcloud: EmulatorControl
) -> None:
    cui = "CUI//SP-PRVCY\nSummarise the roster of the office."

    # WHEN a CUI request asks for the GovCloud-native model
    tag = f"cui{uuid.uuid4().hex[:10]}"
    answer = _invoke(api, "govcloud", cui, tag)

    # THEN GovCloud's own Bedrock answers it, once, and commercial Bedrock never sees it
    assert answer["status"] == "COMPLETED", answer
    assert answer["model"]["resolved"] == GOVCLOUD_MODEL
    assert govcloud.counters().tag(tag).successes == 1
    assert commercial.counters().tag(tag).calls == 0
    # AND lineage says where: GovCloud, with the function's role, no commercial region or endpoint
    item = local_stack.lineage(answer["request_id"])
    assert item is not None
    assert (item["model_id"], item["partition"], item["credential_type"]) == (
        GOVCLOUD_MODEL,
        "govcloud",
        "function-role",
    )
    assert "commercial_region" not in item and "commercial_endpoint" not in item
    assert set(item["classification"]["categories"]) == {"cui.specified"}

    # WHEN the same content asks for a commercial model
    tag = f"cuc{uuid.uuid4().hex[:10]}"
    blocked = _invoke(api, "default", cui, tag)

    # THEN it is blocked, as ever: no Bedrock on either side
    assert blocked["status"] == "BLOCKED", blocked
    assert commercial.counters().tag(tag).calls == 0 and govcloud.counters().tag(tag).calls == 0


def _cui_request(api: str, tag: str) -> dict[str, Any]:
    text = f"[[emulator:tag={tag}]] CUI//SP-PRVCY\nSummarise the roster of the office."
    request: dict[str, Any] = {"request_id": f"rt-{uuid.uuid4().hex[:12]}", "model": "govcloud", "api": api}
    if api == "converse":
        return request | {"prompt": text}
    return request | {
        "body": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": text}],
        }
    }


@pytest.mark.parametrize("bedrock_api", ["converse", "invoke_model"])
@pytest.mark.parametrize("path", ["queue", "workflow", "sync"])
def test_every_path_answers_a_cui_request_in_govcloud_with_its_own_role(
    path: str,
    bedrock_api: str,
    api: ApiClient,
    local_stack: LocalStackClient,
    results: ResultCollector,
    commercial: EmulatorControl,
    govcloud: EmulatorControl,
) -> None:
    # GIVEN a CUI request for the GovCloud-native model (Converse, or a native InvokeModel body)
    tag = f"p{uuid.uuid4().hex[:10]}"
    request = _cui_request(bedrock_api, tag)

    # WHEN it comes through the queue, POST /v1/requests (the Standard workflow) or POST /v1/invoke
    if path == "queue":
        local_stack.client("sqs").send_message(
            QueueUrl=local_stack.outputs["RequestsQueueUrl"], MessageBody=json.dumps(request)
        )
    elif path == "workflow":
        status, accepted = api.call("operator", "POST", "/v1/requests", request)
        assert status == 202, accepted
    else:
        status, answer = api.call("caller2", "POST", "/v1/invoke", request)
        assert status == 200, answer
    event = results.wait_for(request["request_id"], timeout_s=90)

    # THEN the step that calls Bedrock answers it in GovCloud, authorized by its role's grant (the
    # GovCloud emulator evaluates the role's policies), and commercial Bedrock never sees it
    assert event["detail-type"] == "Inference Completed", event["detail"]
    assert govcloud.counters().tag(tag).successes == 1
    assert commercial.counters().tag(tag).calls == 0
    item = local_stack.lineage(request["request_id"])
    assert item is not None and (item["partition"], item["model_id"]) == ("govcloud", GOVCLOUD_MODEL)


def test_a_throttled_primary_falls_back_with_one_call_per_hop(
    api: ApiClient, local_stack: LocalStackClient, revision: int, commercial: EmulatorControl
) -> None:
    tags: list[str] = []

    def send() -> dict[str, Any]:
        # GIVEN the primary throttles its next call (armed afresh for each try)
        commercial.clear_faults()
        commercial.inject_fault("ThrottlingException", model=MICRO, count=1)
        tags.append(f"fb{uuid.uuid4().hex[:10]}")
        # WHEN a request routed by the fallback strategy comes
        return _invoke(api, "fallback-test", "Name a river.", tags[-1])

    answer, item = _under(revision, local_stack, send)

    # THEN the next model answers it: two Bedrock calls, one per hop, and one answer
    assert answer["status"] == "COMPLETED", answer
    assert answer["model"]["resolved"] == LITE
    counted = commercial.counters().tag(tags[-1])
    assert (counted.calls, counted.successes, counted.throttles) == (2, 1, 1)
    # AND lineage records both hops, in order, and the strategy that chose them
    assert item["route_strategy"] == "fallback-test"
    assert [(h["model_id"], h["outcome"]) for h in item["route_hops"]] == [
        (MICRO, "ThrottlingException"),
        (LITE, "answered"),
    ]
    assert item["model_id"] == LITE and item["partition"] == "commercial"


def test_a_weighted_split_matches_its_weights(
    api: ApiClient, local_stack: LocalStackClient, revision: int
) -> None:
    # GIVEN a first request judged under the weighted strategy's revision
    first = _under(revision, local_stack, lambda: _invoke(api, "weighted-test", "Hi.", "w"))
    items = [first[1]]

    # WHEN more requests come, until 60 have been judged under it
    while len(items) < WEIGHTED_REQUESTS:
        answer = _invoke(api, "weighted-test", "Hi.", "w")
        assert answer["status"] == "COMPLETED", answer
        item = local_stack.lineage(answer["request_id"])
        assert item is not None
        if int(item.get("routing_revision", 0)) == revision:
            items.append(item)

    # THEN the split matches the weights (3:1) within the tolerance, each answered by the model it drew
    answered = [item["model_id"] for item in items]
    expected = WEIGHTED_REQUESTS * WEIGHTS[MICRO] / sum(WEIGHTS.values())
    assert abs(answered.count(MICRO) - expected) <= WEIGHTED_TOLERANCE, answered
    assert answered.count(MICRO) + answered.count(LITE) == WEIGHTED_REQUESTS
    assert all(item["route_strategy"] == "weighted-test" for item in items)


def test_xpi_compare_runs_the_prompts_through_both_partitions(
    api: ApiClient, local_stack: LocalStackClient, commercial: EmulatorControl, govcloud: EmulatorControl
) -> None:
    from botocore.credentials import Credentials
    from xpi_tools.compare import compare, signed_invoke

    # GIVEN the demo's prompt set, and the stack's API caller
    caller = local_stack.state["api_credentials"]["caller2"]
    invoke = signed_invoke(
        local_stack.state["api"],
        local_stack.state["region"],
        Credentials(caller["aws_access_key_id"], caller["aws_secret_access_key"]),
    )
    commercial_before, govcloud_before = commercial.counters().totals, govcloud.counters().totals

    # WHEN compared across a commercial model and the GovCloud-native one
    report = json.loads(
        compare(ROOT / "events" / "compare" / "prompts.jsonl", ["default", "govcloud"], invoke, as_json=True)
    )

    # THEN every prompt was answered by each, each side by its own Bedrock, with the references matched
    by_model = {row["model"]: row for row in report["models"]}
    assert by_model["default"]["completed"] == by_model["govcloud"]["completed"] == 3
    assert by_model["default"]["score"] == by_model["govcloud"]["score"] == 1.0
    assert commercial.counters().totals.successes - commercial_before.successes >= 3
    assert govcloud.counters().totals.successes - govcloud_before.successes == 3
    assert {r["resolved"] for r in report["requests"] if r["model"] == "govcloud"} == {GOVCLOUD_MODEL}
