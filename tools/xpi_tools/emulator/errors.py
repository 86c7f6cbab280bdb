"""Bedrock's error vocabulary: codes, HTTP statuses and the messages the real service answers with.

Where the real text is known (seen in SDK issue reports and AWS documentation) it is reproduced
verbatim, including Bedrock's typographic apostrophe in the inference-profile message. Messages the
emulator had to invent are marked below.
"""

from __future__ import annotations

from typing import Final

# HTTP status of every error code the emulator can answer with (botocore's service model agrees).
STATUS_BY_CODE: Final[dict[str, int]] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# Errors that can be injected through the control endpoint, with their default messages.
INJECTABLE_MESSAGES: Final[dict[str, str]] = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    # The next four are emulator wording: the real service's exact text was not available offline.
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelNotReadyException": (
        "Model is not ready to serve inference requests. The AWS SDK will automatically retry the "
        "operation. If you continue to see this error, try again later."
    ),
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ModelErrorException": (
        "The system encountered an unexpected error during processing. Try your request again."
    ),
    "ModelStreamErrorException": "The model stream encountered an error while processing the request.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ValidationException": "The provided request is not valid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
}

MSG_THROTTLED: Final = INJECTABLE_MESSAGES["ThrottlingException"]
MSG_INVALID_MODEL: Final = "The provided model identifier is invalid."
MSG_ON_DEMAND_UNSUPPORTED: Final = (
    "Invocation of model ID {model_id} with on-demand throughput isn\u2019t supported. Retry your request "
    "with the ID or ARN of an inference profile that contains this model."
)
MSG_CONVERSE_UNSUPPORTED_MODEL: Final = (
    "This action doesn't support the model that you provided. Try again with a supported text or chat model."
)
MSG_MAX_TOKENS: Final = (
    "The maximum tokens you requested exceeds the model limit of {limit}. "
    "Try again with a maximum tokens value that is lower than {limit}."
)
MSG_FIRST_USER: Final = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user "
    "message."
)
MSG_ALTERNATE: Final = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation "
    "alternates between user and assistant roles and try again."
)
MSG_BLANK_TEXT: Final = (
    "The text field in the ContentBlock object at {where} is blank. "
    "Add text to the text field, and try again."
)
MSG_MALFORMED: Final = "Malformed input request: {errors}, please reformat your input and try again."
MSG_MALFORMED_BODY: Final = "Malformed input request, please reformat your input and try again."
MSG_MODEL_RETURNED: Final = "The model returned the following errors: {detail}"

# Authentication (shared by every SigV4 service behind the AWS front end).
MSG_BAD_KEY_ID: Final = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN: Final = "The security token included in the request is expired"  # noqa: S105 - a message
MSG_BAD_SIGNATURE: Final = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
MSG_MISSING_AUTH: Final = "Missing Authentication Token"
MSG_BAD_API_KEY: Final = "Authentication failed: Please make sure your API Key is valid."


class BedrockError(Exception):
    """An error answered to the client exactly as Bedrock would: status, x-amzn-ErrorType, message."""

    def __init__(self, code: str, message: str, *, status: int | None = None, message_key: str = "message"):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)
        # Bedrock API-key failures answer {"Message": ...}; everything else {"message": ...}.
        self.message_key = message_key


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def malformed(errors: list[str]) -> BedrockError:
    """InvokeModel body schema failures, joined the way Bedrock joins them (no separator)."""
    return validation(MSG_MALFORMED.format(errors="".join(errors)))


def coral_constraint(value: object, where: str, constraint: str) -> BedrockError:
    """The AWS front end's shape-validation message (``1 validation error detected: ...``)."""
    return validation(
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: "
        f"{constraint}"
    )
