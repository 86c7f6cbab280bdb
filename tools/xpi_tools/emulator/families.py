"""Request validation and response shapes: the Converse API and the InvokeModel body families
(Anthropic messages, Amazon Nova, Amazon Titan text and embeddings, Meta Llama).

Each parser turns a request body into a ``Plan`` (the prompt to answer, the output limit, the stop
sequences) or raises the ValidationException Bedrock answers. Renderers turn a ``Generation`` into
the family's response body, or into the chunks of its stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from xpi_tools.emulator.catalogue import Family, ModelSpec
from xpi_tools.emulator.errors import (
    MSG_ALTERNATE,
    MSG_BLANK_TEXT,
    MSG_CONVERSE_UNSUPPORTED_MODEL,
    MSG_FIRST_USER,
    MSG_MALFORMED,
    MSG_MALFORMED_BODY,
    MSG_MAX_TOKENS,
    MSG_MODEL_RETURNED,
    BedrockError,
    coral_constraint,
    malformed,
    validation,
)
from xpi_tools.emulator.textgen import Generation, Prompt, embedding

MSG_INPUT_TOO_LONG = "Input is too long for requested model."
MSG_STREAMING_UNSUPPORTED = "The provided model doesn't support streaming."


@dataclass
class Plan:
    prompt: Prompt
    max_tokens: int | None
    stop_sequences: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise validation(MSG_MALFORMED_BODY) from None
    if not isinstance(value, dict):
        kind = "JSONArray" if isinstance(value, list) else type(value).__name__
        raise malformed([f"#: expected type: JSONObject, found: {kind}"])
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _check_input_length(model: ModelSpec, prompt: Prompt) -> None:
    if prompt.input_tokens > model.context_tokens:
        raise validation(MSG_INPUT_TOO_LONG)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# == Converse ======================================================================================

CONVERSE_KEYS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
COUNT_TOKENS_CONVERSE_KEYS = frozenset({"messages", "system", "toolConfig", "additionalModelRequestFields"})
INFERENCE_CONFIG_KEYS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
ADDITIONAL_FIELDS = {
    Family.ANTHROPIC: frozenset({"top_k", "anthropic_beta", "thinking", "stop_sequences"}),
    Family.NOVA: frozenset({"inferenceConfig"}),
    Family.LLAMA: frozenset(),
    Family.TITAN_TEXT: frozenset(),
    Family.TITAN_EMBED: frozenset(),
}
_CONTENT_KINDS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "audio",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
        "searchResult",
    }
)


def _unknown_member(name: str) -> BedrockError:
    # Emulator wording: the front end's text for an unknown member was not available offline.
    return validation(f"1 validation error detected: Unknown parameter '{name}' in the request body.")


def _document_text(document: dict[str, Any]) -> str:
    source = document.get("source")
    if not isinstance(source, dict):
        return ""
    if isinstance(source.get("text"), str):
        return str(source["text"])
    if isinstance(source.get("bytes"), str):
        try:
            return base64.b64decode(source["bytes"]).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise validation("The document bytes are not valid base64.") from None
    if isinstance(source.get("content"), list):
        return " ".join(str(c.get("text", "")) for c in source["content"] if isinstance(c, dict))
    return ""


def _converse_block(prompt: Prompt, block: Any, where: str) -> str:
    """Add a content block's cost to the prompt; return its plain text (for directives)."""
    if not isinstance(block, dict) or len(block) != 1:
        raise validation(f"The ContentBlock object at {where} must set exactly one of its members.")
    ((kind, value),) = block.items()
    if kind not in _CONTENT_KINDS:
        raise _unknown_member(f"{where}.{kind}")
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise validation(MSG_BLANK_TEXT.format(where=where))
        prompt.add(value)
        return value
    if kind == "cachePoint":
        prompt.mark_cache_point()
    elif kind in ("image", "video", "audio"):
        prompt.media_blocks += 1
    elif kind == "document" and isinstance(value, dict):
        prompt.add(_document_text(value))
    elif kind in ("toolUse", "toolResult", "searchResult", "citationsContent"):
        prompt.add(_dumps(value))
    elif kind == "reasoningContent":
        prompt.add(_nested_text(value, "reasoningText"))
    elif kind == "guardContent":
        prompt.add(_nested_text(value, "text"))
    return ""


