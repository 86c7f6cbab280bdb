"""Which network path a call to commercial Bedrock takes: a pure function of configuration and of what
is known of each path (its circuit breaker and its last health check).

The egress paths are an ordered list (the configuration: an SSM parameter changeable without a deploy):
`internet` (through the NAT), `vpn` (a Site-to-Site VPN) and `direct-connect`, each an endpoint URL (for
example the private DNS name of a Bedrock interface endpoint in a commercial VPC reached over the link)
and an optional HTTPS proxy. The list applies to the routes of one commercial region.

Choice: a path is available unless its breaker is open or its last fresh health check failed. Among the
available ones, each scores its measured latency (0 when unknown) plus `priority_step_ms` per place in
the list: the first path wins unless a later one is faster by more than that step per place. When none
is available, every path is tried in list order (a breaker must not turn a flapping link into no
service at all).

Circuit breaker, one per path, shared by every function through the path state table: a call that
surely failed before anything was sent (connection refused, connect timeout, TLS handshake) counts one
failure; `failure_threshold` failures open the breaker for `open_for_s`; a success (a call's, or a
health check's) closes it.
"""

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xpi.settings import check_endpoint

PathName = Literal["internet", "vpn", "direct-connect"]
Health = Literal["healthy", "unhealthy", "unknown"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EgressPath(_Config):
    name: PathName
    endpoint: str = Field(
        description="the Bedrock Runtime endpoint over this path: https (plain http only to a loopback host)"
    )
    https_proxy: str | None = Field(None, description="an HTTPS proxy the call goes through, if any")
    # A blackholed link answers nothing: a call fails over only once its connect has timed out, so this
    # bounds the failover time. The adapter's default (3 s); a private link's round trip is tens of ms.
    connect_timeout_s: Annotated[float, Field(gt=0, le=10)] = 3.0
    # false: a new connection for each call (Connection: close). A blackholed link then fails each call at
    # its connect, which fails over; a kept-alive connection strands the call sent on it until the read
    # timeout, a lost answer (never sent again). The price: a TCP and TLS handshake per call.
    keep_alive: bool = True

    @field_validator("endpoint")
    @classmethod
    def _safe_endpoint(cls, value: str) -> str:
        if not value:
            raise ValueError("a path needs an endpoint")
        return check_endpoint(value)

    @field_validator("https_proxy")
    @classmethod
    def _safe_proxy(cls, value: str | None) -> str | None:
        return check_endpoint(value) if value else None


class EgressPaths(_Config):
    region: str = Field("", description="the commercial region whose Bedrock Runtime the paths reach")
    # Empty (the shipped default): every call goes to the route's own endpoint, as without paths.
    paths: list[EgressPath] = []
    priority_step_ms: Annotated[int, Field(ge=0)] = 50
    failure_threshold: Annotated[int, Field(ge=1)] = 1
    open_for_s: Annotated[float, Field(gt=0)] = 30.0
    # A health check older than this says nothing any more (the health function runs every minute).
    health_fresh_for_s: Annotated[float, Field(gt=0)] = 180.0

    @model_validator(mode="after")
    def _names_unique(self) -> "EgressPaths":
        names = [path.name for path in self.paths]
        if len(set(names)) != len(names):
            raise ValueError("each path is named once")
        return self

    def path(self, name: str) -> EgressPath | None:
        return next((path for path in self.paths if path.name == name), None)


class PathState(BaseModel):
    """What every function knows of one path: its breaker and its last health check."""

    model_config = ConfigDict(frozen=True)
    name: str
    failures: int = 0
    open_until: float | None = None  # epoch seconds; the breaker is open before then
    health: Health = "unknown"
    latency_ms: int | None = None
    checked_at: float | None = None  # epoch seconds of the health check


def breaker_open(state: PathState | None, now: float) -> bool:
    return state is not None and state.open_until is not None and now < state.open_until


def fresh_health(state: PathState | None, now: float, fresh_for_s: float) -> Health:
    if state is None or state.checked_at is None or now - state.checked_at > fresh_for_s:
        return "unknown"
    return state.health


def available(state: PathState | None, now: float, fresh_for_s: float) -> bool:
    return not breaker_open(state, now) and fresh_health(state, now, fresh_for_s) != "unhealthy"


def _latency(state: PathState | None, now: float, fresh_for_s: float) -> int:
    if state is None or state.latency_ms is None or fresh_health(state, now, fresh_for_s) != "healthy":
        return 0
    return state.latency_ms


def ranked(config: EgressPaths, states: dict[str, PathState], now: float) -> list[EgressPath]:
    """The paths in the order to try them: the available ones best first (priority and latency), then
    the unavailable ones in list order as a last resort."""
    fresh = config.health_fresh_for_s
    usable = [
        (place, path)
        for place, path in enumerate(config.paths)
        if available(states.get(path.name), now, fresh)
    ]
    usable.sort(
        key=lambda item: (
            item[0] * config.priority_step_ms + _latency(states.get(item[1].name), now, fresh),
            item[0],
        )
    )
    chosen = [path for _, path in usable]
    return chosen + [path for path in config.paths if path not in chosen]


def after_failure(state: PathState | None, name: str, config: EgressPaths, now: float) -> PathState:
    """The path's state after a call that failed before anything was sent."""
    current = state or PathState(name=name)
    failures = current.failures + 1
    open_until = current.open_until
    if failures >= config.failure_threshold and not breaker_open(current, now):
        open_until = now + config.open_for_s
    return current.model_copy(update={"failures": failures, "open_until": open_until})


def after_success(state: PathState | None, name: str) -> PathState:
    current = state or PathState(name=name)
    return current.model_copy(update={"failures": 0, "open_until": None})


def needs_reset(state: PathState | None) -> bool:
    """Whether a success must be written (the breaker holds failures or is open); otherwise a success
    writes nothing, so a healthy path costs no write per call."""
    return state is not None and (state.failures > 0 or state.open_until is not None)


def latency_percentile(samples: list[float], percentile: float) -> float:
    """The nearest-rank percentile of the samples (p50, p95 of a health check's probes)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]
