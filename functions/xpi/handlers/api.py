"""The API function behind API Gateway (REST, AWS_IAM): thin routes over xpi.services.api.

The caller is the IAM principal API Gateway verified (requestContext.identity.userArn); it is what
lineage records as the request's principal and what decides who may read a request. Every error is
answered in one shape, {"error": {"code", "message", "request_id"?}} (api/openapi.yaml).
"""

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from xpi import dependencies
from xpi.domain.policy import Policy
from xpi.models.api import ApiError, DashboardFilters, get_api_settings
from xpi.observability import logger, metrics, tracer
from xpi.services import api
from xpi.services.api_adapters import (
    AwsAdminActions,
    BatchReader,
    DynamoBatchReader,
    DynamoLineageReader,
    StepFunctionsExecutions,
)
from xpi.settings import get_settings

app = APIGatewayRestResolver()
REDRIVE_MAX_MESSAGES = 100


# ------------------------------------------------------------------ adapters (replaced by unit tests)
@cache
def executions() -> StepFunctionsExecutions:
    return StepFunctionsExecutions(get_settings().require("state_machine_arn"))


@cache
def lineage_reader() -> DynamoLineageReader:
    return DynamoLineageReader(get_settings().require("lineage_table"))


@cache
def batch_reader() -> BatchReader | None:
    table = get_api_settings().batch_table
    return DynamoBatchReader(table) if table else None


@cache
def admin_actions() -> AwsAdminActions:
    settings, api_settings = get_settings(), get_api_settings()
    return AwsAdminActions(
        settings.policy_parameter_name, api_settings.requests_queue_url, api_settings.requests_dlq_url
    )


# ------------------------------------------------------------------ helpers
def _principal() -> str:
    identity = app.current_event.request_context.identity
    principal = identity.user_arn or identity.caller
    if not principal:  # API Gateway with AWS_IAM always sets it; anything else is misconfiguration
        raise ApiError(500, "InternalError", "the request carries no IAM identity")
    return principal


def _json(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = app.current_event.get_query_string_value(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "RequestInvalid", f"query parameter '{name}' must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "RequestInvalid", f"query parameter '{name}' must be between {low} and {high}")
    return value


def _start(now: datetime) -> str:
    request = api.start(
        app.current_event.body or "",
        principal=_principal(),
        api_request_id=app.current_event.request_context.request_id,
        now=now,
        starter=dependencies.workflow_starter(),
        lineage=dependencies.lineage_store(),
        events=dependencies.event_publisher(),
        retention_days=get_settings().lineage_retention_days,
    )
    logger.append_keys(request_id=request.request_id)
    return request.request_id


# ------------------------------------------------------------------ routes
@app.post("/v1/invoke")
def invoke() -> Response[str]:
    request_id = _start(datetime.now(UTC))
    metrics.add_metric(name="ApiInvoke", unit=MetricUnit.Count, value=1)
    detail = api.wait_for_result(request_id, executions(), get_api_settings().invoke_wait_s)
    return _json(200, detail)


@app.post("/v1/requests")
def submit_request() -> Response[str]:
    request_id = _start(datetime.now(UTC))
    metrics.add_metric(name="ApiSubmit", unit=MetricUnit.Count, value=1)
    return _json(
        202,
        {"request_id": request_id, "status": "ACCEPTED", "links": {"status": f"/v1/requests/{request_id}"}},
    )


@app.get("/v1/requests/<request_id>")
def get_request(request_id: str) -> Response[str]:
    status = api.get_request(
        request_id,
        principal=_principal(),
        auditor_patterns=get_api_settings().auditor_patterns,
        lineage=lineage_reader(),
        executions=executions(),
    )
    return _json(200, status.model_dump(mode="json"))


@app.get("/v1/models")
def list_models() -> Response[str]:
    return _json(200, api.models_for(_principal(), dependencies.routing_config()))


@app.get("/v1/batches/<batch_id>")
def get_batch(batch_id: str) -> Response[str]:
    return _json(200, api.get_batch(batch_id, batch_reader()))


@app.get("/v1/dashboard/requests")
def dashboard_requests() -> Response[str]:
    now = datetime.now(UTC)
    event = app.current_event
    since_text = event.get_query_string_value("since", None)
    try:
        filters = DashboardFilters(
            since=since_text or now - timedelta(hours=1),
            status=event.get_query_string_value("status", None) or None,
            model=event.get_query_string_value("model", None) or None,
            caller=event.get_query_string_value("caller", None) or None,
            decision=event.get_query_string_value("decision", None) or None,
            limit=_query_int("limit", 100, 1, 500),
        )
    except ValidationError as exc:
        raise ApiError(400, "RequestInvalid", f"bad filter: {exc.errors()[0]['msg']}") from None
    if filters.since.tzinfo is None:
        filters = filters.model_copy(update={"since": filters.since.replace(tzinfo=UTC)})
    rows = api.dashboard_requests(lineage_reader(), filters, now, dependencies.routing_config().aliases)
    return _json(
        200,
        {
            "generated_at": now.isoformat(timespec="milliseconds"),
            "requests": [row.model_dump(mode="json") for row in rows],
        },
    )


@app.get("/v1/dashboard/requests/<request_id>")
def dashboard_request(request_id: str) -> Response[str]:
    item = lineage_reader().get(request_id)
    if item is None:
        raise ApiError(404, "RequestNotFound", f"no request '{request_id}'", request_id)
    return _json(200, api.describe(item).model_dump(mode="json"))  # lineage only: never the content


@app.get("/v1/dashboard/stats")
def dashboard_stats() -> Response[str]:
    minutes = _query_int("minutes", 60, 1, 1440)
    aliases = dependencies.routing_config().aliases
    return _json(200, api.stats(lineage_reader(), minutes, datetime.now(UTC), aliases))


@app.put("/v1/admin/policy")
def put_policy() -> Response[str]:
    try:
        policy = Policy.model_validate_json(app.current_event.body or "")
    except ValidationError as exc:
        raise ApiError(400, "PolicyInvalid", f"policy does not validate: {exc.errors()[0]['msg']}") from None
    version = admin_actions().put_policy(policy.model_dump_json())
    logger.warning("classification policy replaced", extra={"by": _principal(), "version": version})
    return _json(200, {"action": "policy", "detail": {"version": version, "by": _principal()}})


@app.post("/v1/admin/dlq/redrive")
def redrive() -> Response[str]:
    moved = admin_actions().redrive(REDRIVE_MAX_MESSAGES)
    logger.warning("requests DLQ redriven", extra={"by": _principal(), "moved": moved})
    return _json(200, {"action": "redrive", "detail": {"moved": moved, "by": _principal()}})


# ------------------------------------------------------------------ errors: one shape, stable codes
@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def _api_error(error: ApiError) -> Response[str]:
    return _json(error.status, error.body())


@app.not_found
def _not_found(_: NotFoundError) -> Response[str]:
    event = app.current_event
    return _json(404, ApiError(404, "RouteNotFound", f"no route {event.http_method} {event.path}").body())


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error in the API")
    request_id = app.current_event.request_context.request_id
    return _json(
        500, ApiError(500, "InternalError", f"internal error ({type(error).__name__})", request_id).body()
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
