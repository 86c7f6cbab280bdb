"""GET /dashboard and GET /dashboard/{file}: the dashboard page, served by the deployed stack itself
behind the API (no authorization: the browser has no credentials before it signs in). Static files
only, and sign-in.json from the stack (docs/dashboard.md, "Hosting")."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi.observability import logger, tracer
from xpi.services.dashboard_page import PageAnswer, entry, page_file
from xpi.settings import get_settings

app = APIGatewayRestResolver()


def _response(answer: PageAnswer) -> Response[str]:
    headers = dict(answer.headers)
    content_type = headers.pop("Content-Type")
    return Response(status_code=answer.status, content_type=content_type, body=answer.body, headers=headers)


@app.get("/dashboard")
def to_the_page() -> Response[str]:
    event = app.current_event
    return _response(entry(get_settings(), event.request_context.path or event.path))


@app.get("/dashboard/<file>")
def a_file(file: str) -> Response[str]:
    return _response(page_file(file, get_settings()))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
