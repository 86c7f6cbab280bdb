"""The end of every request: its final status, lineage item and result event, from the state."""

import json
from datetime import datetime

from xpi.domain.access import Refusal
from xpi.domain.errors import (
    BedrockAnswerLost,
    PayloadLimitExceeded,
    RequestInvalid,
    ValidationUnavailable,
    XpiError,
    known_code,
    message_for,
    rendered_messages,
)
from xpi.models.events import (
    DETAIL_TYPE_BY_STATUS,
    EventCaller,
    EventClassification,
    EventError,
    EventExperiment,
    EventModel,
    EventOutput,
    EventUsage,
    ResultDetail,
)
from xpi.models.lineage import (
    LineageCache,
    LineageClassification,
    LineageError,
    LineageHop,
    LineageItem,
    LineageUsage,
)
from xpi.models.workflow import FinalStatus, StepError, WorkflowState

MAX_ERROR_MESSAGE = 500
# Step Functions' own name for a state over its payload limit (a terminal error States.ALL does not
# catch: the ASL catches it by name and ends the request through RecordOutcome).
STATES_DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"


def final_status(state: WorkflowState) -> FinalStatus:
    if state.error is not None:
        return "FAILED"
    if state.classification is not None and state.classification.decision == "block":
        return "BLOCKED"
    if state.response is not None:
        return "COMPLETED"
    return "FAILED"


def describe_error(error: StepError) -> tuple[str, str]:
    """(code, message) of a step error. The code is the error's name when xpi reports it (else
    InternalError); the message is that code's fixed message, or the Lambda error's message only when it
    is one of that code's fixed renderings (a Bedrock error naming Bedrock's code). A cause's text is
    never copied: it may quote the request or Bedrock's answer."""
    if error.Error == STATES_DATA_LIMIT_EXCEEDED:
        return PayloadLimitExceeded.code, message_for(PayloadLimitExceeded.code)
    code = known_code(error.Error)
    try:
        cause = json.loads(error.Cause or "")
    except json.JSONDecodeError:
        cause = None
    reported = cause.get("errorMessage") if isinstance(cause, dict) else None
    if code == error.Error and reported in rendered_messages(code):
        return code, str(reported)
    return code, message_for(code)


def rejection_error(error: StepError) -> XpiError:
    """Why the workflow's first step did not accept its input. Only its own verdict (RequestInvalid) says
    the request is invalid; anything else (Lambda.ServiceException, States.Timeout, a runtime crash) is
    the platform failing before the request was judged, reported as ValidationUnavailable."""
    if error.Error == RequestInvalid.code:
        return RequestInvalid("the Validate step judged the request invalid")
    return ValidationUnavailable(f"the Validate step failed with {known_code(error.Error)}")


def error_of(state: WorkflowState) -> tuple[str, str] | None:
    if state.error is not None:
        return describe_error(state.error)
    if final_status(state) == "FAILED":
        return "Incomplete", message_for("Incomplete")
    return None


def result_detail(state: WorkflowState, completed_at: datetime) -> ResultDetail:
    status = final_status(state)
    request, source, response = state.request, state.source, state.response
    error = error_of(state)
    return ResultDetail(
        request_id=request.request_id,
        status=status,
        source=source.kind,
        source_reference=source.reference,
        batch_id=source.batch_id,
        caller=EventCaller(
            principal=source.principal,
            project=request.caller.project,
            cost_centre=request.caller.cost_centre,
            tags=request.caller.tags,
        ),
        model=EventModel(
            requested=request.model,
            resolved=_answered(state)[0],
            region=_answered(state)[1] if _answered(state)[2] != "govcloud" else None,
            egress_path=response.egress_path if response else None,
        ),
        experiment=EventExperiment(name=state.route.experiment, variant=state.route.variant)
        if state.route and state.route.experiment and state.route.variant
        else None,
        classification=EventClassification(
            decision=state.classification.decision, categories=state.classification.categories
        )
        if state.classification
        else None,
        output=EventOutput(
            text=response.output_text,
            body=response.output_body,
            s3_uri=response.output_s3_uri,
            bytes=response.output_bytes,
            sha256=response.output_sha256,
            stop_reason=response.stop_reason,
        )
        if response and status == "COMPLETED"
        else None,
        usage=EventUsage(
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            estimated_cost_usd=response.estimated_cost_usd,
            cache_read_input_tokens=response.usage.cache_read_input_tokens or None,
            cache_write_input_tokens=response.usage.cache_write_input_tokens or None,
            cache=response.cache.status if response.cache else None,
            saved_usd=response.cache.saved_usd if response.cache and response.cache.status == "hit" else None,
            billing="batch" if response.billing == "batch" else None,
        )
        if response
        else None,
        error=EventError(code=error[0], message=error[1]) if error else None,
        reply=request.reply,
        timings={**state.timings, "completed_at": completed_at},
        lineage_key=request.request_id,
    )


