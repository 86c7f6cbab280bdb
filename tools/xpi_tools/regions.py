"""A producer's side of two regions: send each request to the healthy region's requests queue.

    producer = FailoverProducer([
        RegionQueue("us-gov-west-1", west_queue_url),
        RegionQueue("us-gov-east-1", east_queue_url),
    ], client_for=lambda region: session.client("sqs", region_name=region.region, config=SEND_CONFIG))
    sent = producer.send({"model": "...", "prompt": "..."})   # Sent(request_id, region)

Regions are tried in the order given (the first is the primary). Each request's id is minted for the
region that takes it (`<region>.<unique>`, xpi.domain.regions), so only that region processes it.
A region whose endpoint cannot be reached, or answers a server error (5xx), did not take the request:
it is marked down for `retry_after_s` and the request is sent to the next region under an id minted
for that one (the same unique part: a subscriber can recognise it). A region's refusal of the request
itself (4xx: access, size) is raised, never failed over. Whatever a failing region had taken before it
failed stays its own: it answers those requests when it returns (docs/operations.md, "Two regions").

On AWS, SQS does not promise that a 5xx answer stored nothing; a request so answered and resent may be
answered by both regions, under two ids of one unique part. An answer that never came (a read timeout
after the request left) is raised as `SendOutcomeUnknown`: resend it to the same region with the same
`unique` (its id is the same, its processing claim once).

A region lost for good (docs/operations.md, "Disaster recovery"): the producer knows what each region
took (`taken_by`). Once the region is declared lost and taken over (its requests whose lineage reached
the survivor end there as `RegionLost`), `resend_unended` sends each request it took that has no end
(no terminal event, no lineage in the survivor: it never reached the lost region's lineage, or its
lineage had not replicated) to a healthy region under an id minted for that region, with the same
unique part (the link to the original), once. The survivor never runs the lost region's id.

The same failover serves the API (`POST /v1/requests`): give a `deliver` that posts the body to the
region's API, its URL in `RegionQueue.queue_url`, and raises botocore's errors as a client would.
"""

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from xpi.domain.regions import mint_request_id

# A send gives up on a region within seconds: a connect timeout of 1 s and two attempts, so that
# failing over takes a few seconds, not botocore's default minute.
SEND_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2})


@dataclass(frozen=True)
class RegionQueue:
    region: str
    queue_url: str


@dataclass(frozen=True)
class Sent:
    request_id: str
    region: str
    failed_over_from: tuple[str, ...] = ()  # the regions tried before, down at the time
    resent_from: str = ""  # the id it had in a lost region (resend_unended)


class NoRegionAvailable(Exception):
    """Every region was down: nothing was sent."""


class SendOutcomeUnknown(Exception):
    """The request may have reached the region: resend it there with the same unique part."""

    def __init__(self, region: str, request_id: str) -> None:
        super().__init__(f"no answer from {region} for {request_id}")
        self.region, self.request_id = region, request_id


def region_did_not_take_it(error: Exception) -> bool:
    """The endpoint was out of reach, or the region answered a server error (its API out of service)."""
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500
    return False


def send_to_queue(client: Any, target: RegionQueue, body: dict[str, Any]) -> None:
    client.send_message(QueueUrl=target.queue_url, MessageBody=json.dumps(body))


@dataclass
class FailoverProducer:
    regions: Sequence[RegionQueue]
    client_for: Callable[[RegionQueue], Any]  # an SQS client for the region (SEND_CONFIG recommended)
    retry_after_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    deliver: Callable[[Any, RegionQueue, dict[str, Any]], None] = send_to_queue
    _down_until: dict[str, float] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # what each request id was sent with, and where: a region took it, or may have (outcome unknown)
    _taken: dict[str, tuple[Sent, dict[str, Any]]] = field(default_factory=dict)

    def healthy(self) -> list[RegionQueue]:
        """The regions to try, in order: those not marked down, then (all down) every region."""
        now = self.clock()
        with self._lock:
            up = [r for r in self.regions if self._down_until.get(r.region, 0.0) <= now]
        return up or list(self.regions)

    def send(
        self, body: dict[str, Any], *, unique: str | None = None, resent_from: str = "", avoid: str = ""
    ) -> Sent:
        unique = unique or uuid.uuid4().hex
        tried: list[str] = []
        for target in [r for r in self.healthy() if r.region != avoid]:
            request_id = mint_request_id(target.region, unique)
            try:
                self.deliver(self._client(target), target, {**body, "request_id": request_id})
            except ReadTimeoutError as error:
                self._note(Sent(request_id, target.region, tuple(tried), resent_from), body)
                raise SendOutcomeUnknown(target.region, request_id) from error
            except Exception as error:
                if not region_did_not_take_it(error):
                    raise
                with self._lock:
                    self._down_until[target.region] = self.clock() + self.retry_after_s
                tried.append(target.region)
                continue
            with self._lock:
                self._down_until.pop(target.region, None)
            sent = Sent(request_id, target.region, tuple(tried), resent_from)
            self._note(sent, body)
            return sent
        raise NoRegionAvailable(f"no region took the request (tried {', '.join(tried)})")

    def _note(self, sent: Sent, body: dict[str, Any]) -> None:
        with self._lock:
            self._taken[sent.request_id] = (sent, body)

    def taken_by(self, region: str) -> list[Sent]:
        """The requests sent to `region` that it took (or may have: its answer never came)."""
        with self._lock:
            return [sent for sent, _ in self._taken.values() if sent.region == region]

    def resend_unended(self, lost_region: str, ended: Callable[[str], bool]) -> list[Sent]:
        """After `lost_region` was declared lost and taken over: send each request it took for which
        `ended(request_id)` is false (no terminal event, no lineage in the survivor) to another region,
        under an id minted for it with the same unique part, once. Returns what was resent."""
        with self._lock:
            resent = {sent.resent_from for sent, _ in self._taken.values() if sent.resent_from}
            pending = [
                (sent, body)
                for sent, body in self._taken.values()
                if sent.region == lost_region and sent.request_id not in resent
            ]
        again = []
        for sent, body in pending:
            if ended(sent.request_id):
                continue
            unique = sent.request_id.split(".", 1)[1]
            again.append(self.send(body, unique=unique, resent_from=sent.request_id, avoid=lost_region))
        return again

    def _client(self, target: RegionQueue) -> Any:
        with self._lock:
            if target.region not in self._clients:
                self._clients[target.region] = self.client_for(target)
            return self._clients[target.region]
