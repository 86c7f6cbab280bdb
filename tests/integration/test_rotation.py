"""Rotation of the commercial access key on the local stack: Secrets Manager's RotateSecret runs the
rotation function (createSecret, setSecret, testSecret, finishSecret) against the emulator's commercial
IAM and Bedrock, while requests flow (docs/operations.md, "Commercial credentials")."""

import json
import threading
import time
import uuid
from typing import Any

import pytest

from tests.helpers.stack import LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration

COMMERCIAL_USER = "xpi-bedrock"


def commercial_keys(local_stack: LocalStackClient) -> set[str]:
    """The commercial user's access key ids, as the emulator's IAM holds them."""
    from xpi_tools.emulator import EmulatorControl

    return set(EmulatorControl(local_stack.state["emulator_control"]).access_key_ids())


def _upload_one_line(local_stack: LocalStackClient, line: dict[str, Any]) -> str:
    """Upload a one-line batch file under the caller's own prefix; its line's request id."""
    from xpi.domain.batch import batch_id_for

    bucket = local_stack.outputs["BatchInputBucketName"]
    uploader = local_stack.client("sts").get_caller_identity()["UserId"]
    key = f"incoming/{uploader}/aged-{uuid.uuid4().hex[:8]}.jsonl"
    body = json.dumps(line).encode() + b"\n"
    etag = local_stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
    return f"{batch_id_for(bucket, key, etag)}-1"


def stages(local_stack: LocalStackClient) -> dict[str, list[str]]:
    described = local_stack.client("secretsmanager").describe_secret(
        SecretId=local_stack.outputs["CommercialCredentialsSecretArn"]
    )
    return dict(described["VersionIdsToStages"])


def current_version(local_stack: LocalStackClient) -> str:
    return next(v for v, labels in stages(local_stack).items() if "AWSCURRENT" in labels)


def test_a_rotation_while_requests_flow_fails_none_and_leaves_only_the_new_key(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN the stack's commercial key, and requests flowing
    old_keys = commercial_keys(local_stack)
    assert len(old_keys) == 1
    old_version = current_version(local_stack)
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set() or len(sent) < 12:
            sent.append(local_stack.send({"model": "default", "prompt": f"rotation traffic {len(sent)}"}))
            stop.wait(0.25)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        # WHEN the operator (or the schedule) rotates the secret
        local_stack.client("secretsmanager").rotate_secret(
            SecretId=local_stack.outputs["CommercialCredentialsSecretArn"]
        )
        rotated_at = time.time()
        # and requests keep coming for a while after it
        while time.time() - rotated_at < 3:
            stop.wait(0.25)
    finally:
        stop.set()
        producer.join(timeout=30)

    # THEN every request was answered, none failed
    outcomes: dict[str, Any] = {r: results.wait_for(r, timeout_s=180) for r in sent}
    failed = {
        r: e["detail"].get("error") for r, e in outcomes.items() if e["detail-type"] != "Inference Completed"
    }
    assert failed == {}
    # AND the secret's current version is a new one, the old version AWSPREVIOUS
    new_version = current_version(local_stack)
    assert new_version != old_version
    assert stages(local_stack)[old_version] == ["AWSPREVIOUS"]
    # AND the commercial user holds exactly one key: the new one (the old one is deleted)
    new_keys = commercial_keys(local_stack)
    assert len(new_keys) == 1 and new_keys.isdisjoint(old_keys)
    # AND requests sent after the rotation were signed with the new version
    versions = {r: (local_stack.lineage(r) or {}).get("credential_version") for r in sent}
    assert versions[sent[-1]] == new_version
    assert set(versions.values()) <= {old_version, new_version}
    # AND lineage records the credential's type and age: the new key, made by the rotation moments ago
    last = local_stack.lineage(sent[-1]) or {}
    assert last.get("credential_type") == "iam-access-key"
    assert 0 <= int(last["credential_age_s"]) < 300


def test_emergency_revocation_fails_closed_and_recovers_without_a_deploy(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    """docs/operations.md, "Emergency revocation", step by step."""
    from xpi_tools.emulator import EmulatorControl

    control = EmulatorControl(local_stack.state["emulator_control"])
    secrets = local_stack.client("secretsmanager")
    secret_arn = local_stack.outputs["CommercialCredentialsSecretArn"]
    (compromised,) = commercial_keys(local_stack)

    # 1. The commercial account's administrator deletes the compromised key.
    control.revoke_access_key(compromised)
    # 2. Requests fail closed: CredentialsRejected, nothing answered by the model.
    refused = local_stack.send({"model": "default", "prompt": "after revocation"})
    event = results.wait_for(refused, timeout_s=120)
    assert event["detail-type"] == "Inference Failed"
    assert event["detail"]["error"]["code"] == "CredentialsRejected"
    # 3. The administrator makes a new key for the user; the operator puts it in the secret.
    replacement_id = "AKIA" + secrets_token(16)
    replacement_secret = secrets_token(40)
    control.add_access_key(replacement_id, replacement_secret)
    secrets.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {"type": "iam", "aws_access_key_id": replacement_id, "aws_secret_access_key": replacement_secret}
        ),
    )
    # 4. Requests are answered again: the invoke step re-reads the secret once it is refused.
    recovered = local_stack.send({"model": "default", "prompt": "after the new key"})
    assert results.wait_for(recovered, timeout_s=120)["detail-type"] == "Inference Completed"
    # 5. A rotation from the hand-made key works, and leaves one key: neither the revoked one nor it.
    secrets.rotate_secret(SecretId=secret_arn)
    keys = commercial_keys(local_stack)
    assert len(keys) == 1 and keys.isdisjoint({compromised, replacement_id})
    after = local_stack.send({"model": "default", "prompt": "after the rotation"})
    assert results.wait_for(after, timeout_s=120)["detail-type"] == "Inference Completed"


