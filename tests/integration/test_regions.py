"""Two regions on two local stacks (docs/local-stack.md, "Two regions"): us-gov-west-1 and us-gov-east-1,
each its own moto server, functions and emulators, their lineage tables replicated by the local glue
(xpi_tools.local.replication) as the global table's replicas are. Producers send through the failover
helper (xpi_tools.regions). Under load the primary region's AWS API goes out for every caller (the
whole-region outage: nothing reaches it, its state is kept, as a region's is through an outage); the
test prints how long producers took to get requests into the other region, and how many requests were
lost or answered twice (0/0); then the region returns and the work it held in flight ends, each
request with exactly one event, in its own region, its lineage replicated to the other.

The session's stack plays the primary, a stack of the module's own the secondary. Short in `make test`
(XPI_REGIONS_SCALE unset); `make regions` runs it at full size.
"""

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from xpi.domain.regions import minted_region
from xpi_tools.emulator import EmulatorControl
from xpi_tools.local.faults import ControlClient
from xpi_tools.local.replication import LineageReplication, Replica
from xpi_tools.regions import SEND_CONFIG, FailoverProducer, RegionQueue, Sent

from tests.helpers.stack import LocalStackClient, ResultCollector, own_stack
from tests.helpers.waiting import poll_until, wait_until
from tests.integration.test_batch import Batches, _jsonl

pytestmark = pytest.mark.integration

WEST, EAST = "us-gov-west-1", "us-gov-east-1"
FULL = os.environ.get("XPI_REGIONS_SCALE") == "full"
# requests before the outage (the primary's in-flight work), during it, and after the primary returned
BEFORE, DURING, AFTER = (100, 200, 100) if FULL else (8, 12, 4)
# Within the queue workflow's retry allowance for a Lambda or AWS API fault, and its last-resort answer's
# (docs/operations.md, "In-flight work"); XPI_REGIONS_OUTAGE_S=45 has been run at full size too.
OUTAGE_S = float(os.environ.get("XPI_REGIONS_OUTAGE_S") or (20.0 if FULL else 6.0))
FAILOVER_GOAL_S = 10.0
# A batch file the primary is working on when it goes out (full size only: `make regions`)
BATCH_LINES = 20 if FULL else 0
TERMINAL = {"Inference Completed", "Inference Failed", "Inference Blocked"}
STARTUP_TIMEOUT_S = 180  # a second stack deploying beside the session's on a shared machine


@pytest.fixture(scope="module")
def regions(
    local_stack: LocalStackClient, results: ResultCollector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, LocalStackClient], dict[str, ResultCollector]]]:
    """The session's stack plays us-gov-west-1, the primary; a stack of this module's own, in its own
    region and under its own stack name, plays us-gov-east-1. Each with its subscriber queue's collector
    (the session's own for the session's stack: two collectors on one queue would take each other's)."""
    with own_stack(
        tmp_path_factory.mktemp("stack-east"),
        f"regions-{EAST}.log",
        "--region",
        EAST,
        "--stack-name",
        "xpi-east",
        startup_timeout_s=STARTUP_TIMEOUT_S,
    ) as east:
        east_results = ResultCollector(east.client("sqs"), east.outputs["SubscriberQueueUrl"])
        try:
            yield {WEST: local_stack, EAST: east}, {WEST: results, EAST: east_results}
        finally:
            east_results.stop()


