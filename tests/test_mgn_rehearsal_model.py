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
    CONCURRENT_JOBS_QUOTA,
    EmulatorSettings,
    JobTiming,
    LaunchType,
    MgnEmulator,
    QuotaLimits,
    QuotaRejection,
    ReplicationTimeline,
    ReplicationTiming,
    ResourceNotFoundError,
    SimulatedClock,
    SourceServer,
)
from orchestration.local.mgn.faults import launch_fails_by_chance
from orchestration.local.mgn.wire_format import format_timestamp
from tests.test_mgn_emulator import (
    GIB,
    START,
    InMemoryEc2,
    check_every_response_matched_the_model,
    client_for,
    describe,
    job,
)

if TYPE_CHECKING:
    from mypy_boto3_mgn.client import MgnClient

TIMING = ReplicationTiming()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(speed=0, start=START)


def serving(
    settings: EmulatorSettings, clock: SimulatedClock, ec2: InMemoryEc2 | None = None
) -> Iterator[MgnEmulator]:
    emulator = MgnEmulator(ec2 or InMemoryEc2(), clock=clock, settings=settings)
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


# --- Job timing by launch kind and OS family ---------------------------------------------------

WINDOWS_TEST = JobTiming(pending=timedelta(minutes=2), conversion=timedelta(minutes=20))
LINUX_CUTOVER = JobTiming(boot=timedelta(minutes=10))


def test_launch_timings_are_looked_up_by_kind_and_os_and_fall_back_to_jobs() -> None:
    settings = EmulatorSettings(
        launch_timings={("test", "windows"): WINDOWS_TEST, ("cutover", "linux"): LINUX_CUTOVER}
    )
    assert settings.launch_timing("test", "windows") == WINDOWS_TEST
    assert settings.launch_timing("cutover", "linux") == LINUX_CUTOVER
    assert settings.launch_timing("test", "linux") == settings.jobs
    with pytest.raises(ValueError, match="launch_timings"):
        EmulatorSettings(launch_timings={("terminate", "linux"): JobTiming()})
    with pytest.raises(ValueError, match="launch_failure_rate"):
        EmulatorSettings(launch_failure_rate=1.5)


