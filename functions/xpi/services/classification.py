"""The Classify step: inspect everything the request carries and apply the agency's policy for the
model it resolves to.

Redacted text replaces the original in the workflow state, so only what policy allows crosses the
partition. Lineage gets categories and counts; matched values are never kept or logged. A classified
marking also raises a Security Alert naming who sent what kind of content (never the content).
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import EventPublisher
from xpi.domain.classification import Detector, classify_segments
from xpi.domain.inspection import redact, segments_with_paths
from xpi.domain.policy import Policy
from xpi.domain.routing import RoutingConfig
from xpi.models.events import SECURITY_ALERT, SecurityAlertDetail
from xpi.models.workflow import Classification, WorkflowState
from xpi.observability import logger, metrics

RULES_CLASSIFIER = "xpi-rules/1"


def _now() -> datetime:
    return datetime.now(UTC)


def classify(
    state: WorkflowState,
    *,
    policy: Policy,
    detectors: Sequence[Detector],
    routing: RoutingConfig,
    events: EventPublisher,
    clock: Callable[[], datetime] = _now,
) -> WorkflowState:
    """The state with its classification (and, when the decision is redact, its redacted request)."""
    # Policy rules name model ids, so an alias is judged as the model it resolves to.
    model_id = routing.resolve_alias(state.request.model)
    segments = [segment for _, segment in segments_with_paths(state.request)]
    assessment = classify_segments(segments, policy, model_id=model_id, extra_detectors=detectors)

    state.classification = Classification(
        decision=assessment.decision,
        categories=assessment.categories,
        findings=len(assessment.findings),
        security_alert=assessment.security_alert,
        reasons=assessment.reasons,
        classifier=RULES_CLASSIFIER + "".join(f" + {d.name}" for d in detectors),
    )
    if assessment.decision == "redact":
        state.request = redact(state.request, assessment.redacted)
    state.timings["classified_at"] = clock()
    metrics.add_metric(name=f"Decision{assessment.decision.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("classified", extra={"decision": assessment.decision, "categories": assessment.categories})
    if assessment.security_alert:
        events.publish(
            SECURITY_ALERT,
            SecurityAlertDetail(
                request_id=state.request.request_id,
                caller_principal=state.source.principal,
                source=state.source.kind,
                categories=assessment.categories,
                decision=assessment.decision,
            ),
        )
    return state