def _sqs(stack: LocalStackClient) -> Any:
    session = boto3.Session(
        region_name=stack.state["region"], aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return session.client("sqs", endpoint_url=stack.state["aws"], config=SEND_CONFIG)


def _replica(stack: LocalStackClient) -> Replica:
    return Replica(stack.state["region"], stack.client("dynamodb"), stack.outputs["LineageTableName"])


def test_a_region_out_under_load_fails_over_in_seconds_and_loses_or_doubles_nothing(
    regions: tuple[dict[str, LocalStackClient], dict[str, ResultCollector]],
) -> None:
    stacks, results = regions
    west, east = stacks[WEST], stacks[EAST]
    # (the session's table holds the other tests' lineage: the glue replicates what is written from now on)
    replication = LineageReplication(_replica(west), _replica(east), copy_existing=False).start()
    producer = FailoverProducer(
        [
            RegionQueue(WEST, west.outputs["RequestsQueueUrl"]),
            RegionQueue(EAST, east.outputs["RequestsQueueUrl"]),
        ],
        client_for=lambda target: _sqs(stacks[target.region]),
    )
    sent: list[Sent] = []
    tag = f"regions-{uuid.uuid4().hex[:8]}"  # the emulators count this test's Bedrock calls by it

    def send(count: int, phase: str) -> list[float]:
        took = []
        for n in range(count):
            started = time.monotonic()
            prompt = f"two regions, {phase} {n} [[emulator:tag={tag}]]"
            sent.append(producer.send({"model": "default", "prompt": prompt}))
            took.append(time.monotonic() - started)
        return took

    batches = Batches(west, results[WEST])
    # (untagged: the Bedrock calls counted below are the queued requests')
    batch_lines = [{"prompt": f"two regions, batch line {n}"} for n in range(BATCH_LINES)]
    try:
        # GIVEN load on the primary region, some of it in flight there, and a batch file it is working on
        batch_id = (
            batches.upload(
                f"{tag}.jsonl",
                _jsonl(batch_lines),
                metadata={"xpi-defaults": json.dumps({"model": "default"})},
            )
            if BATCH_LINES
            else ""
        )
        send(BEFORE, "before")
        assert {s.region for s in sent} == {WEST}
        # WHEN the primary's AWS API goes out for every caller, producers included
        unanswered = [s for s in sent if not _events(results, s.request_id)]
        ControlClient(west.state["control"]).aws_outage(OUTAGE_S, whole_region=True)
        outage_started = time.monotonic()
        during = send(DURING, "during")
        # THEN producers' requests go into the other region within seconds
        failed_over = [s for s in sent[BEFORE:] if s.failed_over_from]
        first_east = next(i for i, s in enumerate(sent[BEFORE:]) if s.region == EAST)
        failover_s = sum(during[: first_east + 1])
        assert failed_over and all(s.region == EAST for s in sent[BEFORE:])
        # AND once the primary is back (its API answers, the helper's pause is over) it takes requests again
        wait_until(
            lambda: time.monotonic() - outage_started > OUTAGE_S and producer.healthy()[0].region == WEST,
            OUTAGE_S + 30,
            what="the primary region back",
        )
        send(AFTER, "after")
        assert sent[-1].region == WEST

        # THEN every request ends with exactly one event, in the region its id was minted for: the
        # primary's in-flight work too, once it returned
        def ended() -> bool:
            return all(_events(results, s.request_id) for s in sent)

        # (counted when every request has its event, or when the time is up: then some were lost)
        poll_until(ended, 300 if FULL else 180, interval_s=0.5)
        doubled = [s.request_id for s in sent if len(_events(results, s.request_id)) > 1]
        elsewhere = [s.request_id for s in sent if results[_other(s.region)].events_for(s.request_id)]
        lost = [s.request_id for s in sent if not _events(results, s.request_id)]
        ends = [events[0]["detail-type"] for s in sent[:BEFORE] if (events := _events(results, s.request_id))]
        # AND each request's lineage reaches the other region's replica (one audit trail)
        replicated = poll_until(lambda: all(_replicated(stacks, s) for s in sent), 60, interval_s=0.5)
        # AND Bedrock was called at most once per request (a request that failed in the outage before its
        # call made none), once for every request answered
        bedrock_calls = sum(
            EmulatorControl(stack.state["emulator_control"]).counters().tag(tag).calls
            for stack in stacks.values()
        )
        print(
            f"\ntwo regions: {len(sent)} requests ({BEFORE} before, {DURING} during a {OUTAGE_S:.0f} s "
            f"outage of {WEST}, {AFTER} after); failover time {failover_s:.2f} s "
            f"(goal < {FAILOVER_GOAL_S:.0f} s), "
            f"slowest send during the outage {max(during):.2f} s; lost {len(lost)}, doubled "
            f"{len(doubled) + len(elsewhere)}; {WEST}'s in-flight work ended: "
            f"{sorted((kind, ends.count(kind)) for kind in set(ends))} of {BEFORE} "
            f"({len(unanswered)} unanswered when it went out); "
            f"lineage items copied by the replication glue: {replication.copied}, "
            f"all replicated: {replicated}; Bedrock calls {bedrock_calls} for {len(sent)} requests"
        )
        assert (len(lost), len(doubled), len(elsewhere)) == (0, 0, 0)
        completed = sum(
            _events(results, s.request_id)[0]["detail-type"] == "Inference Completed" for s in sent
        )
        assert completed <= bedrock_calls <= len(sent)
        assert failover_s < FAILOVER_GOAL_S
        assert replicated and len(ends) == BEFORE, (replicated, ends, replication.errors)
        assert all(minted_region(s.request_id) == s.region for s in sent)
        # AND the batch the primary held resumes once it returns: one Batch Completed event, every line
        # in the results file in input order, each ended
        if BATCH_LINES:
            batch_event = batches.wait(batch_id, timeout_s=300 if FULL else 180)
            assert batch_event["detail-type"] == "Batch Completed", batch_event["detail"]
            answered = batches.results_file(batch_id)
            assert [line["line"] for line in answered] == list(range(1, BATCH_LINES + 1)), answered
            print(f"the primary's batch of {BATCH_LINES} lines: {batch_event['detail']}")
    finally:
        replication.stop()


def _other(region: str) -> str:
    return EAST if region == WEST else WEST


def _events(results: dict[str, ResultCollector], request_id: str) -> list[dict[str, Any]]:
    return [
        event
        for collector in results.values()
        for event in collector.events_for(request_id)
        if event["detail-type"] in TERMINAL
    ]


def _replicated(regions: dict[str, LocalStackClient], sent: Sent) -> bool:
    own = regions[sent.region].lineage(sent.request_id) or {}
    replica = regions[_other(sent.region)].lineage(sent.request_id) or {}
    return bool(own) and own.get("status") == replica.get("status")
