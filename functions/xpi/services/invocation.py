"""Call commercial Bedrock for one routed request and shape what comes back for the workflow.

Fail closed: the request is sent only when the classify step allowed it (allow or redact) and recorded
the keyed hash of exactly what is about to be sent (xpi.domain.payload), read from the payload object
the state refers to; anything else is ClassificationMismatch.
"""

import json

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import (
    BedrockGateway,
    BudgetLedger,
    EventPublisher,
    HashKey,
    ObjectStore,
    PayloadStore,
)
from xpi.domain.errors import ClassificationMismatch, InternalError
from xpi.domain.hashing import keyed_hash, same_hash, sha256_text
from xpi.domain.payload import outbound_hmac
from xpi.domain.routing import estimate_cost
from xpi.models.bedrock import ModelAnswer
from xpi.models.events import SECURITY_ALERT, CredentialAlert, SecurityAlertDetail
from xpi.models.request import InferenceRequest
from xpi.models.workflow import ModelResponse, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.pacing import QuotaPacer, paced_answer
from xpi.services.routing import carried_routing, settlement
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


# Credential versions this function instance already raised a past-max-age Security Alert for: one
# alert per version per instance, not one per request.
_ALERTED_PAST_MAX_AGE: set[str] = set()


def _check_credential_age(answer: ModelAnswer, max_age_s: int | None, events: EventPublisher | None) -> None:
    """A commercial key past its maximum age (its rotation keeps failing): a metric and a warning on
    each call, and a Security Alert once per credential version per function instance."""
    if not (max_age_s and answer.credential_age_s is not None and answer.credential_age_s > max_age_s):
        return
    metrics.add_metric(name="CredentialPastMaxAge", unit=MetricUnit.Count, value=1)
    logger.warning(
        "the commercial credential is past its maximum age",
        extra={"credential_version": answer.credential_version, "credential_age_s": answer.credential_age_s},
    )
    if events is None or answer.credential_version in _ALERTED_PAST_MAX_AGE:
        return
    try:
        events.publish(
            SECURITY_ALERT,
            SecurityAlertDetail(
                request_id=f"credential-{answer.credential_version}",
                caller_principal="xpi-invoke",
                source="credentials",
                categories={},
                decision="past_max_age",
                credentials=CredentialAlert(
                    change="past_max_age",
                    credential_type=answer.credential_type,
                    credential_version=answer.credential_version,
                    credential_age_s=answer.credential_age_s,
                ),
            ),
        )
    except Exception as error:  # the answer is what the request waits for; the next call tries again
        logger.error("credential age alert not published", extra={"error_class": type(error).__name__})
        return
    _ALERTED_PAST_MAX_AGE.add(answer.credential_version)


def invoke_model(
    state: WorkflowState,
    gateway: BedrockGateway,
    objects: ObjectStore,
    inline_max_bytes: int,
    *,
    payloads: PayloadStore,
    hash_key: HashKey,
    credential_max_age_s: int | None = None,
    events: EventPublisher | None = None,
    pacer: QuotaPacer | None = None,
    budgets: BudgetLedger | None = None,
) -> ModelResponse:
    if state.route is None:
        raise ValueError("the request has no route; the Route step must run first")
    key = hash_key.get()
    request = load_request(state.payload, payloads, request_id=state.request.request_id, key=key)
    check_classified(state, request, key)
    routing = carried_routing(state)
    # Paced to the model's quota (requests and tokens per minute, shared by every caller); unpaced only
    # where no pacer is configured (unit tests of this service).
    if pacer is None:
        answer = gateway.answer(state.route, request)
    else:
        answer = paced_answer(gateway, pacer, routing, state.route, request)
    _check_credential_age(answer, credential_max_age_s, events)
    cost = estimate_cost(routing, state.route.model_id, answer.usage)
    _settle_budgets(state, budgets, answer.usage.input_tokens + answer.usage.output_tokens, cost)
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
        credential_type=answer.credential_type,
        credential_age_s=answer.credential_age_s,
        estimated_cost_usd=cost,
        egress_path=answer.egress_path,
    )


def _settle_budgets(state: WorkflowState, budgets: BudgetLedger | None, tokens: int, usd: float) -> None:
    """Correct the route's budget reservations with what the call used. Bedrock has answered: a failure
    here is logged, never raised (a retry would call Bedrock again); the reservation, which covered
    the most the call could use, then stands."""
    assert state.route is not None
    adjustments = settlement(state.route.budget or [], tokens, usd)
    if not adjustments or budgets is None:
        return
    try:
        budgets.settle(adjustments)
    except Exception as error:
        logger.error("budget not settled", extra={"error_class": type(error).__name__})
