"""POST /v1/invoke in one function: the inference workflow's steps run in process, one after another,
with the workflow's own step code (validate, classify, route, invoke_model) and the same domain code
for the outcome (xpi.domain.outcome), so a request is judged, recorded and answered exactly as on the
queue path, without a Step Functions execution or a poll.

What it writes, per request that is not answered before:
- up front, the lineage claim: the item the workflow's Claim state writes (one conditional PutItem).
  A second call with the same request id meets it and never reaches Bedrock: it gets the kept answer,
  or waits for the call that holds the claim (concurrent duplicates), or RequestExists when the request
  went another way (the queue, a batch);
- on the way out, one DynamoDB write (a transaction: lineage made final, the answer kept for a repeated
  call) and one PutEvents (the result event; classify's Security Alert, when the policy raises one, as
  on the queue path).
A body that is not a request ends as on the queue path (parse_or_reject: failure lineage and
`Inference Failed`, RequestInvalid). A runtime that dies after the claim leaves it ACCEPTED: the reaper
ends it (RequestAbandoned, with its event), as for a workflow that died.
"""

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from xpi.adapters.ports import (
    BedrockGateway,
    BudgetLedger,
    EventPublisher,
    HashKey,
    LineageStore,
    ObjectStore,
    ResponseCache,
    SyncLedger,
)
from xpi.domain.access import Charge
from xpi.domain.classification import Detector
from xpi.domain.config_signing import ConfigVersion
from xpi.domain.errors import (
    BedrockThrottled,
    BedrockUnavailable,
    InternalError,
    InvocationTimeout,
    RequestExists,
    XpiError,
)
from xpi.domain.outcome import detail_type, lineage_item, result_detail
from xpi.domain.policy import Policy
from xpi.domain.regions import refuse_other_regions
from xpi.domain.routing import RoutingConfig
from xpi.models.answer import StoredAnswer
from xpi.models.events import ResultDetail
from xpi.models.lineage import ACCEPTED, LineageItem
from xpi.models.workflow import ExecutionInput, PayloadRef, Source, StepError, WorkflowState
from xpi.observability import logger
from xpi.services.budget_alerts import alert_budgets
from xpi.services.classification import classify
from xpi.services.fallback import Breaker
from xpi.services.invocation import invoke_model
from xpi.services.pacing import QuotaPacer
from xpi.services.routing import carried_routing, route, settlement
from xpi.services.submission import parse_or_reject
from xpi.services.validation import validate

# The kept answer lives as long as the invoke step's Powertools records (the idempotency table's TTL).
ANSWER_TTL = timedelta(hours=24)
# Bedrock errors that surely cost nothing (throttled, or never sent), retried within the call's time.
RETRIED = (BedrockThrottled, BedrockUnavailable)
BEDROCK_ATTEMPTS = 3
RETRY_BASE_S = 0.2
PUBLISH_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


class RequestBody:
    """The one request's body, in memory: the PayloadStore the workflow's steps read the request (and
    the classify step's redacted copy) from. Nothing is stored: the body never leaves the function."""

    BUCKET = "in-process"

    def __init__(self) -> None:
        self._bodies: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, hmac: str | None = None) -> PayloadRef:
        full_key = f"payloads/{key}"
        self._bodies[full_key] = body
        return PayloadRef(bucket=self.BUCKET, key=full_key, bytes=len(body), hmac=hmac)

    def get(self, ref: PayloadRef) -> bytes:
        return self._bodies[ref.key]


@dataclass(frozen=True)
class SyncPorts:
    """Where the sync path reads and writes."""

    ledger: SyncLedger
    lineage: LineageStore  # a rejection's failure lineage (parse_or_reject)
    events: EventPublisher
    hash_key: HashKey
    gateway: BedrockGateway
    objects: ObjectStore  # outputs over inline_max_bytes, as on the queue path
    retention_days: int
    inline_max_bytes: int
    region: str
    endpoint: str
    credential_max_age_s: int | None = None  # past it: a metric and one Security Alert per version
    pacer: QuotaPacer | None = None  # the shared quota buckets the invoke step also draws from
    budgets: BudgetLedger | None = None  # the day's usage per caller and project, as the route step's
    cache: ResponseCache | None = None  # the exact-match response cache, where configured
    # GovCloud-native models: the stack's own region and its Bedrock endpoint (called with the role).
    govcloud_region: str = ""
    govcloud_endpoint: str = ""
    breaker: Breaker | None = None  # the shared circuit breaker of routes with fallbacks


