"""Errors whose class names are the workflow's error names (Lambda reports `errorType` = class name,
and the ASL's Retry and Catch match on it), and the errors the API's use cases raise (the API handler
alone maps them to HTTP). Messages never carry request content or secrets."""


class XpiError(Exception):
    """Base of every error xpi distinguishes; `code` is what events, lineage and the API show."""

    code = "InternalError"

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id  # the request the error is about, when an answer should name it


class RequestInvalid(XpiError):
    code = "RequestInvalid"


class ValidationUnavailable(XpiError):
    """The workflow's first step failed for a platform reason (Lambda service error, timeout, crash):
    the request was never judged, so it must not be reported as invalid. Sending it again may succeed."""

    code = "ValidationUnavailable"


class ModelNotApproved(XpiError):
    code = "ModelNotApproved"


class ModelNotAllowedForCaller(XpiError):
    code = "ModelNotAllowedForCaller"


class BedrockThrottled(XpiError):
    """Retried by the workflow with long, jittered backoff."""

    code = "BedrockThrottled"


class BedrockUnavailable(XpiError):
    """Transient: timeouts, 5xx, model not ready. Retried by the workflow."""

    code = "BedrockUnavailable"


class BedrockRejected(XpiError):
    """Permanent: validation errors, unknown model, access denied. Not retried."""

    code = "BedrockRejected"


class CredentialsRejected(XpiError):
    """Bedrock refused the commercial credentials even after a fresh read of the secret."""

    code = "CredentialsRejected"


class CredentialsUnavailable(XpiError):
    code = "CredentialsUnavailable"


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
