"""Two regions on two local stacks (docs/local-stack.md, "Two regions"): us-gov-west-1 and us-gov-east-1,
each its own moto server, functions and emulators, their lineage tables replicated by the local glue
(xpi_tools.local.replication) as the global table's replicas are. Producers send through the failover
helper (xpi_tools.regions). Under load the primary region's AWS API goes out for every caller (the
whole-region outage: nothing reaches it, its state is kept, as a region's is through an outage); the
test prints how long producers took to get requests into the other region, and how many requests were
lost or answered twice (0/0); then the region returns and the work it held in flight ends, each
request with exactly one event, in its own region, its lineage replicated to the other.

The session's stack plays the primary, a stack of the module's own the secondary. Short in `make test`
(XPI_REGIONS_SCALE unset); `make regions` runs it at full size, and runs the region lost outright below.

Then a region lost outright: the module's own stack, the primary this time, is killed (SIGKILL, its whole
process tree, its moto state gone for good) while producers send through its queue and its API. The
test prints the failover time, the takeover's time (`xpi regions takeover`: the survivor's reaper ends
the lost region's replicated, unended requests as `RegionLost`), the data at risk, and accounts for
every request sent: one terminal event, or said how it was not.
"""

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session
from xpi.domain.regions import minted_region
from xpi_tools.emulator import EmulatorControl
from xpi_tools.local.faults import ControlClient
from xpi_tools.local.replication import LineageReplication, Replica
from xpi_tools.regions import SEND_CONFIG, FailoverProducer, RegionQueue, SendOutcomeUnknown, Sent
from xpi_tools.regions_cli import take_over

from tests.helpers.stack import LocalStackClient, ResultCollector, kill_stack, own_stack
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


# ------------------------------------------------------------------------------ a region lost outright
# Seconds of load before the kill and after it (the producers send all along, through the queue and the
# API), and how often each sends.
KILL_LOAD_S = (8.0, 8.0) if FULL else (1.0, 0.5)
QUEUE_EVERY_S, API_EVERY_S = (0.1, 0.4) if FULL else (0.5, 1.0)
EMULATOR_LATENCY_MS = 1500  # the lost region's Bedrock answers take this long: work in flight at the kill
KILL_REPLICATED = 20 if FULL else 2  # lineage items replicated to the survivor before the kill (at least)


