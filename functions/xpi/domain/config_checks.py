"""Configuration checks of the stack's own resources, the tests AWS Config managed rules make, over a
snapshot of their live configuration (`StackConfiguration`, read by an adapter). Pure: no AWS here.

Each check evaluates every resource it applies to, as a managed rule does; `run_checks` summarises them
per check (FAIL when any resource fails) and computes the pass rate as AWS Config's conformance packs
compute their compliance score: compliant (check, resource) pairs over all pairs.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from xpi.domain.compliance_controls import CHECKS
from xpi.models.compliance import (
    CheckEvaluation,
    CheckRun,
    CheckSummary,
    StackConfiguration,
)

PUBLIC_ACCESS_SETTINGS: Final = (
    "BlockPublicAcls",
    "BlockPublicPolicy",
    "IgnorePublicAcls",
    "RestrictPublicBuckets",
)
ADMIN_PATH: Final = "/v1/admin/"


# The dashboard page's static files (no data): open by design, since the browser has no credentials
# before it signs in (docs/dashboard.md, "Hosting"). Every other method must be AWS_IAM.
OPEN_PAGE_METHODS: Final = frozenset({"GET /dashboard", "GET /dashboard/{file}"})


def key_id(key: str | None) -> str:
    """A KMS key's id from its id or ARN (`arn:...:key/<id>`), so both forms compare."""
    return (key or "").rsplit("/", 1)[-1] if (key or "").startswith("arn:") else (key or "")


def same_key(actual: str | None, expected: str) -> bool:
    return bool(actual) and key_id(actual) == key_id(expected)


def _evaluation(check: str, resource: str, passed: bool, detail: str) -> CheckEvaluation:
    return CheckEvaluation(
        check=check,
        config_rule=CHECKS[check].config_rule,
        resource=resource,
        status="PASS" if passed else "FAIL",
        detail=detail,
    )


def _statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not document:
        return []
    statements = document.get("Statement", [])
    listed = [statements] if isinstance(statements, Mapping) else list(statements)
    return [statement for statement in listed if isinstance(statement, Mapping)]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _truthy(value: Any) -> bool:
    return str(_listed(value)[0]).lower() == "true" if value is not None else False


def _falsy(value: Any) -> bool:
    return str(_listed(value)[0]).lower() == "false" if value is not None else False


def denies_without_tls(policy: Mapping[str, Any] | None) -> bool:
    """S3_BUCKET_SSL_REQUESTS_ONLY: a Deny of s3:* (or *) to every principal when aws:SecureTransport is
    false."""
    for statement in _statements(policy):
        if statement.get("Effect") != "Deny" or statement.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if not {"s3:*", "*"} & {str(a) for a in _listed(statement.get("Action", []))}:
            continue
        condition = statement.get("Condition", {})
        if _falsy(condition.get("Bool", {}).get("aws:SecureTransport")):
            return True
    return False


