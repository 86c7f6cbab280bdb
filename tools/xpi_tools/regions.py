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


@dataclass
class FailoverProducer:
    regions: Sequence[RegionQueue]
    client_for: Callable[[RegionQueue], Any]  # an SQS client for the region (SEND_CONFIG recommended)
    retry_after_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _down_until: dict[str, float] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def healthy(self) -> list[RegionQueue]:
        """The regions to try, in order: those not marked down, then (all down) every region."""
        now = self.clock()
        with self._lock:
            up = [r for r in self.regions if self._down_until.get(r.region, 0.0) <= now]
        return up or list(self.regions)

    def send(self, body: dict[str, Any], *, unique: str | None = None) -> Sent:
        unique = unique or uuid.uuid4().hex
        tried: list[str] = []
        for target in self.healthy():
            request_id = mint_request_id(target.region, unique)
            try:
                self._client(target).send_message(
                    QueueUrl=target.queue_url, MessageBody=json.dumps({**body, "request_id": request_id})
                )
            except ReadTimeoutError as error:
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
            return Sent(request_id=request_id, region=target.region, failed_over_from=tuple(tried))
        raise NoRegionAvailable(f"no region took the request (tried {', '.join(tried)})")

    def _client(self, target: RegionQueue) -> Any:
        with self._lock:
            if target.region not in self._clients:
                self._clients[target.region] = self.client_for(target)
            return self._clients[target.region]
