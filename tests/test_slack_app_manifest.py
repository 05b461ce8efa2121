"""The Slack app manifest asks for what the bot calls, and points Slack at one endpoint."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

MANIFEST = REPO_ROOT / "bot" / "slack-app-manifest.yaml"
# Web API method -> the bot scope it needs (api.slack.com/methods).
SCOPE_OF = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "usergroups_users_list": "usergroups:read",
    "users_info": "users:read",
}


def _methods_called() -> set[str]:
    called: set[str] = set()
    for path in Path(REPO_ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in SCOPE_OF | {"views_open": ""}:
                called.add(node.attr)
    return called


def test_the_manifest_grants_every_scope_the_bot_needs_and_no_more() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {SCOPE_OF[m] for m in _methods_called() if m in SCOPE_OF}
    needed |= {"commands", "users:read.email"}  # the slash command; the requester's email
    assert needed <= scopes
    assert scopes == needed


def test_the_command_and_interactivity_go_to_the_one_endpoint() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/wavepilot"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert command["url"] == manifest["settings"]["interactivity"]["request_url"]
    for verb in ("status", "approve", "reject", "rollback", "help"):
        assert verb in command["usage_hint"]
