"""Optional JSON configuration in SSM Parameter Store (policy, routing).

Each deployment names a parameter per document; when the parameter does not exist the shipped default
applies. Both a value and its absence are cached for `max_age_s` (a value by Powertools Parameters), so a
warm function makes at most one SSM call per document per `max_age_s`, and a change, or a new parameter,
takes effect within that time without a deploy. Any other read error propagates: callers fail closed.
"""

import time

from aws_lambda_powertools.utilities.parameters import get_parameter
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError


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
        """The parameter's value, or None when it does not exist."""
        if not self._name or time.monotonic() < self._absent_until:
            return None
        try:
            return str(get_parameter(self._name, max_age=self._max_age_s))
        except GetParameterError as error:
            if not _not_found(error):
                raise
            self._absent_until = time.monotonic() + self._max_age_s
            return None
