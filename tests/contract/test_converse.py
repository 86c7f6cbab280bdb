"""Converse and ConverseStream through the stock bedrock-runtime client."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from urllib3.exceptions import ReadTimeoutError
from xpi_tools.emulator import BedrockEmulator, EmulatorControl

from .support import (
    HAIKU,
    NO_RETRIES,
    NOVA_PRO,
    SONNET_37,
    SONNET_37_PROFILE,
    TITAN_EMBED_V2,
    error_of,
    send_signed,
    user,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

ON_DEMAND_MESSAGE = (
    f"Invocation of model ID {SONNET_37} with on-demand throughput isn\u2019t supported. Retry your request "
    "with "
    "the ID or ARN of an inference profile that contains this model."
)


def text_of(response: Any) -> str:
    return "".join(block["text"] for block in response["output"]["message"]["content"])


def stream_events(response: Any) -> list[dict[str, Any]]:
    return list(response["stream"])


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)


def test_converse_answers_an_assistant_message_with_usage_counted_from_the_text(
    runtime: BedrockRuntimeClient,
) -> None:
    # WHEN
    response = runtime.converse(modelId=HAIKU, messages=user("Summarise the quarterly report."))

    # THEN
    text = text_of(response)
    assert response["output"]["message"]["role"] == "assistant"
    assert text
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["inputTokens"] == math.ceil(len("Summarise the quarterly report.") / 4)
    assert usage["outputTokens"] == math.ceil(len(text) / 4)
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert response["metrics"]["latencyMs"] == 0
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"]


def test_converse_is_deterministic_for_the_same_input_and_varies_with_it(
    runtime: BedrockRuntimeClient,
) -> None:
    first = text_of(runtime.converse(modelId=HAIKU, messages=user("same question")))
    again = text_of(runtime.converse(modelId=HAIKU, messages=user("same question")))
    other = text_of(runtime.converse(modelId=HAIKU, messages=user("another question")))

    assert first == again
    assert first != other


def test_system_prompts_and_history_count_as_input_tokens(runtime: BedrockRuntimeClient) -> None:
    messages: Any = [
        {"role": "user", "content": [{"text": "a" * 40}]},
        {"role": "assistant", "content": [{"text": "b" * 20}]},
        {"role": "user", "content": [{"text": "c" * 8}]},
    ]
    response = runtime.converse(modelId=HAIKU, system=[{"text": "d" * 12}], messages=messages)

    assert response["usage"]["inputTokens"] == 10 + 5 + 2 + 3


def test_max_tokens_cuts_the_output_with_stop_reason_max_tokens(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(
        modelId=HAIKU,
        messages=user("[[emulator:output_chars=1000]] write at length"),
        inferenceConfig={"maxTokens": 25},
    )

    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] == 25
    assert len(text_of(response)) == 100


def test_a_stop_sequence_ends_the_output_before_it(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(
        modelId=HAIKU,
        messages=user("[[emulator:reply=first part END second part]]"),
        inferenceConfig={"stopSequences": ["END"]},
    )

    assert response["stopReason"] == "stop_sequence"
    assert text_of(response) == "first part "


def test_the_echo_directive_answers_the_last_user_message(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(modelId=HAIKU, messages=user("[[emulator:echo]] repeat after me"))

    assert text_of(response) == "repeat after me"


def test_an_input_over_the_context_window_is_too_long(runtime: BedrockRuntimeClient) -> None:
    # Titan Text Lite's context is 4,096 tokens, i.e. 16,384 characters for the emulator's tokenizer.
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId="amazon.titan-text-lite-v1", messages=user("x" * 16_388))

    assert error_of(excinfo) == ("ValidationException", "Input is too long for requested model.", 400)


def test_the_output_chars_directive_produces_a_large_output(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(
        modelId=SONNET_37_PROFILE, messages=user("[[emulator:output_chars=300000]] go")
    )

    assert len(text_of(response)) == 300_000
    assert response["usage"]["outputTokens"] == 75_000
    assert response["stopReason"] == "end_turn"


def test_an_inference_profile_id_and_its_arn_both_invoke_the_model(
    runtime: BedrockRuntimeClient, emulator: BedrockEmulator
) -> None:
    account = emulator.control.health()["account_id"]
    arn = f"arn:aws:bedrock:us-east-1:{account}:inference-profile/{SONNET_37_PROFILE}"

    by_id = runtime.converse(modelId=SONNET_37_PROFILE, messages=user("hello"))
    by_arn = runtime.converse(modelId=arn, messages=user("hello"))

    assert text_of(by_id) == text_of(by_arn)


def test_a_foundation_model_arn_invokes_an_on_demand_model(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(
        modelId=f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", messages=user("hi")
    )

    assert response["stopReason"] == "end_turn"


def test_a_profile_only_model_called_by_its_bare_id_answers_bedrocks_validation_error(
    runtime: BedrockRuntimeClient,
) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=SONNET_37, messages=user("hello"))

    assert error_of(excinfo) == ("ValidationException", ON_DEMAND_MESSAGE, 400)


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-nonexistent-v9:0",
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ],
)
def test_an_unknown_model_answers_the_invalid_identifier_error(
    runtime: BedrockRuntimeClient, model_id: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=model_id, messages=user("hello"))

    assert error_of(excinfo) == ("ValidationException", "The provided model identifier is invalid.", 400)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"role": "assistant", "content": [{"text": "hi"}]}],
            "A conversation must start with a user message. Try again with a conversation that starts with a "
            "user message.",
        ),
        (
            [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}],
            "A conversation must alternate between user and assistant roles. Make sure the conversation "
            "alternates between user and assistant roles and try again.",
        ),
        (
            [{"role": "user", "content": [{"text": "   "}]}],
            "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text to the "
            "text "
            "field, and try again.",
        ),
    ],
)
def test_malformed_conversations_answer_bedrocks_messages(
    runtime: BedrockRuntimeClient, messages: Any, message: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=HAIKU, messages=messages)

    assert error_of(excinfo) == ("ValidationException", message, 400)


def test_max_tokens_above_the_model_limit_is_refused(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=HAIKU, messages=user("hi"), inferenceConfig={"maxTokens": 5000})

    assert error_of(excinfo) == (
        "ValidationException",
        "The maximum tokens you requested exceeds the model limit of 4096. Try again with a maximum tokens "
        "value that is lower than 4096.",
        400,
    )


def test_an_embedding_model_is_refused_by_converse(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=TITAN_EMBED_V2, messages=user("hi"))

    code, message, _ = error_of(excinfo)
    assert code == "ValidationException"
    assert message.startswith("This action doesn't support the model that you provided.")


def test_unknown_additional_model_request_fields_are_refused_by_the_model(
    runtime: BedrockRuntimeClient,
) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId=HAIKU, messages=user("hi"), additionalModelRequestFields={"not_a_field": 1})

    assert error_of(excinfo) == (
        "ValidationException",
        "The model returned the following errors: Malformed input request: "
        "#: extraneous key [not_a_field] is "
        "not permitted, please reformat your input and try again.",
        400,
    )


def test_additional_fields_the_model_knows_are_accepted(runtime: BedrockRuntimeClient) -> None:
    response = runtime.converse(
        modelId=HAIKU, messages=user("hi"), additionalModelRequestFields={"top_k": 20}
    )

    assert response["stopReason"] == "end_turn"


def test_unknown_request_members_and_malformed_json_are_validation_errors(emulator: BedrockEmulator) -> None:
    path = f"/model/{HAIKU.replace(':', '%3A')}/converse"
    unknown = send_signed(
        emulator.url, "POST", path, json.dumps({"messages": user("hi"), "notAParameter": True}).encode()
    )
    broken = send_signed(emulator.url, "POST", path, b'{"messages": [')

    assert (unknown.status, unknown.error_type) == (400, "ValidationException")
    assert "notAParameter" in json.loads(unknown.body)["message"]
    assert (broken.status, broken.error_type) == (400, "ValidationException")


def test_converse_stream_emits_the_event_sequence_with_usage(runtime: BedrockRuntimeClient) -> None:
    # GIVEN the non-streamed answer to the same request
    expected = runtime.converse(modelId=NOVA_PRO, messages=user("stream this please"))

    # WHEN
    events = stream_events(runtime.converse_stream(modelId=NOVA_PRO, messages=user("stream this please")))

    # THEN
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert events[0]["messageStart"]["role"] == "assistant"
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert streamed_text(events) == text_of(expected)
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": expected["usage"]["inputTokens"],
        "outputTokens": expected["usage"]["outputTokens"],
        "totalTokens": expected["usage"]["totalTokens"],
    }
    assert "latencyMs" in events[-1]["metadata"]["metrics"]


def test_converse_stream_reports_max_tokens(runtime: BedrockRuntimeClient) -> None:
    events = stream_events(
        runtime.converse_stream(
            modelId=HAIKU, messages=user("[[emulator:output_tokens=500]]"), inferenceConfig={"maxTokens": 40}
        )
    )

    assert events[-2]["messageStop"]["stopReason"] == "max_tokens"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 40
    assert len(streamed_text(events)) == 160


def test_converse_stream_carries_a_large_output(runtime: BedrockRuntimeClient) -> None:
    events = stream_events(
        runtime.converse_stream(modelId=SONNET_37_PROFILE, messages=user("[[emulator:output_chars=300000]]"))
    )

    assert len(streamed_text(events)) == 300_000
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 75_000


def test_converse_stream_errors_before_the_stream_are_http_errors(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.converse_stream(modelId=SONNET_37, messages=user("hello"))

    assert error_of(excinfo) == ("ValidationException", ON_DEMAND_MESSAGE, 400)


def test_a_stream_stage_fault_ends_the_stream_with_an_exception_event(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN
    control.inject_fault("ThrottlingException", model=HAIKU, count=1, stage="stream")
    response = runtime.converse_stream(modelId=HAIKU, messages=user("[[emulator:output_chars=400]]"))
    received: list[Any] = []

    # WHEN
    with pytest.raises(EventStreamError) as excinfo:
        received.extend(response["stream"])

    # THEN the stream started, then failed the way Bedrock's streams fail
    assert "messageStart" in received[0]
    assert any("contentBlockDelta" in e for e in received)
    assert excinfo.value.response["Error"]["Code"] == "throttlingException"
    assert excinfo.value.response["Error"]["Message"] == "Too many requests, please wait before trying again."
    assert control.counters().model(HAIKU).throttles == 1


def test_a_stall_fault_sends_half_the_stream_then_goes_silent(
    emulator: BedrockEmulator, make_client: Any, control: EmulatorControl
) -> None:
    # GIVEN a stall of 30 s on the next call, and a client that waits at most 1 s between reads
    control.inject_fault("StreamStall", model=HAIKU, count=1, stage="stall", stall_seconds=30)
    impatient = make_client("bedrock-runtime", emulator.url, config=NO_RETRIES.merge(Config(read_timeout=1)))
    response = impatient.converse_stream(modelId=HAIKU, messages=user("[[emulator:output_chars=400]]"))
    received: list[Any] = []

    # WHEN the stream is read
    with pytest.raises(ReadTimeoutError):
        received.extend(response["stream"])

    # THEN the first half arrived, then nothing: no end of message, and the call counts as answered
    assert "messageStart" in received[0]
    assert 0 < len(streamed_text(received)) < 400
    assert not any("messageStop" in e for e in received)
    assert control.counters().model(HAIKU).successes == 1
    assert control.faults() == []


# -- Bedrock prompt caching -------------------------------------------------------------------------

CACHE_POINT: Any = {"cachePoint": {"type": "default"}}
LONG_POLICY = "Records schedule clause. " * 200  # 5,000 characters: 1,250 tokens, over the 1,024 minimum


def cached_messages(question: str) -> Any:
    return [{"role": "user", "content": [{"text": LONG_POLICY}, CACHE_POINT, {"text": question}]}]


def test_a_cache_point_writes_its_prefix_then_reads_it_within_the_ttl(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    # GIVEN a long shared prefix with a cache point, then two questions after it
    first = runtime.converse(modelId=HAIKU, messages=cached_messages("Which clause covers email?"))
    second = runtime.converse(modelId=HAIKU, messages=cached_messages("Which clause covers paper?"))
    prefix = math.ceil(len(LONG_POLICY) / 4)

    # THEN the first writes the prefix to the cache, the second reads it; neither counts it as input
    assert first["usage"]["cacheWriteInputTokens"] == prefix and first["usage"]["cacheReadInputTokens"] == 0
    assert second["usage"]["cacheReadInputTokens"] == prefix and second["usage"]["cacheWriteInputTokens"] == 0
    assert second["usage"]["inputTokens"] == math.ceil(len("Which clause covers paper?") / 4)
    usage = second["usage"]
    assert usage["totalTokens"] == (
        usage["inputTokens"]
        + usage["outputTokens"]
        + usage["cacheReadInputTokens"]
        + usage["cacheWriteInputTokens"]
    )
    counted = control.counters().model(HAIKU)
    assert (counted.cache_read_input_tokens, counted.cache_write_input_tokens) == (prefix, prefix)

    # WHEN the prefix has gone unused for longer than its TTL (here 60 s; Bedrock's is 5 minutes)
    control.set_prompt_cache(ttl_s=60)
    runtime.converse(modelId=HAIKU, messages=cached_messages("Which clause covers telex?"))  # kept 60 s
    control.set_clock_offset(61)
    third = runtime.converse(modelId=HAIKU, messages=cached_messages("Which clause covers fax?"))
    # THEN it is written again
    assert third["usage"]["cacheWriteInputTokens"] == prefix and third["usage"]["cacheReadInputTokens"] == 0


def test_a_prefix_below_the_minimum_or_without_a_cache_point_is_not_cached(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    short: Any = [{"role": "user", "content": [{"text": "short prefix"}, CACHE_POINT, {"text": "q"}]}]
    for messages in (short, short, user(LONG_POLICY), user(LONG_POLICY)):
        usage = runtime.converse(modelId=HAIKU, messages=messages)["usage"]
        assert "cacheReadInputTokens" not in usage and "cacheWriteInputTokens" not in usage


def test_a_system_cache_point_is_cached_in_the_stream_too(
    runtime: BedrockRuntimeClient, control: EmulatorControl
) -> None:
    system: Any = [{"text": LONG_POLICY}, CACHE_POINT]
    runtime.converse(modelId=NOVA_PRO, system=system, messages=user("first"))
    events = stream_events(runtime.converse_stream(modelId=NOVA_PRO, system=system, messages=user("second")))
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert usage["cacheReadInputTokens"] == math.ceil(len(LONG_POLICY) / 4)
