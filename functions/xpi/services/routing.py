"""One configuration snapshot per request, and the Route step that uses it.

The classify step reads the policy and the routing document once and records a snapshot in the workflow
state: the routing document itself (small) with its hash, and the policy's hash (its decision is already
applied). The route and invoke steps use the carried routing, never a newer parameter value; a snapshot
that is missing or does not match its hash fails the request (ConfigSnapshotInvalid).

Routing also applies the fine-grained permissions (xpi.domain.access) before Bedrock is called, the same
for the route step (queue and batch) and POST /v1/invoke: project, model allow-list, clearance, then the
day's budgets reserved in one atomic write (settled after the call by xpi.services.invocation). A
refusal raises its error (ProjectNotAllowed, ModelNotAllowedForCaller, ClearanceRefused,
BudgetExhausted), which ends the request through its outcome like any step's error: one Inference Failed
event, and lineage naming the refusal.

The routing strategies (xpi.domain.strategies) give the hops in order; each is checked the same way and
the ones the caller may not use are dropped; the first left is the route, the others its fallbacks (tried
by the invoke step, xpi.services.fallback). A request the partition policy keeps in GovCloud with no
GovCloud-native model left is refused (ClearanceRefused) and never sent.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from xpi.adapters.ports import BudgetLedger
from xpi.domain.access import Charge, Grant, Refusal, Refused, charges, estimate
from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import (
    BudgetExhausted,
    ClearanceRefused,
    ConfigSnapshotInvalid,
    InternalError,
    ModelNotAllowedForCaller,
    ModelNotApproved,
    ProjectNotAllowed,
    XpiError,
)
from xpi.domain.hashing import canonical_sha256
from xpi.domain.policy import Policy
from xpi.domain.routing import RoutingConfig, decide, plan_route, resolve_route
from xpi.domain.strategies import GOVCLOUD, Hop, Plan, RouteContext
from xpi.models.request import MAX_OUTPUT_TOKENS
from xpi.models.workflow import BudgetCharge, ConfigSnapshot, Route, RouteHop, WorkflowState

REFUSED: dict[Refusal, type[XpiError]] = {
    Refusal.PROJECT: ProjectNotAllowed,
    Refusal.MODEL: ModelNotAllowedForCaller,
    Refusal.CLEARANCE: ClearanceRefused,
    Refusal.BUDGET: BudgetExhausted,
}


def _now() -> datetime:
    return datetime.now(UTC)


# The last snapshot made in this process and what it was made from. While a version stands, the classify
# step of every request gets the same policy and routing objects (cached per version by ConfigOverride), so
# the routing's dump and both canonical hashes are made once per version, not once per request.
type _Snapshotted = tuple[Policy, RoutingConfig, tuple[ConfigVersion, ConfigVersion] | None, ConfigSnapshot]
_last_snapshot: list[_Snapshotted] = []  # at most one: the last


def snapshot(
    policy: Policy,
    routing: RoutingConfig,
    versions: tuple[ConfigVersion, ConfigVersion] | None = None,
) -> ConfigSnapshot:
    """The snapshot, naming the policy and routing versions in force (`versions`: policy, routing)."""
    last = _last_snapshot[0] if _last_snapshot else None
    if last is not None and last[0] is policy and last[1] is routing and last[2] == versions:
        return last[3]
    document = routing.model_dump(mode="json")
    policy_version, routing_version = versions or (None, None)
    made = ConfigSnapshot(
        policy_sha256=canonical_sha256(policy.model_dump(mode="json")),
        routing_sha256=canonical_sha256(document),
        routing=document,
        policy_revision=policy_version.revision if policy_version else 0,
        routing_revision=routing_version.revision if routing_version else 0,
        config_fallback=any(
            v is not None and v.source == "fallback" for v in (policy_version, routing_version)
        ),
    )
    _last_snapshot[:] = [(policy, routing, versions, made)]
    return made


def carried_routing(state: WorkflowState) -> RoutingConfig:
    """The routing document the classify step recorded for this request. A snapshot that came through the
    workflow's state (JSON, between functions) is checked against its hash and read again; the one this
    process made itself (the sync path runs every step in process) is the routing it was made from."""
    carried = state.config
    if carried is None:
        raise ConfigSnapshotInvalid("the state carries no configuration snapshot", state.request.request_id)
    last = _last_snapshot[0] if _last_snapshot else None
    if last is not None and carried is last[3]:
        return last[1]
    if canonical_sha256(carried.routing) != carried.routing_sha256:
        raise ConfigSnapshotInvalid("the routing snapshot does not match its hash", state.request.request_id)
    return RoutingConfig.model_validate(carried.routing)


def _context(state: WorkflowState) -> RouteContext:
    classification = state.classification
    return RouteContext(
        request_id=state.request.request_id,
        requested=state.request.model,
        principal=state.source.principal,
        project=state.request.caller.project,
        tags=state.request.caller.tags,
        categories=classification.categories if classification else {},
        request_bytes=state.payload.bytes,
        at=state.source.received_at,
    )


def _hops(
    state: WorkflowState,
    routing: RoutingConfig,
    plan: Plan,
    commercial: tuple[str, str],
    govcloud: tuple[str, str],
) -> list[tuple[RouteHop, Grant]]:
    """The plan's hops this caller may use for this request (api, access, clearance), in order, each with
    its grant; raises the first hop's refusal when none is left."""
    principal, request_id = state.source.principal, state.request.request_id
    classification = state.classification
    kept: list[tuple[RouteHop, Grant]] = []
    first_refusal: XpiError | None = None
    judged = classification.models if classification else None
    for hop in plan.hops:
        if judged is not None and hop.model_id not in judged:
            # the policy would handle this content more strictly for that model: never sent there
            first_refusal = first_refusal or ClearanceRefused(
                f"the policy handles this content more strictly for '{hop.model_id}'", request_id
            )
            continue
        approved = routing.models.get(hop.model_id)
        if approved is None or approved.api not in ("both", state.request.api):
            first_refusal = first_refusal or ModelNotApproved(
                f"model '{hop.model_id}' is not approved for {state.request.api}", request_id
            )
            continue
        decision = decide(
            routing,
            principal,
            project=state.request.caller.project,
            model_id=hop.model_id,
            categories=classification.categories if classification else {},
            actions=classification.actions if classification else {},
        )
        if isinstance(decision, Refused):
            first_refusal = first_refusal or REFUSED[decision.reason](decision.detail, request_id)
            continue
        kept.append((_place(hop, commercial, govcloud), decision))
    if not kept:
        raise first_refusal or ClearanceRefused(
            "the request's categories keep it in GovCloud and no GovCloud-native model is routed", request_id
        )
    return kept


