"""The API's use cases: submit (async and sync), read one request, the caller's models, batches, and
the dashboard's feed and aggregates. Written against Protocols; the handler only maps HTTP to these."""

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from xpi.adapters.event_bus import EventPublisher
from xpi.adapters.lineage_store import LineageStore
from xpi.adapters.workflow import WorkflowStarter
from xpi.domain.errors import RequestInvalid
from xpi.domain.routing import RoutingConfig
from xpi.models.api import (
    ApiError,
    ClassificationInfo,
    DashboardFilters,
    ErrorInfo,
    ModelInfo,
    RequestStatus,
    ResultInfo,
    Step,
    UsageInfo,
)
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Source
from xpi.services.api_adapters import BatchReader, ExecutionReader, LineageReader
from xpi.services.submission import Submitted, submit

TERMINAL_LINEAGE = {"COMPLETED", "FAILED", "BLOCKED"}
THROTTLE_CODES = {"BedrockThrottled", "Lambda.TooManyRequestsException"}


def start(
    body: str,
    *,
    principal: str,
    api_request_id: str,
    now: datetime,
    starter: WorkflowStarter,
    lineage: LineageStore,
    events: EventPublisher,
    retention_days: int,
) -> InferenceRequest:
    """Validate and start the inference workflow (execution name = request id), recording the caller's
    IAM principal as the request's source. An invalid request is answered once (failure lineage and
    event, as for the queue) and raised as a 400."""
    source = Source(kind="api", principal=principal, reference=api_request_id, received_at=now)
    try:
        outcome, request = submit(
            body,
            source=source,
            fallback_id=api_request_id,
            starter=starter,
            lineage=lineage,
            events=events,
            now=now,
            retention_days=retention_days,
        )
    except RequestInvalid as exc:
        raise ApiError(400, "RequestInvalid", exc.message) from None
    if outcome is Submitted.DUPLICATE:
        raise ApiError(
            409, "RequestExists", "a request with this request_id exists already", request.request_id
        )
    return request


