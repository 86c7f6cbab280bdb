"""The compliance report and the configuration checks: what the checker stores, what the report route
answers (docs/compliance.md).

A configuration check evaluates one resource of the stack, as an AWS Config managed rule evaluates a
resource: one `CheckEvaluation` per (check, resource). The pass rate is the share of compliant
evaluations (AWS Config's conformance pack compliance score: compliant rule-resource pairs over all).
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------- live configuration
class BucketConfig(_Model):
    name: str
    expected_key: str  # the key ARN the bucket must encrypt with
    object_lock_required: bool = False
    sse_algorithm: str | None = None
    kms_key: str | None = None
    bucket_key: bool = False
    policy: dict[str, Any] | None = None
    public_access_block: dict[str, bool] | None = None
    versioning: str | None = None
    object_lock_mode: str | None = None
    object_lock_days: int | None = None


class LogGroupConfig(_Model):
    name: str
    exists: bool = True
    retention_days: int | None = None
    kms_key: str | None = None


class KeyConfig(_Model):
    arn: str
    rotation_enabled: bool = False


class TableConfig(_Model):
    name: str
    expected_key: str
    sse_type: str | None = None
    kms_key: str | None = None
    pitr: bool = False


class QueueConfig(_Model):
    url: str
    expected_key: str
    kms_key: str | None = None


class SecretConfig(_Model):
    arn: str
    expected_key: str
    rotation_required: bool
    rotation_enabled: bool = False
    kms_key: str | None = None


class ApiMethod(_Model):
    path: str
    method: str
    authorization: str | None


class StackConfiguration(_Model):
    """The stack's own resources as read from their live configuration (read-only Describe/Get calls)."""

    min_log_retention_days: int
    buckets: list[BucketConfig] = []
    log_groups: list[LogGroupConfig] = []
    keys: list[KeyConfig] = []
    tables: list[TableConfig] = []
    queues: list[QueueConfig] = []
    secrets: list[SecretConfig] = []
    admin_policy_arn: str = ""
    admin_policy: dict[str, Any] | None = None
    api_id: str = ""
    api_policy: dict[str, Any] | None = None
    api_methods: list[ApiMethod] = []


# ---------------------------------------------------------------------------------- check results
CheckStatus = Literal["PASS", "FAIL"]


class CheckEvaluation(_Model):
    check: str  # xpi's id of the check
    config_rule: str | None  # the AWS Config managed rule identifier it mirrors; None: no managed rule
    resource: str
    status: CheckStatus
    detail: str


class CheckSummary(_Model):
    check: str
    title: str
    config_rule: str | None
    controls: list[str]
    status: CheckStatus
    evaluations: int
    failed: int


class CheckRun(_Model):
    """What the checker stores (and the report reads): every evaluation, each check's verdict, the rate."""

    checked_at: datetime
    pass_rate: float  # 0..100, two decimals
    evaluations: list[CheckEvaluation]
    checks: list[CheckSummary]


# ---------------------------------------------------------------------------------- report
class ConfigChange(_Model):
    """One version of the policy or routing parameter (SSM parameter history)."""

    document: str  # policy | routing
    version: int
    modified_at: datetime
    modified_by: str | None = None


class AdminAction(_Model):
    """An admin route call seen in the API's access log."""

    at: datetime
    caller: str | None = None
    method: str
    path: str
    status: int


class TamperCheck(_Model):
    performed: bool
    records: int = 0
    problems: list[dict[str, str | None]] = []
    intact: bool = False
    detail: str = ""


class ReportItem(_Model):
    item: str
    title: str
    controls: list[str]
    justification: str
    figures: dict[str, Any]


class ComplianceReport(_Model):
    period_from: str = Field(serialization_alias="from")
    period_to: str = Field(serialization_alias="to")
    generated_at: datetime
    pass_rate: float | None
    checked_at: datetime | None
    checks: list[CheckSummary]
    evaluations: list[CheckEvaluation]
    items: list[ReportItem]


# ---------------------------------------------------------------------------------- what the checker reads
class BucketResource(_Model):
    name: str
    expected_key: str
    object_lock_required: bool = False


class KeyedResource(_Model):
    name: str  # a table's name, a queue's URL, a secret's ARN
    expected_key: str
    rotation_required: bool = False  # secrets only


class ComplianceResources(_Model):
    """The stack's own resources the checker reads (COMPLIANCE_RESOURCES, set by the template)."""

    min_log_retention_days: int = 365
    buckets: list[BucketResource] = []
    log_groups: list[str] = []
    keys: list[str] = []
    tables: list[KeyedResource] = []
    queues: list[KeyedResource] = []
    secrets: list[KeyedResource] = []
    admin_policy_arn: str = ""
    api_id: str = ""
