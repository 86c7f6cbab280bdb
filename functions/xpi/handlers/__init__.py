"""The Lambda handlers. `contain_errors` is the last thing an error passes in a handler before Lambda
(and Tracer) report it: what leaves is an xpi error with its fixed message, never an exception's text
(a pydantic error quotes its input; a botocore error can name accounts and principals)."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from xpi.adapters.aws import is_transient
from xpi.domain.errors import AwsUnavailable, InternalError, XpiError
from xpi.observability import logger

P = ParamSpec("P")
R = TypeVar("R")


def contain_errors[**P, R](handler: Callable[P, R]) -> Callable[P, R]:
    """Re-raise xpi's errors as they are (their class names drive the workflow's Retry and Catch), an AWS
    call's passing fault (5xx, throttling, unreachable) as AwsUnavailable, and anything else as
    InternalError, without its text or its chain. One log line each: the error's code
    and class (the request id is the logger's correlation id)."""

    @functools.wraps(handler)
    def contained(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except XpiError as error:
            logger.error("step failed", extra={"error_code": error.code, "error_class": type(error).__name__})
            raise
        except Exception as error:
            if is_transient(error):  # AWS's own passing fault: the workflow tries the step again
                logger.error(
                    "step failed",
                    extra={"error_code": AwsUnavailable.code, "error_class": type(error).__name__},
                )
                raise AwsUnavailable(f"{type(error).__name__} in {handler.__name__}") from None
            logger.error(
                "step failed", extra={"error_code": InternalError.code, "error_class": type(error).__name__}
            )
            raise InternalError(f"{type(error).__name__} in {handler.__name__}") from None

    return contained
