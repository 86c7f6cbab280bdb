"""Every call to commercial Bedrock goes through `paced_answer`: it takes one request and the call's
estimated tokens from the model's shared bucket first (xpi.domain.pacing; the bucket is a DynamoDB item,
so every function and invocation shares it), waits in-function up to a short bound when the bucket is
empty, and otherwise raises QuotaExhausted, which the workflow retries with backoff (nothing was sent).
After the call the estimate is corrected from the usage; a throttle halves the bucket's rate.

One DynamoDB write per call on a warm function, no read and nothing on the way out: the pacer keeps the
bucket as it last wrote it and reserves from that, under the same condition on its version (a bucket
another writer changed since fails the condition, and is read again before the next try, as before).
Tokens a call reserved but did not use are given back with the pacer's next reservation of that bucket,
in the same write; until then they stay reserved, which can only admit less than the quota, never more.
Tokens used beyond the reservation are charged at once (an atomic ADD), so the quota is never overrun.

The invoke step calls it with the routing snapshot its request carries; an in-process caller (the API's
synchronous path) calls it the same way with the routing in force.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import BedrockGateway, PacingTable
from xpi.domain.errors import BedrockThrottled, QuotaExhausted
from xpi.domain.pacing import BucketState, Quota, after_throttle, estimate_tokens, full_bucket, take
from xpi.domain.routing import RoutingConfig
from xpi.models.bedrock import ModelAnswer
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route
from xpi.observability import logger, metrics

# Conditional writes that lose to another writer are retried at once, this many times per attempt.
MAX_CONFLICTS = 25


@dataclass(frozen=True)
class Permit:
    """One admitted call: the bucket it drew from, the quota in force, and the tokens reserved."""

    bucket: str
    quota: Quota
    tokens: int


class QuotaPacer:
    def __init__(
        self,
        table: PacingTable,
        default: Quota,
        *,
        max_wait_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._default = default
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        # Per bucket: the state this pacer last wrote (its next reservation starts there, without a read)
        # and the tokens it owes back (carried by that reservation's write).
        self._written: dict[str, BucketState] = {}
        self._unused_tokens: dict[str, float] = {}

    def quota_for(self, routing: RoutingConfig, model_id: str) -> Quota:
        """The stack's default quota, with the routing entry's own values where it sets them."""
        entry = routing.models.get(model_id)
        requests = self._default.requests_per_minute
        tokens = self._default.tokens_per_minute
        if entry is not None and entry.requests_per_minute is not None:
            requests = entry.requests_per_minute
        if entry is not None and entry.tokens_per_minute is not None:
            tokens = entry.tokens_per_minute
        return Quota(requests or None, tokens or None)

    def acquire(self, route: Route, quota: Quota, tokens: int) -> Permit | None:
        """Reserve one request and `tokens` in the route's bucket and wait until they are due, when that is
        within the bound; None when the quota paces nothing. Raises QuotaExhausted (reserving nothing)
        when the wait would be longer."""
        if not quota.paced:
            return None
        bucket = f"{route.model_id}#{route.region}"
        for _ in range(MAX_CONFLICTS):
            now = self._clock()
            current = self._written.pop(bucket, None) or self._table.read(bucket)
            start = current or full_bucket(quota, now)
            if current is not None and self._unused_tokens.get(bucket):
                start = replace(start, tokens=start.tokens + self._unused_tokens[bucket])
            taken, wait = take(start, quota, tokens, now, self._max_wait_s)
            if taken is None:
                break
            if not self._table.replace(bucket, taken, expected=current):
                continue  # another writer got in between: reserve again on the bucket read afresh
            self._unused_tokens.pop(bucket, None)
            self._written[bucket] = replace(taken, version=(current.version if current else 0) + 1)
            if wait > 0:
                metrics.add_metric(name="PacingWaitSeconds", unit=MetricUnit.Seconds, value=wait)
                self._sleep(wait)
            return Permit(bucket, quota, tokens)
        metrics.add_metric(name="QuotaExhausted", unit=MetricUnit.Count, value=1)
        raise QuotaExhausted(f"the quota bucket {bucket} is reserved past the wait bound")

    def settle(self, permit: Permit | None, used_tokens: int) -> None:
        """Correct the reservation with the tokens the call used: the rest is given back with the next
        reservation's write; more than was reserved is charged now."""
        if permit is None or not permit.quota.tokens_per_minute:
            return
        unused = permit.tokens - used_tokens
        if unused > 0:
            self._unused_tokens[permit.bucket] = self._unused_tokens.get(permit.bucket, 0.0) + unused
        elif unused < 0:
            self._written.pop(permit.bucket, None)  # the ADD changes the bucket's version
            self._table.add_tokens(permit.bucket, unused)

    def throttled(self, permit: Permit | None) -> None:
        """Bedrock throttled a call this permit admitted: halve the bucket's rate (once per cooldown)."""
        if permit is None:
            return
        self._written.pop(permit.bucket, None)  # read afresh: the throttle is rare, the write changes it
        for _ in range(MAX_CONFLICTS):
            now = self._clock()
            current = self._table.read(permit.bucket)
            decreased = after_throttle(current or full_bucket(permit.quota, now), permit.quota, now)
            if decreased is None or self._table.replace(permit.bucket, decreased, expected=current):
                if decreased is not None:
                    logger.warning("Bedrock throttled a paced call: the bucket's rate is halved")
                return


def paced_answer(
    gateway: BedrockGateway,
    pacer: QuotaPacer,
    routing: RoutingConfig,
    route: Route,
    request: InferenceRequest,
) -> ModelAnswer:
    """Bedrock's answer to `request`, called only once the route's quota bucket admits it."""
    permit = pacer.acquire(route, pacer.quota_for(routing, route.model_id), estimate_tokens(request))
    try:
        answer = gateway.answer(route, request)
    except BedrockThrottled:
        metrics.add_metric(name="BedrockThrottles", unit=MetricUnit.Count, value=1)
        pacer.throttled(permit)
        raise
    try:
        pacer.settle(permit, answer.usage.total_tokens)
    except Exception as error:  # the answer is paid for: a failed correction must not lose it (the
        # bucket keeps the reservation, the estimate plus max_tokens, instead of the usage)
        logger.error("quota correction after the call failed", extra={"error_class": type(error).__name__})
        metrics.add_metric(name="PacingCorrectionsLost", unit=MetricUnit.Count, value=1)
    return answer
