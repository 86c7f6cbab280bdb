"""Optional JSON configuration in SSM Parameter Store (the classification policy, the routing): the one
loader of both.

Each deployment names a parameter per document; when the parameter does not exist the shipped default
applies. Both a value and its absence are cached for `max_age_s` (a value by Powertools Parameters), so a
warm function makes at most one SSM call per document per `max_age_s`, and a change, or a new parameter,
takes effect within that time without a deploy. A value is validated once, not on every read.

With a signing secret configured (every deployed stack), only what the admin path wrote is applied: a
signed envelope (xpi.domain.config_signing) that verifies with the stack's signing secret, whose revision
is not older than the newest revision the admin path recorded in that secret. Anything else (a value put
with ssm:PutParameter by hand, an edited envelope, an older envelope put back, the parameter deleted after
a signed version existed) is refused: the shipped default applies (the policy floor applies on top of any
policy), a Security Alert is raised once per refused value, and the version in force says `fallback`.
A signed document that does not validate, and any read error other than a missing parameter, propagate:
callers fail closed, never falling back silently.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools.utilities.parameters import get_parameter, get_secret
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from xpi.domain.config_signing import ConfigKind, ConfigVersion, SignedConfig, verify
from xpi.domain.hashing import canonical_sha256
from xpi.models.events import ConfigAlert

# Why a stored value is refused (the `change` of the Security Alert raised for it).
Problem = Literal["unsigned", "tampered", "missing", "rolled_back"]


class PolicyLoadError(RuntimeError):
    """The configured policy parameter could not be read or is not a valid policy."""


def _sdk_error(error: GetParameterError) -> BaseException | None:
    """The SDK's error behind Powertools' GetParameterError (raised inside its handler, not `from` it)."""
    return error.__cause__ or error.__context__


def _not_found(error: GetParameterError) -> bool:
    cause = _sdk_error(error)
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

    def get(self, *, force: bool = False) -> str | None:
        """The parameter's value, or None when it does not exist (or no name is configured)."""
        if not self._name or (not force and time.monotonic() < self._absent_until):
            return None
        try:
            return str(get_parameter(self._name, max_age=self._max_age_s, force_fetch=force))
        except GetParameterError as error:
            if not _not_found(error):
                # its cause named: an AWS fault behind it is seen as passing (aws.is_transient)
                raise error from _sdk_error(error)
            self._absent_until = time.monotonic() + self._max_age_s
            return None


@dataclass(frozen=True)
class SigningState:
    """The stack's signing secret: the HMAC key, and per document the newest revision the admin path
    wrote (its watermark: a stored revision below it was put back, a missing parameter was deleted)."""

    key: bytes
    watermarks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def watermark(self, kind: ConfigKind) -> int:
        return int(self.watermarks.get(kind, {}).get("revision", 0))


def parse_signing_secret(text: str) -> SigningState:
    document = json.loads(text)
    key = str(document["key"])
    if len(key) < 32:
        raise ValueError("the signing secret's key is shorter than 32 characters")
    return SigningState(key.encode("utf-8"), dict(document.get("watermarks", {})))


class SigningSecret:
    """The signing secret (Secrets Manager), cached for `max_age_s` like the parameters."""

    def __init__(self, secret_id: str, max_age_s: int) -> None:
        self._secret_id, self._max_age_s = secret_id, max_age_s

    def get(self, *, force: bool = False) -> SigningState:
        try:
            text = get_secret(self._secret_id, max_age=self._max_age_s, force_fetch=force)
        except GetParameterError as error:
            raise error from _sdk_error(error)  # as OptionalParameter.get
        return parse_signing_secret(str(text))


