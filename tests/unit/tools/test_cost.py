"""The cost meter's arithmetic (xpi_tools.cost): usage lines to billable units, units to dollars."""

from pathlib import Path

import pytest
from xpi_tools.cost import (
    UNITS,
    Price,
    cost_per_million,
    express_usage,
    lambda_gb_seconds,
    load_prices,
    per_request,
    standard_transitions,
    units_from_usage,
    unpriced,
)

ROOT = Path(__file__).resolve().parents[3]
OPERATOR = "arn:aws-us-gov:iam::123456789012:user/operator"
ROLE = "arn:aws-us-gov:sts::123456789012:assumed-role/ConsumeRole/s"


def _price(usd: float) -> Price:
    return Price(usd=usd, unit="u", source="https://example.test", read="2026-12-05", note="")


def test_the_repository_price_table_prices_every_unit_with_a_source_and_a_date() -> None:
    prices = load_prices(ROOT / "bench" / "prices" / "govcloud.yaml")

    assert set(UNITS) <= set(prices)
    for name, price in prices.items():
        assert price.usd >= 0, name
        assert price.source.startswith("https://"), name
        assert len(price.read) == 10, name  # YYYY-MM-DD
        assert price.note, name  # GovCloud figure, or what was used instead
    # the one GovCloud figure the stored pages show: $0.0300 per 1,000 Standard transitions
    assert prices["states_transitions"].usd == pytest.approx(0.00003)


def test_usage_lines_become_billable_units() -> None:
    lines = [
        {"kind": "call", "principal": ROLE, "action": "sqs:DeleteMessage", "resource": "q"},
        {"kind": "call", "principal": ROLE, "action": "sqs:ReceiveMessage", "resource": "q"},  # empty polls
        {"kind": "sqs", "principal": "", "operation": "ReceiveMessage", "messages": 1},
        {"kind": "call", "principal": ROLE, "action": "s3:PutObject", "resource": "b/k"},
        {"kind": "call", "principal": ROLE, "action": "s3:GetObject", "resource": "b/k"},
        {"kind": "call", "principal": ROLE, "action": "dynamodb:PutItem", "resource": "t"},  # sized below
        {
            "kind": "dynamodb",
            "principal": ROLE,
            "table": "t",
            "operation": "put_item",
            "read_units": 0,
            "write_units": 2,
        },
        {
            "kind": "dynamodb",
            "principal": ROLE,
            "table": "t",
            "operation": "get_item",
            "read_units": 0.5,
            "write_units": 0,
        },
        {"kind": "events", "principal": ROLE, "entries": 1, "chunks": 2},
        {"kind": "kms", "principal": ROLE, "service": "s3", "operation": "Decrypt"},
        {"kind": "call", "principal": ROLE, "action": "secretsmanager:GetSecretValue", "resource": "s"},
        {"kind": "lambda", "principal": OPERATOR, "function": "f", "duration_ms": 99.2, "memory_mb": 512},
        {"kind": "api", "principal": "", "function": "api"},
        {"kind": "call", "principal": ROLE, "action": "comprehend:DetectPiiEntities", "resource": "*"},
        # the benchmark's own calls, left out by the caller's rule
        {"kind": "call", "principal": OPERATOR, "action": "sqs:DeleteMessage", "resource": "subscriber"},
        {
            "kind": "dynamodb",
            "principal": OPERATOR,
            "table": "t",
            "operation": "get_item",
            "read_units": 1,
            "write_units": 0,
        },
    ]

    units = units_from_usage(lines, excluded=lambda line: line["principal"] == OPERATOR)

    assert units == {
        "sqs_requests": 2,
        "s3_put_requests": 1,
        "s3_get_requests": 1,
        "dynamodb_write_units": 2,
        "dynamodb_read_units": 0.5,
        "events_published": 2,
        "kms_requests": 1,
        "secretsmanager_calls": 1,
        # the pollers invoke as the operator: a function's invocation is always the request's
        "lambda_requests": 1,
        "lambda_gb_s": pytest.approx(0.1 * 0.5),  # 100 ms (rounded up to the ms) x 0.5 GB
        "apigateway_requests": 1,
        "unpriced comprehend:DetectPiiEntities": 1,
    }


def test_lambda_duration_is_billed_per_millisecond_rounded_up() -> None:
    assert lambda_gb_seconds(0.2, 1024) == pytest.approx(0.001)
    assert lambda_gb_seconds(1000.0, 128) == pytest.approx(0.125)


def test_standard_transitions_count_each_state_entered_and_each_retry() -> None:
    history = [
        {"type": "ExecutionStarted"},
        {"type": "TaskStateEntered"},
        {"type": "LambdaFunctionScheduled"},
        {"type": "LambdaFunctionFailed"},
        {"type": "LambdaFunctionScheduled"},  # a retry: one more transition
        {"type": "LambdaFunctionSucceeded"},
        {"type": "TaskStateExited"},
        {"type": "ChoiceStateEntered"},
        {"type": "ChoiceStateExited"},
        {"type": "TaskStateEntered"},
        {"type": "TaskScheduled"},
        {"type": "TaskSucceeded"},
        {"type": "ExecutionSucceeded"},
    ]

    assert standard_transitions(history) == 4


def test_express_bills_duration_in_100_ms_steps_and_memory_in_64_mb_chunks() -> None:
    assert express_usage(0.25) == {
        "states_express_requests": 1,
        "states_express_gb_s": pytest.approx(0.3 / 16),
    }
    assert express_usage(1.0, memory_mb=65)["states_express_gb_s"] == pytest.approx(1.0 * 128 / 1024)


def test_dollars_per_million_requests() -> None:
    prices = {"lambda_requests": _price(0.0000002), "s3_put_requests": _price(0.000005)}
    units = per_request({"lambda_requests": 50, "s3_put_requests": 10, "unpriced x:Y": 1}, requests=10)

    assert cost_per_million(units, prices) == pytest.approx({"lambda_requests": 1.0, "s3_put_requests": 5.0})
    assert unpriced(units, prices) == ["unpriced x:Y"]
