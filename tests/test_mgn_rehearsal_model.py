"""What the rehearsal's model needs from the MGN emulator, driven through the real boto3 client.

Per-server replication bandwidth, the replicating-servers quota (slots), job timing by launch
kind and OS, the launch failure rate, and the records the rehearsal report reads (quota
rejections, replication timelines). EC2 is in memory: only MGN's side matters here. The
simulated clock is frozen and advanced by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from orchestration.local.mgn import (
    EmulatorSettings,
    MgnEmulator,
    QuotaLimits,
    ReplicationTiming,
    SimulatedClock,
    SourceServer,
)
from tests.test_mgn_emulator import (
    GIB,
    START,
    InMemoryEc2,
    check_every_response_matched_the_model,
    client_for,
    describe,
)

if TYPE_CHECKING:
    from mypy_boto3_mgn.client import MgnClient

TIMING = ReplicationTiming()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(speed=0, start=START)


def serving(settings: EmulatorSettings, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    emulator = MgnEmulator(InMemoryEc2(), clock=clock, settings=settings)
    with emulator.serve():
        yield emulator
    check_every_response_matched_the_model(emulator.metrics())


@pytest.fixture
def emulator(aws_env: None, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    yield from serving(EmulatorSettings(seed=7), clock)


@pytest.fixture
def mgn(emulator: MgnEmulator) -> MgnClient:
    return client_for(emulator)


def replication(mgn: MgnClient, server: SourceServer) -> dict[str, Any]:
    info: dict[str, Any] = describe(mgn, server.source_server_id)["dataReplicationInfo"]
    return info


def sync_time(disk_gib: int, bytes_per_second: float) -> timedelta:
    return timedelta(seconds=disk_gib * GIB / bytes_per_second)


# --- Per-server bandwidth ----------------------------------------------------------------------


def test_a_server_given_a_bandwidth_syncs_at_it_instead_of_the_settings(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN two 100 GiB servers, one on the default bandwidth, one on a tenth of it
    default = emulator.add_source_server(hostname="fast01", disk_gib=[100])
    share = TIMING.bandwidth_bytes_per_second / 10
    slow = emulator.add_source_server(
        hostname="slow01", disk_gib=[100], replication_bytes_per_second=share
    )

    # WHEN the default server's initial sync is over
    emulator.clock.advance(TIMING.initiation + sync_time(100, TIMING.bandwidth_bytes_per_second))
    emulator.clock.advance(timedelta(seconds=1))

    # THEN it is CONTINUOUS while the other has copied about a tenth of its disk
    assert replication(mgn, default)["dataReplicationState"] == "CONTINUOUS"
    slow_info = replication(mgn, slow)
    assert slow_info["dataReplicationState"] == "INITIAL_SYNC"
    copied = slow_info["replicatedDisks"][0]["replicatedStorageBytes"] / (100 * GIB)
    assert copied == pytest.approx(0.1, abs=0.001)

    # WHEN its own sync time has passed THEN it is CONTINUOUS and ready for test
    emulator.clock.advance(
        sync_time(100, share) - sync_time(100, TIMING.bandwidth_bytes_per_second)
    )
    assert replication(mgn, slow)["dataReplicationState"] == "CONTINUOUS"
    assert describe(mgn, slow.source_server_id)["lifeCycle"]["state"] == "READY_FOR_TEST"


def test_a_share_below_the_change_rate_clamps_that_servers_change_rate(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN a server whose share (0.5 MB/s) is below the source's change rate (1 MB/s)
    tiny_share = TIMING.change_rate_bytes_per_second / 2
    clamped = TIMING.with_bandwidth(tiny_share)
    assert clamped.bandwidth_bytes_per_second == tiny_share
    assert clamped.change_rate_bytes_per_second == tiny_share / 2
    assert TIMING.with_bandwidth(50e6).change_rate_bytes_per_second == 1e6  # no clamp needed
    with pytest.raises(ValueError, match="positive"):
        TIMING.with_bandwidth(0)
    server = emulator.add_source_server(
        hostname="tiny01",
        disk_gib=[1],
        replication_bytes_per_second=tiny_share,
        agent_installed_at=emulator.clock.now() - timedelta(days=1),
    )

    # WHEN replication stalls for ten minutes, then resumes
    emulator.faults.stall_replication(server.source_server_id)
    emulator.clock.advance(timedelta(minutes=10))
    emulator.faults.clear_replication_stall(server.source_server_id)

    # THEN the backlog (ten minutes of writes) drains in ten minutes, as the clamp promises
    assert replication(mgn, server)["dataReplicationState"] == "BACKLOG"
    emulator.clock.advance(timedelta(minutes=10, seconds=1))
    assert replication(mgn, server)["dataReplicationState"] == "CONTINUOUS"


# --- The replicating-servers quota -------------------------------------------------------------


def test_the_replicating_servers_quota_defaults_to_mgns_150() -> None:
    assert QuotaLimits().replicating_servers == 150
    with pytest.raises(ValueError, match="replicating_servers"):
        QuotaLimits(replicating_servers=0)


@pytest.fixture
def two_slots(aws_env: None, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    yield from serving(EmulatorSettings(seed=3, quotas=QuotaLimits(replicating_servers=2)), clock)


def add(emulator: MgnEmulator, hostname: str, **extra: Any) -> SourceServer:
    return emulator.add_source_server(hostname=hostname, disk_gib=[10], **extra)


def assert_waiting_for_a_slot(info: dict[str, Any]) -> None:
    assert info["dataReplicationState"] == "INITIATING"
    steps = info["dataReplicationInitiation"]["steps"]
    assert steps[0] == {"name": "WAIT", "status": "IN_PROGRESS"}
    assert {step["status"] for step in steps[1:]} == {"NOT_STARTED"}
    assert "startDateTime" not in info["dataReplicationInitiation"]
    assert "etaDateTime" not in info
    assert "lagDuration" not in info
    assert {disk["replicatedStorageBytes"] for disk in info["replicatedDisks"]} == {0}


def test_a_server_added_while_every_slot_is_taken_waits_then_starts_when_one_frees(
    two_slots: MgnEmulator,
) -> None:
    emulator, mgn = two_slots, client_for(two_slots)
    # GIVEN two replicating servers fill both slots, and two more are added after them
    first, second = add(emulator, "app01"), add(emulator, "app02")
    third, fourth = add(emulator, "app03"), add(emulator, "app04")

    # WHEN a day passes
    emulator.clock.advance(timedelta(days=1))

    # THEN the first two replicated; the others still wait, INITIATING at WAIT, NOT_READY
    assert replication(mgn, first)["dataReplicationState"] == "CONTINUOUS"
    assert replication(mgn, second)["dataReplicationState"] == "CONTINUOUS"
    for waiting in (third, fourth):
        assert_waiting_for_a_slot(replication(mgn, waiting))
        assert describe(mgn, waiting.source_server_id)["lifeCycle"]["state"] == "NOT_READY"
        assert "firstByteDateTime" not in describe(mgn, waiting.source_server_id)["lifeCycle"]

    # WHEN the second server is disconnected from the service
    freed_at = emulator.clock.now()
    mgn.disconnect_from_service(sourceServerID=second.source_server_id)

    # THEN the first server waiting (added first) starts replicating at that instant
    started = replication(mgn, third)
    assert started["dataReplicationInitiation"]["startDateTime"] == (
        freed_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    )
    assert started["dataReplicationState"] == "INITIATING"
    assert_waiting_for_a_slot(replication(mgn, fourth))
    emulator.clock.advance(TIMING.initiation + sync_time(10, TIMING.bandwidth_bytes_per_second))
    assert replication(mgn, third)["dataReplicationState"] == "CONTINUOUS"
    assert describe(mgn, third.source_server_id)["lifeCycle"]["state"] == "READY_FOR_TEST"
    assert_waiting_for_a_slot(replication(mgn, fourth))


def test_a_finalized_cutover_frees_its_slot_for_the_next_server(two_slots: MgnEmulator) -> None:
    emulator, mgn = two_slots, client_for(two_slots)
    ago = emulator.clock.now() - timedelta(days=1)
    migrated = add(emulator, "app01", agent_installed_at=ago)
    add(emulator, "app02", agent_installed_at=ago)
    waiting = add(emulator, "app03", agent_installed_at=ago)
    server_id = migrated.source_server_id
    assert_waiting_for_a_slot(replication(mgn, waiting))

    # WHEN the first server is tested, cut over and finalized
    mgn.start_test(sourceServerIDs=[server_id])
    emulator.clock.advance(timedelta(hours=1))
    mgn.change_server_life_cycle_state(
        sourceServerID=server_id, lifeCycle={"state": "READY_FOR_CUTOVER"}
    )
    mgn.start_cutover(sourceServerIDs=[server_id])
    emulator.clock.advance(timedelta(hours=1))
    assert_waiting_for_a_slot(replication(mgn, waiting))  # cutting over still replicates
    mgn.finalize_cutover(sourceServerID=server_id)

    # THEN the waiting server replicates from the instant of the finalize
    assert "startDateTime" in replication(mgn, waiting)["dataReplicationInitiation"]
    emulator.clock.advance(TIMING.initiation + sync_time(10, TIMING.bandwidth_bytes_per_second))
    assert replication(mgn, waiting)["dataReplicationState"] == "CONTINUOUS"


def test_archived_servers_hold_no_slot_and_a_waiting_server_can_leave_the_queue(
    two_slots: MgnEmulator,
) -> None:
    emulator, mgn = two_slots, client_for(two_slots)
    # GIVEN an archived seed (no slot), two replicating servers and two waiting
    add(emulator, "old01", archived=True)
    add(emulator, "app01")
    holder = add(emulator, "app02")
    leaving, next_in_line = add(emulator, "app03"), add(emulator, "app04")
    assert_waiting_for_a_slot(replication(mgn, leaving))

    # WHEN the first waiting server is disconnected, then a slot frees
    mgn.disconnect_from_service(sourceServerID=leaving.source_server_id)
    mgn.disconnect_from_service(sourceServerID=holder.source_server_id)

    # THEN the slot goes to the server after it; the one that left never replicates
    assert "startDateTime" in replication(mgn, next_in_line)["dataReplicationInitiation"]
    assert replication(mgn, leaving)["dataReplicationState"] == "DISCONNECTED"
