"""Queue workflow step: one request of an SQS batch, validated, claimed, classified, routed and sent to
commercial Bedrock in process (xpi.services.queue_processing); the record step makes it final.

Answers `{"owned": true, "state": <the workflow state>}` for the record step, or `{"owned": false,
"request_id": ...}` when another execution holds the request (the ASL's Choice reads `owned`)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.queue import NotOwned, QueueTask
from xpi.observability import logger, metrics, tracer
from xpi.services.queue_processing import RetryBudget, process
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.judgement, dependencies.queue_ports)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=QueueTask)
def handler(event: QueueTask, context: LambdaContext) -> dict[str, Any]:
    budget = RetryBudget(
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        # another attempt only while one Bedrock call and the way out still fit in the function's time
        reserve_s=get_settings().bedrock_timeout_s + 10,
    )
    outcome = process(event, ports=dependencies.queue_ports(), judge=dependencies.judgement, budget=budget)
    if isinstance(outcome, NotOwned):
        return {"owned": False, "request_id": outcome.request_id}
    return {"owned": True, "state": outcome.model_dump(mode="json", exclude_none=True)}
