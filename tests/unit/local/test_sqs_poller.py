"""SqsPoller against moto's SQS (in-process): the Lambda SQS event source mapping's behaviour."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws
from xpi_tools.local.lambda_runtime import FunctionSpec, InvokeResult, LambdaRuntimePool
from xpi_tools.local.sqs_poller import MappingSpec, SqsPoller, build_sqs_event, failed_message_ids

from tests.helpers.waiting import wait_until

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

REGION = "us-gov-west-1"
WAIT_S = 8.0  # for the poller to get through what a test sent
VISIBILITY_TIMEOUT_S = 1
MAX_RECEIVE_COUNT = 2


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator["SQSClient"]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


class Queues:
    def __init__(self, sqs: "SQSClient") -> None:
        self.sqs = sqs
        self.dlq_url = sqs.create_queue(QueueName="requests-dlq")["QueueUrl"]
        dlq_arn = self.arn(self.dlq_url)
        self.url = sqs.create_queue(
            QueueName="requests",
            Attributes={
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def mapping(self, function_name: str, **overrides: Any) -> MappingSpec:
        return MappingSpec(
            queue_url=self.url, queue_arn=self.arn(self.url), function_name=function_name, **overrides
        )

    def send(self, *bodies: str) -> list[str]:
        return [self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"] for body in bodies]

    def count(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def in_flight(self, url: str) -> int:
        """Messages received and not yet deleted (invisible until their visibility timeout)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dlq_bodies(self) -> list[str]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        return sorted(message["Body"] for message in messages)


@pytest.fixture
def queues(sqs: "SQSClient") -> Queues:
    return Queues(sqs)


class Recorder:
    """An invoke callable that records every event and answers with `respond(event)`."""

    def __init__(self, respond: Callable[[dict[str, Any]], InvokeResult]) -> None:
        self.respond = respond
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, function_name: str, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        with self.lock:
            self.events.append(event)
        return self.respond(event)

    def bodies(self) -> list[list[str]]:
        with self.lock:
            return [[record["body"] for record in event["Records"]] for event in self.events]


def ok(payload: object = None) -> InvokeResult:
    return InvokeResult(json.dumps(payload).encode(), None, 1.0, None)


def unhandled(event: dict[str, Any]) -> InvokeResult:
    return InvokeResult(b'{"errorType": "ValueError", "errorMessage": "boom"}', "Unhandled", 1.0, None)