def _nested_text(value: Any, member: str) -> str:
    """``value[member]["text"]`` when the shapes are right, else nothing."""
    inner = value.get(member) if isinstance(value, dict) else None
    return str(inner.get("text", "")) if isinstance(inner, dict) else ""


def _converse_system(prompt: Prompt, system: Any) -> None:
    if not isinstance(system, list):
        raise coral_constraint(system, "system", "Member must be a list")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or len(block) != 1:
            raise validation(
                f"The SystemContentBlock object at system.{index} must set exactly one of its members."
            )
        ((kind, value),) = block.items()
        if kind == "text":
            if not isinstance(value, str) or not value:
                raise coral_constraint(
                    value,
                    f"system.{index + 1}.member.text",
                    "Member must have length greater than or equal to 1",
                )
            prompt.add(value)
        elif kind == "guardContent" and isinstance(value, dict) and isinstance(value.get("text"), dict):
            prompt.add(str(value["text"].get("text", "")))
        elif kind == "cachePoint":
            prompt.mark_cache_point()
        elif kind not in ("cachePoint", "guardContent"):
            raise _unknown_member(f"system.{index}.{kind}")


def _converse_role(message: Any, index: int, previous_role: str) -> str:
    if not isinstance(message, dict):
        raise validation(MSG_FIRST_USER if index == 0 else MSG_ALTERNATE)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise coral_constraint(
            role, f"messages.{index + 1}.member.role", "Member must satisfy enum value set: [user, assistant]"
        )
    if index == 0 and role != "user":
        raise validation(MSG_FIRST_USER)
    if role == previous_role:
        raise validation(MSG_ALTERNATE)
    return str(role)


