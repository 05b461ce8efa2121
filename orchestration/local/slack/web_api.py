"""The Slack workspace behind the stand-in: its directory, messages and modals, and the Web API
methods over them, answering with Slack's own error codes.

Kept free of HTTP so the wire layer (`server.py`) only parses and serialises; every method here
takes already-parsed arguments and returns the JSON body Slack would send.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestration.local.slack.clock import SlackClock
from orchestration.local.slack.model import (
    Edit,
    EphemeralMessage,
    JsonDict,
    Message,
    OpenedView,
    Thread,
)

MAX_TEXT = 40_000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_BUTTON_VALUE = 2_000
MAX_ACTION_ID = 255
# A confirmation dialog (composition object `confirm`): plain_text fields and their limits.
CONFIRM_LIMITS = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
TEAM_DOMAIN = "wavepilot"
APP_ID = "A0WAVEPILOT"
BOT_ID = "B0WAVEBOT01"


class ApiError(Exception):
    """A Web API call refused with Slack's `error` code (HTTP 200, `ok: false`)."""

    def __init__(self, error: str, *, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


@dataclass
class _User:
    id: str
    name: str
    email: str
    real_name: str


@dataclass
class _Trigger:
    user: str
    issued_at: float  # real monotonic seconds: Slack's 3 s is wall-clock, not Slack-clock
    used: bool = False


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    message_ts: str | None
    thread_ts: str | None
    issued_at: float
    uses: int = 0


@dataclass
class _Channel:
    id: str
    name: str
    created: float
    is_im: bool = False
    messages: dict[str, Message] = field(default_factory=dict)


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _short_id(*parts: str, length: int = 5) -> str:
    digest = hashlib.sha256(":".join(parts).encode()).hexdigest()
    return digest[:length]


class SlackWorkspace:
    """One workspace with one bot installed; thread-safe (one lock around all state).

    Args:
        bot_token: the only token accepted (as `Authorization: Bearer` or a `token` argument).
        clock: Slack time for message timestamps and edit times.
        trigger_ttl: real seconds a trigger_id stays usable (Slack: 3).
        real_time: monotonic real seconds, for trigger expiry.
    """

    def __init__(
        self,
        *,
        bot_token: str,
        team_id: str,
        bot_user_id: str,
        clock: SlackClock,
        trigger_ttl: float = 3.0,
        real_time: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.base_url = ""  # set by the server once it has a port; response_urls point here
        self._clock = clock
        self._trigger_ttl = trigger_ttl
        self._real_time = real_time
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._channels: dict[str, _Channel] = {}
        self._ephemeral: list[EphemeralMessage] = []
        self._views: dict[str, OpenedView] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._last_ts_micros = 0
        self._counter = itertools.count(1)
        self._post_listeners: list[Callable[[str, JsonDict], None]] = []
        self._update_listeners: list[Callable[[str, JsonDict], None]] = []
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
        }

    # -- directory ---------------------------------------------------------------------------

    def add_user(self, user_id: str, *, name: str, email: str, real_name: str = "") -> None:
        with self._lock:
            self._users[user_id] = _User(user_id, name, email, real_name or name)

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> None:
        del handle  # kept in the signature for readability at call sites; the API keys on id
        with self._lock:
            self._usergroups[group_id] = list(members)

    def add_channel(self, channel_id: str, name: str) -> None:
        with self._lock:
            self._channels[channel_id] = _Channel(channel_id, name, self._clock.now())

    def user_name(self, user_id: str) -> str:
        with self._lock:
            user = self._users.get(user_id)
            return user.name if user else user_id

    def channel_name(self, channel_id: str) -> str:
        with self._lock:
            channel = self._channels.get(channel_id)
            return channel.name if channel else "directmessage"

    # -- the Web API -------------------------------------------------------------------------

    def knows(self, method: str) -> bool:
        return method in self._methods

    def call(self, method: str, params: JsonDict) -> JsonDict:
        """Run an authenticated, admitted call; the JSON body Slack would answer with."""
        try:
            with self._lock:
                return self._methods[method](params)
        except ApiError as refused:
            return refused.body()

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Wavepilot",
            "user": "wavepilot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        message = self._post(channel, self.bot_user_id, params)
        posted = self._api(message)
        for listener in self._post_listeners:
            listener(channel.id, posted)
        return {"ok": True, "channel": channel.id, "ts": message.ts, "message": posted}

    def add_post_listener(self, listener: Callable[[str, JsonDict], None]) -> None:
        """Call ``listener(channel, message)`` for every message the bot posts: what a person
        watching the channel sees appear (the rehearsal's simulated approvers). It runs under
        the workspace's lock: keep it short and do not call the workspace from it."""
        with self._lock:
            self._post_listeners.append(listener)

    def add_update_listener(self, listener: Callable[[str, JsonDict], None]) -> None:
        """Call ``listener(channel, message)`` for every message the bot edits (a group
        approval message gaining ready VMs, say); same rules as ``add_post_listener``."""
        with self._lock:
            self._update_listeners.append(listener)

    def _chat_update(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        message = self._message(channel, params.get("ts"))
        if message.user != self.bot_user_id:
            raise ApiError("cant_update_message")
        text = self._text(params, required=False)
        blocks = self._blocks(params.get("blocks"), message.ts, limit=MAX_MESSAGE_BLOCKS)
        if text is None and blocks is None:
            raise ApiError("no_text")
        self._edit(message, text, blocks, _metadata(params.get("metadata")))
        shown = self._api(message)
        for listener in self._update_listeners:
            listener(channel.id, shown)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self._api(message),
        }

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        message = self._message(channel, params.get("ts"))
        if message.user != self.bot_user_id:
            raise ApiError("cant_delete_message")
        message.deleted = True
        return {"ok": True, "channel": channel.id, "ts": message.ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        user = str(params.get("user", ""))
        if user not in self._users:
            raise ApiError("user_not_in_channel")
        text = self._text(params, required=False)
        ts = self._next_ts()
        blocks = self._blocks(params.get("blocks"), ts, limit=MAX_MESSAGE_BLOCKS)
        if text is None and blocks is None:
            raise ApiError("no_text")
        thread_ts = params.get("thread_ts")
        self._ephemeral.append(
            EphemeralMessage(
                channel=channel.id,
                user=user,
                text=text or "",
                blocks=blocks or [],
                time=float(ts),
                source="chat.postEphemeral",
                thread_ts=str(thread_ts) if thread_ts else None,
                message_ts=ts,
            )
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        message = self._message(channel, params.get("message_ts"))
        link = (
            f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        )
        if message.thread_ts is not None:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    def _views_open(self, params: JsonDict) -> JsonDict:
        trigger_id = str(params.get("trigger_id", ""))
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if self._real_time() - trigger.issued_at > self._trigger_ttl:
            raise ApiError("expired_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        view_id = f"V{next(self._counter):010d}"
        view = self._view(params.get("view"), view_id)
        trigger.used = True
        self._views[view_id] = OpenedView(
            id=view_id,
            user=trigger.user,
            trigger_id=trigger_id,
            callback_id=str(view.get("callback_id", "")),
            private_metadata=str(view.get("private_metadata", "")),
            blocks=view["blocks"],
            view=view,
            opened_at=self._clock.now(),
        )
        return {"ok": True, "view": view}

    def _views_update(self, params: JsonDict) -> JsonDict:
        opened = self._opened_view(params)
        view = self._view(params.get("view"), opened.id)
        self._replace_view(opened, view)
        return {"ok": True, "view": view}

    def _usergroups_users_list(self, params: JsonDict) -> JsonDict:
        group = self._usergroups.get(str(params.get("usergroup", "")))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(group)}

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = self._users.get(str(params.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {
            "ok": True,
            "user": {
                "id": user.id,
                "team_id": self.team_id,
                "name": user.name,
                "real_name": user.real_name,
                "deleted": False,
                "is_bot": False,
                "is_admin": False,
                "tz": "Etc/UTC",
                "profile": {
                    "email": user.email,
                    "real_name": user.real_name,
                    "real_name_normalized": user.real_name,
                    "display_name": user.name,
                    "display_name_normalized": user.name,
                    "team": self.team_id,
                },
            },
        }

    def _conversations_info(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        return {
            "ok": True,
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "is_channel": not channel.is_im,
                "is_im": channel.is_im,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
                "created": int(channel.created),
                "context_team_id": self.team_id,
            },
        }

    def _conversations_history(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        newest_first = [
            message
            for message in reversed(channel.messages.values())
            if not message.deleted and (message.thread_ts is None or message.broadcast)
        ]
        return self._page(newest_first, params)

    def _conversations_replies(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params.get("channel"))
        root = channel.messages.get(str(params.get("ts", "")))
        if root is None or root.deleted:
            raise ApiError("thread_not_found")
        if root.thread_ts is not None:
            root = channel.messages[root.thread_ts]
        return self._page([root, *self._replies(channel, root.ts)], params)

    def _page(self, messages: list[Message], params: JsonDict) -> JsonDict:
        """Cursor pagination as Slack does it: an opaque `next_cursor`, empty on the last page."""
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        cursor = str(params.get("cursor") or "")
        start = int(cursor.removeprefix("offset:")) if cursor.startswith("offset:") else 0
        page = messages[start : start + limit]
        has_more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": [self._api(message) for message in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if has_more else ""},
        }

    def channel_key(self, ref: object) -> str:
        """The channel id `ref` (id, name or user) resolves to, else `ref` as given; for rate
        limiting, which must see "#wave-1" and its id as one channel."""
        with self._lock:
            key = str(ref or "")
            if key in self._channels:
                return key
            name = key.removeprefix("#")
            for channel in self._channels.values():
                if channel.name == name and not channel.is_im:
                    return channel.id
            return "D" + key[1:] if key in self._users else key

    # -- shared by the methods and by interactions -------------------------------------------

    def _channel(self, ref: object) -> _Channel:
        """A channel by id, by name (with or without '#'), or a user id (their DM, as Slack)."""
        key = str(ref or "")
        if key in self._channels:
            return self._channels[key]
        name = key.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name and not channel.is_im:
                return channel
        if key in self._users:
            dm_id = "D" + key[1:]
            if dm_id not in self._channels:
                self._channels[dm_id] = _Channel(dm_id, key, self._clock.now(), is_im=True)
            return self._channels[dm_id]
        raise ApiError("channel_not_found")

    def _message(self, channel: _Channel, ts: object) -> Message:
        message = channel.messages.get(str(ts or ""))
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        return message

    def _replies(self, channel: _Channel, root_ts: str) -> list[Message]:
        return [
            message
            for message in channel.messages.values()
            if message.thread_ts == root_ts and message.ts != root_ts and not message.deleted
        ]

    def _post(self, channel: _Channel, user: str, params: JsonDict) -> Message:
        text = self._text(params, required=False)
        thread_ts: str | None = None
        if params.get("thread_ts"):
            parent = channel.messages.get(str(params["thread_ts"]))
            if parent is None or parent.deleted:
                raise ApiError("thread_not_found")
            thread_ts = parent.thread_ts or parent.ts
        ts = self._next_ts()
        blocks = self._blocks(params.get("blocks"), ts, limit=MAX_MESSAGE_BLOCKS)
        if text is None and blocks is None:
            raise ApiError("no_text")
        message = Message(
            channel=channel.id,
            ts=ts,
            user=user,
            text=text or "",
            blocks=blocks or [],
            posted_at=float(ts),
            thread_ts=thread_ts,
            bot_id=BOT_ID if user == self.bot_user_id else None,
            broadcast=thread_ts is not None and _flag(params.get("reply_broadcast")),
            original_text=text or "",
            original_blocks=copy.deepcopy(blocks or []),
            metadata=_metadata(params.get("metadata")),
            original_metadata=_metadata(params.get("metadata")),
        )
        channel.messages[ts] = message
        return message

    def _edit(
        self,
        message: Message,
        text: str | None,
        blocks: list[JsonDict] | None,
        metadata: JsonDict | None = None,
    ) -> None:
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        if metadata is not None:
            message.metadata = metadata
        message.edits.append(
            Edit(
                self._clock.now(),
                message.text,
                copy.deepcopy(message.blocks),
                copy.deepcopy(message.metadata),
            )
        )

    def _api(self, message: Message) -> JsonDict:
        """The message as the API shows it, with the thread summary a root carries."""
        body = message.to_api()
        body["team"] = self.team_id
        if message.bot_id is not None:
            body["app_id"] = APP_ID
        channel = self._channels.get(message.channel)
        if message.thread_ts is None and channel is not None:
            replies = self._replies(channel, message.ts)
            if replies:
                body["thread_ts"] = message.ts
                body["reply_count"] = len(replies)
                body["reply_users"] = sorted({reply.user for reply in replies})
                body["latest_reply"] = replies[-1].ts
        return body

    def _next_ts(self) -> str:
        """Slack-clock microseconds, strictly increasing: ts is both the id and the order."""
        micros = max(int(self._clock.now() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _text(params: JsonDict, *, required: bool) -> str | None:
        text = params.get("text")
        if text is None or text == "":
            if required:
                raise ApiError("no_text")
            return None
        return str(text)[:MAX_TEXT]  # Slack truncates, it does not refuse

    def _blocks(self, raw: object, salt: str, *, limit: int) -> list[JsonDict] | None:
        """Validate blocks as Slack does and give every block and button an id, as Slack does."""
        if raw is None or raw == "":
            return None
        if not isinstance(raw, list) or not all(isinstance(block, dict) for block in raw):
            raise ApiError("invalid_blocks_format")
        if len(raw) > limit:
            raise ApiError(
                "invalid_blocks",
                messages=[f"[ERROR] no more than {limit} items allowed [json-pointer:/blocks]"],
            )
        blocks: list[JsonDict] = copy.deepcopy(raw)
        for index, block in enumerate(blocks):
            block.setdefault("block_id", _short_id(salt, str(index), length=4))
            for position, element in enumerate(_interactive_elements(block)):
                pointer = f"/blocks/{index}"
                element.setdefault("action_id", _short_id(salt, str(index), str(position)))
                if len(str(element["action_id"])) > MAX_ACTION_ID:
                    raise ApiError(
                        "invalid_blocks",
                        messages=[
                            f"[ERROR] must be less than 256 characters [json-pointer:{pointer}]"
                        ],
                    )
                if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
                    raise ApiError(
                        "invalid_blocks",
                        messages=[
                            "[ERROR] must be less than 2001 characters "
                            f"[json-pointer:{pointer}/elements/{position}/value]"
                        ],
                    )
                if "confirm" in element:
                    problem = confirm_problem(element["confirm"])
                    if problem is not None:
                        error, where = problem
                        raise ApiError(
                            "invalid_blocks",
                            messages=[
                                f"[ERROR] {error} "
                                f"[json-pointer:{pointer}/elements/{position}/confirm{where}]"
                            ],
                        )
        return blocks

    def _view(self, raw: object, view_id: str) -> JsonDict:
        if not isinstance(raw, dict):
            raise ApiError("invalid_arguments", messages=["[ERROR] missing required field: view"])
        if raw.get("type") not in ("modal", "home"):
            raise ApiError("invalid_arguments", messages=["[ERROR] must be a valid view type"])
        blocks = self._blocks(raw.get("blocks", []), view_id, limit=MAX_VIEW_BLOCKS) or []
        view: JsonDict = {
            "id": view_id,
            "team_id": self.team_id,
            "type": raw["type"],
            "title": raw.get("title"),
            "submit": raw.get("submit"),
            "close": raw.get("close"),
            "blocks": blocks,
            "private_metadata": str(raw.get("private_metadata", "")),
            "callback_id": str(raw.get("callback_id", "")),
            "external_id": str(raw.get("external_id", "")),
            "state": {"values": {}},
            "hash": secrets.token_hex(8),
            "clear_on_close": bool(raw.get("clear_on_close", False)),
            "notify_on_close": bool(raw.get("notify_on_close", False)),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": self.team_id,
            "bot_id": BOT_ID,
        }
        return view

    def _opened_view(self, params: JsonDict) -> OpenedView:
        view_id = str(params.get("view_id") or "")
        external_id = str(params.get("external_id") or "")
        for opened in self._views.values():
            if opened.id == view_id or (external_id and opened.view["external_id"] == external_id):
                return opened
        raise ApiError("not_found")

    def _replace_view(self, opened: OpenedView, view: JsonDict) -> None:
        opened.view = view
        opened.blocks = view["blocks"]
        opened.callback_id = str(view.get("callback_id", ""))
        opened.private_metadata = str(view.get("private_metadata", ""))
        opened.updates.append(copy.deepcopy(view))

    # -- interactions (Slack acting towards the app) -----------------------------------------

    def issue_trigger(self, user: str) -> str:
        with self._lock:
            trigger_id = f"{next(self._counter)}.{int(self._clock.now())}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = _Trigger(user, self._real_time())
            return trigger_id

    def issue_response_url(
        self, *, channel: str, user: str, message_ts: str | None, thread_ts: str | None
    ) -> str:
        with self._lock:
            url_id = f"{self.team_id}/{next(self._counter)}/{secrets.token_hex(12)}"
            self._response_urls[url_id] = _ResponseUrl(
                channel, user, message_ts, thread_ts, self._clock.now()
            )
            return f"{self.base_url}response/{url_id}"

    def find_message(self, channel: str, ts: str) -> JsonDict | None:
        """The stored message as Slack puts it in an interaction payload (None if unknown)."""
        with self._lock:
            stored = self._channels.get(channel)
            message = stored.messages.get(ts) if stored else None
            return None if message is None or message.deleted else self._api(message)

    def view_for_submission(self, view_id: str, user: str) -> JsonDict:
        """The open modal `user` submits; only its opener can see it, so only they can."""
        with self._lock:
            opened = self._views.get(view_id)
            if opened is None or opened.closed or opened.user != user:
                raise LookupError(f"{user} has no open view {view_id}")
            return copy.deepcopy(opened.view)

    def apply_view_response(self, view_id: str, response: Any) -> None:
        """What Slack does with a view_submission ack: close, keep (errors), update or push."""
        with self._lock:
            opened = self._views[view_id]
            action = response.get("response_action") if isinstance(response, dict) else None
            if action == "update" and isinstance(response.get("view"), dict):
                self._replace_view(opened, self._view(response["view"], view_id))
            elif action in (None, "clear"):
                opened.closed = True

    def respond(self, url_id: str, params: JsonDict) -> tuple[int, JsonDict]:
        """A POST to a response_url (Bolt's `respond()`): HTTP status and JSON body."""
        with self._lock:
            target = self._response_urls.get(url_id)
            if target is None:
                return 404, {"ok": False, "error": "invalid_url"}
            if self._clock.now() - target.issued_at > RESPONSE_URL_TTL:
                return 404, {"ok": False, "error": "expired_url"}
            if target.uses >= RESPONSE_URL_USES:
                return 404, {"ok": False, "error": "used_url"}
            target.uses += 1
            try:
                self._respond(target, params)
            except ApiError as refused:
                return 400, refused.body()
            return 200, {"ok": True}

    def _respond(self, target: _ResponseUrl, params: JsonDict) -> None:
        channel = self._channel(target.channel)
        if _flag(params.get("delete_original")):
            self._message(channel, target.message_ts).deleted = True
            return
        if _flag(params.get("replace_original")) and target.message_ts is not None:
            message = self._message(channel, target.message_ts)
            text = self._text(params, required=False)
            blocks = self._blocks(params.get("blocks"), message.ts, limit=MAX_MESSAGE_BLOCKS)
            self._edit(message, text, blocks if blocks is not None else [])
            return
        self.deliver_reply(
            channel=target.channel,
            user=target.user,
            params=params,
            source="response_url",
            default_thread_ts=target.thread_ts,
        )

    def deliver_reply(
        self,
        *,
        channel: str,
        user: str,
        params: JsonDict,
        source: str,
        default_thread_ts: str | None = None,
    ) -> None:
        """A reply the app gave through Slack (response_url, or a slash command's ack body):
        `response_type: in_channel` posts as the bot, anything else is ephemeral to `user`."""
        with self._lock:
            if params.get("thread_ts") is None and default_thread_ts is not None:
                params = {**params, "thread_ts": default_thread_ts}
            if params.get("response_type") == "in_channel":
                self._post(self._channel(channel), self.bot_user_id, params)
                return
            ts = self._next_ts()
            blocks = self._blocks(params.get("blocks"), ts, limit=MAX_MESSAGE_BLOCKS)
            thread_ts = params.get("thread_ts")
            self._ephemeral.append(
                EphemeralMessage(
                    channel=channel,
                    user=user,
                    text=self._text(params, required=False) or "",
                    blocks=blocks or [],
                    time=float(ts),
                    source=source,
                    thread_ts=str(thread_ts) if thread_ts else None,
                )
            )

    def post_as_user(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """A person writes in a channel or thread (what the bot may later read); returns ts."""
        with self._lock:
            params: JsonDict = {"text": text, "thread_ts": thread_ts}
            return self._post(self._channel(channel), user, params).ts

    # -- inspection (deep copies: callers never see state change under them) -----------------

    def thread(self, channel: str, ts: str) -> Thread:
        with self._lock:
            stored = self._channels.get(channel)
            root = stored.messages.get(ts) if stored else None
            if stored is None or root is None:
                raise LookupError(f"no message {ts} in {channel}")
            if root.thread_ts is not None:
                root = stored.messages[root.thread_ts]
            return copy.deepcopy(Thread(channel, root, self._replies(stored, root.ts)))

    def threads(self, channel: str | None) -> list[Thread]:
        with self._lock:
            return [
                self.thread(stored.id, message.ts)
                for stored in self._channels.values()
                if channel in (None, stored.id)
                for message in stored.messages.values()
                if message.thread_ts is None
            ]

    def channel_messages(self, channel: str) -> list[Message]:
        with self._lock:
            stored = self._channels.get(channel)
            if stored is None:
                return []
            return copy.deepcopy(
                [m for m in stored.messages.values() if m.thread_ts is None or m.broadcast]
            )

    def ephemeral_messages(self, user: str | None) -> list[EphemeralMessage]:
        with self._lock:
            return copy.deepcopy([e for e in self._ephemeral if user in (None, e.user)])

    def opened_views(self, user: str | None) -> list[OpenedView]:
        with self._lock:
            return copy.deepcopy([v for v in self._views.values() if user in (None, v.user)])


def _interactive_elements(block: JsonDict) -> list[JsonDict]:
    """Buttons and other elements carrying action_id/value, wherever a block puts them."""
    candidates: list[Any] = []
    if block.get("type") == "actions":
        candidates.extend(block.get("elements") or [])
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            candidates.append(block[key])
    return [element for element in candidates if isinstance(element, dict) and "type" in element]


def confirm_problem(confirm: object) -> tuple[str, str] | None:
    """What Slack refuses in a confirmation dialog object, and where (a JSON pointer suffix).

    Slack's rules: ``title``, ``text``, ``confirm`` and ``deny`` are required plain_text
    objects (``text`` may also be mrkdwn) within their lengths; ``style`` is ``primary`` or
    ``danger``.
    """
    if not isinstance(confirm, dict):
        return "must be an object", ""
    for name, limit in CONFIRM_LIMITS.items():
        problem = _confirm_field_problem(name, confirm.get(name), limit)
        if problem is not None:
            return problem
    if "style" in confirm and confirm["style"] not in ("primary", "danger"):
        return "must be a valid enum value", "/style"
    return None


def _confirm_field_problem(name: str, field: object, limit: int) -> tuple[str, str] | None:
    if not isinstance(field, dict) or not isinstance(field.get("text"), str):
        return f"missing required field: {name}", ""
    allowed = ("plain_text", "mrkdwn") if name == "text" else ("plain_text",)
    if field.get("type") not in allowed:
        return "must be a valid enum value", f"/{name}/type"
    if not field["text"].strip():
        return "must be more than 0 characters", f"/{name}/text"
    if len(field["text"]) > limit:
        return f"must be less than {limit + 1} characters", f"/{name}/text"
    return None


def find_element(blocks: list[JsonDict], action_id: str) -> tuple[str, JsonDict] | None:
    """The (block_id, element) with `action_id` in a message or view, if present."""
    for block in blocks:
        for element in _interactive_elements(block):
            if element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def _metadata(value: object) -> JsonDict | None:
    """Message metadata (``event_type`` + ``event_payload``), sent as JSON or a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError("invalid_metadata_format") from None
    if not isinstance(value, dict) or "event_type" not in value:
        raise ApiError("invalid_metadata_format")
    return dict(value)
