"""GET /v1/compliance/report?from=&to=&format=json|csv|html: the compliance report for a period, behind
API Gateway (AWS_IAM; the operator and auditor policies grant it). Its own function, read-only."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.compliance_export import to_csv, to_html
from xpi.domain.errors import Problem, RequestInvalid
from xpi.handlers import http
from xpi.observability import logger, metrics, tracer
from xpi.services.compliance import compliance_report, period

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.report_ports)

app = APIGatewayRestResolver()
FORMATS = {"json", "csv", "html"}


@app.get("/v1/compliance/report")
def report() -> Response[str]:
    event = app.current_event
    answer = event.get_query_string_value("format", None) or "json"
    if answer not in FORMATS:
        raise RequestInvalid("format must be json, csv or html", problems=(Problem("format", "enum"),))
    now = datetime.now(UTC)
    first, last = period(
        event.get_query_string_value("from", None), event.get_query_string_value("to", None), now.date()
    )
    built = compliance_report(dependencies.report_ports(), first, last, now)
    name = f"xpi-compliance-{first}-{last}"
    if answer == "csv":
        headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
        return Response(
            status_code=200, content_type="text/csv; charset=utf-8", body=to_csv(built), headers=headers
        )
    if answer == "html":
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
        return Response(
            status_code=200, content_type="text/html; charset=utf-8", body=to_html(built), headers=headers
        )
    return http.json_response(200, built.model_dump(mode="json", by_alias=True))


http.answer_errors(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