def _converse_messages(prompt: Prompt, messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise validation(MSG_FIRST_USER)
    role = ""
    last_text = ""
    for index, message in enumerate(messages):
        role = _converse_role(message, index, role)
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise validation(
                f"The content field in the Message object at messages.{index} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        texts = [
            _converse_block(prompt, block, f"messages.{index}.content.{j}") for j, block in enumerate(content)
        ]
        last_text = "\n".join(t for t in texts if t) if role == "user" else ""
    prompt.last_user_text = last_text


def _converse_tools(prompt: Prompt, tool_config: Any) -> None:
    if tool_config is None:
        return
    tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
    if not isinstance(tools, list) or not tools:
        raise coral_constraint(
            tools, "toolConfig.tools", "Member must have length greater than or equal to 1"
        )
    for tool in tools:
        prompt.add(_dumps(tool))


def _converse_prompt(body: dict[str, Any]) -> Prompt:
    prompt = Prompt()
    _converse_system(prompt, body.get("system", []))
    _converse_messages(prompt, body.get("messages"))
    _converse_tools(prompt, body.get("toolConfig"))
    return prompt


def _check_additional_fields(model: ModelSpec, fields: Any) -> dict[str, Any]:
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise validation(MSG_MODEL_RETURNED.format(detail=MSG_MALFORMED_BODY))
    unknown = [k for k in fields if k not in ADDITIONAL_FIELDS[model.family]]
    if unknown:
        errors = "".join(f"#: extraneous key [{k}] is not permitted" for k in unknown)
        raise validation(MSG_MODEL_RETURNED.format(detail=MSG_MALFORMED.format(errors=errors)))
    return fields


def _inference_config(model: ModelSpec, config: Any) -> tuple[int | None, list[str]]:
    if not isinstance(config, dict):
        raise coral_constraint(config, "inferenceConfig", "Member must be a structure")
    for key in config:
        if key not in INFERENCE_CONFIG_KEYS:
            raise _unknown_member(f"inferenceConfig.{key}")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise coral_constraint(
                max_tokens, "inferenceConfig.maxTokens", "Member must have value greater than or equal to 1"
            )
        if max_tokens > model.max_output_tokens:
            raise validation(MSG_MAX_TOKENS.format(limit=model.max_output_tokens))
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and (not _is_number(value) or not 0 <= value <= 1):
            raise coral_constraint(
                value, f"inferenceConfig.{name}", "Member must have value less than or equal to 1"
            )
    stop_sequences = config.get("stopSequences") or []
    if not isinstance(stop_sequences, list) or not all(isinstance(s, str) and s for s in stop_sequences):
        raise coral_constraint(
            stop_sequences, "inferenceConfig.stopSequences", "Member must be a list of non-empty strings"
        )
    return max_tokens, list(stop_sequences)


def parse_converse(model: ModelSpec, raw: bytes, *, count_tokens_only: bool = False) -> Plan:
    body = _json_object(raw)
    allowed = COUNT_TOKENS_CONVERSE_KEYS if count_tokens_only else CONVERSE_KEYS
    for key in body:
        if key not in allowed:
            raise _unknown_member(key)
    if model.is_embedding:
        raise validation(MSG_CONVERSE_UNSUPPORTED_MODEL)
    prompt = _converse_prompt(body)
    additional = _check_additional_fields(model, body.get("additionalModelRequestFields"))

    max_tokens, stop_sequences = _inference_config(model, body.get("inferenceConfig") or {})
    anthropic_stops = additional.get("stop_sequences")
    if isinstance(anthropic_stops, list):
        stop_sequences += [s for s in anthropic_stops if isinstance(s, str)]

    paths = body.get("additionalModelResponseFieldPaths") or []
    _check_input_length(model, prompt)
    return Plan(prompt, max_tokens, stop_sequences, {"response_field_paths": paths})


def converse_usage(generation: Generation) -> dict[str, int]:
    """Converse's usage: inputTokens are the uncached input; a prompt-cache read or write adds its own
    counts (cacheReadInputTokens, cacheWriteInputTokens), all of them in totalTokens."""
    usage = {
        "inputTokens": generation.input_tokens,
        "outputTokens": generation.output_tokens,
        "totalTokens": generation.input_tokens
        + generation.output_tokens
        + generation.cache_read_input_tokens
        + generation.cache_write_input_tokens,
    }
    if generation.cache_read_input_tokens or generation.cache_write_input_tokens:
        usage["cacheReadInputTokens"] = generation.cache_read_input_tokens
        usage["cacheWriteInputTokens"] = generation.cache_write_input_tokens
    return usage


def converse_response(
    model: ModelSpec, plan: Plan, generation: Generation, latency_ms: int
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": generation.text}]}},
        "stopReason": generation.stop_reason,
        "usage": converse_usage(generation),
        "metrics": {"latencyMs": latency_ms},
    }
    extra = _additional_response_fields(model, plan, generation)
    if extra:
        response["additionalModelResponseFields"] = extra
    return response


def _additional_response_fields(model: ModelSpec, plan: Plan, generation: Generation) -> dict[str, Any]:
    paths = plan.options.get("response_field_paths") or []
    if model.family is Family.ANTHROPIC and "/stop_sequence" in paths:
        return {"stop_sequence": generation.stop_sequence}
    return {}


def converse_stream_events(
    model: ModelSpec, plan: Plan, generation: Generation, pieces: list[str], latency_ms: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event type, payload) pairs of a ConverseStream; the caller frames and paces them."""
    yield "messageStart", {"role": "assistant"}
    for piece in pieces:
        yield "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
    yield "contentBlockStop", {"contentBlockIndex": 0}
    stop: dict[str, Any] = {"stopReason": generation.stop_reason}
    extra = _additional_response_fields(model, plan, generation)
    if extra:
        stop["additionalModelResponseFields"] = extra
    yield "messageStop", stop
    yield (
        "metadata",
        {
            "usage": converse_usage(generation),
            "metrics": {"latencyMs": latency_ms},
        },
    )


# == InvokeModel families =========================================================================

ANTHROPIC_VERSION = "bedrock-2023-05-31"
ANTHROPIC_KEYS = frozenset(
    {
        "anthropic_version",
        "anthropic_beta",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
    }
)
NOVA_KEYS = frozenset({"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"})
NOVA_INFERENCE_KEYS = frozenset(
    {"max_new_tokens", "maxTokens", "temperature", "top_p", "topP", "top_k", "topK", "stopSequences"}
)
TITAN_TEXT_KEYS = frozenset({"inputText", "textGenerationConfig"})
TITAN_TEXT_CONFIG_KEYS = frozenset({"maxTokenCount", "temperature", "topP", "stopSequences"})
TITAN_EMBED_V1_KEYS = frozenset({"inputText"})
TITAN_EMBED_V2_KEYS = frozenset({"inputText", "dimensions", "normalize", "embeddingTypes"})
LLAMA_KEYS = frozenset({"prompt", "max_gen_len", "temperature", "top_p", "images"})


def _schema_errors(
    body: dict[str, Any], allowed: frozenset[str], required: dict[str, str], pointer: str = "#"
) -> list[str]:
    errors = [message for key, message in required.items() if key not in body]
    errors += [f"{pointer}: extraneous key [{key}] is not permitted" for key in body if key not in allowed]
    return errors


def _anthropic_text_blocks(prompt: Prompt, content: Any, where: str) -> str:
    if isinstance(content, str):
        if not content:
            raise validation(f"{where}: text content blocks must be non-empty")
        prompt.add(content)
        return content
    if not isinstance(content, list):
        raise validation(f"{where}: Input should be a valid list")
    texts: list[str] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict) or "type" not in block:
            raise validation(f"{where}.{index}.type: Field required")
        kind = block["type"]
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                raise validation(f"{where}.{index}.text: text content blocks must be non-empty")
            prompt.add(text)
            texts.append(text)
        elif kind == "image":
            prompt.media_blocks += 1
        elif kind in ("tool_use", "tool_result", "document", "thinking", "redacted_thinking"):
            prompt.add(_dumps(block))
        else:
            raise validation(
                f"{where}.{index}.type: Input tag '{kind}' found using 'type' does not match any of the "
                "expected tags"
            )
    return "\n".join(texts)


def _parse_anthropic(model: ModelSpec, body: dict[str, Any]) -> Plan:
    errors = _schema_errors(
        body,
        ANTHROPIC_KEYS,
        {
            "messages": '#: subject must not be valid against schema {"required":["messages"]}',
            "anthropic_version": "#: required key [anthropic_version] not found",
            "max_tokens": "#: required key [max_tokens] not found",
        },
    )
    if errors:
        raise malformed(errors)
    if body["anthropic_version"] != ANTHROPIC_VERSION:
        raise malformed([f"#/anthropic_version: {body['anthropic_version']} is not a valid enum value"])
    max_tokens = body["max_tokens"]
    if not _is_int(max_tokens) or max_tokens < 1:
        raise malformed([f"#/max_tokens: {max_tokens} is not greater or equal to 1"])
    if max_tokens > model.max_output_tokens:
        raise validation(
            f"max_tokens: {max_tokens} > {model.max_output_tokens}, which is the maximum allowed number of "
            f"output tokens for {model.api_name}"
        )
    prompt = Prompt()
    system = body.get("system")
    if system is not None:
        _anthropic_text_blocks(prompt, system, "system")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise validation("messages: at least one message is required")
    last_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise validation(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise validation(f"messages.{index}.content: Field required")
        text = _anthropic_text_blocks(prompt, message["content"], f"messages.{index}.content")
        last_text = text if message["role"] == "user" else ""
    prompt.last_user_text = last_text
    for tool in body.get("tools") or []:
        prompt.add(_dumps(tool))
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise malformed(["#/stop_sequences: expected type: JSONArray"])
    return Plan(prompt, max_tokens, list(stops))


def _message_id(generation: Generation, prompt: Prompt) -> str:
    digest = hashlib.sha256(f"{prompt.last_user_text}\x1f{generation.text}".encode()).digest()
    return "msg_bdrk_01" + base64.b32encode(digest).decode()[:22]


def _anthropic_response(model: ModelSpec, plan: Plan, generation: Generation) -> dict[str, Any]:
    return {
        "id": _message_id(generation, plan.prompt),
        "type": "message",
        "role": "assistant",
        "model": model.api_name,
        "content": [{"type": "text", "text": generation.text}],
        "stop_reason": generation.stop_reason,
        "stop_sequence": generation.stop_sequence,
        "usage": {
            "input_tokens": generation.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": generation.output_tokens,
        },
    }


def _anthropic_chunks(
    model: ModelSpec, plan: Plan, generation: Generation, pieces: list[str], metrics: dict[str, int]
) -> Iterator[dict[str, Any]]:
    start = _anthropic_response(model, plan, generation)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = {**start["usage"], "output_tokens": 1}
    yield {"type": "message_start", "message": start}
    yield {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    for piece in pieces:
        yield {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
    yield {"type": "content_block_stop", "index": 0}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": generation.stop_reason, "stop_sequence": generation.stop_sequence},
        "usage": {"output_tokens": generation.output_tokens},
    }
    yield {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}


def _nova_messages(prompt: Prompt, messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise validation(MSG_FIRST_USER)
    last_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise malformed([f"#/messages/{index}/role: is not a valid enum value"])
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise malformed([f"#/messages/{index}: required key [content] not found"])
        texts = []
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                raise malformed([f"#/messages/{index}/content/{j}: expected type: JSONObject"])
            if isinstance(block.get("text"), str):
                prompt.add(block["text"])
                texts.append(block["text"])
            elif any(k in block for k in ("image", "video")):
                prompt.media_blocks += 1
            else:
                prompt.add(_dumps(block))
        last_text = "\n".join(texts) if message["role"] == "user" else ""
    prompt.last_user_text = last_text


def _parse_nova(model: ModelSpec, body: dict[str, Any]) -> Plan:
    errors = _schema_errors(body, NOVA_KEYS, {"messages": "#: required key [messages] not found"})
    config = body.get("inferenceConfig") or {}
    if isinstance(config, dict):
        errors += _schema_errors(config, NOVA_INFERENCE_KEYS, {}, "#/inferenceConfig")
    else:
        errors.append("#/inferenceConfig: expected type: JSONObject")
    if errors:
        raise malformed(errors)
    prompt = Prompt()
    for block in body.get("system") or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            prompt.add(block["text"])
    _nova_messages(prompt, body["messages"])
    if isinstance(body.get("toolConfig"), dict):
        prompt.add(_dumps(body["toolConfig"]))
    max_tokens = config.get("max_new_tokens", config.get("maxTokens"))
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise malformed([f"#/inferenceConfig/max_new_tokens: {max_tokens} is not greater or equal to 1"])
        if max_tokens > model.max_output_tokens:
            raise validation(MSG_MAX_TOKENS.format(limit=model.max_output_tokens))
    stops = config.get("stopSequences") or []
    return Plan(prompt, max_tokens, [s for s in stops if isinstance(s, str)])


def _nova_usage(generation: Generation) -> dict[str, int]:
    return {
        "inputTokens": generation.input_tokens,
        "outputTokens": generation.output_tokens,
        "totalTokens": generation.input_tokens + generation.output_tokens,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    }


def _nova_response(generation: Generation) -> dict[str, Any]:
    return {
        "output": {"message": {"content": [{"text": generation.text}], "role": "assistant"}},
        "stopReason": generation.stop_reason,
        "usage": _nova_usage(generation),
    }


def _nova_chunks(
    generation: Generation, pieces: list[str], metrics: dict[str, int]
) -> Iterator[dict[str, Any]]:
    yield {"messageStart": {"role": "assistant"}}
    for piece in pieces:
        yield {"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}}
    yield {"contentBlockStop": {"contentBlockIndex": 0}}
    yield {"messageStop": {"stopReason": generation.stop_reason}}
    yield {
        "metadata": {"usage": _nova_usage(generation), "metrics": {}, "trace": {}},
        "amazon-bedrock-invocationMetrics": metrics,
    }


def _parse_titan_text(model: ModelSpec, body: dict[str, Any]) -> Plan:
    errors = _schema_errors(body, TITAN_TEXT_KEYS, {"inputText": "#: required key [inputText] not found"})
    config = body.get("textGenerationConfig") or {}
    if isinstance(config, dict):
        errors += _schema_errors(config, TITAN_TEXT_CONFIG_KEYS, {}, "#/textGenerationConfig")
    else:
        errors.append("#/textGenerationConfig: expected type: JSONObject")
    if errors:
        raise malformed(errors)
    text = body["inputText"]
    if not isinstance(text, str):
        raise malformed(["#/inputText: expected type: String"])
    prompt = Prompt()
    prompt.add(text)
    prompt.last_user_text = text
    max_tokens = config.get("maxTokenCount", 512)
    if not _is_int(max_tokens) or max_tokens < 0:
        raise malformed([f"#/textGenerationConfig/maxTokenCount: {max_tokens} is not greater or equal to 0"])
    if max_tokens > model.max_output_tokens:
        raise validation(MSG_MAX_TOKENS.format(limit=model.max_output_tokens))
    stops = config.get("stopSequences") or []
    return Plan(prompt, max_tokens, [s for s in stops if isinstance(s, str)])


_TITAN_REASONS = {"end_turn": "FINISH", "max_tokens": "LENGTH", "stop_sequence": "STOP_CRITERIA_MET"}
_LLAMA_REASONS = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}


def _titan_text_response(generation: Generation) -> dict[str, Any]:
    return {
        "inputTextTokenCount": generation.input_tokens,
        "results": [
            {
                "tokenCount": generation.output_tokens,
                "outputText": generation.text,
                "completionReason": _TITAN_REASONS[generation.stop_reason],
            }
        ],
    }


def _parse_llama(model: ModelSpec, body: dict[str, Any]) -> Plan:
    errors = _schema_errors(body, LLAMA_KEYS, {"prompt": "#: required key [prompt] not found"})
    if errors:
        raise malformed(errors)
    text = body["prompt"]
    if not isinstance(text, str):
        raise malformed(["#/prompt: expected type: String"])
    prompt = Prompt()
    prompt.add(text)
    prompt.last_user_text = text
    max_tokens = body.get("max_gen_len", 512)
    if not _is_int(max_tokens) or max_tokens < 1:
        raise malformed([f"#/max_gen_len: {max_tokens} is not greater or equal to 1"])
    if max_tokens > model.max_output_tokens:
        raise validation(MSG_MAX_TOKENS.format(limit=model.max_output_tokens))
    return Plan(prompt, max_tokens, [])


def _parse_titan_embed(model: ModelSpec, body: dict[str, Any]) -> Plan:
    v2 = model.model_id.startswith("amazon.titan-embed-text-v2")
    allowed = TITAN_EMBED_V2_KEYS if v2 else TITAN_EMBED_V1_KEYS
    errors = _schema_errors(body, allowed, {"inputText": "#: required key [inputText] not found"})
    if errors:
        raise malformed(errors)
    text = body["inputText"]
    if not isinstance(text, str) or not text:
        raise malformed(["#/inputText: expected minLength: 1, actual: 0"])
    dimensions = body.get("dimensions", model.embedding_dimensions)
    if dimensions not in ((256, 512, 1024) if v2 else (1536,)):
        raise malformed([f"#/dimensions: {dimensions} is not a valid enum value"])
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise malformed(["#/normalize: expected type: Boolean"])
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list) or not types or not set(types) <= {"float", "binary"}:
        raise malformed(["#/embeddingTypes: is not a valid enum value"])
    prompt = Prompt()
    prompt.add(text)
    return Plan(
        prompt, None, [], {"dimensions": dimensions, "normalize": normalize, "types": types, "v2": v2}
    )


def titan_embed_response(model: ModelSpec, plan: Plan, seed: int) -> dict[str, Any]:
    vector = embedding(
        plan.prompt.fingerprint(seed, model.model_id),
        plan.options["dimensions"],
        normalize=plan.options["normalize"],
    )
    response: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": plan.prompt.input_tokens}
    if plan.options["v2"]:
        by_type: dict[str, Any] = {}
        if "float" in plan.options["types"]:
            by_type["float"] = vector
        if "binary" in plan.options["types"]:
            by_type["binary"] = [1 if v > 0 else 0 for v in vector]
        response["embeddingsByType"] = by_type
    return response


def parse_invoke(model: ModelSpec, raw: bytes) -> Plan:
    body = _json_object(raw)
    parsers = {
        Family.ANTHROPIC: _parse_anthropic,
        Family.NOVA: _parse_nova,
        Family.TITAN_TEXT: _parse_titan_text,
        Family.TITAN_EMBED: _parse_titan_embed,
        Family.LLAMA: _parse_llama,
    }
    plan = parsers[model.family](model, body)
    _check_input_length(model, plan.prompt)
    return plan


def invoke_response(model: ModelSpec, plan: Plan, generation: Generation) -> dict[str, Any]:
    if model.family is Family.ANTHROPIC:
        return _anthropic_response(model, plan, generation)
    if model.family is Family.NOVA:
        return _nova_response(generation)
    if model.family is Family.TITAN_TEXT:
        return _titan_text_response(generation)
    return {
        "generation": generation.text,
        "prompt_token_count": generation.input_tokens,
        "generation_token_count": generation.output_tokens,
        "stop_reason": _LLAMA_REASONS[generation.stop_reason],
    }


def invoke_stream_chunks(
    model: ModelSpec, plan: Plan, generation: Generation, pieces: list[str], metrics: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """The JSON chunks of InvokeModelWithResponseStream, each later base64-framed in a ``chunk``."""
    if model.family is Family.ANTHROPIC:
        yield from _anthropic_chunks(model, plan, generation, pieces, metrics)
        return
    if model.family is Family.NOVA:
        yield from _nova_chunks(generation, pieces, metrics)
        return
    produced = 0
    last = len(pieces) - 1
    for index, piece in enumerate(pieces or [""]):
        produced += len(piece)
        final = index >= last
        tokens_so_far = (produced + 3) // 4 if not final else generation.output_tokens
        chunk: dict[str, Any]
        if model.family is Family.TITAN_TEXT:
            chunk = {
                "outputText": piece,
                "index": 0,
                "totalOutputTextTokenCount": tokens_so_far,
                "completionReason": _TITAN_REASONS[generation.stop_reason] if final else None,
            }
            if index == 0:
                chunk["inputTextTokenCount"] = generation.input_tokens
        else:
            chunk = {
                "generation": piece,
                "prompt_token_count": generation.input_tokens if index == 0 else None,
                "generation_token_count": tokens_so_far,
                "stop_reason": _LLAMA_REASONS[generation.stop_reason] if final else None,
            }
        if final:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
        yield chunk


def count_tokens_plan(model: ModelSpec, raw: bytes) -> Plan:
    """CountTokens: ``{"input": {"converse": {...}}}`` or ``{"input": {"invokeModel": {"body": b64}}}``."""
    body = _json_object(raw)
    for key in body:
        if key != "input":
            raise _unknown_member(key)
    request = body.get("input")
    if not isinstance(request, dict) or len(request) != 1:
        raise validation("The input field must set exactly one of converse or invokeModel.")
    ((kind, value),) = request.items()
    if not isinstance(value, dict):
        raise validation(f"The input.{kind} field must be a structure.")
    if kind == "converse":
        return parse_converse(model, json.dumps(value).encode(), count_tokens_only=True)
    if kind == "invokeModel":
        encoded = value.get("body")
        if not isinstance(encoded, str):
            raise coral_constraint(encoded, "input.invokeModel.body", "Member must not be null")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise validation(MSG_MALFORMED_BODY) from None
        return parse_invoke(model, decoded)
    raise _unknown_member(f"input.{kind}")
