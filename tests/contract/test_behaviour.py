"""Quotas, injected faults, latency and counters, driven through the control endpoint and observed
through boto3."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from xpi_tools.emulator import BedrockEmulator, EmulatorControl, EmulatorControlError

from .support import HAIKU, KEY_ID, NOVA_PRO, SESSION_KEY_ID, SESSION_SECRET, SESSION_TOKEN, error_of, user

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

    from .conftest import ClientFactory

THROTTLED = ("ThrottlingException", "Too many requests, please wait before trying again.", 429)


def call(runtime: BedrockRuntimeClient, model_id: str = HAIKU, text: str = "hello") -> Any:
    return runtime.converse(modelId=model_id, messages=user(text))


def failure(runtime: BedrockRuntimeClient, model_id: str = HAIKU) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(runtime, model_id)
    return error_of(excinfo)


def test_a_tiny_requests_per_minute_quota_throttles(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN two requests a minute for one model
    control.set_quota(HAIKU, requests_per_minute=2)

    call(runtime)
    call(runtime)

    # THEN the third is throttled, and another model is not
    assert failure(runtime) == THROTTLED
    assert call(runtime, NOVA_PRO)["stopReason"] == "end_turn"
    counters = control.counters()
    assert (counters.model(HAIKU).successes, counters.model(HAIKU).throttles) == (2, 1)
    assert counters.model(NOVA_PRO).throttles == 0


def test_a_quota_set_through_a_profile_id_applies_to_the_model(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    control.set_quota("us.anthropic.claude-3-haiku-20240307-v1:0", requests_per_minute=1)

    call(runtime)

    assert failure(runtime, "us.anthropic.claude-3-haiku-20240307-v1:0") == THROTTLED


def test_a_tokens_per_minute_quota_throttles_once_spent(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN 120 tokens a minute, of which a first call spends 8 input and 100 output tokens
    control.set_quota(HAIKU, tokens_per_minute=120)
    first = call(runtime, text="[[emulator:output_tokens=100]]")
    assert first["usage"]["inputTokens"] + first["usage"]["outputTokens"] == 108

    # WHEN the next call needs 20 input tokens, more than the 12 (and a trickle) left
    with pytest.raises(ClientError) as excinfo:
        call(runtime, text="x" * 80)

    # THEN it is throttled, while a call that fits in what is left passes
    assert error_of(excinfo) == THROTTLED
    assert call(runtime, text="tiny")["stopReason"] == "end_turn"


def test_quota_buckets_refill_over_time(runtime: BedrockRuntimeClient, control: EmulatorControl) -> None:
    # GIVEN two requests a minute (one every 30 s, a bucket of two), both used
    control.set_quota(HAIKU, requests_per_minute=2)
    call(runtime)
    call(runtime)
    assert failure(runtime) == THROTTLED

    # WHEN 30 s pass on the emulator's clock (moved, not waited for)
    control.set_clock_offset(30)

    # THEN one request is back, and only one
    assert call(runtime)["stopReason"] == "end_turn"
    assert failure(runtime) == THROTTLED


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("ThrottlingException", 429),
        ("ModelTimeoutException", 408),
        ("ServiceUnavailableException", 503),
        ("ModelNotReadyException", 429),
        ("InternalServerException", 500),
        ("ModelErrorException", 424),
        ("AccessDeniedException", 403),
    ],
)
def test_an_injected_fault_answers_its_code_and_status_for_the_next_n_calls(
    runtime: BedrockRuntimeClient, control: EmulatorControl, error: Any, status: int
) -> None:
    control.inject_fault(error, model=HAIKU, count=2)

    first, second = failure(runtime), failure(runtime)

    assert (first[0], first[2]) == (error, status)
    assert second == first
    assert call(runtime)["stopReason"] == "end_turn"
    assert control.counters().model(HAIKU).error_codes == {error: 2}


def test_an_injected_fault_carries_a_custom_message(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    control.inject_fault("ServiceUnavailableException", count=1, message="Regional outage drill.")

    assert failure(runtime) == ("ServiceUnavailableException", "Regional outage drill.", 503)


def test_a_fault_rate_fails_about_that_fraction_of_calls(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    control.inject_fault("ModelTimeoutException", model=HAIKU, rate=0.5)
    outcomes = []
    for _ in range(200):
        try:
            call(runtime)
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)

    assert 60 <= outcomes.count(False) <= 140
    assert control.faults()[0].fired == outcomes.count(False)


def test_faults_are_scoped_to_models_and_operations(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    control.inject_fault("ThrottlingException", model=NOVA_PRO, count=5, operations=["InvokeModel"])

    assert call(runtime, NOVA_PRO)["stopReason"] == "end_turn"
    assert call(runtime, HAIKU)["stopReason"] == "end_turn"
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_model(modelId=NOVA_PRO, body=json.dumps({"messages": user("hi")}))
    assert error_of(excinfo) == THROTTLED


def test_faults_can_be_listed_and_removed(runtime: BedrockRuntimeClient, control: EmulatorControl) -> None:
    fault = control.inject_fault("ThrottlingException", count=3)
    assert [f.id for f in control.faults()] == [fault.id]

    control.remove_fault(fault.id)

    assert control.faults() == []
    assert call(runtime)["stopReason"] == "end_turn"


def test_the_control_endpoint_refuses_bad_fault_requests(control: EmulatorControl) -> None:
    with pytest.raises(EmulatorControlError) as excinfo:
        control.inject_fault("NotAnError", count=1)  # type: ignore[arg-type]

    assert excinfo.value.status == 400


def test_latency_is_time_to_first_token_plus_per_output_token(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN 150 ms to the first token and 1 ms per output token; the answer is 100 tokens
    control.set_latency(HAIKU, time_to_first_token_ms=150, per_output_token_ms=1)

    started = time.perf_counter()
    response = call(runtime, text="[[emulator:output_tokens=100]]")
    elapsed = time.perf_counter() - started

    assert response["metrics"]["latencyMs"] == 250
    assert elapsed >= 0.25
    fast_started = time.perf_counter()
    call(runtime, NOVA_PRO)
    assert time.perf_counter() - fast_started < 0.2


def test_stream_latency_delays_the_first_event(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    control.set_latency(time_to_first_token_ms=200)

    started = time.perf_counter()
    stream = runtime.converse_stream(modelId=HAIKU, messages=user("hi"))["stream"]
    next(iter(stream))

    assert time.perf_counter() - started >= 0.2


def test_counters_are_kept_per_model_and_per_access_key(
    emulator: BedrockEmulator,
    runtime: BedrockRuntimeClient,
    make_client: ClientFactory,
    control: EmulatorControl,
) -> None:
    # GIVEN calls under two different keys
    other = make_client(
        "bedrock-runtime", emulator.url, key_id=SESSION_KEY_ID, secret=SESSION_SECRET, token=SESSION_TOKEN
    )
    first = call(runtime)
    second = call(runtime, NOVA_PRO)
    third = call(other)
    control.inject_fault("ThrottlingException", count=1)
    failure(other)

    # THEN
    counters = control.counters()
    mine, theirs = counters.key(KEY_ID), counters.key(SESSION_KEY_ID)
    assert (mine.calls, mine.successes, mine.errors) == (2, 2, 0)
    assert mine.input_tokens == first["usage"]["inputTokens"] + second["usage"]["inputTokens"]
    assert mine.output_tokens == first["usage"]["outputTokens"] + second["usage"]["outputTokens"]
    assert (theirs.calls, theirs.successes, theirs.throttles) == (2, 1, 1)
    assert theirs.output_tokens == third["usage"]["outputTokens"]
    assert counters.model(HAIKU).calls == 3
    assert counters.model(f"us.{HAIKU}") == counters.model(HAIKU)  # a profile id names its model
    assert counters.totals.calls == 4
    assert counters.operations["Converse"] == 4


def test_counters_are_kept_per_tag_directive_with_the_answer_unchanged(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN two calls tagged "req-1" (one of them failed by a fault), one tagged "req-2", one untagged
    call(runtime, text="hello")
    control.inject_fault("InternalServerException", count=1)
    with pytest.raises(ClientError):
        call(runtime, text="hello [[emulator:tag=req-1]]")
    call(runtime, text="hello [[emulator:tag=req-1]]")
    call(runtime, NOVA_PRO, text="again [[emulator:tag=req-2]]")

    # THEN each tag counts its own calls
    counters = control.counters()
    assert (counters.tag("req-1").calls, counters.tag("req-1").successes) == (2, 1)
    assert (counters.tag("req-2").calls, counters.tag("req-2").successes) == (1, 1)
    assert counters.tag("never-used").calls == 0
    assert set(counters.tags) == {"req-1", "req-2"}


def test_reset_clears_counters_faults_and_quotas(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    call(runtime)
    control.set_quota(requests_per_minute=0)
    control.inject_fault("ThrottlingException", count=10)

    control.reset()

    assert control.counters().totals.calls == 0
    assert call(runtime)["stopReason"] == "end_turn"