def test_the_event_is_built_as_lambda_builds_it(sqs: "SQSClient", queues: Queues) -> None:
    sqs.send_message(
        QueueUrl=queues.url,
        MessageBody='{"prompt": "hi"}',
        MessageAttributes={
            "tenant": {"DataType": "String", "StringValue": "t-1"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    received = sqs.receive_message(
        QueueUrl=queues.url, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    mapping = queues.mapping("consumer")

    event = build_sqs_event(mapping, received)

    (record,) = event["Records"]
    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["body"] == '{"prompt": "hi"}'
    assert record["messageId"] == received[0]["MessageId"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:requests"
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"] == received[0]["MD5OfBody"]
    assert list(record["attributes"]) == [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "tenant": {
            "stringValue": "t-1",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }


def test_a_fifo_record_carries_its_group(sqs: "SQSClient") -> None:
    url = sqs.create_queue(
        QueueName="requests.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="tenant-1")
    received = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]

    event = build_sqs_event(MappingSpec(url, "arn", "consumer"), received)

    assert event["Records"][0]["attributes"]["MessageGroupId"] == "tenant-1"
    assert "MessageDeduplicationId" in event["Records"][0]["attributes"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", set()),
        (b"null", set()),
        (b"{}", set()),
        (b'{"batchItemFailures": null}', set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}', {"m2"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "unknown"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"itemId": "m2"}]}', None),
        (b'{"batchItemFailures": ["m2"]}', None),
        (b'{"batchItemFailures": "m2"}', None),
        (b'"ok"', None),
        (b"not json", None),
    ],
)
def test_partial_batch_responses_are_read_as_lambda_reads_them(
    payload: bytes, expected: set[str] | None
) -> None:
    assert failed_message_ids(payload, {"m1", "m2"}) == expected


def test_partial_failure_deletes_the_rest_and_redrives_the_failed_one(
    queues: Queues,
    sqs: "SQSClient",
    make_pool: Callable[..., LambdaRuntimePool],
    spec_for: Callable[..., FunctionSpec],
) -> None:
    # GIVEN the real partial-batch consumer in a Lambda runtime, behind the poller
    pool = make_pool(max_per_function=1)
    pool.register(spec_for("consumer", "partial_batch"))
    invoke = Recorder(lambda event: pool.invoke("consumer", json.dumps(event).encode()))
    queues.send("a", "fail", "b")

    # WHEN
    with SqsPoller(sqs, invoke, [queues.mapping("consumer")]):
        wait_until(lambda: queues.dlq_bodies() == ["fail"], WAIT_S)
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    # THEN the good ones went once; the failed one was delivered maxReceiveCount times, then moved
    deliveries = [body for batch in invoke.bodies() for body in batch]
    assert sorted(deliveries) == ["a", "b"] + ["fail"] * MAX_RECEIVE_COUNT
    receive_counts = [
        record["attributes"]["ApproximateReceiveCount"]
        for event in invoke.events
        for record in event["Records"]
        if record["body"] == "fail"
    ]
    assert receive_counts == ["1", "2"]


def test_a_function_error_fails_the_whole_batch(queues: Queues, sqs: "SQSClient") -> None:
    invoke = Recorder(unhandled)
    queues.send("a", "b")

    with SqsPoller(sqs, invoke, [queues.mapping("consumer")]):
        wait_until(lambda: queues.dlq_bodies() == ["a", "b"], WAIT_S)

    deliveries = sorted(body for batch in invoke.bodies() for body in batch)
    assert deliveries == ["a", "a", "b", "b"]
    assert queues.count(queues.url) == 0


def test_an_invalid_partial_response_fails_the_whole_batch(queues: Queues, sqs: "SQSClient") -> None:
    invoke = Recorder(lambda event: ok({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}))
    queues.send("a", "b")

    with SqsPoller(sqs, invoke, [queues.mapping("consumer")]):
        wait_until(lambda: queues.dlq_bodies() == ["a", "b"], WAIT_S)


def test_partial_responses_are_ignored_unless_reported(queues: Queues, sqs: "SQSClient") -> None:
    def fail_everything(event: dict[str, Any]) -> InvokeResult:
        return ok({"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]})

    invoke = Recorder(fail_everything)
    queues.send("a", "b")

    with SqsPoller(sqs, invoke, [queues.mapping("consumer", report_batch_item_failures=False)]):
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    assert sorted(body for batch in invoke.bodies() for body in batch) == ["a", "b"]


def test_batch_size_is_respected(queues: Queues, sqs: "SQSClient") -> None:
    invoke = Recorder(lambda event: ok())
    bodies = [f"m{n}" for n in range(7)]
    queues.send(*bodies)

    with SqsPoller(sqs, invoke, [queues.mapping("consumer", batch_size=3)]):
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    batches = invoke.bodies()
    assert all(1 <= len(batch) <= 3 for batch in batches)
    assert sorted(body for batch in batches for body in batch) == sorted(bodies)
    assert queues.dlq_bodies() == []


def test_the_batching_window_gathers_messages(queues: Queues, sqs: "SQSClient") -> None:
    invoke = Recorder(lambda event: ok())
    queues.send("a", "b")

    with SqsPoller(sqs, invoke, [queues.mapping("consumer", max_batching_window_s=0.9)]):
        # the window opens when the poller receives a and b: c and d arrive inside it
        wait_until(lambda: queues.in_flight(queues.url) == 2, WAIT_S)
        queues.send("c", "d")
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    assert [sorted(batch) for batch in invoke.bodies()] == [["a", "b", "c", "d"]]


def test_a_message_received_twice_within_the_window_is_in_the_batch_once(
    queues: Queues, sqs: "SQSClient"
) -> None:
    # GIVEN a batching window longer than the queue's visibility timeout (a misconfiguration)
    invoke = Recorder(lambda event: ok())
    queues.send("a")

    with SqsPoller(sqs, invoke, [queues.mapping("consumer", max_batching_window_s=1.6)]):
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    # THEN it is delivered once, and deleted with its newest receipt handle
    assert invoke.bodies() == [["a"]]
    assert invoke.events[0]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"


def test_an_exception_does_not_kill_the_poller(queues: Queues, sqs: "SQSClient") -> None:
    calls = {"n": 0}

    def flaky(event: dict[str, Any]) -> InvokeResult:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the runtime pool hiccupped")
        return ok()

    queues.send("a")

    with SqsPoller(sqs, Recorder(flaky), [queues.mapping("consumer")]):
        wait_until(lambda: queues.count(queues.url) == 0, WAIT_S)

    assert calls["n"] == 2


class CountingReceives:
    """The SQS client, counting the receive_message calls (long polls) under way or done."""

    def __init__(self, sqs: "SQSClient") -> None:
        self._sqs = sqs
        self._lock = threading.Lock()
        self.receives = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def receive_message(self, **arguments: Any) -> Any:
        with self._lock:
            self.receives += 1
        return self._sqs.receive_message(**arguments)


def test_stop_is_quick(queues: Queues, sqs: "SQSClient") -> None:
    client = CountingReceives(sqs)
    poller = SqsPoller(
        client,
        Recorder(lambda event: ok()),
        [queues.mapping("consumer")],
        concurrency_per_mapping=3,
    )
    poller.start()
    # every poller thread is in a long poll, the case stop() must not wait out
    wait_until(lambda: client.receives >= 3, WAIT_S)

    started = time.monotonic()
    poller.stop()

    assert time.monotonic() - started < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("sqs-poller-")]
