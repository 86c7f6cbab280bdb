"""The commercial key's rotation (xpi.services.rotation) against in-memory fakes of its ports."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from xpi.domain.errors import CredentialRotationFailed
from xpi.models.credentials import IamKeys, RotationEvent
from xpi.services.rotation import Rotator, rotate

from tests.helpers.fakes import FakeEventPublisher
from tests.helpers.fakes_rotation import FakeBedrockApiKeys, FakeCommercialIam, FakeProbe, FakeRotatingSecret

OLD = IamKeys(aws_access_key_id="AKIAOLD000000001", aws_secret_access_key=SecretStr("old-secret"))
TOKEN = "token-1"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def secret_json(keys: IamKeys) -> str:
    return json.dumps(
        {
            "type": "iam",
            "aws_access_key_id": keys.aws_access_key_id,
            "aws_secret_access_key": keys.aws_secret_access_key.get_secret_value(),
        }
    )


class World:
    def __init__(self, *iam_keys: IamKeys, refusals: int = 0, current: str | None = None) -> None:
        self.secret = FakeRotatingSecret(current or secret_json(OLD))
        self.iam = FakeCommercialIam(*(iam_keys or (OLD,)))
        self.probe = FakeProbe(self.iam, refusals)
        self.waits: list[float] = []
        self.events = FakeEventPublisher()
        self.rotator = Rotator(
            secret=self.secret,
            iam=self.iam,
            probe=self.probe,
            grace_s=45,
            wait=self.waits.append,
            events=self.events,
            now=lambda: datetime(2026, 12, 5, 3, 0, tzinfo=UTC),
        )

    def step(self, step: str, token: str = TOKEN) -> None:
        rotate(
            self.rotator,
            RotationEvent.model_validate({"Step": step, "SecretId": "s", "ClientRequestToken": token}),
        )

    def rotate_all(self, token: str = TOKEN) -> None:
        self.secret.begin(token)
        for step in STEPS:
            self.step(step, token)


def test_a_rotation_makes_a_new_key_current_and_deletes_the_old_one_after_the_grace_period() -> None:
    world = World()
    # WHEN the four steps run
    world.rotate_all()
    # THEN the current value is a new key, made by this rotation and naming the one it replaced
    current = json.loads(world.secret.current())
    assert current["aws_access_key_id"] != OLD.aws_access_key_id
    assert current["previous_access_key_id"] == OLD.aws_access_key_id
    assert current["created_at"] == "2026-12-05T03:00:00+00:00"
    # AND it was tested against Bedrock before it was promoted
    assert world.probe.checked == [current["aws_access_key_id"]]
    # AND the old key was deleted only after the grace period, and IAM holds the new key alone
    assert world.waits == [45]
    assert world.iam.calls[-1] == f"delete {OLD.aws_access_key_id}"
    assert list(world.iam.keys) == [current["aws_access_key_id"]]
    assert world.secret.labels["v0"] == ["AWSPREVIOUS"]


def test_create_deletes_a_key_a_failed_rotation_left_so_the_user_stays_within_two() -> None:
    leftover = IamKeys(aws_access_key_id="AKIALEFT00000001", aws_secret_access_key=SecretStr("x"))
    world = World(OLD, leftover)
    world.rotate_all()
    assert leftover.aws_access_key_id not in world.iam.keys
    assert len(world.iam.keys) == 1


def test_a_retried_create_keeps_the_key_it_stored() -> None:
    world = World()
    world.secret.begin(TOKEN)
    world.step("createSecret")
    pending = world.secret.value("s", stage="AWSPENDING")
    world.step("createSecret")
    assert world.secret.value("s", stage="AWSPENDING") == pending
    assert sum(call.startswith("create") for call in world.iam.calls) == 1


def test_a_new_key_not_yet_accepted_is_tested_again() -> None:
    world = World(refusals=2)
    world.rotate_all()
    assert len(world.probe.checked) == 3
    assert world.waits[:2] == [2.0, 2.0]


def test_a_key_bedrock_refuses_fails_the_rotation_and_leaves_the_current_key() -> None:
    world = World(refusals=99)
    world.secret.begin(TOKEN)
    world.step("createSecret")
    world.step("setSecret")
    with pytest.raises(CredentialRotationFailed):
        world.step("testSecret")
    assert world.secret.current() == secret_json(OLD)
    # AND a Security Alert names the failed step, and nothing of any key
    ((detail_type, detail),) = world.events.published
    assert detail_type == "Security Alert"
    assert detail["decision"] == "rotation_failed"
    assert detail["credentials"] == {
        "change": "rotation_failed",
        "step": "testSecret",
        "error": "CredentialRotationFailed",
    }
    assert "secret-" not in json.dumps(detail) and "AKIA" not in json.dumps(detail)
    # the next rotation deletes the key this one made, and succeeds
    world.probe.refusals = 0
    world.rotate_all("token-2")
    assert len(world.iam.keys) == 1
    assert json.loads(world.secret.current())["previous_access_key_id"] == OLD.aws_access_key_id


def test_a_retried_finish_after_promotion_changes_nothing() -> None:
    world = World()
    world.rotate_all()
    current = world.secret.current()
    world.step("finishSecret")
    assert world.secret.current() == current


def test_a_bedrock_api_key_secret_is_not_rotated_as_an_access_key() -> None:
    world = World(current=json.dumps({"type": "api_key", "api_key": "ABSK..."}))
    world.secret.begin(TOKEN)
    with pytest.raises(CredentialRotationFailed):
        world.step("createSecret")
    assert world.iam.calls == []


# -- long-term Bedrock API keys (service-specific credentials) ------------------------------------------

MANAGER = IamKeys(aws_access_key_id="AKIAMANAGER00001", aws_secret_access_key=SecretStr("manager-secret"))
MANAGER_SECRET = "api-key-manager"
BEDROCK_USER = "xpi-bedrock"
OLD_CREDENTIAL = "ACCAOLD000000001"


def api_key_json(credential_id: str = OLD_CREDENTIAL, value: str = "ABSK-old") -> str:
    return json.dumps(
        {"type": "api_key", "api_key": value, "user_name": BEDROCK_USER, "credential_id": credential_id}
    )


class ApiKeyWorld(World):
    def __init__(self, credentials: dict[str, str] | None = None, *, manager_secret: bool = True) -> None:
        super().__init__(current=api_key_json())
        self.api_keys = FakeBedrockApiKeys(MANAGER, BEDROCK_USER, credentials or {OLD_CREDENTIAL: "ABSK-old"})
        self.probe.api_keys = self.api_keys
        if manager_secret:
            self.secret.others[MANAGER_SECRET] = secret_json(MANAGER)
        self.rotator = dataclasses.replace(
            self.rotator, api_keys=self.api_keys, api_key_manager_secret_id=MANAGER_SECRET
        )


def test_an_api_key_rotation_makes_a_new_credential_current_and_deletes_the_old_one_after_the_grace() -> None:
    world = ApiKeyWorld()
    # WHEN the four steps run on a secret holding a Bedrock API key
    world.rotate_all()
    # THEN the current value is a new API key of the same user, naming the credential it replaced
    current = json.loads(world.secret.current())
    assert current["type"] == "api_key"
    assert current["user_name"] == BEDROCK_USER
    assert current["credential_id"] != OLD_CREDENTIAL
    assert current["api_key"] == world.api_keys.credentials[current["credential_id"]]
    assert current["previous_credential_id"] == OLD_CREDENTIAL
    assert current["created_at"] == "2026-12-05T03:00:00+00:00"
    # AND Bedrock accepted it (as a bearer key) before it was promoted
    assert world.probe.checked == [current["credential_id"]]
    # AND the old credential was deleted with the key manager's access key, after the grace period only
    assert world.waits == [45]
    assert world.api_keys.calls[-1] == f"delete {OLD_CREDENTIAL}"
    assert list(world.api_keys.credentials) == [current["credential_id"]]
    assert world.secret.labels["v0"] == ["AWSPREVIOUS"]
    # AND no access key of the Bedrock user was touched
    assert world.iam.calls == []


def test_an_api_key_rotation_deletes_a_credential_a_failed_rotation_left_so_the_user_stays_within_two() -> (
    None
):
    world = ApiKeyWorld({OLD_CREDENTIAL: "ABSK-old", "ACCALEFT00000001": "ABSK-left"})
    world.rotate_all()
    assert "ACCALEFT00000001" not in world.api_keys.credentials
    assert len(world.api_keys.credentials) == 1


def test_a_retried_api_key_create_keeps_the_credential_it_stored() -> None:
    world = ApiKeyWorld()
    world.secret.begin(TOKEN)
    world.step("createSecret")
    pending = world.secret.value("s", stage="AWSPENDING")
    world.step("createSecret")
    assert world.secret.value("s", stage="AWSPENDING") == pending
    assert sum(call.startswith("create") for call in world.api_keys.calls) == 1


def test_an_api_key_bedrock_refuses_fails_the_rotation_and_leaves_the_current_key() -> None:
    world = ApiKeyWorld()
    world.probe.refusals = 99
    world.secret.begin(TOKEN)
    world.step("createSecret")
    with pytest.raises(CredentialRotationFailed):
        world.step("testSecret")
    assert world.secret.current() == api_key_json()
    ((detail_type, detail),) = world.events.published
    assert detail_type == "Security Alert"
    assert "ABSK" not in json.dumps(detail)


def test_an_api_key_secret_without_a_key_manager_secret_fails_before_touching_iam() -> None:
    world = ApiKeyWorld(manager_secret=False)
    world.secret.begin(TOKEN)
    with pytest.raises(CredentialRotationFailed):
        world.step("createSecret")
    assert world.api_keys.calls == []
    assert world.secret.current() == api_key_json()
