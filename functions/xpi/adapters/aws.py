"""boto3 clients for the GovCloud side, created on first use (never at import) and reused."""

from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

if TYPE_CHECKING:
    from mypy_boto3_comprehend import ComprehendClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

# Error codes AWS answers for a passing fault of its own (besides any HTTP 5xx).
_TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalServerError",
        "InternalFailure",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
    }
)


def is_transient(error: BaseException) -> bool:
    """Whether an AWS call failed for a passing fault of AWS's (5xx, throttling, the endpoint out of
    reach, no answer in time) rather than for what was asked: worth trying the step again. An error
    raised `from` such a fault is one too (a configuration loader's PolicyLoadError over SSM's 503)."""
    for _ in range(8):  # a chain is a few errors deep; never follow one round for ever
        if isinstance(error, ConnectionError | ReadTimeoutError):
            return True
        if isinstance(error, ClientError):
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return status >= 500 or error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
        if error.__cause__ is None:
            return False
        error = error.__cause__
    return False


_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)
CONFIG = _CONFIG  # for clients created outside this module


@cache
def comprehend() -> "ComprehendClient":
    return boto3.client("comprehend", config=_CONFIG)


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
def sqs() -> "SQSClient":
    return boto3.client("sqs", config=_CONFIG)


@cache
def ssm() -> "SSMClient":
    return boto3.client("ssm", config=_CONFIG)


@cache
def stepfunctions() -> "SFNClient":
    return boto3.client("stepfunctions", config=_CONFIG)


class LazyTable:
    """A DynamoDB table adapter's boto3 Table, built on first use and kept for the warm function (building
    one costs about a ms; never at import, before configuration)."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name
        self._resource: Any = None

    def _table(self) -> Any:
        if self._resource is None:
            self._resource = dynamodb().Table(self._table_name)
        return self._resource


def write_if(conditional_write: Callable[[], Any]) -> bool:
    """Run a conditional DynamoDB write: True when it was made, False when its condition failed."""
    try:
        conditional_write()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def transact_if(items: list[Any]) -> bool:
    """Run a DynamoDB transaction (plain Python values, as the Table methods take them): True when it
    was made, False when one of its conditions failed."""
    try:
        dynamodb().meta.client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        reasons: list[Any] = list(exc.response.get("CancellationReasons") or [])
        if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
            return False
        raise
    return True


def plain(value: Any) -> Any:
    """A DynamoDB value as JSON would hold it: Decimals back to ints and floats, sets to sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    return value
