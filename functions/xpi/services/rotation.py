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
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from xpi.adapters.ports import CommercialIam, CredentialProbe, EventPublisher, RotatingSecret
from xpi.domain.errors import CredentialRotationFailed, CredentialsRejected
from xpi.models.credentials import COMMERCIAL_SECRET, IamKeys, RotationEvent
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


def _tail(access_key_id: str) -> str:
    return access_key_id[-4:]


def _iam_keys(raw: str | None, what: str) -> IamKeys:
    if raw is None:
        raise CredentialRotationFailed(f"the secret has no {what} value")
    try:
        secret = COMMERCIAL_SECRET.validate_json(raw)
    except ValidationError:
        raise CredentialRotationFailed(f"the {what} value has an unknown shape") from None
    if not isinstance(secret, IamKeys) or secret.aws_session_token is not None:
        raise CredentialRotationFailed(f"the {what} value is not a long-term IAM access key")
    return secret


def _check_token(rotator: Rotator, event: RotationEvent) -> None:
    stages = rotator.secret.stages(event.secret_id)
    if event.token in stages and CURRENT in stages[event.token] and event.step != "finishSecret":
        raise CredentialRotationFailed("the version of this rotation is already current")


def create_secret(rotator: Rotator, event: RotationEvent) -> None:
    if rotator.secret.value(event.secret_id, stage=PENDING, version_id=event.token) is not None:
        return  # a retried step: the new key is stored already
    current = _iam_keys(rotator.secret.value(event.secret_id, stage=CURRENT), "current")
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


def test_secret(rotator: Rotator, event: RotationEvent) -> None:
    pending = _iam_keys(
        rotator.secret.value(event.secret_id, stage=PENDING, version_id=event.token), "pending"
    )
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
    new = _iam_keys(rotator.secret.value(event.secret_id, version_id=event.token), "pending")
    if current_version != event.token:
        rotator.secret.promote(event.secret_id, event.token, current_version)
        logger.info("the new commercial key is current", extra={"key_tail": _tail(new.aws_access_key_id)})
    previous = new.previous_access_key_id
    if previous and previous != new.aws_access_key_id:
        rotator.wait(rotator.grace_s)  # requests signed with the previous key finish meanwhile
        rotator.iam.delete_access_key(new, previous)
        logger.info("deleted the previous commercial key", extra={"key_tail": _tail(previous)})
    metrics.add_metric(name="CredentialRotations", unit=MetricUnit.Count, value=1)


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


def _dump(keys: IamKeys) -> str:
    value = keys.model_dump(mode="json", exclude_none=True)
    value["aws_secret_access_key"] = keys.aws_secret_access_key.get_secret_value()
    return json.dumps(value)
