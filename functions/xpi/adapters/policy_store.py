"""The classification policy in force: from SSM Parameter Store, cached, or the shipped default.

The deployed stack keeps the policy JSON in an SSM parameter (String; standard tier holds 4 KB, advanced
8 KB). :class:`PolicyStore` reads it through Powertools Parameters ``get_parameter(name, max_age=...)``, so
a changed parameter takes effect within ``max_age`` seconds, without a deploy, and a warm Lambda makes at
most one SSM call per ``max_age``. The JSON is validated by :class:`xpi.domain.policy.Policy`; an unchanged
value is not validated again.

With no parameter name configured the store serves the policy shipped in the package
(``xpi/policy/default.json``). A parameter that cannot be read or does not validate raises
:class:`PolicyLoadError`: the caller fails closed, it never falls back to a different policy silently.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from xpi.domain.policy import Policy, load_default_policy

DEFAULT_MAX_AGE_SECONDS = 60

Fetch = Callable[[str, int], object]


class PolicyLoadError(RuntimeError):
    """The configured policy parameter could not be read or is not a valid policy."""


def _powertools_fetch(name: str, max_age: int) -> object:
    from aws_lambda_powertools.utilities.parameters import get_parameter

    return get_parameter(name, max_age=max_age)


class PolicyStore:
    """Serves the current :class:`Policy`; create one per process (for example at module level)."""

    def __init__(
        self,
        parameter_name: str | None,
        *,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        fetch: Fetch | None = None,
    ) -> None:
        self._name = parameter_name or None
        self._max_age = max_age_seconds
        self._fetch = fetch or _powertools_fetch
        self._last: tuple[str, Policy] | None = None

    @property
    def parameter_name(self) -> str | None:
        return self._name

    def get(self) -> Policy:
        if self._name is None:
            return load_default_policy()
        try:
            raw = self._fetch(self._name, self._max_age)
        except Exception as exc:  # Powertools wraps SDK errors in GetParameterError; any failure fails closed
            raise PolicyLoadError(f"cannot read policy parameter {self._name}: {exc}") from exc
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        if not isinstance(raw, str):
            raise PolicyLoadError(f"policy parameter {self._name} is not a string")
        if self._last is not None and self._last[0] == raw:
            return self._last[1]
        try:
            policy = Policy.model_validate_json(raw)
        except ValidationError as exc:
            raise PolicyLoadError(f"policy parameter {self._name} is not a valid policy: {exc}") from exc
        self._last = (raw, policy)
        return policy
