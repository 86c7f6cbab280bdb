"""The consumer's hold: before it starts a batch's accepted requests, one read of each model's pacing
bucket (no write: the process step reserves when it calls) decides whether they start now or go back to
the queue, delayed until the bucket could serve them (xpi.domain.queue_hold). A backlog above the quota
so waits in SQS, where waiting costs nothing and no timer runs, instead of in Express runs whose process
steps would wait for a runtime and time out.

A held message is sent again (a new message, by the consumer's role, with its hold mark) and the
original reported processed: its receive count never grows with holds, so only real failures count
towards the queue's maxReceiveCount and the DLQ. The copy keeps the original's sender, message id and
sent time, so it runs as the same request from the same producer; should the original also come back (the
consumer died after sending the copy), the lineage claim lets one of them run, as for any duplicate.

Whatever fails here (the routing, the bucket read, the send) starts the batch as before: the hold only
ever moves waiting out of the process step, it is never a reason not to answer.
"""

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import PacingTable, QueueHolder
from xpi.domain.pacing import Quota, estimate_tokens
from xpi.domain.queue_hold import batch_time, hold_delay
from xpi.domain.routing import RoutingConfig
from xpi.models.hold import HeldMessage, HoldMark
from xpi.models.request import InferenceRequest
from xpi.observability import logger, metrics


@dataclass(frozen=True)
class Pending:
    """An accepted message about to start: its body as received, its request, and its mark so far."""

    message_id: str
    body: str
    request: InferenceRequest
    mark: HoldMark


@dataclass
class QueueHold:
    table: PacingTable
    holder: QueueHolder
    routing: Callable[[], RoutingConfig]
    quota_for: Callable[[RoutingConfig, str], Quota]
    region: str
    horizon_s: float
    max_holds: int
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random
    # Per bucket: when the work this consumer (this warm runtime) started is done on it, by its estimate.
    busy_until: dict[str, float] = field(default_factory=dict)

    def held(self, pending: Sequence[Pending]) -> set[str]:
        """The message ids sent back to the queue for later; the others are to start now."""
        if not pending:
            return set()
        try:
            return self._hold(pending)
        except Exception as error:  # never a reason not to start: the pacer still keeps the quota
            logger.warning(
                "queue hold not decided; the batch starts", extra={"error_class": type(error).__name__}
            )
            return set()

    def _hold(self, pending: Sequence[Pending]) -> set[str]:
        routing = self.routing()
        by_model: dict[str, list[Pending]] = defaultdict(list)
        for item in pending:
            by_model[routing.resolve_alias(item.request.model)].append(item)
        held: set[str] = set()
        for model_id, items in by_model.items():
            quota = self.quota_for(routing, model_id)
            if not quota.paced:
                continue
            bucket = f"{model_id}#{self.region}"  # as QuotaPacer names it
            state = self.table.read(bucket)
            demands = [estimate_tokens(item.request) for item in items]
            now = self.clock()
            delay = hold_delay(
                state,
                quota,
                demands,
                now,
                horizon_s=self.horizon_s,
                holds=max(item.mark.holds for item in items),
                max_holds=self.max_holds,
                jitter=self.jitter(),
                busy_until=self.busy_until.get(bucket, 0.0),
            )
            if not delay:
                started_from = max(now, self.busy_until.get(bucket, 0.0))
                self.busy_until[bucket] = started_from + batch_time(state, quota, demands, now)
                continue
            copies = [
                HeldMessage(
                    message_id=item.message_id,
                    body=item.body,
                    mark=item.mark.model_copy(update={"holds": item.mark.holds + 1}),
                )
                for item in items
            ]
            not_sent = set(self.holder.hold(copies, delay))
            sent = {item.message_id for item in items} - not_sent
            held |= sent
            metrics.add_metric(name="RequestsHeld", unit=MetricUnit.Count, value=len(sent))
            logger.info(
                "requests held in the queue for the quota", extra={"messages": len(sent), "delay_s": delay}
            )
        return held
