"""The cost meter (bench/bench_cost.py) on the local stack: the usage log counts one queued request's
billable units exactly, from what the stack actually served."""

from pathlib import Path
from typing import Any

import pytest
from xpi_tools.cost import units_from_usage
from xpi_tools.local.usage import read_usage

from tests.helpers.stack import LocalStackClient, ResultCollector, queue_is_drained
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


def test_the_meter_counts_one_queued_requests_billable_units(
    local_stack: LocalStackClient, results: ResultCollector
) -> None:
    # GIVEN a stack with nothing left running from earlier tests, and its usage log, read from here on
    def idle() -> bool:
        machines = (
            local_stack.outputs["StateMachineArn"],
            local_stack.outputs["BatchStateMachineArn"],
            local_stack.outputs["QueueStateMachineArn"],
        )
        return all("RUNNING" not in local_stack.executions(machine).values() for machine in machines)

    wait_until(idle, 120, what="no workflow running")
    usage_log = Path(local_stack.state["usage_log"])
    offset = usage_log.stat().st_size
    queue_url = local_stack.outputs["RequestsQueueUrl"]

    # WHEN one request goes through the queue path
    request_id = local_stack.send({"model": "default", "prompt": "Name three rivers in Oregon."})
    results.wait_for(request_id, detail_type="Inference Completed")
    state_machine = local_stack.outputs["QueueStateMachineArn"]
    local_stack.wait_until_nothing_more_can_come(results, state_machine, request_id)
    sqs = local_stack.client("sqs")
    wait_until(lambda: queue_is_drained(sqs, queue_url), 30, what="the request's message deleted")

    # THEN its units are exactly what the path makes (the test's own calls are not the request's, but
    # for its SendMessage as the producer)
    lines, _ = read_usage(usage_log, offset)
    queue_arn = local_stack.outputs["RequestsQueueArn"]
    (operator,) = {line["principal"] for line in lines if _is_call(line, "sqs:SendMessage", queue_arn)}

    def excluded(line: dict[str, Any]) -> bool:
        return line.get("principal") == operator and not _is_call(line, "sqs:SendMessage", queue_arn)

    units = units_from_usage(lines, excluded=excluded)
    # the batch's one Express execution (this request alone in it): one Express request; its duration
    # (Express GB-s) varies, as Lambda's does
    assert len(local_stack.queue_runs_of(request_id)) == 1
    units["states_express_requests"] = 1
    units.pop("lambda_gb_s")  # measured durations vary; the unit test checks their arithmetic
    units.pop("secretsmanager_calls", None)  # cached per runtime (300 s): 0 or 1 here, by timing
    units.pop("ssm_parameter_reads", None)  # the policy and routing documents, cached per runtime
    # the quota bucket (PacingTable, strongly consistent, under 4 KB): read once by the consumer before it
    # starts the batch (held in the queue while the quota is spent), and by a function's first reservation
    # only: a warm invoke function reserves from the bucket as it last wrote it
    assert units.pop("dynamodb_read_units", 0) in (1, 2)
    # the claim (the new lineage item, under 1 KB: also the Bedrock call's idempotency record) and the
    # final lineage item (over 1 KB): one and two; the quota bucket (PacingTable): its reservation, one,
    # and one more when the reservation's conditional put finds another function wrote the bucket since
    # (the failed write is billed too; the pacer re-reads and puts again) or the answer used more tokens
    # than were reserved (charged at once). The correction otherwise rides the function's next reservation.
    assert units.pop("dynamodb_write_units") in (4, 5)
    kms_for_secrets = sum(
        1 for line in lines if line["kind"] == "kms" and line.get("service") == "secretsmanager"
    )
    units["kms_requests"] = units.get("kms_requests", 0) - kms_for_secrets
    assert {unit: amount for unit, amount in units.items() if amount} == (
        {
            # the batch's Express execution: no transitions billed
            "states_express_requests": 1,
            # the consumer, then Process and RecordOutcome
            "lambda_requests": 3,
            # the producer's SendMessage, the poller's receive, its DeleteMessage (this request alone in
            # its batch: in a batch of ten, the receive and the delete are a tenth each)
            "sqs_requests": 3,
            # the body travels inline in the execution's input: no payload object, no reads of it
            "events_published": 1,
            # StartExecution (free: Express bills requests and duration)
            "states_api_calls": 1,
        }
    )
    # AND no KMS request on the request's behalf (no payload object; the S3 Bucket Key on large ones)
    assert units["kms_requests"] == 0


def _is_call(line: dict[str, Any], action: str, resource: str) -> bool:
    return line["kind"] == "call" and line.get("action") == action and line.get("resource") == resource
