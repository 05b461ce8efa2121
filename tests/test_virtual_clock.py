"""The simulated clock: virtual time that the CPU cannot stretch (docs/LOCAL_RUNTIME.md)."""

from __future__ import annotations

import math
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import pytest

from orchestration.adapters.state_store import MigrationRecord
from orchestration.local.driver import TERMINAL, MigrationDriver, first_listed_approver
from orchestration.local.mgn import EmulatorSettings
from orchestration.local.mgn.model import JobSummary
from orchestration.local.mgn.settings import JobTiming, QuotaLimits
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.local.virtual_clock import ClockEvent, VirtualClock
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

POLL = 30.0  # the simulated approver looks every 30 simulated seconds


@contextmanager
def running(clock: VirtualClock) -> Iterator[VirtualClock]:
    clock.start()
    try:
        with clock.participating():
            yield clock
    finally:
        clock.close()


def test_sleeps_take_no_wall_time_and_end_in_deadline_order() -> None:
    ended: list[tuple[str, float]] = []
    with running(VirtualClock()) as clock:

        def sleeper(name: str, seconds: float) -> None:
            clock.sleep(seconds)
            ended.append((name, clock.monotonic()))

        threads = [
            threading.Thread(target=clock.counted(sleeper), args=(name, seconds))
            for name, seconds in (("hour", 3600.0), ("minute", 60.0), ("day", 86400.0))
        ]
        for thread in threads:
            thread.start()
        clock.sleep(90000.0)
        for thread in threads:
            thread.join()
    assert ended == [("minute", 60.0), ("hour", 3600.0), ("day", 86400.0)]


def test_an_event_set_by_a_counted_thread_wakes_the_waiter_before_time_moves() -> None:
    with running(VirtualClock()) as clock:
        event = ClockEvent()
        woke_at: list[float] = []

        def waiter() -> None:
            event.wait(timeout=7200)
            woke_at.append(clock.monotonic())

        thread = threading.Thread(target=clock.counted(waiter))
        thread.start()
        clock.sleep(600)
        event.set()
        clock.sleep(60)
        thread.join()
    assert woke_at == [600.0]


def test_a_counted_thread_that_computes_holds_virtual_time() -> None:
    with running(VirtualClock()) as clock:
        seen: list[float] = []

        def busy() -> None:
            total = 0
            for i in range(2_000_000):  # real work, no wait: virtual time must not move
                total += i
            seen.append(clock.monotonic())

        thread = threading.Thread(target=clock.counted(busy))
        thread.start()
        clock.sleep(1)  # deadline at 1 s: reached only after busy() ends
        thread.join()
    assert seen == [0.0]


# --- the embedded system on the simulated clock --------------------------------------------


def _all_requests() -> list[MigrationRequest]:
    requests: list[MigrationRequest] = []
    for wave in ("wave-1", "wave-2", "wave-3", "wave-4"):
        requests.extend(example_requests(wave, lasts=timedelta(days=10)))
    return requests


def _simulated_run(
    requests: list[MigrationRequest],
    *,
    settings: EmulatorSettings | None = None,
    approver_waits_for_tests: bool = False,
) -> tuple[float, EmbeddedSystem, dict[str, str]]:
    """Run ``requests`` to their ends; return the makespan (first request to the last final
    state the driver saw, in simulated seconds), the stopped system, and the statuses."""
    options = SystemOptions(timings=Timings.aws(), clock="simulated")
    if settings is not None:
        options = replace(options, mgn_settings=settings)
    with EmbeddedSystem(options) as system:
        assert system.clock is not None
        system.seed([spec_of(r) for r in requests])
        driver = MigrationDriver(system)
        ended: dict[str, float] = {}

        def on_tick(statuses: dict[str, str], records: dict[str, MigrationRecord]) -> None:
            assert system.clock is not None
            for migration_id, status in statuses.items():
                if status in TERMINAL:
                    ended.setdefault(migration_id, system.clock.monotonic())

        def approver(record: MigrationRecord, approvers: tuple[str, ...]) -> tuple[str, str] | None:
            if approver_waits_for_tests:
                tests = [j for j in _all_jobs(system) if j.initiated_by == "START_TEST"]
                if len(tests) < len(requests) or any(j.ended_at is None for j in tests):
                    return None
            return first_listed_approver(record, approvers)

        started = system.clock.monotonic()
        driver.send(requests)
        outcomes = driver.wait(
            [r.migration_id for r in requests],
            approver=approver,
            timeout=7 * 24 * 3600,
            poll_seconds=POLL,
            on_tick=on_tick,
        )
        statuses = {m: o.status for m, o in outcomes.items()}
        return max(ended.values()) - started, system, statuses


def _all_jobs(system: EmbeddedSystem) -> list[JobSummary]:
    """MGN jobs in every lane (each wave's target account and Region has its own MGN)."""
    assert system.mgn_fleet is not None
    return [job for lane in system.mgn_fleet.lanes().values() for job in lane.jobs()]


@contextmanager
def other_core_busy() -> Iterator[None]:
    busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


def test_the_makespan_does_not_depend_on_how_busy_the_machine_is() -> None:
    requests = _all_requests()[:10]  # two waves, two lanes: approvals and the Slack bot
    quiet, _, quiet_statuses = _simulated_run(requests)
    with other_core_busy():
        busy, _, busy_statuses = _simulated_run(requests)
    assert set(quiet_statuses.values()) <= {"SUCCEEDED"}, quiet_statuses
    assert busy_statuses == quiet_statuses
    print(f"makespan quiet {quiet:.0f} s, busy {busy:.0f} s")
    assert abs(busy - quiet) <= 0.05 * quiet, (quiet, busy)


@pytest.mark.parametrize(("servers", "quota"), [(6, 2)])
def test_mgn_job_quota_binds_the_launch_phase(servers: int, quota: int) -> None:
    launch = JobTiming(
        pending=timedelta(seconds=30),
        snapshot=timedelta(minutes=2),
        conversion=timedelta(minutes=20),
        boot=timedelta(minutes=7, seconds=30),
    )
    duration = (launch.pending + launch.snapshot + launch.conversion + launch.boot).total_seconds()
    settings = EmulatorSettings(jobs=launch, quotas=QuotaLimits(concurrent_jobs=quota))
    # One lane (wave-2's target account and Region): the quota is per lane.
    requests = [r for r in _all_requests() if r.wave == "wave-2"][:servers]
    assert len(requests) == servers
    _, system, statuses = _simulated_run(requests, settings=settings, approver_waits_for_tests=True)
    assert set(statuses.values()) == {"SUCCEEDED"}, statuses
    tests = [j for j in _all_jobs(system) if j.initiated_by == "START_TEST"]
    assert len(tests) == servers
    assert all(len(j.participants) == 1 for j in tests)
    first = min(j.created_at for j in tests)
    last = max(j.ended_at for j in tests if j.ended_at is not None)
    phase = (last - first).total_seconds()
    expected = math.ceil(servers / quota) * duration
    print(f"launch phase {phase:.0f} s, expected {expected:.0f} s")
    assert abs(phase - expected) <= 0.10 * expected, (phase, expected)
