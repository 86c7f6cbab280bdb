"""The harness's verdicts, without a stack: what counts as a failure of the fault suite."""

import io
from typing import Any, cast

from xpi_tools.emulator import Counters, UsageCounters

from tests.faults.harness import Harness, Sent, Tally, unrecorded_second_answer
from tests.faults.test_soak import REFUSED_MARK, soak_slices


def test_a_clean_tally_has_no_problems() -> None:
    tally = Tally("clean", sent=3, exactly_one=3, dlq=1, dlq_expected=1, failed=1, max_calls=2, max_answers=1)

    # (a request answered Inference Failed is answered: information, not a problem)
    assert tally.problems() == []
    assert tally.row() == "| clean | 3 | 3 | 0 | 0 | 0 | 1 | 1 | 2 | 1 | 0 |"


def test_lost_doubled_stuck_unrecorded_answers_and_a_short_dlq_are_each_problems() -> None:
    tally = Tally(
        "bad",
        sent=5,
        lost=["a"],
        doubled=["b"],
        stuck=["c"],
        unrecorded_answers=["d"],
        misattributed=["inner"],
        dlq=0,
        dlq_expected=1,
    )

    problems = tally.problems()

    assert len(problems) == 6
    assert any("lost" in p and "'a'" in p for p in problems)
    assert any("doubled" in p and "'b'" in p for p in problems)
    assert any("stuck" in p and "'c'" in p for p in problems)
    assert any("second paid Bedrock answer" in p and "'d'" in p for p in problems)
    assert any("nested" in p for p in problems)
    assert any("DLQ" in p for p in problems)


def test_a_second_bedrock_answer_is_acceptable_only_where_lineage_records_it() -> None:
    assert not unrecorded_second_answer(0, None)  # never reached Bedrock (blocked, rejected)
    assert not unrecorded_second_answer(1, {"status": "COMPLETED"})
    assert unrecorded_second_answer(2, {"status": "COMPLETED"})
    assert not unrecorded_second_answer(2, {"status": "COMPLETED", "bedrock_calls_unanswered": 1})
    assert unrecorded_second_answer(3, {"status": "COMPLETED", "bedrock_calls_unanswered": 1})


class _Sqs:
    """Just enough of SQS for the harness: the requests queue and the DLQ, as lists of bodies."""

    def __init__(self) -> None:
        self.queues: dict[str, list[str]] = {"requests": [], "dlq": []}
        self.sent = 0

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, Any]:  # (boto3's names)
        self.sent += 1
        self.queues[QueueUrl].append(MessageBody)
        return {"MessageId": f"message-{self.sent}"}

    def receive_message(self, QueueUrl: str, **_: Any) -> dict[str, Any]:
        return {"Messages": [{"Body": b, "ReceiptHandle": b} for b in self.queues[QueueUrl][:10]]}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.queues[QueueUrl].remove(ReceiptHandle)

    def change_message_visibility(self, **_: Any) -> None:
        pass  # (still there, visible)

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": "0"}}


class _Reaper:
    """The Lambda API, with the reaper answering the requests it finds abandoned."""

    def __init__(self, results: "_Results") -> None:
        self.results, self.abandoned, self.runs = results, set[str](), 0

    def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:  # (boto3's names)
        assert FunctionName == "reaper"
        self.runs += 1
        for request_id in self.abandoned:
            self.results.answer(request_id)
        self.abandoned.clear()
        return {"Payload": io.BytesIO(b"{}")}


class _Stack:
    outputs = {
        "RequestsQueueUrl": "requests",
        "RequestsDLQUrl": "dlq",
        "QueueStateMachineArn": "queue",
        "ReaperFunctionName": "reaper",
    }

    def __init__(self, sqs: _Sqs, reaper: _Reaper | None = None) -> None:
        self.sqs, self.reaper = sqs, reaper

    def client(self, service: str) -> Any:
        return self.reaper if service == "lambda" else self.sqs

    def executions(self, state_machine_arn: str) -> dict[str, str]:
        return {}

    def lineage(self, request_id: str) -> dict[str, Any] | None:
        return {"status": "COMPLETED"}


class _Results:
    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}

    def answer(self, request_id: str) -> None:
        self.events.setdefault(request_id, []).append({"detail-type": "Inference Completed"})

    def events_for(self, request_id: str) -> list[dict[str, Any]]:
        return self.events.get(request_id, [])

    def caught_up(self) -> bool:
        return True


class _Emulator:
    def counters(self) -> Counters:
        return Counters(totals=UsageCounters(), models={}, keys={}, operations={}, tags={})


def _harness(
    reaper: _Reaper | None = None, results: _Results | None = None
) -> tuple[Harness, _Sqs, _Results]:
    sqs, results = _Sqs(), results or _Results()
    harness = Harness(cast(Any, _Stack(sqs, reaper)), cast(Any, results), cast(Any, _Emulator()))
    return harness, sqs, results


