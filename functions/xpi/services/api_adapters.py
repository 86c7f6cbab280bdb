"""The reads and admin writes only the API needs, behind Protocols (kept beside the API's services so
the API's change stays in its own files; they can move to adapters/ unchanged)."""

import json
from datetime import date
from typing import Any, Protocol

from botocore.exceptions import ClientError

from xpi.adapters import aws


class ExecutionReader(Protocol):
    def describe(self, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """(status, output) of the request's execution; None when there is none."""
        ...


class LineageReader(Protocol):
    def get(self, request_id: str) -> dict[str, Any] | None: ...

    def by_day(self, day: date, since_iso: str, limit: int) -> list[dict[str, Any]]:
        """Items of one day created at or after since_iso, newest first."""
        ...


class BatchReader(Protocol):
    def status(self, batch_id: str) -> dict[str, Any] | None: ...


class AdminActions(Protocol):
    def put_policy(self, text: str) -> int:
        """Store the policy; returns the parameter's new version."""
        ...

    def redrive(self, max_messages: int) -> int:
        """Move up to max_messages from the DLQ back to the requests queue; returns how many moved."""
        ...


class StepFunctionsExecutions:
    def __init__(self, state_machine_arn: str) -> None:
        # arn:<partition>:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<id>
        self._prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    def describe(self, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        client = aws.stepfunctions()
        try:
            execution = client.describe_execution(executionArn=self._prefix + request_id)
        except client.exceptions.ExecutionDoesNotExist:
            return None
        output = execution.get("output")
        return execution["status"], (json.loads(output) if output else None)


class DynamoLineageReader:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def get(self, request_id: str) -> dict[str, Any] | None:
        table = aws.dynamodb().Table(self._table_name)
        item = table.get_item(Key={"request_id": request_id}, ConsistentRead=True).get("Item")
        return aws.plain(dict(item)) if item else None

    def by_day(self, day: date, since_iso: str, limit: int) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        table = aws.dynamodb().Table(self._table_name)
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {
            "IndexName": "by-day",
            "KeyConditionExpression": Key("day").eq(day.isoformat()) & Key("created_at").gte(since_iso),
            "ScanIndexForward": False,
        }
        while len(items) < limit:
            page = table.query(**arguments, Limit=min(limit - len(items), 500))
            items.extend(aws.plain(dict(i)) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items


class DynamoBatchReader:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def status(self, batch_id: str) -> dict[str, Any] | None:
        table = aws.dynamodb().Table(self._table_name)
        item = table.get_item(Key={"batch_id": batch_id, "line": 0}, ConsistentRead=True).get("Item")
        return aws.plain(dict(item)) if item else None


class AwsAdminActions:
    def __init__(self, policy_parameter: str, queue_url: str, dlq_url: str) -> None:
        self._parameter, self._queue_url, self._dlq_url = policy_parameter, queue_url, dlq_url

    def put_policy(self, text: str) -> int:
        import boto3

        ssm = boto3.client("ssm")
        response = ssm.put_parameter(
            Name=self._parameter,
            Value=text,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(text.encode()) > 4096 else "Standard",
        )
        return int(response["Version"])

    def redrive(self, max_messages: int) -> int:
        import boto3

        sqs = boto3.client("sqs")
        moved = 0
        while moved < max_messages:
            batch = sqs.receive_message(
                QueueUrl=self._dlq_url,
                MaxNumberOfMessages=min(10, max_messages - moved),
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                try:
                    sqs.send_message(QueueUrl=self._queue_url, MessageBody=message["Body"])
                except ClientError:
                    continue  # left in the DLQ; it reappears after its visibility timeout
                sqs.delete_message(QueueUrl=self._dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        return moved
