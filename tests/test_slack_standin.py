"""The Slack stand-in, driven by the real slack_sdk WebClient and a real slack_bolt App.

These tests pin down the behaviour the bot relies on being faithful to slack.com: threads and
edits, Slack's error codes, 429s with Retry-After, and signed requests towards the app.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from orchestration.local.slack import (
    BoltHttpServer,
    RateLimit,
    SlackClock,
    SlackRateLimits,
    SlackStandIn,
)

TOKEN = "xoxb-wavepilot-test"
SECRET = "wavepilot-signing-secret"
CHANNEL = "C0WAVES0001"
OTHER_CHANNEL = "C0WAVES0002"
ALICE = "U0ALICE0001"
BOB = "U0BOB000001"
APPROVERS = "S0APPROVERS"
_LOOSE = RateLimit(per_minute=60_000, burst=1_000)
_UNREACHABLE = SlackRateLimits(
    post_per_channel=_LOOSE,
    post_per_workspace=_LOOSE,
    methods=dict.fromkeys(SlackRateLimits().methods, _LOOSE),
)


def _standin(clock: SlackClock, rate_limits: SlackRateLimits | None = None) -> SlackStandIn:
    standin = SlackStandIn(
        bot_token=TOKEN, signing_secret=SECRET, clock=clock, rate_limits=rate_limits
    ).start()
    standin.add_channel(CHANNEL, "wave-1")
    standin.add_channel(OTHER_CHANNEL, "wave-2")
    standin.add_user(ALICE, name="alice", email="alice@example.com", real_name="Alice Approver")
    standin.add_user(BOB, name="bob", email="bob@example.com")
    standin.add_usergroup(APPROVERS, "wave-approvers", [ALICE])
    return standin


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """Frozen time and limits no test reaches, so only injected 429s ever happen.

    (Not a fast clock: at 100,000x a response_url's 30 Slack minutes pass in 18 real ms.)
    """
    running = _standin(SlackClock(0.0), rate_limits=_UNREACHABLE)
    yield running
    running.stop()


@pytest.fixture
def frozen() -> Iterator[SlackStandIn]:
    """Time stands still unless the test advances it: rate limits are deterministic."""
    running = _standin(SlackClock(0.0))
    yield running
    running.stop()


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(base_url=standin.api_url, token=TOKEN)


def _button_blocks(value: str = "approve:wave-1") -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Wave 1 is ready"}},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                }
            ],
        },
    ]


def _error(call: Callable[[], object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        call()
    return raised.value


# -- messages and threads ------------------------------------------------------------------------


def test_thread_model_reflects_posts_replies_and_edits_in_order(
    standin: SlackStandIn, client: WebClient
) -> None:
    # GIVEN a root message with blocks sent form-encoded (blocks as a JSON string)
    root = client.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "Wave 1", "blocks": json.dumps(_button_blocks())},
    )
    root_ts = str(root["ts"])
    # WHEN the bot replies twice (the 2nd addressed to the 1st reply) and edits the root twice
    first = client.chat_postMessage(channel=CHANNEL, thread_ts=root_ts, text="replicating")
    client.chat_postMessage(channel=CHANNEL, thread_ts=str(first["ts"]), text="cut over")
    client.chat_update(channel=CHANNEL, ts=root_ts, text="Wave 1: 50%")
    client.chat_update(channel=CHANNEL, ts=root_ts, text="Wave 1: done", blocks=[])

    # THEN the thread holds the current root, every version with its time, replies in order
    thread = standin.thread(CHANNEL, root_ts)
    assert thread.root.text == "Wave 1: done"
    assert [version.text for version in thread.root.versions] == [
        "Wave 1",
        "Wave 1: 50%",
        "Wave 1: done",
    ]
    times = [version.time for version in thread.root.versions]
    assert times == sorted(times)
    assert thread.root.original_blocks[1]["elements"][0]["value"] == "approve:wave-1"
    assert [reply.text for reply in thread.replies] == ["replicating", "cut over"]
    assert {reply.thread_ts for reply in thread.replies} == {root_ts}
    assert [t.ts for t in standin.threads(CHANNEL)] == [root_ts]
    # AND the Web API reads agree
    replies = client.conversations_replies(channel=CHANNEL, ts=root_ts)["messages"]
    assert [m["text"] for m in replies] == ["Wave 1: done", "replicating", "cut over"]
    assert replies[0]["reply_count"] == 2
    history = client.conversations_history(channel=CHANNEL)["messages"]
    assert [m["ts"] for m in history] == [root_ts]
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=root_ts)["permalink"]
    assert link.endswith(f"/archives/{CHANNEL}/p{root_ts.replace('.', '')}")


def test_message_ts_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [
        str(client.chat_postMessage(channel=ch, text="x")["ts"])
        for ch in (CHANNEL, OTHER_CHANNEL, "#wave-1", OTHER_CHANNEL)
    ]
    assert len(set(stamps)) == 4
    assert sorted(stamps, key=float) == stamps
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_slack_error_codes(standin: SlackStandIn, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="hello")
    bad_token = WebClient(base_url=standin.api_url, token="xoxb-wrong")
    assert _error(bad_token.auth_test).response["error"] == "invalid_auth"
    no_token = WebClient(base_url=standin.api_url)
    assert _error(no_token.auth_test).response["error"] == "not_authed"
    errors = {
        "channel_not_found": lambda: client.chat_postMessage(channel="C0NOPE", text="x"),
        "message_not_found": lambda: client.chat_update(channel=CHANNEL, ts="1.000001", text="x"),
        "thread_not_found": lambda: client.chat_postMessage(
            channel=CHANNEL, thread_ts="1.000001", text="x"
        ),
        "no_text": lambda: client.chat_postMessage(channel=CHANNEL),
        "invalid_blocks": lambda: client.chat_postMessage(
            channel=CHANNEL, text="x", blocks=_button_blocks("v" * 2001)
        ),
        "invalid_trigger_id": lambda: client.views_open(
            trigger_id="123.456.made-up", view={"type": "modal", "blocks": []}
        ),
        "unknown_method": lambda: client.api_call("chat.nothing"),
        "no_such_subteam": lambda: client.usergroups_users_list(usergroup="S0NOPE"),
        "user_not_found": lambda: client.users_info(user="U0NOPE"),
    }
    for expected, call in errors.items():
        response = _error(call).response
        assert (response.status_code, response["error"]) == (200, expected)
    too_many = [{"type": "divider"}] * 51
    refused = _error(lambda: client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_many))
    assert refused.response["error"] == "invalid_blocks"
    # AND refused calls left nothing behind; text over 40,000 characters is truncated
    assert [m.ts for m in standin.channel_messages(CHANNEL)] == [posted["ts"]]
    long = client.chat_postMessage(channel=CHANNEL, text="y" * 40_010)
    assert len(long["message"]["text"]) == 40_000


def test_directory_lookups(client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup=APPROVERS)["users"] == [ALICE]
    user = client.users_info(user=ALICE)["user"]
    assert (user["id"], user["name"], user["real_name"]) == (ALICE, "alice", "Alice Approver")
    assert user["profile"]["email"] == "alice@example.com"
    assert client.conversations_info(channel=CHANNEL)["channel"]["name"] == "wave-1"
    assert client.auth_test()["user_id"] == "U0WAVEBOT01"


def test_ephemeral_messages_and_view_updates(standin: SlackStandIn, client: WebClient) -> None:
    shown = client.chat_postEphemeral(channel=CHANNEL, user=ALICE, text="psst")
    assert standin.ephemeral_messages(ALICE)[0].message_ts == shown["message_ts"]
    assert standin.ephemeral_messages(BOB) == []
    opened = client.views_open(
        trigger_id=standin.workspace.issue_trigger(ALICE),
        view={"type": "modal", "callback_id": "first", "blocks": []},
    )
    view_id = str(opened["view"]["id"])
    client.views_update(view_id=view_id, view={"type": "modal", "callback_id": "second"})
    (view,) = standin.opened_views(ALICE)
    assert (view.id, view.callback_id, len(view.updates)) == (view_id, "second", 1)
    missing = _error(lambda: client.views_update(view_id="V0NOPE", view={"type": "modal"}))
    assert missing.response["error"] == "not_found"


def test_every_request_is_recorded_raw(standin: SlackStandIn, client: WebClient) -> None:
    client.chat_postMessage(channel=CHANNEL, text="hi", blocks=_button_blocks())
    client.users_info(user=ALICE)
    post, info = standin.requests()
    assert post.api_method == "chat.postMessage"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(post.body)["text"] == "hi"
    assert post.params["blocks"][1]["block_id"] == "decision"
    assert (info.http_method, info.params) == ("POST", {"user": ALICE})  # slack_sdk always POSTs
    assert standin.calls_by_method() == {"chat.postMessage": 1, "users.info": 1}


# -- rate limits ---------------------------------------------------------------------------------


def test_second_post_to_a_channel_within_a_second_is_429(frozen: SlackStandIn) -> None:
    client = WebClient(base_url=frozen.api_url, token=TOKEN)
    client.chat_postMessage(channel=CHANNEL, text="first")
    frozen.clock.advance(0.3)

    refused = _error(lambda: client.chat_postMessage(channel=CHANNEL, text="second"))

    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "1"
    assert refused.response["error"] == "ratelimited"
    assert [m.text for m in frozen.channel_messages(CHANNEL)] == ["first"]  # no effect
    assert frozen.rate_limited() == {"chat.postMessage": 1}
    by_name = _error(lambda: client.chat_postMessage(channel="#wave-1", text="second"))
    assert by_name.response.status_code == 429  # one channel, whichever way it is named
    # AND another channel has its own budget; this one refills after a Slack second
    client.chat_postMessage(channel=OTHER_CHANNEL, text="elsewhere")
    frozen.clock.advance(0.7)
    client.chat_postMessage(channel=CHANNEL, text="second")


def test_retry_handler_waits_retry_after_and_succeeds(
    frozen: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    def sleep_on_slack_clock(seconds: float) -> None:
        slept.append(seconds)
        frozen.clock.advance(seconds)

    monkeypatch.setattr(time, "sleep", sleep_on_slack_clock)  # what the handler calls
    client = WebClient(
        base_url=frozen.api_url, token=TOKEN, retry_handlers=[RateLimitErrorRetryHandler()]
    )
    client.chat_postMessage(channel=CHANNEL, text="first")
    client.chat_postMessage(channel=CHANNEL, text="second")

    assert [m.text for m in frozen.channel_messages(CHANNEL)] == ["first", "second"]
    assert len(slept) == 1
    assert slept[0] >= 1
    assert frozen.rate_limited() == {"chat.postMessage": 1}


def test_chat_update_is_one_budget_for_every_thread(frozen: SlackStandIn) -> None:
    client = WebClient(base_url=frozen.api_url, token=TOKEN)
    roots = []
    for _ in range(11):
        roots.append(str(client.chat_postMessage(channel=CHANNEL, text="root")["ts"]))
        frozen.clock.advance(1)
    for ts in roots[:10]:  # Tier 3 burst
        client.chat_update(channel=CHANNEL, ts=ts, text="edited")
    refused = _error(lambda: client.chat_update(channel=CHANNEL, ts=roots[10], text="edited"))
    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "2"  # 50/min: a token every 1.2 s
    frozen.clock.advance(1.2)
    client.chat_update(channel=CHANNEL, ts=roots[10], text="edited")


def test_injected_rate_limits_take_precedence(standin: SlackStandIn, client: WebClient) -> None:
    standin.inject_rate_limits(2, method="users.info", retry_after=7)
    client.auth_test()  # other methods are unaffected
    for _ in range(2):
        refused = _error(lambda: client.users_info(user=ALICE))
        assert (refused.response.status_code, refused.response.headers["Retry-After"]) == (
            429,
            "7",
        )
    assert client.users_info(user=ALICE)["user"]["id"] == ALICE
    standin.inject_rate_limits(1)
    assert _error(client.auth_test).response.status_code == 429
    assert standin.rate_limited() == {"users.info": 2, "auth.test": 1}


# -- acting as Slack towards a Bolt app ----------------------------------------------------------


class _BoltApp:
    """A tiny Bolt app served over HTTP, recording what its listeners saw."""

    def __init__(self, standin: SlackStandIn) -> None:
        self.client = WebClient(base_url=standin.api_url, token=TOKEN)
        self.app = App(client=self.client, signing_secret=SECRET, process_before_response=True)
        self.seen: list[dict[str, Any]] = []
        self.app.command("/wavepilot")(self._command)
        self.app.action("approve")(self._approve)
        self.app.action("details")(self._details)
        self.app.view("approve_modal")(self._submitted)
        self.server = BoltHttpServer(self.app)

    def _command(self, ack: Ack, body: dict[str, Any]) -> None:
        self.seen.append(body)
        ack(f"status of {body['text']}")

    def _approve(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        self.seen.append(body)
        client.views_open(
            trigger_id=body["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "approve_modal",
                "private_metadata": body["actions"][0]["value"],
                "title": {"type": "plain_text", "text": "Approve"},
                "blocks": [
                    {
                        "type": "input",
                        "block_id": "reason",
                        "label": {"type": "plain_text", "text": "Reason"},
                        "element": {"type": "plain_text_input", "action_id": "text"},
                    }
                ],
            },
        )

    def _details(self, ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="only you can see this")
        respond(text="Approved by alice", replace_original=True)

    def _submitted(self, ack: Ack, view: dict[str, Any]) -> None:
        ack()
        self.seen.append(view)


@pytest.fixture
def bolt(standin: SlackStandIn) -> Iterator[_BoltApp]:
    app = _BoltApp(standin)
    standin.connect_app(app.server.start())
    yield app
    app.server.stop()


def test_signed_slash_command_reaches_the_app_and_forgeries_get_401(
    standin: SlackStandIn, bolt: _BoltApp
) -> None:
    response = standin.slash_command(user=ALICE, channel=CHANNEL, text="wave-1")
    assert response.status == 200
    assert response.acked_in_time
    assert bolt.seen[0]["user_id"] == ALICE
    assert bolt.seen[0]["response_url"].startswith(standin.api_url.removesuffix("api/"))
    (shown,) = standin.ephemeral_messages(ALICE)
    assert (shown.text, shown.source) == ("status of wave-1", "command_ack")

    forged = standin.slash_command(user=ALICE, channel=CHANNEL, text="x", signing_secret="guess")
    replayed = standin.slash_command(
        user=ALICE, channel=CHANNEL, text="x", timestamp=int(time.time()) - 600
    )
    assert (forged.status, replayed.status) == (401, 401)
    assert len(bolt.seen) == 1


def test_click_opens_a_modal_and_the_submission_round_trips(
    standin: SlackStandIn, bolt: _BoltApp, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="Wave 1", blocks=_button_blocks())

    clicked = standin.click_button(
        user=ALICE, channel=CHANNEL, message_ts=str(posted["ts"]), action_id="approve"
    )

    assert clicked.status == 200
    action = bolt.seen[0]["actions"][0]
    assert (action["block_id"], action["value"]) == ("decision", "approve:wave-1")
    assert bolt.seen[0]["message"]["ts"] == posted["ts"]
    (opened,) = standin.opened_views(ALICE)
    assert (opened.callback_id, opened.private_metadata) == ("approve_modal", "approve:wave-1")
    assert opened.id.startswith("V")

    submitted = standin.submit_view(
        user=ALICE, view_id=opened.id, values={"reason": {"text": "window agreed"}}
    )

    assert submitted.status == 200
    assert bolt.seen[1]["state"]["values"]["reason"]["text"] == {
        "type": "plain_text_input",
        "value": "window agreed",
    }
    assert standin.opened_views()[0].closed
    # AND a trigger_id can be exchanged only once
    trigger = bolt.seen[0]["trigger_id"]
    reused = _error(lambda: client.views_open(trigger_id=trigger, view={"type": "modal"}))
    assert reused.response["error"] == "exchanged_trigger_id"


def test_respond_goes_through_the_response_url(
    standin: SlackStandIn, bolt: _BoltApp, client: WebClient
) -> None:
    blocks = _button_blocks()
    blocks[1]["elements"][0]["action_id"] = "details"
    posted = client.chat_postMessage(channel=CHANNEL, text="Wave 1", blocks=blocks)

    standin.click_button(
        user=BOB, channel=CHANNEL, message_ts=str(posted["ts"]), action_id="details"
    )

    (shown,) = standin.ephemeral_messages(BOB)
    assert (shown.text, shown.source, shown.channel) == (
        "only you can see this",
        "response_url",
        CHANNEL,
    )
    assert standin.thread(CHANNEL, str(posted["ts"])).root.text == "Approved by alice"
    responses = [r for r in standin.requests() if r.api_method == "response_url"]
    assert [r.status for r in responses] == [200, 200]
    assert "Authorization" not in responses[0].headers


def test_views_open_refuses_an_expired_trigger() -> None:
    standin = SlackStandIn(bot_token=TOKEN, signing_secret=SECRET, trigger_ttl=0.0).start()
    try:
        trigger = standin.workspace.issue_trigger(ALICE)
        time.sleep(0.01)
        client = WebClient(base_url=standin.api_url, token=TOKEN)
        expired = _error(lambda: client.views_open(trigger_id=trigger, view={"type": "modal"}))
        assert expired.response["error"] == "expired_trigger_id"
    finally:
        standin.stop()


def _confirm(**changes: Any) -> dict[str, Any]:
    confirm: dict[str, Any] = {
        "title": {"type": "plain_text", "text": "Cut over vm-01?"},
        "text": {"type": "plain_text", "text": "Into 111122223333 in us-east-1, 20:00 to 02:00?"},
        "confirm": {"type": "plain_text", "text": "Approve cutover"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    }
    confirm.update(changes)
    return confirm


def test_a_button_confirm_is_kept_checked_as_slack_does_and_shown_before_the_click(
    standin: SlackStandIn, bolt: _BoltApp, client: WebClient
) -> None:
    # GIVEN a button with a confirmation dialog
    blocks = _button_blocks()
    blocks[1]["elements"][0]["confirm"] = _confirm()
    posted = client.chat_postMessage(channel=CHANNEL, text="Wave 1", blocks=blocks)

    # WHEN Alice clicks it (and confirms in the dialog)
    clicked = standin.click_button(
        user=ALICE, channel=CHANNEL, message_ts=str(posted["ts"]), action_id="approve"
    )

    # THEN the message keeps the confirm object, the dialog was shown, then the click was sent
    stored = standin.thread(CHANNEL, str(posted["ts"])).root
    assert stored.blocks[1]["elements"][0]["confirm"] == _confirm()
    (dialog,) = standin.confirm_dialogs(ALICE)
    assert (dialog.title, dialog.confirm, dialog.deny, dialog.style, dialog.action_id) == (
        "Cut over vm-01?",
        "Approve cutover",
        "Cancel",
        "danger",
        "approve",
    )
    assert clicked.status == 200
    assert bolt.seen[0]["actions"][0]["value"] == "approve:wave-1"
    # AND a button without one opens no dialog
    plain = client.chat_postMessage(channel=CHANNEL, text="Wave 2", blocks=_button_blocks())
    standin.click_button(
        user=BOB, channel=CHANNEL, message_ts=str(plain["ts"]), action_id="approve"
    )
    assert standin.confirm_dialogs(BOB) == []


@pytest.mark.parametrize(
    ("confirm", "pointer", "error"),
    [
        (_confirm(title={"type": "plain_text", "text": "t" * 101}), "/title/text", "101"),
        (_confirm(text={"type": "plain_text", "text": "t" * 301}), "/text/text", "301"),
        (_confirm(confirm={"type": "plain_text", "text": "c" * 31}), "/confirm/text", "31"),
        (_confirm(title={"type": "mrkdwn", "text": "*t*"}), "/title/type", "enum"),
        (_confirm(style="green"), "/style", "enum"),
        ({"title": {"type": "plain_text", "text": "t"}}, "", "missing required field: text"),
    ],
)
def test_an_invalid_confirm_is_refused_with_where(
    client: WebClient, confirm: dict[str, Any], pointer: str, error: str
) -> None:
    blocks = _button_blocks()
    blocks[1]["elements"][0]["confirm"] = confirm

    refused = _error(lambda: client.chat_postMessage(channel=CHANNEL, text="x", blocks=blocks))

    assert refused.response["error"] == "invalid_blocks"
    [message] = refused.response["response_metadata"]["messages"]
    assert f"[json-pointer:/blocks/1/elements/0/confirm{pointer}]" in message
    assert error in message
