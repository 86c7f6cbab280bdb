"""The API function behind API Gateway (REST, AWS_IAM): thin routes over xpi.services.api.

The caller is the IAM principal API Gateway verified (requestContext.identity.userArn); it is what
lineage records as the request's principal and what decides who may read a request. This is the one
place errors become HTTP: every error is answered in one shape, {"error": {"code", "message",
"request_id"?, "problems"?}} (api/openapi.yaml), with the code's fixed message (xpi.domain.errors):
nothing of the request's text, of an exception's text or of Bedrock's answer.
"""

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from xpi import dependencies
from xpi.domain.errors import (
    BatchNotFound,
    CallerUnidentified,
    InvocationTimeout,
    PolicyInvalid,
    Problem,
    RequestExists,
    RequestInvalid,
    RequestNotFound,
    WorkflowWithoutResult,
    XpiError,
    field_problems,
    message_for,
)
from xpi.models.api import (
    DASHBOARD_LIMIT,
    DASHBOARD_SINCE,
    STATS_MINUTES,
    DashboardFilters,
    ErrorAnswer,
    ErrorBody,
    ErrorCode,
    IntQuery,
    ProblemInfo,
)
from xpi.observability import logger, metrics, tracer
from xpi.services import api
from xpi.settings import get_settings

app = APIGatewayRestResolver()

# The domain's errors as HTTP answers (an error of a subclass answers as its nearest listed class).
HTTP_ANSWERS: dict[type[XpiError], tuple[int, ErrorCode]] = {
    RequestInvalid: (400, "RequestInvalid"),
    PolicyInvalid: (400, "PolicyInvalid"),
    RequestNotFound: (404, "RequestNotFound"),
    BatchNotFound: (404, "BatchNotFound"),
    RequestExists: (409, "RequestExists"),
    WorkflowWithoutResult: (500, "InternalError"),
    CallerUnidentified: (500, "InternalError"),
    InvocationTimeout: (504, "InvocationTimeout"),
}


# ------------------------------------------------------------------ parsing the event
def _principal() -> str:
    identity = app.current_event.request_context.identity
    principal = identity.user_arn or identity.caller
    if not principal:  # API Gateway with AWS_IAM always sets it; anything else is misconfiguration
        raise CallerUnidentified("the request carries no IAM identity")
    return principal


def _caller_id() -> str:
    """The caller's aws:userid (`identity.caller`: a user's unique id, or `<role id>:<session>`), the
    form the batch bucket's prefixes are named by."""
    caller = app.current_event.request_context.identity.caller
    if not caller:
        raise CallerUnidentified("the request carries no IAM identity")
    return caller


def _query_int(query: IntQuery) -> int:
    raw = app.current_event.get_query_string_value(query.name, None)
    if raw is None:
        return query.default
    try:
        value = int(raw)
    except ValueError:
        raise RequestInvalid(
            "query parameter is not an integer", problems=(Problem(query.name, "int_parsing"),)
        ) from None
    if not query.low <= value <= query.high:
        raise RequestInvalid(
            f"query parameter must be between {query.low} and {query.high}",
            problems=(Problem(query.name, "out_of_range"),),
        )
    return value


FILTER_FIELDS = frozenset(DashboardFilters.model_fields)


def _dashboard_filters(now: datetime) -> DashboardFilters:
    event = app.current_event
    try:
        filters = DashboardFilters(
            since=event.get_query_string_value("since", None) or now - DASHBOARD_SINCE,
            status=event.get_query_string_value("status", None) or None,
            model=event.get_query_string_value("model", None) or None,
            caller=event.get_query_string_value("caller", None) or None,
            decision=event.get_query_string_value("decision", None) or None,
            limit=_query_int(DASHBOARD_LIMIT),
        )
    except ValidationError as exc:
        problems = field_problems(exc.errors(include_input=False, include_url=False), FILTER_FIELDS)
        raise RequestInvalid("bad dashboard filter", problems=problems) from None
    if filters.since.tzinfo is None:
        filters = filters.model_copy(update={"since": filters.since.replace(tzinfo=UTC)})
    return filters


