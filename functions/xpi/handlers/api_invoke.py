"""POST /v1/invoke (REST, AWS_IAM), in its own function: the request runs the inference workflow's
steps in process (xpi.services.sync_invoke) and the answer is the result event's detail.

Its own function, not a route of the API function: only this role and the invoke step's read the
commercial credentials (the secret's resource policy names both), and the API function's routes
(status, dashboard, batches) hold nothing of Bedrock. HTTP as for every route (xpi.handlers.http).
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import http
from xpi.observability import logger, metrics, tracer
from xpi.services import sync_invoke
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.judgement, dependencies.sync_ports)

app = APIGatewayRestResolver()
http.answer_errors(app)


@app.post("/v1/invoke")
def invoke() -> Response[str]:
    event = app.current_event
    detail = sync_invoke.invoke(
        event.body or "",
        principal=http.principal(app),
        api_request_id=event.request_context.request_id,
        ports=dependencies.sync_ports(),
        judge=dependencies.judgement,
        timing=sync_invoke.Timing(wait_s=get_settings().api_invoke_wait_s, clock=lambda: datetime.now(UTC)),
    )
    metrics.add_metric(name="ApiInvoke", unit=MetricUnit.Count, value=1)
    return http.json_response(200, detail)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
