"""Call commercial Bedrock for one routed request and shape what comes back for the workflow.

Fail closed: the request is sent only when the classify step allowed it (allow or redact) and recorded
the keyed hash of exactly what is about to be sent (xpi.domain.payload), read from the payload object
the state refers to; anything else is ClassificationMismatch.
"""

import json

from xpi.adapters.ports import BedrockGateway, HashKey, ObjectStore, PayloadStore
from xpi.domain.errors import ClassificationMismatch, InternalError
from xpi.domain.hashing import keyed_hash, same_hash, sha256_text
from xpi.domain.payload import outbound_hmac
from xpi.domain.routing import estimate_cost
from xpi.models.request import InferenceRequest
from xpi.models.workflow import ModelResponse, WorkflowState
from xpi.services.routing import carried_routing
from xpi.services.validation import load_request


def check_classified(state: WorkflowState, request: InferenceRequest, key: bytes) -> None:
    """Raise ClassificationMismatch unless the classification allows exactly what would be sent now."""
    classification = state.classification
    request_id = state.request.request_id
    if classification is None or classification.decision == "block":
        raise ClassificationMismatch("the request has no classification that allows it to cross", request_id)
    if not classification.payload_hmac:
        raise ClassificationMismatch("the classification records no hash of the payload", request_id)
    if not same_hash(outbound_hmac(request, key), classification.payload_hmac):
        raise ClassificationMismatch("the payload differs from the one that was classified", request_id)


def invoke_model(
    state: WorkflowState,
    gateway: BedrockGateway,
    objects: ObjectStore,
    inline_max_bytes: int,
    *,
    payloads: PayloadStore,
    hash_key: HashKey,
) -> ModelResponse:
    if state.route is None:
        raise ValueError("the request has no route; the Route step must run first")
    key = hash_key.get()
    request = load_request(state.payload, payloads, request_id=state.request.request_id, key=key)
    check_classified(state, request, key)
    routing = carried_routing(state)
    answer = gateway.answer(state.route, request)
    if answer.text is not None:
        payload, content_type = answer.text.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        payload, content_type = json.dumps(answer.body).encode("utf-8"), "application/json"
    # Outputs too large for a Step Functions payload or an EventBridge event travel by reference.
    s3_uri = None
    if len(payload) > inline_max_bytes:
        extension = "txt" if answer.text is not None else "json"
        try:
            s3_uri = objects.put(f"outputs/{state.request.request_id}.{extension}", payload, content_type)
        except Exception:
            # Bedrock has answered (and billed): never a passing fault for the workflow to retry, which
            # would call Bedrock again. The request fails with this one answer.
            raise InternalError("storing the answer failed after Bedrock answered") from None
    return ModelResponse(
        output_text=answer.text if s3_uri is None else None,
        output_body=answer.body if s3_uri is None else None,
        output_s3_uri=s3_uri,
        output_bytes=len(payload),
        output_sha256=sha256_text(payload),
        output_hmac=keyed_hash(key, payload),
        stop_reason=answer.stop_reason,
        usage=answer.usage,
        latency_ms=answer.latency_ms,
        credential_version=answer.credential_version,
        estimated_cost_usd=estimate_cost(routing, state.route.model_id, answer.usage),
    )
