"""Put status events on the custom bus, each with the migration's next sequence number."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from orchestration.adapters.errors import TransientError
from orchestration.events import EventDetail

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

E = TypeVar("E", bound=EventDetail)


class EventBus:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def put(self, event: EventDetail) -> None:
        response = self._client.put_events(Entries=[event.to_entry(self._bus_name)])  # type: ignore[list-item]
        if response.get("FailedEntryCount"):
            failure: Any = response["Entries"][0]
            raise TransientError(
                f"EventBridge refused {event.detail_type}: "
                f"{failure.get('ErrorCode')} {failure.get('ErrorMessage')}"
            )
