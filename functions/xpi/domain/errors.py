"""Errors whose class names are the workflow's error names (Lambda reports `errorType` = class name,
and the ASL's Retry and Catch match on it), and the errors the API's use cases raise (the API handler
alone maps them to HTTP).

An error carries no content. What leaves the process (lineage, result events, API answers, the Lambda
error Step Functions records, log lines) is its code and that code's fixed message from `MESSAGES`;
a request error may add the field locations and pydantic error types of the problems (`Problem`),
never an input value. Bedrock's own error is reduced to its error code. The `reason` a raise site
gives is for the reader of that code and its tests: it is never rendered, stored or logged.
"""

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

# Every code xpi reports, with the one message it is reported with.
MESSAGES: dict[str, str] = {
    "InternalError": "an internal error occurred",
    "Incomplete": "the workflow ended without a model response",
    "RequestInvalid": "the request is not a valid inference request",
    "ValidationUnavailable": "the request could not be validated for a platform reason; send it again",
    "ModelNotApproved": "the requested model is not on the approved list",
    "ModelNotAllowedForCaller": "the requested model is not allowed for this caller",
    "ProjectNotAllowed": "the caller does not act for the project the request names",
    "ClearanceRefused": "the request carries content this caller is not cleared to send to this model",
    "BudgetExhausted": "the caller's or project's budget for the day does not cover this request",
    "BedrockThrottled": "commercial Bedrock throttled the request",
    "QuotaExhausted": "the request was held back within the commercial Bedrock quota; it was not sent",
    "BedrockUnavailable": "commercial Bedrock was unavailable",
    "BedrockRejected": "commercial Bedrock rejected the request",
    "CredentialsRejected": "commercial Bedrock rejected the commercial credentials",
    "CredentialsUnavailable": "the commercial credentials could not be read",
    "CredentialRotationFailed": "the commercial credentials could not be rotated",
    "ClassificationMismatch": "the payload is not the one the classification allowed",
    "ConfigSnapshotInvalid": "the configuration snapshot is missing or does not match its hash",
    "HashKeyUnavailable": "the stack's hash key could not be read",
    "PayloadMismatch": "the stored request is not the one its reference describes",
    "PayloadLimitExceeded": "a workflow step's state exceeded the Step Functions payload limit",
    "RedriveUnattributed": "a redriven message whose original sender is unknown",
    "RequestExists": "a request with this request_id exists already",
    "RequestNotFound": "no such request",
    "BatchNotFound": "no such batch",
    "ExperimentNotFound": "no such experiment",
    "FeedbackNotAccepted": "only a completed request can be rated",
    "BatchInvalid": "the file is not a valid batch",
    "BatchStalled": "no line of the batch finished for too long; the batch was given up",
    "InvocationTimeout": "no result within the synchronous wait; the request goes on",
    "RequestAbandoned": "the request's workflow ended without an outcome; send it again",
    "RegionLost": "the request's region was lost before it ended; send it again",
    "RequestNotProcessed": "the request's processing step did not run its course; send it again",
    "PolicyInvalid": "the policy does not validate",
    "RouteNotFound": "no such route",
    "MethodNotAllowed": "method not allowed",
    # Step Functions' and Lambda's own error names, as a Catch reports them.
    "States.Timeout": "a workflow step timed out",
    "States.TaskFailed": "a workflow step failed",
    "States.Runtime": "the workflow failed at run time",
    "States.HeartbeatTimeout": "a workflow step stopped reporting",
    "States.DataLimitExceeded": "the request exceeded a workflow data limit",
    "States.Permissions": "a workflow step was not permitted",
    "Lambda.ServiceException": "the Lambda service failed",
    "Lambda.AWSLambdaException": "the Lambda service failed",
    "Lambda.SdkClientException": "the Lambda service could not be reached",
    "Lambda.TooManyRequestsException": "the Lambda service throttled a workflow step",
    "Lambda.Unknown": "a workflow step failed for an unknown reason",
    "Sandbox.Timedout": "a workflow step timed out",
    "Runtime.ExitError": "a workflow step exited unexpectedly",
}

# Bedrock's error codes, the only part of a Bedrock error xpi keeps; any other answers as "Unknown".
BEDROCK_CODES = frozenset(
    {
        "AccessDeniedException",
        "ConflictException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "InternalServerException",
        "InvalidSignatureException",
        "ModelErrorException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "ModelTimeoutException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "ServiceUnavailableException",
        "ThrottlingException",
        "TooManyRequestsException",
        "UnrecognizedClientException",
        "ValidationException",
        "Unknown",
    }
)


# Why a batch file is refused: fixed phrases (never the file's content), shown after the fixed message.
BATCH_PROBLEMS = frozenset(
    {
        "not a JSONL file",
        "not under the uploader's prefix",
        "empty",
        "over the size limit",
        "over the line limit",
        "not JSONL",
        "not a readable gzip file",
        "invalid defaults",
        "results incomplete",
    }
)


