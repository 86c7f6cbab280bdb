"""Turning what a producer sent into an accepted request, or a clear rejection."""

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


def parse_json_object(raw: str | bytes) -> dict[str, Any]:
    """The body of a message or line as a JSON object, or RequestInvalid saying why not."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
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
