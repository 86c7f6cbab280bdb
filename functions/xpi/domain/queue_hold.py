"""Holding the queue's backlog in SQS while the Bedrock quota is spent: whether the consumer starts a
batch's requests now or sends them back to the queue for later, and for how long. Pure arithmetic over
the model's shared pacing bucket (xpi.domain.pacing) as one read found it; nothing is reserved here (the
process step reserves when it calls).

The bucket alone cannot show the backlog: the pacer reserves at most its wait bound ahead, and a request
started but still on its way to the pacer (an Express run starting, a process step waiting for a runtime
or in its retry backoff) is in no bucket yet. So a batch starts only while the bucket is booked at most
`horizon_s` ahead (short: what is booked within it, and the bucket's own burst, is used before the
batch's first call gets there) and the work this consumer started itself is done by then too
(`busy_until`, its own estimate: the batch's time on the bucket from when it started it). Otherwise the
batch is held until then, plus a jitter over the batch's own time on the bucket: concurrent consumers read
the same bucket and would otherwise send their held batches back at the same moment. The jitter does not
widen with each hold: at the end of a backlog the last held messages would come back long after the
bucket ran dry (measured: holds of 40 to 60 s in the last minute with a spread widening to three times).

A message is held at most `max_holds` times; then it is started whatever the bucket says (the pacer still
keeps the quota: it ends `QuotaExhausted` if it never gets a turn, answered, never lost).
"""

import math
from collections.abc import Sequence

from xpi.domain.pacing import BucketState, Quota, full_bucket, take

MAX_DELAY_S = 900  # SQS DelaySeconds' limit


def due_in(
    state: BucketState | None, quota: Quota, demands: Sequence[int], now: float
) -> tuple[float, float]:
    """Seconds until the first and the last of `demands` (the tokens each request reserves) would be due
    if they reserved now, in order, behind what the bucket already holds."""
    bucket = state or full_bucket(quota, now)
    first = last = 0.0
    for index, tokens in enumerate(demands):
        taken, wait = take(bucket, quota, tokens, now)
        assert taken is not None  # no horizon: always taken
        bucket = taken
        first = wait if index == 0 else first
        last = wait
    return first, last


def batch_time(state: BucketState | None, quota: Quota, demands: Sequence[int], now: float) -> float:
    """The bucket's time for the batch itself: from its first request's turn to its last's (at least a
    second)."""
    first, last = due_in(state, quota, demands, now)
    return max(1.0, last - first)


def hold_delay(
    state: BucketState | None,
    quota: Quota,
    demands: Sequence[int],
    now: float,
    *,
    horizon_s: float,
    holds: int,
    max_holds: int,
    jitter: float,
    busy_until: float = 0.0,
) -> int:
    """Whole seconds to hold the batch's requests in SQS; 0: start them now. `holds`: the most times any
    of them was held already; `jitter`: a draw in [0, 1); `busy_until`: when the work this consumer
    started itself is done on the bucket, by its own estimate."""
    if not quota.paced or not demands or holds >= max_holds:
        return 0
    first, last = due_in(state, quota, demands, now)
    ahead = max(first, busy_until - now)
    if ahead <= horizon_s:
        return 0
    spread = max(1.0, last - first)
    return max(1, min(MAX_DELAY_S, math.ceil(ahead - horizon_s + jitter * spread)))
