"""What a Lambda loads: the request queue's handler reads messages, not manifests; the Slack
bot answers operators without the terminal's rendering."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def _loaded_by(*modules: str) -> set[str]:
    """Every module a fresh interpreter has loaded once it imported ``modules``, as Lambda
    does on a cold start (this interpreter has imported everything already)."""
    script = "\n".join(
        ["import importlib, json, sys"]
        + [f"importlib.import_module({module!r})" for module in modules]
        + ["print(json.dumps(sorted(sys.modules)))"]
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(completed.stdout))


def _package(loaded: set[str], name: str) -> set[str]:
    return {module for module in loaded if module == name or module.startswith(f"{name}.")}


def test_the_ingress_handler_does_not_load_the_manifest_validator_or_yaml() -> None:
    # GIVEN a fresh interpreter
    # WHEN it imports the ingress handler
    loaded = _loaded_by("orchestration.handlers.ingress_handler")

    # THEN neither the YAML validator nor a YAML parser is among the modules loaded
    assert "orchestration.handlers.ingress_handler" in loaded
    assert "orchestration.manifests.validation" not in loaded
    assert "orchestration.manifests.yaml_source" not in loaded
    assert not _package(loaded, "yaml")


def test_the_slack_bot_answers_operators_without_loading_rich() -> None:
    # GIVEN a fresh interpreter
    # WHEN it imports the Slack app's handler and the /wavepilot commands, which share the
    # operators' status and decisions with the terminal CLI
    loaded = _loaded_by("bot.handlers.slack_app", "bot.commands")

    # THEN the operators' data is loaded, the terminal's rendering (and rich) are not
    assert {"bot.commands", "orchestration.operators"} <= loaded
    assert not _package(loaded, "rich")
    assert not {"orchestration.operator_render", "orchestration.operator_cli"} & loaded
    assert "orchestration.terminal" not in loaded
