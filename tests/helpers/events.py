"""The sample events of events/ and builders for the models the workflow passes along."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xpi.domain.hashing import keyed_hash
from xpi.domain.intake import accept, parse_request
from xpi.domain.payload import request_bytes
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Source, WorkflowState

from tests.helpers.fakes import TEST_HASH_KEY, FakePayloadStore

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
REQUESTS = EVENTS / "requests"

PRINCIPAL = "AROAQXZEXAMPLEROLEID1:claims-intake"
RECEIVED_AT = datetime(2025, 3, 12, 14, 5, 11, 482000, tzinfo=UTC)
VALIDATED_AT = datetime(2025, 3, 12, 14, 5, 12, 7000, tzinfo=UTC)
# Where make_state keeps the request bodies its states refer to (tests pass it as the payload store).
PAYLOADS = FakePayloadStore()


def load_event(relative: str) -> dict[str, Any]:
    """A sample event, e.g. load_event("record/state-failed.json"); a fresh copy on every call."""
    value = json.loads((EVENTS / relative).read_text(encoding="utf-8"))
    assert isinstance(value, dict), relative
    return value


def sample_request(name: str) -> dict[str, Any]:
    """A sample request body of events/requests/, e.g. sample_request("pii-redact")."""
    return load_event(f"requests/{name}.json")


def make_source(**overrides: Any) -> Source:
    fields: dict[str, Any] = {
        "kind": "sqs",
        "principal": PRINCIPAL,
        "reference": "5a7c2f8e-3d41-4b6a-9e0f-1c2d3e4f5a01",
        "received_at": RECEIVED_AT,
    }
    fields.update(overrides)
    return Source.model_validate(fields)


def make_request(**fields: Any) -> InferenceRequest:
    """A valid request: a plain prompt to the default alias unless fields say otherwise."""
    data: dict[str, Any] = {"request_id": "req-test-0001", "model": "default"}
    data.update(fields)
    if not {"prompt", "messages", "body"} & data.keys():
        data["prompt"] = "Summarise the change-control procedure in three bullet points."
    return InferenceRequest.model_validate(data)


def request_of(state: WorkflowState) -> InferenceRequest:
    """The request body a state refers to: in PAYLOADS (make_state), else a sample of events/payloads/."""
    key = state.payload.key
    if key in PAYLOADS.objects:
        return InferenceRequest.model_validate_json(PAYLOADS.objects[key])
    name = key.removeprefix("payloads/").removesuffix("/sample.json")
    return InferenceRequest.model_validate_json((EVENTS / "payloads" / f"{name}.json").read_bytes())


def make_state(
    request: InferenceRequest | dict[str, Any] | None = None,
    *,
    payloads: FakePayloadStore = PAYLOADS,
    **sections: Any,
) -> WorkflowState:
    """The state the Validate step hands on (request header, payload reference, source, claim,
    timings), plus any later sections; the request body goes to `payloads` (PAYLOADS by default)."""
    if request is None:
        request = make_request()
    elif isinstance(request, dict):
        request = parse_request(request)
    body = request_bytes(request)
    payload = payloads.put(f"{request.request_id}/request.json", body, hmac=keyed_hash(TEST_HASH_KEY, body))
    state = accept(
        request, make_source(), now=VALIDATED_AT, retention_days=400, payload=payload, hash_key=TEST_HASH_KEY
    )
    return state.model_copy(update=sections) if sections else state


def state_from_event(relative: str) -> WorkflowState:
    return WorkflowState.model_validate(load_event(relative))
