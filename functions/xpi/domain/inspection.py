"""Every piece of a request that can carry data, as addressable segments, and redaction by address.

A segment's location is a JSON path into the request ("system[0]", "messages[1].content[0].text",
"messages[2].content[0].toolUse.input.query", "body.messages[0].content"), so the classifier can name
where it found something and the redactor can put placeholders back in exactly that place.
"""

import re
from collections.abc import Iterator
from typing import Any

from xpi.domain.classification import Segment
from xpi.models.request import InferenceRequest

Path = tuple[str | int, ...]
_INSPECTED_FIELDS = ("system", "prompt", "messages", "body")
_ENUMERATIONS = {"role", "format", "status", "toolUseId", "type", "anthropic_version"}
_ENUMERATION_VALUE = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # "user", "text", "bedrock-2023-05-31"
_BINARY_BLOCKS = {"image": "image", "document": "document"}
# Native bodies carry media as {"source": {"data": <base64>}} (Anthropic) or {"source": {"bytes": ...}}.
_MEDIA_PAYLOAD_KEYS = {"data", "bytes"}


def location(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _is_media(key: str, item: Any) -> bool:
    """A Converse image/document block, or a native body's media source: bytes, not text."""
    if not isinstance(item, dict):
        return False
    return (key in _BINARY_BLOCKS and "source" in item) or (
        key == "source" and bool(_MEDIA_PAYLOAD_KEYS & item.keys())
    )


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_media(key, item):
                yield (*path, key), item
            # Only enumeration tokens are skipped: tool inputs and native bodies are free-form.
            elif not (key in _ENUMERATIONS and isinstance(item, str) and _ENUMERATION_VALUE.fullmatch(item)):
                yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def segments_with_paths(request: InferenceRequest) -> list[tuple[Path, Segment]]:
    data = request.model_dump(mode="json", exclude_none=True, include=set(_INSPECTED_FIELDS))
    found: list[tuple[Path, Segment]] = []
    for path, value in _leaves(data, ()):
        where = location(path)
        if isinstance(value, dict):  # an image or document block: its bytes cannot be read as text
            kind = _BINARY_BLOCKS.get(str(path[-1]), "binary")
            found.append((path, Segment(location=where, text=None, kind=kind)))
        else:
            kind = "tool_input" if "toolUse" in path or "toolResult" in path else "text"
            found.append((path, Segment(location=where, text=value, kind=kind)))
    return found


def redact(request: InferenceRequest, replacements: dict[str, str]) -> InferenceRequest:
    """The same request with the texts at the given locations replaced (placeholders in place of PII)."""
    if not replacements:
        return request
    data = request.model_dump(mode="json", exclude_none=True)
    for path, segment in segments_with_paths(request):
        if segment.location in replacements:
            parent: Any = data
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = replacements[segment.location]
    return InferenceRequest.model_validate(data)
