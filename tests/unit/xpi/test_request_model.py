"""The inference request contract v1: its limits and the messages a producer sees when it breaks them."""

from typing import Any

import pytest
from pydantic import ValidationError
from xpi.domain.errors import RequestInvalid
from xpi.domain.intake import parse_request
from xpi.models.request import (
    MAX_CONTENT_BLOCKS,
    MAX_MESSAGES,
    MAX_REPLY_FIELDS,
    MAX_TAGS,
    MAX_TEXT_CHARS,
    InferenceRequest,
)

from tests.helpers.events import sample_request

USER_TEXT = {"role": "user", "content": [{"text": "hello"}]}


def rejection(data: dict[str, Any]) -> str:
    with pytest.raises(RequestInvalid) as caught:
        parse_request({"request_id": "req-limits-0001", "model": "default", **data})
    return caught.value.reason


@pytest.mark.parametrize(
    "name",
    [
        "plain-prompt",
        "converse-system",
        "pii-redact",
        "cui-banner",
        "unknown-model",
        "invoke-model-anthropic",
    ],
)
def test_every_sample_request_is_valid_v1(name: str) -> None:
    request = InferenceRequest.model_validate(sample_request(name))

    assert request.version == "1"
    assert request.request_id == sample_request(name)["request_id"]


def test_a_request_without_an_id_gets_a_fresh_uuid() -> None:
    first = InferenceRequest(model="default", prompt="a")
    second = InferenceRequest(model="default", prompt="a")

    assert first.request_id != second.request_id
    assert len(first.request_id) == 36


@pytest.mark.parametrize(
    ("request_id", "valid"),
    [
        ("a" * 80, True),
        ("a" * 81, False),
        ("req:2025-03-12.batch_7", True),
        ("-starts-with-dash", False),
        ("has space", False),
        ("has/slash", False),
        ("", False),
    ],
)
def test_request_id_is_usable_as_an_execution_name(request_id: str, valid: bool) -> None:
    data = {"request_id": request_id, "model": "default", "prompt": "a"}
    if valid:
        assert InferenceRequest.model_validate(data).request_id == request_id
    else:
        with pytest.raises(ValidationError, match="request_id"):
            InferenceRequest.model_validate(data)


def test_messages_limit() -> None:
    conversation = [USER_TEXT, {"role": "assistant", "content": [{"text": "hi"}]}] * (MAX_MESSAGES // 2)
    assert len(parse_request({"model": "default", "messages": conversation}).messages) == MAX_MESSAGES

    message = rejection({"messages": [*conversation, USER_TEXT]})

    assert f"messages: List should have at most {MAX_MESSAGES} items" in message


def test_content_blocks_limit() -> None:
    blocks = [{"text": "x"}] * (MAX_CONTENT_BLOCKS + 1)

    message = rejection({"messages": [{"role": "user", "content": blocks}]})

    assert f"messages.0.content: List should have at most {MAX_CONTENT_BLOCKS} items" in message


def test_text_limit_names_the_field_but_never_echoes_the_text() -> None:
    text = "S" * (MAX_TEXT_CHARS + 1)
    assert parse_request({"model": "default", "prompt": text[:-1]}).prompt == text[:-1]

    message = rejection({"prompt": text})

    assert f"prompt: String should have at most {MAX_TEXT_CHARS} characters" in message
    assert "SSSS" not in message


def test_validation_messages_never_echo_input_values() -> None:
    message = rejection({"prompt": "Applicant SSN 123-45-6789", "inference": {"max_tokens": "lots"}})

    assert "inference.max_tokens" in message
    assert "123-45-6789" not in message
    assert "lots" not in message


@pytest.mark.parametrize(
    ("inference", "field"),
    [
        ({"max_tokens": 0}, "inference.max_tokens"),
        ({"max_tokens": 64_001}, "inference.max_tokens"),
        ({"temperature": 1.5}, "inference.temperature"),
        ({"top_p": -0.1}, "inference.top_p"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "inference.stop_sequences"),
        ({"stop_sequences": ["x" * 257]}, "inference.stop_sequences.0"),
    ],
)
def test_inference_settings_limits(inference: dict[str, Any], field: str) -> None:
    assert rejection({"prompt": "a", "inference": inference}).startswith(
        f"request does not match schema v1: {field}:"
    )


def test_caller_tags_and_reply_limits() -> None:
    tags = {f"k{i}": "v" for i in range(MAX_TAGS + 1)}
    reply = {f"r{i}": "v" for i in range(MAX_REPLY_FIELDS + 1)}

    assert "caller.tags: Dictionary should have at most 10 items" in rejection(
        {"prompt": "a", "caller": {"tags": tags}}
    )
    assert "reply: Dictionary should have at most 10 items" in rejection({"prompt": "a", "reply": reply})


def test_system_prompts_limit() -> None:
    assert "at most 4 system prompts (cache points aside)" in rejection({"prompt": "a", "system": ["s"] * 5})
    cache_point = {"cachePoint": {"type": "default"}}
    assert "List should have at most 8 items" in rejection({"prompt": "a", "system": ["s", cache_point] * 5})


def test_unknown_fields_are_refused() -> None:
    assert "max_token: Extra inputs are not permitted" in rejection({"prompt": "a", "max_token": 5})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "give exactly one of `messages` or `prompt`"),
        ({"prompt": "a", "messages": [USER_TEXT]}, "give exactly one of `messages` or `prompt`"),
        (
            {"messages": [{"role": "assistant", "content": [{"text": "a"}]}]},
            "the first message must have role 'user'",
        ),
        ({"prompt": "a", "body": {"inputText": "a"}}, "`body` is only for api=invoke_model"),
        ({"api": "invoke_model", "prompt": "a"}, "api=invoke_model takes a native `body`"),
        (
            {"api": "invoke_model", "body": {"inputText": "a"}, "system": ["s"]},
            "api=invoke_model takes a native",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"text": "a", "image": {"format": "png", "source": {}}}]}
                ]
            },
            "a content block must have exactly one of text, image, document, toolUse, toolResult, "
            "cachePoint; this one has ['text', 'image']",
        ),
        ({"messages": [{"role": "user", "content": [{}]}]}, "this one has none"),
        (
            {"messages": [{"role": "user", "content": []}]},
            "messages.0.content: List should have at least 1 item",
        ),
        ({"version": "2", "prompt": "a"}, "version: Input should be '1'"),
    ],
)
def test_shape_rules_have_clear_messages(data: dict[str, Any], expected: str) -> None:
    assert expected in rejection(data)


def test_a_plain_prompt_becomes_one_converse_user_message() -> None:
    request = parse_request({"model": "default", "prompt": "Hello"})

    assert request.converse_messages() == [{"role": "user", "content": [{"text": "Hello"}]}]


def test_converse_messages_leave_out_unset_block_fields() -> None:
    request = InferenceRequest.model_validate(sample_request("converse-system"))

    messages = request.converse_messages()

    assert messages[0] == {
        "role": "user",
        "content": [{"text": "What is the difference between a grant and a cooperative agreement?"}],
    }
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]


def test_requests_are_immutable() -> None:
    request = InferenceRequest(model="default", prompt="a")

    with pytest.raises(ValidationError, match="frozen"):
        request.model = "fast"  # type: ignore[misc]
