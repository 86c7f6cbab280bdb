"""Every piece of a request that can carry data, addressed by path; redaction puts text back in place."""

from typing import Any

import pytest
from xpi.domain.inspection import location, redact, segments_with_paths
from xpi.models.request import InferenceRequest

from tests.helpers.events import sample_request

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def tool_conversation() -> InferenceRequest:
    return InferenceRequest.model_validate(
        {
            "request_id": "req-tools-0001",
            "model": "claude",
            "system": ["You are a case-management assistant.", "Never invent case numbers."],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Find the open cases for this applicant."},
                        {"image": {"format": "png", "source": {"bytes": PNG}}},
                        {
                            "document": {
                                "format": "pdf",
                                "name": "intake form",
                                "source": {"bytes": "JVBERi0xLjQ="},
                            }
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "tooluse_8yXkP2",
                                "name": "search_cases",
                                "input": {"query": "applicant 123-45-6789", "filters": {"status": ["open"]}},
                            }
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "toolResult": {
                                "toolUseId": "tooluse_8yXkP2",
                                "content": [
                                    {"text": "2 cases: BEN-77120, BEN-77121"},
                                    {"json": {"owner": "j.alvarez"}},
                                ],
                                "status": "success",
                            }
                        }
                    ],
                },
            ],
        }
    )


def by_location(request: InferenceRequest) -> dict[str, tuple[str | None, str]]:
    return {segment.location: (segment.text, segment.kind) for _, segment in segments_with_paths(request)}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("prompt",), "prompt"),
        (("system", 0), "system[0]"),
        (
            ("messages", 1, "content", 0, "toolUse", "input", "query"),
            "messages[1].content[0].toolUse.input.query",
        ),
        (("body", "messages", 0, "content"), "body.messages[0].content"),
        ((), ""),
    ],
)
def test_location(path: tuple[str | int, ...], expected: str) -> None:
    assert location(path) == expected


class TestSegmentsWithPaths:
    def test_a_plain_prompt(self) -> None:
        request = InferenceRequest.model_validate(sample_request("plain-prompt"))

        assert by_location(request) == {"prompt": (request.prompt, "text")}

    def test_system_and_messages(self) -> None:
        request = InferenceRequest.model_validate(sample_request("converse-system"))

        assert list(by_location(request)) == [
            "system[0]",
            "messages[0].content[0].text",
            "messages[1].content[0].text",
            "messages[2].content[0].text",
        ]

    def test_every_data_carrying_block_of_a_tool_conversation(self) -> None:
        found = by_location(tool_conversation())

        assert found == {
            "system[0]": ("You are a case-management assistant.", "text"),
            "system[1]": ("Never invent case numbers.", "text"),
            "messages[0].content[0].text": ("Find the open cases for this applicant.", "text"),
            "messages[0].content[1].image": (None, "image"),
            "messages[0].content[2].document": (None, "document"),
            # a tool use id is free text (up to 256 characters) unless it is an enumeration-like token
            "messages[1].content[0].toolUse.toolUseId": ("tooluse_8yXkP2", "tool_input"),
            "messages[1].content[0].toolUse.name": ("search_cases", "tool_input"),
            "messages[1].content[0].toolUse.input.query": ("applicant 123-45-6789", "tool_input"),
            # "status" under a tool input is data, not Converse's enumeration: a list is inspected
            "messages[1].content[0].toolUse.input.filters.status[0]": ("open", "tool_input"),
            "messages[2].content[0].toolResult.toolUseId": ("tooluse_8yXkP2", "tool_input"),
            "messages[2].content[0].toolResult.content[0].text": (
                "2 cases: BEN-77120, BEN-77121",
                "tool_input",
            ),
            "messages[2].content[0].toolResult.content[1].json.owner": ("j.alvarez", "tool_input"),
        }

    def test_enumerations_and_ids_are_not_inspected(self) -> None:
        texts = {text for text, _ in by_location(tool_conversation()).values()}

        assert not {"user", "assistant", "png", "pdf", "success"} & texts

    def test_binary_content_is_never_read_as_text(self) -> None:
        texts = [text or "" for text, _ in by_location(tool_conversation()).values()]

        assert not any(PNG[:20] in text or "JVBERi0" in text for text in texts)

    def test_enumeration_named_keys_in_free_form_data_are_still_inspected(self) -> None:
        # GIVEN a tool input whose keys happen to be named like enumerations, holding data
        request = InferenceRequest.model_validate(
            {
                "model": "claude",
                "messages": [
                    {"role": "user", "content": [{"text": "look it up"}]},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "toolUse": {
                                    "toolUseId": "tooluse_1",
                                    "name": "lookup",
                                    "input": {
                                        "type": "applicant 123-45-6789",
                                        "status": {"note": "CUI"},
                                        "format": "json",
                                    },
                                }
                            }
                        ],
                    },
                ],
            }
        )

        # WHEN
        found = by_location(request)

        # THEN data is inspected; enumeration tokens ("json", "user", "tooluse_1") are not
        assert found["messages[1].content[0].toolUse.input.type"] == ("applicant 123-45-6789", "tool_input")
        assert found["messages[1].content[0].toolUse.input.status.note"] == ("CUI", "tool_input")
        assert "messages[1].content[0].toolUse.input.format" not in found
        assert "messages[0].role" not in found

    def test_a_native_body_is_inspected_field_by_field(self) -> None:
        request = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))

        found = by_location(request)

        assert found == {
            "body.system": ("You are a careful technical editor.", "text"),
            "body.messages[0].content[0].text": (request.body["messages"][0]["content"][0]["text"], "text")
            if request.body
            else None,
        }

    def test_paths_address_the_segment_in_the_request_dump(self) -> None:
        request = tool_conversation()
        data: Any = request.model_dump(mode="json", exclude_none=True)

        for path, segment in segments_with_paths(request):
            value = data
            for part in path:
                value = value[part]
            if segment.text is not None:
                assert value == segment.text


