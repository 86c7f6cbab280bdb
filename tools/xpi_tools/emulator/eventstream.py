"""The AWS event-stream binary framing (``application/vnd.amazon.eventstream``), encoder side.

Each message: total length (4 bytes), headers length (4), CRC32 of those 8 bytes, headers, payload,
CRC32 of everything before it; integers big-endian. Headers here are all strings (type 7):
name length (1), name, 7, value length (2), value. botocore's ``EventStreamBuffer`` decodes this.
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _header(name: str, value: str) -> bytes:
    name_bytes, value_bytes = name.encode(), value.encode()
    return (
        bytes((len(name_bytes),)) + name_bytes + b"\x07" + struct.pack(">H", len(value_bytes)) + value_bytes
    )


@lru_cache(maxsize=64)
def _event_headers(event_type: str) -> bytes:
    return (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )


@lru_cache(maxsize=64)
def _exception_headers(exception_type: str) -> bytes:
    return (
        _header(":exception-type", exception_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "exception")
    )


def encode_message(headers: bytes, payload: bytes) -> bytes:
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return encode_message(_event_headers(event_type), body)


def exception(exception_type: str, message: str, **extra: Any) -> bytes:
    body = json.dumps({"message": message, **extra}, separators=(",", ":")).encode()
    return encode_message(_exception_headers(exception_type), body)
