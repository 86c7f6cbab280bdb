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
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from xpi.adapters.ports import BudgetLedger
from xpi.domain.access import Charge, Refusal, Refused, charges, estimate
from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import (
    BudgetExhausted,
    ClearanceRefused,
    ConfigSnapshotInvalid,
    InternalError,
    ModelNotAllowedForCaller,
    ProjectNotAllowed,
    XpiError,
)
from xpi.domain.hashing import canonical_sha256
from xpi.domain.policy import Policy
from xpi.domain.routing import RoutingConfig, decide, resolve_route
from xpi.models.request import MAX_OUTPUT_TOKENS
from xpi.models.workflow import BudgetCharge, ConfigSnapshot, Route, WorkflowState

REFUSED: dict[Refusal, type[XpiError]] = {
    Refusal.PROJECT: ProjectNotAllowed,
    Refusal.MODEL: ModelNotAllowedForCaller,
    Refusal.CLEARANCE: ClearanceRefused,
    Refusal.BUDGET: BudgetExhausted,
}


def _now() -> datetime:
    return datetime.now(UTC)


def snapshot(
    policy: Policy,
    routing: RoutingConfig,
    versions: tuple[ConfigVersion, ConfigVersion] | None = None,
) -> ConfigSnapshot:
    """The snapshot, naming the policy and routing versions in force (`versions`: policy, routing)."""
    document = routing.model_dump(mode="json")
    policy_version, routing_version = versions or (None, None)
    return ConfigSnapshot(
        policy_sha256=canonical_sha256(policy.model_dump(mode="json")),
        routing_sha256=canonical_sha256(document),
        routing=document,
        policy_revision=policy_version.revision if policy_version else 0,
        routing_revision=routing_version.revision if routing_version else 0,
        config_fallback=any(
            v is not None and v.source == "fallback" for v in (policy_version, routing_version)
        ),
    )


def carried_routing(state: WorkflowState) -> RoutingConfig:
    """The routing document the classify step recorded for this request."""
    carried = state.config
    if carried is None:
        raise ConfigSnapshotInvalid("the state carries no configuration snapshot", state.request.request_id)
    if canonical_sha256(carried.routing) != carried.routing_sha256:
        raise ConfigSnapshotInvalid("the routing snapshot does not match its hash", state.request.request_id)
    return RoutingConfig.model_validate(carried.routing)


def route(
    state: WorkflowState,
    *,
    region: str,
    endpoint: str,
    budgets: BudgetLedger | None = None,
    clock: Callable[[], datetime] = _now,
) -> Route:
    """The request's route, once its caller may send it there (and its budgets are reserved)."""
    routing = carried_routing(state)
    principal, request_id = state.source.principal, state.request.request_id
    routed = resolve_route(state.request, principal, routing, region=region, endpoint=endpoint)
    classification = state.classification
    decision = decide(
        routing,
        principal,
        project=state.request.caller.project,
        model_id=routed.model_id,
        categories=classification.categories if classification else {},
        actions=classification.actions if classification else {},
    )
    if isinstance(decision, Refused):
        raise REFUSED[decision.reason](decision.detail, request_id)
    routed.project = decision.project
    if not decision.limits:
        return routed  # no budget: no DynamoDB call
    price = routing.models[routed.model_id]
    tokens, usd = estimate(
        state.payload.bytes,
        state.request.max_tokens or MAX_OUTPUT_TOKENS,
        price.usd_per_1k_input_tokens,
        price.usd_per_1k_output_tokens,
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