@dataclass(frozen=True)
class Judgement:
    """The policy and routing in force (read once per request, as the classify step does)."""

    policy: Policy
    routing: RoutingConfig
    detectors: Sequence[Detector]
    versions: tuple[ConfigVersion, ConfigVersion] | None = None


@dataclass(frozen=True)
class Timing:
    wait_s: float  # how long a duplicate waits for the call holding its claim
    clock: Callable[[], datetime] = _now
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[float, float], float] = random.uniform


def step_error(error: Exception) -> StepError:
    """What a Catch would record for this error raised by a Lambda task: its class name and Lambda's
    cause ({"errorMessage", "errorType"}); anything not xpi's is an InternalError, without its text
    (xpi.handlers.contain_errors)."""
    if not isinstance(error, XpiError):
        logger.error(
            "sync step failed", extra={"error_code": InternalError.code, "error_class": type(error).__name__}
        )
        error = InternalError(type(error).__name__)
    name = type(error).__name__
    return StepError(Error=name, Cause=json.dumps({"errorMessage": str(error), "errorType": name}))


def invoke(
    body: str,
    *,
    principal: str,
    api_request_id: str,
    ports: SyncPorts,
    judge: Callable[[], Judgement],
    timing: Timing,
) -> dict[str, Any]:
    """The result event's detail of the request in `body`, answered in this call or kept from the first."""
    now = timing.clock()
    source = Source(kind="api", principal=principal, reference=api_request_id, received_at=now)
    request = parse_or_reject(
        body,
        source=source,
        fallback_id=api_request_id,
        lineage=ports.lineage,
        events=ports.events,
        now=now,
        retention_days=ports.retention_days,
    )
    logger.append_keys(request_id=request.request_id)
    refuse_other_regions(request.request_id, ports.govcloud_region)  # nothing written or claimed
    payloads = RequestBody()
    stored = json.dumps(request.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
    execution = ExecutionInput(
        payload=payloads.put(f"{request.request_id}/request.json", stored.encode("utf-8")),
        source=source,
        execution=f"sync-{api_request_id}",
        started_at=now.isoformat(timespec="milliseconds"),
    )
    state = validate(
        execution, payloads=payloads, hash_key=ports.hash_key, now=now, retention_days=ports.retention_days
    )
    found = ports.ledger.claim(state.claim)
    if found is not None:
        return _answer_of_duplicate(found, ports.ledger, timing)
    state = _run_steps(state, payloads, ports, judge, timing)
    return _finish(state, ports, timing)


def _run_steps(
    state: WorkflowState,
    payloads: RequestBody,
    ports: SyncPorts,
    judge: Callable[[], Judgement],
    timing: Timing,
) -> WorkflowState:
    """Classify, route and invoke, as the workflow's states do; an error ends the steps with it in the
    state (the workflow's Catch to RecordOutcome)."""
    try:
        judgement = judge()
        state = classify(
            state,
            policy=judgement.policy,
            detectors=judgement.detectors,
            routing=judgement.routing,
            events=ports.events,
            payloads=payloads,
            hash_key=ports.hash_key,
            clock=timing.clock,
            versions=judgement.versions,
        )
        if state.classification is not None and state.classification.decision == "block":
            return state
        state.route = route(
            state,
            region=ports.region,
            endpoint=ports.endpoint,
            budgets=ports.budgets,
            clock=timing.clock,
            govcloud_region=ports.govcloud_region,
            govcloud_endpoint=ports.govcloud_endpoint,
        )
        state.timings["routed_at"] = timing.clock()
        state.response = _invoke_with_retries(state, payloads, ports, timing)
        state.timings["invoked_at"] = timing.clock()
    except Exception as error:  # every step's error ends the request, recorded (the workflow's Catch)
        state.error = step_error(error)
    return state


def _invoke_with_retries(
    state: WorkflowState, payloads: RequestBody, ports: SyncPorts, timing: Timing
) -> Any:
    """The invoke step; a throttled call, or one never sent, is tried again (full jitter), at most
    BEDROCK_ATTEMPTS times in all. A sent call whose answer was lost (BedrockAnswerLost) is not."""
    for attempt in range(1, BEDROCK_ATTEMPTS + 1):
        try:
            return invoke_model(
                state,
                ports.gateway,
                ports.objects,
                ports.inline_max_bytes,
                payloads=payloads,
                hash_key=ports.hash_key,
                credential_max_age_s=ports.credential_max_age_s,
                events=ports.events,
                pacer=ports.pacer,
                cache=ports.cache,
                breaker=ports.breaker,
            )
        except RETRIED as error:
            if type(error) not in RETRIED or attempt == BEDROCK_ATTEMPTS:
                raise
            timing.sleep(timing.jitter(0, RETRY_BASE_S * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _finish(state: WorkflowState, ports: SyncPorts, timing: Timing) -> dict[str, Any]:
    """Lineage made final and the answer kept (one transaction), then the one result event."""
    completed_at = timing.clock()
    detail = result_detail(state, completed_at=completed_at)
    answer = StoredAnswer(
        detail_type=detail_type(detail), detail=detail.model_dump(mode="json", exclude_none=True)
    )
    expires = int((completed_at + ANSWER_TTL).timestamp())
    if not ports.ledger.finish(lineage_item(state, detail), answer, expires, _settlement(state)):
        # Someone else made the claim final meanwhile (the reaper, an operator): theirs is the one event.
        logger.warning("lineage made final by another writer; not emitting a second result")
        raise RequestExists("a request with this request_id exists already", state.request.request_id)
    _publish(answer.detail_type, detail, ports.events, timing)
    if state.route is not None and state.route.budget and state.response is not None:
        # settled with the final lineage (one transaction): the day's budgets checked for their alerts
        at = completed_at.isoformat(timespec="milliseconds")
        alert_budgets(state, carried_routing(state), ports.budgets, ports.events, at=at)
    return answer.detail


def _settlement(state: WorkflowState) -> list[Charge]:
    """The route's budget reservations corrected with what the call used, written with the final lineage
    (the invoke step settles on the queue path; here invoke_model gets no budgets, so a budget costs the
    sync path one DynamoDB call, the reservation). None without an answer: the reservation stands."""
    if state.route is None or not state.route.budget or state.response is None:
        return []
    usage = state.response.usage
    return settlement(state.route.budget, usage.total_tokens, state.response.estimated_cost_usd)


def _publish(kind: str, detail: ResultDetail, events: EventPublisher, timing: Timing) -> None:
    """The result event, tried again on a passing EventBridge fault (the workflow's EmitResult retries)."""
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            events.publish(kind, detail)
            return
        except Exception:
            if attempt == PUBLISH_ATTEMPTS:
                # Lineage is final and the caller gets the answer; the event alone is lost. Logged for
                # the operator (no content: the request id is the logger's key).
                logger.exception("result event not published")
                return
            timing.sleep(timing.jitter(0, RETRY_BASE_S * 2**attempt))


def _answer_of_duplicate(found: LineageItem, ledger: SyncLedger, timing: Timing) -> dict[str, Any]:
    """A request id met at the claim: the kept answer (waiting, up to wait_s, for a call still holding
    the claim); RequestExists when it went another way, InvocationTimeout when the wait runs out."""
    request_id = found.request_id
    item: LineageItem | None = found
    waited, poll_s = 0.0, 0.05
    while item is not None and item.status == ACCEPTED:
        if waited + poll_s > timing.wait_s:
            raise InvocationTimeout("the first call with this request id is still running", request_id)
        timing.sleep(poll_s)
        waited += poll_s
        poll_s = min(poll_s * 2, 0.5)
        item = ledger.lineage(request_id)
    answer = ledger.answer(request_id)
    if answer is None:
        raise RequestExists("a request with this request_id exists already", request_id)
    logger.info("answered from the kept answer of an earlier call")
    return answer.detail
