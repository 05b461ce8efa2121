"""What the stand-in records, as snapshots a test (or the demo) can inspect without locking."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

JsonDict = dict[str, Any]


class Edit(NamedTuple):
    """One chat.update (or response_url replace_original): when, and what the message became."""

    time: float
    text: str
    blocks: list[JsonDict]
    metadata: JsonDict | None = None  # message metadata as of this version (event_type, payload)


@dataclass
class Message:
    """A channel message as Slack stores it; `text`/`blocks` are current, `edits` the history.

    Attributes:
        posted_at: Slack-clock epoch seconds of the post (the `ts` is derived from it).
        original_text / original_blocks: as first posted, before any edit.
        broadcast: a thread reply also shown in the channel (`reply_broadcast`).
        deleted: removed by chat.delete or response_url `delete_original`.
    """

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[JsonDict]
    posted_at: float
    thread_ts: str | None = None
    bot_id: str | None = None
    broadcast: bool = False
    deleted: bool = False
    original_text: str = ""
    original_blocks: list[JsonDict] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    metadata: JsonDict | None = None
    original_metadata: JsonDict | None = None

    @property
    def versions(self) -> list[Edit]:
        """The original post followed by every edit, oldest first."""
        return [
            Edit(self.posted_at, self.original_text, self.original_blocks, self.original_metadata),
            *self.edits,
        ]

    def to_api(self) -> JsonDict:
        """The message object as the Web API returns it (conversations.history etc.)."""
        body: JsonDict = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        if self.blocks:
            body["blocks"] = self.blocks
        if self.bot_id is not None:
            body["bot_id"] = self.bot_id
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.broadcast:
            body["subtype"] = "thread_broadcast"
        if self.edits:
            body["edited"] = {"user": self.user, "ts": _ts_of(self.edits[-1].time)}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return body


def _ts_of(seconds: float) -> str:
    return f"{seconds:.6f}"


@dataclass
class Thread:
    """A root message and its replies, oldest first (a root without replies is a thread too)."""

    channel: str
    root: Message
    replies: list[Message]

    @property
    def ts(self) -> str:
        return self.root.ts


@dataclass
class EphemeralMessage:
    """A message only `user` saw: chat.postEphemeral, a response_url reply, a command's ack.

    Attributes:
        source: "chat.postEphemeral", "response_url" or "command_ack".
    """

    channel: str
    user: str
    text: str
    blocks: list[JsonDict]
    time: float
    source: str
    thread_ts: str | None = None
    message_ts: str | None = None


@dataclass
class OpenedView:
    """A modal opened with views.open; `updates` holds each later version of it, oldest first."""

    id: str
    user: str
    trigger_id: str
    callback_id: str
    private_metadata: str
    blocks: list[JsonDict]
    view: JsonDict
    opened_at: float
    updates: list[JsonDict] = field(default_factory=list)
    closed: bool = False


@dataclass(frozen=True)
class ConfirmDialog:
    """A confirmation dialog Slack showed before sending a click (the button's `confirm`);
    a click through the stand-in answers it with `confirm`, so the click is sent."""

    user: str
    channel: str
    action_id: str
    title: str
    text: str
    confirm: str
    deny: str
    style: str | None
    time: float


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the stand-in received, exactly as it arrived, and what it answered.

    Attributes:
        api_method: e.g. "chat.postMessage"; "response_url" for a respond(); None if unroutable.
        time: Slack-clock epoch seconds on arrival.
        params: the parsed arguments (query, form or JSON body merged; JSON strings decoded).
    """

    time: float
    http_method: str
    path: str
    api_method: str | None
    headers: dict[str, str]
    body: str
    params: JsonDict
    status: int
    response: JsonDict


@dataclass(frozen=True)
class AppResponse:
    """What the app answered Slack's request with, and how long it took (Slack allows 3 s)."""

    status: int
    headers: dict[str, str]
    body: str
    elapsed: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None if it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def acked_in_time(self) -> bool:
        return self.status == 200 and self.elapsed < 3.0
