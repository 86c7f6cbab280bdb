"""Optional JSON configuration in SSM Parameter Store (the classification policy, the routing): the one
loader of both.

Each deployment names a parameter per document; when the parameter does not exist the shipped default
applies. Both a value and its absence are cached for `max_age_s` (a value by Powertools Parameters), so a
warm function makes at most one SSM call per document per `max_age_s`, and a change, or a new parameter,
takes effect within that time without a deploy. A value is validated once, not on every read. Any other
read error, and a value that does not validate, propagates: callers fail closed, never falling back to
the default silently.
"""

import time
from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import get_parameter
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError


class PolicyLoadError(RuntimeError):
    """The configured policy parameter could not be read or is not a valid policy."""


def _not_found(error: GetParameterError) -> bool:
    cause = error.__cause__ or error.__context__
    return (
        isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "ParameterNotFound"
    )


class OptionalParameter:
    def __init__(self, name: str, max_age_s: int) -> None:
        self._name = name
        self._max_age_s = max_age_s
        self._absent_until = 0.0

    @property
    def name(self) -> str:
        return self._name

    def get(self) -> str | None:
        """The parameter's value, or None when it does not exist (or no name is configured)."""
        if not self._name or time.monotonic() < self._absent_until:
            return None
        try:
            return str(get_parameter(self._name, max_age=self._max_age_s))
        except GetParameterError as error:
            if not _not_found(error):
                raise
            self._absent_until = time.monotonic() + self._max_age_s
            return None


class ConfigOverride[T: BaseModel]:
    """A shipped JSON document the deployment may override with an SSM parameter: the parameter's
    value when it exists, else the default. Create one per document per process.

    `failure`, when given, is raised (naming the parameter and the document) instead of the read or
    validation error itself: the policy's PolicyLoadError is what the workflow records.
    """

    def __init__(
        self,
        parameter: OptionalParameter,
        model: type[T],
        default: Callable[[], T],
        *,
        failure: tuple[type[Exception], str] | None = None,
    ) -> None:
        self._parameter = parameter
        self._model = model
        self._default = default
        self._failure = failure
        self._last: tuple[str, T] | None = None

    def get(self) -> T:
        try:
            raw = self._parameter.get()
        except Exception as exc:  # Powertools wraps SDK errors in GetParameterError
            if self._failure is None:
                raise
            error, what = self._failure
            raise error(f"cannot read {what} parameter {self._parameter.name}: {exc}") from exc
        if raw is None:
            return self._default()
        if self._last is None or self._last[0] != raw:  # an unchanged value is not validated again
            try:
                self._last = (raw, self._model.model_validate_json(raw))
            except ValidationError as exc:
                if self._failure is None:
                    raise
                error, what = self._failure
                raise error(f"{what} parameter {self._parameter.name} is not a valid {what}: {exc}") from exc
        return self._last[1]
