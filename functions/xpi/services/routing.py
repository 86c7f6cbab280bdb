"""One configuration snapshot per request, and the Route step that uses it.

The classify step reads the policy and the routing document once and records a snapshot in the workflow
state: the routing document itself (small) with its hash, and the policy's hash (its decision is already
applied). The route and invoke steps use the carried routing, never a newer parameter value; a snapshot
that is missing or does not match its hash fails the request (ConfigSnapshotInvalid).
"""

from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import ConfigSnapshotInvalid
from xpi.domain.hashing import canonical_sha256
from xpi.domain.policy import Policy
from xpi.domain.routing import RoutingConfig, resolve_route
from xpi.models.workflow import ConfigSnapshot, Route, WorkflowState


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


def route(state: WorkflowState, *, region: str, endpoint: str) -> Route:
    return resolve_route(
        state.request, state.source.principal, carried_routing(state), region=region, endpoint=endpoint
    )
