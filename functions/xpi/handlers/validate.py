"""Workflow step 1: validate the request and prepare its lineage claim."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi.domain.intake import accept, parse_request
from xpi.handlers import contain_errors
from xpi.models.workflow import WorkflowInput
from xpi.observability import logger, tracer
from xpi.settings import get_settings


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@contain_errors
@event_parser(model=WorkflowInput)
def handler(event: WorkflowInput, context: LambdaContext) -> dict[str, Any]:
    request = parse_request(event.request, fallback_id=event.execution)
    state = accept(
        request, event.source, now=datetime.now(UTC), retention_days=get_settings().lineage_retention_days
    )
    return state.model_dump(mode="json", exclude_none=True)
