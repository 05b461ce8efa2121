"""Requests Slack sends to an app: slash commands, block_actions, view_submission.

Shapes follow what Slack sends and what slack_bolt parses (`slack_bolt/request/internals.py`):
slash commands are flat form fields; interactive payloads are a form field `payload` holding
JSON. Signing is Slack's v0 scheme via slack_sdk's own `SignatureVerifier`, so a forged or stale
request is refused by the app exactly as it would be in production.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from orchestration.local.slack.model import JsonDict
from orchestration.local.slack.web_api import APP_ID, TEAM_DOMAIN

# Deprecated by Slack in favour of signing, but still sent in every request; Bolt ignores it.
VERIFICATION_TOKEN = "wavepilot-standin-verification-token"  # noqa: S105 - not a secret


@dataclass(frozen=True)
class Actor:
    """Who did it, where: the fields every payload repeats."""

    team_id: str
    user_id: str
    user_name: str
    channel_id: str
    channel_name: str


def _user(actor: Actor) -> JsonDict:
    return {
        "id": actor.user_id,
        "username": actor.user_name,
        "name": actor.user_name,
        "team_id": actor.team_id,
    }


def slash_command_body(
    actor: Actor, *, command: str, text: str, response_url: str, trigger_id: str
) -> str:
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": actor.team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": actor.channel_id,
            "channel_name": actor.channel_name,
            "user_id": actor.user_id,
            "user_name": actor.user_name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def block_actions_payload(
    actor: Actor,
    *,
    message: JsonDict,
    block_id: str,
    element: JsonDict,
    action_ts: str,
    response_url: str,
    trigger_id: str,
) -> JsonDict:
    container: JsonDict = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": actor.channel_id,
        "is_ephemeral": False,
    }
    if "thread_ts" in message:
        container["thread_ts"] = message["thread_ts"]
    action: JsonDict = {
        "action_id": element["action_id"],
        "block_id": block_id,
        "type": element.get("type", "button"),
        "action_ts": action_ts,
    }
    for key in ("text", "value", "style"):
        if key in element:
            action[key] = element[key]
    return {
        "type": "block_actions",
        "user": _user(actor),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": actor.team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": actor.channel_id, "name": actor.channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_submission_payload(
    actor: Actor,
    *,
    view: JsonDict,
    values: dict[str, dict[str, str | list[str]]],
    trigger_id: str,
) -> JsonDict:
    view = {**view, "state": {"values": _state_values(view, values)}}
    return {
        "type": "view_submission",
        "team": {"id": actor.team_id, "domain": TEAM_DOMAIN},
        "user": _user(actor),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def _state_values(view: JsonDict, values: dict[str, dict[str, str | list[str]]]) -> JsonDict:
    """Slack's `state.values`: each input typed as the view declares it (text unless known).

    A multiple choice (``checkboxes``, ``multi_static_select``) takes a list of option values
    and is sent as Slack sends it: ``selected_options``, each the option object the view
    declared (an option the view does not offer raises ``LookupError``)."""
    declared: dict[tuple[str, str], JsonDict] = {}
    for block in view.get("blocks", []):
        element = block.get("element")
        if isinstance(element, dict):
            declared[(block.get("block_id", ""), element.get("action_id", ""))] = element
    state: JsonDict = {}
    for block_id, actions in values.items():
        state[block_id] = {}
        for action_id, value in actions.items():
            element = declared.get((block_id, action_id), {"type": "plain_text_input"})
            kind = element["type"]
            if kind in ("checkboxes", "multi_static_select"):
                offered = {str(o["value"]): o for o in element.get("options") or []}
                chosen = [value] if isinstance(value, str) else value
                missing = [v for v in chosen if v not in offered]
                if missing:
                    raise LookupError(f"the view offers no option {missing[0]!r}")
                state[block_id][action_id] = {
                    "type": kind,
                    "selected_options": [offered[v] for v in chosen],
                }
            elif kind in ("static_select", "radio_buttons"):
                option = {"text": {"type": "plain_text", "text": value}, "value": value}
                state[block_id][action_id] = {"type": kind, "selected_option": option}
            else:
                state[block_id][action_id] = {"type": kind, "value": value}
    return state


def form_payload(payload: JsonDict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def signed_headers(body: str, *, signing_secret: str, timestamp: int | None) -> dict[str, str]:
    """Headers Slack sends: v0 signature over `v0:{timestamp}:{body}`, real unix timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
