"""What the invoke step sends to commercial Bedrock, built in one place, and its fingerprint.

The classify step records the SHA-256 of these bytes after redaction; the invoke step builds them again
from the request it holds and sends only when the two agree. The route (model id, region, endpoint) is
not part of them: the fingerprint covers everything of the request that crosses (messages, system,
inference configuration with its stop sequences, or the native body), so any change to inspected
content between the two steps is refused, while the route step stays free to pick the model.
"""

import hashlib
import json
from typing import Any

from xpi.models.request import InferenceRequest


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
        arguments["system"] = [{"text": text} for text in request.system]
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


def outbound_sha256(request: InferenceRequest) -> str:
    """Plain SHA-256 of `outbound_bytes` (hex)."""
    return hashlib.sha256(outbound_bytes(request)).hexdigest()
