"""Batch workflow, first step: validate the file and split it (streamed), status item with counts."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.batch import BatchObject
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import split
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_limits, dependencies.batch_objects, dependencies.batch_table)


@logger.inject_lambda_context(correlation_id_path="batch.batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = BatchObject.model_validate(event["batch"])
    result = split(
        batch,
        dependencies.batch_table(),
        dependencies.batch_objects(),
        dependencies.batch_limits(),
        datetime.now(UTC),
    )
    logger.info("batch split", extra=result.model_dump())
    # The wait's heartbeat (AwaitLines' HeartbeatSecondsPath): ASL takes no number from the template.
    return {**result.model_dump(mode="json"), "heartbeat_s": get_settings().batch_heartbeat_s}
