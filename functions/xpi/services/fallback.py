"""One answer for one request, from the first hop of its route that can give it.

The route step puts the hops in order (xpi.services.routing). A hop that surely did not answer, and so
was not billed, moves the request on to the next one: Bedrock throttled it (or xpi's own pacer held it),
Bedrock or the way to it was out before anything was sent, or the model is not enabled for the account
(AccessDenied, ResourceNotFound), or the commercial credentials could not be read or were refused.
Anything else ends the request as it always did; above all a lost
answer (BedrockAnswerLost: the call was sent and may have been billed) is never followed by another
call, so a request is never answered, and paid for, twice. Each hop tried is recorded (lineage
`route_hops`).

Routes with fallbacks consult the shared circuit breaker (xpi.domain.circuit): a hop whose circuit is
open is passed over while another hop is left; when every hop's circuit is open the hops are tried as if
none were (a request is never refused by the breaker alone).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import CircuitTable
from xpi.domain.circuit import BreakerSettings, CircuitState, circuit_key, is_open
from xpi.domain.errors import (
    BedrockAnswerLost,
    BedrockRejected,
    BedrockThrottled,
    BedrockUnavailable,
    CredentialsRejected,
    CredentialsUnavailable,
    InvocationInProgress,
    QuotaExhausted,
    XpiError,
)
from xpi.models.bedrock import ModelAnswer
from xpi.models.workflow import HopRecord, Route, RouteHop
from xpi.observability import logger, metrics

ANSWERED = "answered"
CIRCUIT_OPEN = "circuit_open"
# Bedrock's codes for a model the account may not call (not enabled, not offered where it was called).
MODEL_NOT_ENABLED = frozenset({"AccessDeniedException", "ResourceNotFoundException"})


def moves_on(error: XpiError) -> bool:
    """Whether the hop surely did not answer (nothing billed), so the next hop may be tried. The
    commercial credentials unreadable or refused count too: a GovCloud-native hop needs none."""
    if isinstance(error, BedrockAnswerLost | InvocationInProgress):
        return False
    if isinstance(error, BedrockThrottled | QuotaExhausted | BedrockUnavailable):
        return True
    if isinstance(error, CredentialsUnavailable | CredentialsRejected):
        return True
    return isinstance(error, BedrockRejected) and error.bedrock_code in MODEL_NOT_ENABLED


def counts_against_the_model(error: XpiError) -> bool:
    """xpi's own pacer holding a call, or the commercial credentials failing, says nothing about the
    model: neither counts for its circuit."""
    return not isinstance(error, QuotaExhausted | CredentialsUnavailable | CredentialsRejected)


DEFAULT_SETTINGS = BreakerSettings()


@dataclass(frozen=True)
class Answered:
    answer: ModelAnswer
    hop: RouteHop
    hops: list[HopRecord]


class Breaker:
    def __init__(
        self,
        table: CircuitTable,
        settings: BreakerSettings = DEFAULT_SETTINGS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table, self._settings, self._clock = table, settings, clock

    def state(self, hop: RouteHop) -> CircuitState | None:
        return self._table.read(circuit_key(hop.model_id, hop.region))

    def is_open(self, state: CircuitState | None) -> bool:
        return is_open(state, self._clock(), self._settings)

    def failed(self, hop: RouteHop) -> None:
        self._table.failed(circuit_key(hop.model_id, hop.region), self._clock(), self._settings)

    def closed(self, hop: RouteHop) -> None:
        self._table.closed(circuit_key(hop.model_id, hop.region))


def hops_of(route: Route) -> list[RouteHop]:
    first = RouteHop(
        model_id=route.model_id,
        region=route.region,
        endpoint=route.endpoint,
        partition=route.partition or "commercial",
    )
    return [first, *(route.fallbacks or [])]


def as_route(route: Route, hop: RouteHop) -> Route:
    """The route as one hop: what the gateway and the pacer are called with."""
    return route.model_copy(
        update={
            "model_id": hop.model_id,
            "region": hop.region,
            "endpoint": hop.endpoint,
            "partition": "govcloud" if hop.partition == "govcloud" else None,
            "fallbacks": None,
        }
    )


def _record(hop: RouteHop, outcome: str) -> HopRecord:
    return HopRecord(model_id=hop.model_id, region=hop.region, partition=hop.partition, outcome=outcome)


def _quietly(breaker: Breaker | None, action: Callable[[RouteHop], None] | None, hop: RouteHop) -> None:
    """The breaker is advice: a DynamoDB fault while keeping it never fails the request."""
    if breaker is None or action is None:
        return
    try:
        action(hop)
    except Exception as error:
        logger.warning("circuit breaker not updated", extra={"error_class": type(error).__name__})


def answer_by_route(
    route: Route, call: Callable[[Route], ModelAnswer], breaker: Breaker | None = None
) -> Answered:
    """The answer of the first hop that gives one; the last hop's error when none does."""
    hops = hops_of(route)
    records: list[HopRecord] = []
    states: dict[int, CircuitState | None] = {}
    if len(hops) == 1 or breaker is None:
        usable = list(enumerate(hops))
    else:
        try:
            states = {i: breaker.state(hop) for i, hop in enumerate(hops)}
        except Exception as error:
            logger.warning("circuit breaker not read", extra={"error_class": type(error).__name__})
        open_hops = {i for i, state in states.items() if breaker.is_open(state)}
        if len(open_hops) == len(hops):
            open_hops = set()  # never refused by the breaker alone
        records += [_record(hops[i], CIRCUIT_OPEN) for i in sorted(open_hops)]
        usable = [(i, hop) for i, hop in enumerate(hops) if i not in open_hops]
    guarded = breaker is not None and len(hops) > 1
    failing = {i for i, state in states.items() if state is not None and state.failures > 0}
    for index, (number, hop) in enumerate(usable):
        try:
            answer = call(as_route(route, hop))
        except XpiError as error:
            last = index == len(usable) - 1
            if guarded and moves_on(error) and counts_against_the_model(error):
                _quietly(breaker, breaker.failed if breaker else None, hop)
            if last or not moves_on(error):
                raise
            records.append(_record(hop, error.bedrock_code or error.code))
            metrics.add_metric(name="RouteFallbacks", unit=MetricUnit.Count, value=1)
            continue
        if guarded and number in failing:  # a circuit with no failures is left alone: no write per answer
            _quietly(breaker, breaker.closed if breaker else None, hop)
        records.append(_record(hop, ANSWERED))
        return Answered(answer, hop, records)
    raise AssertionError("a route has at least one hop")  # pragma: no cover
