"""Errors whose class names are the workflow's error names (Lambda reports `errorType` = class name,
and the ASL's Retry and Catch match on it). Messages never carry request content or secrets."""


class XpiError(Exception):
    """Base of every error the workflow distinguishes; `code` is what events and lineage show."""

    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestInvalid(XpiError):
    code = "RequestInvalid"


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
