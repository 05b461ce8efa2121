"""`wavepilot rehearse` end to end: the embedded system on the simulated clock, predicted.

The clock's acceptance (issue 13) is checked here through the rehearsal itself: the same input
predicts the same makespan whether or not the machine is busy, and when MGN's job quota binds
the launch phase takes ceil(N/J) x D.
"""

from __future__ import annotations

import gc
import json
import math
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestration.cli import main
from orchestration.local.synthetic import wave_yaml
from orchestration.manifests.findings import Severity
from orchestration.manifests.validation import ManifestFile
from orchestration.rehearsal.observation import RehearsalObservation, VmObservation
from orchestration.rehearsal.profile import RehearsalProfile
from orchestration.rehearsal.run import (
    _REHEARSAL_GC_THRESHOLDS,
    _fewer_collections,
    manifest_input,
    rehearse,
    synthetic_input,
)
from orchestration.statemachine import LaunchSettings
from tests.support.waves import with_dependent_application

# Each test runs the embedded system for simulated days: 30 to 100 s of wall time, more when
# the other test worker shares the two cores.
pytestmark = pytest.mark.timeout(600)

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday morning


def _profile(**sections: object) -> RehearsalProfile:
    return RehearsalProfile.model_validate(sections)


def _rehearse(vms: int, profile: RehearsalProfile) -> RehearsalObservation:
    return rehearse(synthetic_input(vms, start=START, profile=profile), profile)


