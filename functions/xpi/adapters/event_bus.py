"""Events on the xpi EventBridge bus."""

from pydantic import BaseModel

from xpi.adapters import aws
from xpi.models.events import SECURITY_ALERT
from xpi.observability import count_security_alert


class EventPublishError(RuntimeError):
    pass


class EventBridgePublisher:
    def __init__(self, bus_name: str, source: str) -> None:
        self._bus_name = bus_name
        self._source = source

    def publish(self, detail_type: str, detail: BaseModel) -> None:
        response = aws.events().put_events(
            Entries=[
                {
                    "EventBusName": self._bus_name,
                    "Source": self._source,
                    "DetailType": detail_type,
                    "Detail": detail.model_dump_json(exclude_none=True),
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise EventPublishError(
                f"EventBridge refused the event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
        if detail_type == SECURITY_ALERT:
            count_security_alert()  # every Security Alert on the bus, whichever service raised it
