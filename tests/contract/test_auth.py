"""Authentication as Bedrock does it: SigV4 against configured keys, Bedrock API keys, rotation."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig, EmulatorControl

from .support import (
    API_KEY,
    API_KEY_NAME,
    HAIKU,
    KEY_ID,
    NO_RETRIES,
    SECRET,
    SESSION_KEY_ID,
    SESSION_SECRET,
    SESSION_TOKEN,
    error_of,
    send_signed,
    user,
)

if TYPE_CHECKING:
    from .conftest import ClientFactory

BAD_TOKEN = ("UnrecognizedClientException", "The security token included in the request is invalid.", 403)
BAD_SIGNATURE = (
    "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access "
    "Key and signing method. Consult the service documentation for details.",
    403,
)


def converse_error(client: object) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as excinfo:
        client.converse(modelId=HAIKU, messages=user("hello"))  # type: ignore[attr-defined]
    return error_of(excinfo)


def test_an_unknown_access_key_is_an_unrecognized_client(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    client = make_client("bedrock-runtime", emulator.url, key_id="AKIANOTCONFIGURED000", secret=SECRET)

    assert converse_error(client) == BAD_TOKEN


def test_a_wrong_secret_is_an_invalid_signature(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    client = make_client("bedrock-runtime", emulator.url, secret="not-the-secret")

    assert converse_error(client) == BAD_SIGNATURE


def test_the_control_plane_client_is_authenticated_too(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    client = make_client("bedrock", emulator.url, secret="not-the-secret")

    with pytest.raises(ClientError) as excinfo:
        client.list_foundation_models()

    assert error_of(excinfo) == BAD_SIGNATURE


def test_a_tampered_body_is_an_invalid_signature(emulator: BedrockEmulator) -> None:
    path = f"/model/{HAIKU.replace(':', '%3A')}/converse"
    signed_for = json.dumps({"messages": user("hello")}).encode()

    response = send_signed(
        emulator.url, "POST", path, signed_for, send_body=signed_for.replace(b"hello", b"HELLO")
    )

    assert (response.status, response.error_type) == (403, "InvalidSignatureException")


def test_a_credential_scoped_to_another_region_is_refused(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    client = make_client("bedrock-runtime", emulator.url, region="us-west-2")

    assert converse_error(client) == (
        "InvalidSignatureException",
        "Credential should be scoped to a valid region. ",
        403,
    )


def test_a_credential_scoped_to_another_service_is_refused(emulator: BedrockEmulator) -> None:
    path = f"/model/{HAIKU.replace(':', '%3A')}/converse"

    response = send_signed(
        emulator.url, "POST", path, json.dumps({"messages": user("hi")}).encode(), service="s3"
    )

    assert (response.status, response.error_type) == (403, "InvalidSignatureException")
    assert (
        json.loads(response.body)["message"] == "Credential should be scoped to correct service: 'bedrock'. "
    )


def test_a_signature_older_than_five_minutes_has_expired(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    # GIVEN the emulator's clock ten minutes ahead of the client's
    control.set_clock_offset(600)

    code, message, status = converse_error(make_client("bedrock-runtime", emulator.url))

    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("Signature expired: ")
    assert " is now earlier than " in message
    assert message.endswith(" - 5 min.)")


def test_a_signature_from_the_future_is_not_yet_current(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    control.set_clock_offset(-600)

    code, message, _ = converse_error(make_client("bedrock-runtime", emulator.url))

    assert code == "InvalidSignatureException"
    assert message.startswith("Signature not yet current: ")


def test_a_small_clock_skew_is_tolerated(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    control.set_clock_offset(240)

    response = make_client("bedrock-runtime", emulator.url).converse(modelId=HAIKU, messages=user("hi"))

    assert response["stopReason"] == "end_turn"


def test_temporary_credentials_need_their_session_token(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    good = make_client(
        "bedrock-runtime", emulator.url, key_id=SESSION_KEY_ID, secret=SESSION_SECRET, token=SESSION_TOKEN
    )
    missing = make_client("bedrock-runtime", emulator.url, key_id=SESSION_KEY_ID, secret=SESSION_SECRET)
    wrong = make_client(
        "bedrock-runtime", emulator.url, key_id=SESSION_KEY_ID, secret=SESSION_SECRET, token="another-token"
    )

    assert good.converse(modelId=HAIKU, messages=user("hi"))["stopReason"] == "end_turn"
    assert converse_error(missing) == BAD_TOKEN
    assert converse_error(wrong) == BAD_TOKEN


def test_expired_temporary_credentials_are_expired(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    control.add_access_key(
        "ASIAEXPIREDKEY000001", "expired-secret", "expired-token", expires_at=time.time() - 1
    )
    try:
        client = make_client(
            "bedrock-runtime",
            emulator.url,
            key_id="ASIAEXPIREDKEY000001",
            secret="expired-secret",
            token="expired-token",
        )
        assert converse_error(client) == (
            "ExpiredTokenException",
            "The security token included in the request is expired",
            403,
        )
    finally:
        control.revoke_access_key("ASIAEXPIREDKEY000001")


def test_a_revoked_key_fails_with_the_real_error_after_having_worked(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    # GIVEN a key added while the emulator runs, that works
    control.add_access_key("AKIAROTATEDKEY000001", "rotated-secret")
    assert "AKIAROTATEDKEY000001" in control.access_key_ids()
    client = make_client(
        "bedrock-runtime", emulator.url, key_id="AKIAROTATEDKEY000001", secret="rotated-secret"
    )
    assert client.converse(modelId=HAIKU, messages=user("before"))["stopReason"] == "end_turn"

    # WHEN it is revoked
    control.revoke_access_key("AKIAROTATEDKEY000001")
    assert "AKIAROTATEDKEY000001" not in control.keys()["access_keys"]

    # THEN the same client fails as Bedrock fails a deleted access key
    assert converse_error(client) == BAD_TOKEN
    counters = control.counters().key("AKIAROTATEDKEY000001")
    assert (counters.successes, counters.auth_failures) == (1, 1)
    assert counters.error_codes == {"UnrecognizedClientException": 1}


def test_rotation_keeps_both_keys_valid_until_the_old_one_is_revoked(
    emulator: BedrockEmulator, make_client: ClientFactory, control: EmulatorControl
) -> None:
    control.add_access_key("AKIAOLDKEY0000000001", "old-secret")
    old = make_client("bedrock-runtime", emulator.url, key_id="AKIAOLDKEY0000000001", secret="old-secret")
    new = make_client("bedrock-runtime", emulator.url, key_id="AKIANEWKEY0000000001", secret="new-secret")
    assert converse_error(new) == BAD_TOKEN

    control.add_access_key("AKIANEWKEY0000000001", "new-secret")
    assert old.converse(modelId=HAIKU, messages=user("overlap"))["stopReason"] == "end_turn"
    assert new.converse(modelId=HAIKU, messages=user("overlap"))["stopReason"] == "end_turn"

    control.revoke_access_key("AKIAOLDKEY0000000001")
    assert converse_error(old) == BAD_TOKEN
    assert new.converse(modelId=HAIKU, messages=user("after"))["stopReason"] == "end_turn"
    control.revoke_access_key("AKIANEWKEY0000000001")


def test_a_bedrock_api_key_is_accepted_as_a_bearer_token(
    emulator: BedrockEmulator,
    make_client: ClientFactory,
    control: EmulatorControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN boto3 configured the documented way for Bedrock API keys
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    client = make_client("bedrock-runtime", emulator.url, secret="unused-when-a-bearer-token-is-set")

    response = client.converse(modelId=HAIKU, messages=user("hi"))

    assert response["stopReason"] == "end_turn"
    assert control.counters().key(API_KEY_NAME).successes == 1


def test_an_unknown_or_revoked_api_key_is_refused(
    emulator: BedrockEmulator,
    make_client: ClientFactory,
    control: EmulatorControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = ("AccessDeniedException", "Authentication failed: Please make sure your API Key is valid.", 403)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKbm90LWEta2V5")
    assert converse_error(make_client("bedrock-runtime", emulator.url)) == refused

    label = control.add_api_key("ABSKcm90YXRlZC1rZXk=", name="rotating")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKcm90YXRlZC1rZXk=")
    client = make_client("bedrock-runtime", emulator.url)
    assert client.converse(modelId=HAIKU, messages=user("hi"))["stopReason"] == "end_turn"

    control.revoke_api_key(label)
    assert converse_error(client) == refused


def test_an_unsigned_request_is_missing_its_authentication_token(
    emulator: BedrockEmulator, make_client: ClientFactory
) -> None:
    client = make_client(
        "bedrock-runtime", emulator.url, config=NO_RETRIES.merge(Config(signature_version=UNSIGNED))
    )

    assert converse_error(client) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
        403,
    )


def test_nothing_secret_is_logged(make_client: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an emulator that logs every request
    config = EmulatorConfig(
        access_keys=[AccessKey(KEY_ID, SECRET), AccessKey(SESSION_KEY_ID, SESSION_SECRET, SESSION_TOKEN)],
        api_keys=[API_KEY],
        access_log=True,
    )
    caplog.set_level(logging.DEBUG, logger="xpi_tools.emulator")
    with BedrockEmulator(config) as emu:
        # WHEN successes and failures of every kind go through it
        make_client("bedrock-runtime", emu.url).converse(modelId=HAIKU, messages=user("hi"))
        make_client(
            "bedrock-runtime", emu.url, key_id=SESSION_KEY_ID, secret=SESSION_SECRET, token=SESSION_TOKEN
        ).converse(modelId=HAIKU, messages=user("hi"))
        converse_error(make_client("bedrock-runtime", emu.url, secret="wrong-secret-value"))
        emu.control.add_access_key("AKIALOGGEDKEY0000001", "added-secret-value", "added-token-value")
        emu.control.keys()

    # THEN requests were logged, but no secret, session token or API key
    assert "POST /model/" in caplog.text
    for secret in (
        SECRET,
        SESSION_SECRET,
        SESSION_TOKEN,
        API_KEY,
        "wrong-secret-value",
        "added-secret-value",
        "added-token-value",
    ):
        assert secret not in caplog.text