def _s3(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    for bucket in config.buckets:
        encrypted = bucket.sse_algorithm == "aws:kms" and same_key(bucket.kms_key, bucket.expected_key)
        yield _evaluation(
            "s3-default-encryption-kms",
            bucket.name,
            encrypted,
            f"default encryption {bucket.sse_algorithm or 'none'}, key {key_id(bucket.kms_key) or 'none'}",
        )
        yield _evaluation(
            "s3-bucket-key-enabled",
            bucket.name,
            bucket.bucket_key,
            f"bucket key {'on' if bucket.bucket_key else 'off'}",
        )
        tls_only = denies_without_tls(bucket.policy)
        yield _evaluation(
            "s3-ssl-requests-only",
            bucket.name,
            tls_only,
            "the policy denies requests without TLS" if tls_only else "no Deny on aws:SecureTransport false",
        )
        block = bucket.public_access_block or {}
        missing = [name for name in PUBLIC_ACCESS_SETTINGS if not block.get(name)]
        yield _evaluation(
            "s3-public-access-blocked",
            bucket.name,
            not missing,
            "all four settings on" if not missing else f"off: {', '.join(missing)}",
        )
        yield _evaluation(
            "s3-versioning-enabled",
            bucket.name,
            bucket.versioning == "Enabled",
            f"versioning {bucket.versioning or 'never enabled'}",
        )
        if bucket.object_lock_required:
            locked = bucket.object_lock_mode == "COMPLIANCE" and (bucket.object_lock_days or 0) > 0
            yield _evaluation(
                "s3-object-lock-compliance",
                bucket.name,
                locked,
                f"default retention {bucket.object_lock_mode or 'none'} {bucket.object_lock_days or 0} days",
            )


def _logs(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    minimum = config.min_log_retention_days
    for group in config.log_groups:
        if not group.exists:
            yield _evaluation("log-group-retention", group.name, False, "the log group does not exist")
            yield _evaluation("log-group-encrypted", group.name, False, "the log group does not exist")
            continue
        # No retention: logs are kept forever, which meets any minimum.
        kept = group.retention_days is None or group.retention_days >= minimum
        days = "never expire" if group.retention_days is None else f"{group.retention_days} days"
        yield _evaluation(
            "log-group-retention", group.name, kept, f"retention {days}, minimum {minimum} days"
        )
        yield _evaluation(
            "log-group-encrypted",
            group.name,
            bool(group.kms_key),
            f"KMS key {key_id(group.kms_key)}" if group.kms_key else "no KMS key",
        )


def _keys(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    for key in config.keys:
        yield _evaluation(
            "kms-key-rotation",
            key.arn,
            key.rotation_enabled,
            f"rotation {'on' if key.rotation_enabled else 'off'}",
        )


def _tables(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    for table in config.tables:
        encrypted = table.sse_type == "KMS" and same_key(table.kms_key, table.expected_key)
        yield _evaluation(
            "dynamodb-encrypted-stack-key",
            table.name,
            encrypted,
            f"SSE {table.sse_type or 'owned by DynamoDB'} with key {key_id(table.kms_key) or 'none'}",
        )
        yield _evaluation(
            "dynamodb-pitr-enabled", table.name, table.pitr, f"PITR {'on' if table.pitr else 'off'}"
        )


def _queues(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    for queue in config.queues:
        name = queue.url.rsplit("/", 1)[-1]
        yield _evaluation(
            "sqs-encrypted-kms",
            name,
            same_key(queue.kms_key, queue.expected_key),
            f"KMS key {key_id(queue.kms_key) or 'none'}",
        )


def _secrets(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    for secret in config.secrets:
        name = secret.arn.rsplit(":", 1)[-1]
        if secret.rotation_required:
            yield _evaluation(
                "secrets-rotation-enabled",
                name,
                secret.rotation_enabled,
                f"rotation {'on' if secret.rotation_enabled else 'off'}",
            )
        yield _evaluation(
            "secrets-using-cmk",
            name,
            same_key(secret.kms_key, secret.expected_key),
            f"KMS key {key_id(secret.kms_key) or 'the AWS managed key'}",
        )


def _admin_statements_need_mfa(policy: Mapping[str, Any] | None) -> tuple[bool, str]:
    allows = [s for s in _statements(policy) if s.get("Effect") == "Allow"]
    if not allows:
        return False, "the admin policy could not be read or allows nothing"
    for statement in allows:
        if not _truthy(statement.get("Condition", {}).get("Bool", {}).get("aws:MultiFactorAuthPresent")):
            return (
                False,
                f"statement {statement.get('Sid', '(no Sid)')} allows without aws:MultiFactorAuthPresent",
            )
    return True, "every Allow requires aws:MultiFactorAuthPresent true"


def _api_denies_admin_without_mfa(policy: Mapping[str, Any] | None) -> bool:
    for statement in _statements(policy):
        if statement.get("Effect") != "Deny":
            continue
        if not any(ADMIN_PATH in str(resource) for resource in _listed(statement.get("Resource", []))):
            continue
        condition = statement.get("Condition", {})
        for operator in ("Bool", "BoolIfExists"):
            if _falsy(condition.get(operator, {}).get("aws:MultiFactorAuthPresent")):
                return True
    return False


def _access(config: StackConfiguration) -> Iterator[CheckEvaluation]:
    passed, detail = _admin_statements_need_mfa(config.admin_policy)
    yield _evaluation(
        "admin-policy-requires-mfa", config.admin_policy_arn or "ApiAdminPolicy", passed, detail
    )
    denies = _api_denies_admin_without_mfa(config.api_policy)
    yield _evaluation(
        "api-policy-denies-admin-without-mfa",
        config.api_id or "XpiApi",
        denies,
        "a Deny on the admin routes when aws:MultiFactorAuthPresent is false"
        if denies
        else "no Deny on the admin routes without MFA",
    )
    unsigned = {f"{m.method} {m.path}" for m in config.api_methods if m.authorization != "AWS_IAM"}
    open_methods = sorted(unsigned - OPEN_PAGE_METHODS)
    if not config.api_methods:
        yield _evaluation("api-methods-iam-auth", config.api_id or "XpiApi", False, "no API methods found")
    else:
        yield _evaluation(
            "api-methods-iam-auth",
            config.api_id or "XpiApi",
            not open_methods,
            f"{len(config.api_methods)} methods, all AWS_IAM"
            + (f" but the dashboard page's static files ({', '.join(sorted(unsigned))})" if unsigned else "")
            if not open_methods
            else f"not AWS_IAM: {', '.join(open_methods)}",
        )


EVALUATORS: Final[tuple[Callable[[StackConfiguration], Iterable[CheckEvaluation]], ...]] = (
    _s3,
    _logs,
    _keys,
    _tables,
    _queues,
    _secrets,
    _access,
)


def evaluate(config: StackConfiguration) -> list[CheckEvaluation]:
    return [evaluation for evaluator in EVALUATORS for evaluation in evaluator(config)]


def pass_rate(evaluations: Iterable[CheckEvaluation]) -> float:
    listed = list(evaluations)
    if not listed:
        return 0.0
    return round(100 * sum(e.status == "PASS" for e in listed) / len(listed), 2)


def summarise(evaluations: Iterable[CheckEvaluation]) -> list[CheckSummary]:
    listed = list(evaluations)
    summaries = []
    for check, info in CHECKS.items():
        mine = [e for e in listed if e.check == check]
        if not mine:
            continue
        failed = sum(e.status == "FAIL" for e in mine)
        summaries.append(
            CheckSummary(
                check=check,
                title=info.title,
                config_rule=info.config_rule,
                controls=list(info.controls),
                status="FAIL" if failed else "PASS",
                evaluations=len(mine),
                failed=failed,
            )
        )
    return summaries


def run_checks(config: StackConfiguration, now: datetime) -> CheckRun:
    evaluations = evaluate(config)
    return CheckRun(
        checked_at=now,
        pass_rate=pass_rate(evaluations),
        evaluations=evaluations,
        checks=summarise(evaluations),
    )
