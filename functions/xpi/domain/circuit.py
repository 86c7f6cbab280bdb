"""A circuit breaker per model and region, shared by every function (its state is a DynamoDB item).

A hop that keeps failing (throttled, out, the model not enabled) opens its circuit after
`failures_to_open` failures in a row; while open (`open_for_s`), requests that have another hop skip it
rather than wait on it. Once the time is up the next request tries it again (half open): an answer closes
the circuit, a failure opens it for another period. Only routes with fallbacks consult the breaker: a
request with one place to go always tries it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class BreakerSettings:
    failures_to_open: int = 3
    open_for_s: float = 30.0


@dataclass(frozen=True)
class CircuitState:
    failures: int = 0  # in a row, since the last answer
    opened_at: float | None = None  # epoch seconds the circuit last opened


def circuit_key(model_id: str, region: str) -> str:
    return f"circuit#{model_id}#{region}"


def is_open(state: CircuitState | None, now: float, settings: BreakerSettings) -> bool:
    return state is not None and state.opened_at is not None and now - state.opened_at < settings.open_for_s


def opens_now(
    failures: int, state_before: CircuitState | None, now: float, settings: BreakerSettings
) -> bool:
    """Whether a failure that brings the count to `failures` (re)opens the circuit: enough of them in a
    row, and the circuit not open already (a half-open trial that failed reopens it)."""
    return failures >= settings.failures_to_open and not is_open(state_before, now, settings)