def test_a_valid_request_whose_message_ends_in_the_dlq_is_a_problem() -> None:
    # GIVEN a valid request and a message the consumer rejects, both answered, and both of their
    # messages in the DLQ, next to a message of someone else's
    harness, sqs, results = _harness()
    valid, rejected = Sent("valid", '{"request_id": "valid"}'), Sent("", "not JSON", expect_dlq=True)
    harness.send([valid, rejected])
    results.answer("valid")
    results.answer(rejected.request_id)
    sqs.queues["requests"].clear()  # (handled)
    sqs.queues["dlq"] += [valid.body, rejected.body, "someone else's"]

    # WHEN the pipeline has settled and the requests are tallied
    harness.settle([valid, rejected], timeout_s=1, interval_s=0.01)
    tally = harness.tally("dlq", [valid, rejected])

    # THEN the expected one counts, the valid one is a problem, and the other message stays in the DLQ
    assert tally.dlq == 1
    assert tally.dlq_unexpected == ["valid"]
    assert any("in the DLQ though valid" in p and "'valid'" in p for p in tally.problems())
    assert tally.row().split(" | ")[6] == "2"  # the DLQ column: every message of the scenario there
    assert sqs.queues["dlq"] == ["someone else's"]


def test_settle_says_whether_everything_settled_before_its_bound() -> None:
    # GIVEN two requests sent, one answered
    harness, _, results = _harness()
    first, second = Sent("first", '{"request_id": "first"}'), Sent("second", '{"request_id": "second"}')
    harness.send([first, second])
    results.answer("first")

    # WHEN the harness waits for them; THEN it says the bound passed, and once both are answered, not
    assert harness.settle([first, second], timeout_s=0.05, interval_s=0.01) is False
    results.answer("second")
    assert harness.settle([first, second], timeout_s=1, interval_s=0.01) is True


def test_the_soak_mixes_the_fault_suites_messages_in_ten_slices_with_late_copies() -> None:
    # GIVEN the soak's messages for 2,000 requests
    slices = soak_slices(2000)
    messages = [m for batch in slices for m in batch]
    bodies = [m.body for m in messages]

    # THEN ten slices of 200 requests each (a malformed message is a request of its own, answered under
    # its message id), a duplicate's two copies in one slice
    first_seen: dict[str, int] = {}
    for number, batch in enumerate(slices):
        for m in batch:
            first_seen.setdefault(m.body, number)
    new_per_slice = [sum(1 for body, k in first_seen.items() if k == number) for number in range(10)]
    assert len(slices) == 10
    assert new_per_slice == [200] * 10
    # and each slice after the first sends again 1 % of the previous slice's valid, unmarked requests
    for number, batch in enumerate(slices[1:], 1):
        late = [m for m in batch if first_seen[m.body] < number]
        assert len(late) == len({m.request_id for m in late}) == 2  # (1 % of about 195)
        assert all(first_seen[m.body] == number - 1 for m in late)
        assert not any(m.expect_dlq or REFUSED_MARK in m.body for m in late)
    # and the mix holds each kind of message the fault suite sends
    rejected = [m for m in messages if m.expect_dlq]
    assert sum(len(body) > 200_000 for body in bodies) >= 10  # oversized, with their ids
    assert any(not body.startswith(("{", "[")) for body in bodies)  # not JSON
    assert any(body.startswith("[") for body in bodies)  # JSON, not an object
    assert all(not m.request_id for m in rejected if not m.body.startswith("{"))  # under message ids
    assert sum(m.must_not_answer is not None for m in messages) >= 10  # a nested request_id
    assert sum(REFUSED_MARK in body for body in bodies) >= 5  # refused by Lambda
    assert len(bodies) - len(set(bodies)) >= 2000 // 100 + 18  # duplicates and late copies


def test_settle_runs_the_reaper_as_its_schedule_would_when_asked() -> None:
    # GIVEN a request whose run ended without answering it (a queue run ended by its 5-minute limit):
    # only the reaper, on its schedule, answers it
    results = _Results()
    reaper = _Reaper(results)
    harness, _, _ = _harness(reaper, results)
    stuck = Sent("stuck", '{"request_id": "stuck"}')
    harness.send([stuck])
    reaper.abandoned.add("stuck")

    # WHEN the harness waits without playing the schedule, THEN the request stays unanswered
    assert harness.settle([stuck], timeout_s=0.05, interval_s=0.01) is False
    # WHEN it plays the reaper's schedule, THEN the reaper ran and the request settled
    assert harness.settle([stuck], timeout_s=1, interval_s=0.01, reap_every_s=0.02) is True
    assert reaper.runs == harness.reaper_runs >= 1
