"""Batch workflow, waiting step (lambda:invoke.waitForTaskToken): keep the task token, start the
first window of line workflows. The workflow then waits, costing no transitions, until the last
line's result resumes it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.batch import arm

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_table, dependencies.batch_workflow, dependencies.line_starter)


@logger.inject_lambda_context(correlation_id_path="batch_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = arm(
        str(event["batch_id"]),
        str(event["task_token"]),
        dependencies.batch_table(),
        dependencies.line_starter(),
        dependencies.batch_workflow(),
    )
    logger.info("first window started", extra={"batch_id": event["batch_id"], "started": started})
    return {"started": started}
