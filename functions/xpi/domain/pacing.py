"""Pacing calls to commercial Bedrock within its quota: requests per minute (RPM) and tokens per minute
(TPM), per model and region. Pure arithmetic over one shared bucket state; the state itself lives in
DynamoDB (adapters/pacing_table.py) so every function and concurrent invocation draws from one bucket.

Two token buckets in one state, one per dimension. Each holds `BURST_S` seconds of the quota and refills
at the rest of it, so over ANY 60 s window it admits at most the quota (capacity + 60 s of refill =
quota) as long as every request fits in the bucket; a request larger than the bucket (a huge prompt
under a small TPM) is admitted from a full bucket and leaves it in debt, so it is never starved.

Bedrock sends no quota headers (no remaining-requests or reset values): the only signal that the
configured quota is wrong, or shared with another consumer of the account, is a throttle. So the refill
rate is scaled AIMD-style: a throttle halves the scale (at most once per `THROTTLE_COOLDOWN_S`, so a
burst of throttles from concurrent calls counts as one) and empties the request bucket; the scale then
grows back linearly, `RECOVERY_PER_S` per second, to the configured quota.

A call reserves its request and tokens ahead (the level may go below zero) and is due when the
refill has paid the reservation back; calls are due in the order they reserved. Tokens are reserved
before the call (an estimate of the input plus max_tokens) and corrected after from the usage Bedrock
reports.
"""

import math
from dataclasses import dataclass, replace

from xpi.domain.payload import outbound_bytes
from xpi.models.request import InferenceRequest

BURST_S = 3.0
MIN_SCALE = 0.1
RECOVERY_PER_S = 1 / 60  # from half the quota back to all of it in 30 s
THROTTLE_COOLDOWN_S = 2.0
CHARS_PER_TOKEN = 4  # the common "about four characters a token"; corrected after the call


@dataclass(frozen=True)
class Quota:
    """Requests and tokens per minute; None: that dimension is not paced."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    @property
    def paced(self) -> bool:
        return bool(self.requests_per_minute) or bool(self.tokens_per_minute)


@dataclass(frozen=True)
class BucketState:
    """One model and region's shared bucket. `version` guards the read-modify-write (conditional put)."""

    requests: float
    tokens: float
    at: float  # when the levels were last brought up to date (epoch seconds)
    scale: float = 1.0  # the AIMD factor on the refill rate after the last throttle
    throttled_at: float = 0.0
    version: int = 0


def _capacity(per_minute: float) -> float:
    return max(1.0, per_minute * BURST_S / 60.0)


def _rate(per_minute: float, scale: float) -> float:
    """Refill per second: the quota less the bucket's capacity, so capacity + a minute of refill = quota."""
    return max(per_minute - _capacity(per_minute), per_minute * 0.5) / 60.0 * scale


def effective_scale(state: BucketState, now: float) -> float:
    """The AIMD scale now: grown back linearly since the last throttle, up to 1."""
    return min(1.0, state.scale + RECOVERY_PER_S * max(0.0, now - state.throttled_at))


def full_bucket(quota: Quota, now: float) -> BucketState:
    return BucketState(
        requests=_capacity(quota.requests_per_minute or 0.0),
        tokens=_capacity(quota.tokens_per_minute or 0.0),
        at=now,
    )


def refilled(state: BucketState, quota: Quota, now: float) -> BucketState:
    """The levels at `now` (a clock that stepped back refills nothing)."""
    elapsed = max(0.0, now - state.at)
    scale = effective_scale(state, now)
    requests, tokens = state.requests, state.tokens
    if quota.requests_per_minute:
        capacity = _capacity(quota.requests_per_minute)
        requests = min(capacity, requests + elapsed * _rate(quota.requests_per_minute, scale))
    if quota.tokens_per_minute:
        capacity = _capacity(quota.tokens_per_minute)
        tokens = min(capacity, tokens + elapsed * _rate(quota.tokens_per_minute, scale))
    return replace(state, requests=requests, tokens=tokens, at=max(state.at, now))


def _wait_for(level_after: float, cost: float, per_minute: float | None, scale: float) -> float:
    """Seconds until a reservation that left this level is due: when the level is back to 0 (for a call
    larger than the whole bucket, to what a full bucket less the call leaves, so it is never starved)."""
    if not per_minute:
        return 0.0
    due_at_level = min(0.0, _capacity(per_minute) - cost)
    return max(0.0, (due_at_level - level_after) / _rate(per_minute, scale))


def take(
    state: BucketState, quota: Quota, tokens: int, now: float, horizon_s: float = math.inf
) -> tuple[BucketState | None, float]:
    """Reserve one request and `tokens` in the bucket as it is at `now`: (the state with the reservation
    taken, seconds until the call is due) when it is due within `horizon_s`, else (None, the seconds it
    would have to wait). Reserving ahead, rather than retrying when the bucket looks full enough, keeps
    waiters in order (a large call is not starved by small ones) and leaves no refill unclaimed while
    anyone waits."""
    current = refilled(state, quota, now)
    requests = current.requests - (1 if quota.requests_per_minute else 0)
    reserved_tokens = current.tokens - (tokens if quota.tokens_per_minute else 0)
    scale = effective_scale(state, now)
    wait = max(
        _wait_for(requests, 1, quota.requests_per_minute, scale),
        _wait_for(reserved_tokens, tokens, quota.tokens_per_minute, scale),
    )
    if wait > horizon_s:
        return None, wait
    return replace(current, requests=requests, tokens=reserved_tokens), wait


def after_throttle(state: BucketState, quota: Quota, now: float) -> BucketState | None:
    """Multiplicative decrease after Bedrock throttled a call: halve the rate and empty the request
    bucket. None when a throttle within the cooldown already did (concurrent throttles count once)."""
    if now - state.throttled_at < THROTTLE_COOLDOWN_S:
        return None
    current = refilled(state, quota, now)
    return replace(
        current,
        requests=min(current.requests, 0.0),
        scale=max(MIN_SCALE, effective_scale(state, now) / 2),
        throttled_at=now,
    )


def estimate_tokens(request: InferenceRequest) -> int:
    """What a call may count against TPM at most, before it is made: its input (about four characters a
    token of what is sent) and the most it may generate. A native body's own max-tokens field is not
    read (families name it differently); the request's max_tokens stands for it."""
    return math.ceil(len(outbound_bytes(request)) / CHARS_PER_TOKEN) + request.inference.max_tokens