def answer_lost(state: WorkflowState) -> bool:
    """Whether the request ended on a Bedrock call whose answer never came back (possibly billed)."""
    return state.error is not None and state.error.Error == BedrockAnswerLost.__name__


def own_completion(state: WorkflowState, status: FinalStatus, current: LineageItem | None) -> datetime | None:
    """When the lineage item became final, if it did with this execution's own outcome: written by this
    execution (its token) with the status it computes now. A retried RecordOutcome's conditional write
    fails on such an item, yet its event is still owed; an item another writer made final (a late
    duplicate, say) gives None."""
    if state.execution is None or current is None or current.completed_at is None:
        return None
    if current.recorded_by != state.execution or current.status != status:
        return None
    return datetime.fromisoformat(current.completed_at)


def detail_type(detail: ResultDetail) -> str:
    return DETAIL_TYPE_BY_STATUS[detail.status]


# The error codes the fine-grained permissions refuse with, and the refusal lineage records for each.
ACCESS_REFUSALS: dict[str, str] = {
    "ProjectNotAllowed": Refusal.PROJECT,
    "ModelNotAllowedForCaller": Refusal.MODEL,
    "ClearanceRefused": Refusal.CLEARANCE,
    "BudgetExhausted": Refusal.BUDGET,
}


def _answered(state: WorkflowState) -> tuple[str | None, str | None, str | None, str | None]:
    """Where the request was answered (or would have been): model, region, partition, endpoint; the
    route's first hop unless a fallback answered."""
    route, response = state.route, state.response
    if route is None:
        return None, None, None, None
    hop = response.answered_by if response and response.answered_by else route
    partition = hop.partition or "commercial" if hop.partition or route.strategy or route.fallbacks else None
    return hop.model_id, hop.region, partition, hop.endpoint


def lineage_item(state: WorkflowState, detail: ResultDetail) -> LineageItem:
    """The request's final lineage item: everything an auditor needs, and nothing of the payloads
    (hashes, categories, counts). Its first-seen fields are the claim's."""
    classification, route, response, config = state.classification, state.route, state.response, state.config
    model_id, region, partition, endpoint = _answered(state)
    return LineageItem(
        policy_revision=config.policy_revision if config else None,
        policy_sha256=config.policy_sha256 if config else None,
        routing_revision=config.routing_revision if config else None,
        routing_sha256=config.routing_sha256 if config else None,
        config_fallback=config.config_fallback if config else None,
        request_id=state.request.request_id,
        status=detail.status,
        created_at=state.claim.created_at,
        day=state.claim.day,
        expires_at=int(state.claim.expires_at),
        caller_principal=state.source.principal,
        source=state.source.kind,
        source_reference=state.source.reference,
        batch_id=state.source.batch_id,
        project=state.request.caller.project,
        cost_centre=state.request.caller.cost_centre,
        model_requested=state.request.model,
        request_hmac=state.claim.request_hmac,
        steps={name: moment.isoformat(timespec="milliseconds") for name, moment in detail.timings.items()},
        completed_at=detail.timings["completed_at"].isoformat(timespec="milliseconds"),
        classification=LineageClassification(
            decision=classification.decision,
            categories=classification.categories,
            findings=classification.findings,
            classifier=classification.classifier,
        )
        if classification
        else None,
        model_id=model_id,
        commercial_region=region if partition != "govcloud" else None,
        commercial_endpoint=endpoint if partition != "govcloud" else None,
        partition=partition,
        route_strategy=route.strategy if route else None,
        experiment=route.experiment if route else None,
        variant=route.variant if route and route.experiment else None,
        route_hops=[LineageHop(**hop.model_dump()) for hop in response.hops]
        if response and response.hops
        else None,
        response_hmac=response.output_hmac if response else None,
        response_bytes=response.output_bytes if response else None,
        output_s3_uri=response.output_s3_uri if response else None,
        stop_reason=response.stop_reason if response else None,
        credential_version=response.credential_version if response else None,
        credential_type=response.credential_type if response else None,
        credential_age_s=response.credential_age_s if response else None,
        egress_path=response.egress_path if response else None,
        usage=LineageUsage(
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cache_read_input_tokens=response.usage.cache_read_input_tokens or None,
            cache_write_input_tokens=response.usage.cache_write_input_tokens or None,
        )
        if response
        else None,
        cache=LineageCache(
            status=response.cache.status,
            ttl_s=response.cache.ttl_s,
            saved_usd=str(response.cache.saved_usd) if response.cache.status == "hit" else None,
            reason=response.cache.reason,
        )
        if response and response.cache
        else None,
        # DynamoDB takes no floats: the cost is kept as its decimal string.
        estimated_cost_usd=str(response.estimated_cost_usd) if response else None,
        latency_ms=response.latency_ms if response else None,
        error=LineageError(code=detail.error.code, message=detail.error.message) if detail.error else None,
        recorded_by=state.execution,
        bedrock_calls_unanswered=1 if answer_lost(state) else None,
        access_refusal=ACCESS_REFUSALS.get(detail.error.code) if detail.error else None,
    )
