"""In-memory fakes of the compliance ports, and a stack configuration that passes every check."""

from datetime import date, datetime
from typing import Any

from xpi.models.compliance import (
    AdminAction,
    ApiMethod,
    BucketConfig,
    CheckRun,
    ConfigChange,
    KeyConfig,
    LogGroupConfig,
    QueueConfig,
    SecretConfig,
    StackConfiguration,
    TableConfig,
)

STACK_KEY = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
QUEUE_KEY = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/66666666-2222-3333-4444-555555555555"
SECRET_KEY = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/77777777-2222-3333-4444-555555555555"
TLS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws-us-gov:s3:::b", "arn:aws-us-gov:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}
ALL_BLOCKED = dict.fromkeys(
    ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
)
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "execute-api:Invoke",
            "Resource": ["arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:abc/api/PUT/v1/admin/policy"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    ],
}
API_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws-us-gov:iam::123456789012:root"},
            "Action": "execute-api:Invoke",
        },
        {
            "Sid": "AdminRoutesOnlyWithMfa",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "execute-api:Invoke",
            "Resource": "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:*/*/*/v1/admin/*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}


def compliant_configuration() -> StackConfiguration:
    """A stack whose every resource passes every check."""

    def bucket(name: str, lock: bool = False) -> BucketConfig:
        return BucketConfig(
            name=name,
            expected_key=STACK_KEY,
            object_lock_required=lock,
            sse_algorithm="aws:kms",
            kms_key=STACK_KEY,
            bucket_key=True,
            policy=TLS_ONLY,
            public_access_block=dict(ALL_BLOCKED),
            versioning="Enabled",
            object_lock_mode="COMPLIANCE" if lock else None,
            object_lock_days=2557 if lock else None,
        )

    return StackConfiguration(
        min_log_retention_days=365,
        buckets=[bucket("artifacts"), bucket("digests", lock=True)],
        log_groups=[LogGroupConfig(name="/xpi/s/functions", retention_days=365, kms_key=STACK_KEY)],
        keys=[
            KeyConfig(arn=STACK_KEY, rotation_enabled=True),
            KeyConfig(arn=QUEUE_KEY, rotation_enabled=True),
        ],
        tables=[
            TableConfig(name="lineage", expected_key=STACK_KEY, sse_type="KMS", kms_key=STACK_KEY, pitr=True)
        ],
        queues=[
            QueueConfig(
                url="https://sqs.us-gov-west-1.amazonaws.com/123456789012/requests",
                expected_key=QUEUE_KEY,
                kms_key=QUEUE_KEY.rsplit("/", 1)[-1],
            )
        ],
        secrets=[
            SecretConfig(
                arn="arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:creds-AbCdEf",
                expected_key=SECRET_KEY,
                rotation_required=True,
                rotation_enabled=True,
                kms_key=SECRET_KEY,
            )
        ],
        admin_policy_arn="arn:aws-us-gov:iam::123456789012:policy/admin",
        admin_policy=ADMIN_POLICY,
        api_id="abc",
        api_policy=API_POLICY,
        api_methods=[
            ApiMethod(path="/v1/invoke", method="POST", authorization="AWS_IAM"),
            ApiMethod(path="/v1/admin/policy", method="PUT", authorization="AWS_IAM"),
            # the dashboard page's static files: open by design (docs/dashboard.md)
            ApiMethod(path="/dashboard", method="GET", authorization="NONE"),
            ApiMethod(path="/dashboard/{file}", method="GET", authorization="NONE"),
        ],
    )


class FakeConfigurationReader:
    def __init__(self, configuration: StackConfiguration) -> None:
        self.configuration = configuration

    def read(self) -> StackConfiguration:
        return self.configuration


class FakeCheckRuns:
    def __init__(self) -> None:
        self.runs: list[CheckRun] = []

    def put(self, run: CheckRun) -> None:
        self.runs.append(run)

    def latest(self) -> CheckRun | None:
        return self.runs[-1] if self.runs else None


class FakeDayLineage:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def day_records(self, day: date) -> list[dict[str, Any]]:
        return [r for r in self.records if r["day"] == day.isoformat()]


class FakeConfigHistory:
    def __init__(self, changes: list[ConfigChange]) -> None:
        self._changes = changes

    def changes(self, since: datetime, until: datetime) -> list[ConfigChange]:
        return [c for c in self._changes if since <= c.modified_at < until]


class FakeAdminActivity:
    def __init__(self, actions: list[AdminAction]) -> None:
        self._actions = actions

    def actions(self, since: datetime, until: datetime) -> list[AdminAction]:
        return [a for a in self._actions if since <= a.at < until]
