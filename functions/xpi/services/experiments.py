"""A/B experiments through the API: the caller's feedback on a request's answer, and an experiment's
results (xpi.domain.experiments) read from lineage's by-experiment index."""

import json
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from xpi.adapters.ports import LineageStore, PayloadStore
from xpi.domain.errors import (
    ExperimentNotFound,
    FeedbackNotAccepted,
    RequestInvalid,
    RequestNotFound,
    field_problems,
)
from xpi.domain.experiments import Observation, results, to_decimal
from xpi.domain.ownership import same_owner
from xpi.domain.routing import RoutingConfig
from xpi.models.api import (
    ExperimentResults,
    FeedbackBody,
    FeedbackRecorded,
    StopVerdict,
    VariantComparison,
    VariantResults,
)
from xpi.models.lineage import LineageFeedback, LineageItem
from xpi.observability import metrics

RESULTS_MAX_ITEMS = 50_000
FEEDBACK_FIELDS = frozenset(FeedbackBody.model_fields)


def _feedback_body(body: str) -> FeedbackBody:
    try:
        return FeedbackBody.model_validate_json(body or "{}")
    except ValidationError as exc:
        problems = field_problems(exc.errors(include_input=False, include_url=False), FEEDBACK_FIELDS)
        raise RequestInvalid("the feedback is not valid", problems=problems) from None


def _recorded(item: LineageItem, feedback: LineageFeedback) -> FeedbackRecorded:
    return FeedbackRecorded(
        request_id=item.request_id,
        score=feedback.score,
        comment_bytes=feedback.comment_bytes,
        at=feedback.at,
        experiment=item.experiment,
        variant=item.variant,
    )


def record_feedback(
    request_id: str,
    body: str,
    *,
    principal: str,
    now: datetime,
    lineage: LineageStore,
    payloads: PayloadStore,
) -> FeedbackRecorded:
    """POST /v1/requests/{id}/feedback: the request's own caller (any session of the role that sent it)
    rates a completed answer; anyone else gets the 404 of a missing request. A second rating replaces
    the first; the same rating again changes nothing. The comment is kept in the payload store
    (payloads/feedback/<id>), lineage only its size."""
    feedback_body = _feedback_body(body)
    item = lineage.get(request_id)
    if item is None or not same_owner(item.caller_principal, principal):
        raise RequestNotFound("no such request for this caller", request_id)
    if item.status != "COMPLETED":
        raise FeedbackNotAccepted(f"the request is {item.status}", request_id)
    comment = (feedback_body.comment or "").encode()
    previous = item.feedback
    if (
        previous is not None
        and not comment
        and (previous.score, previous.comment_bytes) == (feedback_body.score, 0)
    ):
        return _recorded(item, previous)  # the same rating again: nothing to write
    if comment:
        payloads.put(f"feedback/{request_id}", json.dumps({"comment": feedback_body.comment}).encode())
    feedback = LineageFeedback(
        score=feedback_body.score, comment_bytes=len(comment), at=now.isoformat(timespec="milliseconds")
    )
    if not lineage.record_feedback(request_id, feedback):
        raise FeedbackNotAccepted("the request is not completed", request_id)
    metrics.add_metric(name="FeedbackRecorded", unit=MetricUnit.Count, value=1)
    return _recorded(item, feedback)


def _observation(item: LineageItem) -> Observation:
    return Observation(
        variant=item.variant or "",
        status=item.status,
        latency_ms=item.latency_ms,
        cost_usd=to_decimal(item.estimated_cost_usd),
        score=item.feedback.score if item.feedback else None,
    )


def experiment_results(name: str, routing: RoutingConfig, lineage: LineageStore) -> ExperimentResults:
    """GET /v1/experiments/{name}/results: per variant figures, the significance tests and the stop
    rule's verdict, over every request the experiment assigned (up to RESULTS_MAX_ITEMS)."""
    experiment = next((e for e in routing.experiments if e.name == name), None)
    if experiment is None:
        raise ExperimentNotFound(f"no experiment '{name}' in the routing document in force")
    items = lineage.by_experiment(name, RESULTS_MAX_ITEMS + 1)
    truncated = len(items) > RESULTS_MAX_ITEMS
    found = results(experiment, (_observation(item) for item in items[:RESULTS_MAX_ITEMS]))
    return ExperimentResults(
        experiment=experiment.name,
        status=experiment.status,
        sticky=experiment.sticky,
        test="two-proportion z-test on positive feedback (score >= "
        f"{experiment.stop_rule.positive_score}), Bonferroni-corrected; Welch's t-test on latency",
        variants=[VariantResults(**vars(row)) for row in found.variants],
        leader=found.leader,
        comparisons=[VariantComparison(**vars(c)) for c in found.comparisons],
        stop_rule=experiment.stop_rule.model_dump(mode="json"),
        verdict=StopVerdict(
            decision=found.verdict.decision,
            winner=found.verdict.winner,
            reason=found.verdict.reason,
            summary=found.verdict.summary,
        ),
        items_read=min(len(items), RESULTS_MAX_ITEMS),
        truncated=truncated,
    )
