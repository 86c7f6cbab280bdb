"""The producers' failover helper (xpi_tools.regions): each request to the healthy region's queue, under
an id minted for that region."""

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from xpi.domain.regions import minted_region
from xpi_tools.regions import FailoverProducer, NoRegionAvailable, RegionQueue, SendOutcomeUnknown

WEST = RegionQueue("us-gov-west-1", "https://sqs.us-gov-west-1/q")
EAST = RegionQueue("us-gov-east-1", "https://sqs.us-gov-east-1/q")


class Queue:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failure: Exception | None = None

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, str]:
        if self.failure is not None:
            raise self.failure
        self.bodies.append(json.loads(MessageBody))
        return {"MessageId": str(len(self.bodies))}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def producer() -> tuple[FailoverProducer, dict[str, Queue], Clock]:
    queues = {WEST.region: Queue(), EAST.region: Queue()}
    clock = Clock()
    return FailoverProducer([WEST, EAST], lambda region: queues[region.region], 5.0, clock), queues, clock


def unavailable() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "SendMessage"
    )


def test_the_primary_takes_requests_under_ids_minted_for_it() -> None:
    send, queues, _ = producer()

    sent = send.send({"model": "m", "prompt": "p"}, unique="u1")

    assert (sent.request_id, sent.region, sent.failed_over_from) == ("us-gov-west-1.u1", "us-gov-west-1", ())
    assert queues["us-gov-west-1"].bodies == [{"model": "m", "prompt": "p", "request_id": "us-gov-west-1.u1"}]


@pytest.mark.parametrize(
    "failure", [EndpointConnectionError(endpoint_url="https://sqs.us-gov-west-1"), unavailable()]
)
def test_a_region_out_of_reach_fails_over_and_comes_back_after_its_pause(failure: Exception) -> None:
    # GIVEN the primary out of reach (its endpoint, or its API answering 5xx)
    send, queues, clock = producer()
    queues["us-gov-west-1"].failure = failure

    # WHEN requests are sent
    first = send.send({"prompt": "p"}, unique="u1")
    second = send.send({"prompt": "p"}, unique="u2")

    # THEN the peer takes them under its own ids; the primary is not tried again while marked down
    assert (first.region, first.failed_over_from) == ("us-gov-east-1", ("us-gov-west-1",))
    assert minted_region(first.request_id) == "us-gov-east-1" and second.failed_over_from == ()
    assert [b["request_id"] for b in queues["us-gov-east-1"].bodies] == [
        "us-gov-east-1.u1",
        "us-gov-east-1.u2",
    ]
    # AND once the pause is over and the primary answers, it takes requests again
    queues["us-gov-west-1"].failure = None
    clock.now = 5.0
    assert send.send({"prompt": "p"}).region == "us-gov-west-1"


def test_a_refusal_of_the_request_itself_is_raised_not_failed_over() -> None:
    send, queues, _ = producer()
    queues["us-gov-west-1"].failure = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "SendMessage"
    )

    with pytest.raises(ClientError):
        send.send({"prompt": "p"})
    assert queues["us-gov-east-1"].bodies == []


def test_an_answer_that_never_came_is_not_resent_elsewhere() -> None:
    send, queues, _ = producer()
    queues["us-gov-west-1"].failure = ReadTimeoutError(endpoint_url="https://sqs.us-gov-west-1")

    with pytest.raises(SendOutcomeUnknown) as raised:
        send.send({"prompt": "p"}, unique="u1")
    assert (raised.value.region, raised.value.request_id) == ("us-gov-west-1", "us-gov-west-1.u1")
    assert queues["us-gov-east-1"].bodies == []


def test_both_regions_down_sends_nothing() -> None:
    send, queues, _ = producer()
    for queue in queues.values():
        queue.failure = unavailable()

    with pytest.raises(NoRegionAvailable):
        send.send({"prompt": "p"})


def test_a_lost_regions_unended_requests_are_resent_once_to_the_survivor_under_linked_ids() -> None:
    # GIVEN requests the primary took: one answered, one whose lineage reached the survivor (the
    # takeover ends it), one that never reached its lineage, and one whose answer never came
    send, queues, _ = producer()
    answered, replicated, _unseen = (send.send({"prompt": n}, unique=n) for n in ("a", "r", "u"))
    queues["us-gov-west-1"].failure = ReadTimeoutError(endpoint_url="https://sqs.us-gov-west-1")
    with pytest.raises(SendOutcomeUnknown):
        send.send({"prompt": "t"}, unique="t")
    ended = {answered.request_id, replicated.request_id}
    assert {s.request_id for s in send.taken_by("us-gov-west-1")} == {
        "us-gov-west-1.a",
        "us-gov-west-1.r",
        "us-gov-west-1.u",
        "us-gov-west-1.t",
    }

    # WHEN the primary is lost (its endpoint answers again: the stack redeployed, empty) and the
    # producer resends what has no end, twice
    queues["us-gov-west-1"].failure = None
    first = send.resend_unended("us-gov-west-1", ended.__contains__)
    second = send.resend_unended("us-gov-west-1", ended.__contains__)

    # THEN the two without an end go to the survivor once, under its ids, linked by the unique part and
    # resent_from; nothing goes back to the lost region
    assert sorted((s.request_id, s.resent_from) for s in first) == [
        ("us-gov-east-1.t", "us-gov-west-1.t"),
        ("us-gov-east-1.u", "us-gov-west-1.u"),
    ]
    assert second == []
    assert {b["prompt"] for b in queues["us-gov-east-1"].bodies} == {"t", "u"}
    assert len(queues["us-gov-west-1"].bodies) == 3


def test_the_api_way_in_fails_over_with_its_own_delivery() -> None:
    # GIVEN a delivery that posts to a region's API (its URL in queue_url), the primary's refused
    posted: list[tuple[str, dict[str, Any]]] = []

    def post(client: Any, target: RegionQueue, body: dict[str, Any]) -> None:
        if target.region == "us-gov-west-1":
            raise EndpointConnectionError(endpoint_url=target.queue_url)
        posted.append((target.queue_url, body))

    api = FailoverProducer(
        [RegionQueue("us-gov-west-1", "https://api.west"), RegionQueue("us-gov-east-1", "https://api.east")],
        client_for=lambda target: None,
        deliver=post,
    )

    # WHEN a request is sent THEN the survivor's API takes it under its id
    sent = api.send({"prompt": "p"}, unique="x")
    assert posted == [("https://api.east", {"prompt": "p", "request_id": "us-gov-east-1.x"})]
    assert sent.failed_over_from == ("us-gov-west-1",)