def details_of(code: str) -> frozenset[str]:
    """The fixed phrases an error of this code may name after its message (Bedrock's error code for a
    Bedrock error, what is wrong with a batch file); anything else is never rendered."""
    if code.startswith(("Bedrock", "Credentials")):
        return BEDROCK_CODES
    if code == "BatchInvalid":
        return BATCH_PROBLEMS
    return frozenset()


def message_for(code: str) -> str:
    """The fixed message of a code (an unknown code answers as an internal error)."""
    return MESSAGES.get(code, MESSAGES["InternalError"])


# Error names the workflow tells apart (its Retry and Catch) that callers see as another code.
REPORTED_AS: dict[str, str] = {
    "BedrockAnswerLost": "BedrockUnavailable",
    "InvocationInProgress": "BedrockUnavailable",
}


def known_code(code: str) -> str:
    """`code` when xpi reports it (or the code an error name is reported as), else InternalError (an
    unexpected exception's class name)."""
    return code if code in MESSAGES else REPORTED_AS.get(code, "InternalError")


def bedrock_code(code: object) -> str:
    return code if isinstance(code, str) and code in BEDROCK_CODES else "Unknown"


def rendered_messages(code: str) -> frozenset[str]:
    """Every message an error of this code can carry: its fixed message, and for a Bedrock error that
    message naming one of Bedrock's codes. A reader of a Lambda error's cause keeps a message only when
    it is one of these."""
    fixed = message_for(code)
    return frozenset({fixed, *(f"{fixed} ({detail})" for detail in details_of(code))})


def safe_message(code: str, message: str) -> str:
    """`message` when it is one of the code's renderings, else the code's fixed message (a lineage item
    written before errors carried no content may hold a raw message)."""
    return message if message in rendered_messages(code) else message_for(code)


class Problem(NamedTuple):
    """One problem with a request: where (field names and positions only) and what kind (pydantic's
    error type, e.g. string_too_long)."""

    location: str
    type: str


_ERROR_TYPE = re.compile(r"^[a-z_]{1,64}$")


def field_problems(
    errors: Iterable[Any], field_names: frozenset[str], limit: int = 10
) -> tuple[Problem, ...]:
    """pydantic's errors reduced to locations and types. A location part that is not one of the model's
    field names (a dict key, a tag name: the caller's own text) becomes `*`; input and msg are dropped."""
    problems = []
    for error in list(errors)[:limit]:
        parts = [
            str(part) if isinstance(part, int) or part in field_names else "*"
            for part in error.get("loc", ())
        ]
        kind = error.get("type")
        problems.append(
            Problem(
                ".".join(parts) or "request",
                kind if isinstance(kind, str) and _ERROR_TYPE.match(kind) else "invalid",
            )
        )
    return tuple(problems)


