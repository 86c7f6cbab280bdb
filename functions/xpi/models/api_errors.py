"""The API's one error shape (api/openapi.yaml: ErrorAnswer), apart from the answers of its routes so a
function that only answers errors in it (POST /v1/invoke, the reports) does not build every route's
models at its cold start."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ErrorCode = Literal[
    "RequestInvalid",
    "RequestExists",
    "RequestNotFound",
    "BatchNotFound",
    "ExperimentNotFound",
    "FeedbackNotAccepted",
    "InvocationTimeout",
    "RouteNotFound",
    "MethodNotAllowed",
    "PolicyInvalid",
    "InternalError",
]


class ApiAnswer(BaseModel):
    """Every answer of the API: no field beyond its contract."""

    model_config = ConfigDict(extra="forbid")


class ProblemInfo(ApiAnswer):
    """Where a request is wrong (field names and positions; `*` for the caller's own keys) and how
    (pydantic's error type). Never a value."""

    location: str
    type: str


class ErrorBody(ApiAnswer):
    code: ErrorCode
    message: str = Field(description="the code's fixed message")
    request_id: str | None = None
    problems: list[ProblemInfo] | None = None


class ErrorAnswer(ApiAnswer):
    """Every error the API answers, in one shape (dumped without None: request_id only when known)."""

    error: ErrorBody
