"""Turning what a producer sent into an accepted request, or a clear rejection."""

import contextlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from xpi.domain.errors import Problem, RequestInvalid, field_problems
from xpi.domain.hashing import keyed_canonical_hash
from xpi.models.request import MAX_REQUEST_BYTES, REQUEST_ID_PATTERN, InferenceRequest
from xpi.models.workflow import Claim, PayloadRef, RequestHeader, Source, WorkflowState

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def body_bytes(raw: str | bytes) -> int:
    return len(raw.encode("utf-8") if isinstance(raw, str) else raw)


def parse_json_object(raw: str | bytes) -> dict[str, Any]:
    """The body of a message or line as a JSON object, or RequestInvalid saying why not."""
    size = body_bytes(raw)
    if size > MAX_REQUEST_BYTES:
        raise RequestInvalid(
            f"request is {size} bytes; the limit is {MAX_REQUEST_BYTES}",
            problems=(Problem("request", "too_long"),),
        )
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestInvalid(
            f"request is not valid JSON: {exc}", problems=(Problem("request", "json_invalid"),)
        ) from None
    if not isinstance(value, dict):
        raise RequestInvalid(
            f"request must be a JSON object, not {type(value).__name__}",
            problems=(Problem("request", "dict_type"),),
        )
    return value


def usable_request_id(raw: Mapping[str, Any] | None) -> str | None:
    """The client's request id when it is well-formed, so even a rejected request can be answered."""
    candidate = raw.get("request_id") if raw else None
    return candidate if isinstance(candidate, str) and _REQUEST_ID.fullmatch(candidate) else None


# A JSON string (escapes included) or a bracket: what a scan of the top level steps over.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]')
_KEY_SEPARATOR = re.compile(r"\s*:\s*")
# How much of a body too large to parse is scanned for its id (all of an SQS message, 256 KiB).
MAX_SCANNED_CHARS = 1_048_576


def declared_request_id(raw: str | bytes) -> str | None:
    """The well-formed `request_id` of a body's top-level object, found without parsing the body whole
    (for a body over the size limit, which is never parsed): a linear scan that steps over strings and
    counts brackets, so a "request_id" nested in a value or quoted inside a string never counts. The
    last top-level one wins, as for json.loads. None when the body is not an object or has none."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text[:MAX_SCANNED_CHARS]
    if not text.lstrip().startswith("{"):
        return None
    depth, found = 0, None
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
        elif token in ("}", "]"):
            depth -= 1
            if depth <= 0:
                break
        elif depth == 1 and (separator := _KEY_SEPARATOR.match(text, match.end())):
            try:
                key = json.loads(token)
            except ValueError:
                continue
            if key != "request_id":
                continue
            value = _JSON_TOKEN.match(text, separator.end())
            found = None
            if value is not None and value.group().startswith('"'):
                with contextlib.suppress(ValueError):
                    found = usable_request_id({"request_id": json.loads(value.group())})
    return found


def rejected_request_id(body: str | bytes, raw: Mapping[str, Any] | None) -> str | None:
    """The id a rejected body is answered under when it names one that can be read: the parsed
    object's, or, for a body too large to parse, its top level's. None otherwise (not JSON, not an
    object, no well-formed id): the caller answers under the message's own id instead."""
    if raw is not None:
        return usable_request_id(raw)
    if body_bytes(body) > MAX_REQUEST_BYTES:
        return declared_request_id(body)
    return None


def schema_field_names(schema: Mapping[str, Any]) -> frozenset[str]:
    """Every property name anywhere in a JSON schema (the names a problem's location may show)."""
    names: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                names.update(properties)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(names | {"[key]"})


REQUEST_FIELDS = schema_field_names(InferenceRequest.model_json_schema())


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the field and pydantic's message without input values: the
    `reason` of a RequestInvalid (for tests and the reader; never rendered, xpi.domain.errors)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "request"
        problems.append(f"{location}: {error['msg']}")
    return "; ".join(problems[:10])


def request_problems(exc: ValidationError) -> tuple[Problem, ...]:
    """Where the request is wrong and how (pydantic's error types), without input values or messages."""
    return field_problems(exc.errors(include_input=False, include_url=False), REQUEST_FIELDS)


def parse_request(raw: Mapping[str, Any], fallback_id: str | None = None) -> InferenceRequest:
    data = dict(raw)
    if fallback_id and "request_id" not in data:
        data["request_id"] = fallback_id
    try:
        return InferenceRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(
            f"request does not match schema v1: {describe_validation_error(exc)}",
            problems=request_problems(exc),
        ) from None


def accept(
    request: InferenceRequest,
    source: Source,
    now: datetime,
    retention_days: int,
    *,
    payload: PayloadRef,
    hash_key: bytes,
) -> WorkflowState:
    """The workflow state of a valid request, with the lineage claim the workflow writes next: the
    request's header and a reference to its body (never the body), and a keyed hash of it."""
    claim = Claim(
        request_id=request.request_id,
        created_at=now.isoformat(timespec="milliseconds"),
        day=now.strftime("%Y-%m-%d"),
        caller_principal=source.principal,
        source=source.kind,
        request_hmac=keyed_canonical_hash(hash_key, request.model_dump(mode="json")),
        model_requested=request.model,
        expires_at=str(int((now + timedelta(days=retention_days)).timestamp())),
    )
    return WorkflowState(
        request=RequestHeader.of(request),
        payload=payload,
        source=source,
        claim=claim,
        timings={"received_at": source.received_at, "validated_at": now},
    )
