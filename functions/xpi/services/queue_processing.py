"""The queue workflow's process step: one request of an SQS batch, from its body to the state the
record step makes final (xpi.services.recording), in one function: validate, the lineage claim,
classify, route and the Bedrock call, with the inference workflow's own step code (as the sync path
runs it, xpi.services.sync_invoke). The body is in memory (inline in the Express execution's input, or
read once from payloads/ for a large request); nothing of it is stored or logged.

The claim is the Bedrock call's idempotency record too. It is written once, before any work, and
carries this execution's token, so:
- a second execution of the same request (an SQS redelivery started one) meets a claim that is not its
  own and stops: that execution answers the request;
- a retry of this step meets its own claim still ACCEPTED: the earlier attempt died somewhere after
  claiming, perhaps after Bedrock answered, so a retry never calls Bedrock; the request ends FAILED
  with the possibly billed call counted (`BedrockAnswerLost`, `bedrock_calls_unanswered: 1`).
So what the Standard workflow retried between steps (a throttle, Bedrock or an AWS API out of reach, the
pacer's QuotaExhausted) is retried here, in process, while nothing has been sent: full jitter, bounded so
the whole run ends well inside the Express workflow's 5 minutes. An Express run killed at 5 minutes
leaves the claim ACCEPTED: the reaper ends it (RequestAbandoned, with its event). When Bedrock answered
so late in the run that the record step may not get to run, the claim counts that answer first
(`bedrock_calls_unanswered: 1`, one extra write on that slow path only): an abandoned request whose
answer was billed says so in lineage, and a record step that does run makes the item final without it.
"""

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from xpi.adapters.aws import is_transient
from xpi.adapters.ports import (
    BedrockGateway,
    BudgetLedger,
    EventPublisher,
    HashKey,
    LineageClaims,
    LineageStore,
    ObjectStore,
    PayloadStore,
    ResponseCache,
)
from xpi.domain.access import Charge
from xpi.domain.errors import (
    AwsUnavailable,
    BedrockAnswerLost,
    BedrockThrottled,
    BedrockUnavailable,
    CredentialsUnavailable,
    InvocationInProgress,
    QuotaExhausted,
    ValidationUnavailable,
)
from xpi.domain.regions import belongs_here, minted_region
from xpi.models.bedrock import ModelAnswer
from xpi.models.lineage import ACCEPTED
from xpi.models.queue import NotOwned, QueueTask
from xpi.models.request import InferenceRequest
from xpi.models.workflow import ExecutionInput, Route, StepError, WorkflowState
from xpi.observability import logger, metrics
from xpi.services.classification import classify
from xpi.services.fallback import Breaker
from xpi.services.invocation import invoke_model
from xpi.services.pacing import QuotaPacer
from xpi.services.routing import route
from xpi.services.submission import reject
from xpi.services.sync_invoke import Judgement, RequestBody, step_error
from xpi.services.validation import validate


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class QueuePorts:
    claims: LineageClaims
    lineage: LineageStore  # a request the step cannot claim is answered once (failure lineage)
    payloads: PayloadStore  # a large request's stored body
    events: EventPublisher
    hash_key: HashKey
    gateway: BedrockGateway
    objects: ObjectStore  # outputs over inline_max_bytes
    retention_days: int
    inline_max_bytes: int
    region: str
    endpoint: str
    credential_max_age_s: int | None = None
    pacer: QuotaPacer | None = None
    budgets: BudgetLedger | None = None  # the day's budgets per caller and project, where configured
    cache: ResponseCache | None = None  # the exact-match response cache, where configured
    # GovCloud-native models: the stack's own region and its Bedrock endpoint (called with the role).
    govcloud_region: str = ""
    govcloud_endpoint: str = ""
    breaker: Breaker | None = None  # the shared circuit breaker of routes with fallbacks


@dataclass(frozen=True)
class RetryBudget:
    """In-process retries of what surely sent nothing. `time_left` says how long the function may still
    run; another attempt starts only while it exceeds `reserve_s` (one Bedrock call and the way out)."""

    time_left: Callable[[], float]
    reserve_s: float
    attempts: int = 8
    base_s: float = 1.0
    max_delay_s: float = 30.0
    clock: Callable[[], datetime] = _now
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[float, float], float] = random.uniform


def nothing_sent(error: Exception) -> bool:
    """An error after which trying again cannot be a second paid Bedrock call: Bedrock throttled, was
    out of reach before the request was sent, the credentials could not be read, xpi's pacer held the
    call back, or an AWS API the step needs failed for a passing reason."""
    if isinstance(error, BedrockAnswerLost | InvocationInProgress):
        return False
    if isinstance(error, BedrockThrottled | BedrockUnavailable | QuotaExhausted | CredentialsUnavailable):
        return True
    return isinstance(error, AwsUnavailable) or is_transient(error)


