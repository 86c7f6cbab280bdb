"""The admin function behind API Gateway's /v1/admin/* routes (REST, AWS_IAM, MFA in the API's resource
policy): thin routes over the admin use cases of xpi.services.api. A function of its own, so that a grant
of lambda:InvokeFunction on the API function reaches no admin action, and only this function's role may
write the policy and routing parameters and the signing secret. Errors in the API's one shape.

A direct invoke of this function can claim any requestContext: what the function can check on its own
(its stack's account and stage, an API id, the admin principals) it checks, and every change raises a
Security Alert carrying what the event claimed (docs/security.md, "Admin controls").
"""

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.domain.errors import CallerUnidentified, PolicyInvalid, XpiError
from xpi.models.api import AdminResult
from xpi.models.api_errors import ErrorAnswer, ErrorBody, ErrorCode
from xpi.observability import logger, metrics, tracer
from xpi.services import api
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.admin_actions, dependencies.event_publisher)

app = APIGatewayRestResolver()


def _admin_call() -> api.AdminCall:
    """The admin caller as the event states it, with what the function knows on its own (its stack's
    account and stage, from its configuration) to check it against."""
    context = app.current_event.raw_event.get("requestContext") or {}
    identity = context.get("identity") or {}
    principal = identity.get("userArn") or identity.get("caller")
    if not principal:  # API Gateway with AWS_IAM always sets it; anything else is misconfiguration
        raise CallerUnidentified("the request carries no IAM identity")
    settings = get_settings()
    return api.AdminCall(
        principal=str(principal),
        request_id=str(context.get("requestId") or ""),
        account_id=context.get("accountId"),
        api_id=context.get("apiId"),
        stage=context.get("stage"),
        own_account_id=settings.api_account_id or app.lambda_context.invoked_function_arn.split(":")[4],
        expected_stage=settings.api_stage,
        admin_patterns=tuple(p.strip() for p in settings.api_admin_principals.split(",") if p.strip()),
    )


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def _answer(result: AdminResult) -> Response[str]:
    return _json(200, result.model_dump(mode="json"))


def _error(status: int, code: ErrorCode, message: str, request_id: str | None = None) -> Response[str]:
    answer = ErrorAnswer(error=ErrorBody(code=code, message=message, request_id=request_id or None))
    return _json(status, answer.model_dump(mode="json", exclude_none=True))


def _replace(kind: api.ConfigDocument) -> Response[str]:
    result = api.replace_config(
        kind,
        app.current_event.body or "",
        _admin_call(),
        admin=dependencies.admin_actions(),
        events=dependencies.event_publisher(),
        now=datetime.now(UTC),
    )
    return _answer(result)


@app.put("/v1/admin/policy")
def put_policy() -> Response[str]:
    return _replace("policy")


@app.put("/v1/admin/routing")
def put_routing() -> Response[str]:
    return _replace("routing")


@app.post("/v1/admin/dlq/redrive")
def redrive() -> Response[str]:
    return _answer(api.redrive(_admin_call(), dependencies.admin_actions(), dependencies.event_publisher()))


@app.exception_handler(PolicyInvalid)  # type: ignore[untyped-decorator]
def _invalid(error: PolicyInvalid) -> Response[str]:
    return _error(400, "PolicyInvalid", error.message)


@app.exception_handler(XpiError)  # type: ignore[untyped-decorator]
def _domain_error(error: XpiError) -> Response[str]:
    return _internal_error(error)


@app.not_found
def _not_found(_: NotFoundError) -> Response[str]:
    event = app.current_event
    return _error(404, "RouteNotFound", f"no route {event.http_method} {event.path}")


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(error: Exception) -> Response[str]:
    return _internal_error(error)


def _internal_error(error: Exception) -> Response[str]:
    """A refused admin event answers as the API's internal error: its message, never a hint of which
    check failed (the Security Alert and the log say that)."""
    if isinstance(error, XpiError):
        logger.warning("admin call failed", extra={"error": type(error).__name__})
        message = error.message
    else:
        logger.exception("unhandled error in the admin function")
        message = f"internal error ({type(error).__name__})"
    return _error(500, "InternalError", message, app.current_event.request_context.request_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
