"""Call commercial Bedrock for one routed request and shape what comes back for the workflow.

Fail closed: the request is sent only when the classify step allowed it (allow or redact) and recorded
the keyed hash of exactly what is about to be sent (xpi.domain.payload), read from the payload object
the state refers to; anything else is ClassificationMismatch.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import (
    BedrockGateway,
    BudgetLedger,
    EventPublisher,
    HashKey,
    ObjectStore,
    PayloadStore,
    ResponseCache,
)
from xpi.domain.errors import ClassificationMismatch, InternalError
from xpi.domain.hashing import keyed_hash, same_hash, sha256_text
from xpi.domain.payload import outbound_hmac
from xpi.domain.response_cache import cache_key, decide_cache
from xpi.domain.routing import RoutingConfig, estimate_cost
from xpi.models.answer import CachedAnswer
from xpi.models.bedrock import ModelAnswer
from xpi.models.events import SECURITY_ALERT, CredentialAlert, SecurityAlertDetail
from xpi.models.request import InferenceRequest
from xpi.models.workflow import CacheUse, ModelResponse, Route, Usage, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.budget_alerts import alert_budgets
from xpi.services.fallback import Breaker, answer_by_route
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
    cache: ResponseCache | None = None,
    now: Callable[[], float] = time.time,
    breaker: Breaker | None = None,
) -> ModelResponse:
    if state.route is None:
        raise ValueError("the request has no route; the Route step must run first")
    key = hash_key.get()
    request = load_request(state.payload, payloads, request_id=state.request.request_id, key=key)
    check_classified(state, request, key)
    routing = carried_routing(state)
    lookup = _cache_lookup(state, request, routing, key, cache)
    if lookup is not None and lookup.ttl_s is not None and cache is not None:
        hit = _cached(cache, lookup.key, now)
        if hit is not None:
            _settle_budgets(state, budgets, 0, 0.0)  # no Bedrock call: the reservation is released
            return _hit_response(hit, lookup.ttl_s)

    # Paced to the model's quota (requests and tokens per minute, shared by every caller); unpaced only
    # where no pacer is configured (unit tests of this service). Hop by hop along the route's fallbacks.
    def call(hop: Route) -> ModelAnswer:
        if pacer is None:
            return gateway.answer(hop, request)
        return paced_answer(gateway, pacer, routing, hop, request)

    answered = answer_by_route(state.route, call, breaker)
    answer = answered.answer
    _check_credential_age(answer, credential_max_age_s, events)
    # priced on the model that answered, at the batch price for the answer of a batch inference job
    cost = estimate_cost(routing, answered.hop.model_id, answer.usage, batch=answer.billing == "batch")
    _settle_budgets(state, budgets, answer.usage.total_tokens, cost)
    alert_budgets(state, routing, budgets, events, at=_iso(now()))
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
    response = ModelResponse(
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
        billing=answer.billing,
        # what lineage records of a route with a strategy or fallbacks: the hop that answered, each tried
        answered_by=answered.hop if len(answered.hops) > 1 else None,
        hops=answered.hops if state.route.fallbacks or state.route.strategy else None,
        egress_path=answer.egress_path,
    )
    if lookup is None:
        return response
    if lookup.ttl_s is None or cache is None:
        return response.model_copy(update={"cache": CacheUse(status="bypass", reason=lookup.bypass_reason)})
    _store(cache, lookup.key, response, state, lookup.ttl_s, now)
    return response.model_copy(update={"cache": CacheUse(status="miss", ttl_s=lookup.ttl_s)})


def _cache_lookup(
    state: WorkflowState,
    request: InferenceRequest,
    routing: RoutingConfig,
    key: bytes,
    cache: ResponseCache | None,
) -> "_KeyedDecision | None":
    """Whether this request is answered from (and stored in) the response cache, and under which key."""
    assert state.route is not None
    assert state.classification is not None
    rule = routing.caller_rule(state.source.principal)
    decision = decide_cache(request, rule.cache_ttl_s if rule is not None else None)
    if decision is None:
        return None
    if decision.ttl_s is not None and (cache is None or state.config is None):
        reason = "no response cache in this deployment" if cache is None else "no policy snapshot"
        return _KeyedDecision(None, reason, "")
    if decision.ttl_s is None:
        return _KeyedDecision(None, decision.bypass_reason, "")
    assert state.config is not None
    assert state.classification.payload_hmac is not None
    scope = f"project:{state.route.project}" if state.route.project else f"caller:{state.source.principal}"
    return _KeyedDecision(
        decision.ttl_s,
        None,
        cache_key(
            key,
            payload_hmac=state.classification.payload_hmac,
            model_id=state.route.model_id,
            policy_sha256=state.config.policy_sha256,
            scope=scope,
        ),
    )


class _KeyedDecision:
    def __init__(self, ttl_s: int | None, bypass_reason: str | None, key: str) -> None:
        self.ttl_s, self.bypass_reason, self.key = ttl_s, bypass_reason, key


def _cached(cache: ResponseCache, key: str, now: Callable[[], float]) -> CachedAnswer | None:
    """The stored answer, or None; a cache that cannot be read is a miss (Bedrock answers instead)."""
    try:
        return cache.get(key, int(now()))
    except Exception as error:
        logger.warning("response cache not read", extra={"error_class": type(error).__name__})
        return None


def _hit_response(hit: CachedAnswer, ttl_s: int) -> ModelResponse:
    metrics.add_metric(name="ResponseCacheHits", unit=MetricUnit.Count, value=1)
    return ModelResponse(
        output_text=hit.output_text,
        output_body=hit.output_body,
        output_s3_uri=hit.output_s3_uri,
        output_bytes=hit.output_bytes,
        output_sha256=hit.output_sha256,
        output_hmac=hit.output_hmac,
        stop_reason=hit.stop_reason,
        usage=Usage(),
        latency_ms=0,
        credential_version=CACHE_CREDENTIAL,
        estimated_cost_usd=0.0,
        cache=CacheUse(status="hit", ttl_s=ttl_s, saved_usd=hit.estimated_cost_usd),
    )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


# What a hit records as the credential used: none reached Bedrock.
CACHE_CREDENTIAL = "response-cache"


def _store(  # noqa: PLR0917 - private, called once
    cache: ResponseCache,
    key: str,
    response: ModelResponse,
    state: WorkflowState,
    ttl_s: int,
    now: Callable[[], float],
) -> None:
    """Keep the answer for ttl_s. Bedrock has answered: a failure here is logged, never raised."""
    assert state.route is not None
    moment = now()
    usage = response.usage
    try:
        cache.put(
            key,
            CachedAnswer(
                model_id=state.route.model_id,
                output_text=response.output_text,
                output_body=response.output_body,
                output_s3_uri=response.output_s3_uri,
                output_bytes=response.output_bytes,
                output_sha256=response.output_sha256,
                output_hmac=response.output_hmac,
                stop_reason=response.stop_reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens or 0,
                cache_write_input_tokens=usage.cache_write_input_tokens or 0,
                estimated_cost_usd=response.estimated_cost_usd,
                first_request_id=state.request.request_id,
                stored_at=_iso(moment),
                expires_at=int(moment) + ttl_s,
            ),
        )
    except Exception as error:
        logger.warning("response cache not written", extra={"error_class": type(error).__name__})


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
