"""Calls to commercial Bedrock over the best network path, with failover and fail-back; the scheduled
health check of every path (xpi.domain.egress).

`PathFailoverGateway` is a BedrockGateway: for a route in the paths' region it tries the paths in
`ranked` order, each through its own gateway (its endpoint and proxy). It moves to the next path only
after a call that surely sent nothing (`BedrockUnreachable`: refused, a connect timeout, the TLS
handshake), so failing over is never a second paid call; any other outcome (an answer, Bedrock's own
error, a lost answer) ends the call on that path. Each failure counts on the path's shared breaker; a
success closes a breaker that held failures (fail-back), as does a healthy health check.
"""

import time
from collections.abc import Callable
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from xpi.adapters.ports import BedrockGateway, PathStates
from xpi.domain.egress import (
    EgressPath,
    EgressPaths,
    PathState,
    after_failure,
    latency_percentile,
    needs_reset,
    ranked,
)
from xpi.domain.errors import BedrockUnreachable
from xpi.models.bedrock import ModelAnswer
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route
from xpi.observability import logger, path_metric


class PathFailoverGateway:
    def __init__(
        self,
        paths: Callable[[], EgressPaths | None],
        states: PathStates,
        gateway_for: Callable[[EgressPath], BedrockGateway],
        direct: BedrockGateway,
        *,
        clock: Callable[[], float] = time.time,
        states_max_age_s: float = 1.0,
    ) -> None:
        self._paths = paths
        self._states = states
        self._gateway_for = gateway_for
        self._direct = direct
        self._clock = clock
        self._states_max_age_s = states_max_age_s
        self._cached: tuple[float, dict[str, PathState]] | None = None

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        config = self._paths()
        if config is None or not config.paths or config.region != route.region:
            return self._direct.answer(route, request)
        now = self._clock()
        states = self._read_states(config, now)
        order = ranked(config, states, now)
        unreachable: BedrockUnreachable | None = None
        for place, path in enumerate(order):
            started = time.monotonic()
            try:
                over_path = route.model_copy(update={"endpoint": path.endpoint})
                answer = self._gateway_for(path).answer(over_path, request)
            except BedrockUnreachable as error:
                unreachable = error
                self._failed(config, path, states.get(path.name), self._clock())
                continue
            latency = (time.monotonic() - started) * 1000
            path_metric("EgressLatency", MetricUnit.Milliseconds, latency, path.name)
            if answer.bytes_sent is not None and answer.bytes_received is not None:
                path_metric("EgressBytesSent", MetricUnit.Bytes, answer.bytes_sent, path.name)
                path_metric("EgressBytesReceived", MetricUnit.Bytes, answer.bytes_received, path.name)
            if place > 0:
                path_metric("EgressFailover", MetricUnit.Count, 1, path.name)
                logger.warning("Bedrock reached over a fallback path", extra={"egress_path": path.name})
            if needs_reset(states.get(path.name)):
                self._succeeded(path)
            return answer.model_copy(update={"egress_path": path.name})
        assert unreachable is not None  # the configuration holds at least one path
        raise unreachable

    def _read_states(self, config: EgressPaths, now: float) -> dict[str, PathState]:
        """The paths' shared states, read at most once per `states_max_age_s` per function instance (a
        breaker another function opened is seen within that time)."""
        if self._cached is not None and now - self._cached[0] < self._states_max_age_s:
            return self._cached[1]
        try:
            states = self._states.read([path.name for path in config.paths])
        except Exception as error:  # the call matters more than the breaker: go by priority alone
            logger.error("egress path states not read", extra={"error_class": type(error).__name__})
            states = {}
        self._cached = (now, states)
        return states

    def _failed(self, config: EgressPaths, path: EgressPath, state: PathState | None, now: float) -> None:
        path_metric("EgressErrors", MetricUnit.Count, 1, path.name)
        logger.warning("egress path unreachable", extra={"egress_path": path.name})
        if self._cached is not None:  # this instance stops choosing it at once
            states = dict(self._cached[1])
            states[path.name] = after_failure(state, path.name, config, now)
            self._cached = (self._cached[0], states)
        try:
            self._states.record_failure(
                path.name, threshold=config.failure_threshold, open_for_s=config.open_for_s, now=now
            )
        except Exception as error:
            logger.error("egress path failure not recorded", extra={"error_class": type(error).__name__})

    def _succeeded(self, path: EgressPath) -> None:
        self._cached = None
        try:
            self._states.record_success(path.name)
        except Exception as error:
            logger.error("egress path success not recorded", extra={"error_class": type(error).__name__})


# ---------------------------------------------------------------------------------------------- health
class PathProbe(Protocol):
    def probe(self, path: EgressPath) -> float:
        """One request to the path's endpoint (TCP, TLS, HTTP): its latency in ms; raises when the path
        does not answer."""
        ...


class PathHealth(BaseModel):
    name: str
    healthy: bool
    probes: int
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    error_class: str | None = None


class HealthReport(BaseModel):
    paths: list[PathHealth]


def check_paths(
    config: EgressPaths | None,
    probe: PathProbe,
    states: PathStates,
    *,
    probes_per_path: int = 3,
    clock: Callable[[], float] = time.time,
) -> HealthReport:
    """Probe each path `probes_per_path` times; healthy when most probes answered. Stores each verdict
    (a healthy one closes the path's breaker: fail back) and emits its metrics."""
    if config is None:
        return HealthReport(paths=[])
    report: list[PathHealth] = []
    for path in config.paths:
        samples: list[float] = []
        error_class: str | None = None
        for _ in range(probes_per_path):
            try:
                samples.append(probe.probe(path))
            except Exception as error:
                error_class = type(error).__name__
        errors = probes_per_path - len(samples)
        healthy = len(samples) * 2 > probes_per_path
        health = PathHealth(
            name=path.name,
            healthy=healthy,
            probes=probes_per_path,
            errors=errors,
            latency_p50_ms=latency_percentile(samples, 50) if samples else None,
            latency_p95_ms=latency_percentile(samples, 95) if samples else None,
            error_class=error_class,
        )
        states.record_health(
            path.name,
            healthy=healthy,
            latency_ms=round(health.latency_p50_ms) if health.latency_p50_ms is not None else None,
            now=clock(),
        )
        path_metric("EgressAvailable", MetricUnit.Count, 1 if healthy else 0, path.name)
        path_metric("EgressProbeErrors", MetricUnit.Count, errors, path.name)
        if health.latency_p50_ms is not None and health.latency_p95_ms is not None:
            path_metric("EgressProbeLatencyP50", MetricUnit.Milliseconds, health.latency_p50_ms, path.name)
            path_metric("EgressProbeLatencyP95", MetricUnit.Milliseconds, health.latency_p95_ms, path.name)
        report.append(health)
    return HealthReport(paths=report)
