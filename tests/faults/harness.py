"""The fault suite's harness: per scenario, a producer sends requests with stock boto3 (SendMessage on the
requests queue), the scenario injects its fault, and an auditor counts, per request, the result events
the subscriber got, the lineage item's status, whether the message ended in the DLQ, and the Bedrock
calls the emulator counted for it.

Bedrock calls are counted per request by the emulator's tag directive: each prompt carries
`[[emulator:tag=<request id>]]`, and the emulator keeps calls and successes (answers, i.e. paid calls)
per tag. A request answered more than once by Bedrock is acceptable only where its lineage item says
so (`bedrock_calls_unanswered`: the extra answer was never seen, and is counted).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from xpi_tools.emulator import EmulatorControl

from tests.helpers.stack import LocalStackClient, ResultCollector, queue_is_drained
from tests.helpers.waiting import poll_until

# The short run (what `make test` runs) and the full one (`make faults`: XPI_FAULTS_SCALE=full).
FULL = os.environ.get("XPI_FAULTS_SCALE", "short").lower() == "full"
# How long every request of a scenario has to reach its terminal event (and its messages the DLQ).
SETTLE_S = 600 if FULL else 120

HEADER = (
    "| scenario | sent | exactly one | lost | doubled | stuck | DLQ | answered failed "
    "| Bedrock calls/request (max) | Bedrock answers/request (max) | unrecorded second answers |"
)
RULE = "|---|---|---|---|---|---|---|---|---|---|---|"


@dataclass
class Sent:
    """One message the producer put on the queue, and the id its answer must come under."""

    request_id: str
    body: str
    expect_dlq: bool = False  # a message the consumer rejects ends in the DLQ after maxReceiveCount
    # an id nothing may be answered under (a nested "request_id" that is not the request's)
    must_not_answer: str | None = None


@dataclass
class Tally:
    scenario: str
    sent: int = 0
    exactly_one: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    dlq: int = 0
    dlq_expected: int = 0
    # requests whose message ended in the DLQ though the consumer had to accept it
    dlq_unexpected: list[str] = field(default_factory=list)
    failed: int = 0  # requests whose one event is Inference Failed (information: faults may fail some)
    max_calls: int = 0
    max_answers: int = 0
    unrecorded_answers: list[str] = field(default_factory=list)
    misattributed: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.sent} | {self.exactly_one} | {len(self.lost)} | {len(self.doubled)} "
            f"| {len(self.stuck)} | {self.dlq + len(self.dlq_unexpected)} | {self.failed} "
            f"| {self.max_calls} | {self.max_answers} "
            f"| {len(self.unrecorded_answers)} |"
        )

    def problems(self) -> list[str]:
        found = []
        for what, ids in (
            ("lost (no event)", self.lost),
            ("doubled (more than one event)", self.doubled),
            ("stuck (lineage ACCEPTED)", self.stuck),
            ("a second paid Bedrock answer lineage does not record", self.unrecorded_answers),
            ("answered under a nested id", self.misattributed),
            ("in the DLQ though valid", self.dlq_unexpected),
        ):
            if ids:
                found.append(f"{self.scenario}: {len(ids)} {what}: {sorted(ids)[:10]}")
        if self.dlq != self.dlq_expected:
            found.append(f"{self.scenario}: {self.dlq} messages in the DLQ, {self.dlq_expected} expected")
        return found


def stack_rss_mib(stack: LocalStackClient) -> tuple[float, float]:
    """The local stack's memory: the `xpi local up` process's resident set, and that of it with every
    process it started (moto, the emulator, the function runtimes), in MiB, from /proc."""
    leader, page = int(stack.state["pid"]), os.sysconf("SC_PAGE_SIZE")
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            rss[int(entry)] = int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {leader}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return rss.get(leader, 0) / 2**20, sum(rss.get(pid, 0) for pid in tree) / 2**20


def unrecorded_second_answer(answers: int, lineage: dict[str, Any] | None) -> bool:
    """Whether Bedrock answered (and billed) a request more often than its lineage accounts for: one
    answer is the one used; each further one must be counted in `bedrock_calls_unanswered`."""
    recorded = int((lineage or {}).get("bedrock_calls_unanswered") or 0)
    return answers > 1 + recorded


def new_id(scenario: str) -> str:
    return f"flt-{scenario}-{uuid.uuid4().hex[:12]}"


def request_body(request_id: str, model: str, text: str = "Fault suite request", **extra: Any) -> str:
    return json.dumps(
        {
            "request_id": request_id,
            "model": model,
            "prompt": f"{text} [[emulator:tag={request_id}]]",
            "caller": {"project": "faults", "cost_centre": "cc-faults"},
            **extra,
        }
    )


class Harness:
    """One scenario's producer and auditor, on the session's local stack."""

    def __init__(self, stack: LocalStackClient, results: ResultCollector, emulator: EmulatorControl) -> None:
        self.stack, self.results, self.emulator = stack, results, emulator
        self.sqs = stack.client("sqs")
        self.queue = stack.outputs["RequestsQueueUrl"]
        self.dlq = stack.outputs["RequestsDLQUrl"]
        self._in_dlq: set[str] = set()
        self._dlq_unexpected: set[str] = set()
        self._sent: dict[str, Sent] = {}  # by body: every message this harness sent
        self.reaper_runs = 0

    # -- producer ---------------------------------------------------------------------------------

    def send(self, messages: list[Sent]) -> None:
        """SendMessage each, from a few producer threads; a message without an id of its own is answered
        under its SQS message id, which is filled in here."""

        def one(message: Sent) -> None:
            message_id = self.sqs.send_message(QueueUrl=self.queue, MessageBody=message.body)["MessageId"]
            if not message.request_id:
                message.request_id = message_id
            self._sent[message.body] = message

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, messages))

    # -- auditor ----------------------------------------------------------------------------------

    def _collect_dlq(self) -> None:
        """Takes the messages this harness sent off the DLQ, counting each under its request: those the
        consumer rejects as expected, any other as a problem (a valid request's message must never end
        there). A message it did not send is made visible again at once, for whoever else reads the DLQ."""
        for _ in range(20):
            messages = self.sqs.receive_message(
                QueueUrl=self.dlq, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                sent = self._sent.get(message["Body"])
                if sent is None:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.dlq, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                    continue
                (self._in_dlq if sent.expect_dlq else self._dlq_unexpected).add(sent.request_id)
                self.sqs.delete_message(QueueUrl=self.dlq, ReceiptHandle=message["ReceiptHandle"])

    def reap(self) -> None:
        """Runs the reaper as its EventBridge schedule does on AWS (moto fires no schedule), through the
        Lambda API: a request left ACCEPTED past its workflow's longest run (a queue run ended by its
        5-minute limit) ends FAILED (`RequestAbandoned`) with one event."""
        try:
            response = self.stack.client("lambda").invoke(
                FunctionName=self.stack.outputs["ReaperFunctionName"],
                Payload=json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
            )
            response["Payload"].read()
        except (BotoCoreError, ClientError) as error:  # (a schedule's run that failed: the next one comes)
            print(f"the reaper's run failed: {error}")
            return
        self.reaper_runs += 1

    def settle(
        self,
        messages: list[Sent],
        timeout_s: float = SETTLE_S,
        interval_s: float = 0.5,
        reap_every_s: float | None = None,
    ) -> bool:
        """Waits until every request has an event, the requests queue has handled every message (so a
        message bound for the DLQ is there), the expected DLQ messages are collected, no workflow of
        these requests still runs, and the subscriber's queue is drained: whatever this scenario's
        requests emit is in `results` by then; meanwhile the reaper runs every `reap_every_s`, as its
        schedule would. Returns at the bound regardless (the tally says what is missing): True if
        everything settled, False if the bound passed first."""
        ids = {m.request_id for m in messages}
        last_reap = time.monotonic()

        def answered() -> bool:
            nonlocal last_reap
            if reap_every_s is not None and time.monotonic() - last_reap >= reap_every_s:
                self.reap()
                last_reap = time.monotonic()
            return all(self.results.events_for(i) for i in ids)

        dlq_wanted = {m.request_id for m in messages if m.expect_dlq}
        queue_machine = self.stack.outputs["QueueStateMachineArn"]
        deadline = time.monotonic() + timeout_s

        def remaining() -> float:
            return max(deadline - time.monotonic(), 0.1)

        settled = poll_until(answered, remaining(), interval_s)
        settled &= poll_until(lambda: queue_is_drained(self.sqs, self.queue), remaining(), interval_s)

        def dlq_collected() -> bool:
            self._collect_dlq()
            return dlq_wanted <= self._in_dlq

        if dlq_wanted:
            settled &= poll_until(dlq_collected, remaining(), interval_s)

        def workflows_over() -> bool:
            # the queue workflow runs one execution per SQS batch, named afresh: none of them may still
            # run (scenarios run one after another, so any running one may carry these requests)
            running = [s for s in self.stack.executions(queue_machine).values() if s == "RUNNING"]
            return not running and self.results.caught_up()

        settled &= poll_until(workflows_over, remaining(), interval_s)
        # (a late extra copy of a message bound for the DLQ is collected too, and any valid one there)
        self._collect_dlq()
        return settled

    def tally(self, scenario: str, messages: list[Sent]) -> Tally:
        tally = Tally(scenario, sent=len(messages))
        self._collect_dlq()  # (whatever reached the DLQ since the last settle)
        counters = self.emulator.counters()
        seen: set[str] = set()
        for message in messages:
            request_id = message.request_id
            if message.must_not_answer and self.results.events_for(message.must_not_answer):
                tally.misattributed.append(message.must_not_answer)
            if message.expect_dlq:
                tally.dlq_expected += 1
                tally.dlq += request_id in self._in_dlq
            if request_id in seen:  # the second copy of a duplicate: counted once
                continue
            seen.add(request_id)
            if request_id in self._dlq_unexpected:
                tally.dlq_unexpected.append(request_id)
            events = self.results.events_for(request_id)
            if not events:
                tally.lost.append(request_id)
            elif len(events) > 1:
                tally.doubled.append(request_id)
            else:
                tally.exactly_one += 1
            tally.failed += bool(events) and events[0].get("detail-type") == "Inference Failed"
            item = self.stack.lineage(request_id)
            if item is not None and item.get("status") == "ACCEPTED":
                tally.stuck.append(request_id)
            usage = counters.tag(request_id)
            tally.max_calls = max(tally.max_calls, usage.calls)
            tally.max_answers = max(tally.max_answers, usage.successes)
            if unrecorded_second_answer(usage.successes, item):
                tally.unrecorded_answers.append(request_id)
        # exactly one, lost and doubled count requests; sent counts messages (a duplicate sends two)
        return tally


@dataclass
class Scenario:
    name: str
    # builds the scenario's messages for n requests; the model lets each scenario's faults stay its own
    messages: Callable[[int, str], list[Sent]]
    model: str
    # sends the messages under the scenario's fault and waits until they have settled
    run: Callable[[Harness, str, list[Sent]], None]
    short_n: int = 12
    full_n: int = 120

    @property
    def n(self) -> int:
        return self.full_n if FULL else self.short_n
