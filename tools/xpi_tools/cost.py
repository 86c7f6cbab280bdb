"""Pricing what the local stack served: billable units from its usage log, dollars from a price table.

`bench/bench_cost.py` drives requests through the local stack, reads the usage lines written meanwhile
(`xpi_tools.local.usage`) and the Step Functions executions, and hands them here:

  - `units_from_usage` turns usage lines into billable units (`UNITS`), leaving out the lines a
    principal caused that the caller names (the benchmark's own inspection calls);
  - `standard_transitions` and `express_usage` count a workflow execution's units;
  - `load_prices` reads a price table (`bench/prices/govcloud.yaml`), and `cost_per_million` prices units.

Everything here is arithmetic on what was observed; nothing is estimated from the template.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

# Every billable unit the meter knows, in the order the table prints them, with a short label.
UNITS: dict[str, str] = {
    "states_transitions": "Step Functions Standard transitions",
    "states_express_requests": "Step Functions Express requests",
    "states_express_gb_s": "Step Functions Express GB-s",
    "lambda_requests": "Lambda requests",
    "lambda_gb_s": "Lambda GB-s",
    "apigateway_requests": "API Gateway requests",
    "dynamodb_write_units": "DynamoDB write units",
    "dynamodb_read_units": "DynamoDB read units",
    "sqs_requests": "SQS requests",
    "events_published": "EventBridge events",
    "s3_put_requests": "S3 PUT requests",
    "s3_get_requests": "S3 GET requests",
    "kms_requests": "KMS requests",
    "secretsmanager_calls": "Secrets Manager calls",
    "ssm_parameter_reads": "SSM parameter reads",
    "states_api_calls": "Step Functions API calls",
}

# A signed call's IAM action -> the unit it is billed as. Actions metered elsewhere map to None:
# DynamoDB (capacity, from the DynamoDB meter), PutEvents (entries, from the EventBridge meter),
# lambda:InvokeFunction (from the runtime pool, with its duration), ReceiveMessage (only a receive that
# returned messages, from the pollers).
_CALL_UNITS: dict[str, str | None] = {
    "sqs:SendMessage": "sqs_requests",
    "sqs:DeleteMessage": "sqs_requests",
    "sqs:ChangeMessageVisibility": "sqs_requests",
    "sqs:GetQueueAttributes": "sqs_requests",
    "sqs:ReceiveMessage": None,
    "s3:GetObject": "s3_get_requests",
    "s3:PutObject": "s3_put_requests",
    "s3:ListBucket": "s3_put_requests",  # LIST is priced as PUT
    "s3:DeleteObject": None,  # DELETE is free
    "secretsmanager:GetSecretValue": "secretsmanager_calls",
    "events:PutEvents": None,
    "lambda:InvokeFunction": None,
    "sts:GetCallerIdentity": None,
}
_CALL_PREFIX_UNITS = {
    "kms:": "kms_requests",
    "dynamodb:": None,
    "ssm:GetParameter": "ssm_parameter_reads",
    "states:": "states_api_calls",
    "iam:": None,  # IAM is free (the local API Gateway reads callers' policies through it)
}

# Billable units by name (`UNITS`), amounts per run or per request.
Units = dict[str, float]

EXPRESS_MEMORY_CHUNK_MB = 64
EXPRESS_DURATION_STEP_S = 0.1


@dataclass(frozen=True)
class Price:
    usd: float  # per unit
    unit: str
    source: str
    read: str
    note: str


def load_prices(path: Path) -> dict[str, Price]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    prices = {
        name: Price(
            usd=float(line["usd"]),
            unit=str(line["unit"]),
            source=str(line["source"]),
            read=str(line["read"]),
            note=str(line.get("note", "")),
        )
        for name, line in document["prices"].items()
    }
    missing = sorted(set(UNITS) - set(prices))
    if missing:
        raise ValueError(f"{path}: no price for {', '.join(missing)}")
    return prices


def call_unit(action: str) -> str | None:
    """The unit a signed call is billed as; None when it is metered elsewhere or free. An action the
    meter does not know is returned as `unpriced <action>`, so it shows up rather than vanishing."""
    if action in _CALL_UNITS:
        return _CALL_UNITS[action]
    for prefix, unit in _CALL_PREFIX_UNITS.items():
        if action.startswith(prefix):
            return unit
    return f"unpriced {action}"


def lambda_gb_seconds(duration_ms: float, memory_mb: int) -> float:
    """Lambda bills duration rounded up to the millisecond, times the configured memory."""
    return math.ceil(duration_ms) / 1000 * memory_mb / 1024


def units_from_usage(
    lines: Iterable[Mapping[str, Any]], *, excluded: Callable[[Mapping[str, Any]], bool] = lambda _: False
) -> Units:
    """Billable units in usage lines. `excluded(line)` leaves out lines the caller does not bill (its own
    inspection calls); lambda and api lines are always counted (Lambda's pollers and API Gateway invoke
    through the Lambda API as the operator, so their principal says nothing about who caused them)."""
    units: defaultdict[str, float] = defaultdict(float)
    for line in lines:
        kind = line["kind"]
        if kind == "lambda":
            units["lambda_requests"] += 1
            units["lambda_gb_s"] += lambda_gb_seconds(float(line["duration_ms"]), int(line["memory_mb"]))
        elif kind == "api":
            units["apigateway_requests"] += 1
        elif excluded(line):
            continue
        elif kind == "call":
            unit = call_unit(str(line["action"]))
            if unit:
                units[unit] += 1
        elif kind == "dynamodb":
            units["dynamodb_read_units"] += float(line["read_units"])
            units["dynamodb_write_units"] += float(line["write_units"])
        elif kind == "events":
            units["events_published"] += int(line["chunks"])
        elif kind == "kms":
            units["kms_requests"] += 1
        elif kind == "sqs":
            units["sqs_requests"] += 1
    return dict(units)


def add(total: Units, more: Mapping[str, float]) -> None:
    """Adds `more` into `total`, unit by unit."""
    for unit, amount in more.items():
        total[unit] = total.get(unit, 0) + amount


def standard_transitions(history: Iterable[Mapping[str, Any]]) -> int:
    """State transitions of one Standard execution, from its history: one per state entered, and one per
    retry (a task scheduled again within the same state)."""
    transitions = 0
    scheduled_in_state = 0
    for event in history:
        kind = str(event["type"])
        if kind.endswith("StateEntered"):
            transitions += 1
            scheduled_in_state = 0
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            if scheduled_in_state:
                transitions += 1
            scheduled_in_state += 1
    return transitions


def express_usage(duration_s: float, memory_mb: float = EXPRESS_MEMORY_CHUNK_MB) -> Units:
    """One Express execution: a request, and its duration rounded up to 100 ms times its memory rounded
    up to 64 MB chunks."""
    billed_s = math.ceil(round(duration_s / EXPRESS_DURATION_STEP_S, 6)) * EXPRESS_DURATION_STEP_S
    chunks = max(1, math.ceil(memory_mb / EXPRESS_MEMORY_CHUNK_MB))
    return {
        "states_express_requests": 1,
        "states_express_gb_s": billed_s * chunks * EXPRESS_MEMORY_CHUNK_MB / 1024,
    }


def per_request(units: Mapping[str, float], requests: int) -> dict[str, float]:
    return {unit: amount / requests for unit, amount in units.items()}


def cost_per_million(units_per_request: Mapping[str, float], prices: Mapping[str, Price]) -> dict[str, float]:
    """USD per million requests, per unit; a unit without a price is left out (and listed by
    `unpriced`)."""
    return {
        unit: amount * prices[unit].usd * 1_000_000
        for unit, amount in units_per_request.items()
        if unit in prices
    }


def unpriced(units: Mapping[str, float], prices: Mapping[str, Price]) -> list[str]:
    return sorted(unit for unit, amount in units.items() if amount and unit not in prices)
