"""Workflow step: inspect everything the request carries and apply the agency's policy
(xpi.services.classification)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.workflow import WorkflowState
from xpi.observability import logger, metrics, tracer
from xpi.services.classification import classify

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(
    dependencies.event_publisher,
    dependencies.extra_detectors,
    dependencies.hash_key,
    dependencies.payload_store,
    dependencies.policy_in_force,
    dependencies.routing_in_force,
)


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=WorkflowState)
def handler(event: WorkflowState, context: LambdaContext) -> dict[str, Any]:
    policy, policy_version = dependencies.policy_in_force()
    routing, routing_version = dependencies.routing_in_force()
    state = classify(
        event,
        policy=policy,
        detectors=dependencies.extra_detectors(policy),
        routing=routing,
        events=dependencies.event_publisher(),
        versions=(policy_version, routing_version),
        payloads=dependencies.payload_store(),
        hash_key=dependencies.hash_key(),
    )
    return state.model_dump(mode="json", exclude_none=True)
