"""Scheduled (EventBridge): check the stack's live configuration as AWS Config managed rules would and
keep the run (pass/fail per check, the pass rate) where the compliance report reads it
(xpi.services.compliance)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.compliance import check_configuration

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.check_runs, dependencies.stack_configuration)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event is the schedule's (or a manual invoke's): nothing in it is read.
    run = check_configuration(
        dependencies.stack_configuration(), dependencies.check_runs(), datetime.now(UTC)
    )
    return {
        "checked_at": run.checked_at.isoformat(),
        "pass_rate": run.pass_rate,
        "checks": {check.check: check.status for check in run.checks},
    }
