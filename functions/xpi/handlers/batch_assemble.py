"""Batch workflow, last steps: assemble the results file (streamed) and shape `Batch Completed`; or,
on the failure path, record why the batch failed and shape `Batch Failed`."""

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi.handlers.batch_wiring import objects, table
from xpi.models.batch import BatchObject
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import assemble, fail


def _reason(error: dict[str, Any]) -> str:
    """A Catch's $.error: Lambda errors carry {"errorMessage": ...} as their Cause."""
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        parsed = None
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return f"{error.get('Error', 'Error')}: {message or cause or 'no cause given'}"


@logger.inject_lambda_context(correlation_id_path="batch.batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = BatchObject.model_validate(event["batch"])
    now = datetime.now(UTC)
    if "error" in event:
        summary = fail(batch, _reason(event["error"]), table(), now)
        logger.warning("batch failed", extra={"batch_id": batch.batch_id, "reason": summary.reason})
    else:
        summary = assemble(batch, table(), objects(), now)
        logger.info("batch assembled", extra={"batch_id": batch.batch_id, "total": summary.total})
    return summary.model_dump(mode="json", exclude_none=True)
