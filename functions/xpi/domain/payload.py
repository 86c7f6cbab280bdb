"""What the invoke step sends to commercial Bedrock, built in one place, and its fingerprint.

The classify step records the keyed hash (HMAC-SHA256 with the stack's hash key, xpi.domain.hashing) of
these bytes after redaction; the invoke step builds them again from the request it reads and sends only
when the two agree. The route (model id, region, endpoint) is
not part of them: the fingerprint covers everything of the request that crosses (messages, system,
inference configuration with its stop sequences, or the native body), so any change to inspected
content between the two steps is refused, while the route step stays free to pick the model.
"""

import json
from typing import Any

from xpi.domain.errors import PayloadMismatch
from xpi.domain.hashing import keyed_hash, same_hash
from xpi.models.request import InferenceRequest
from xpi.models.workflow import PayloadRef


def converse_arguments(request: InferenceRequest) -> dict[str, Any]:
    """The Converse call's arguments except `modelId`, which the route supplies."""
    settings = request.inference
    inference: dict[str, Any] = {"maxTokens": settings.max_tokens}
    if settings.temperature is not None:
        inference["temperature"] = settings.temperature
    if settings.top_p is not None:
        inference["topP"] = settings.top_p
    if settings.stop_sequences:
        inference["stopSequences"] = list(settings.stop_sequences)
    arguments: dict[str, Any] = {"messages": request.converse_messages(), "inferenceConfig": inference}
    if request.system:
        arguments["system"] = [
            {"text": item} if isinstance(item, str) else item.model_dump() for item in request.system
        ]
    return arguments


def native_body(request: InferenceRequest) -> bytes:
    """The exact InvokeModel body bytes."""
    return json.dumps(request.body).encode("utf-8")


def outbound_bytes(request: InferenceRequest) -> bytes:
    """The bytes the fingerprint covers: the native body as sent, or the canonical JSON (sorted keys, no
    spaces) of the Converse arguments, which boto3 serialises itself."""
    if request.api == "invoke_model":
        return native_body(request)
    canonical = json.dumps(
        converse_arguments(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return canonical.encode("utf-8")


def outbound_hmac(request: InferenceRequest, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) of `outbound_bytes`."""
    return keyed_hash(key, outbound_bytes(request))


def request_bytes(request: InferenceRequest) -> bytes:
    """The stored form of a request (what a PayloadRef points at): its JSON, without unset fields."""
    return request.model_dump_json(exclude_none=True).encode("utf-8")


def check_payload(ref: PayloadRef, body: bytes, key: bytes | None = None) -> None:
    """Raise PayloadMismatch unless body is the object ref describes: its size, and its keyed hash when
    the reference carries one and the caller holds the key."""
    if len(body) != ref.bytes:
        raise PayloadMismatch("the payload object is not the size its reference records")
    if key is not None and ref.hmac is not None and not same_hash(keyed_hash(key, body), ref.hmac):
        raise PayloadMismatch("the payload object does not match its reference's keyed hash")