class TestRedact:
    def test_text_goes_back_at_its_path_and_nothing_else_changes(self) -> None:
        # GIVEN
        request = InferenceRequest.model_validate(sample_request("pii-redact"))
        location_ = "messages[0].content[0].text"
        redacted_text = "Applicant SSN: [REDACTED:SSN]. Reply to [REDACTED:EMAIL]."

        # WHEN
        redacted = redact(request, {location_: redacted_text})

        # THEN
        assert redacted.messages[0].content[0].text == redacted_text
        assert redacted.model_dump(exclude={"messages"}) == request.model_dump(exclude={"messages"})
        assert redacted.request_id == request.request_id

    def test_tool_input_and_system_are_redacted_in_place(self) -> None:
        request = tool_conversation()

        redacted = redact(
            request,
            {
                "messages[1].content[0].toolUse.input.query": "applicant [REDACTED:SSN]",
                "system[1]": "[REDACTED]",
            },
        )

        found = by_location(redacted)
        assert found["messages[1].content[0].toolUse.input.query"] == (
            "applicant [REDACTED:SSN]",
            "tool_input",
        )
        assert found["system[1]"] == ("[REDACTED]", "text")
        unchanged = {
            k: v for k, v in by_location(request).items() if k not in {"system[1]"} and "query" not in k
        }
        assert unchanged.items() <= found.items()

    def test_native_body_and_prompt(self) -> None:
        native = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))
        plain = InferenceRequest.model_validate(sample_request("plain-prompt"))

        redacted_native = redact(native, {"body.messages[0].content[0].text": "[REDACTED:EMAIL]"})
        redacted_plain = redact(plain, {"prompt": "[REDACTED:SSN]"})

        assert redacted_native.body is not None
        assert redacted_native.body["messages"][0]["content"][0] == {
            "type": "text",
            "text": "[REDACTED:EMAIL]",
        }
        assert redacted_native.body["anthropic_version"] == "bedrock-2023-05-31"
        assert redacted_plain.prompt == "[REDACTED:SSN]"

    def test_locations_that_do_not_exist_change_nothing(self) -> None:
        request = tool_conversation()

        assert redact(request, {"messages[9].content[0].text": "x"}) == request

    def test_no_replacements_returns_the_same_request(self) -> None:
        request = tool_conversation()

        assert redact(request, {}) is request


def test_media_inside_a_native_body_is_uninspectable_not_text() -> None:
    # GIVEN an InvokeModel request whose Anthropic body carries a base64 image
    from xpi.domain.inspection import segments_with_paths
    from xpi.models.request import InferenceRequest

    request = InferenceRequest.model_validate(
        {
            "model": "claude",
            "api": "invoke_model",
            "body": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "iVBORw0KGgo=",
                                },
                            },
                            {"type": "text", "text": "What is in the picture?"},
                        ],
                    }
                ],
            },
        }
    )

    # WHEN its segments are listed
    segments = {segment.location: segment for _, segment in segments_with_paths(request)}

    # THEN the image is one binary segment (which the default policy blocks) and its base64 is not text
    assert segments["body.messages[0].content[0].source"].kind == "binary"
    assert segments["body.messages[0].content[0].source"].text is None
    assert not any(s.text == "iVBORw0KGgo=" for s in segments.values())
    assert segments["body.messages[0].content[1].text"].text == "What is in the picture?"