@pytest.fixture
def timed(aws_env: None, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    settings = EmulatorSettings(
        seed=5,
        launch_timings={("test", "windows"): WINDOWS_TEST, ("cutover", "linux"): LINUX_CUTOVER},
    )
    yield from serving(settings, clock)


def statuses(job: dict[str, Any]) -> dict[str, str]:
    return {p["sourceServerID"]: p["launchStatus"] for p in job["participatingServers"]}


def test_each_server_in_a_job_moves_on_its_own_timing_and_the_job_ends_with_the_last(
    timed: MgnEmulator,
) -> None:
    emulator, mgn = timed, client_for(timed)
    ago = emulator.clock.now() - timedelta(days=1)
    linux = emulator.add_source_server(hostname="web01", agent_installed_at=ago)
    windows = emulator.add_source_server(
        hostname="win01", os_family="windows", agent_installed_at=ago
    )
    created = emulator.clock.now()

    # WHEN both are test-launched in one job
    job_id = mgn.start_test(sourceServerIDs=[linux.source_server_id, windows.source_server_id])[
        "job"
    ]["jobID"]

    # THEN after a minute the Linux server is in progress, the Windows one still pending
    emulator.clock.advance(timedelta(minutes=1))
    early = job(mgn, job_id)
    assert early["status"] == "STARTED"
    assert statuses(early) == {
        linux.source_server_id: "IN_PROGRESS",
        windows.source_server_id: "PENDING",
    }
    # AND when the default launch is over, Linux is LAUNCHED and Windows still converting
    emulator.clock.advance(JobTiming().launch_total - timedelta(minutes=1))
    middle = job(mgn, job_id)
    assert middle["status"] == "STARTED"
    assert statuses(middle) == {
        linux.source_server_id: "LAUNCHED",
        windows.source_server_id: "IN_PROGRESS",
    }
    assert describe(mgn, linux.source_server_id)["launchedInstance"]["firstBoot"] == "SUCCEEDED"
    # AND the job completes exactly when the Windows launch does
    emulator.clock.advance(WINDOWS_TEST.launch_total - JobTiming().launch_total)
    done = job(mgn, job_id)
    assert done["status"] == "COMPLETED"
    assert set(statuses(done).values()) == {"LAUNCHED"}
    assert done["endDateTime"] == format_timestamp(created + WINDOWS_TEST.launch_total)
    # AND each server's log events fall at its own instants, between JOB_START and JOB_END
    log = mgn.describe_job_log_items(jobID=job_id)["items"]
    assert [item["event"] for item in (log[0], log[-1])] == ["JOB_START", "JOB_END"]
    launched_at = {
        item["eventData"]["sourceServerID"]: item["logDateTime"]
        for item in log
        if item["event"] == "LAUNCH_START"
    }
    default = JobTiming()
    assert launched_at == {
        linux.source_server_id: format_timestamp(created + default.launch_total - default.boot),
        windows.source_server_id: format_timestamp(
            created + WINDOWS_TEST.launch_total - WINDOWS_TEST.boot
        ),
    }


def test_a_cutover_launch_uses_the_cutover_timing(timed: MgnEmulator) -> None:
    emulator, mgn = timed, client_for(timed)
    server = emulator.add_source_server(
        hostname="web01", agent_installed_at=emulator.clock.now() - timedelta(days=1)
    )
    server_id = server.source_server_id
    mgn.start_test(sourceServerIDs=[server_id])
    emulator.clock.advance(JobTiming().launch_total)
    mgn.change_server_life_cycle_state(
        sourceServerID=server_id, lifeCycle={"state": "READY_FOR_CUTOVER"}
    )
    job_id = mgn.start_cutover(sourceServerIDs=[server_id])["job"]["jobID"]

    emulator.clock.advance(LINUX_CUTOVER.launch_total - timedelta(seconds=1))
    assert job(mgn, job_id)["status"] == "STARTED"
    emulator.clock.advance(timedelta(seconds=1))
    assert job(mgn, job_id)["status"] == "COMPLETED"


# --- Launch failure rate -----------------------------------------------------------------------

SERVER_IDS = [f"s-{index:017x}" for index in range(1, 21)]


def launch_all(emulator: MgnEmulator) -> dict[str, str]:
    """Seed 20 ready servers with fixed IDs, test-launch them in one job; launch statuses."""
    mgn = client_for(emulator)
    ago = emulator.clock.now() - timedelta(days=1)
    for server_id in SERVER_IDS:
        emulator.add_source_server(
            hostname=f"vm-{server_id}", source_server_id=server_id, agent_installed_at=ago
        )
    job_id = mgn.start_test(sourceServerIDs=SERVER_IDS)["job"]["jobID"]
    emulator.clock.advance(JobTiming().launch_total)
    return statuses(job(mgn, job_id))


def with_failure_rate(
    rate: float, seed: int | None = 7, ec2: InMemoryEc2 | None = None
) -> Iterator[MgnEmulator]:
    clock = SimulatedClock(speed=0, start=START)
    return serving(EmulatorSettings(seed=seed, launch_failure_rate=rate), clock, ec2)


def test_a_failure_rate_fails_that_share_of_launches_the_same_way_on_every_run(
    aws_env: None,
) -> None:
    runs = []
    for _ in range(2):
        ec2 = InMemoryEc2()
        for emulator in with_failure_rate(0.5, ec2=ec2):
            outcome = launch_all(emulator)
            mgn = client_for(emulator)
            failed = sorted(sid for sid, status in outcome.items() if status == "FAILED")
            launched = [sid for sid, status in outcome.items() if status == "LAUNCHED"]
            # THEN failed launches left no instance and their servers can be tested again
            assert len(ec2.running) == len(launched)
            for server_id in failed:
                server = describe(mgn, server_id)
                assert "launchedInstance" not in server
                assert server["lifeCycle"]["state"] == "READY_FOR_TEST"
            runs.append(failed)
            # AND retrying them is each server's second attempt: a draw of its own
            retry_id = mgn.start_test(sourceServerIDs=failed)["job"]["jobID"]
            emulator.clock.advance(JobTiming().launch_total)
            retry = statuses(job(mgn, retry_id))
            assert sorted(sid for sid, status in retry.items() if status == "FAILED") == [
                sid for sid in failed if fails_by_chance(sid, attempt=2)
            ]
    # THEN about half failed, and the same servers failed in both runs
    assert 4 <= len(runs[0]) <= 16
    assert runs[0] == runs[1]
    assert runs[0] == sorted(sid for sid in SERVER_IDS if fails_by_chance(sid, attempt=1))


def fails_by_chance(server_id: str, *, attempt: int, seed: int = 7) -> bool:
    return launch_fails_by_chance(
        rate=0.5,
        seed=seed,
        source_server_id=server_id,
        launch_type=LaunchType.TEST,
        attempt=attempt,
    )


def test_failure_rates_of_zero_and_one_and_a_retry_draws_again(aws_env: None) -> None:
    for emulator in with_failure_rate(0.0):
        assert set(launch_all(emulator).values()) == {"LAUNCHED"}
    for emulator in with_failure_rate(1.0, seed=None):
        outcome = launch_all(emulator)
        assert set(outcome.values()) == {"FAILED"}
        # A failed log says why, as a fault-injected failure does
        mgn = client_for(emulator)
        job_id = mgn.describe_jobs()["items"][0]["jobID"]
        failure = next(
            item
            for item in mgn.describe_job_log_items(jobID=job_id)["items"]
            if item["event"] == "LAUNCH_FAILED"
        )
        assert "launch_failure_rate" in failure["eventData"]["rawError"]

    # A retry (the server's second launch of the kind) is a draw of its own
    assert any(
        fails_by_chance(sid, attempt=1, seed=0) != fails_by_chance(sid, attempt=2, seed=0)
        for sid in SERVER_IDS
    )


# --- Records for the report ----------------------------------------------------------------------


@pytest.fixture
def one_job_at_a_time(aws_env: None, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    yield from serving(EmulatorSettings(seed=9, quotas=QuotaLimits(concurrent_jobs=1)), clock)


def test_every_quota_rejection_of_a_job_request_is_recorded(one_job_at_a_time: MgnEmulator) -> None:
    emulator, mgn = one_job_at_a_time, client_for(one_job_at_a_time)
    ago = emulator.clock.now() - timedelta(days=1)
    busy, first, second = (
        emulator.add_source_server(hostname=name, agent_installed_at=ago)
        for name in ("web01", "web02", "web03")
    )
    mgn.start_test(sourceServerIDs=[busy.source_server_id])
    emulator.clock.advance(timedelta(minutes=1))
    refused_at = emulator.clock.now()
    both = [first.source_server_id, second.source_server_id]

    # WHEN a test and a terminate are refused by the one-job quota
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
        mgn.start_test(sourceServerIDs=both)
    emulator.clock.advance(timedelta(seconds=5))
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
        mgn.terminate_target_instances(sourceServerIDs=[first.source_server_id])

    # THEN both are recorded with the request's servers, the operation, the quota and the instant
    assert emulator.quota_rejections() == [
        QuotaRejection(
            account_id="123456789012",
            region="us-east-1",
            operation="StartTest",
            source_server_ids=tuple(both),
            quota_code=CONCURRENT_JOBS_QUOTA,
            at=refused_at,
        ),
        QuotaRejection(
            account_id="123456789012",
            region="us-east-1",
            operation="TerminateTargetInstances",
            source_server_ids=(first.source_server_id,),
            quota_code=CONCURRENT_JOBS_QUOTA,
            at=refused_at + timedelta(seconds=5),
        ),
    ]
    assert emulator.quota_rejections()[0].lane_label == "123456789012/us-east-1"
    # AND a conflict is not a quota rejection
    with pytest.raises(mgn.exceptions.ConflictException):
        mgn.start_test(sourceServerIDs=[busy.source_server_id])
    assert len(emulator.quota_rejections()) == 2


def test_a_replication_timeline_says_when_the_agent_came_replication_started_and_was_ready(
    two_slots: MgnEmulator,
) -> None:
    emulator, mgn = two_slots, client_for(two_slots)
    installed = emulator.clock.now()
    first, second, waiting = add(emulator, "app01"), add(emulator, "app02"), add(emulator, "app03")
    ready_after = TIMING.initiation + sync_time(10, TIMING.bandwidth_bytes_per_second)

    # THEN a server with a slot started at install and is ready after initiation and sync
    assert emulator.replication_timeline(first.source_server_id) == ReplicationTimeline(
        installed, installed, installed + ready_after
    )
    # AND a waiting server has neither started nor a ready instant yet
    assert emulator.replication_timeline(waiting.source_server_id) == ReplicationTimeline(
        installed, None, None
    )

    # WHEN the second server stalls for five minutes during its sync
    emulator.clock.advance(timedelta(minutes=11))
    emulator.faults.stall_replication(second.source_server_id)
    assert emulator.replication_timeline(second.source_server_id).ready_at is None
    emulator.clock.advance(timedelta(minutes=5))
    emulator.faults.clear_replication_stall(second.source_server_id)
    # THEN its ready instant moves by the stall
    assert emulator.replication_timeline(second.source_server_id).ready_at == (
        installed + ready_after + timedelta(minutes=5)
    )

    # WHEN the first server is disconnected a day later THEN the waiting one starts then
    emulator.clock.advance(timedelta(days=1))
    freed_at = emulator.clock.now()
    mgn.disconnect_from_service(sourceServerID=first.source_server_id)
    assert emulator.replication_timeline(waiting.source_server_id) == ReplicationTimeline(
        installed, freed_at, freed_at + ready_after
    )
    # AND disconnecting it before it was ready leaves it never ready
    mgn.disconnect_from_service(sourceServerID=waiting.source_server_id)
    assert emulator.replication_timeline(waiting.source_server_id).ready_at is None
    with pytest.raises(ResourceNotFoundError):
        emulator.replication_timeline("s-00000000000000000")
