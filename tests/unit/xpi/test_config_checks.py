"""The configuration checks (xpi.domain.config_checks): each passes on a compliant stack and fails on a
stack misconfigured in the one way it looks for; the pass rate is compliant pairs over all pairs."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from xpi.domain.compliance_controls import CHECKS
from xpi.domain.config_checks import evaluate, pass_rate, run_checks, same_key
from xpi.models.compliance import ApiMethod, StackConfiguration
from xpi.services.compliance import check_configuration

from tests.helpers.fakes_compliance import (
    STACK_KEY,
    FakeCheckRuns,
    FakeConfigurationReader,
    compliant_configuration,
)

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
Misconfigure = Callable[[StackConfiguration], None]


def _bucket_sse_s3(c: StackConfiguration) -> None:
    c.buckets[0].sse_algorithm, c.buckets[0].kms_key = "AES256", None


def _bucket_other_key(c: StackConfiguration) -> None:
    c.buckets[0].kms_key = STACK_KEY.replace("1111", "9999")


def _no_bucket_key(c: StackConfiguration) -> None:
    c.buckets[1].bucket_key = False


def _no_tls_policy(c: StackConfiguration) -> None:
    c.buckets[0].policy = None


def _tls_condition_inverted(c: StackConfiguration) -> None:
    assert c.buckets[0].policy is not None
    c.buckets[0].policy = {
        "Statement": [
            {**c.buckets[0].policy["Statement"][0], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
        ]
    }


def _public_policy_allowed(c: StackConfiguration) -> None:
    assert c.buckets[0].public_access_block is not None
    c.buckets[0].public_access_block["BlockPublicPolicy"] = False


def _versioning_suspended(c: StackConfiguration) -> None:
    c.buckets[0].versioning = "Suspended"


def _governance_lock(c: StackConfiguration) -> None:
    c.buckets[1].object_lock_mode = "GOVERNANCE"


def _no_lock(c: StackConfiguration) -> None:
    c.buckets[1].object_lock_mode, c.buckets[1].object_lock_days = None, None


def _short_retention(c: StackConfiguration) -> None:
    c.log_groups[0].retention_days = 30


def _log_group_plain(c: StackConfiguration) -> None:
    c.log_groups[0].kms_key = None


def _log_group_gone(c: StackConfiguration) -> None:
    c.log_groups[0].exists = False


def _rotation_off(c: StackConfiguration) -> None:
    c.keys[1].rotation_enabled = False


def _table_owned_key(c: StackConfiguration) -> None:
    c.tables[0].sse_type, c.tables[0].kms_key = None, None


def _no_pitr(c: StackConfiguration) -> None:
    c.tables[0].pitr = False


def _queue_sse_sqs(c: StackConfiguration) -> None:
    c.queues[0].kms_key = None


def _secret_not_rotating(c: StackConfiguration) -> None:
    c.secrets[0].rotation_enabled = False


def _secret_aws_managed_key(c: StackConfiguration) -> None:
    c.secrets[0].kms_key = None


def _admin_without_mfa(c: StackConfiguration) -> None:
    assert c.admin_policy is not None
    c.admin_policy = {
        "Statement": [{k: v for k, v in c.admin_policy["Statement"][0].items() if k != "Condition"}]
    }


def _admin_policy_unreadable(c: StackConfiguration) -> None:
    c.admin_policy = None


def _api_without_mfa_deny(c: StackConfiguration) -> None:
    assert c.api_policy is not None
    c.api_policy = {"Statement": [s for s in c.api_policy["Statement"] if s["Effect"] == "Allow"]}


def _open_method(c: StackConfiguration) -> None:
    c.api_methods.append(ApiMethod(path="/v1/models", method="GET", authorization="NONE"))


def _open_method_beside_the_page(c: StackConfiguration) -> None:
    # beside the page's open GETs, another method on its path
    c.api_methods.append(ApiMethod(path="/dashboard/{file}", method="PUT", authorization="NONE"))


def _no_methods(c: StackConfiguration) -> None:
    c.api_methods = []


MISCONFIGURATIONS: dict[str, list[Misconfigure]] = {
    "s3-default-encryption-kms": [_bucket_sse_s3, _bucket_other_key],
    "s3-bucket-key-enabled": [_no_bucket_key],
    "s3-ssl-requests-only": [_no_tls_policy, _tls_condition_inverted],
    "s3-public-access-blocked": [_public_policy_allowed],
    "s3-versioning-enabled": [_versioning_suspended],
    "s3-object-lock-compliance": [_governance_lock, _no_lock],
    "log-group-retention": [_short_retention],
    "log-group-encrypted": [_log_group_plain],
    "kms-key-rotation": [_rotation_off],
    "dynamodb-encrypted-stack-key": [_table_owned_key],
    "dynamodb-pitr-enabled": [_no_pitr],
    "sqs-encrypted-kms": [_queue_sse_sqs],
    "secrets-rotation-enabled": [_secret_not_rotating],
    "secrets-using-cmk": [_secret_aws_managed_key],
    "admin-policy-requires-mfa": [_admin_without_mfa, _admin_policy_unreadable],
    "api-policy-denies-admin-without-mfa": [_api_without_mfa_deny],
    "api-methods-iam-auth": [_open_method, _open_method_beside_the_page, _no_methods],
}
CASES = [(check, m) for check, ways in MISCONFIGURATIONS.items() for m in ways]


def test_every_check_has_a_misconfiguration_that_fails_it() -> None:
    assert set(MISCONFIGURATIONS) == set(CHECKS)


def test_a_compliant_stack_passes_every_check_at_100_percent() -> None:
    run = run_checks(compliant_configuration(), NOW)
    assert {c.check for c in run.checks} == set(CHECKS)
    assert all(c.status == "PASS" for c in run.checks), [e for e in run.evaluations if e.status == "FAIL"]
    assert run.pass_rate == 100.0


@pytest.mark.parametrize(("check", "misconfigure"), CASES, ids=[f"{c}-{m.__name__[1:]}" for c, m in CASES])
def test_each_check_fails_on_its_misconfiguration_and_only_it(check: str, misconfigure: Misconfigure) -> None:
    # GIVEN a compliant stack changed in one way
    configuration = compliant_configuration()
    misconfigure(configuration)
    # WHEN checked
    run = run_checks(configuration, NOW)
    # THEN that check fails, the others pass, and the rate is below 100
    failed = {c.check for c in run.checks if c.status == "FAIL"}
    assert failed == {check}
    assert run.pass_rate < 100.0
    assert all(e.config_rule == CHECKS[e.check].config_rule for e in run.evaluations)


def test_a_missing_log_group_fails_both_log_checks() -> None:
    configuration = compliant_configuration()
    _log_group_gone(configuration)
    failed = {e.check for e in evaluate(configuration) if e.status == "FAIL"}
    assert failed == {"log-group-retention", "log-group-encrypted"}


def test_the_pass_rate_counts_resource_evaluations() -> None:
    configuration = compliant_configuration()
    _no_pitr(configuration)
    evaluations = evaluate(configuration)
    failed = [e for e in evaluations if e.status == "FAIL"]
    assert len(failed) == 1
    assert pass_rate(evaluations) == round(100 * (len(evaluations) - 1) / len(evaluations), 2)


def test_keys_compare_by_id_or_arn() -> None:
    assert same_key(STACK_KEY.rsplit("/", 1)[-1], STACK_KEY)
    assert not same_key(None, STACK_KEY)
    assert not same_key("", STACK_KEY)


def test_the_checker_stores_the_run_the_report_reads() -> None:
    store = FakeCheckRuns()
    run = check_configuration(FakeConfigurationReader(compliant_configuration()), store, NOW)
    assert store.latest() == run
    assert run.checked_at == NOW


def test_a_policy_with_a_statement_that_is_not_an_object_is_read_without_it() -> None:
    # GIVEN the API's policy as a resolver may leave it, an omitted optional statement as null
    configuration = compliant_configuration()
    assert configuration.api_policy is not None
    configuration.api_policy = {"Statement": [None, *configuration.api_policy["Statement"]]}
    # WHEN / THEN the checks read the statements that are there
    assert run_checks(configuration, NOW).pass_rate == 100.0
