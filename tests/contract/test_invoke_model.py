"""InvokeModel (and its response stream) with the bodies of the main model families, and CountTokens."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from .support import (
    HAIKU,
    LLAMA3_8B,
    NOVA_PRO,
    SONNET_37,
    SONNET_37_PROFILE,
    TITAN_EMBED_V1,
    TITAN_EMBED_V2,
    TITAN_TEXT,
    error_of,
    user,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient


def invoke(
    runtime: BedrockRuntimeClient, model_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    response = runtime.invoke_model(modelId=model_id, body=json.dumps(body), contentType="application/json")
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def stream_chunks(runtime: BedrockRuntimeClient, model_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = runtime.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    assert response["contentType"] == "application/json"
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def anthropic_body(text: str, max_tokens: int = 200, **extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def test_anthropic_messages_body_answers_a_message(runtime: BedrockRuntimeClient) -> None:
    body, headers = invoke(runtime, HAIKU, anthropic_body("Describe the boundary.", system="Be terse."))

    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-3-haiku-20240307"
    assert body["id"].startswith("msg_bdrk_")
    text = body["content"][0]["text"]
    assert body["content"][0]["type"] == "text"
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == math.ceil(len("Describe the boundary.") / 4) + math.ceil(10 / 4)
    assert body["usage"]["output_tokens"] == math.ceil(len(text) / 4)
    assert headers["x-amzn-bedrock-output-token-count"] == str(body["usage"]["output_tokens"])
    assert headers["x-amzn-bedrock-input-token-count"] == str(body["usage"]["input_tokens"])


def test_anthropic_stop_reasons(runtime: BedrockRuntimeClient) -> None:
    cut, _ = invoke(runtime, HAIKU, anthropic_body("[[emulator:output_tokens=100]]", max_tokens=10))
    stopped, _ = invoke(
        runtime, HAIKU, anthropic_body("[[emulator:reply=alpha STOP beta]]", stop_sequences=["STOP"])
    )

    assert (cut["stop_reason"], cut["usage"]["output_tokens"]) == ("max_tokens", 10)
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "STOP")
    assert stopped["content"][0]["text"] == "alpha "


def test_anthropic_body_through_an_inference_profile(runtime: BedrockRuntimeClient) -> None:
    body, _ = invoke(runtime, SONNET_37_PROFILE, anthropic_body("hello"))

    assert body["model"] == "claude-3-7-sonnet-20250219"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]},
            "Malformed input request: #: required key [max_tokens] not found, please reformat your input and "
            "try again.",
        ),
        (
            {**anthropic_body("hi"), "stream": True, "model": "claude"},
            "Malformed input request: #: extraneous key [stream] is not permitted"
            "#: extraneous key [model] is not "
            "permitted, please reformat your input and try again.",
        ),
        (
            anthropic_body("hi", max_tokens=9000),
            "max_tokens: 9000 > 4096, which is the maximum allowed number of output tokens for "
            "claude-3-haiku-20240307",
        ),
    ],
)
def test_malformed_anthropic_bodies_answer_bedrocks_validation_messages(
    runtime: BedrockRuntimeClient, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(runtime, HAIKU, body)

    assert error_of(excinfo) == ("ValidationException", message, 400)


def test_a_body_that_is_not_json_is_malformed(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_model(modelId=HAIKU, body=b"not json")

    assert error_of(excinfo) == (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
        400,
    )


def test_a_profile_only_model_refuses_invoke_model_on_demand(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(runtime, SONNET_37, anthropic_body("hi"))

    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        f"Invocation of model ID {SONNET_37} with on-demand throughput isn\u2019t supported."
    )


def test_nova_messages_body(runtime: BedrockRuntimeClient) -> None:
    body, _ = invoke(
        runtime,
        NOVA_PRO,
        {
            "schemaVersion": "messages-v1",
            "system": [{"text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"text": "[[emulator:output_tokens=50]]"}]}],
            "inferenceConfig": {"max_new_tokens": 20, "temperature": 0.2},
        },
    )

    assert body["output"]["message"]["role"] == "assistant"
    assert body["stopReason"] == "max_tokens"
    assert body["usage"]["outputTokens"] == 20
    assert body["usage"]["totalTokens"] == body["usage"]["inputTokens"] + 20


def test_nova_refuses_unknown_inference_parameters(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(runtime, NOVA_PRO, {"messages": user("hi"), "inferenceConfig": {"beam_width": 3}})

    assert error_of(excinfo)[1] == (
        "Malformed input request: #/inferenceConfig: extraneous key [beam_width] is not permitted, please "
        "reformat your input and try again."
    )


def test_titan_text_body(runtime: BedrockRuntimeClient) -> None:
    body, _ = invoke(
        runtime,
        TITAN_TEXT,
        {"inputText": "[[emulator:output_tokens=30]]", "textGenerationConfig": {"maxTokenCount": 12}},
    )

    assert body["inputTextTokenCount"] == math.ceil(len("[[emulator:output_tokens=30]]") / 4)
    (result,) = body["results"]
    assert (result["tokenCount"], result["completionReason"]) == (12, "LENGTH")
    assert len(result["outputText"]) == 48


def test_titan_embeddings_v1_and_v2(runtime: BedrockRuntimeClient) -> None:
    v1, _ = invoke(runtime, TITAN_EMBED_V1, {"inputText": "embed me"})
    v2, _ = invoke(runtime, TITAN_EMBED_V2, {"inputText": "embed me", "dimensions": 256, "normalize": True})
    again, _ = invoke(
        runtime, TITAN_EMBED_V2, {"inputText": "embed me", "dimensions": 256, "normalize": True}
    )

    assert len(v1["embedding"]) == 1536
    assert v1["inputTextTokenCount"] == 2
    assert len(v2["embedding"]) == 256
    assert v2["embeddingsByType"]["float"] == v2["embedding"]
    assert math.isclose(math.sqrt(sum(x * x for x in v2["embedding"])), 1.0, abs_tol=1e-3)
    assert again["embedding"] == v2["embedding"]


def test_titan_embeddings_refuse_an_unsupported_dimension(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(runtime, TITAN_EMBED_V2, {"inputText": "x", "dimensions": 100})

    assert error_of(excinfo)[1] == (
        "Malformed input request: #/dimensions: 100 is not a valid enum value, please reformat your input "
        "and "
        "try again."
    )


def test_llama_prompt_body(runtime: BedrockRuntimeClient) -> None:
    prompt = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\nHello<|eot_id|>"
    body, _ = invoke(runtime, LLAMA3_8B, {"prompt": prompt, "max_gen_len": 256})
    cut, _ = invoke(runtime, LLAMA3_8B, {"prompt": "[[emulator:output_tokens=99]]", "max_gen_len": 5})

    assert body["prompt_token_count"] == math.ceil(len(prompt) / 4)
    assert body["generation_token_count"] == math.ceil(len(body["generation"]) / 4)
    assert body["stop_reason"] == "stop"
    assert (cut["stop_reason"], cut["generation_token_count"]) == ("length", 5)


def test_llama_refuses_messages_bodies(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(runtime, LLAMA3_8B, {"messages": user("hi")})

    assert error_of(excinfo)[1] == (
        "Malformed input request: #: required key [prompt] not found#: extraneous key [messages] is not "
        "permitted, please reformat your input and try again."
    )


def test_anthropic_response_stream(runtime: BedrockRuntimeClient) -> None:
    expected, _ = invoke(runtime, HAIKU, anthropic_body("stream me"))

    chunks = stream_chunks(runtime, HAIKU, anthropic_body("stream me"))

    types = [c["type"] for c in chunks]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text == expected["content"][0]["text"]
    assert chunks[-2]["delta"]["stop_reason"] == "end_turn"
    assert chunks[-2]["usage"]["output_tokens"] == expected["usage"]["output_tokens"]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == expected["usage"]["input_tokens"]
    assert metrics["outputTokenCount"] == expected["usage"]["output_tokens"]


def test_nova_and_llama_response_streams(runtime: BedrockRuntimeClient) -> None:
    nova = stream_chunks(runtime, NOVA_PRO, {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    llama = stream_chunks(runtime, LLAMA3_8B, {"prompt": "hi", "max_gen_len": 64})

    assert "messageStart" in nova[0]
    assert nova[-2]["messageStop"]["stopReason"] == "end_turn"
    assert (
        nova[-1]["metadata"]["usage"]["outputTokens"]
        == nova[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
    )
    assert llama[0]["prompt_token_count"] == 1
    assert llama[-1]["stop_reason"] == "stop"
    assert llama[-1]["generation_token_count"] == math.ceil(len("".join(c["generation"] for c in llama)) / 4)


def test_embeddings_refuse_streaming(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_model_with_response_stream(modelId=TITAN_EMBED_V2, body=json.dumps({"inputText": "x"}))

    assert error_of(excinfo)[0] == "ValidationException"


def test_count_tokens_agrees_with_converse_usage(runtime: BedrockRuntimeClient) -> None:
    messages: Any = [
        {"role": "user", "content": [{"text": "How many tokens is this question?"}]},
        {"role": "assistant", "content": [{"text": "Let me count."}]},
        {"role": "user", "content": [{"text": "Please do."}]},
    ]
    system: Any = [{"text": "You count tokens."}]

    counted = runtime.count_tokens(
        modelId=HAIKU, input={"converse": {"messages": messages, "system": system}}
    )
    used = runtime.converse(modelId=HAIKU, messages=messages, system=system)

    assert counted["inputTokens"] == used["usage"]["inputTokens"]


def test_count_tokens_agrees_with_invoke_model_usage(runtime: BedrockRuntimeClient) -> None:
    body = json.dumps(anthropic_body("Count the tokens of this body, please.", system="Counting."))

    counted = runtime.count_tokens(modelId=SONNET_37, input={"invokeModel": {"body": body.encode()}})
    used = json.loads(runtime.invoke_model(modelId=SONNET_37_PROFILE, body=body)["body"].read())

    assert counted["inputTokens"] == used["usage"]["input_tokens"]


def test_count_tokens_is_refused_for_models_that_do_not_support_it(runtime: BedrockRuntimeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        runtime.count_tokens(modelId=NOVA_PRO, input={"converse": {"messages": user("hi")}})

    assert error_of(excinfo)[0] == "ValidationException"


def test_count_tokens_counts_characters_not_bytes(runtime: BedrockRuntimeClient) -> None:
    # GIVEN a body whose text is multi-byte in UTF-8 (CountTokens carries it as a base64 blob)
    text = "é ü ✓ ∑"

    counted = runtime.count_tokens(
        modelId=HAIKU, input={"invokeModel": {"body": json.dumps(anthropic_body(text)).encode()}}
    )

    assert counted["inputTokens"] == math.ceil(len(text) / 4)