class _AnswerSeen:
    """The gateway, noting when Bedrock has answered: after that, no error of the step (the pacer's
    correction, storing a large output) is retried, for a retry would be a second paid call."""

    def __init__(self, gateway: BedrockGateway) -> None:
        self._gateway = gateway
        self.answered = False

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        answer = self._gateway.answer(route, request)
        self.answered = True
        return answer


def _retrying[T](
    step: Callable[[], T], budget: RetryBudget, answered: Callable[[], bool] = lambda: False
) -> T:
    for attempt in range(1, budget.attempts + 1):
        try:
            return step()
        except Exception as error:
            delay = budget.jitter(0, min(budget.max_delay_s, budget.base_s * 2 ** (attempt - 1)))
            if (
                answered()
                or not nothing_sent(error)
                or attempt == budget.attempts
                or budget.time_left() - delay < budget.reserve_s
            ):
                raise
            logger.warning("step retried in process", extra={"error_class": type(error).__name__})
            budget.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _belongs_here(request_id: str, ports: QueuePorts) -> bool:
    """A request id minted for the other region is that region's (xpi.domain.regions): never claimed
    here, nothing written or emitted, so its own region answers it, also when it returns from an outage."""
    if not ports.govcloud_region or belongs_here(request_id, ports.govcloud_region):
        return True
    logger.warning(
        "request id minted for another region; left to it",
        extra={"minted_region": minted_region(request_id), "region": ports.govcloud_region},
    )
    metrics.add_metric(name="RequestsForOtherRegion", unit=MetricUnit.Count, value=1)
    return False


class _Charged:
    """The budgets of a request an earlier attempt of this step may have charged already: nothing is
    reserved, settled or alerted again (its charge stands as that attempt left it)."""

    def reserve(self, charges: Sequence[Charge]) -> bool:
        return True

    def settle(self, charges: Sequence[Charge]) -> None:
        return None

    def used(self, items: Sequence[str]) -> dict[str, tuple[int, float]]:
        return {}

    def mark_alerted(self, item: str, threshold: int, at: str) -> bool:
        return False


class _Quiet:
    """The events of steps an earlier attempt of this step ran already: not sent again."""

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        return None


def process(
    task: QueueTask,
    *,
    ports: QueuePorts,
    judge: Callable[[], Judgement],
    budget: RetryBudget,
    replayed: bool = False,
) -> WorkflowState | NotOwned:
    """The state for the record step (with its response, or the error that ends it); NotOwned when
    another execution holds the request, or when this step could not claim it and answered it itself
    (`ValidationUnavailable`: failure lineage and its one event). Only an error of that answer is
    raised (the workflow retries the step).

    `replayed`: the gateway's answer is one already paid for and kept (a batch inference job's), so a
    retry meeting this item's own claim (ACCEPTED: an earlier attempt died after claiming; final: it died
    after making lineage final) runs the steps again with that answer instead of failing the request:
    its budgets are not reserved again and the steps' own events are not sent again; the record step
    then finds lineage made final by this execution, or makes it final (xpi.services.recording)."""
    now = budget.clock()
    item = task.item
    try:
        body, state = _retrying(lambda: _validated(task, ports, now), budget)
        logger.append_keys(request_id=state.request.request_id)
        if not _belongs_here(state.request.request_id, ports):
            return NotOwned(request_id=state.request.request_id)
        found = _retrying(lambda: ports.claims.claim(state.claim), budget)
    except Exception as error:
        # Never judged nor claimed (an AWS API out of reach past the retries, a grant missing): answered
        # once here, as the Standard workflow's RecordRejection answers a Validate that failed.
        logger.error("request not claimed; answered as ValidationUnavailable", extra=_error_class(error))
        request = item.request or {}
        request_id = str(request.get("request_id") or item.source.reference or task.token())
        reject(
            request_id,
            raw=request,
            source=item.source,
            error=ValidationUnavailable("the process step could not claim the request"),
            lineage=ports.lineage,
            events=ports.events,
            now=now,
            retention_days=ports.retention_days,
        )
        return NotOwned(request_id=request_id)
    if found is not None:
        if replayed and found.claimed_by == task.token():
            logger.warning("an earlier attempt of this step claimed the request; its kept answer replayed")
            state.claim = state.claim.model_copy(update={"created_at": found.created_at})
            again = replace(ports, budgets=_Charged() if ports.budgets is not None else None, events=_Quiet())
            return _steps(state, body, again, judge, budget, gateway=_AnswerSeen(again.gateway))
        if found.claimed_by != task.token() or found.status != ACCEPTED:
            logger.info("request held by another execution; it answers")
            return NotOwned(request_id=state.request.request_id)
        # An earlier attempt of this step claimed it and died: a Bedrock call may have been made.
        logger.warning("an earlier attempt of this step claimed the request; not calling Bedrock again")
        state.claim = state.claim.model_copy(update={"created_at": found.created_at})
        lost = BedrockAnswerLost("an earlier attempt of the process step ended after claiming")
        state.error = StepError(
            Error=type(lost).__name__,
            Cause=json.dumps({"errorMessage": str(lost), "errorType": type(lost).__name__}),
        )
        return state
    gateway = _AnswerSeen(ports.gateway)
    state = _steps(state, body, ports, judge, budget, gateway=gateway)
    # (a replayed answer is kept where it came from, the batch job's output: nothing to count)
    if not replayed and gateway.answered and _run_ends_within(task, budget.clock(), RECORD_RESERVE):
        _count_answer(state, ports, task)
    return state