def test_rehearse_predicts_a_wave_and_writes_json_and_html(tmp_path: Path) -> None:
    report, html = tmp_path / "rehearsal.json", tmp_path / "rehearsal.html"
    code = main(
        [
            "rehearse",
            "--vms",
            "6",
            "--start",
            START.isoformat(),
            "--report",
            str(report),
            "--html",
            str(html),
        ]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["vmCount"] == 6
    assert data["outcomes"]["migrated"] == 6
    assert data["calls"]["lostSlackUpdates"] == 0
    assert data["waves"][0]["name"] == "wave-000"
    for vm in data["vms"]:
        phases = [phase["name"] for phase in vm["phases"]]
        assert phases[:2] == ["setup", "replication"], phases
        assert {"test", "approval", "cutover", "finalize"} <= set(phases), phases
        assert vm["slack"]["finalShown"] is True
        assert vm["slack"]["approvalStatus"] == "APPROVED"
        assert vm["slack"]["approvalMessageSeconds"] >= 0
    # AND the wave's Slack figures: every approval message found in Slack, with its wait
    slack = data["waves"][0]["slack"]
    assert (slack["approvalsRequested"], slack["approvalsNotShown"]) == (6, 0)
    assert slack["approvalMessage"]["count"] == 6
    # a thread's root shows each change of stage: in progress, cutting over, migrated
    assert slack["eventToSlack"]["count"] >= 6 * 3
    assert slack["callsPerVmByMethod"]["chat.postMessage"] >= 1
    assert (slack["lostUpdates"], slack["approvalsExpired"]) == (0, 0)
    page = html.read_text()
    bars = re.findall(r'<g class="vm-bar[^"]*" data-migration-id="([^"]+)"', page)
    assert sorted(bars) == sorted(vm["migrationId"] for vm in data["vms"])


@contextmanager
def _other_core_busy() -> Iterator[None]:
    busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


def _makespan(observation: RehearsalObservation) -> float:
    return (observation.ended_at - observation.started_at).total_seconds()


def test_the_prediction_does_not_depend_on_how_busy_the_machine_is() -> None:
    profile = _profile(synthetic={"windowOpensAfterHours": 2, "windowHours": 12})
    quiet = _rehearse(6, profile)
    with _other_core_busy():
        busy = _rehearse(6, profile)
    assert {vm.final_status for vm in quiet.vms} == {"SUCCEEDED"}
    assert [vm.final_status for vm in busy.vms] == [vm.final_status for vm in quiet.vms]
    print(f"makespan quiet {_makespan(quiet):.0f} s, busy {_makespan(busy):.0f} s")
    assert abs(_makespan(busy) - _makespan(quiet)) <= 0.05 * _makespan(quiet)


def test_when_mgns_job_quota_binds_the_test_launches_take_ceil_n_over_j_rounds() -> None:
    servers, quota = 6, 2
    launch = {"snapshotMinutes": 2, "conversionMinutes": 20, "bootMinutes": 7.5}  # D = 30 min
    profile = _profile(
        launches={"test": {"linux": launch, "windows": launch}},
        quotas={"concurrentJobs": quota},
        # Approvers answer after every test launch: terminating test instances (jobs too)
        # must not compete with the test launches measured here.
        approvers={"responseMinutesMin": 600, "responseMinutesMax": 600},
    )
    observation = _rehearse(servers, profile)
    assert {vm.final_status for vm in observation.vms} == {"SUCCEEDED"}
    tests = [job for vm in observation.vms for job in vm.jobs if job.kind == "test"]
    assert len(tests) == servers
    assert all(job.servers_in_job == 1 for job in tests)
    first = min(job.created_at for job in tests)
    last = max(job.ended_at for job in tests if job.ended_at is not None)
    phase = (last - first).total_seconds()
    expected = math.ceil(servers / quota) * 30 * 60
    print(f"launch phase {phase:.0f} s, expected {expected:.0f} s")
    assert abs(phase - expected) <= 0.10 * expected


@pytest.mark.parametrize("design", ["per-vm", "batched"])
def test_dependent_applications_cut_over_after_their_dependencies_in_the_rehearsal(
    design: str,
) -> None:
    """A wave file whose second application goes after the first (``dependsOn``), rehearsed
    with each launch design: every VM of the dependent application starts its cutover (and
    its cutover job is created) only after every VM of the first has cut over (verified)."""
    profile = _profile()
    opens = START + timedelta(hours=profile.synthetic.window_opens_after_hours)
    closes = opens + timedelta(hours=profile.synthetic.window_hours)
    window = (opens.isoformat(), closes.isoformat())
    text = with_dependent_application(
        wave_yaml(0, 4, window=window), keep=2, name="app-b", depends_on="app-000-00"
    )
    rehearsal, findings = manifest_input([ManifestFile("wave-000.yaml", text)], start=START)
    assert not [f for f in findings if f.severity is Severity.ERROR], findings

    observation = rehearse(rehearsal, profile, launch=LaunchSettings.aws(design))

    assert {vm.final_status for vm in observation.vms} == {"SUCCEEDED"}
    by_app: dict[str, list[VmObservation]] = {}
    for vm in observation.vms:
        by_app.setdefault(vm.app_name, []).append(vm)
    assert {app: len(vms) for app, vms in by_app.items()} == {"app-000-00": 2, "app-b": 2}

    def first(vm: VmObservation, step: str, status: str) -> datetime:
        return next(s.at for s in vm.steps if (s.step, s.status) == (step, status))

    cut_over = max(first(vm, "VerifyCutover", "SUCCEEDED") for vm in by_app["app-000-00"])
    for vm in by_app["app-b"]:
        assert first(vm, "StartCutover", "SUCCEEDED") >= cut_over, vm.target_vm_name
        (job,) = [job for job in vm.jobs if job.kind == "cutover"]
        assert job.created_at >= cut_over, vm.target_vm_name
    # AND the first application did not wait for the second: its cutovers began first
    assert max(first(vm, "StartCutover", "SUCCEEDED") for vm in by_app["app-000-00"]) < min(
        first(vm, "StartCutover", "SUCCEEDED") for vm in by_app["app-b"]
    )


def test_a_rehearsal_collects_garbage_less_often_and_gives_the_thresholds_back() -> None:
    before = gc.get_threshold()
    assert before != _REHEARSAL_GC_THRESHOLDS

    seen: list[tuple[int, ...]] = []

    def a_rehearsal_that_fails() -> None:
        with _fewer_collections():
            seen.append(gc.get_threshold())
            raise RuntimeError("a rehearsal that fails")

    with pytest.raises(RuntimeError):
        a_rehearsal_that_fails()

    assert seen == [_REHEARSAL_GC_THRESHOLDS]
    assert gc.get_threshold() == before
