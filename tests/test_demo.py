"""``wavepilot demo`` runs the whole system end to end on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration import cli
from tests.conftest import REPO_ROOT


# The whole 25-VM demo: about a minute alone, twice that beside three other test workers.
@pytest.mark.timeout(300)
def test_demo_migrates_the_examples_and_rolls_back_the_injected_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    report_path = tmp_path / "report.json"

    threads_path = tmp_path / "threads.txt"
    argv = ["demo", "--report", str(report_path), "--threads", str(threads_path)]
    assert cli.main(argv) == cli.EXIT_OK

    out = capsys.readouterr().out
    assert "ok: 4 files, 4 waves, 25 VMs valid" in out
    assert "Cutover windows are moved to the present" in out
    assert "sent 25 of 25" in out
    report = json.loads(report_path.read_text())
    states = {m["targetVmName"]: m["state"] for m in report["migrations"]}
    assert len(states) == 25
    assert states.pop("rpt-ssrs-01") == "FAILED"  # the injected test-launch failure
    assert set(states.values()) == {"SUCCEEDED"}
    failed = next(m for m in report["migrations"] if m["targetVmName"] == "rpt-ssrs-01")
    assert failed["recordStatus"] == "ROLLED_BACK"
    assert {"step": "Rollback", "status": "SUCCEEDED"}.items() <= failed["steps"][-1].items()
    counts = report["counts"]
    assert counts["lambda_invocations_total"] > 25 * 8
    assert counts["state_transitions"] > 25 * 10
    assert counts["api_calls"]["mgn"] > 0
    # Each wave migrated in its own lane, as the MGN emulator recorded the launches
    lanes = {(m["wave"], m["targetAccountId"], m["targetRegion"]) for m in report["migrations"]}
    assert lanes == {
        ("wave-1", "111122223333", "us-east-1"),
        ("wave-2", "444455556666", "us-east-1"),
        ("wave-3", "444455556666", "eu-west-1"),
        ("wave-4", "444455556666", "eu-west-1"),
    }
    assert set(counts["mgn_calls_by_lane"]) == {f"{a}/{r}" for _, a, r in lanes}
    assert "MGN calls by lane (target account/Region)" in out
    # Its wall time is reported (how fast is measured in `make bench`, not asserted here: a
    # loaded CI runner would fail a correct demo).
    assert report["wall_seconds"] > 0
    # Every migration has its Slack thread, every final state reached its root message.
    slack = report["slack"]
    assert len(slack["threads"]) == 25
    assert slack["lost_updates"] == 0
    shows = {t["migrationId"]: t["shows"] for t in slack["threads"]}
    assert shows[failed["migrationId"]] == "rolled back"
    assert sorted(set(shows.values())) == ["migrated", "rolled back"]
    # Posts: each thread's root and final result (a rollback's story is a few more), one
    # approval message per application (the default scope) and one summary per wave: within
    # the thread budget (docs/SLACK.md), fewer than with an approval message per VM.
    assert 25 * 2 <= slack["calls_by_method"]["chat.postMessage"] < 25 * 3
    assert "Its Slack thread, as the bot left it" in out
    assert threads_path.read_text().count("(root edited") == 25


def test_demo_needs_the_example_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert cli.main(["demo"]) == cli.EXIT_USAGE
