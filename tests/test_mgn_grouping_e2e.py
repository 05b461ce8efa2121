"""MGN's waves and applications equal the manifests, end to end on the embedded system.

Real handlers and ASL; MGN is the emulator in the wave's lane, read back through the lane's
boto3 client (ListWaves, ListApplications, DescribeSourceServers' applicationID). A wave is
run, then one VM moves to another wave (its manifest renamed, as a pull request would) and
runs again: MGN follows, and the application it left empty is archived. A server a person
had moved in MGN's console is put back, and the thread says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest

from bot.thread_store import ThreadStore
from orchestration import wiring
from orchestration.adapters.mgn import Grouping
from orchestration.adapters.state_store import MigrationRecord
from orchestration.local.driver import MigrationDriver, first_listed_approver
from orchestration.local.mgn import EmulatorSettings, QuotaLimits
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _request(requests: list[MigrationRequest], vm: str) -> MigrationRequest:
    [found] = [r for r in requests if r.target_vm_name == vm]
    return found


def _reject(record: MigrationRecord, approvers: tuple[str, ...]) -> tuple[str, str] | None:
    return "REJECTED", "U07ALICE001"


def _grouping(request: MigrationRequest) -> Grouping:
    """MGN's waves and applications in the request's lane, as its boto3 client lists them."""
    return wiring.lanes().for_spec(spec_of(request)).mgn.grouping()


def _application_of(request: MigrationRequest, server_id: str) -> str | None:
    """The name of the MGN application DescribeSourceServers puts the server in."""
    mgn = wiring.lanes().for_spec(spec_of(request)).mgn
    application_id = mgn.source_server(server_id).application_id
    found = _grouping(request).application(application_id)
    return found.name if found else application_id


def _active(grouping: Grouping) -> dict[str, str | None]:
    """Active application -> its wave's name; plus each active wave as ``wave:<name>``."""
    shown: dict[str, str | None] = {
        f"wave:{wave.name}": None for wave in grouping.waves if not wave.is_archived
    }
    for app in grouping.applications:
        if not app.is_archived:
            wave = grouping.wave(app.wave_id)
            shown[app.name] = wave.name if wave else None
    return shown


def _thread_replies(system: EmbeddedSystem, migration_id: str) -> list[str]:
    """The texts of the replies in the migration's Slack thread, once the bot posted it."""
    table = boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(wiring.store()._table.name)
    threads = ThreadStore(table)
    assert system.slack is not None

    def posted() -> list[str] | None:
        stored = threads.get(migration_id)
        if stored is None or stored.root_owed or not stored.state.final:
            return None
        thread = system.slack.thread(stored.channel, stored.ts) if system.slack else None
        return [reply.text for reply in thread.replies] if thread else None

    replies: list[str] = _wait_for(f"{migration_id}'s thread", posted)
    return replies


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return found


def test_mgn_follows_the_manifests_when_a_vm_moves_between_waves(system: EmbeddedSystem) -> None:
    driver = MigrationDriver(system)
    wave_1 = example_requests()
    web, reporting = _request(wave_1, "intranet-web-01"), _request(wave_1, "rpt-ssrs-01")
    servers = system.seed([spec_of(web), spec_of(reporting)])
    # GIVEN someone had put the web server in their own application in MGN's console
    lane = system.mgn_of_server(servers[web.migration_id])
    payroll = lane.add_application("Payroll")
    lane.move_source_server(servers[web.migration_id], payroll)

    # WHEN wave-1 runs (both rejected at the approval: the servers stay launchable)
    driver.send([web, reporting])
    first = driver.wait([web.migration_id, reporting.migration_id], approver=_reject)

    # THEN MGN's console shows wave-1 with its two applications, each server in its own
    assert {o.record_status for o in first.values()} == {"ROLLED_BACK"}, first
    assert _active(_grouping(web)) == {
        "wave:wave-1": None,
        "wave-1/intranet": "wave-1",
        "wave-1/reporting": "wave-1",
        "Payroll": None,  # the team's own application: left alone, even empty
    }
    assert _application_of(web, servers[web.migration_id]) == "wave-1/intranet"
    assert _application_of(reporting, servers[reporting.migration_id]) == "wave-1/reporting"
    # AND the web server's thread says it was elsewhere in MGN (drift, put back)
    [drift] = [r for r in _thread_replies(system, web.migration_id) if "MGN" in r]
    assert "application Payroll, an application Wavepilot does not manage" in drift
    assert "moved to wave-1/intranet (wave wave-1)" in drift

    # WHEN the reporting VM moves to wave-9 in the manifests and its migration runs
    moved = _request(example_requests(renamed_to="wave-9"), "rpt-ssrs-01")
    driver.send([moved])
    second = driver.wait([moved.migration_id], approver=first_listed_approver)

    # THEN MGN follows: wave-9 holds its application and the server; the application it
    # left is archived, and wave-1 stays (intranet is still in it)
    assert second[moved.migration_id].status == "SUCCEEDED", second[moved.migration_id].cause
    grouping = _grouping(moved)
    assert _active(grouping) == {
        "wave:wave-1": None,
        "wave:wave-9": None,
        "wave-1/intranet": "wave-1",
        "wave-9/reporting": "wave-9",
        "Payroll": None,
    }
    left = grouping.application_named("wave-1/reporting")
    assert left is not None
    assert left.is_archived
    assert _application_of(moved, servers[reporting.migration_id]) == "wave-9/reporting"
    [move] = [r for r in _thread_replies(system, moved.migration_id) if "MGN" in r]
    assert "application wave-1/reporting (wave wave-1); moved to wave-9/reporting" in move
    history = wiring.store().history(moved.migration_id)
    [prepared] = [e for e in history if (e["step"], e["status"]) == ("PrepareSource", "SUCCEEDED")]
    assert "archived in MGN, now empty: application wave-1/reporting" in prepared["message"]


def test_mgn_refusing_its_grouping_is_reported_and_the_migration_goes_on() -> None:
    # GIVEN a lane whose MGN has no room for another wave (200 active in a real account)
    full = EmulatorSettings(quotas=QuotaLimits(active_waves=0))
    with EmbeddedSystem(SystemOptions(timings=FAST, mgn_settings=full)) as system:
        [request] = example_requests()[:1]
        system.seed([spec_of(request)])

        # WHEN it runs
        driver = MigrationDriver(system)
        driver.send([request])
        outcome = driver.wait([request.migration_id])[request.migration_id]

        # THEN it migrates, and its PrepareSource says MGN's grouping was not updated, and why
        assert outcome.status == "SUCCEEDED", outcome.cause
        history = wiring.store().history(request.migration_id)
        [prepared] = [
            e for e in history if (e["step"], e["status"]) == ("PrepareSource", "SUCCEEDED")
        ]
        assert "MGN's waves and applications not updated" in prepared["message"]
        assert "ServiceQuotaExceededException" in prepared["message"]
