"""Scheduled (EventBridge, every minute): probe each egress path to commercial Bedrock (latency, errors,
TLS) and store its health, which the functions calling Bedrock read to choose a path and to fail back
(xpi.services.egress)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.observability import logger, metrics, tracer
from xpi.services.egress import check_paths

dependencies.preload(dependencies.path_health_check, dependencies.egress_paths_to_probe)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event is the schedule's (or a manual invoke's): nothing in it is read.
    probe, states = dependencies.path_health_check()
    return check_paths(dependencies.egress_paths_to_probe(), probe, states).model_dump()
