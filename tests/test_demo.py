"""``wavepilot demo`` runs end to end on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration import cli
from tests.conftest import REPO_ROOT


def test_demo_publishes_the_examples_and_the_pull_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    report_path = tmp_path / "report.json"

    assert cli.main(["demo", "--report", str(report_path)]) == cli.EXIT_OK

    out = capsys.readouterr().out
    assert "ok: 4 files, 4 waves, 26 VMs valid" in out
    assert "sent 25 of 25" in out  # first merge: every example VM
    assert "sent 2 of 2" in out  # the pull request: one resized, one added
    report = json.loads(report_path.read_text())
    ids = {(m["migrationId"], m["revision"]) for m in report["migrations"]}
    assert report["counts"]["sqs_messages"] == 29  # 25 + 2 + the same 2 again
    assert len(ids) == 27
    assert report["wall_seconds"] > 0


def test_demo_needs_the_example_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert cli.main(["demo"]) == cli.EXIT_USAGE
