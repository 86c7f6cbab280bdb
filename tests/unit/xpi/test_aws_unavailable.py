"""An AWS API's passing fault (5xx, throttling, out of reach) in a workflow step is AwsUnavailable, which
the workflow retries like Lambda's own faults; anything else stays InternalError, and the invoke step
never turns a failure after Bedrock answered into something retried."""

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from xpi.domain.errors import MESSAGES, AwsUnavailable, InternalError
from xpi.handlers import contain_errors
from xpi_tools import statemachines


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateItem",
    )


@pytest.mark.parametrize(
    "error",
    [
        client_error(503, "ServiceUnavailable"),
        client_error(500, "InternalServerError"),
        client_error(400, "ThrottlingException"),
        client_error(400, "ProvisionedThroughputExceededException"),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-gov-west-1.amazonaws.com"),
    ],
    ids=["503", "500", "throttled", "provisioned-throughput", "unreachable"],
)
def test_an_aws_apis_passing_fault_is_aws_unavailable(error: Exception) -> None:
    @contain_errors
    def handler(event: dict[str, Any], context: object) -> None:
        raise error

    with pytest.raises(AwsUnavailable) as caught:
        handler({}, None)
    # reported as InternalError (its fixed message) when the workflow's retries run out
    assert str(caught.value) == MESSAGES["InternalError"]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    "error", [client_error(400, "ConditionalCheckFailedException"), client_error(403, "AccessDenied")]
)
def test_a_refusal_is_not_a_passing_fault(error: Exception) -> None:
    @contain_errors
    def handler(event: dict[str, Any], context: object) -> None:
        raise error

    with pytest.raises(InternalError) as caught:
        handler({}, None)
    assert not isinstance(caught.value, AwsUnavailable)


def test_every_lambda_task_retries_aws_unavailable() -> None:
    # GIVEN the workflows as generated
    definitions = statemachines.definitions()

    # THEN every Lambda task retries AwsUnavailable, over long enough to ride out a short outage
    for machine in definitions.values():
        for name, state in machine["States"].items():
            if state.get("Type") != "Task" or ":states:::" in state["Resource"]:
                continue
            retriers = [
                r for r in state.get("Retry", []) if {"AwsUnavailable", "States.ALL"} & set(r["ErrorEquals"])
            ]
            assert retriers, name
            waits = sum(retriers[0]["IntervalSeconds"] * 2**n for n in range(retriers[0]["MaxAttempts"]))
            assert waits >= 60, name