def secrets_token(length: int) -> str:
    import secrets

    return secrets.token_hex(length)[:length].upper()


def test_a_failed_rotation_raises_a_security_alert_and_keeps_the_current_key(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    from botocore.exceptions import ClientError
    from xpi_tools.emulator import EmulatorControl

    secrets = local_stack.client("secretsmanager")
    secret_arn = local_stack.outputs["CommercialCredentialsSecretArn"]
    before = current_version(local_stack)
    token = str(uuid.uuid4())
    # GIVEN commercial Bedrock refusing the rotation's test call
    EmulatorControl(local_stack.state["emulator_control"]).inject_fault(
        "ValidationException", model="anthropic.claude-3-haiku-20240307-v1:0", count=1
    )
    # WHEN the secret is rotated
    with pytest.raises(ClientError) as failed:
        secrets.rotate_secret(SecretId=secret_arn, ClientRequestToken=token)
    assert failed.value.response["Error"]["Code"] == "InvalidRequestException"
    # THEN a Security Alert names the failed step, and the current key stays current
    alert = results.wait_for(f"rotation-{token}", timeout_s=60)
    assert alert["detail-type"] == "Security Alert"
    assert alert["detail"]["credentials"] == {
        "change": "rotation_failed", "step": "testSecret", "error": "CredentialRotationFailed"
    }  # fmt: skip
    assert current_version(local_stack) == before
    # AND the next rotation deletes the key the failed one made, and succeeds
    secrets.rotate_secret(SecretId=secret_arn)
    assert current_version(local_stack) != before
    assert len(commercial_keys(local_stack)) == 1


def test_a_credential_past_its_maximum_age_raises_one_security_alert(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    from datetime import UTC, datetime, timedelta

    from xpi_tools.emulator import EmulatorControl

    control = EmulatorControl(local_stack.state["emulator_control"])
    secrets = local_stack.client("secretsmanager")
    secret_arn = local_stack.outputs["CommercialCredentialsSecretArn"]
    (current,) = commercial_keys(local_stack)
    # GIVEN a key made 100 days ago (its rotation kept failing) put in the secret, and the key the invoke
    # step has cached revoked, so the next request re-reads the secret and signs with the aged one
    aged_id, aged_secret = "AKIA" + secrets_token(16), secrets_token(40)
    control.add_access_key(aged_id, aged_secret)
    created_at = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    aged_version = secrets.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {
                "type": "iam",
                "aws_access_key_id": aged_id,
                "aws_secret_access_key": aged_secret,
                "created_at": created_at,
            }
        ),
    )["VersionId"]
    control.revoke_access_key(current)
    try:
        # WHEN two queued requests and a batch line (the inference workflow's own invoke step) are
        # answered with it
        sent = [local_stack.send({"model": "default", "prompt": f"aged key {n}"}) for n in range(2)]
        sent.append(_upload_one_line(local_stack, {"model": "default", "prompt": "aged key, batch line"}))
        for request_id in sent:
            assert results.wait_for(request_id, timeout_s=120)["detail-type"] == "Inference Completed"
            item = local_stack.lineage(request_id)
            assert item is not None and item["credential_version"] == aged_version
        # THEN a Security Alert names the credential's type, version and age (never the key)
        alert = results.wait_for(f"credential-{aged_version}", timeout_s=60)
        assert alert["detail-type"] == "Security Alert"
        assert alert["detail"]["decision"] == "past_max_age"
        credentials = alert["detail"]["credentials"]
        assert credentials["credential_version"] == aged_version
        assert credentials["credential_type"] == "iam-access-key"
        assert credentials["credential_age_s"] > 90 * 86400
        assert aged_id not in json.dumps(alert) and aged_secret not in json.dumps(alert)
    finally:
        # AND a rotation puts a fresh key back for the tests after this one
        secrets.rotate_secret(SecretId=secret_arn)
    assert len(commercial_keys(local_stack)) == 1
