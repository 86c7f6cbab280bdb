"""Batch workflow, reconciliation step (after the wait's heartbeat timeout): recount the batch from its
line workflows, finish it when every line is done, else wait again (xpi.services.reconciliation)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.reconciliation import Reconciled, reconcile

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_reconciler)


@logger.inject_lambda_context(correlation_id_path="batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    previous = (event.get("state") or {}).get("reconcile")
    result = reconcile(
        str(event["batch_id"]),
        Reconciled.model_validate(previous) if isinstance(previous, dict) else None,
        dependencies.batch_reconciler(),
    )
    return result.model_dump()
