"""Pause, resume and cancel a wave on the embedded system (real executions, the MGN emulator,
DynamoDB on moto): what an operator does on migration day, through the service the CLI and
the Slack bot share (orchestration/pipeline/wave_control.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestration import wiring
from orchestration.gitops.requests import request_for
from orchestration.local.driver import MigrationDriver
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.wave_control import WaveControlError
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=120)
WAVE = "wave-3"  # 11 VMs in 3 applications
PAUSED_WAVE, PAUSED_VMS = "wave-020", 20  # a synthetic wave of 20 VMs in two applications
OPERATOR, NOT_AN_OPERATOR = "U07BOBOPS01", "U07MALLORY1"
LAUNCHES = {"START_TEST", "START_CUTOVER"}
RESUME_WAIT = "launch starts when the wave is resumed"
# A wave of 20 VMs end to end, twice as long with the other test worker on the two cores.
pytestmark = pytest.mark.timeout(480)


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


@pytest.fixture
def driver(system: EmbeddedSystem) -> MigrationDriver:
    return MigrationDriver(system)


def _wait_for(what: str, found: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _launch_jobs(system: EmbeddedSystem, servers: dict[str, str]) -> dict[str, Any]:
    """Every test launch and cutover job MGN holds for the wave's servers, by job ID."""
    jobs: dict[str, Any] = {}
    for server in servers.values():
        for job in system.mgn_of_server(server).jobs():
            if job.initiated_by in LAUNCHES:
                jobs[job.job_id] = job
    return jobs


def _synthetic_wave(name: str, vms: int) -> list[MigrationRequest]:
    """A synthetic wave of ``vms`` VMs (one VM per approval), its window open now."""
    start = datetime.now(UTC) - timedelta(hours=1)
    window = (start.isoformat(), (start + timedelta(hours=3)).isoformat())
    text = wave_yaml(int(name.removeprefix("wave-")), vms, window=window).replace(
        "\ndefaults:", "\napproval:\n  scope: vm\ndefaults:", 1
    )
    result = validate_files([ManifestFile(f"{name}.yaml", text)], now=datetime.now(UTC))
    assert result.valid, result.findings
    return [
        request_for(vm, commit="c" * 40, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]


def test_a_paused_wave_starts_no_launch_lets_running_jobs_finish_and_resumes(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    # GIVEN a wave of 20 VMs, half of them under way
    requests = _synthetic_wave(PAUSED_WAVE, PAUSED_VMS)
    assert len(requests) == PAUSED_VMS
    servers = system.seed([spec_of(r) for r in requests])
    controls = wiring.wave_control()
    first, later = requests[: PAUSED_VMS // 2], requests[PAUSED_VMS // 2 :]
    driver.send(first)

    # WHEN an operator pauses the wave as its first test launches start, and the rest of the
    # wave is published then (the first half alone may all have launched by the pause: a
    # fast machine started all 20 before it, and nothing was left to hold)
    _wait_for("a first test launch", lambda: _launch_jobs(system, servers))
    with pytest.raises(WaveControlError, match="not an operator"):
        controls.change(PAUSED_WAVE, "pause", user=NOT_AN_OPERATOR, reason="no")
    controls.change(PAUSED_WAVE, "pause", user=OPERATOR, reason="DNS change freeze")
    time.sleep(1.0)  # a launch that read the wave's state just before the pause
    at_pause = _launch_jobs(system, servers)
    driver.send(later)

    # THEN the jobs already started finish, and no launch starts while the wave is paused
    _wait_for(
        "the running jobs to finish",
        lambda: all(j.status == "COMPLETED" for j in _launch_jobs(system, servers).values()),
    )
    held = _wait_for(
        "the migrations published during the pause to say they wait for the resume",
        lambda: (
            (
                waiting := [
                    r.migration_id
                    for r in later
                    if (record := wiring.store().get(r.migration_id)) is not None
                    and any(RESUME_WAIT in h["message"] for h in record.history)
                ]
            )
            and len(waiting) == len(later)
            and waiting
        ),
    )
    time.sleep(5.0)  # several of the held executions' polls
    assert _launch_jobs(system, servers).keys() == at_pause.keys()
    assert len(at_pause) < len(requests)
    assert held
    with pytest.raises(WaveControlError, match="paused already"):
        controls.change(PAUSED_WAVE, "pause", user=OPERATOR, reason="twice")

    # WHEN it is resumed, THEN every migration completes
    controls.change(PAUSED_WAVE, "resume", user=OPERATOR)
    outcomes = driver.wait([r.migration_id for r in requests], timeout=240)
    assert {o.status for o in outcomes.values()} == {"SUCCEEDED"}, [
        (o.target_vm_name, o.cause) for o in outcomes.values() if o.status != "SUCCEEDED"
    ]
    # AND each migration's audit trail has the refusal and both changes
    trail = wiring.store().migration_audit_trail(requests[0].migration_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        (NOT_AN_OPERATOR, "wave-pause", "refused"),
        (OPERATOR, "wave-pause", "done"),
        (OPERATOR, "wave-pause", "refused"),
        (OPERATOR, "wave-resume", "done"),
    ]


def test_a_cancelled_wave_rolls_back_every_migration_and_leaves_nothing_running(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    requests = example_requests(WAVE, approval_scope="vm")
    servers = system.seed([spec_of(r) for r in requests])
    driver.send(requests)
    _wait_for("a first test launch", lambda: _launch_jobs(system, servers))

    done = wiring.wave_control().change(
        WAVE, "cancel", user=OPERATOR, reason="application owners not ready"
    )
    outcomes = driver.wait([r.migration_id for r in requests], approver=None, timeout=240)

    # Each migration is rolled back: by the cancel (its execution stopped), or, one whose
    # execution started only after it, by its own ValidateInput refusing the cancelled wave
    assert set(done.rolled_back) <= {r.migration_id for r in requests}
    assert done.rolled_back
    assert {o.record_status for o in outcomes.values()} == {"ROLLED_BACK"}, [
        (o.target_vm_name, o.steps[-1:]) for o in outcomes.values()
    ]
    for server in servers.values():
        lane = system.lane_of_server[server]
        reservations = system.lane_ec2(lane).describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        assert [i for r in reservations for i in r["Instances"]] == [], server
    with pytest.raises(WaveControlError, match="is cancelled"):
        wiring.wave_control().change(WAVE, "resume", user=OPERATOR)
