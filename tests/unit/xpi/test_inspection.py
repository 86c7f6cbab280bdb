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

    def test_system_messages_and_stop_sequences(self) -> None:
        assert list(by_location(InferenceRequest.model_validate(sample_request("converse-system")))) == [
            "system[0]",
            "messages[0].content[0].text",
            "messages[1].content[0].text",
            "messages[2].content[0].text",
            "inference.stop_sequences[0]",
        ]

    def test_every_data_carrying_block_of_a_tool_conversation(self) -> None:
        found = by_location(tool_conversation())

        assert found == {
            "system[0]": ("You are a case-management assistant.", "text"),
            "system[1]": ("Never invent case numbers.", "text"),
            "messages[0].content[0].text": ("Find the open cases for this applicant.", "text"),
            "messages[0].content[1].image": (None, "image"),
            "messages[0].content[2].document": (None, "document"),
            # a document's name crosses with it
            "messages[0].content[2].document.name": ("intake form", "text"),
            "messages[1].content[0].toolUse.toolUseId": ("tooluse_8yXkP2", "tool_input"),
            "messages[1].content[0].toolUse.name": ("search_cases", "tool_input"),
            # the keys of a tool input are inspected, addressed by position
            "messages[1].content[0].toolUse.input{0}#key": ("query", "tool_input"),
            "messages[1].content[0].toolUse.input.query": ("applicant 123-45-6789", "tool_input"),
            "messages[1].content[0].toolUse.input{1}#key": ("filters", "tool_input"),
            "messages[1].content[0].toolUse.input.filters{0}#key": ("status", "tool_input"),
            # "status" under a tool input is data, not Converse's enumeration: a list is inspected
            "messages[1].content[0].toolUse.input.filters.status[0]": ("open", "tool_input"),
            "messages[2].content[0].toolResult.toolUseId": ("tooluse_8yXkP2", "tool_input"),
            "messages[2].content[0].toolResult.content[0]{0}#key": ("text", "tool_input"),
            "messages[2].content[0].toolResult.content[0].text": (
                "2 cases: BEN-77120, BEN-77121",
                "tool_input",
            ),
            "messages[2].content[0].toolResult.content[1]{0}#key": ("json", "tool_input"),
            "messages[2].content[0].toolResult.content[1].json{0}#key": ("owner", "tool_input"),
            "messages[2].content[0].toolResult.content[1].json.owner": ("j.alvarez", "tool_input"),
        }

    def test_only_exact_protocol_values_at_protocol_positions_are_skipped(self) -> None:
        texts = {text for text, _ in by_location(tool_conversation()).values()}

        assert not {"user", "assistant", "png", "pdf", "success"} & texts

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            # a version that is not the protocol's own is inspected
            ({"anthropic_version": "bedrock-2023-05-31 219-45-8832"}, "body.anthropic_version"),
            ({"messages": [{"role": "CUI", "content": "x"}]}, "body.messages[0].role"),
            (
                {"messages": [{"role": "user", "content": [{"type": "SECRET//NOFORN"}]}]},
                "body.messages[0].content[0].type",
            ),
            # the protocol's values elsewhere in the body are data
            ({"metadata": {"role": "user"}}, "body.metadata.role"),
        ],
    )
    def test_values_that_look_like_enumerations_are_inspected_elsewhere(
        self, body: dict[str, Any], expected: str
    ) -> None:
        request = InferenceRequest.model_validate({"model": "claude", "api": "invoke_model", "body": body})

        assert expected in by_location(request)

    def test_keys_that_are_not_plain_identifiers_are_addressed_by_position(self) -> None:
        request = InferenceRequest.model_validate(
            {"model": "claude", "api": "invoke_model", "body": {"meta": {"SSN 219-45-8832": "x", "CUI": "y"}}}
        )

        found = by_location(request)

        assert found["body.meta{0}#key"] == ("SSN 219-45-8832", "text")
        assert found["body.meta{0}"] == ("x", "text")
        assert found["body.meta{1}#key"] == ("CUI", "text")  # an upper-case key may be a marking
        assert not any("219-45" in where or "CUI" in where for where in found)

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

        # THEN all of it is inspected, short lower-case values too; only the message's role is not
        assert found["messages[1].content[0].toolUse.input.type"] == ("applicant 123-45-6789", "tool_input")
        assert found["messages[1].content[0].toolUse.input.status.note"] == ("CUI", "tool_input")
        assert found["messages[1].content[0].toolUse.input.format"] == ("json", "tool_input")
        assert found["messages[1].content[0].toolUse.toolUseId"] == ("tooluse_1", "tool_input")
        assert "messages[0].role" not in found

    def test_a_native_body_is_inspected_field_by_field_keys_included(self) -> None:
        request = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))
        assert request.body is not None

        found = by_location(request)

        assert found == {
            "body{0}#key": ("anthropic_version", "text"),
            "body{1}#key": ("max_tokens", "text"),
            "body{2}#key": ("temperature", "text"),
            "body{3}#key": ("system", "text"),
            "body.system": ("You are a careful technical editor.", "text"),
            "body{4}#key": ("messages", "text"),
            "body.messages[0]{0}#key": ("role", "text"),
            "body.messages[0]{1}#key": ("content", "text"),
            "body.messages[0].content[0]{0}#key": ("type", "text"),
            "body.messages[0].content[0]{1}#key": ("text", "text"),
            "body.messages[0].content[0].text": (request.body["messages"][0]["content"][0]["text"], "text"),
        }

    def test_paths_address_the_segment_in_the_request_dump(self) -> None:
        request = tool_conversation()
        data: Any = request.model_dump(mode="json", exclude_none=True)

        for path, segment in segments_with_paths(request):
            value = data
            for part in path:
                value = value[part]
            if segment.location.endswith("#key"):
                assert path[-1] == segment.text  # a key's path is the path of its value
            elif segment.text is not None:
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

    def test_a_redacted_key_becomes_its_placeholder_and_colliding_keys_stay_distinct(self) -> None:
        # GIVEN a tool input whose keys are SSNs, next to a key that is already the placeholder
        request = InferenceRequest.model_validate(
            {
                "model": "claude",
                "messages": [
                    {"role": "user", "content": [{"text": "look them up"}]},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "toolUse": {
                                    "toolUseId": "t1",
                                    "name": "lookup",
                                    "input": {"219-45-8832": 1, "[S]": 2, "219-45-8833": 3},
                                }
                            }
                        ],
                    },
                ],
            }
        )
        where = "messages[1].content[0].toolUse.input"

        # WHEN both SSN keys are replaced by the same placeholder
        redacted = redact(request, {f"{where}{{0}}#key": "[S]", f"{where}{{2}}#key": "[S]"})

        # THEN the input is still a valid dictionary with three distinct keys, values in place
        tool_use = redacted.messages[1].content[0].toolUse
        assert tool_use is not None
        assert tool_use.input == {"[S] (2)": 1, "[S]": 2, "[S] (3)": 3}
        assert list(tool_use.input) == ["[S] (2)", "[S]", "[S] (3)"]

    def test_a_key_and_its_value_are_redacted_together(self) -> None:
        request = InferenceRequest.model_validate(
            {"model": "claude", "api": "invoke_model", "body": {"meta": {"a@example.com": "b@example.com"}}}
        )

        redacted = redact(request, {"body.meta{0}#key": "[E]", "body.meta{0}": "[E]"})

        assert redacted.body == {"meta": {"[E]": "[E]"}}

    def test_stop_sequences_and_document_names_are_redacted_in_place(self) -> None:
        request = tool_conversation().model_copy(
            update={"inference": InferenceRequest.model_validate(sample_request("converse-system")).inference}
        )

        redacted = redact(
            request,
            {"inference.stop_sequences[0]": "[X]", "messages[0].content[2].document.name": "[Y]"},
        )

        assert redacted.inference.stop_sequences == ["[X]"]
        document = redacted.messages[0].content[2].document
        assert document is not None and document.name == "[Y]" and document.source.bytes == "JVBERi0xLjQ="

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