def _place(hop: Hop, commercial: tuple[str, str], govcloud: tuple[str, str]) -> RouteHop:
    """Where a hop is called: GovCloud's own Bedrock in the stack's region, or a commercial region (the
    stack's, with its endpoint, or the one the rule names, at its public endpoint)."""
    if hop.partition == GOVCLOUD:
        return RouteHop(model_id=hop.model_id, region=govcloud[0], endpoint=govcloud[1], partition=GOVCLOUD)
    region, endpoint = commercial
    if hop.region is None or hop.region == region:
        return RouteHop(model_id=hop.model_id, region=region, endpoint=endpoint)
    return RouteHop(
        model_id=hop.model_id,
        region=hop.region,
        endpoint=f"https://bedrock-runtime.{hop.region}.amazonaws.com",
    )


def route(
    state: WorkflowState,
    *,
    region: str,
    endpoint: str,
    budgets: BudgetLedger | None = None,
    clock: Callable[[], datetime] = _now,
    govcloud_region: str = "",
    govcloud_endpoint: str = "",
) -> Route:
    """The request's route, once its caller may send it there (and its budgets are reserved): the first
    hop its strategy and the partition policy allow, the others as its fallbacks."""
    routing = carried_routing(state)
    principal, request_id = state.source.principal, state.request.request_id
    context = _context(state)
    plan = plan_route(routing, context)
    places = (region, endpoint), (govcloud_region, govcloud_endpoint)
    if plan.experiment is not None:
        # The variant is checked like any hop (partition policy, the content's judgement, api, access,
        # clearance); a request that may not use it leaves the experiment and is routed as without it.
        try:
            hops = _hops(state, routing, plan, *places) if plan.hops else []
        except XpiError:
            hops = []
        if not hops:
            plan = plan_route(routing, context, experiments=False)
    if plan.experiment is None:
        if plan.strategy is None and plan.hops:
            # the alias table: the requested model or nothing, with the errors it always had
            resolve_route(state.request, principal, routing, region=region, endpoint=endpoint)
        hops = _hops(state, routing, plan, *places)
    (primary, decision), rest = hops[0], hops[1:]
    routed = Route(
        model_id=primary.model_id,
        region=primary.region,
        endpoint=primary.endpoint,
        partition=GOVCLOUD if primary.partition == GOVCLOUD else None,
        api=state.request.api,
        strategy=plan.strategy,
        experiment=plan.experiment,
        variant=plan.variant,
        fallbacks=[hop for hop, _ in rest] or None,
        project=decision.project,
    )
    if not decision.limits:
        return routed  # no budget: no DynamoDB call
    # The most any hop may cost: a fallback to a dearer model stays within what was reserved.
    tokens, usd = max(
        (
            estimate(
                state.payload.bytes,
                state.request.max_tokens or MAX_OUTPUT_TOKENS,
                routing.models[hop.model_id].usd_per_1k_input_tokens,
                routing.models[hop.model_id].usd_per_1k_output_tokens,
            )
            for hop, _ in hops
        ),
        key=lambda pair: pair[1],
    )
    reserved = charges(decision, tokens, usd, clock().date())
    if budgets is None:  # fail closed: a budget that cannot be counted is not granted
        raise InternalError("a budget is configured but no budget table", request_id)
    if not budgets.reserve(reserved):
        raise BudgetExhausted("the day's budget does not cover this request", request_id)
    routed.budget = [
        BudgetCharge(item=c.item, tokens=c.tokens, usd=c.usd, expires_at=c.expires_at) for c in reserved
    ]
    return routed


def settlement(reserved: Sequence[BudgetCharge], used_tokens: int, used_usd: float) -> list[Charge]:
    """What to add to each reserved budget once the call's usage is known (negative: given back)."""
    return [
        Charge(item=c.item, tokens=used_tokens - c.tokens, usd=used_usd - c.usd, expires_at=c.expires_at)
        for c in reserved
        if used_tokens != c.tokens or used_usd != c.usd
    ]