class _Load:
    """A producer sending on its own thread every `every_s` until stopped: what it sent, and when."""

    def __init__(self, producer: FailoverProducer, every_s: float, tag: str, way: str) -> None:
        self.producer, self.every_s, self.tag, self.way = producer, every_s, tag, way
        self.sent: list[tuple[float, Sent]] = []
        self.unknown: list[str] = []  # sends whose answer never came (the region died mid-send)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{way}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every_s):
            n += 1
            body = {"model": "default", "prompt": f"region lost, {self.way} {n} [[emulator:tag={self.tag}]]"}
            try:
                sent = self.producer.send(body)
            except SendOutcomeUnknown as error:
                self.unknown.append(error.request_id)
                continue
            self.sent.append((time.monotonic(), sent))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _post_request(stack: LocalStackClient, target: RegionQueue, body: dict[str, Any]) -> None:
    """POST /v1/requests to the region's API as its operator signs it, raising what botocore would (an
    endpoint out of reach; a ClientError with the status for an answer other than 202)."""
    keys = stack.state["api_credentials"]["operator"]
    request = AWSRequest(
        method="POST",
        url=target.queue_url + "/v1/requests",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(
        Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"], keys.get("aws_session_token")),
        "execute-api",
        target.region,
    ).add_auth(request)
    response = URLLib3Session(timeout=(1, 10)).send(request.prepare())
    if response.status_code != 202:
        error = {"Code": str(response.status_code), "Message": response.text[:200]}
        raise ClientError(
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": response.status_code}}, "Post"
        )


# Kills a stack and resends under load: about a minute on this machine, so it runs in `make regions`
# only; `make test` keeps the outage test above as the short version of the two-region run.
@pytest.mark.skipif(not FULL, reason="a region lost outright runs in `make regions` (XPI_REGIONS_SCALE=full)")
def test_a_region_lost_outright_under_load_fails_over_and_every_request_is_accounted_for(
    regions: tuple[dict[str, LocalStackClient], dict[str, ResultCollector]],
) -> None:
    stacks, results = regions
    west, east = stacks[WEST], stacks[EAST]
    # The module's own stack is the one that can be killed: it plays the primary here, the session's the
    # survivor. (Both tables may hold earlier lineage: what is written from now on is replicated.)
    lost, survivor = EAST, WEST
    replication = LineageReplication(_replica(east), _replica(west), copy_existing=False).start()
    queue = FailoverProducer(
        [
            RegionQueue(EAST, east.outputs["RequestsQueueUrl"]),
            RegionQueue(WEST, west.outputs["RequestsQueueUrl"]),
        ],
        client_for=lambda target: _sqs(stacks[target.region]),
    )
    api = FailoverProducer(
        [RegionQueue(EAST, east.state["api"]), RegionQueue(WEST, west.state["api"])],
        client_for=lambda target: stacks[target.region],
        deliver=_post_request,
    )
    EmulatorControl(east.state["emulator_control"]).set_latency(time_to_first_token_ms=EMULATOR_LATENCY_MS)
    tag = f"regionkill-{uuid.uuid4().hex[:8]}"
    loads = [_Load(queue, QUEUE_EVERY_S, tag, "queue"), _Load(api, API_EVERY_S, tag, "api")]
    try:
        # GIVEN producers sending to the primary through its queue and its API, its work in flight: some
        # answered, some lineage replicated to the survivor
        def under_load() -> bool:
            answered = any(results[lost].events_for(s.request_id) for s in queue.taken_by(lost))
            return (
                answered
                and replication.copied >= KILL_REPLICATED
                and all(load.sent and load.sent[-1][0] - load.sent[0][0] >= KILL_LOAD_S[0] for load in loads)
            )

        started = time.monotonic()
        if not poll_until(under_load, KILL_LOAD_S[0] + (180 if FULL else 60), interval_s=0.2):
            answered = sum(bool(results[lost].events_for(s.request_id)) for s in queue.taken_by(lost))
            raise AssertionError(
                f"load on the primary: {len(queue.taken_by(lost))} queue requests sent, {answered} answered, "
                f"{replication.copied} lineage items replicated, replication errors {replication.errors}"
            )
        load_s = time.monotonic() - started
        # WHEN the primary's whole process tree is killed: its moto state, queues and runs are gone
        lost_calls = EmulatorControl(east.state["emulator_control"]).counters().tag(tag).calls
        killed_at = time.monotonic()
        kill_stack(east)
        kill_s = time.monotonic() - killed_at
        wait_until(
            lambda: all(
                [t for t, s in load.sent if t > killed_at and s.region == survivor]
                and load.sent[-1][0] - killed_at >= KILL_LOAD_S[1]
                for load in loads
            ),
            KILL_LOAD_S[1] + 60,
            what="load on the survivor",
        )
    finally:
        for load in loads:
            load.stop()
    replication.stop()
    # THEN producers' requests go into the survivor within seconds of the kill (both ways in)
    failover = {
        load.way: min(t for t, s in load.sent if t > killed_at and s.region == survivor) - killed_at
        for load in loads
    }
    failover_s = max(failover.values())

    # WHEN the operator declares the region lost and takes it over in the survivor
    taken = queue.taken_by(lost) + api.taken_by(lost)
    replicated_at_kill = {s.request_id for s in taken if west.lineage(s.request_id)}
    took_over_at = time.monotonic()
    takeover = take_over(west.client("lambda"), west.outputs["ReaperFunctionName"], lost)
    takeover_s = time.monotonic() - took_over_at

    # AND each producer resends, under the survivor's ids, what has no end: no event, no lineage there
    def ended(request_id: str) -> bool:
        return bool(_events(results, request_id)) or bool(west.lineage(request_id))

    resent = queue.resend_unended(lost, ended) + api.resend_unended(lost, ended)
    resent_for = {r.resent_from: r.request_id for r in resent}

    # THEN every request sent ends with one terminal event, under its own id or its resent one
    # (every request a producer sent, its sends whose answer never came included; not the resends)
    everything = [s for p in (queue, api) for r in (EAST, WEST) for s in p.taken_by(r) if not s.resent_from]

    def final_in_survivor(request_id: str) -> bool:
        return (west.lineage(request_id) or {}).get("status") not in (None, "ACCEPTED")

    def settled(s: Sent) -> bool:
        ids = [s.request_id, *([resent_for[s.request_id]] if s.request_id in resent_for else [])]
        return any(_events(results, i) for i in ids) or final_in_survivor(s.request_id)

    poll_until(lambda: all(settled(s) for s in everything), 300 if FULL else 120, interval_s=0.5)
    settled_s = time.monotonic() - killed_at
    once, doubled, contradicted, event_lost, lineage_lost, lost_requests = [], [], [], [], [], []
    for s in everything:
        ids = [s.request_id, *([resent_for[s.request_id]] if s.request_id in resent_for else [])]
        events = [e for i in ids for e in _events(results, i)]
        codes = [(e["detail"].get("error") or {}).get("code") for e in events]
        if len(events) == 1:
            once.append(s.request_id)
            if not west.lineage(next(i for i in ids if _events(results, i))):
                lineage_lost.append(s.request_id)  # answered in the lost region, its lineage not replicated
        elif len(events) > 1 and "RegionLost" in codes and len(set(codes)) > 1:
            contradicted.append(s.request_id)  # answered there; its final state had not replicated
        elif len(events) > 1:
            doubled.append(s.request_id)
        elif final_in_survivor(s.request_id):
            event_lost.append(s.request_id)  # final in the lineage; its event went with the region
        else:
            lost_requests.append(s.request_id)
    # AND the survivor never ran an id the lost region owned: its only events for them are RegionLost
    ran_there = [
        s.request_id
        for s in everything
        if minted_region(s.request_id) == lost
        and any(
            (e["detail"].get("error") or {}).get("code") != "RegionLost"
            for e in results[survivor].events_for(s.request_id)
        )
    ]
    survivor_calls = EmulatorControl(west.state["emulator_control"]).counters().tag(tag).calls
    rounds = sorted(replication.round_seconds) or [0.0]
    print(
        f"\nregion lost outright: {lost} killed (SIGKILL, {kill_s:.2f} s) after {load_s:.1f} s under load, "
        f"{len(everything)} requests sent ({', '.join(f'{load.way} {len(load.sent)}' for load in loads)}), "
        f"{len(taken)} taken by {lost}; failover time {failover_s:.2f} s "
        f"({', '.join(f'{way} {t:.2f} s' for way, t in failover.items())}; goal < {FAILOVER_GOAL_S:.0f} s); "
        f"takeover {takeover_s:.2f} s: {len(takeover['ended'])} ended RegionLost, "
        f"{len(takeover['finished_meanwhile'])} final meanwhile; resent to {survivor}: {len(resent)}; "
        f"lineage replicated at the kill: {len(replicated_at_kill)} of {len(taken)} "
        f"(replication round p50 {rounds[len(rounds) // 2]:.2f} s, max {rounds[-1]:.2f} s, every "
        f"{replication.interval_s} s); one event: {len(once)} (lineage lost with the region: "
        f"{len(lineage_lost)}); event lost with the region: {len(event_lost)}; "
        f"a result then RegionLost: {len(contradicted)}; doubled {len(doubled)}; lost {len(lost_requests)}; "
        f"run by the survivor under the lost region's id: {len(ran_there)}; "
        f"sends with no answer: {sum(len(load.unknown) for load in loads)}; "
        f"every request settled {settled_s:.1f} s after the kill; Bedrock calls {lost_calls} in {lost} "
        f"(read just before the kill) + {survivor_calls} in {survivor} for {len(everything)} requests"
    )
    assert failover_s < FAILOVER_GOAL_S
    assert (len(doubled), len(lost_requests), len(ran_there)) == (0, 0, 0)
    assert all(minted_region(r.request_id) == survivor for r in resent)
