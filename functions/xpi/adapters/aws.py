"""boto3 clients for the GovCloud side, created on first use (never at import) and reused."""

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_stepfunctions import SFNClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)


@cache
def dynamodb() -> "DynamoDBServiceResource":
    return boto3.resource("dynamodb", config=_CONFIG)


@cache
def events() -> "EventBridgeClient":
    return boto3.client("events", config=_CONFIG)


@cache
def s3() -> "S3Client":
    return boto3.client("s3", config=_CONFIG)


@cache
def secretsmanager() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", config=_CONFIG)


@cache
def stepfunctions() -> "SFNClient":
    return boto3.client("stepfunctions", config=_CONFIG)
