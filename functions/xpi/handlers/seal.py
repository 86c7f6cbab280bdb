"""Scheduled (EventBridge): chain each closed day's final lineage records and sign the day's digest
(xpi.services.sealing)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.sealing import seal

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.lineage_sealer)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event is the schedule's (or a manual invoke's): nothing in it is read.
    return seal(dependencies.lineage_sealer(), datetime.now(UTC)).model_dump()