# The queue workflow's Express run ends here, whatever its state (its ASL's TimeoutSeconds)...
EXPRESS_RUN = timedelta(seconds=300)
# ...and the record and emit steps after this one need about this long (the record step's own timeout
# twice, and the emit's): an answer that comes later may never be recorded by its run.
RECORD_RESERVE = timedelta(seconds=60)


def _run_ends_within(task: QueueTask, now: datetime, reserve: timedelta) -> bool:
    started = datetime.fromisoformat(task.started_at)
    return started + EXPRESS_RUN - now < reserve


def _count_answer(state: WorkflowState, ports: QueuePorts, task: QueueTask) -> None:
    """Bedrock answered (billed) so late in the run that the record step may never run: the claim counts
    the answer (one UpdateItem, only on this slow path), so the reaper that ends the request
    (`RequestAbandoned`) keeps the count, and the record step's final write removes it if it does run.
    A failure here does not fail the step: the answer still goes on to the record step."""
    try:
        counted = ports.claims.count_answer(state.request.request_id, task.token())
    except Exception as error:
        logger.warning("a late answer could not be counted on the claim", extra=_error_class(error))
        return
    logger.warning("Bedrock answered late in the run; counted on the claim", extra={"counted": counted})
    metrics.add_metric(name="LateAnswersCounted", unit=MetricUnit.Count, value=1)


def _error_class(error: Exception) -> dict[str, str]:
    return {"error_class": type(error).__name__}


def _validated(task: QueueTask, ports: QueuePorts, now: datetime) -> tuple[RequestBody, WorkflowState]:
    """The request in memory (inline, or read once from its stored body) and its validated state,
    with the claim carrying this item's token."""
    body = RequestBody()
    item = task.item
    if item.request is not None:
        raw = json.dumps(item.request, ensure_ascii=False).encode("utf-8")
    else:
        assert item.payload is not None
        raw = ports.payloads.get(item.payload)
    execution = ExecutionInput(
        payload=body.put("request.json", raw),
        source=item.source,
        execution=task.execution,
        started_at=task.started_at,
    )
    state = validate(
        execution, payloads=body, hash_key=ports.hash_key, now=now, retention_days=ports.retention_days
    )
    state.claim = state.claim.model_copy(update={"claimed_by": task.token()})
    return body, state


def _steps(
    state: WorkflowState,
    body: RequestBody,
    ports: QueuePorts,
    judge: Callable[[], Judgement],
    budget: RetryBudget,
    *,
    gateway: "_AnswerSeen",
) -> WorkflowState:
    """Classify, route and invoke, as the workflow's states do; an error ends the steps with it in the
    state (the workflow's Catch to RecordOutcome). `gateway` notes whether Bedrock answered."""
    try:
        judgement = _retrying(judge, budget)
        state = _retrying(
            lambda: classify(
                state,
                policy=judgement.policy,
                detectors=judgement.detectors,
                routing=judgement.routing,
                events=ports.events,
                payloads=body,
                hash_key=ports.hash_key,
                clock=budget.clock,
                versions=judgement.versions,
            ),
            budget,
        )
        if state.classification is not None and state.classification.decision == "block":
            return state
        state.route = route(
            state,
            region=ports.region,
            endpoint=ports.endpoint,
            budgets=ports.budgets,
            govcloud_region=ports.govcloud_region,
            govcloud_endpoint=ports.govcloud_endpoint,
        )
        state.timings["routed_at"] = budget.clock()
        state.response = _retrying(
            lambda: invoke_model(
                state,
                gateway,
                ports.objects,
                ports.inline_max_bytes,
                payloads=body,
                hash_key=ports.hash_key,
                credential_max_age_s=ports.credential_max_age_s,
                events=ports.events,
                pacer=ports.pacer,
                cache=ports.cache,
                budgets=ports.budgets,
                breaker=ports.breaker,
            ),
            budget,
            answered=lambda: gateway.answered,
        )
        state.timings["invoked_at"] = budget.clock()
    except Exception as error:  # every step's error ends the request, recorded (the workflow's Catch)
        state.error = step_error(error)
    return state


# The request validated in memory, as the batch workflow's job path reads its lines
# (xpi.services.batch_job_path).
validated = _validated
