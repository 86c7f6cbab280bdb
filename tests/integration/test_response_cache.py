"""The exact-match response cache on the local stack, on each path that calls Bedrock (the queue's
process step, POST /v1/invoke in one function, the Standard workflow's invoke step through POST
/v1/requests): a repeated deterministic request is answered from the cache table without a Bedrock
call, and lineage records the hit with the cost saved. Each role's cache grants are used here."""

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from xpi_tools.emulator.client import EmulatorControl

from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.integration.test_api import ApiClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> ApiClient:
    return ApiClient(local_stack)


@pytest.fixture(scope="module")
def emulator(local_stack: LocalStackClient) -> EmulatorControl:
    return EmulatorControl(local_stack.state["emulator_control"])


def _cached_request(tag: str, request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model": "default",
        "prompt": f"Name the three stages of change control. [[emulator:tag={tag}]]",
        "inference": {"temperature": 0, "max_tokens": 200},
        "cache": {"ttl_s": 600},
    }


def _assert_hit_recorded(local_stack: LocalStackClient, first_id: str, second_id: str) -> None:
    first, second = local_stack.lineage(first_id), local_stack.lineage(second_id)
    assert first is not None and second is not None
    assert first["status"] == second["status"] == "COMPLETED"
    assert first["cache"]["status"] == "miss"
    assert second["cache"] == {
        "status": "hit",
        "ttl_s": Decimal(600),
        "saved_usd": first["estimated_cost_usd"],
    }
    assert Decimal(first["estimated_cost_usd"]) > 0 and Decimal(second["estimated_cost_usd"]) == 0
    assert second["response_hmac"] == first["response_hmac"]
    assert second["credential_version"] == "response-cache"


def _twice(send: Callable[[str], None], emulator: EmulatorControl, tag: str) -> tuple[str, str]:
    first_id, second_id = f"cache-{tag}-1", f"cache-{tag}-2"
    send(first_id)
    send(second_id)
    assert emulator.counters().tag(tag).calls == 1  # one Bedrock call for both
    return first_id, second_id


def test_the_queue_path_answers_a_repeat_from_the_cache(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    tag = f"q{uuid.uuid4().hex[:8]}"

    def send(request_id: str) -> None:
        local_stack.send(_cached_request(tag, request_id))
        assert results.wait_for(request_id)["detail-type"] == "Inference Completed"

    first_id, second_id = _twice(send, emulator, tag)
    _assert_hit_recorded(local_stack, first_id, second_id)
    event = results.wait_for(second_id)["detail"]
    assert event["usage"]["cache"] == "hit" and event["output"]["text"]


def test_the_sync_path_answers_a_repeat_from_the_cache(
    api: ApiClient, local_stack: LocalStackClient, emulator: EmulatorControl
) -> None:
    tag = f"s{uuid.uuid4().hex[:8]}"
    answers: dict[str, Any] = {}

    def send(request_id: str) -> None:
        status, answers[request_id] = api.call(
            "caller2", "POST", "/v1/invoke", _cached_request(tag, request_id)
        )
        assert status == 200, answers[request_id]

    first_id, second_id = _twice(send, emulator, tag)
    assert answers[second_id]["output"]["text"] == answers[first_id]["output"]["text"]
    assert answers[second_id]["usage"]["cache"] == "hit"
    assert answers[second_id]["usage"]["saved_usd"] == answers[first_id]["usage"]["estimated_cost_usd"]
    _assert_hit_recorded(local_stack, first_id, second_id)


def test_the_standard_workflow_answers_a_repeat_from_the_cache(
    api: ApiClient, local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl
) -> None:
    tag = f"w{uuid.uuid4().hex[:8]}"

    def send(request_id: str) -> None:
        status, accepted = api.call("operator", "POST", "/v1/requests", _cached_request(tag, request_id))
        assert status == 202, accepted
        assert results.wait_for(request_id)["detail-type"] == "Inference Completed"

    first_id, second_id = _twice(send, emulator, tag)
    _assert_hit_recorded(local_stack, first_id, second_id)
