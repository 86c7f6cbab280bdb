"""GET /v1/usage?from=&to=&group_by=&format=json|csv: usage and cost by caller, project, cost centre,
model, region and day, from lineage, behind API Gateway (AWS_IAM; the operator and auditor policies
grant it). Its own function, read-only."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.errors import Problem, RequestInvalid
from xpi.domain.usage import to_csv
from xpi.handlers import http
from xpi.observability import logger, metrics, tracer
from xpi.services.compliance import period
from xpi.services.usage import group_by, usage_report

dependencies.preload(dependencies.day_lineage)
app = APIGatewayRestResolver()


@app.get("/v1/usage")
def report() -> Response[str]:
    event = app.current_event
    answer = event.get_query_string_value("format", None) or "json"
    if answer not in ("json", "csv"):
        raise RequestInvalid("format must be json or csv", problems=(Problem("format", "enum"),))
    first, last = period(
        event.get_query_string_value("from", None),
        event.get_query_string_value("to", None),
        datetime.now(UTC).date(),
    )
    built = usage_report(
        dependencies.day_lineage(), first, last, group_by(event.get_query_string_value("group_by", None))
    )
    if answer == "csv":
        headers = {"Content-Disposition": f'attachment; filename="xpi-usage-{first}-{last}.csv"'}
        return Response(
            status_code=200, content_type="text/csv; charset=utf-8", body=to_csv(built), headers=headers
        )
    return http.json_response(200, built.model_dump(mode="json"))


http.answer_errors(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
