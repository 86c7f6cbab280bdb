"""HTTP for the functions behind API Gateway (REST, AWS_IAM): the caller's principal, and every error
answered in one shape, {"error": {"code", "message", "request_id"?, "problems"?}} (api/openapi.yaml),
with the code's fixed message (xpi.domain.errors): nothing of the request's text, of an exception's
text or of Bedrock's answer. The API function (handlers/api.py) and the sync invoke function
(handlers/api_invoke.py) answer through it, so both speak the same HTTP."""

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from pydantic import BaseModel

from xpi.domain.errors import (
    BatchNotFound,
    CallerUnidentified,
    ExperimentNotFound,
    FeedbackNotAccepted,
    InvocationTimeout,
    PolicyInvalid,
    Problem,
    RequestExists,
    RequestInvalid,
    RequestNotFound,
    WorkflowWithoutResult,
    XpiError,
    message_for,
)
from xpi.models.api_errors import ErrorAnswer, ErrorBody, ErrorCode, ProblemInfo
from xpi.observability import logger

# The domain's errors as HTTP answers (an error of a subclass answers as its nearest listed class).
HTTP_ANSWERS: dict[type[XpiError], tuple[int, ErrorCode]] = {
    RequestInvalid: (400, "RequestInvalid"),
    PolicyInvalid: (400, "PolicyInvalid"),
    RequestNotFound: (404, "RequestNotFound"),
    BatchNotFound: (404, "BatchNotFound"),
    ExperimentNotFound: (404, "ExperimentNotFound"),
    FeedbackNotAccepted: (409, "FeedbackNotAccepted"),
    RequestExists: (409, "RequestExists"),
    WorkflowWithoutResult: (500, "InternalError"),
    CallerUnidentified: (500, "InternalError"),
    InvocationTimeout: (504, "InvocationTimeout"),
}


def principal(app: APIGatewayRestResolver) -> str:
    """The IAM principal API Gateway verified: what lineage records and what decides who reads what."""
    identity = app.current_event.request_context.identity
    caller = identity.user_arn or identity.caller
    if not caller:  # API Gateway with AWS_IAM always sets it; anything else is misconfiguration
        raise CallerUnidentified("the request carries no IAM identity")
    return caller


def json_response(status: int, body: BaseModel | dict[str, Any]) -> Response[str]:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def error_response(
    status: int, code: ErrorCode, request_id: str | None = None, problems: tuple[Problem, ...] = ()
) -> Response[str]:
    body = ErrorBody(
        code=code,
        message=message_for(code),
        request_id=request_id or None,
        problems=[ProblemInfo(location=p.location, type=p.type) for p in problems] or None,
    )
    return json_response(status, ErrorAnswer(error=body).model_dump(mode="json", exclude_none=True))


def answer_errors(app: APIGatewayRestResolver) -> None:
    """Register the one error shape on `app`: domain errors by HTTP_ANSWERS, unknown routes 404,
    anything else 500 InternalError."""

    def internal_error(error: Exception) -> Response[str]:
        # Nothing of the error's text, in the answer or the log (an exception's text and traceback can
        # quote the request): the log line has the code, the error's class and API Gateway's request id.
        request_id = app.current_event.request_context.request_id
        logger.error(
            "unhandled error in the API",
            extra={
                "error_code": "InternalError",
                "error_class": type(error).__name__,
                "api_request_id": request_id,
            },
        )
        return error_response(500, "InternalError", request_id)

    @app.exception_handler(XpiError)  # type: ignore[untyped-decorator]
    def domain_error(error: XpiError) -> Response[str]:
        answer = next((HTTP_ANSWERS[cls] for cls in type(error).__mro__ if cls in HTTP_ANSWERS), None)
        if answer is None:
            return internal_error(error)
        status, code = answer
        return error_response(status, code, error.request_id, error.problems)

    @app.not_found
    def not_found(_: NotFoundError) -> Response[str]:
        return error_response(404, "RouteNotFound")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def unexpected(error: Exception) -> Response[str]:
        return internal_error(error)
