"""Put status events on the custom bus, each with the migration's next sequence number.

Inside :func:`events_deferred` (one Lambda invocation: every pipeline step, the launch
coordinator's run) events are kept and put when it ends, ten to a ``PutEvents`` call: a step
that reports twice, or a coordinator run that answers 200 executions, puts its events in one
call or a few instead of one each. They are put when the invocation ends however it ends (a
step that raises still says what it reported first); only a process that dies mid-invocation
loses them, as it would lose an event between its write and its put without deferral.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from orchestration.adapters.errors import TransientError
from orchestration.events import EventDetail

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

# PutEvents takes at most 10 entries and 256 KiB per request (an entry's size: its Detail,
# DetailType, Source and resources, in UTF-8); a status event is about 1 KiB.
MAX_ENTRIES_PER_PUT = 10
MAX_BYTES_PER_PUT = 256 * 1024

# The invocation's kept events, with the bus each goes to (None: put at once).
_deferred: ContextVar[list[tuple[EventBus, EventDetail]] | None] = ContextVar(
    "wavepilot_deferred_events", default=None
)


@contextmanager
def events_deferred() -> Iterator[None]:
    """Keep the events put inside, and put them (in order, batched) when it ends."""
    if _deferred.get() is not None:  # nested: the outer one puts them
        yield
        return
    kept: list[tuple[EventBus, EventDetail]] = []
    token = _deferred.set(kept)
    try:
        yield
    finally:
        _deferred.reset(token)
        buses: dict[int, tuple[EventBus, list[EventDetail]]] = {}
        for bus, event in kept:
            buses.setdefault(id(bus), (bus, []))[1].append(event)
        for bus, events in buses.values():
            bus.put_many(events)


class EventBus:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def put(self, event: EventDetail) -> None:
        kept = _deferred.get()
        if kept is not None:
            kept.append((self, event))
            return
        self.put_many([event])

    def put_many(self, events: Sequence[EventDetail]) -> None:
        """Put ``events`` in as few calls as PutEvents' limits allow; raise if any is refused
        (after putting the rest: one refused event does not hold back the others)."""
        answers = [self._put_chunk(chunk) for chunk in _chunks(self._entries(events))]
        refused = [why for chunk in answers for why in chunk if why]
        if refused:
            raise TransientError(f"EventBridge refused {len(refused)} event(s): {refused[0]}")

    def put_each(self, events: Sequence[EventDetail]) -> list[str]:
        """Put ``events`` as ``put_many`` does, never raising: per event, in order, why it was
        not put ("" if it was). A call that fails refuses its chunk, not the rest."""
        reasons: list[str] = []
        for chunk in _chunks(self._entries(events)):
            try:
                reasons += self._put_chunk(chunk)
            except Exception as exc:  # the events are the caller's to retry, with the reason
                reasons += [f"PutEvents failed: {type(exc).__name__}: {exc}"] * len(chunk)
        return reasons

    def _entries(self, events: Sequence[EventDetail]) -> list[dict[str, Any]]:
        return [event.to_entry(self._bus_name) for event in events]

    def _put_chunk(self, chunk: list[dict[str, Any]]) -> list[str]:
        """One PutEvents call: per entry, why EventBridge refused it ("" if it did not)."""
        response = self._client.put_events(Entries=chunk)  # type: ignore[arg-type]
        if not response.get("FailedEntryCount"):
            return [""] * len(chunk)
        answers: list[Any] = response.get("Entries", [])
        return [
            f"{entry['DetailType']}: {answer.get('ErrorCode')} {answer.get('ErrorMessage')}"
            if answer.get("ErrorCode")
            else ""
            for entry, answer in zip(chunk, answers, strict=True)
        ]


def _entry_size(entry: dict[str, Any]) -> int:
    return sum(
        len(str(entry.get(field, "")).encode()) for field in ("Source", "DetailType", "Detail")
    )


def _chunks(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = _entry_size(entry)
        if chunk and (len(chunk) == MAX_ENTRIES_PER_PUT or size + entry_size > MAX_BYTES_PER_PUT):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk
