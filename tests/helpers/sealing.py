"""A sealed day of lineage on the session's local stack, shared by the tests that need one (the seal's
own and the compliance report's tamper check): LineageSealFunction seals the last closed day once, so
only one test may seal it, and every test that reads the seal must read that one."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
from xpi_tools.audit_cli import aws_sources, verify

from tests.helpers.stack import LocalStackClient
from tests.helpers.waiting import wait_until

SETTLE = timedelta(hours=2)  # LINEAGE_SEAL_SETTLE_S's default


def lineage_table(local_stack: LocalStackClient) -> Any:
    return local_stack.session.resource("dynamodb", endpoint_url=local_stack.state["aws"]).Table(
        local_stack.outputs["LineageTableName"]
    )


def seal(local_stack: LocalStackClient) -> dict[str, Any]:
    response = local_stack.client("lambda").invoke(
        FunctionName=local_stack.outputs["LineageSealFunctionName"],
        Payload=json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def auditor(local_stack: LocalStackClient) -> Any:
    assumed = local_stack.client("sts").assume_role(
        RoleArn=local_stack.outputs["AuditorRoleArn"],
        RoleSessionName="audit-verify",
        SerialNumber="arn:aws-us-gov:iam::123456789012:mfa/operator",
        TokenCode="123456",
    )["Credentials"]
    return boto3.Session(
        region_name=local_stack.state["region"],
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
    )


class SealedDay:
    def __init__(self, local_stack: LocalStackClient, day: date, ids: list[str]) -> None:
        self.local_stack, self.day, self.ids = local_stack, day, ids
        self.table = lineage_table(local_stack)
        self.auditor = auditor(local_stack)

    def problems(self) -> dict[str, set[str | None]]:
        sources = aws_sources(self.auditor, self.local_stack.outputs, self.local_stack.state["aws"])
        found: dict[str, set[str | None]] = {}
        for problem in verify(sources, self.day, self.day)[1]:
            found.setdefault(problem.kind, set()).add(problem.request_id)
        return found

    def item(self, request_id: str) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"request_id": request_id}, ConsistentRead=True)["Item"])


def seal_the_last_closed_day(local_stack: LocalStackClient) -> SealedDay:
    """Final records of the last closed day, one of them from a request that flowed through the stack,
    sealed by the seal function as its own role."""
    # GIVEN final lineage records of the last closed day, as the workflow writes them
    day = (datetime.now(UTC) - SETTLE).date() - timedelta(days=1)
    table = lineage_table(local_stack)
    ids = []
    for index, status in enumerate(("COMPLETED", "BLOCKED", "COMPLETED", "FAILED", "COMPLETED")):
        request_id = f"it-seal-{uuid.uuid4().hex[:12]}"
        created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9, seconds=index)
        table.put_item(
            Item={
                "request_id": request_id,
                "status": status,
                "created_at": created.isoformat(timespec="milliseconds"),
                "completed_at": (created + timedelta(seconds=3)).isoformat(timespec="milliseconds"),
                "day": day.isoformat(),
                "caller_principal": "arn:aws-us-gov:iam::123456789012:role/producer",
                "source": "sqs",
                "request_hmac": f"{index:064x}",
                "model_requested": "default",
                "usage": {"input_tokens": 10 + index, "output_tokens": 20 + index},
                "expires_at": int(created.timestamp()) + 86_400,
            }
        )
        ids.append(request_id)
    # AND a request that flowed through the stack, its final item moved into that day (as if sent then)
    flowed = local_stack.send({"model": "default", "prompt": "Name a river.", "caller": {}})

    def final() -> dict[str, Any] | None:
        item = local_stack.lineage(flowed)
        return item if item and item["status"] in ("COMPLETED", "FAILED", "BLOCKED") else None

    wait_until(final, 60, what=f"{flowed} final in lineage")
    moved = dict(table.get_item(Key={"request_id": flowed}, ConsistentRead=True)["Item"])
    created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
    moved.update(
        {
            "request_id": f"{flowed}-moved",
            "day": day.isoformat(),
            "created_at": created.isoformat(timespec="milliseconds"),
        }
    )
    table.put_item(Item=moved)
    ids.append(moved["request_id"])
    # WHEN the seal runs (as its own role)
    report = seal(local_stack)
    # THEN the day is chained and its digest signed
    assert day.isoformat() in [d["day"] for d in report["sealed"]], report
    assert all(
        "chain_hash" in lineage_table(local_stack).get_item(Key={"request_id": i})["Item"] for i in ids
    )
    return SealedDay(local_stack, day, ids)
