"""Rotation of the commercial IAM access key in the credentials secret: Secrets Manager's four steps.

- createSecret: with the current key, delete any other key of the commercial user (a previous key past
  its grace period, or one a failed rotation left: an IAM user holds at most two), create a new key and
  store it as AWSPENDING, naming the key it replaces. Idempotent: a pending value for this token is kept.
- setSecret: nothing: the key exists in IAM from createSecret on.
- testSecret: one real Bedrock call signed with the pending key (retried briefly: a new IAM key takes a
  few seconds to be accepted everywhere).
- finishSecret: move AWSCURRENT to the new version, then, after the grace period, delete the previous
  key with the new one.

Requests in flight never fail for it: until finishSecret every reader has the old key, which stays
valid through the grace period; an invoker that still signs with it afterwards is rejected once and
re-reads the secret (xpi.adapters.bedrock). A failed step raises CredentialRotationFailed and leaves
AWSCURRENT as it was. Secrets never leave: logs and metrics carry key ids' last four characters only.

A secret holding a long-term Bedrock API key (a service-specific credential of `user_name`) rotates the
same way, except that a bearer key cannot call IAM: createSecret and finishSecret sign with the access
key of a key manager user, read from its own secret (API_KEY_MANAGER_SECRET_ID), whose only grants are
the service-specific credentials of that user. createSecret deletes the user's other credential (at
most two per service) and makes a new one; testSecret makes the probe call with the new key as bearer;
finishSecret deletes the previous credential after the grace period.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from xpi.adapters.ports import BedrockApiKeys, CommercialIam, CredentialProbe, EventPublisher, RotatingSecret
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import COMMERCIAL_SECRET, ApiKey, IamKeys, RotationEvent
from xpi.models.events import SECURITY_ALERT, CredentialAlert, SecurityAlertDetail
from xpi.observability import logger, metrics

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


@dataclass(frozen=True)
class Rotator:
    secret: RotatingSecret
    iam: CommercialIam
    probe: CredentialProbe
    grace_s: float  # how long the previous key stays valid after the new one is current
    wait: Callable[[float], None]  # time.sleep in Lambda; unit tests pass a recorder
    events: EventPublisher
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    test_attempts: int = 5
    test_interval_s: float = 2.0
    # API key rotation: the commercial IAM side of service-specific credentials, and the secret holding
    # the key manager's access key (empty: an API key secret is not rotated).
    api_keys: BedrockApiKeys | None = None
    api_key_manager_secret_id: str = ""


def _tail(access_key_id: str) -> str:
    return access_key_id[-4:]


def _secret(raw: str | None, what: str) -> IamKeys | ApiKey:
    """A long-term IAM access key, or a Bedrock API key naming its user and credential id."""
    if raw is None:
        raise CredentialRotationFailed(f"the secret has no {what} value")
    try:
        secret = COMMERCIAL_SECRET.validate_json(raw)
    except ValidationError:
        raise CredentialRotationFailed(f"the {what} value has an unknown shape") from None
    if isinstance(secret, ApiKey):
        if not secret.user_name or not secret.credential_id:
            raise CredentialRotationFailed(f"the {what} API key does not name its user and credential id")
    elif secret.aws_session_token is not None:
        raise CredentialRotationFailed(f"the {what} value is not a long-term IAM access key")
    return secret


def _iam_keys(raw: str | None, what: str) -> IamKeys:
    secret = _secret(raw, what)
    if not isinstance(secret, IamKeys):
        raise CredentialRotationFailed(f"the {what} value is not a long-term IAM access key")
    return secret


def _key_manager(rotator: Rotator) -> tuple[BedrockApiKeys, IamKeys]:
    """The IAM side of API keys and the key manager's access key to sign its calls with."""
    if rotator.api_keys is None or not rotator.api_key_manager_secret_id:
        raise CredentialRotationFailed("no key manager secret is configured to rotate an API key")
    raw = rotator.secret.value(rotator.api_key_manager_secret_id, stage=CURRENT)
    return rotator.api_keys, _iam_keys(raw, "key manager")


def _check_token(rotator: Rotator, event: RotationEvent) -> None:
    stages = rotator.secret.stages(event.secret_id)
    if event.token in stages and CURRENT in stages[event.token] and event.step != "finishSecret":
        raise CredentialRotationFailed("the version of this rotation is already current")


def create_secret(rotator: Rotator, event: RotationEvent) -> None:
    if rotator.secret.value(event.secret_id, stage=PENDING, version_id=event.token) is not None:
        return  # a retried step: the new key is stored already
    current = _secret(rotator.secret.value(event.secret_id, stage=CURRENT), "current")
    if isinstance(current, ApiKey):
        _create_api_key(rotator, event, current)
        return
    for key in rotator.iam.list_access_keys(current):
        if key.access_key_id != current.aws_access_key_id:
            rotator.iam.delete_access_key(current, key.access_key_id)
            logger.info("deleted a previous commercial key", extra={"key_tail": _tail(key.access_key_id)})
    new = rotator.iam.create_access_key(current)
    pending = new.model_copy(
        update={
            "created_at": rotator.now().isoformat(timespec="seconds"),
            "previous_access_key_id": current.aws_access_key_id,
        }
    )
    rotator.secret.put_pending(event.secret_id, event.token, _dump(pending))
    logger.info("created a commercial key", extra={"key_tail": _tail(new.aws_access_key_id)})


