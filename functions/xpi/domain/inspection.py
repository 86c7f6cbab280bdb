"""Every piece of a request that goes to Bedrock, as addressable segments, and redaction by address.

What goes to Bedrock is the system prompt, the prompt or messages (every content block, tool names, tool
use ids, tool inputs and results, document names), ``inference.stop_sequences`` and, for InvokeModel,
the whole native body. Every string there is a segment, and so is every dictionary key of free-form data
(tool inputs, tool results, native bodies), whatever the model family. Only exact protocol values at
their protocol position are skipped (``user`` at ``messages[0].role``, ``png`` at an image's format);
the same names anywhere else, or other values there, are inspected.

A segment's location is a JSON path into the request ("system[0]", "messages[1].content[0].text",
"messages[2].content[0].toolUse.input.query", "body.messages[0].content"). A dictionary key that is not
a plain identifier is addressed by its position ("body.metadata{2}"), so no location repeats a key that
may itself be sensitive; the key itself is the segment "<dictionary>{<position>}#key". Redaction puts
placeholders back at the same locations; a redacted key becomes its placeholder text, made unique within
its dictionary, so the body stays valid JSON with distinct keys.
"""

import re
from collections.abc import Callable
from typing import Any, get_args

from xpi.domain.classification import Segment
from xpi.models.request import DocumentBlock, ImageBlock, InferenceRequest

Path = tuple[str | int, ...]
# Visits one text (or key, or media block): returns its replacement, or None to keep it.
Visit = Callable[[Path, str, str | None, str], str | None]

_SENT_FIELDS = ("system", "prompt", "messages", "inference", "body")
_BINARY_BLOCKS = {"image": "image", "document": "document"}
# Native bodies carry media as {"source": {"data": <base64>}} (Anthropic) or {"source": {"bytes": ...}}.
_MEDIA_PAYLOAD_KEYS = {"data", "bytes"}
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,63}")
_ANY = -1  # any list index in a protocol position

# Exact protocol values at their protocol positions: the only strings not inspected.
_ROLES = frozenset({"user", "assistant"})
_PROTOCOL_VALUES: tuple[tuple[Path, frozenset[str]], ...] = (
    (("messages", _ANY, "role"), _ROLES),
    (("messages", _ANY, "content", _ANY, "toolResult", "status"), frozenset({"success", "error"})),
    (("messages", _ANY, "content", _ANY, "cachePoint", "type"), frozenset({"default"})),
    (("system", _ANY, "cachePoint", "type"), frozenset({"default"})),
    (
        ("messages", _ANY, "content", _ANY, "image", "format"),
        frozenset(get_args(ImageBlock.model_fields["format"].annotation)),
    ),
    (
        ("messages", _ANY, "content", _ANY, "document", "format"),
        frozenset(get_args(DocumentBlock.model_fields["format"].annotation)),
    ),
    (("body", "anthropic_version"), frozenset({"bedrock-2023-05-31"})),
    (("body", "messages", _ANY, "role"), _ROLES | {"system"}),
    (
        ("body", "messages", _ANY, "content", _ANY, "type"),
        frozenset({"text", "image", "document", "tool_use", "tool_result"}),
    ),
)


