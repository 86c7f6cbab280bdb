"""Compliance: the stack's live configuration (read-only Describe/Get calls on its own resources), the
configuration checks' runs (S3, under compliance/), the policy and routing parameters' history (SSM),
the admin routes' calls (the API's access log) and the sources of the tamper check."""

import json
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError

from xpi.adapters import aws
from xpi.adapters.lineage_seal import day_records, digest_key, kms
from xpi.domain.lineage_verify import Sources
from xpi.models.compliance import (
    AdminAction,
    ApiMethod,
    BucketConfig,
    CheckRun,
    ComplianceResources,
    ConfigChange,
    KeyConfig,
    LogGroupConfig,
    QueueConfig,
    SecretConfig,
    StackConfiguration,
    TableConfig,
)

CHECKS_PREFIX: Final = "compliance/config-checks/"
LATEST_KEY: Final = f"{CHECKS_PREFIX}latest.json"
ADMIN_PATH: Final = "/v1/admin/"


@cache
def _client(service: str) -> Any:  # logs, kms, iam, apigateway: no stubs in the dev dependencies
    return boto3.client(service, config=aws.CONFIG)  # type: ignore[call-overload]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _absent(call: Any, *codes: str) -> Any:
    """The call's answer, or None when AWS answers that the configuration is not there."""
    try:
        return call()
    except ClientError as exc:
        if _code(exc) in codes:
            return None
        raise


