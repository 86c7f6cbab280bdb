"""Scheduled (EventBridge, every few minutes): end the requests left ACCEPTED past the inference
workflow's longest possible run as FAILED, with their event, once (xpi.services.reaping).

Invoked by an operator with `{"takeover_region": "<region>"}` (`xpi regions takeover`): end the
requests that region, declared lost, left unended (xpi.services.reaping.take_over)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.reaping import TakeoverRequest
from xpi.observability import logger, metrics, tracer
from xpi.services.reaping import reap, take_over

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.reaper)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule's event (or a manual invoke's) is not read; an operator's takeover names the region.
    if "takeover_region" in event:
        takeover = TakeoverRequest.model_validate(event)
        return take_over(dependencies.reaper(), takeover.takeover_region, datetime.now(UTC)).model_dump()
    return reap(dependencies.reaper(), datetime.now(UTC)).model_dump()
