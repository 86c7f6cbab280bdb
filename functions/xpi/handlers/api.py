"""The API function behind API Gateway (REST, AWS_IAM): thin routes over xpi.services.api.

The caller is the IAM principal API Gateway verified (requestContext.identity.userArn); it is what
lineage records as the request's principal and what decides who may read a request. Errors become HTTP
in xpi.handlers.http, in one shape for every route. POST /v1/invoke has its own function
(xpi.handlers.api_invoke).
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from xpi import dependencies
from xpi.domain.errors import (
    CallerUnidentified,
    Problem,
    RequestInvalid,
    field_problems,
)
from xpi.handlers import http
from xpi.models.api import (
    DASHBOARD_LIMIT,
    DASHBOARD_SINCE,
    STATS_MINUTES,
    DashboardFilters,
    IntQuery,
)
from xpi.observability import logger, metrics, tracer
from xpi.services import api, experiments
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(
    dependencies.batch_status_reader,
    dependencies.budget_ledger,
    dependencies.executions,
    dependencies.lineage_store,
    dependencies.payload_store,
    dependencies.routing_config,
    dependencies.submitter,
)

app = APIGatewayRestResolver()


# ------------------------------------------------------------------ parsing the event
def _principal() -> str:
    return http.principal(app)


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


_json = http.json_response


# ------------------------------------------------------------------ routes
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


@app.post("/v1/requests/<request_id>/feedback")
def request_feedback(request_id: str) -> Response[str]:
    recorded = experiments.record_feedback(
        request_id,
        app.current_event.body or "",
        principal=_principal(),
        now=datetime.now(UTC),
        lineage=dependencies.lineage_store(),
        payloads=dependencies.payload_store(),
    )
    return _json(200, recorded)


@app.get("/v1/experiments/<name>/results")
def experiment_results(name: str) -> Response[str]:
    found = experiments.experiment_results(name, dependencies.routing_config(), dependencies.lineage_store())
    return _json(200, found)


@app.get("/v1/models")
def list_models() -> Response[str]:
    answer = api.models_for(
        _principal(),
        dependencies.routing_config(),
        project=app.current_event.get_query_string_value("project", None) or None,
        budgets=dependencies.budget_ledger(),
    )
    return _json(200, answer)


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
http.answer_errors(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
