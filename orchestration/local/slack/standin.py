"""`SlackStandIn`: slack.com on loopback, for the real slack_sdk `WebClient` and a real Bolt app.

The embedded runtime points `WebClient(base_url=standin.api_url)` here and registers the bot's
request URL with `connect_app()`; the stand-in then plays both halves of Slack: it answers the
Web API (with Slack's errors and rate limits) and sends signed commands and clicks to the app.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.slack import interactions
from orchestration.local.slack.clock import SlackClock
from orchestration.local.slack.model import (
    AppResponse,
    ConfirmDialog,
    EphemeralMessage,
    JsonDict,
    Message,
    OpenedView,
    RecordedRequest,
    Thread,
)
from orchestration.local.slack.rate_limits import RateLimiter, SlackRateLimits
from orchestration.local.slack.web_api import SlackWorkspace, find_element
from orchestration.local.virtual_clock import LENT_HEADER, active_virtual_clock

# Arguments Slack accepts as JSON text inside a form body (slack_sdk sends them that way).
_JSON_ARGUMENTS = frozenset({"blocks", "attachments", "view", "metadata"})
_APP_TIMEOUT = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        headers = dict(self.headers.items())
        status, extra_headers, payload = self.server.standin._handle(
            self.command, self.path, headers, body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: every request is in `SlackStandIn.requests()` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: SlackStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin


class SlackStandIn:
    """A Slack workspace with one app installed, served on 127.0.0.1 (thread-safe).

    Args:
        bot_token: the bot token the Web API accepts.
        signing_secret: what requests to the app are signed with.
        speed: Slack seconds per real second (rate limits refill on this clock).
        clock: a `SlackClock` or the emulator's `SimulatedClock` to share; overrides `speed`.
        rate_limits: the limits enforced (defaults: docs/SLACK_STANDIN.md).
        trigger_ttl: real seconds a trigger_id is usable by views.open (Slack: 3).
    """

    def __init__(
        self,
        *,
        bot_token: str,
        signing_secret: str,
        speed: float = 1.0,
        team_id: str = "T0WAVEPILOT",
        bot_user_id: str = "U0WAVEBOT01",
        clock: SlackClock | SimulatedClock | None = None,
        rate_limits: SlackRateLimits | None = None,
        trigger_ttl: float = 3.0,
    ) -> None:
        if isinstance(clock, SimulatedClock):
            clock = SlackClock(simulated=clock)
        self.clock = clock if clock is not None else SlackClock(speed)
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.workspace = SlackWorkspace(
            bot_token=bot_token,
            team_id=team_id,
            bot_user_id=bot_user_id,
            clock=self.clock,
            trigger_ttl=trigger_ttl,
        )
        self._limiter = RateLimiter(rate_limits or SlackRateLimits(), self.clock.now)
        self._requests: list[RecordedRequest] = []
        self._dialogs: list[ConfirmDialog] = []
        self._requests_lock = threading.Lock()
        self._outage_until = 0.0  # Slack time until which calls get 503 (inject_server_errors)
        self._app_url: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        if self._server is not None:
            return self
        self._server = _Server(self)
        self.workspace.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="slack-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The `base_url` for `slack_sdk.WebClient` (ends in "/api/", as slack.com's does)."""
        if not self.workspace.base_url:
            raise RuntimeError("start() the stand-in first")
        return self.workspace.base_url + "api/"

    # -- directory ---------------------------------------------------------------------------

    def add_user(self, user_id: str, *, name: str, email: str, real_name: str = "") -> None:
        self.workspace.add_user(user_id, name=name, email=email, real_name=real_name)

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> None:
        self.workspace.add_usergroup(group_id, handle, members)

    def add_channel(self, channel_id: str, name: str) -> None:
        self.workspace.add_channel(channel_id, name)

    def post_as_user(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """A person posts (e.g. replies in the bot's thread); returns the message ts."""
        return self.workspace.post_as_user(user, channel, text, thread_ts=thread_ts)

    # -- the Web API and response_url, over HTTP ---------------------------------------------

    def _handle(
        self, http_method: str, raw_path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], JsonDict]:
        url = urlsplit(raw_path)
        params, parse_error = _parse_params(url.query, headers, body)
        api_method: str | None = None
        extra: dict[str, str] = {}
        if url.path.startswith("/api/"):
            api_method = url.path.removeprefix("/api/")
            status, extra, response = self._api_call(api_method, headers, params, parse_error)
        elif url.path.startswith("/response/") and http_method == "POST":
            api_method = "response_url"
            status, response = self.workspace.respond(url.path.removeprefix("/response/"), params)
        else:
            status, response = 404, {"ok": False, "error": "not_found"}
        record = RecordedRequest(
            time=self.clock.now(),
            http_method=http_method,
            path=raw_path,
            api_method=api_method,
            headers=headers,
            body=body,
            params=params,
            status=status,
            response=response,
        )
        with self._requests_lock:
            self._requests.append(record)
        return status, extra, response

    def _api_call(
        self, method: str, headers: dict[str, str], params: JsonDict, parse_error: str | None
    ) -> tuple[int, dict[str, str], JsonDict]:
        """Slack's order: method exists, caller authenticated, within limits, arguments valid."""
        if not self.workspace.knows(method):
            return 200, {}, {"ok": False, "error": "unknown_method"}
        token = _bearer(headers) or str(params.get("token") or "")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != self.workspace.bot_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        refused = self._refusal(method, params)
        if refused is not None:
            return refused
        if parse_error is not None:
            return 200, {}, {"ok": False, "error": parse_error}
        return 200, {}, self.workspace.call(method, params)

    def _refusal(
        self, method: str, params: JsonDict
    ) -> tuple[int, dict[str, str], JsonDict] | None:
        """An outage's 503 (inject_server_errors), else a 429 over a limit, else None."""
        if self.clock.now() < self._outage_until:  # an outage: no side effect
            return 503, {}, {"ok": False, "error": "service_unavailable"}
        retry_after = self._limiter.admit(
            method, channel=self.workspace.channel_key(params.get("channel"))
        )
        if retry_after is not None:
            return 429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"}
        return None

    # -- rate limits -------------------------------------------------------------------------

    def inject_rate_limits(
        self, count: int, *, method: str | None = None, retry_after: int = 1
    ) -> None:
        """The next `count` calls (of `method`, or of any method) get 429, before any bucket."""
        self._limiter.inject(count, method=method, retry_after=retry_after)

    def inject_server_errors(self, seconds: float) -> None:
        """A Slack outage: for `seconds` of Slack time every Web API call gets HTTP 503 and
        changes nothing."""
        with self._requests_lock:
            self._outage_until = max(self._outage_until, self.clock.now() + seconds)

    def rate_limited(self) -> dict[str, int]:
        """429s returned so far, by method."""
        return self._limiter.refused()

    # -- acting as Slack towards the app -----------------------------------------------------

    def connect_app(self, request_url: str) -> None:
        """The app's one request URL for commands and interactivity (as Bolt serves it)."""
        self._app_url = request_url

    def click_button(
        self,
        *,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> AppResponse:
        """`user` clicks the button `action_id` on a stored message (block_actions).

        The button is looked up in the message as stored now, for its block_id and value. A
        button no longer there (the bot replaced it) can still be clicked if `value` is given:
        that is a stale client clicking after an update, which happens in real Slack too.

        Raises:
            LookupError: no such message, or no such button and no `value`.
        """
        message = self.workspace.find_message(channel, message_ts)
        if message is None:
            raise LookupError(f"no message {message_ts} in {channel}")
        found = find_element(message.get("blocks", []), action_id)
        if found is None and value is None:
            raise LookupError(f"no button {action_id!r} on message {message_ts}")
        block_id, element = found or ("", {"type": "button", "action_id": action_id})
        element = {**element, **({"value": value} if value is not None else {})}
        actor = self._actor(user, channel)
        self._answer_dialog(user, channel, element)
        payload = interactions.block_actions_payload(
            actor,
            message=message,
            block_id=block_id,
            element=element,
            action_ts=f"{self.clock.now():.6f}",
            response_url=self.workspace.issue_response_url(
                channel=channel,
                user=user,
                message_ts=message_ts,
                thread_ts=message.get("thread_ts"),
            ),
            trigger_id=self.workspace.issue_trigger(user),
        )
        return self._send(interactions.form_payload(payload), signing_secret, timestamp)

    def click_ephemeral_button(
        self,
        *,
        user: str,
        message: EphemeralMessage,
        action_id: str,
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> AppResponse:
        """`user` clicks a button of an ephemeral message only they saw (a command's answer,
        say). Slack sends the same block_actions, with ``container.is_ephemeral`` true and no
        stored message behind it; the app answers through the response_url."""
        if message.user != user:
            raise LookupError(f"{user} never saw that ephemeral message")
        found = find_element(message.blocks, action_id)
        if found is None:
            raise LookupError(f"no button {action_id!r} on the ephemeral message")
        block_id, element = found
        ts = message.message_ts or f"{message.time:.6f}"
        shown: JsonDict = {"type": "message", "text": message.text, "blocks": message.blocks}
        shown["ts"] = ts
        actor = self._actor(user, message.channel)
        self._answer_dialog(user, message.channel, element)
        payload = interactions.block_actions_payload(
            actor,
            message=shown,
            block_id=block_id,
            element=element,
            action_ts=f"{self.clock.now():.6f}",
            response_url=self.workspace.issue_response_url(
                channel=message.channel, user=user, message_ts=ts, thread_ts=message.thread_ts
            ),
            trigger_id=self.workspace.issue_trigger(user),
        )
        payload["container"]["is_ephemeral"] = True
        return self._send(interactions.form_payload(payload), signing_secret, timestamp)

    def _answer_dialog(self, user: str, channel: str, element: JsonDict) -> None:
        """A button with a `confirm` object opens Slack's dialog first; the user confirms."""
        confirm = element.get("confirm")
        if not isinstance(confirm, dict):
            return
        dialog = ConfirmDialog(
            user=user,
            channel=channel,
            action_id=str(element.get("action_id", "")),
            title=str(confirm["title"]["text"]),
            text=str(confirm["text"]["text"]),
            confirm=str(confirm["confirm"]["text"]),
            deny=str(confirm["deny"]["text"]),
            style=confirm.get("style"),
            time=self.clock.now(),
        )
        with self._requests_lock:
            self._dialogs.append(dialog)

    def slash_command(
        self,
        *,
        user: str,
        channel: str,
        text: str,
        command: str = "/wavepilot",
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> AppResponse:
        """`user` runs `command text` in `channel`; a text or blocks ack is shown as Slack would."""
        body = interactions.slash_command_body(
            self._actor(user, channel),
            command=command,
            text=text,
            response_url=self.workspace.issue_response_url(
                channel=channel, user=user, message_ts=None, thread_ts=None
            ),
            trigger_id=self.workspace.issue_trigger(user),
        )
        response = self._send(body, signing_secret, timestamp)
        reply = response.json
        if response.status != 200 or not response.body:
            return response
        if not isinstance(reply, dict):
            reply = {"text": response.body}  # a plain-text ack is shown as-is, ephemerally
        if "text" in reply or "blocks" in reply:
            self.workspace.deliver_reply(
                channel=channel, user=user, params=reply, source="command_ack"
            )
        return response

    def submit_view(
        self,
        *,
        user: str,
        view_id: str,
        values: dict[str, dict[str, str | list[str]]],
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> AppResponse:
        """`user` submits an open modal; `values` is {block_id: {action_id: value}} (a list
        of option values for checkboxes and multi_static_select).

        The app's ack decides what happens to the modal, as in Slack: an empty ack closes it,
        `response_action: errors` keeps it open, `update` replaces it.

        Raises:
            LookupError: `user` has no open view `view_id` (never opened, closed, or another's).
        """
        view = self.workspace.view_for_submission(view_id, user)
        payload = interactions.view_submission_payload(
            self._actor(user, ""),
            view=view,
            values=values,
            trigger_id=self.workspace.issue_trigger(user),
        )
        response = self._send(interactions.form_payload(payload), signing_secret, timestamp)
        if response.status == 200:
            self.workspace.apply_view_response(view_id, response.json)
        return response

    def _actor(self, user: str, channel: str) -> interactions.Actor:
        return interactions.Actor(
            team_id=self.team_id,
            user_id=user,
            user_name=self.workspace.user_name(user),
            channel_id=channel,
            channel_name=self.workspace.channel_name(channel),
        )

    def _send(self, body: str, signing_secret: str | None, timestamp: int | None) -> AppResponse:
        if self._app_url is None:
            raise RuntimeError("connect_app(request_url) first")
        headers = interactions.signed_headers(
            body, signing_secret=signing_secret or self.signing_secret, timestamp=timestamp
        )
        clock = active_virtual_clock()
        with clock.lending() if clock is not None else nullcontext(False) as lent:
            if lent:  # the app may wait on the virtual clock (pacing): it holds our count
                headers[LENT_HEADER] = "1"
            request = urllib.request.Request(  # noqa: S310 - the app's URL, set by connect_app
                self._app_url, data=body.encode(), headers=headers, method="POST"
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=_APP_TIMEOUT) as reply:  # noqa: S310
                    status, reply_headers, text = reply.status, dict(reply.headers), reply.read()
            except urllib.error.HTTPError as refused:
                status, reply_headers, text = refused.code, dict(refused.headers), refused.read()
        return AppResponse(
            status=status,
            headers=reply_headers,
            body=text.decode("utf-8", errors="replace"),
            elapsed=time.monotonic() - started,
        )

    # -- inspection --------------------------------------------------------------------------

    def thread(self, channel: str, ts: str) -> Thread:
        """The thread `ts` belongs to: root (current content and every edit) and replies."""
        return self.workspace.thread(channel, ts)

    def threads(self, channel: str | None = None) -> list[Thread]:
        return self.workspace.threads(channel)

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages (and broadcast replies), oldest first, deleted ones included."""
        return self.workspace.channel_messages(channel)

    def ephemeral_messages(self, user: str | None = None) -> list[EphemeralMessage]:
        return self.workspace.ephemeral_messages(user)

    def confirm_dialogs(self, user: str | None = None) -> list[ConfirmDialog]:
        """Every confirmation dialog shown before a click, oldest first."""
        with self._requests_lock:
            return [d for d in self._dialogs if user in (None, d.user)]

    def opened_views(self, user: str | None = None) -> list[OpenedView]:
        return self.workspace.opened_views(user)

    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received (Web API and response_url), in arrival order."""
        with self._requests_lock:
            return list(self._requests)

    def calls_by_method(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for request in self.requests():
            if request.api_method is not None:
                counts[request.api_method] = counts.get(request.api_method, 0) + 1
        return counts


def _bearer(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ").strip()
    return None


def _parse_params(query: str, headers: dict[str, str], body: str) -> tuple[JsonDict, str | None]:
    """Query string, then a JSON or form body, merged; JSON-valued form fields decoded.

    Returns the arguments and, if the body could not be read as Slack would, the error code.
    """
    params: JsonDict = {key: values[-1] for key, values in parse_qs(query).items()}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if body and "application/json" in content_type:
        try:
            decoded = json.loads(body)
        except ValueError:
            return params, "invalid_json"
        if not isinstance(decoded, dict):
            return params, "invalid_json"
        params.update(decoded)
        return params, None
    if body:
        form = parse_qs(body, keep_blank_values=True)
        params.update({key: values[-1] for key, values in form.items()})
    for key in _JSON_ARGUMENTS & params.keys():
        value = params[key]
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                params[key] = json.loads(value)
            except ValueError:
                return params, "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
    return params, None
