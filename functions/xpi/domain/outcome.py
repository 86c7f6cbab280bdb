"""The end of every request: its final status, lineage attributes and result event, from the state."""

import json
from datetime import datetime
from typing import Any

from xpi.models.events import (
    DETAIL_TYPE_BY_STATUS,
    EventCaller,
    EventClassification,
    EventError,
    EventModel,
    EventOutput,
    EventUsage,
    ResultDetail,
)
from xpi.models.workflow import FinalStatus, StepError, WorkflowState

MAX_ERROR_MESSAGE = 500


def final_status(state: WorkflowState) -> FinalStatus:
    if state.error is not None:
        return "FAILED"
    if state.classification is not None and state.classification.decision == "block":
        return "BLOCKED"
    if state.response is not None:
        return "COMPLETED"
    return "FAILED"


def describe_error(error: StepError) -> tuple[str, str]:
    """(code, message) of a step error: the Lambda error message when the cause carries one."""
    message = error.Cause or error.Error
    try:
        cause = json.loads(error.Cause or "")
        if isinstance(cause, dict) and isinstance(cause.get("errorMessage"), str):
            message = cause["errorMessage"]
    except json.JSONDecodeError:
        pass
    return error.Error, message[:MAX_ERROR_MESSAGE]


def error_of(state: WorkflowState) -> tuple[str, str] | None:
    if state.error is not None:
        return describe_error(state.error)
    if final_status(state) == "FAILED":
        return "Incomplete", "the workflow ended without a model response"
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
            resolved=state.route.model_id if state.route else None,
            region=state.route.region if state.route else None,
        ),
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
        )
        if response
        else None,
        error=EventError(code=error[0], message=error[1]) if error else None,
        reply=request.reply,
        timings={**state.timings, "completed_at": completed_at},
        lineage_key=request.request_id,
    )


def detail_type(detail: ResultDetail) -> str:
    return DETAIL_TYPE_BY_STATUS[detail.status]


def lineage_attributes(state: WorkflowState, detail: ResultDetail) -> dict[str, Any]:
    """Everything an auditor needs, and nothing of the payloads: hashes, categories, counts."""
    attributes: dict[str, Any] = {
        "status": detail.status,
        "caller_principal": state.source.principal,
        "source": state.source.kind,
        "source_reference": state.source.reference,
        "batch_id": state.source.batch_id,
        "project": state.request.caller.project,
        "cost_centre": state.request.caller.cost_centre,
        "model_requested": state.request.model,
        "request_sha256": state.claim.request_sha256,
        "steps": {name: moment.isoformat(timespec="milliseconds") for name, moment in detail.timings.items()},
        "completed_at": detail.timings["completed_at"].isoformat(timespec="milliseconds"),
    }
    if state.classification:
        attributes["classification"] = {
            "decision": state.classification.decision,
            "categories": state.classification.categories,
            "findings": state.classification.findings,
            "classifier": state.classification.classifier,
        }
    if state.route:
        attributes["model_id"] = state.route.model_id
        attributes["commercial_region"] = state.route.region
        attributes["commercial_endpoint"] = state.route.endpoint
    if state.response:
        attributes["response_sha256"] = state.response.output_sha256
        attributes["response_bytes"] = state.response.output_bytes
        attributes["output_s3_uri"] = state.response.output_s3_uri
        attributes["stop_reason"] = state.response.stop_reason
        attributes["credential_version"] = state.response.credential_version
        attributes["usage"] = state.response.usage.model_dump()
        attributes["estimated_cost_usd"] = str(state.response.estimated_cost_usd)
        attributes["latency_ms"] = state.response.latency_ms
    if detail.error:
        attributes["error"] = detail.error.model_dump()
    return {key: value for key, value in attributes.items() if value is not None}
