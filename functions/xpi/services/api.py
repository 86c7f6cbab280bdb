"""The API's use cases: submit (POST /v1/invoke is xpi.services.sync_invoke), read one request, the
caller's models, batches, the dashboard's feed and aggregates, and the admin actions. Written against
the ports; they raise the domain's errors, which the handlers map to HTTP (xpi.handlers.http)."""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from xpi.adapters.ports import (
    AdminActions,
    BatchStatusReader,
    BudgetLedger,
    EventPublisher,
    ExecutionReader,
    LineageStore,
)
from xpi.domain.access import Refusal, Refused, remaining, usage_item_key
from xpi.domain.errors import (
    AdminCallRefused,
    BatchNotFound,
    PolicyInvalid,
    Problem,
    RequestExists,
    RequestInvalid,
    RequestNotFound,
    field_problems,
    safe_message,
)
from xpi.domain.intake import schema_field_names
from xpi.domain.ownership import is_auditor, owner_of, same_owner
from xpi.domain.policy import Policy
from xpi.domain.routing import RoutingConfig, grant_for
from xpi.models.api import (
    Accepted,
    AdminResult,
    BatchStatus,
    BudgetLeft,
    CallerModels,
    ClassificationInfo,
    ClearanceEntry,
    CredentialInfo,
    DashboardFilters,
    ErrorInfo,
    ModelInfo,
    ModelStats,
    RequestList,
    RequestStatus,
    ResultInfo,
    Stats,
    StatsBucket,
    Step,
    UsageInfo,
)
from xpi.models.events import SECURITY_ALERT, ConfigAlert, SecurityAlertDetail
from xpi.models.lineage import LineageItem
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Source
from xpi.observability import logger, metrics
from xpi.services.submission import Submitted, Submitter, submit

TERMINAL_LINEAGE = {"COMPLETED", "FAILED", "BLOCKED"}
THROTTLE_CODES = {"BedrockThrottled", "QuotaExhausted", "Lambda.TooManyRequestsException"}
FEED_READ_FACTOR, FEED_READ_MIN = 5, 200  # the feed filters after the index read, so it reads generously
STATS_MAX_ITEMS = 10_000
INDEX_MAX_DAYS = 8  # the by-day index is read a day at a time, at most this many days back


def start(
    body: str, *, principal: str, api_request_id: str, now: datetime, submitter: Submitter
) -> InferenceRequest:
    """Validate and start the inference workflow (execution name = request id), recording the caller's
    IAM principal as the request's source. An invalid request is answered once (failure lineage and
    event, as for the queue) and its RequestInvalid raised; a request id started before raises
    RequestExists."""
    source = Source(kind="api", principal=principal, reference=api_request_id, received_at=now)
    outcome, request = submit(
        body,
        source=source,
        fallback_id=api_request_id,
        starter=submitter.starter,
        lineage=submitter.lineage,
        events=submitter.events,
        now=now,
        retention_days=submitter.retention_days,
        region=submitter.region,
    )
    if outcome is Submitted.DUPLICATE:
        raise RequestExists("a request with this request_id exists already", request.request_id)
    logger.append_keys(request_id=request.request_id)
    return request


def submit_request(
    body: str, *, principal: str, api_request_id: str, now: datetime, submitter: Submitter
) -> Accepted:
    """POST /v1/requests: started; the result comes as its event and through GET /v1/requests/{id}."""
    request = start(body, principal=principal, api_request_id=api_request_id, now=now, submitter=submitter)
    metrics.add_metric(name="ApiSubmit", unit=MetricUnit.Count, value=1)
    return Accepted(request_id=request.request_id, links={"status": f"/v1/requests/{request.request_id}"})


def may_read(item: LineageItem, principal: str, auditors: Iterable[str]) -> bool:
    """The owner who sent a request may read it (any session of the role that sent it; never another
    role's session of the same name: xpi.domain.ownership), and so may the auditors (exact ARNs)."""
    return same_owner(item.caller_principal, principal) or is_auditor(principal, tuple(auditors))


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _timeline(steps: dict[str, str]) -> list[Step]:
    moments = sorted(((_parse_time(at), name) for name, at in steps.items()), key=lambda pair: pair[0])
    if not moments:
        return []
    first = moments[0][0]
    return [
        Step(step=name, at=at, elapsed_ms=round((at - first).total_seconds() * 1000)) for at, name in moments
    ]