class XpiError(Exception):
    """Base of every error xpi distinguishes; `code` is what events, lineage and the API show, with its
    fixed `message`. `str(error)` is that message (it is what Lambda reports to Step Functions and logs)."""

    code = "InternalError"

    def __init__(
        self,
        reason: str = "",
        request_id: str | None = None,
        *,
        problems: tuple[Problem, ...] = (),
        bedrock_code: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = reason  # for the raise site's reader and tests only: may name input, never rendered
        self.request_id = request_id  # the request the error is about, when an answer should name it
        self.problems = problems
        self.bedrock_code = bedrock_code
        named = bedrock_code or detail
        fixed = message_for(self.code)
        self.message = f"{fixed} ({named})" if named in details_of(self.code) else fixed
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InternalError(XpiError):
    """An unexpected exception, reduced to this (its class is logged, its text never)."""


class AwsUnavailable(XpiError):
    """An AWS API the step needs (DynamoDB, S3, Secrets Manager, ...) answered 5xx or throttled, or could
    not be reached, past the SDK's own retries: transient, retried by the workflow like Lambda's own
    faults; reported as InternalError when the retries run out."""


class BatchStalled(XpiError):
    """The batch workflow's reconciliation found no line finished for its whole allowance of rounds."""

    code = "BatchStalled"


class RequestInvalid(XpiError):
    code = "RequestInvalid"


class ValidationUnavailable(XpiError):
    """The workflow's first step failed for a platform reason (Lambda service error, timeout, crash):
    the request was never judged, so it must not be reported as invalid. Sending it again may succeed."""

    code = "ValidationUnavailable"


class RequestNotProcessed(XpiError):
    """The queue workflow's process step never ran its course for the request (Lambda refused or
    throttled the function for good, its runtime never started, or it died on every attempt): the
    workflow answers it itself, with the answer its consumer prepared when it started the batch."""

    code = "RequestNotProcessed"


class ModelNotApproved(XpiError):
    code = "ModelNotApproved"


class ModelNotAllowedForCaller(XpiError):
    code = "ModelNotAllowedForCaller"


class ProjectNotAllowed(XpiError):
    code = "ProjectNotAllowed"


class ClearanceRefused(XpiError):
    code = "ClearanceRefused"


class BudgetExhausted(XpiError):
    code = "BudgetExhausted"


class BedrockThrottled(XpiError):
    """Retried by the workflow with long, jittered backoff."""

    code = "BedrockThrottled"


class QuotaExhausted(XpiError):
    """xpi's own pacer found the model's quota bucket empty for longer than the function may wait:
    nothing was sent to Bedrock. Retried by the workflow with backoff, like a throttle."""

    code = "QuotaExhausted"


class BedrockUnavailable(XpiError):
    """Transient: timeouts, 5xx, model not ready. Retried by the workflow."""

    code = "BedrockUnavailable"


class BedrockUnreachable(BedrockUnavailable):
    """Connecting to commercial Bedrock failed (refused, a connect timeout, the TLS handshake): nothing
    was sent, so another network path (or the workflow's retry) cannot be a second paid call. Reported
    as BedrockUnavailable."""


class BedrockAnswerLost(BedrockUnavailable):
    """The request reached Bedrock but its answer did not come back (a read timeout, a connection
    closed mid-answer): Bedrock may have answered and billed it. Never retried (a retry would be a
    second paid call); lineage counts the unanswered call. Reported as BedrockUnavailable."""


class InvocationInProgress(BedrockUnavailable):
    """The invoke step's idempotency record says an earlier attempt for this request is still running
    (or was killed mid-call and its record has not expired yet). Retried by the workflow after the
    record's expiry; reported as BedrockUnavailable when the retries run out."""


class BedrockRejected(XpiError):
    """Permanent: validation errors, unknown model, access denied. Not retried."""

    code = "BedrockRejected"


class CredentialsRejected(XpiError):
    """Bedrock refused the commercial credentials even after a fresh read of the secret."""

    code = "CredentialsRejected"


class CredentialsUnavailable(XpiError):
    code = "CredentialsUnavailable"


class CredentialRotationFailed(XpiError):
    """A step of the commercial credentials' rotation failed: AWSCURRENT is unchanged (Secrets Manager
    retries the rotation; the key made for it, if any, is deleted by the next createSecret)."""

    code = "CredentialRotationFailed"


class ClassificationMismatch(XpiError):
    """The invoke step refused to send: what it would send is not what the classify step allowed (no
    classification, a blocking decision, no recorded hash, or a different hash). Never retried."""

    code = "ClassificationMismatch"


class ConfigSnapshotInvalid(XpiError):
    """The configuration snapshot the classify step carried is missing or does not match its hash."""

    code = "ConfigSnapshotInvalid"


# ---------------------------------------------------------------------------------------------- API
class RequestExists(XpiError):
    """A request with this request_id was started before."""

    code = "RequestExists"


class RequestNotFound(XpiError):
    """No such request, or not one this caller may read (the two answer alike)."""

    code = "RequestNotFound"


class BatchNotFound(XpiError):
    code = "BatchNotFound"


class ExperimentNotFound(XpiError):
    """No experiment of this name in the routing document in force."""

    code = "ExperimentNotFound"


class FeedbackNotAccepted(XpiError):
    """Feedback on a request that did not complete (still running, failed or blocked)."""

    code = "FeedbackNotAccepted"


class InvocationTimeout(XpiError):
    """No result within the synchronous wait; the request goes on."""

    code = "InvocationTimeout"


class WorkflowWithoutResult(XpiError):
    """The request's execution ended without a result event detail (an internal error)."""


class PolicyInvalid(XpiError):
    code = "PolicyInvalid"


class CallerUnidentified(XpiError):
    """The API request carries no IAM identity: API Gateway with AWS_IAM always sets one."""


class AdminCallRefused(CallerUnidentified):
    """An admin event that cannot have come through this stack's API (a forged direct invoke)."""


class HashKeyUnavailable(XpiError):
    """The stack's hash key (a Secrets Manager secret) cannot be read: nothing is hashed without it."""

    code = "HashKeyUnavailable"


class PayloadMismatch(XpiError):
    """The object a state's payload reference points at is not the one the reference describes (size or
    keyed hash): the step refuses it. Never retried."""

    code = "PayloadMismatch"


class PayloadLimitExceeded(XpiError):
    """A step's state would exceed Step Functions' payload limit (256 KiB, States.DataLimitExceeded):
    the request ends as failed under this code, with its lineage and event."""

    code = "PayloadLimitExceeded"