def location(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _member(where: str, key: str, position: int) -> str:
    """The location of a dictionary member: by name when the key is a plain lower- or mixed-case
    identifier, else by position (a key may itself be sensitive, and locations are logged)."""
    if _IDENTIFIER.fullmatch(key) and not key.isupper():
        return f"{where}.{key}" if where else key
    return f"{where}{{{position}}}"


def _is_protocol_value(path: Path, value: str) -> bool:
    for pattern, values in _PROTOCOL_VALUES:
        if len(pattern) == len(path) and all(
            want == got or (want == _ANY and isinstance(got, int))
            for want, got in zip(pattern, path, strict=True)
        ):
            return value in values
    return False


def _is_media(key: str, item: Any) -> bool:
    """A Converse image/document block, or a native body's media source: bytes, not text."""
    if not isinstance(item, dict):
        return False
    return (key in _BINARY_BLOCKS and "source" in item) or (
        key == "source" and bool(_MEDIA_PAYLOAD_KEYS & item.keys())
    )


def _kind(path: Path) -> str:
    return "tool_input" if "toolUse" in path or "toolResult" in path else "text"


def _free_form(path: Path) -> bool:
    """Data whose keys the caller chose (and Bedrock receives): tool inputs and results, native bodies."""
    return (
        path[:1] == ("body",)
        or ("toolUse" in path and "input" in path[path.index("toolUse") :])
        or ("toolResult" in path and "content" in path[path.index("toolResult") :])
    )


def _unique(key: str, taken: set[str]) -> str:
    if key not in taken:
        return key
    number = 2
    while f"{key} ({number})" in taken:
        number += 1
    return f"{key} ({number})"


def _walk_dict(
    value: dict[str, Any], path: Path, where: str, visit: Visit, skip: frozenset[str]
) -> dict[str, Any]:
    free = _free_form(path)
    members: list[tuple[str, Any]] = []
    for position, (key, item) in enumerate(value.items()):
        member_where = _member(where, key, position)
        member_path = (*path, key)
        new_key = key
        if free:
            new_key = visit(member_path, f"{where}{{{position}}}#key", key, _kind(path)) or key
        if key in skip:
            new_item = item
        elif _is_media(key, item):
            # its bytes cannot be read as text; its other fields (a document's name) are still inspected
            kind = _BINARY_BLOCKS.get(key, "binary")
            visit(member_path, member_where, None, kind)
            payload = frozenset({"source"} if key in _BINARY_BLOCKS else _MEDIA_PAYLOAD_KEYS)
            new_item = _walk_dict(item, member_path, member_where, visit, payload)
        else:
            new_item = _walk(item, member_path, member_where, visit)
        members.append((new_key, new_item))
    unchanged = {new for (new, _), original in zip(members, value, strict=True) if new == original}
    rebuilt: dict[str, Any] = {}
    for (key, item), original in zip(members, value, strict=True):
        # a redacted key becomes its placeholder, kept distinct from every other key
        rebuilt[key if key == original else _unique(key, unchanged | rebuilt.keys())] = item
    return rebuilt


def _walk(value: Any, path: Path, where: str, visit: Visit) -> Any:
    """The value rebuilt with every inspected text (and free-form key) replaced by what `visit` says."""
    if isinstance(value, dict):
        return _walk_dict(value, path, where, visit, frozenset())
    if isinstance(value, list):
        return [_walk(item, (*path, index), f"{where}[{index}]", visit) for index, item in enumerate(value)]
    if isinstance(value, str) and not _is_protocol_value(path, value):
        return visit(path, where, value, _kind(path)) or value
    return value


def _sent(request: InferenceRequest) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True, include=set(_SENT_FIELDS))


def segments_with_paths(request: InferenceRequest) -> list[tuple[Path, Segment]]:
    """Every segment, with the path of the value it was read from (for a key, the path of its value)."""
    found: list[tuple[Path, Segment]] = []

    def collect(path: Path, where: str, text: str | None, kind: str) -> None:
        found.append((path, Segment.model_validate({"location": where, "text": text, "kind": kind})))

    _walk(_sent(request), (), "", collect)
    return found


def segments(request: InferenceRequest) -> list[Segment]:
    return [segment for _, segment in segments_with_paths(request)]


def redact(request: InferenceRequest, replacements: dict[str, str]) -> InferenceRequest:
    """The same request with the texts (and keys) at the given locations replaced."""
    if not replacements:
        return request

    def replace(_: Path, where: str, text: str | None, __: str) -> str | None:
        return replacements.get(where) if text is not None else None

    data = request.model_dump(mode="json", exclude_none=True)
    data.update(_walk(_sent(request), (), "", replace))
    return InferenceRequest.model_validate(data)