def _json(status: int, body: BaseModel | dict[str, Any]) -> Response[str]:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def _error(
    status: int, code: ErrorCode, request_id: str | None = None, problems: tuple[Problem, ...] = ()
) -> Response[str]:
    body = ErrorBody(
        code=code,
        message=message_for(code),
        request_id=request_id or None,
        problems=[ProblemInfo(location=p.location, type=p.type) for p in problems] or None,
    )
    answer = ErrorAnswer(error=body)
    return _json(status, answer.model_dump(mode="json", exclude_none=True))


# ------------------------------------------------------------------ routes
@app.post("/v1/invoke")
def invoke() -> Response[str]:
    detail = api.invoke(
        app.current_event.body or "",
        principal=_principal(),
        api_request_id=app.current_event.request_context.request_id,
        now=datetime.now(UTC),
        submitter=dependencies.submitter(),
        executions=dependencies.executions(),
        wait_s=get_settings().api_invoke_wait_s,
    )
    return _json(200, detail)


@app.post("/v1/requests")
def submit_request() -> Response[str]:
    accepted = api.submit_request(
        app.current_event.body or "",
        principal=_principal(),
        api_request_id=app.current_event.request_context.request_id,
        now=datetime.now(UTC),
        submitter=dependencies.submitter(),
    )
    return _json(202, accepted)


@app.get("/v1/requests/<request_id>")
def get_request(request_id: str) -> Response[str]:
    status = api.get_request(
        request_id,
        principal=_principal(),
        auditors=get_settings().auditors,
        lineage=dependencies.lineage_store(),
        executions=dependencies.executions(),
    )
    return _json(200, status)


@app.get("/v1/models")
def list_models() -> Response[str]:
    return _json(200, api.models_for(_principal(), dependencies.routing_config()))


@app.get("/v1/batches/<batch_id>")
def get_batch(batch_id: str) -> Response[str]:
    batch = api.get_batch(
        batch_id,
        dependencies.batch_status_reader(),
        caller_id=_caller_id(),
        principal=_principal(),
        auditors=get_settings().auditors,
    )
    return _json(200, batch.model_dump(mode="json", exclude_none=True))


@app.get("/v1/dashboard/requests")
def dashboard_requests() -> Response[str]:
    now = datetime.now(UTC)
    filters = _dashboard_filters(now)
    aliases = dependencies.routing_config().aliases
    return _json(200, api.dashboard_requests(dependencies.lineage_store(), filters, now, aliases))


@app.get("/v1/dashboard/requests/<request_id>")
def dashboard_request(request_id: str) -> Response[str]:
    return _json(200, api.dashboard_request(request_id, dependencies.lineage_store()))


@app.get("/v1/dashboard/stats")
def dashboard_stats() -> Response[str]:
    minutes = _query_int(STATS_MINUTES)
    aliases = dependencies.routing_config().aliases
    return _json(200, api.stats(dependencies.lineage_store(), minutes, datetime.now(UTC), aliases))


# ------------------------------------------------------------------ errors: one shape, stable codes
@app.exception_handler(XpiError)  # type: ignore[untyped-decorator]
def _domain_error(error: XpiError) -> Response[str]:
    answer = next((HTTP_ANSWERS[cls] for cls in type(error).__mro__ if cls in HTTP_ANSWERS), None)
    if answer is None:
        return _internal_error(error)
    status, code = answer
    return _error(status, code, error.request_id, error.problems)


@app.not_found
def _not_found(_: NotFoundError) -> Response[str]:
    return _error(404, "RouteNotFound")


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(error: Exception) -> Response[str]:
    return _internal_error(error)


def _internal_error(error: Exception) -> Response[str]:
    """Nothing of the error's text, in the answer or the log (an exception's text and traceback can
    quote the request): the log line has the code, the error's class and API Gateway's request id."""
    request_id = app.current_event.request_context.request_id
    logger.error(
        "unhandled error in the API",
        extra={
            "error_code": "InternalError",
            "error_class": type(error).__name__,
            "api_request_id": request_id,
        },
    )
    return _error(500, "InternalError", request_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