class ConfigOverride[T: BaseModel]:
    """A shipped JSON document the deployment may override with an SSM parameter: the parameter's
    value when it exists (and, with `signing`, verifies), else the default. Create one per document per
    process.

    `failure`, when given, is raised (naming the parameter and the document) instead of the read or
    validation error itself: the policy's PolicyLoadError is what the workflow records. `on_alert`
    receives each refused value once (it publishes the Security Alert).
    """

    def __init__(
        self,
        parameter: OptionalParameter,
        model: type[T],
        default: Callable[[], T],
        *,
        failure: tuple[type[Exception], str] | None = None,
        kind: ConfigKind = "policy",
        signing: SigningSecret | None = None,
        on_alert: Callable[[ConfigAlert], None] | None = None,
    ) -> None:
        self._parameter = parameter
        self._model = model
        self._default = default
        self._failure = failure
        self._kind: ConfigKind = kind
        self._signing = signing
        self._on_alert = on_alert
        self._last: tuple[str, T, ConfigVersion] | None = None
        # The shipped default and its version, per source ("default", "fallback"): built and hashed once
        # per process (the shipped document does not change while the process lives).
        self._shipped_versions: dict[str, tuple[T, ConfigVersion]] = {}
        self._alerted: set[tuple[Problem, str]] = set()

    def get(self) -> T:
        return self.current()[0]

    def current(self) -> tuple[T, ConfigVersion]:
        """The document in force and which version it is."""
        raw = self._read(force=False)
        if self._signing is None:
            return self._unsigned(raw)
        state = self._signing.get()
        envelope, problem = self._judge(raw, state)
        if problem is not None:  # read both again, uncached, before refusing (a change in flight)
            raw, state = self._read(force=True), self._signing.get(force=True)
            envelope, problem = self._judge(raw, state)
        if problem is None and envelope is None:
            return self._shipped("default")
        if problem is not None or envelope is None:
            self._alert(problem or "unsigned", raw, envelope)
            return self._shipped("fallback")
        assert raw is not None
        if self._last is None or self._last[0] != raw:
            version = ConfigVersion(
                kind=self._kind, revision=envelope.revision, sha256=envelope.sha256, source="signed"
            )
            self._last = (raw, self._validate(json.dumps(envelope.document)), version)
        return self._last[1], self._last[2]

    # ---------------------------------------------------------------------------------------------- parts
    def _read(self, *, force: bool) -> str | None:
        try:
            return self._parameter.get(force=force)
        except Exception as exc:  # Powertools wraps SDK errors in GetParameterError
            if self._failure is None:
                raise
            error, what = self._failure
            raise error(f"cannot read {what} parameter {self._parameter.name}: {exc}") from exc

    def _judge(self, raw: str | None, state: SigningState) -> tuple[SignedConfig | None, Problem | None]:
        """(envelope, None) when `raw` may be applied (None, None: no value and none was ever written);
        else the problem: missing, unsigned, tampered, rolled_back."""
        watermark = state.watermark(self._kind)
        if raw is None:
            return None, ("missing" if watermark > 0 else None)
        envelope, verdict = verify(raw, kind=self._kind, key=state.key)
        if verdict != "ok":
            return envelope, verdict
        assert envelope is not None
        if envelope.revision < watermark:
            return envelope, "rolled_back"
        return envelope, None

    def _shipped(self, source: str) -> tuple[T, ConfigVersion]:
        shipped = self._shipped_versions.get(source)
        if shipped is None:
            document = self._default()
            version = ConfigVersion(
                kind=self._kind,
                revision=0,
                sha256=canonical_sha256(document.model_dump(mode="json")),
                source="fallback" if source == "fallback" else "default",
            )
            shipped = self._shipped_versions[source] = (document, version)
        return shipped

    def _unsigned(self, raw: str | None) -> tuple[T, ConfigVersion]:
        """Without a signing secret (unit tests, `sam local`): the value as it is."""
        if raw is None:
            return self._shipped("default")
        if self._last is None or self._last[0] != raw:
            document = self._validate(raw)
            version = ConfigVersion(
                kind=self._kind,
                revision=0,
                sha256=canonical_sha256(document.model_dump(mode="json")),
                source="default",
            )
            self._last = (raw, document, version)
        return self._last[1], self._last[2]

    def _validate(self, raw: str) -> T:
        try:
            return self._model.model_validate_json(raw)
        except ValidationError as exc:
            if self._failure is None:
                raise
            error, what = self._failure
            raise error(f"{what} parameter {self._parameter.name} is not a valid {what}: {exc}") from exc

    def _alert(self, change: Problem, raw: str | None, envelope: SignedConfig | None) -> None:
        seen = (change, canonical_sha256(raw or ""))
        if self._on_alert is None or seen in self._alerted:
            return
        self._alerted.add(seen)
        self._on_alert(
            ConfigAlert(
                document=self._kind,
                change=change,
                parameter=self._parameter.name,
                revision=envelope.revision if envelope else None,
                sha256=envelope.sha256 if envelope else None,
                applied_revision=0,
            )
        )
