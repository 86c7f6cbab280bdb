"""The lineage seal's resources as the template deploys them: what the local stack cannot enforce
(compliance-mode retention against the root user) is checked here (docs/local-stack.md, docs/audit.md)."""

from typing import Any

from xpi.settings import Settings

from tests.unit.tools.test_statemachines import TEMPLATE

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    return [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found |= {action} if isinstance(action, str) else set(action)
    return found


def test_digests_are_kept_in_compliance_mode_for_the_retention_parameter() -> None:
    bucket = RESOURCES["LineageDigestBucket"]
    properties = bucket["Properties"]
    assert properties["ObjectLockEnabled"] is True
    assert properties["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": {"Ref": "LineageDigestRetentionDays"}}},
    }
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_the_digest_bucket_is_encrypted_private_and_tls_only() -> None:
    properties = RESOURCES["LineageDigestBucket"]["Properties"]
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(properties["PublicAccessBlockConfiguration"].values())
    (deny,) = RESOURCES["LineageDigestBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_signing_key_is_asymmetric_and_kept() -> None:
    key = RESOURCES["LineageSigningKey"]
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert key["DeletionPolicy"] == "Retain"


def test_the_seal_may_write_digests_but_never_remove_or_unlock_them() -> None:
    actions = _actions(_statements(RESOURCES["LineageSealFunction"]["Properties"]["Policies"]))
    assert actions == {
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Sign",
    }


def test_the_auditor_reads_what_verify_needs_and_writes_nothing() -> None:
    statements = RESOURCES["AuditorReadPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert _actions(statements) == {
        "execute-api:Invoke",
        "s3:GetObject",
        "s3:ListBucket",
        "kms:GetPublicKey",
        "dynamodb:Query",
        "kms:Decrypt",
    }


def test_a_day_settles_after_the_reaper_has_ended_its_last_request() -> None:
    # A day is sealed only once no record of it can still be ACCEPTED: past the reaper's bound and period.
    parameters = TEMPLATE["Parameters"]
    reaper_s = int(parameters["ReaperAbandonAfterSeconds"]["Default"]) + 60 * int(
        parameters["ReaperRateMinutes"]["Default"]
    )
    assert Settings.model_validate({}).lineage_seal_settle_s > reaper_s
