"""Workflow step: inspect everything the request carries and apply the agency's policy.

Redacted text replaces the original in the workflow state, so only what policy allows crosses the
partition. Lineage gets categories and counts; matched values are never kept or logged.
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.classification import classify_segments
from xpi.domain.inspection import redact, segments_with_paths
from xpi.models.events import SECURITY_ALERT, SecurityAlertDetail
from xpi.models.workflow import Classification, WorkflowState
from xpi.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="request.request_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=WorkflowState)
def handler(event: WorkflowState, context: LambdaContext) -> dict[str, Any]:
    policy = dependencies.classification_policy()
    detectors = dependencies.extra_detectors(policy)
    model_id = dependencies.routing_config().resolve_alias(event.request.model)
    segments = [segment for _, segment in segments_with_paths(event.request)]
    assessment = classify_segments(segments, policy, model_id=model_id, extra_detectors=detectors)

    event.classification = Classification(
        decision=assessment.decision,
        categories=assessment.categories,
        findings=len(assessment.findings),
        security_alert=assessment.security_alert,
        reasons=assessment.reasons,
        classifier="xpi-rules/1" + "".join(f" + {d.name}" for d in detectors),
    )
    if assessment.decision == "redact":
        event.request = redact(event.request, assessment.redacted)
    event.timings["classified_at"] = datetime.now(UTC)
    metrics.add_metric(name=f"Decision{assessment.decision.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("classified", extra={"decision": assessment.decision, "categories": assessment.categories})
    if assessment.security_alert:
        dependencies.event_publisher().publish(
            SECURITY_ALERT,
            SecurityAlertDetail(
                request_id=event.request.request_id,
                caller_principal=event.source.principal,
                source=event.source.kind,
                categories=assessment.categories,
                decision=assessment.decision,
            ),
        )
    return event.model_dump(mode="json", exclude_none=True)
