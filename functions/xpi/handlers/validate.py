"""Workflow step 1: read the request the input points at, validate it and prepare its lineage claim."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.workflow import ExecutionInput
from xpi.observability import logger, tracer
from xpi.services.validation import validate
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.hash_key, dependencies.payload_store)


@logger.inject_lambda_context(correlation_id_path="execution")
@tracer.capture_lambda_handler(capture_response=False)
@contain_errors
@event_parser(model=ExecutionInput)
def handler(event: ExecutionInput, context: LambdaContext) -> dict[str, Any]:
    state = validate(
        event,
        payloads=dependencies.payload_store(),
        hash_key=dependencies.hash_key(),
        now=datetime.now(UTC),
        retention_days=get_settings().lineage_retention_days,
    )
    return state.model_dump(mode="json", exclude_none=True)