def _create_api_key(rotator: Rotator, event: RotationEvent, current: ApiKey) -> None:
    api_keys, manager = _key_manager(rotator)
    user = current.user_name or ""
    for credential in api_keys.list_credentials(manager, user):
        if credential.credential_id != current.credential_id:
            api_keys.delete_credential(manager, user, credential.credential_id)
            logger.info(
                "deleted a previous Bedrock API key", extra={"key_tail": _tail(credential.credential_id)}
            )
    new = api_keys.create_credential(manager, user)
    pending = new.model_copy(
        update={
            "created_at": rotator.now().isoformat(timespec="seconds"),
            "previous_credential_id": current.credential_id,
        }
    )
    rotator.secret.put_pending(event.secret_id, event.token, _dump(pending))
    logger.info("created a Bedrock API key", extra={"key_tail": _tail(new.credential_id or "")})


def test_secret(rotator: Rotator, event: RotationEvent) -> None:
    pending = _secret(rotator.secret.value(event.secret_id, stage=PENDING, version_id=event.token), "pending")
    for attempt in range(1, rotator.test_attempts + 1):
        try:
            rotator.probe.check(pending)
            return
        except CredentialsRejected:
            if attempt == rotator.test_attempts:
                raise CredentialRotationFailed("commercial Bedrock refused the new key") from None
            rotator.wait(rotator.test_interval_s)


def finish_secret(rotator: Rotator, event: RotationEvent) -> None:
    stages = rotator.secret.stages(event.secret_id)
    current_version = next((v for v, labels in stages.items() if CURRENT in labels), None)
    new = _secret(rotator.secret.value(event.secret_id, version_id=event.token), "pending")
    if current_version != event.token:
        rotator.secret.promote(event.secret_id, event.token, current_version)
        logger.info("the new commercial key is current", extra={"key_tail": _tail(_key_id(new))})
    if isinstance(new, ApiKey):
        _retire_api_key(rotator, new)
    else:
        _retire_access_key(rotator, new)
    metrics.add_metric(name="CredentialRotations", unit=MetricUnit.Count, value=1)


def _key_id(secret: IamKeys | ApiKey) -> str:
    return secret.credential_id or "" if isinstance(secret, ApiKey) else secret.aws_access_key_id


def _retire_api_key(rotator: Rotator, new: ApiKey) -> None:
    previous = new.previous_credential_id
    if previous and previous != new.credential_id:
        api_keys, manager = _key_manager(rotator)
        rotator.wait(rotator.grace_s)  # requests carrying the previous key finish meanwhile
        api_keys.delete_credential(manager, new.user_name or "", previous)
        logger.info("deleted the previous Bedrock API key", extra={"key_tail": _tail(previous)})


def _retire_access_key(rotator: Rotator, new: IamKeys) -> None:
    previous = new.previous_access_key_id
    if previous and previous != new.aws_access_key_id:
        rotator.wait(rotator.grace_s)  # requests signed with the previous key finish meanwhile
        rotator.iam.delete_access_key(new, previous)
        logger.info("deleted the previous commercial key", extra={"key_tail": _tail(previous)})


STEPS = {
    "createSecret": create_secret,
    "setSecret": lambda rotator, event: None,
    "testSecret": test_secret,
    "finishSecret": finish_secret,
}


def rotate(rotator: Rotator, event: RotationEvent) -> None:
    """Run one step; any failure is CredentialRotationFailed (counted), AWSCURRENT untouched."""
    try:
        _check_token(rotator, event)
        STEPS[event.step](rotator, event)
    except Exception as error:
        failure = (
            error
            if isinstance(error, CredentialRotationFailed)
            else CredentialRotationFailed(f"{type(error).__name__} in {event.step}")
        )
        metrics.add_metric(name="CredentialRotationFailures", unit=MetricUnit.Count, value=1)
        logger.error("rotation step failed", extra={"step": event.step, "error_class": type(error).__name__})
        _alert(rotator, event, type(error).__name__)
        raise failure from None


def _alert(rotator: Rotator, event: RotationEvent, error: str) -> None:
    """The Security Alert of a failed rotation step (AWSCURRENT unchanged; Secrets Manager retries)."""
    try:
        rotator.events.publish(
            SECURITY_ALERT,
            SecurityAlertDetail(
                request_id=f"rotation-{event.token}",
                caller_principal="secretsmanager.amazonaws.com",
                source="rotation",
                categories={},
                decision="rotation_failed",
                credentials=CredentialAlert(change="rotation_failed", step=event.step, error=error),
            ),
        )
    except Exception as publish_error:  # the rotation's own failure is what Secrets Manager must see
        logger.error("rotation alert not published", extra={"error_class": type(publish_error).__name__})


def _dump(keys: IamKeys | ApiKey) -> str:
    value = keys.model_dump(mode="json", exclude_none=True)
    if isinstance(keys, ApiKey):
        value["api_key"] = keys.api_key.get_secret_value()
    else:
        value["aws_secret_access_key"] = keys.aws_secret_access_key.get_secret_value()
    return json.dumps(value)
