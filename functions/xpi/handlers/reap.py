"""Scheduled (EventBridge, every few minutes): end the requests left ACCEPTED past the inference
workflow's longest possible run as FAILED, with their event, once (xpi.services.reaping)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.reaping import reap

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.reaper)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event is the schedule's (or a manual invoke's): nothing in it is read.
    return reap(dependencies.reaper(), datetime.now(UTC)).model_dump()
