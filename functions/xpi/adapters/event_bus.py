"""Events on the xpi EventBridge bus."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from xpi.adapters import aws
from xpi.models.events import SECURITY_ALERT
from xpi.observability import count_security_alert

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef


class EventPublishError(RuntimeError):
    pass


# PutEvents takes at most 10 entries and 256 KiB a request (an entry's size: its detail type, source,
# detail and bus name); a little under it leaves room for the request's own framing.
MAX_ENTRIES = 10
MAX_BYTES = 250_000


class EventBridgePublisher:
    def __init__(self, bus_name: str, source: str) -> None:
        self._bus_name = bus_name
        self._source = source

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        self._put([self._entry(detail_type, detail)])

    def publish_all(self, events: Sequence[tuple[str, BaseModel]]) -> None:
        """Each event, in order, in as few PutEvents requests as EventBridge's limits allow; raises when
        any entry is refused (those before it may have been sent: the caller sends them again)."""
        batch: list[PutEventsRequestEntryTypeDef] = []
        size = 0
        for detail_type, detail in events:
            entry = self._entry(detail_type, detail)
            entry_size = sum(len(str(value).encode()) for value in entry.values())
            if batch and (len(batch) == MAX_ENTRIES or size + entry_size > MAX_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append(entry)
            size += entry_size
        if batch:
            self._put(batch)

    def _entry(self, detail_type: str, detail: BaseModel) -> "PutEventsRequestEntryTypeDef":
        return {
            "EventBusName": self._bus_name,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": detail.model_dump_json(exclude_none=True),
        }

    def _put(self, entries: "list[PutEventsRequestEntryTypeDef]") -> None:
        response = aws.events().put_events(Entries=entries)
        if response.get("FailedEntryCount"):
            failed = next(e for e in response["Entries"] if e.get("ErrorCode"))
            raise EventPublishError(
                f"EventBridge refused {response['FailedEntryCount']} of {len(entries)} events: "
                f"{failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )
        for entry in entries:
            if entry["DetailType"] == SECURITY_ALERT:
                count_security_alert()
