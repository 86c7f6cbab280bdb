"""Every request accounted for under faults, on the local stack.

Each scenario sends its requests as a producer, injects its fault through the emulator's control
endpoint, waits until every request has its terminal event (or the bound passes), and prints one row:
sent, exactly one event, lost, doubled, stuck (lineage ACCEPTED), DLQ, and Bedrock calls and answers
per request. It fails on any lost, doubled or stuck request, a DLQ count other than the scenario's
rejected messages, or a second paid Bedrock answer that lineage does not record.

Short by default (what `make test` runs); `XPI_FAULTS_SCALE=full` (`make faults`) sends 100-150 per
scenario.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import boto3
import pytest
from xpi_tools.emulator import EmulatorControl
from xpi_tools.emulator.client import ErrorCode
from xpi_tools.local.faults import ControlClient

from tests.faults.harness import (
    FULL,
    HEADER,
    RULE,
    SETTLE_S,
    Harness,
    Scenario,
    Sent,
    Tally,
    new_id,
    request_body,
)
from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.helpers.waiting import poll_until

pytestmark = pytest.mark.integration

TABLE: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    if TABLE:
        print("\n" + "\n".join([f"fault suite ({'full' if FULL else 'short'} run)", HEADER, RULE, *TABLE]))


@pytest.fixture
def emulator(local_stack: LocalStackClient) -> Iterator[EmulatorControl]:
    control = EmulatorControl(local_stack.state["emulator_control"])
    yield control
    control.clear_faults()


def plain(name: str) -> Callable[[int, str], list[Sent]]:
    def build(n: int, model: str) -> list[Sent]:
        messages = []
        for i in range(n):
            request_id = new_id(name)
            messages.append(Sent(request_id, request_body(request_id, model, f"Fault suite {name} {i}")))
        return messages

    return build


def mixed_bad(n: int, model: str) -> list[Sent]:
    """Per group of five: a request sent twice (same request_id), one over 200,000 bytes with its id, one
    body that is not JSON and one that is JSON but not an object (both answered under their message ids),
    and one whose caller tags carry a nested "request_id" that must not be taken for the request's."""
    messages: list[Sent] = []
    for i in range(max(n // 5, 1)):
        duplicate = new_id("dup")
        body = request_body(duplicate, model, f"Twice delivered {i}")
        messages += [Sent(duplicate, body), Sent(duplicate, body)]
        big = new_id("big")
        messages.append(Sent(big, request_body(big, model, "x" * 205_000), expect_dlq=True))
        messages.append(Sent("", f"plain words {i} {new_id('nj')}, no JSON", expect_dlq=True))
        messages.append(Sent("", json.dumps([new_id("list"), i]), expect_dlq=True))
        nested, inner = new_id("nested"), new_id("inner")
        messages.append(
            Sent(
                nested,
                request_body(
                    nested,
                    model,
                    f"Nested id {i}",
                    caller={"project": "faults", "cost_centre": "cc-faults", "tags": {"request_id": inner}},
                ),
                must_not_answer=inner,
            )
        )
    return messages


def run_plain(harness: Harness, model: str, messages: list[Sent]) -> None:
    harness.send(messages)
    harness.settle(messages)


def run_redelivered(harness: Harness, model: str, messages: list[Sent]) -> None:
    """Every message delivered again after its request has finished, as SQS's at-least-once delivery
    may: the late copy must start nothing, emit nothing and call Bedrock no more."""
    harness.send(messages)
    harness.settle(messages)
    again = [Sent(m.request_id, m.body) for m in messages]
    harness.send(again)
    harness.settle(again)
    messages.extend(again)  # (tallied with the first copies: sent counts both)


def run_with_faults(*faults: tuple[ErrorCode, float]) -> Callable[[Harness, str, list[Sent]], None]:
    def run(harness: Harness, model: str, messages: list[Sent]) -> None:
        for error, rate in faults:
            harness.emulator.inject_fault(error, model=model, rate=rate)
        try:
            harness.send(messages)
            harness.settle(messages)
        finally:
            harness.emulator.clear_faults()

    return run


def run_with_stalled_streams(harness: Harness, model: str, messages: list[Sent]) -> None:
    """A third of the calls are answered (and billed), then their stream goes silent half-way: the
    invoke function notices within its gap between chunks (BEDROCK_STREAM_IDLE_TIMEOUT_S), not its
    whole call's timeout, and each such request fails once, its lost answer counted in lineage, without
    a second paid call."""
    count = max(len(messages) // 3, 1)
    harness.emulator.inject_fault("StreamStall", model=model, count=count, stage="stall", stall_seconds=120)
    try:
        harness.send(messages)
        harness.settle(messages)
        assert harness.emulator.faults() == []  # every stall fired: the fault was exercised
        counters = harness.emulator.counters()
        lost = {
            m.request_id: counters.tag(m.request_id).calls
            for m in messages
            if (harness.stack.lineage(m.request_id) or {}).get("bedrock_calls_unanswered") == 1
        }
        # each stalled call is recorded as a lost answer, and was not called again
        assert sorted(lost.values()) == [1] * count, lost
        failed = {
            m.request_id
            for m in messages
            if any(e["detail-type"] == "Inference Failed" for e in harness.results.events_for(m.request_id))
        }
        assert failed == set(lost)
    finally:
        harness.emulator.clear_faults()


def run_key_rotation(harness: Harness, model: str, messages: list[Sent]) -> None:
    """Half the requests under the key in the secret; then the commercial side issues a new key, the
    operator puts it in the secret, and the old key is revoked while the invoke function still holds it;
    then the other half."""
    stack, emulator = harness.stack, harness.emulator
    secret_arn = stack.outputs["CommercialCredentialsSecretArn"]
    invoke_role = stack.state["function_credentials"]["InvokeModelFunction"]
    as_invoke_role = boto3.client(
        "secretsmanager",
        endpoint_url=stack.state["aws"],
        region_name=stack.state["region"],
        aws_access_key_id=invoke_role["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=invoke_role["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=invoke_role["AWS_SESSION_TOKEN"],
    )
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    harness.send(first)
    harness.settle(first)
    original = as_invoke_role.get_secret_value(SecretId=secret_arn)["SecretString"]
    secret = json.loads(original)
    old_key, old_secret = secret["aws_access_key_id"], secret["aws_secret_access_key"]
    new_key, new_secret = f"AKIAFLT{new_id('k')[-12:].upper()}", f"fault-suite-{new_id('s')}"
    operator = stack.client("secretsmanager")
    emulator.add_access_key(new_key, new_secret)
    operator.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {**secret, "aws_access_key_id": new_key, "aws_secret_access_key": new_secret}
        ),
    )
    emulator.revoke_access_key(old_key)
    try:
        harness.send(second)
        harness.settle(second)
        # (the second half was answered under the new key: the rotation was exercised, not skipped)
        assert emulator.counters().key(new_key).successes >= len(second)
    finally:
        # the stack's own key again, for whatever runs next in this session
        emulator.add_access_key(old_key, old_secret)
        operator.put_secret_value(SecretId=secret_arn, SecretString=original)
        emulator.revoke_access_key(new_key)


def run_with_runtime_kills(function: str, after: str, body_contains: str) -> Callable[..., None]:
    """A third of the requests lose `function`'s runtime (the local stack's control endpoint) right after
    its AWS call `after` whose body contains `body_contains` was carried out: the work is done, the
    answer never reaches the runtime, and the step fails with Runtime.ExitError as on Lambda."""

    def run(harness: Harness, model: str, messages: list[Sent]) -> None:
        control = ControlClient(harness.stack.state["control"])
        contains = harness.stack.outputs.get(body_contains, body_contains)
        count = max(len(messages) // 3, 1)
        control.kill_runtime(function, count, after=after, body_contains=contains)
        try:
            harness.send(messages)
            harness.settle(messages)
            # (runtimes were killed: the fault was exercised, not skipped). Not every armed kill need fire:
            # one fresh-clone run saw 2 of 3, the cause not yet known; what must hold for every request is
            # the harness's count of lost, doubled and stuck, which does not depend on how many fired.
            fired = sum(kill["fired"] for kill in control.faults()["kills"])
            print(f"\n{function} runtimes killed after {after}: {fired} of {count} armed")
            assert 1 <= fired <= count
        finally:
            control.clear()

    return run


REFUSED_MARK = "refused-by-lambda"


def refused_third(name: str) -> Callable[[int, str], list[Sent]]:
    """n requests, every third of them marked (in its prompt) for the Lambda service to refuse."""

    def build(n: int, model: str) -> list[Sent]:
        messages = []
        for i in range(n):
            request_id = new_id(name)
            text = f"Fault suite {name} {i}" + (f" {REFUSED_MARK}" if i % 3 == 0 else "")
            messages.append(Sent(request_id, request_body(request_id, model, text)))
        return messages

    return build


def run_with_process_refused(harness: Harness, model: str, messages: list[Sent]) -> None:
    """The Lambda service refuses the queue workflow's process function for every invocation carrying
    a marked request (429 TooManyRequestsException, as with its reserved concurrency at 0), through every
    retry: the step never runs for them, so they hold no claim. The workflow answers each itself
    (RequestNotProcessed, the consumer's prepared answer), once, and calls Bedrock for none of them."""
    control = ControlClient(harness.stack.state["control"])
    refused = {m.request_id for m in messages if REFUSED_MARK in m.body}
    # (each refused request's step is tried up to six times: armed well past that)
    control.refuse_invoke("ProcessRequestFunction", 10 * len(refused), body_contains=REFUSED_MARK)
    try:
        harness.send(messages)
        harness.settle(messages)
        fired = control.faults()["refusals"][0]["fired"]
        print(f"\nProcessRequestFunction invocations refused: {fired}")
        assert fired >= len(refused)  # every marked request's step was refused, at least once
        counters = harness.emulator.counters()
        answered = {
            m.request_id: [e["detail"]["error"]["code"] for e in harness.results.events_for(m.request_id)]
            for m in messages
            if m.request_id in refused
        }
        assert answered == {request_id: ["RequestNotProcessed"] for request_id in refused}
        assert all(counters.tag(request_id).calls == 0 for request_id in refused)
    finally:
        control.clear()


def run_aws_outage(harness: Harness, model: str, messages: list[Sent]) -> None:
    """The AWS API answers every function (and its SQS poller) 503 for a while, starting once the first
    half of the requests' workflows are running; the second half is sent during it. moto keeps its state
    throughout."""
    control = ControlClient(harness.stack.state["control"])
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    harness.send(first)
    # (a request of the first half claimed: its workflow runs)
    poll_until(lambda: any(harness.stack.lineage(m.request_id) for m in first), 60, 0.1)
    control.aws_outage(20 if FULL else 10)
    try:
        harness.send(second)
        harness.settle(messages, timeout_s=SETTLE_S)
        met = control.faults()["outage_answered"]
        print(f"\n503 answers during the outage, per function: {met}")
        assert met  # the outage was met, not missed
        # a passing outage of the AWS API is retried through, not turned into failed requests
        failed = [
            m.request_id
            for m in messages
            if any(e["detail-type"] == "Inference Failed" for e in harness.results.events_for(m.request_id))
        ]
        assert failed == []
    finally:
        control.clear()


SCENARIOS = [
    Scenario("baseline", plain("base"), "us.amazon.nova-lite-v1:0", run_plain, 12, 100),
    Scenario(
        "30 % throttling",
        plain("thr"),
        "us.meta.llama3-3-70b-instruct-v1:0",
        run_with_faults(("ThrottlingException", 0.3)),
        15,
        150,
    ),
    Scenario(
        "5xx and timeouts",
        plain("5xx"),
        "anthropic.claude-3-haiku-20240307-v1:0",
        run_with_faults(
            ("ServiceUnavailableException", 0.1),
            ("InternalServerException", 0.1),
            ("ModelTimeoutException", 0.1),
        ),
        12,
        100,
    ),
    Scenario(
        "Bedrock's stream stalls mid-answer",
        plain("stall"),
        "us.amazon.nova-lite-v1:0",
        run_with_stalled_streams,
        6,
        60,
    ),
    Scenario(
        "key revoked, new key put in the secret",
        plain("key"),
        "us.amazon.nova-micro-v1:0",
        run_key_rotation,
        12,
        100,
    ),
    Scenario(
        "SQS redelivery after the end",
        plain("redeliver"),
        "us.meta.llama3-3-70b-instruct-v1:0",
        run_redelivered,
        10,
        100,
    ),
    Scenario(
        "process runtime killed after Bedrock answered",
        plain("kill-process"),
        "us.amazon.nova-lite-v1:0",
        # the answer never reaches the workflow: the retried step meets its own claim and ends the
        # request with the possibly billed call counted, never calling Bedrock again
        run_with_runtime_kills("ProcessRequestFunction", "return", ""),
        9,
        100,
    ),
    Scenario(
        "process runtime killed after its claim",
        plain("kill-claim"),
        "us.amazon.nova-lite-v1:0",
        # right after the lineage claim's PutItem, before Bedrock: the retry meets the claim, no call
        run_with_runtime_kills("ProcessRequestFunction", "PutItem", "LineageTableName"),
        9,
        100,
    ),
    Scenario(
        "record runtime killed after its lineage write",
        plain("kill-record"),
        "us.amazon.nova-lite-v1:0",
        run_with_runtime_kills("RecordOutcomeFunction", "UpdateItem", "LineageTableName"),
        9,
        100,
    ),
    Scenario(
        "process function refused by Lambda for good",
        refused_third("refused"),
        "us.amazon.nova-micro-v1:0",
        run_with_process_refused,
        9,
        100,
    ),
    Scenario(
        "AWS API gone (503) for a while",
        plain("outage"),
        "us.amazon.nova-micro-v1:0",
        run_aws_outage,
        10,
        100,
    ),
    Scenario(
        "duplicates, oversized, not-JSON, not-an-object, nested",
        mixed_bad,
        "us.amazon.nova-pro-v1:0",
        run_plain,
        10,
        100,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_request_is_accounted_for(
    local_stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl, scenario: Scenario
) -> None:
    # GIVEN the scenario's requests and fault
    harness = Harness(local_stack, results, emulator)
    messages = scenario.messages(scenario.n, scenario.model)

    # WHEN they are sent and the pipeline has settled
    scenario.run(harness, scenario.model, messages)
    tally: Tally = harness.tally(scenario.name, messages)
    TABLE.append(tally.row())
    print("\n" + tally.row())

    # THEN every request has exactly one event, none is stuck, and every second Bedrock answer is recorded
    assert tally.problems() == []