class LiveStackConfiguration:
    """Reads the configuration of the resources named in COMPLIANCE_RESOURCES, nothing else."""

    def __init__(self, resources: ComplianceResources) -> None:
        self._resources = resources

    def read(self) -> StackConfiguration:
        r = self._resources
        admin_policy, api_policy, methods = self._admin_policy(), *self._api()
        return StackConfiguration(
            min_log_retention_days=r.min_log_retention_days,
            buckets=[self._bucket(b.name, b.expected_key, b.object_lock_required) for b in r.buckets],
            log_groups=[self._log_group(name) for name in r.log_groups],
            keys=[
                KeyConfig(
                    arn=arn,
                    rotation_enabled=bool(kms().get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"]),
                )
                for arn in r.keys
            ],
            tables=[self._table(t.name, t.expected_key) for t in r.tables],
            queues=[
                QueueConfig(
                    url=q.name,
                    expected_key=q.expected_key,
                    kms_key=aws.sqs()
                    .get_queue_attributes(QueueUrl=q.name, AttributeNames=["KmsMasterKeyId"])
                    .get("Attributes", {})
                    .get("KmsMasterKeyId"),
                )
                for q in r.queues
            ],
            secrets=[self._secret(s.name, s.expected_key, s.rotation_required) for s in r.secrets],
            admin_policy_arn=r.admin_policy_arn,
            admin_policy=admin_policy,
            api_id=r.api_id,
            api_policy=api_policy,
            api_methods=methods,
        )

    def _bucket(self, name: str, expected_key: str, lock_required: bool) -> BucketConfig:
        s3 = aws.s3()
        encryption = _absent(
            lambda: s3.get_bucket_encryption(Bucket=name), "ServerSideEncryptionConfigurationNotFoundError"
        )
        rules = (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        policy = _absent(lambda: s3.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy")
        block = _absent(
            lambda: s3.get_public_access_block(Bucket=name), "NoSuchPublicAccessBlockConfiguration"
        )
        config = BucketConfig(
            name=name,
            expected_key=expected_key,
            object_lock_required=lock_required,
            sse_algorithm=default.get("SSEAlgorithm"),
            kms_key=default.get("KMSMasterKeyID"),
            bucket_key=bool(rules and rules[0].get("BucketKeyEnabled")),
            policy=json.loads(policy["Policy"]) if policy else None,
            public_access_block=dict((block or {}).get("PublicAccessBlockConfiguration", {})) or None,
            versioning=s3.get_bucket_versioning(Bucket=name).get("Status"),
        )
        if lock_required:
            lock = _absent(
                lambda: s3.get_object_lock_configuration(Bucket=name), "ObjectLockConfigurationNotFoundError"
            )
            retention = (
                (lock or {}).get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {})
            )
            days = retention.get("Days") or 365 * int(retention.get("Years") or 0)
            config = config.model_copy(
                update={"object_lock_mode": retention.get("Mode"), "object_lock_days": days}
            )
        return config

    def _log_group(self, name: str) -> LogGroupConfig:
        groups = _client("logs").describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
        found = next((g for g in groups if g.get("logGroupName") == name), None)
        if found is None:
            return LogGroupConfig(name=name, exists=False)
        return LogGroupConfig(
            name=name, retention_days=found.get("retentionInDays"), kms_key=found.get("kmsKeyId")
        )

    def _table(self, name: str, expected_key: str) -> TableConfig:
        client = aws.dynamodb().meta.client
        sse = client.describe_table(TableName=name)["Table"].get("SSEDescription", {})
        backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
        enabled = sse.get("Status") in ("ENABLED", "ENABLING", "UPDATING")
        return TableConfig(
            name=name,
            expected_key=expected_key,
            sse_type=sse.get("SSEType") if enabled else None,
            kms_key=sse.get("KMSMasterKeyArn") if enabled else None,
            pitr=pitr,
        )

    def _secret(self, arn: str, expected_key: str, rotation_required: bool) -> SecretConfig:
        described = aws.secretsmanager().describe_secret(SecretId=arn)
        return SecretConfig(
            arn=arn,
            expected_key=expected_key,
            rotation_required=rotation_required,
            rotation_enabled=bool(described.get("RotationEnabled")),
            kms_key=described.get("KmsKeyId"),
        )

    def _admin_policy(self) -> dict[str, Any] | None:
        arn = self._resources.admin_policy_arn
        if not arn:
            return None
        iam = _client("iam")
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        return json.loads(document) if isinstance(document, str) else dict(document)

    def _api(self) -> tuple[dict[str, Any] | None, list[ApiMethod]]:
        api_id = self._resources.api_id
        if not api_id:
            return None, []
        gateway = _client("apigateway")
        raw_policy = gateway.get_rest_api(restApiId=api_id).get("policy")
        # API Gateway answers the resource policy as a JSON string with its quotes escaped.
        policy = json.loads(raw_policy.replace('\\"', '"')) if raw_policy else None
        methods: list[ApiMethod] = []
        for page in gateway.get_paginator("get_resources").paginate(restApiId=api_id, embed=["methods"]):
            for resource in page.get("items", []):
                for verb, method in (resource.get("resourceMethods") or {}).items():
                    if verb == "OPTIONS":
                        continue
                    methods.append(
                        ApiMethod(
                            path=resource.get("path", ""),
                            method=verb,
                            authorization=method.get("authorizationType"),
                        )
                    )
        return policy, methods


class S3CheckRuns:
    """Each run under compliance/config-checks/<time>.json, and the latest as latest.json (SSE-KMS with
    the bucket's default key and its Bucket Key)."""

    def __init__(self, bucket: str) -> None:
        self._bucket = bucket

    def put(self, run: CheckRun) -> None:
        body = run.model_dump_json().encode()
        stamp = run.checked_at.strftime("%Y-%m-%dT%H%M%SZ")
        for key in (f"{CHECKS_PREFIX}{stamp}.json", LATEST_KEY):
            aws.s3().put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="aws:kms",
                BucketKeyEnabled=True,
            )

    def latest(self) -> CheckRun | None:
        try:
            body = aws.s3().get_object(Bucket=self._bucket, Key=LATEST_KEY)["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return CheckRun.model_validate_json(body)


class DynamoDayLineage:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def day_records(self, day: date) -> list[dict[str, Any]]:
        return day_records(self._table_name, day)


class SsmConfigHistory:
    """The versions of the policy and routing parameters (GetParameterHistory: who and when; values are
    not read)."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self._parameters = parameters  # document -> parameter name

    def changes(self, since: datetime, until: datetime) -> list[ConfigChange]:
        found: list[ConfigChange] = []
        for document, name in self._parameters.items():
            if not name:
                continue
            arguments: dict[str, Any] = {"Name": name, "WithDecryption": False}
            while True:
                page = _absent(
                    lambda query=arguments: aws.ssm().get_parameter_history(**query),
                    "ParameterNotFound",
                )
                for version in (page or {}).get("Parameters", []):
                    at = version["LastModifiedDate"]
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)
                    if since <= at < until:
                        found.append(
                            ConfigChange(
                                document=document,
                                version=int(version["Version"]),
                                modified_at=at,
                                modified_by=version.get("LastModifiedUser"),
                            )
                        )
                if not page or not page.get("NextToken"):
                    break
                arguments["NextToken"] = page["NextToken"]
        return found


class AccessLogAdminActivity:
    """The admin routes' calls from the API's access log (one JSON line per call: the template's
    AccessLogSetting format)."""

    def __init__(self, log_group: str) -> None:
        self._log_group = log_group

    def actions(self, since: datetime, until: datetime) -> list[AdminAction]:
        if not self._log_group:
            return []
        arguments: dict[str, Any] = {
            "logGroupName": self._log_group,
            "startTime": int(since.timestamp() * 1000),
            "endTime": int(until.timestamp() * 1000),
            "filterPattern": f'"{ADMIN_PATH}"',
        }
        actions: list[AdminAction] = []
        logs = _client("logs")
        while True:
            page = _absent(lambda: logs.filter_log_events(**arguments), "ResourceNotFoundException") or {}
            for event in page.get("events", []):
                action = _admin_action(event)
                if action is not None:
                    actions.append(action)
            if not page.get("nextToken"):
                return actions
            arguments["nextToken"] = page["nextToken"]


def _admin_action(event: dict[str, Any]) -> AdminAction | None:
    try:
        line = json.loads(event.get("message", ""))
        path = str(line.get("path", ""))
        if not path.startswith(ADMIN_PATH):
            return None
        return AdminAction(
            at=datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC),
            caller=line.get("caller") or None,
            method=str(line.get("method", "")),
            path=path,
            status=int(line.get("status", 0)),
        )
    except (ValueError, TypeError, KeyError):
        return None


def tamper_sources(table_name: str, digest_bucket: str, signing_key: str) -> Sources:
    """What the tamper check reads: the day digests, a day's lineage, the signing key's public key."""

    def digest(day: date) -> dict[str, Any] | None:
        try:
            body = aws.s3().get_object(Bucket=digest_bucket, Key=digest_key(day))["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        document: dict[str, Any] = json.loads(body)
        return document

    keys: dict[str, bytes] = {}

    def public_key(key_id: str) -> bytes:
        if key_id not in keys:
            keys[key_id] = kms().get_public_key(KeyId=key_id)["PublicKey"]
        return keys[key_id]

    return Sources(digest, lambda day: day_records(table_name, day), public_key, signing_key)
