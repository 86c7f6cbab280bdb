"""Call commercial Bedrock for one routed request and shape what comes back for the workflow."""

import json

from xpi.adapters.ports import BedrockGateway, ObjectStore
from xpi.domain.hashing import sha256_text
from xpi.domain.routing import RoutingConfig, estimate_cost
from xpi.models.workflow import ModelResponse, WorkflowState


def invoke_model(
    state: WorkflowState,
    gateway: BedrockGateway,
    objects: ObjectStore,
    routing: RoutingConfig,
    inline_max_bytes: int,
) -> ModelResponse:
    if state.route is None:
        raise ValueError("the request has no route; the Route step must run first")
    answer = gateway.answer(state.route, state.request)
    if answer.text is not None:
        payload, content_type = answer.text.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        payload, content_type = json.dumps(answer.body).encode("utf-8"), "application/json"
    # Outputs too large for a Step Functions payload or an EventBridge event travel by reference.
    s3_uri = None
    if len(payload) > inline_max_bytes:
        extension = "txt" if answer.text is not None else "json"
        s3_uri = objects.put(f"outputs/{state.request.request_id}.{extension}", payload, content_type)
    return ModelResponse(
        output_text=answer.text if s3_uri is None else None,
        output_body=answer.body if s3_uri is None else None,
        output_s3_uri=s3_uri,
        output_bytes=len(payload),
        output_sha256=sha256_text(payload),
        stop_reason=answer.stop_reason,
        usage=answer.usage,
        latency_ms=answer.latency_ms,
        credential_version=answer.credential_version,
        estimated_cost_usd=estimate_cost(routing, state.route.model_id, answer.usage),
    )
