"""The workflow's first step, and reading the request body a state refers to.

States carry a PayloadRef (the body is an object under `payloads/`, SSE-KMS with the stack key), so
Step Functions' execution history never holds a request's text. The steps that need the body read it
here, and check it is the object the reference describes.
"""

import json
from datetime import datetime
from typing import Any

from xpi.adapters.ports import HashKey, PayloadStore
from xpi.domain.hashing import keyed_hash
from xpi.domain.intake import accept, parse_json_object, parse_request
from xpi.domain.payload import check_payload
from xpi.models.request import InferenceRequest
from xpi.models.workflow import ExecutionInput, PayloadRef, WorkflowState


def load_request(
    ref: PayloadRef, payloads: PayloadStore, *, request_id: str | None, key: bytes | None
) -> InferenceRequest:
    """The request a reference points at (RequestInvalid when it is not one)."""
    body = payloads.get(ref)
    check_payload(ref, body, key)
    return parse_request(parse_json_object(body), fallback_id=request_id)


def load_raw(ref: PayloadRef, payloads: PayloadStore) -> dict[str, Any]:
    """The request as sent, for answering one that was not accepted: {} when it cannot be read."""
    try:
        body = payloads.get(ref)
        check_payload(ref, body)
        value = json.loads(body)
    except Exception:  # a rejection is answered even when its body is unreadable
        return {}
    return value if isinstance(value, dict) else {}


def validate(
    execution: ExecutionInput,
    *,
    payloads: PayloadStore,
    hash_key: HashKey,
    now: datetime,
    retention_days: int,
) -> WorkflowState:
    """The accepted request's state: its header, the reference to its body (now with the body's keyed
    hash) and the lineage claim with the request's keyed hash."""
    body = payloads.get(execution.payload)
    check_payload(execution.payload, body)
    request = parse_request(parse_json_object(body), fallback_id=execution.execution)
    key = hash_key.get()
    payload = execution.payload.model_copy(update={"hmac": keyed_hash(key, body)})
    state = accept(
        request, execution.source, now=now, retention_days=retention_days, payload=payload, hash_key=key
    )
    state.execution = execution.token()
    return state
