"""The Bedrock adapter's streamed Converse answer, against the emulator on loopback: a live answer that
keeps streaming is not cut off by the short gap allowed between chunks, a stalled one is noticed within
that gap and is a lost answer (billed once, never retried), and the whole call still ends by its timeout.
"""

import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from xpi.adapters.bedrock import BotoBedrockGateway
from xpi.domain.errors import BedrockAnswerLost, BedrockThrottled
from xpi.models.credentials import CommercialCredentials, IamKeys
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

from tests.helpers.errors import raises_with_reason

KEY_ID, SECRET = "AKIASTREAMTEST00", "stream-test-secret"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


class Keys:
    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        return CommercialCredentials(
            version_id="v-1",
            secret=IamKeys(aws_access_key_id=KEY_ID, aws_secret_access_key=SecretStr(SECRET)),
        )


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey(KEY_ID, SECRET)])) as emu:
        yield emu


@pytest.fixture
def emu(emulator: BedrockEmulator) -> Iterator[BedrockEmulator]:
    emulator.control.reset()
    yield emulator
    emulator.control.reset()


def route(emu: BedrockEmulator) -> Route:
    return Route(model_id=MODEL, region="us-east-1", endpoint=emu.url, api="converse")


def request(output_chars: int) -> InferenceRequest:
    return InferenceRequest(model="m", prompt=f"[[emulator:output_chars={output_chars}]] hello")


def test_a_streamed_answer_is_assembled_whole(emu: BedrockEmulator) -> None:
    answer = BotoBedrockGateway(Keys(), timeout_s=10).answer(route(emu), request(1000))

    assert answer.text is not None and len(answer.text) == 1000
    assert answer.stop_reason == "end_turn"
    assert answer.usage.output_tokens == 250
    assert emu.control.counters().model(MODEL).successes == 1


def test_an_answer_that_keeps_streaming_longer_than_the_gap_is_not_cut_off(emu: BedrockEmulator) -> None:
    # GIVEN an answer that streams for about 1.5 s, a chunk every 0.2 s, and a gap of 1 s allowed
    emu.control.set_latency(MODEL, per_output_token_ms=50)
    gateway = BotoBedrockGateway(Keys(), timeout_s=10, idle_timeout_s=1)
    started = time.monotonic()

    # WHEN
    answer = gateway.answer(route(emu), request(120))

    # THEN the whole answer came back, though it took longer than the gap
    assert time.monotonic() - started > 1
    assert answer.text is not None and len(answer.text) == 120


def test_a_stream_that_stalls_after_its_first_chunk_is_a_lost_answer_within_the_gap(
    emu: BedrockEmulator,
) -> None:
    # GIVEN Bedrock answers, sends half of the stream, then nothing for a minute
    emu.control.inject_fault("StreamStall", model=MODEL, count=1, stage="stall", stall_seconds=60)
    gateway = BotoBedrockGateway(Keys(), timeout_s=120, idle_timeout_s=0.5)
    started = time.monotonic()

    # WHEN / THEN the stall is noticed within seconds, not after the call's 120 s, and it is a lost
    # answer (a paid call: never retried, counted in lineage), after one call
    with raises_with_reason(BedrockAnswerLost, "reading commercial Bedrock's stream after"):
        gateway.answer(route(emu), request(400))
    assert time.monotonic() - started < 10
    counters = emu.control.counters().model(MODEL)
    assert (counters.calls, counters.successes) == (1, 1)


def test_a_stream_still_going_at_the_calls_timeout_is_a_lost_answer(emu: BedrockEmulator) -> None:
    # GIVEN an answer that would stream for about 5 s, and a call allowed 1 s in all
    emu.control.set_latency(MODEL, per_output_token_ms=50)
    gateway = BotoBedrockGateway(Keys(), timeout_s=1)
    started = time.monotonic()

    # WHEN / THEN the call ends at its timeout (the function's own limit lies beyond it)
    with raises_with_reason(BedrockAnswerLost, "outlasted the call's timeout|reading commercial Bedrock"):
        gateway.answer(route(emu), request(400))
    assert time.monotonic() - started < 3


def test_an_exception_event_mid_stream_is_bedrocks_own_error(emu: BedrockEmulator) -> None:
    # GIVEN Bedrock ends the stream half-way with a throttling exception event (not billed)
    emu.control.inject_fault("ThrottlingException", model=MODEL, count=1, stage="stream")

    # WHEN / THEN it is translated as the HTTP error would be: retryable throttling
    with pytest.raises(BedrockThrottled):
        BotoBedrockGateway(Keys(), timeout_s=10).answer(route(emu), request(400))


def test_prompt_cache_tokens_are_read_from_the_stream_and_priced(emu: BedrockEmulator) -> None:
    from xpi.domain.routing import estimate_cost, load_default_routing

    # GIVEN a model with prompt caching, and a long document before a cache point, asked about twice
    haiku = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    document = "Clause text of the records schedule. " * 150
    asked = [
        InferenceRequest.model_validate(
            {"model": "m", "system": [document, {"cachePoint": {"type": "default"}}], "prompt": question}
        )
        for question in ("first question", "second question")
    ]
    gateway = BotoBedrockGateway(Keys(), timeout_s=10)
    cached_route = Route(model_id=haiku, region="us-east-1", endpoint=emu.url, api="converse")
    # WHEN both are answered
    first, second = (gateway.answer(cached_route, r) for r in asked)
    # THEN the first wrote the document to Bedrock's cache and the second read it, each priced so
    prefix = (len(document) + 3) // 4
    assert (first.usage.cache_write_input_tokens, first.usage.cache_read_input_tokens) == (prefix, None)
    assert (second.usage.cache_read_input_tokens, second.usage.cache_write_input_tokens) == (prefix, None)
    routing = load_default_routing()
    assert estimate_cost(routing, haiku, second.usage) < estimate_cost(routing, haiku, first.usage) / 5
