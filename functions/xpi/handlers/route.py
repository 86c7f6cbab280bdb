"""Workflow step: resolve the requested model (alias, id or inference profile) against the approved
list and the caller's permissions (allow-list, project, clearance, daily budgets: xpi.domain.access) of
the routing snapshot the classify step recorded, reserve the budgets, and pick the commercial region and
endpoint."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.workflow import WorkflowState
from xpi.observability import logger, tracer
from xpi.services.routing import route
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.budget_ledger)


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@contain_errors
@event_parser(model=WorkflowState)
def handler(event: WorkflowState, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    event.route = route(
        event,
        region=settings.commercial_region,
        endpoint=settings.bedrock_endpoint,
        budgets=dependencies.budget_ledger(),
        govcloud_region=settings.govcloud_region,
        govcloud_endpoint=settings.govcloud_bedrock_url,
    )
    event.timings["routed_at"] = datetime.now(UTC)
    return event.model_dump(mode="json", exclude_none=True)
