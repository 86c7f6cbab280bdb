"""The Classify step: inspect everything the request carries and apply the agency's policy for the
model it resolves to.

The step reads the request body the state refers to. A redacted copy is stored beside it and the state's
reference moved to it, so only what policy allows crosses the partition. The step records the keyed
hash of what the invoke step will send (xpi.domain.payload) and the configuration snapshot (policy hash,
routing document) the later steps use. Categories the routing document keeps in GovCloud (its partition
policy) are not blocked but held to GovCloud-native models (`in_partition`).
Lineage gets categories and counts; matched values are never kept or logged. A classified
marking also raises a Security Alert naming who sent what kind of content (never the content).
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from xpi.adapters.ports import EventPublisher, HashKey, PayloadStore
from xpi.domain.classification import Assessment, Detector, classify_segments
from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import RequestInvalid
from xpi.domain.hashing import keyed_hash
from xpi.domain.inspection import redact, segments
from xpi.domain.intake import request_problems
from xpi.domain.payload import outbound_hmac, request_bytes
from xpi.domain.policy import ACTION_RANK, Action, Policy
from xpi.domain.routing import RoutingConfig, candidate_plans
from xpi.domain.strategies import GOVCLOUD, RouteContext, stays_in_govcloud
from xpi.models.events import SECURITY_ALERT, SecurityAlertDetail
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Classification, Decision, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.routing import snapshot
from xpi.services.validation import load_request

RULES_CLASSIFIER = "xpi-rules/1"


def _now() -> datetime:
    return datetime.now(UTC)


def assess(
    request: InferenceRequest, *, policy: Policy, detectors: Sequence[Detector], routing: RoutingConfig
) -> Assessment:
    """The policy's assessment of everything in the request that goes to Bedrock: the one code path of
    the classify step and of `xpi classify`."""
    # Policy rules name model ids, so an alias is judged as the model it resolves to.
    model_id = routing.resolve_alias(request.model)
    return classify_segments(segments(request), policy, model_id=model_id, extra_detectors=detectors)


_RESTRICTION = {"allow": 0, "redact": 1, "block": 2}


def category_actions(assessment: Assessment) -> dict[str, Decision]:
    """Per category found, the most restrictive action the policy took on its findings."""
    actions: dict[str, Decision] = {}
    for finding in assessment.findings:
        current = actions.get(finding.category)
        if current is None or _RESTRICTION[finding.action] > _RESTRICTION[current]:
            actions[finding.category] = finding.action
    return actions


def in_partition(assessment: Assessment, routing: RoutingConfig, context: RouteContext) -> Assessment:
    """The assessment of a request the routing document keeps in GovCloud: findings of the categories
    its partition policy names (`govcloud_only`, e.g. `cui.*`), which the policy blocks from crossing,
    may go as they are to a GovCloud-native model, when the request's route has one (the route step then
    keeps only those). Without one the block stands (the request is BLOCKED, as ever); so does any other
    block, and a block beside a redaction (a blocked request has no redacted copy to send)."""
    policy = routing.partition_policy
    if assessment.decision != "block" or not policy.govcloud_only:
        return assessment
    findings = [
        f.model_copy(update={"action": "allow"}) if stays_in_govcloud(policy, {f.category: 1}) else f
        for f in assessment.findings
    ]
    if any(f.action != "allow" for f in findings):
        return assessment
    if not any(
        plan.hops for plan in candidate_plans(routing, replace(context, categories=assessment.categories))
    ):
        return assessment
    reason = "partition_policy: kept in GovCloud, to GovCloud-native models only"
    return assessment.model_copy(
        update={"decision": "allow", "findings": findings, "reasons": [*assessment.reasons, reason]}
    )


def models_judged_alike(
    assessment: Assessment, policy: Policy, routing: RoutingConfig, context: RouteContext
) -> list[str] | None:
    """The models a routing strategy may send this request to: those for which the policy handles no
    finding more strictly than the assessment did (it was judged for the requested model; a fallback or
    a weighted draw must not reach a model the policy would have blocked or redacted it for). A category
    the partition policy keeps in GovCloud counts as allowed for GovCloud-native models only. None when
    no strategy applies (the one model judged)."""
    plans = candidate_plans(routing, replace(context, categories=assessment.categories))
    if all(plan.strategy is None for plan in plans):
        return None
    kept: list[str] = []
    for hop in (hop for plan in plans for hop in plan.hops):
        if hop.model_id in kept:
            continue
        stricter = False
        for finding in assessment.findings:
            action, _ = policy.action_for(finding.category, hop.model_id)
            if hop.partition == GOVCLOUD and stays_in_govcloud(
                routing.partition_policy, {finding.category: 1}
            ):
                action = Action.ALLOW
            stricter = stricter or ACTION_RANK[action] > ACTION_RANK[finding.action]
        if not stricter:
            kept.append(hop.model_id)
    return kept


def classify(
    state: WorkflowState,
    *,
    policy: Policy,
    detectors: Sequence[Detector],
    routing: RoutingConfig,
    events: EventPublisher,
    payloads: PayloadStore,
    hash_key: HashKey,
    clock: Callable[[], datetime] = _now,
    versions: tuple[ConfigVersion, ConfigVersion] | None = None,
) -> WorkflowState:
    """The state with its classification (and, when the decision is redact, its reference moved to the
    redacted request)."""
    key = hash_key.get()
    request_id = state.request.request_id
    request = load_request(state.payload, payloads, request_id=request_id, key=key)
    context = RouteContext(
        request_id=request_id,
        requested=state.request.model,
        principal=state.source.principal,
        project=state.request.caller.project,
        tags=state.request.caller.tags,
        request_bytes=state.payload.bytes,
        at=state.source.received_at,
    )
    assessment = in_partition(
        assess(request, policy=policy, detectors=detectors, routing=routing), routing, context
    )
    state.classification = Classification(
        decision=assessment.decision,
        categories=assessment.categories,
        findings=len(assessment.findings),
        security_alert=assessment.security_alert,
        reasons=assessment.reasons,
        actions=category_actions(assessment),
        classifier=RULES_CLASSIFIER + "".join(f" + {d.name}" for d in detectors),
        models=models_judged_alike(assessment, policy, routing, context)
        if assessment.decision != "block"
        else None,
    )
    if assessment.decision == "redact":
        try:
            request = redact(request, assessment.redacted)
        except ValidationError as exc:
            # Redaction markers can be longer than what they replace, so a request at a limit can grow
            # past it. pydantic's error would quote the request: only locations and types go on.
            raise RequestInvalid(
                "the redacted request exceeds a limit", request_id, problems=request_problems(exc)
            ) from None
        body = request_bytes(request)
        state.payload = payloads.put(f"{request_id}/redacted.json", body, hmac=keyed_hash(key, body))
    if assessment.decision != "block":
        state.classification.payload_hmac = outbound_hmac(request, key)
    state.config = snapshot(policy, routing, versions)
    state.timings["classified_at"] = clock()
    metrics.add_metric(name=f"Decision{assessment.decision.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("classified", extra={"decision": assessment.decision, "categories": assessment.categories})
    if assessment.security_alert:
        events.publish(
            SECURITY_ALERT,
            SecurityAlertDetail(
                request_id=request_id,
                caller_principal=state.source.principal,
                source=state.source.kind,
                categories=assessment.categories,
                decision=assessment.decision,
            ),
        )
    return state