def wait_for_result(
    request_id: str,
    executions: ExecutionReader,
    wait_s: float,
    *,
    poll_s: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The result event's detail once the execution ends; a 504-style ApiError after wait_s (the
    execution goes on and still emits its event; the caller polls GET /v1/requests/{id})."""
    deadline = clock() + wait_s
    while True:
        described = executions.describe(request_id)
        if described is not None and described[0] != "RUNNING":
            status, output = described
            detail = ((output or {}).get("outcome") or {}).get("detail")
            if status == "SUCCEEDED" and isinstance(detail, dict) and "status" in detail:
                return detail
            raise ApiError(
                500,
                "InternalError",
                f"the workflow ended as {status} without a result; see GET /v1/requests/{request_id}",
                request_id,
            )
        if clock() + poll_s > deadline:
            raise ApiError(
                504,
                "InvocationTimeout",
                f"no result within {wait_s:g} s; the request goes on: poll GET /v1/requests/{request_id} "
                "or wait for its result event",
                request_id,
            )
        sleep(poll_s)
        poll_s = min(poll_s * 1.5, 1.0)


def may_read(item: dict[str, Any], principal: str, auditor_patterns: Iterable[str]) -> bool:
    """The caller who sent a request may read it, and so may auditors (configured principal globs)."""
    if item.get("caller_principal") == principal:
        return True
    return any(fnmatchcase(principal, pattern) for pattern in auditor_patterns)


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


def describe(item: dict[str, Any], output: dict[str, Any] | None = None) -> RequestStatus:
    """A lineage item (and, for its caller, the execution's output) as the API shows it."""
    steps = {str(k): str(v) for k, v in (item.get("steps") or {}).items()}
    if "received_at" not in steps and item.get("created_at"):
        steps.setdefault("received_at", str(item["created_at"]))
    classification = item.get("classification")
    usage = item.get("usage")
    error = item.get("error")
    cost = item.get("estimated_cost_usd")
    result = None
    if output is not None:
        detail_output = ((output.get("outcome") or {}).get("detail") or {}).get("output")
        if isinstance(detail_output, dict):
            result = ResultInfo(
                text=detail_output.get("text"),
                body=detail_output.get("body"),
                s3_uri=detail_output.get("s3_uri"),
                sha256=detail_output.get("sha256"),
                stop_reason=detail_output.get("stop_reason"),
            )
    if result is None and item.get("output_s3_uri") and output is not None:
        result = ResultInfo(s3_uri=item["output_s3_uri"], sha256=item.get("response_sha256"))
    return RequestStatus(
        request_id=str(item["request_id"]),
        status=item.get("status", "ACCEPTED"),
        caller_principal=str(item.get("caller_principal", "")),
        source=str(item.get("source", "")),
        created_at=item.get("created_at"),
        model=ModelInfo(
            requested=item.get("model_requested"),
            resolved=item.get("model_id"),
            region=item.get("commercial_region"),
        ),
        classification=ClassificationInfo(
            decision=classification["decision"],
            categories={str(k): int(v) for k, v in (classification.get("categories") or {}).items()},
        )
        if isinstance(classification, dict) and "decision" in classification
        else None,
        usage=UsageInfo(
            input_tokens=int(usage.get("input_tokens", 0)), output_tokens=int(usage.get("output_tokens", 0))
        )
        if isinstance(usage, dict)
        else None,
        estimated_cost_usd=float(cost) if cost is not None else None,
        latency_ms=_latency_ms(steps),
        error=ErrorInfo(code=str(error.get("code", "")), message=str(error.get("message", "")))
        if isinstance(error, dict)
        else None,
        timeline=_timeline(steps),
        result=result,
    )


def get_request(
    request_id: str,
    *,
    principal: str,
    auditor_patterns: Iterable[str],
    lineage: LineageReader,
    executions: ExecutionReader,
) -> RequestStatus:
    item = lineage.get(request_id)
    # A request of another caller answers exactly like a missing one, so ids cannot be probed.
    if item is None or not may_read(item, principal, auditor_patterns):
        raise ApiError(404, "RequestNotFound", f"no request '{request_id}' for this caller", request_id)
    output = None
    if item.get("status") in TERMINAL_LINEAGE:
        described = executions.describe(request_id)
        output = described[1] if described else None
    return describe(item, output or {})


def models_for(principal: str, routing: RoutingConfig) -> dict[str, Any]:
    models = routing.models_for(principal)
    aliases = {alias: target for alias, target in routing.aliases.items() if target in models}
    return {"principal": principal, "models": models, "aliases": aliases}


def get_batch(batch_id: str, batches: BatchReader | None) -> dict[str, Any]:
    item = batches.status(batch_id) if batches is not None else None
    if item is None or "state" not in item:  # every batch's status item has a state (other items do not)
        raise ApiError(404, "BatchNotFound", f"no batch '{batch_id}'")
    answer = {"batch_id": batch_id, "status": str(item.get("state") or item.get("status") or "UNKNOWN")}
    for name in ("total", "completed", "blocked", "failed", "invalid"):
        if isinstance(item.get(name), int):
            answer[name] = item[name]
    for name in ("source_uri", "results_uri", "created_at", "updated_at"):
        if isinstance(item.get(name), str):
            answer[name] = item[name]
    return answer


# ---------------------------------------------------------------------------------------------- dashboard
def _days(since: datetime, now: datetime) -> list[datetime]:
    days: list[datetime] = []
    day = now
    while day.date() >= since.date() and len(days) < 8:
        days.append(day)
        day -= timedelta(days=1)
    return days


def recent_items(lineage: LineageReader, since: datetime, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Lineage items created since `since` (by-day index, newest first), at most `limit`."""
    since_iso = since.astimezone(UTC).isoformat(timespec="milliseconds")
    items: list[dict[str, Any]] = []
    for day in _days(since, now):
        items.extend(lineage.by_day(day.date(), since_iso, limit - len(items)))
        if len(items) >= limit:
            break
    return items


def _model_of(item: dict[str, Any], aliases: dict[str, str]) -> str:
    """The model id a request was for: resolved by routing, else its alias resolved here."""
    requested = str(item.get("model_requested") or "unknown")
    return str(item.get("model_id") or aliases.get(requested, requested))


def _matches(item: dict[str, Any], filters: DashboardFilters, aliases: dict[str, str]) -> bool:
    decision = (item.get("classification") or {}).get("decision")
    model = {item.get("model_requested"), _model_of(item, aliases)}
    return (
        (filters.status is None or item.get("status") == filters.status)
        and (filters.model is None or filters.model in model)
        and (filters.caller is None or filters.caller in str(item.get("caller_principal", "")))
        and (filters.decision is None or decision == filters.decision)
    )


def dashboard_requests(
    lineage: LineageReader, filters: DashboardFilters, now: datetime, aliases: dict[str, str]
) -> list[RequestStatus]:
    # Filters apply after the index read, so read generously (the index is by day, newest first).
    items = recent_items(lineage, filters.since, now, max(filters.limit * 5, 200))
    return [describe(item) for item in items if _matches(item, filters, aliases)][: filters.limit]


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def stats(lineage: LineageReader, minutes: int, now: datetime, aliases: dict[str, str]) -> dict[str, Any]:
    """Throughput, errors, throttles and latency per time bucket; tokens and latency by model; blocked
    requests by category (categories and counts only, never content)."""
    since = now - timedelta(minutes=minutes)
    items = recent_items(lineage, since, now, 10_000)
    bucket_minutes = max(1, math.ceil(minutes / 60))
    start = since.replace(second=0, microsecond=0)
    buckets: dict[int, dict[str, Any]] = {}
    for index in range(math.ceil(minutes / bucket_minutes) + 1):
        moment = start + timedelta(minutes=index * bucket_minutes)
        buckets[index] = {"minute": moment.isoformat(timespec="minutes"), "requests": 0, "errors": 0,
                          "throttles": 0, "latencies": []}  # fmt: skip
    per_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "errors": 0,
            "throttles": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "latencies": [],
        }
    )
    blocked: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for item in items:
        created = _parse_time(str(item.get("created_at")))
        index = int((created - start).total_seconds() // (60 * bucket_minutes))
        bucket = buckets.get(index)
        status = str(item.get("status", "ACCEPTED"))
        code = str((item.get("error") or {}).get("code", ""))
        latency = _latency_ms({str(k): str(v) for k, v in (item.get("steps") or {}).items()})
        model = per_model[_model_of(item, aliases)]
        totals[status] += 1
        totals["requests"] += 1
        model["requests"] += 1
        usage = item.get("usage") or {}
        model["input_tokens"] += int(usage.get("input_tokens", 0))
        model["output_tokens"] += int(usage.get("output_tokens", 0))
        for target in filter(None, (bucket, model)):
            if bucket is target:
                target["requests"] += 1
            if status == "FAILED":
                target["errors"] += 1
            if code in THROTTLE_CODES:
                target["throttles"] += 1
            if latency is not None and status != "ACCEPTED":
                target["latencies"].append(latency)
        if status == "BLOCKED":
            for category in (item.get("classification") or {}).get("categories") or {}:
                blocked[str(category)] += 1
    for target in [*buckets.values(), *per_model.values()]:
        latencies = target.pop("latencies")
        target["latency_p50_ms"] = _percentile(latencies, 0.50)
        target["latency_p95_ms"] = _percentile(latencies, 0.95)
    return {
        "generated_at": now.isoformat(timespec="milliseconds"),
        "minutes": minutes,
        "totals": dict(totals),
        "buckets": [buckets[i] for i in sorted(buckets)],
        "models": dict(per_model),
        "blocked_by_category": dict(blocked),
    }