def _latency_ms(steps: dict[str, str]) -> int | None:
    if "received_at" not in steps or "completed_at" not in steps:
        return None
    elapsed = _parse_time(steps["completed_at"]) - _parse_time(steps["received_at"])
    return max(0, round(elapsed.total_seconds() * 1000))


def _result(item: LineageItem, output: dict[str, Any] | None) -> ResultInfo | None:
    """What the model answered, from the execution's output (never from lineage, which holds no content)."""
    if output is None:
        return None
    detail_output = ((output.get("outcome") or {}).get("detail") or {}).get("output")
    if isinstance(detail_output, dict):
        return ResultInfo(
            text=detail_output.get("text"),
            body=detail_output.get("body"),
            s3_uri=detail_output.get("s3_uri"),
            sha256=detail_output.get("sha256"),
            stop_reason=detail_output.get("stop_reason"),
        )
    if item.output_s3_uri:
        return ResultInfo(s3_uri=item.output_s3_uri)
    return None


def describe(
    item: LineageItem, output: dict[str, Any] | None = None, *, with_credential: bool = False
) -> RequestStatus:
    """A lineage item (and, for its caller, the execution's output) as the API shows it; the commercial
    credential's type, version and age only for the dashboard (operators), not for callers."""
    steps = dict(item.steps or {})
    if item.created_at:  # a claim has no steps yet: its timeline starts when it was received
        steps.setdefault("received_at", item.created_at)
    classification, usage, error = item.classification, item.usage, item.error
    return RequestStatus(
        request_id=item.request_id,
        status=item.status,
        caller_principal=item.caller_principal,
        source=item.source,
        created_at=item.created_at,
        model=ModelInfo(
            requested=item.model_requested, resolved=item.model_id, region=item.commercial_region
        ),
        classification=ClassificationInfo(
            decision=classification.decision, categories=dict(classification.categories)
        )
        if classification
        else None,
        usage=UsageInfo(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        if usage
        else None,
        estimated_cost_usd=float(item.estimated_cost_usd) if item.estimated_cost_usd is not None else None,
        latency_ms=_latency_ms(steps),
        error=ErrorInfo(code=error.code, message=safe_message(error.code, error.message)) if error else None,
        timeline=_timeline(steps),
        result=_result(item, output),
        credential=CredentialInfo(
            type=item.credential_type, version=item.credential_version, age_s=item.credential_age_s
        )
        if with_credential and item.credential_version
        else None,
    )


def get_request(
    request_id: str,
    *,
    principal: str,
    auditors: Iterable[str],
    lineage: LineageStore,
    executions: ExecutionReader,
) -> RequestStatus:
    item = lineage.get(request_id)
    # A request of another caller answers exactly like a missing one, so ids cannot be probed.
    if item is None or not may_read(item, principal, auditors):
        raise RequestNotFound(f"no request '{request_id}' for this caller", request_id)
    output = None
    if item.status in TERMINAL_LINEAGE:
        described = executions.describe(request_id)
        output = described[1] if described else None
    return describe(item, output or {})


def models_for(
    principal: str,
    routing: RoutingConfig,
    *,
    project: str | None = None,
    budgets: BudgetLedger | None = None,
    today: date | None = None,
) -> CallerModels:
    """The models `principal` may use acting for `project` (None: its default project), with its
    clearance and what is left of its budgets today: the same grant the route step applies."""
    grant = grant_for(routing, principal, project)
    rule = routing.caller_rule(principal)
    projects = list(rule.projects) if rule else []
    if isinstance(grant, Refused):
        if grant.reason is Refusal.PROJECT:
            raise RequestInvalid(
                "the caller does not act for this project", problems=(Problem("project", "not_allowed"),)
            )
        return CallerModels(principal=principal, models=[], aliases={}, projects=projects)
    models = sorted(grant.models)
    aliases = {alias: target for alias, target in routing.aliases.items() if target in grant.models}
    clearance = [
        [ClearanceEntry(category=c.category, send=c.send, models=list(c.models)) for c in level]
        for level in grant.clearances
    ]
    day = today or datetime.now(UTC).date()
    items = {limit.key: usage_item_key(limit.key, day) for limit in grant.limits}
    used = budgets.used(list(items.values())) if budgets is not None and items else {}
    left = []
    for limit in grant.limits:
        tokens_used, usd_used = used.get(items[limit.key], (0, 0.0))
        tokens_left, usd_left = remaining(limit.budget, tokens_used, usd_used)
        scope, _, name = limit.key.partition("#")
        left.append(
            BudgetLeft(
                scope="caller" if scope == "caller" else "project",
                name=name,
                day=day.isoformat(),
                tokens_per_day=limit.budget.tokens_per_day,
                tokens_remaining=tokens_left,
                usd_per_day=limit.budget.usd_per_day,
                usd_remaining=usd_left,
            )
        )
    return CallerModels(
        principal=principal,
        models=models,
        aliases=aliases,
        project=grant.project,
        projects=projects,
        clearance=clearance or None,
        budgets=left,
    )


def may_read_batch(item: dict[str, Any], caller_id: str, principal: str, auditors: Iterable[str]) -> bool:
    """A batch is its uploader's (the owner recorded from its upload prefix, `aws:userid` form: any
    session of the uploading role) and the auditors'; a batch without a recorded owner is nobody's."""
    owner = item.get("owner")
    return (isinstance(owner, str) and bool(owner) and owner == owner_of(caller_id)) or is_auditor(
        principal, tuple(auditors)
    )


def get_batch(
    batch_id: str,
    batches: BatchStatusReader | None,
    *,
    caller_id: str,
    principal: str,
    auditors: Iterable[str],
) -> BatchStatus:
    item = batches.status(batch_id) if batches is not None else None
    # every batch's status item has a state (other items do not); another caller's batch answers as missing
    if item is None or "state" not in item or not may_read_batch(item, caller_id, principal, auditors):
        raise BatchNotFound(f"no batch '{batch_id}'")
    counts = {
        name: item[name]
        for name in ("total", "completed", "blocked", "failed", "invalid")
        if isinstance(item.get(name), int)
    }
    texts = {
        name: item[name]
        for name in ("source_uri", "results_uri", "created_at", "updated_at")
        if isinstance(item.get(name), str)
    }
    status = str(item.get("state") or item.get("status") or "UNKNOWN")
    return BatchStatus(batch_id=batch_id, status=status, **counts, **texts)


# ---------------------------------------------------------------------------------------------- dashboard
def dashboard_request(request_id: str, lineage: LineageStore) -> RequestStatus:
    """One request as the dashboard shows it: lineage only, never the content."""
    item = lineage.get(request_id)
    if item is None:
        raise RequestNotFound(f"no request '{request_id}'", request_id)
    return describe(item, with_credential=True)


def _days(since: datetime, now: datetime) -> list[datetime]:
    days: list[datetime] = []
    day = now
    while day.date() >= since.date() and len(days) < INDEX_MAX_DAYS:
        days.append(day)
        day -= timedelta(days=1)
    return days


def recent_items(lineage: LineageStore, since: datetime, now: datetime, limit: int) -> list[LineageItem]:
    """Lineage items created since `since` (by-day index, newest first), at most `limit`."""
    since_iso = since.astimezone(UTC).isoformat(timespec="milliseconds")
    items: list[LineageItem] = []
    for day in _days(since, now):
        items.extend(lineage.by_day(day.date(), since_iso, limit - len(items)))
        if len(items) >= limit:
            break
    return items


def _model_of(item: LineageItem, aliases: dict[str, str]) -> str:
    """The model id a request was for: resolved by routing, else its alias resolved here."""
    requested = item.model_requested or "unknown"
    return item.model_id or aliases.get(requested, requested)


def _matches(item: LineageItem, filters: DashboardFilters, aliases: dict[str, str]) -> bool:
    decision = item.classification.decision if item.classification else None
    model = {item.model_requested, _model_of(item, aliases)}
    return (
        (filters.status is None or item.status == filters.status)
        and (filters.model is None or filters.model in model)
        and (filters.caller is None or filters.caller in item.caller_principal)
        and (filters.decision is None or decision == filters.decision)
    )


def dashboard_requests(
    lineage: LineageStore, filters: DashboardFilters, now: datetime, aliases: dict[str, str]
) -> RequestList:
    items = recent_items(lineage, filters.since, now, max(filters.limit * FEED_READ_FACTOR, FEED_READ_MIN))
    rows = [describe(item, with_credential=True) for item in items if _matches(item, filters, aliases)][
        : filters.limit
    ]
    return RequestList(generated_at=now.isoformat(timespec="milliseconds"), requests=rows)


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class _Tally:
    """Counts of the requests that fall in one time bucket, or went to one model."""

    requests: int = 0
    errors: int = 0
    throttles: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: list[int] = field(default_factory=list)

    def count(self, status: str, error_code: str, latency: int | None) -> None:
        self.requests += 1
        self.errors += status == "FAILED"
        self.throttles += error_code in THROTTLE_CODES
        if latency is not None and status != "ACCEPTED":
            self.latencies.append(latency)

    def p50(self) -> int | None:
        return _percentile(self.latencies, 0.50)

    def p95(self) -> int | None:
        return _percentile(self.latencies, 0.95)


def stats(lineage: LineageStore, minutes: int, now: datetime, aliases: dict[str, str]) -> Stats:
    """Throughput, errors, throttles and latency per time bucket; tokens and latency by model; blocked
    requests by category (categories and counts only, never content)."""
    since = now - timedelta(minutes=minutes)
    items = recent_items(lineage, since, now, STATS_MAX_ITEMS)
    bucket_minutes = max(1, math.ceil(minutes / 60))
    start = since.replace(second=0, microsecond=0)
    buckets = {index: _Tally() for index in range(math.ceil(minutes / bucket_minutes) + 1)}
    per_model: dict[str, _Tally] = defaultdict(_Tally)
    blocked: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for item in items:
        created = _parse_time(item.created_at)
        bucket = buckets.get(int((created - start).total_seconds() // (60 * bucket_minutes)))
        code = item.error.code if item.error else ""
        latency = _latency_ms(item.steps or {})
        model = per_model[_model_of(item, aliases)]
        totals[item.status] += 1
        totals["requests"] += 1
        if item.usage:
            model.input_tokens += item.usage.input_tokens
            model.output_tokens += item.usage.output_tokens
        for tally in filter(None, (bucket, model)):
            tally.count(item.status, code, latency)
        if item.status == "BLOCKED" and item.classification:
            blocked.update(item.classification.categories.keys())
    return Stats(
        generated_at=now.isoformat(timespec="milliseconds"),
        minutes=minutes,
        totals=dict(totals),
        buckets=[
            StatsBucket(
                minute=(start + timedelta(minutes=index * bucket_minutes)).isoformat(timespec="minutes"),
                requests=tally.requests,
                errors=tally.errors,
                throttles=tally.throttles,
                latency_p50_ms=tally.p50(),
                latency_p95_ms=tally.p95(),
            )
            for index, tally in sorted(buckets.items())
        ],
        models={
            name: ModelStats(
                requests=tally.requests,
                errors=tally.errors,
                throttles=tally.throttles,
                input_tokens=tally.input_tokens,
                output_tokens=tally.output_tokens,
                latency_p50_ms=tally.p50(),
                latency_p95_ms=tally.p95(),
            )
            for name, tally in per_model.items()
        },
        blocked_by_category=dict(blocked),
    )


# ---------------------------------------------------------------------------------------------- admin
@dataclass(frozen=True)
class AdminCall:
    """Who the API event says called an admin route, and through which API. A direct
    lambda:InvokeFunction can claim anything here: `verify_admin_call` checks what the function can know
    on its own, and every change raises a Security Alert carrying all of it."""

    principal: str
    request_id: str
    account_id: str | None
    api_id: str | None
    stage: str | None
    own_account_id: str  # from the function's own ARN (the Lambda context), not from the event
    expected_stage: str
    admin_patterns: tuple[str, ...] = ()

    def claimed(self) -> dict[str, str | None]:
        return {
            "principal": self.principal,
            "request_id": self.request_id,
            "account_id": self.account_id,
            "api_id": self.api_id,
            "stage": self.stage,
        }


def verify_admin_call(call: AdminCall, events: EventPublisher) -> None:
    """Refuse (AdminCallRefused, and a Security Alert) an admin event that cannot have come from this
    stack's API: another account, another stage, no API id, or a caller outside the admin principals."""
    problems = []
    if call.account_id != call.own_account_id:
        problems.append("account")
    if not call.api_id:
        problems.append("api")
    if call.stage != call.expected_stage:
        problems.append("stage")
    if call.admin_patterns and not any(fnmatchcase(call.principal, p) for p in call.admin_patterns):
        problems.append("principal")
    if problems:
        logger.warning("admin call refused", extra={"claimed": call.claimed(), "problems": problems})
        _admin_alert(call, "refused", events)
        raise AdminCallRefused("the admin call did not come through this stack's API")


def _admin_alert(
    call: AdminCall, decision: str, events: EventPublisher, config: ConfigAlert | None = None
) -> None:
    """The Security Alert every admin change, and every refused admin event, raises."""
    events.publish(
        SECURITY_ALERT,
        SecurityAlertDetail(
            request_id=call.request_id,
            caller_principal=call.principal,
            source="admin",
            categories={},
            decision=decision,
            config=config,
        ),
    )


ConfigDocument = Literal["policy", "routing"]
# The field names an invalid document's problems may name (anything else shows as `*`).
CONFIG_FIELDS = {
    "policy": schema_field_names(Policy.model_json_schema()),
    "routing": schema_field_names(RoutingConfig.model_json_schema()),
}


def replace_config(
    kind: ConfigDocument,
    body: str,
    call: AdminCall,
    *,
    admin: AdminActions,
    events: EventPublisher,
    now: datetime,
) -> AdminResult:
    """PUT /v1/admin/policy and /v1/admin/routing: the document is validated (the policy against its
    floor too) before it is stored as the next signed revision, which the loaders apply within their
    cache age. Every change raises a Security Alert naming the revision, its hash and the caller."""
    verify_admin_call(call, events)
    model: type[Policy] | type[RoutingConfig] = Policy if kind == "policy" else RoutingConfig
    try:
        document = model.model_validate_json(body)
    except ValidationError as exc:
        raise PolicyInvalid(
            f"{kind} does not validate",
            problems=field_problems(exc.errors(include_input=False, include_url=False), CONFIG_FIELDS[kind]),
        ) from None
    stored = admin.store_config(
        kind,
        document.model_dump(mode="json"),
        changed_by=call.principal,
        changed_at=now.isoformat(timespec="milliseconds"),
    )
    logger.warning(f"{kind} replaced", extra={"by": call.principal, **stored.model_dump()})
    _admin_alert(
        call,
        "changed",
        events,
        config=ConfigAlert(
            document=kind,
            change="changed",
            parameter=stored.parameter,
            revision=stored.revision,
            sha256=stored.sha256,
            applied_revision=stored.revision,
            claimed_identity=call.claimed(),
        ),
    )
    return AdminResult(
        action=kind,
        detail={
            "version": stored.parameter_version,
            "revision": stored.revision,
            "sha256": stored.sha256,
            "by": call.principal,
            "request_id": call.request_id,  # the Security Alert's request_id
        },
    )


def redrive(call: AdminCall, admin: AdminActions, events: EventPublisher) -> AdminResult:
    """POST /v1/admin/dlq/redrive: start moving the requests DLQ back to the requests queue (SQS moves
    the messages after the answer)."""
    verify_admin_call(call, events)
    principal = call.principal
    started = admin.redrive()
    logger.warning("requests DLQ redrive started", extra={"by": principal, **started.model_dump()})
    return AdminResult(action="redrive", detail={**started.model_dump(), "by": principal})
