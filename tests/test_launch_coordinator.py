"""One lane's launch coordinator against the MGN emulator, through the real boto3 client.

The emulator's clock is frozen and advanced by hand; EC2 is an in-memory port (hundreds of
servers, and only MGN's side matters here). The ledger is the in-memory fake, and the
DynamoDB adapter on moto where a test says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from orchestration.adapters import mgn as mgn_adapter
from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.adapters.mgn import Job, MgnAdapter
from orchestration.adapters.state_store import MigrationRecord
from orchestration.launch_records import (
    INTENT_TAG,
    Instance,
    LaunchKind,
    LaunchOutcome,
    LaunchRequest,
)
from orchestration.local.mgn import (
    EmulatorSettings,
    JobSummary,
    JobTiming,
    MgnEmulator,
    OsFamily,
    QuotaLimits,
    SimulatedClock,
)
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames
from orchestration.pipeline.launch_batches import LaneQuotas
from orchestration.pipeline.launch_coordinator import LaunchCoordinator
from orchestration.pipeline.ports import LaunchLedger, LaunchMgn
from tests.support.fakes import FakeLaunchLedger, migration_record

if TYPE_CHECKING:
    from mypy_boto3_mgn.client import MgnClient

START = datetime(2026, 12, 12, 20, 0, tzinfo=UTC)
LINGER = timedelta(minutes=2)
AFTER_LAUNCH = JobTiming().launch_total + timedelta(seconds=1)
AFTER_TERMINATE = JobTiming().terminate_total + timedelta(seconds=1)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
LANE = "123456789012/us-east-1"


class InMemoryEc2:
    """An ``Ec2LaunchPort`` without EC2: thousands of servers, no moto launch templates."""

    def __init__(self) -> None:
        self._count = 0

    def create_launch_template(self, name: str, instance_type: str, tags: Mapping[str, str]) -> str:
        self._count += 1
        return f"lt-{self._count:017x}"

    def run_instance(
        self,
        launch_template_id: str,
        source_server_id: str,
        tags: Mapping[str, str],
        instance_type_override: str | None = None,
    ) -> str:
        self._count += 1
        return f"i-{self._count:017x}"

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        return None


@dataclass
class Lane:
    """One emulated lane: MGN, the coordinator's ledger, and a coordinator over both."""

    emulator: MgnEmulator
    client: MgnClient
    ledger: LaunchLedger
    quotas: LaneQuotas
    server_ids: list[str]

    def coordinator(
        self,
        mgn: LaunchMgn | None = None,
        *,
        held: Mapping[str, str] | None = None,
        records: Callable[[str], Sequence[MigrationRecord]] | None = None,
        told: list[tuple[str, tuple[str, ...]]] | None = None,
        told_held: list[tuple[str, str]] | None = None,
        instances: Callable[[list[str]], Mapping[str, Instance]] | None = None,
    ) -> LaunchCoordinator:
        """A coordinator as a fresh process would build it (a new one after a "crash");
        ``held``: the waves an operator paused (wave -> the pause's mark); ``records``: the
        waves' migrations; ``told`` collects the cutovers reported waiting for their
        dependencies (server, apps), ``told_held`` the requests reported held (server,
        mark); ``instances``: the lane's EC2 reads of launched instances."""
        return LaunchCoordinator(
            mgn=mgn or MgnAdapter(self.client),
            ledger=self.ledger,
            quotas=self.quotas,
            linger=LINGER,
            wave_held=lambda wave: (held or {}).get(wave, ""),
            on_held=lambda launches, mark: (told_held if told_held is not None else []).extend(
                (launch.request.source_server_id, mark) for launch in launches
            ),
            wave_migrations=records,
            on_dependencies=lambda waiting: (told if told is not None else []).extend(
                (launch.request.source_server_id, apps) for launch, apps in waiting
            ),
            instances=instances,
        )

    @property
    def now(self) -> datetime:
        return self.emulator.clock.now()

    def request_all(
        self,
        kind: LaunchKind,
        server_ids: Sequence[str] | None = None,
        *,
        window: tuple[datetime, datetime] | None = None,
        test_instances: Mapping[str, str] | None = None,
        applications: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
        join: Mapping[str, str] | None = None,
    ) -> None:
        """``applications``: server -> (its application, the applications it goes after);
        ``join``: server -> the MGN application its preparation left it to join."""
        coordinator = self.coordinator()
        for index, server_id in enumerate(server_ids or self.server_ids):
            coordinator.request(
                LaunchRequest(
                    migration_id=f"mig-{server_id}",
                    source_server_id=server_id,
                    kind=kind,
                    wave="wave-1",
                    # lingered (tests start at once), and first come in the lane's order
                    requested_at=self.now - LINGER + timedelta(microseconds=index),
                    window_start=window[0] if window else None,
                    window_end=window[1] if window else None,
                    test_instance_id=(test_instances or {}).get(server_id),
                    application=(applications or {}).get(server_id, ("", ()))[0],
                    cutover_after=(applications or {}).get(server_id, ("", ()))[1],
                    mgn_application_id=(join or {}).get(server_id, ""),
                ),
                f"token-{kind}-{server_id}",
            )

    def calls(self) -> dict[str, int]:
        return dict(self.emulator.metrics().calls_by_operation)

    def jobs(self, initiated_by: str) -> list[JobSummary]:
        return [job for job in self.emulator.jobs() if job.initiated_by == initiated_by]

    def launched_instances(self) -> dict[str, str]:
        """Source server -> the instance MGN reports launched for it (test or cutover)."""
        servers = self.client.describe_source_servers(filters={})["items"]
        return {
            server["sourceServerID"]: server["launchedInstance"]["ec2InstanceID"]
            for server in servers
            if server.get("launchedInstance", {}).get("ec2InstanceID")
        }

    def make_ready_for_cutover(self) -> None:
        """Test-launch every server (straight through MGN) and mark it ready for cutover."""
        for start in range(0, len(self.server_ids), 200):
            self.client.start_test(sourceServerIDs=self.server_ids[start : start + 200])
        self.emulator.clock.advance(AFTER_LAUNCH)
        for server_id in self.server_ids:
            self.client.change_server_life_cycle_state(
                sourceServerID=server_id, lifeCycle={"state": "READY_FOR_CUTOVER"}
            )
        self.emulator.reset_metrics()


LaneFactory = Callable[..., Lane]


@pytest.fixture
def lanes(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[LaneFactory]:
    """Builds lanes; every emulator stops at the end of the test."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_MGN", raising=False)
    emulators: list[MgnEmulator] = []

    def build(
        servers: int,
        *,
        quotas: LaneQuotas | None = None,
        ledger: LaunchLedger | None = None,
        launch_timings: Mapping[tuple[str, str], JobTiming] | None = None,
        os_family: Callable[[int], OsFamily] = lambda index: OsFamily.LINUX,
        replicating: int | None = None,
    ) -> Lane:
        quotas = quotas or LaneQuotas()
        emulator = MgnEmulator(
            InMemoryEc2(),
            clock=SimulatedClock(speed=0, start=START),
            settings=EmulatorSettings(
                seed=len(emulators) + 11,
                quotas=QuotaLimits(
                    concurrent_jobs=quotas.concurrent_jobs,
                    servers_per_job=quotas.servers_per_job,
                    servers_in_active_jobs=quotas.servers_in_active_jobs,
                    replicating_servers=replicating or max(servers, 1),
                    non_archived_servers=max(servers, 4000),
                ),
                launch_timings=dict(launch_timings or {}),
                # 4,000 participating servers per DescribeJobs: the model check would
                # dominate the suite's time and tests nothing about the coordinator.
                check_responses=servers <= 500,
            ),
        )
        server_ids = [
            emulator.add_source_server(
                hostname=f"vm{index:05d}",
                os_family=os_family(index),
                agent_installed_at=START - timedelta(days=1),
            ).source_server_id
            for index in range(servers)
        ]
        emulator.start()
        emulators.append(emulator)
        client = boto3.session.Session().client(
            "mgn", endpoint_url=emulator.endpoint_url, region_name="us-east-1", config=NO_RETRIES
        )
        return Lane(emulator, client, ledger or FakeLaunchLedger(), quotas, server_ids)

    try:
        yield build
    finally:
        for emulator in emulators:
            emulator.stop()


def servers_in(job: JobSummary) -> set[str]:
    return {participant.source_server_id for participant in job.participants}


def by_status(outcomes: Sequence[LaunchOutcome]) -> Counter[str]:
    return Counter(outcome.launch_status for outcome in outcomes)


# --- the figures ------------------------------------------------------------------


def test_a_450_server_cutover_starts_three_jobs_at_once_when_its_window_opens(
    lanes: LaneFactory,
) -> None:
    lane = lanes(450, quotas=LaneQuotas(servers_in_active_jobs=1000))
    lane.make_ready_for_cutover()
    opens = lane.now + timedelta(hours=1)
    lane.request_all("cutover", window=(opens, opens + timedelta(hours=4)))
    coordinator = lane.coordinator()

    # before the window: nothing starts, and no MGN call is made to find that out
    assert coordinator.run_once(lane.now) == []
    assert lane.calls() == {}

    # WHEN the window opens THEN three jobs start at once: 200, 200, 50
    lane.emulator.clock.advance(timedelta(hours=1))
    assert coordinator.run_once(lane.now) == []
    cutovers = lane.jobs("START_CUTOVER")
    assert sorted(len(job.participants) for job in cutovers) == [50, 200, 200]
    assert {job.created_at for job in cutovers} == {lane.now}
    assert lane.calls() == {"StartCutover": 3}

    # one poll while they run: ONE DescribeJobs for 450 servers, nothing to answer yet
    lane.emulator.reset_metrics()
    assert coordinator.run_once(lane.now) == []
    assert lane.calls() == {"DescribeJobs": 1}

    # WHEN the jobs end THEN each server's execution gets its own outcome, in one more call
    lane.emulator.clock.advance(AFTER_LAUNCH)
    lane.emulator.reset_metrics()
    outcomes = coordinator.run_once(lane.now)
    assert lane.calls() == {"DescribeJobs": 1}
    assert by_status(outcomes) == {"LAUNCHED": 450}
    assert {o.source_server_id for o in outcomes} == set(lane.server_ids)
    assert all(o.task_token == f"token-cutover-{o.source_server_id}" for o in outcomes)
    assert all(o.launched_ec2_instance_id for o in outcomes)
    assert {o.job_id for o in outcomes} == {job.job_id for job in cutovers}
    # and the ledger has nothing open left: the next poll makes no MGN call at all
    lane.emulator.reset_metrics()
    assert coordinator.run_once(lane.now) == []
    assert lane.calls() == {}


def test_with_25_jobs_worth_of_servers_the_21st_job_waits_until_a_job_ends(
    lanes: LaneFactory,
) -> None:
    # The first 200 servers are Linux, whose test launch is quicker: their job ends first.
    quick = JobTiming(boot=timedelta(minutes=1))
    lane = lanes(
        25 * 200,
        quotas=LaneQuotas(concurrent_jobs=20, servers_in_active_jobs=10_000),
        launch_timings={("test", "linux"): quick},
        os_family=lambda index: OsFamily.LINUX if index < 200 else OsFamily.WINDOWS,
    )
    lane.request_all("test")
    coordinator = lane.coordinator()

    assert coordinator.run_once(lane.now) == []
    assert len(lane.jobs("START_TEST")) == 20
    assert lane.emulator.metrics().quota_errors == 0  # planned within the quota, not probed

    # while all 20 run, the 21st waits (and MGN is not asked to start it)
    lane.emulator.clock.advance(quick.launch_total - timedelta(seconds=5))
    lane.emulator.reset_metrics()
    assert coordinator.run_once(lane.now) == []
    assert lane.calls() == {"DescribeJobs": 1}

    # WHEN the first job ends THEN its 200 servers are answered and the 21st job starts
    lane.emulator.clock.advance(timedelta(seconds=10))
    outcomes = coordinator.run_once(lane.now)
    assert by_status(outcomes) == {"LAUNCHED": 200}
    assert {o.source_server_id for o in outcomes} == set(lane.server_ids[:200])
    started = lane.jobs("START_TEST")
    assert len(started) == 21
    assert servers_in(started[-1]) == set(lane.server_ids[4000:4200])  # FIFO
    assert lane.emulator.metrics().quota_errors == 0


def test_one_failing_server_in_a_job_of_200_fails_alone(lanes: LaneFactory) -> None:
    lane = lanes(200)
    failing = lane.server_ids[57]
    lane.emulator.faults.fail_next_launch(failing)
    lane.request_all("test")
    coordinator = lane.coordinator()
    coordinator.run_once(lane.now)
    (job,) = lane.jobs("START_TEST")

    lane.emulator.clock.advance(AFTER_LAUNCH)
    outcomes = coordinator.run_once(lane.now)

    assert by_status(outcomes) == {"LAUNCHED": 199, "FAILED": 1}
    (failed,) = [o for o in outcomes if o.launch_status == "FAILED"]
    assert failed.source_server_id == failing
    assert failed.migration_id == f"mig-{failing}"
    assert failed.launched_ec2_instance_id is None
    assert job.job_id in failed.detail
    assert {o.job_id for o in outcomes} == {job.job_id}


class Ec2Reads:
    """The lane's EC2 reads of launched instances: each call's IDs; every instance running
    (``failing``: the reads fail)."""

    def __init__(self, *, failing: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.failing = failing

    def __call__(self, instance_ids: list[str]) -> dict[str, Instance]:
        self.calls.append(list(instance_ids))
        if self.failing:
            raise ConnectionError("EC2 did not answer")
        return {
            instance_id: Instance(instance_id, "running", "10.0.7.7", "t3.large", "ok", "ok")
            for instance_id in instance_ids
        }


def test_the_instances_a_job_launched_are_read_at_once_and_go_with_their_own_outcomes(
    lanes: LaneFactory,
) -> None:
    lane = lanes(200)
    failing = lane.server_ids[3]
    lane.emulator.faults.fail_next_launch(failing)
    lane.request_all("test")
    reads = Ec2Reads()
    coordinator = lane.coordinator(instances=reads)
    coordinator.run_once(lane.now)
    assert reads.calls == []  # nothing launched yet

    lane.emulator.clock.advance(AFTER_LAUNCH)
    outcomes = coordinator.run_once(lane.now)

    launched = {o.launched_ec2_instance_id for o in outcomes if o.launch_status == "LAUNCHED"}
    assert len(launched) == 199
    assert [set(call) for call in reads.calls] == [launched]  # one read for the whole job
    for outcome in outcomes:
        if outcome.launch_status == "LAUNCHED":
            assert outcome.instance is not None
            assert outcome.instance.instance_id == outcome.launched_ec2_instance_id
        else:
            assert (outcome.source_server_id, outcome.instance) == (failing, None)
    assert {o.instance for o in lane.ledger.undelivered()} == {o.instance for o in outcomes}


def test_launches_are_answered_without_their_instances_when_ec2_cannot_be_read(
    lanes: LaneFactory,
) -> None:
    lane = lanes(5)
    lane.request_all("test")
    reads = Ec2Reads(failing=True)
    coordinator = lane.coordinator(instances=reads)
    coordinator.run_once(lane.now)
    lane.emulator.clock.advance(AFTER_LAUNCH)

    outcomes = coordinator.run_once(lane.now)

    assert len(reads.calls) == 1
    assert by_status(outcomes) == {"LAUNCHED": 5}
    assert {o.instance for o in outcomes} == {None}  # each verify step looks for itself


def test_a_batch_is_answered_when_its_job_completes_not_when_each_server_launched(
    lanes: LaneFactory,
) -> None:
    # A Linux boot ends long before a Windows conversion, but MGN holds every server of the
    # job until the job completes: answered earlier, an execution's next MGN call (its
    # lifecycle change, FinalizeCutover) would only be refused as a conflict and retried.
    quick = JobTiming(boot=timedelta(minutes=1))
    slow = JobTiming(conversion=timedelta(minutes=30))
    lane = lanes(
        3,
        launch_timings={("test", "linux"): quick, ("test", "windows"): slow},
        os_family=lambda index: OsFamily.WINDOWS if index == 1 else OsFamily.LINUX,
    )
    linux, windows, failing = lane.server_ids
    lane.emulator.faults.fail_next_launch(failing)
    lane.request_all("test")
    coordinator = lane.coordinator()
    assert coordinator.run_once(lane.now) == []
    (job,) = lane.jobs("START_TEST")

    # the Linux servers' launches have ended (one launched, one failed), the job still runs
    lane.emulator.clock.advance(quick.launch_total + timedelta(minutes=1))
    (described,) = lane.client.describe_jobs(filters={"jobIDs": [job.job_id]})["items"]
    statuses = {s["sourceServerID"]: s["launchStatus"] for s in described["participatingServers"]}
    assert described["status"] == "STARTED"
    assert statuses[linux] == "LAUNCHED"
    assert statuses[failing] == "FAILED"
    assert statuses[windows] != "LAUNCHED"
    # THEN nobody is answered yet, the failure neither
    assert coordinator.run_once(lane.now) == []
    assert lane.ledger.undelivered() == []

    # WHEN the job completes THEN each server gets its own outcome, in the same run
    lane.emulator.clock.advance(slow.launch_total)
    outcomes = coordinator.run_once(lane.now)
    assert {o.source_server_id: o.launch_status for o in outcomes} == {
        linux: "LAUNCHED",
        windows: "LAUNCHED",
        failing: "FAILED",
    }
    assert all(o.task_token == f"token-test-{o.source_server_id}" for o in outcomes)
    assert coordinator.run_once(lane.now) == []  # answered once


# --- retiring test instances -------------------------------------------------------------


# On moto a transaction costs ~15 ms: the DynamoDB ledger's run is kept to 40 servers.
@pytest.mark.parametrize(("ledger_kind", "servers"), [("fake", 200), ("dynamodb", 40)])
def test_test_instances_are_retired_in_one_terminate_job_then_the_cutover_starts(
    lanes: LaneFactory, ledger_kind: str, servers: int
) -> None:
    with mock_aws():
        ledger = FakeLaunchLedger() if ledger_kind == "fake" else dynamodb_ledger()
        lane = lanes(servers, ledger=ledger)
        lane.make_ready_for_cutover()
        test_instances = lane.launched_instances()
        assert len(test_instances) == servers
        lane.request_all("cutover", test_instances=test_instances)
        coordinator = lane.coordinator()
        lane.emulator.reset_metrics()

        # THEN one TERMINATE job retires every test instance, and no cutover starts yet
        assert coordinator.run_once(lane.now) == []
        assert lane.calls() == {"TerminateTargetInstances": 1}
        (retire,) = lane.jobs("TERMINATE")
        assert servers_in(retire) == set(lane.server_ids)
        (described,) = lane.client.describe_jobs(filters={"jobIDs": [retire.job_id]})["items"]
        (intent,) = ledger.snapshot().intents
        assert (intent.kind, intent.job_id) == ("retire", retire.job_id)
        assert described["tags"] == {INTENT_TAG: intent.intent_id}

        # while it runs: one DescribeJobs a poll, nothing else (the servers are in a job)
        lane.emulator.reset_metrics()
        assert coordinator.run_once(lane.now) == []
        assert lane.calls() == {"DescribeJobs": 1}

        # WHEN it completes THEN the test instances are gone, the cutover starts in the same
        # run, and nobody was answered for the retirement
        lane.emulator.clock.advance(AFTER_TERMINATE)
        lane.emulator.reset_metrics()
        assert coordinator.run_once(lane.now) == []
        assert lane.calls() == {"DescribeJobs": 1, "StartCutover": 1}
        assert not set(lane.launched_instances().values()) & set(test_instances.values())
        (cutover,) = lane.jobs("START_CUTOVER")
        assert servers_in(cutover) == set(lane.server_ids)
        assert ledger.undelivered() == []

        # AND each execution gets its own cutover instance
        lane.emulator.clock.advance(AFTER_LAUNCH)
        outcomes = coordinator.run_once(lane.now)
        assert by_status(outcomes) == {"LAUNCHED": servers}
        assert {o.job_id for o in outcomes} == {cutover.job_id}
        assert not {o.launched_ec2_instance_id for o in outcomes} & set(test_instances.values())
        assert len(lane.jobs("TERMINATE")) == 1
        assert ledger.snapshot() == replace(ledger.snapshot(), waiting=(), intents=())


def test_a_crash_after_terminate_retires_nothing_twice(lanes: LaneFactory) -> None:
    lane = lanes(30)
    lane.make_ready_for_cutover()
    lane.request_all("cutover", test_instances=lane.launched_instances())

    # GIVEN a coordinator that dies after MGN started the TERMINATE job, before recording it
    with crash_on_record_job(lane.ledger), pytest.raises(CoordinatorCrashError):
        lane.coordinator().run_once(lane.now)
    assert len(lane.jobs("TERMINATE")) == 1

    # WHEN a new coordinator runs THEN it adopts that job (found by its tag)
    lane.emulator.reset_metrics()
    successor = lane.coordinator()
    assert successor.run_once(lane.now) == []
    assert "TerminateTargetInstances" not in lane.calls()
    (retire,) = lane.jobs("TERMINATE")
    (intent,) = lane.ledger.snapshot().intents
    assert intent.job_id == retire.job_id

    lane.emulator.clock.advance(AFTER_TERMINATE)
    successor.run_once(lane.now)
    lane.emulator.clock.advance(AFTER_LAUNCH)
    assert by_status(successor.run_once(lane.now)) == {"LAUNCHED": 30}
    assert len(lane.jobs("TERMINATE")) == 1


def test_retiring_test_instances_shares_the_lanes_quota_with_launches(
    lanes: LaneFactory,
) -> None:
    # 30 servers have their cutover requested and test instances to retire, 20 others are
    # ready for their test launch: at most 40 servers in active jobs
    lane = lanes(50, quotas=LaneQuotas(servers_in_active_jobs=40))
    cutting_over, testing = lane.server_ids[:30], lane.server_ids[30:]
    lane.server_ids = cutting_over
    lane.make_ready_for_cutover()
    lane.request_all("cutover", test_instances=lane.launched_instances())
    lane.request_all("test", testing)
    coordinator = lane.coordinator()

    coordinator.run_once(lane.now)

    # the retirement goes first (cutover work), the tests take what room is left
    (retire,) = lane.jobs("TERMINATE")
    (test,) = [job for job in lane.jobs("START_TEST") if servers_in(job) <= set(testing)]
    assert servers_in(retire) == set(cutting_over)
    assert servers_in(test) == set(testing[:10])
    assert lane.emulator.metrics().quota_errors == 0


def test_servers_mgn_will_not_terminate_for_go_on_to_their_cutover(lanes: LaneFactory) -> None:
    # GIVEN a server still TESTING (MGN refuses to terminate its instances) among others
    lane = lanes(3)
    lane.make_ready_for_cutover()
    stuck = lane.server_ids[0]
    lane.client.change_server_life_cycle_state(
        sourceServerID=stuck, lifeCycle={"state": "READY_FOR_TEST"}
    )
    lane.client.start_test(sourceServerIDs=[stuck])
    lane.emulator.clock.advance(AFTER_LAUNCH)
    lane.request_all("cutover", test_instances=lane.launched_instances())
    coordinator = lane.coordinator()

    # THEN nothing is terminated this run; the refused server's cutover goes ahead (and
    # MGN refuses it: its execution rolls back, which retires the test instance)
    assert coordinator.run_once(lane.now) == []
    assert lane.jobs("TERMINATE") == []
    outcomes = coordinator.run_once(lane.now)
    assert [(o.source_server_id, o.launch_status) for o in outcomes] == [(stuck, "REFUSED")]
    # AND the others are retired together, then cut over
    (retire,) = lane.jobs("TERMINATE")
    assert servers_in(retire) == set(lane.server_ids[1:])
    lane.emulator.clock.advance(AFTER_TERMINATE)
    coordinator.run_once(lane.now)
    lane.emulator.clock.advance(AFTER_LAUNCH)
    assert by_status(coordinator.run_once(lane.now)) == {"LAUNCHED": 2}


# --- exactly once -------------------------------------------------------------------------


class CoordinatorCrashError(Exception):
    pass


# On moto a transaction costs ~15 ms: the DynamoDB ledger's run is kept to 40 servers.
@pytest.mark.parametrize(("ledger_kind", "servers"), [("fake", 200), ("dynamodb", 40)])
def test_a_crash_after_start_cutover_starts_nothing_twice_and_loses_nothing(
    lanes: LaneFactory, ledger_kind: str, servers: int
) -> None:
    with mock_aws():
        ledger = FakeLaunchLedger() if ledger_kind == "fake" else dynamodb_ledger()
        lane = lanes(servers, ledger=ledger)
        lane.make_ready_for_cutover()
        lane.request_all("cutover")

        # GIVEN a coordinator that dies after MGN started the job, before recording it
        with crash_on_record_job(ledger), pytest.raises(CoordinatorCrashError):
            lane.coordinator().run_once(lane.now)
        assert len(lane.jobs("START_CUTOVER")) == 1
        (intent,) = ledger.snapshot().intents
        assert intent.job_id is None

        # WHEN a new coordinator runs THEN it adopts the running job: nothing starts twice
        lane.emulator.reset_metrics()
        successor = lane.coordinator()
        assert successor.run_once(lane.now) == []
        (job,) = lane.jobs("START_CUTOVER")
        assert servers_in(job) == set(lane.server_ids)
        assert "StartCutover" not in lane.calls()
        (intent,) = ledger.snapshot().intents
        assert intent.job_id == job.job_id

        # AND every server's outcome still arrives
        lane.emulator.clock.advance(AFTER_LAUNCH)
        outcomes = successor.run_once(lane.now)
        assert by_status(outcomes) == {"LAUNCHED": servers}
        assert {o.job_id for o in outcomes} == {job.job_id}
        assert ledger.snapshot().intents == ()
        assert ledger.snapshot().waiting == ()
        assert len(lane.jobs("START_CUTOVER")) == 1
        if isinstance(ledger, DynamoLaunchLedger):
            answered = ledger.answered(f"mig-{lane.server_ids[0]}", "cutover")
            assert answered is not None
            assert answered["launchStatus"] == "LAUNCHED"


def test_a_crash_before_mgn_was_asked_starts_the_job_once_on_the_next_run(
    lanes: LaneFactory,
) -> None:
    lane = lanes(20)
    lane.request_all("test")
    dying = StartFails(lane.client)
    with pytest.raises(CoordinatorCrashError):
        lane.coordinator(dying).run_once(lane.now)
    assert lane.jobs("START_TEST") == []
    (intent,) = lane.ledger.snapshot().intents

    lane.coordinator().run_once(lane.now)

    (job,) = lane.jobs("START_TEST")
    assert servers_in(job) == set(lane.server_ids)
    (described,) = lane.client.describe_jobs(filters={"jobIDs": [job.job_id]})["items"]
    assert described.get("tags") == {INTENT_TAG: intent.intent_id}
    assert lane.ledger.snapshot().intents[0].job_id == job.job_id


def test_a_conflict_on_start_adopts_the_job_already_running(lanes: LaneFactory) -> None:
    lane = lanes(20)
    lane.request_all("test")
    with crash_on_record_job(lane.ledger), pytest.raises(CoordinatorCrashError):
        lane.coordinator().run_once(lane.now)

    # WHEN the successor's search by date misses the job (a stale read) and it starts again
    lane.emulator.reset_metrics()
    outcomes = lane.coordinator(StaleJobSearch(lane.client)).run_once(lane.now)

    # THEN MGN's conflict (JOB_IN_PROGRESS) sends it to look again, and it adopts the job
    assert outcomes == []
    assert lane.emulator.metrics().errors_by_code == {"ConflictException": 1}
    (job,) = lane.jobs("START_TEST")
    assert lane.ledger.snapshot().intents[0].job_id == job.job_id


def test_servers_mgn_refuses_fail_alone_and_the_others_start_next_run(
    lanes: LaneFactory,
) -> None:
    lane = lanes(10)
    lane.make_ready_for_cutover()
    not_ready = lane.server_ids[3]
    lane.client.change_server_life_cycle_state(
        sourceServerID=not_ready, lifeCycle={"state": "READY_FOR_TEST"}
    )
    lane.request_all("cutover")
    coordinator = lane.coordinator()

    outcomes = coordinator.run_once(lane.now)

    assert [(o.source_server_id, o.launch_status) for o in outcomes] == [(not_ready, "REFUSED")]
    assert "INVALID_LIFECYCLE_STATE" in outcomes[0].detail
    assert lane.jobs("START_CUTOVER") == []
    assert coordinator.run_once(lane.now) == []
    (job,) = lane.jobs("START_CUTOVER")
    assert servers_in(job) == set(lane.server_ids) - {not_ready}


def test_a_full_quota_leaves_the_requests_pending_for_the_next_run(lanes: LaneFactory) -> None:
    lane = lanes(30)
    lane.request_all("test")
    lane.emulator.faults.apply_quota_pressure(active_jobs=20)  # another tenant's jobs
    coordinator = lane.coordinator()

    assert coordinator.run_once(lane.now) == []
    assert lane.emulator.metrics().quota_errors == 1
    assert lane.ledger.snapshot().intents == ()
    assert len(lane.ledger.snapshot().waiting) == 30

    lane.emulator.faults.clear()
    coordinator.run_once(lane.now)
    (job,) = lane.jobs("START_TEST")
    assert len(job.participants) == 30


def test_a_paused_waves_requests_stay_open_and_start_once_it_is_resumed(
    lanes: LaneFactory,
) -> None:
    lane = lanes(30)
    lane.request_all("test")
    told: list[tuple[str, str]] = []
    paused = lane.coordinator(held={"wave-1": "PAUSED:U1:first"}, told_held=told)

    # WHILE the wave is paused: no job, every request still open, the loop not idle
    assert paused.run_once(lane.now) == []
    assert lane.jobs("START_TEST") == []
    assert len(lane.ledger.snapshot().waiting) == 30
    assert paused.last_run is not None
    assert not paused.last_run.idle
    # AND each held request is told once per pause (its thread shows it paused), even by a
    # fresh coordinator; a later pause is told anew
    assert sorted(told) == sorted((s, "PAUSED:U1:first") for s in lane.server_ids)
    lane.coordinator(held={"wave-1": "PAUSED:U1:first"}, told_held=told).run_once(lane.now)
    assert len(told) == 30
    lane.coordinator(held={"wave-1": "PAUSED:U2:second"}, told_held=told).run_once(lane.now)
    assert len(told) == 60

    # WHEN it is resumed THEN the next run starts them in one job
    lane.coordinator().run_once(lane.now)
    (job,) = lane.jobs("START_TEST")
    assert len(job.participants) == 30


# --- dependsOn: a wave's cutovers in order ------------------------------------------------


def _ordered_lane(lanes: LaneFactory) -> tuple[Lane, list[str], list[str], dict[str, str]]:
    """Four servers ready for cutover, their window open: db (two) and web (two, dependsOn
    db); the records' status of each migration, as the test sets it."""
    lane = lanes(4)
    lane.make_ready_for_cutover()
    db, web = lane.server_ids[:2], lane.server_ids[2:]
    applications = {
        **dict.fromkeys(db, ("db", ())),
        **dict.fromkeys(web, ("web", ("db",))),
    }
    lane.request_all(
        "cutover", window=(lane.now, lane.now + timedelta(hours=4)), applications=applications
    )
    return lane, db, web, {f"mig-{server}": "RUNNING" for server in lane.server_ids}


class _WaveRecords:
    """The wave's migration records as the test sets their statuses (migration -> status;
    VERIFIED: its cutover verified, the record still RUNNING), counting the reads."""

    def __init__(self, apps: dict[str, str], statuses: dict[str, str]) -> None:
        self.apps = apps
        self.statuses = statuses
        self.reads: list[str] = []

    def __call__(self, wave: str) -> list[MigrationRecord]:
        self.reads.append(wave)
        verified = {"step": "VerifyCutover", "status": "SUCCEEDED", "message": "", "at": ""}
        records = []
        for migration_id, status in self.statuses.items():
            record = migration_record(
                status="RUNNING" if status == "VERIFIED" else status,
                migrationId=migration_id,
                wave=wave,
                appName=self.apps[migration_id],
                targetVmName=migration_id.removeprefix("mig-"),
                sourceVmId=f"/vm/{migration_id}",
            )
            records.append(replace(record, history=(verified,) if status == "VERIFIED" else ()))
        return records


def _records_of(apps: dict[str, str], statuses: dict[str, str]) -> _WaveRecords:
    return _WaveRecords(apps, statuses)


def test_dependents_cut_over_in_a_later_job_once_their_dependencies_cut_over(
    lanes: LaneFactory,
) -> None:
    lane, db, web, statuses = _ordered_lane(lanes)
    apps = {f"mig-{s}": "db" for s in db} | {f"mig-{s}": "web" for s in web}
    records = _records_of(apps, statuses)
    told: list[tuple[str, tuple[str, ...]]] = []
    coordinator = lane.coordinator(records=records, told=told)

    # WHEN the window is open THEN only db's servers start, in one job, web's wait
    assert coordinator.run_once(lane.now) == []
    (first,) = lane.jobs("START_CUTOVER")
    assert servers_in(first) == set(db)
    assert len(lane.ledger.snapshot().waiting) == 4
    # AND each web VM is said to wait for db, once (the ledger remembers it was said)
    assert told == [(server, ("db",)) for server in web]
    # AND while db's requests are open, web's wait without a read of the wave's records
    assert records.reads == []

    # WHEN db's job completed THEN db is answered LAUNCHED; web still waits (not verified)
    lane.emulator.clock.advance(AFTER_LAUNCH)
    outcomes = coordinator.run_once(lane.now)
    assert {o.source_server_id: o.launch_status for o in outcomes} == dict.fromkeys(db, "LAUNCHED")
    assert len(lane.jobs("START_CUTOVER")) == 1
    assert coordinator.last_run is not None
    assert not coordinator.last_run.idle

    # WHEN db's cutovers are verified THEN web's servers start, in a job of their own
    statuses.update({f"mig-{s}": "VERIFIED" for s in db})
    assert coordinator.run_once(lane.now) == []
    second = [job for job in lane.jobs("START_CUTOVER") if job.job_id != first.job_id]
    assert [servers_in(job) for job in second] == [set(web)]
    assert len(told) == 2


def test_a_dependency_that_rolled_back_fails_its_dependents_and_starts_nothing_for_them(
    lanes: LaneFactory,
) -> None:
    lane, db, web, statuses = _ordered_lane(lanes)
    apps = {f"mig-{s}": "db" for s in db} | {f"mig-{s}": "web" for s in web}
    coordinator = lane.coordinator(records=_records_of(apps, statuses))
    coordinator.run_once(lane.now)
    lane.emulator.clock.advance(AFTER_LAUNCH)
    coordinator.run_once(lane.now)

    # WHEN one db VM rolled back (its verification failed), the other verified
    statuses.update({f"mig-{db[0]}": "VERIFIED", f"mig-{db[1]}": "ROLLED_BACK"})
    outcomes = coordinator.run_once(lane.now)

    # THEN web's requests are answered DEPENDENCY_FAILED with the reason, no job started
    assert {o.source_server_id: o.launch_status for o in outcomes} == dict.fromkeys(
        web, "DEPENDENCY_FAILED"
    )
    assert {o.detail for o in outcomes} == {
        f"this cutover goes after db (dependsOn), but {db[1]} (db, ROLLED_BACK) did not cut "
        "over: the migration is rolled back; migrate the dependency again, then this VM"
    }
    assert all(o.task_token == f"token-cutover-{o.source_server_id}" for o in outcomes)
    assert len(lane.jobs("START_CUTOVER")) == 1
    assert lane.ledger.snapshot().waiting == ()


def test_a_second_coordinator_writing_meanwhile_stops_this_one(lanes: LaneFactory) -> None:
    ledger = FakeLaunchLedger()
    lane = lanes(10, ledger=ledger)
    lane.request_all("test")
    ledger.written_meanwhile = True
    assert lane.coordinator().run_once(lane.now) == []
    assert lane.jobs("START_TEST") == []
    assert lane.ledger.snapshot().intents == ()


# --- requests, windows, readiness ---------------------------------------------------------


@pytest.mark.parametrize("ledger_kind", ["fake", "dynamodb"])
def test_requests_are_idempotent_per_execution_and_kind(
    lanes: LaneFactory, ledger_kind: str
) -> None:
    with mock_aws():
        ledger = FakeLaunchLedger() if ledger_kind == "fake" else dynamodb_ledger()
        lane = lanes(1, ledger=ledger)
        coordinator = lane.coordinator()
        server = lane.server_ids[0]
        request = LaunchRequest(
            f"mig-{server}", server, "test", "wave-1", lane.now - LINGER, execution="exec-1"
        )
        assert coordinator.request(request, "token-1") == "new"
        assert coordinator.request(request, "token-2") == "open"  # a retried task: new token
        coordinator.run_once(lane.now)
        lane.emulator.clock.advance(AFTER_LAUNCH)
        (outcome,) = coordinator.run_once(lane.now)
        assert outcome.task_token == "token-2"
        assert coordinator.request(request, "token-2") == "answered"  # nothing to launch

        # WHEN the answer found no one waiting (the task failed after recording its request)
        # and the same execution asks again on a new task
        ledger.delivered([outcome])
        assert coordinator.request(request, "token-3") == "reanswered"

        # THEN the recorded outcome goes to the new task, and no second job starts
        (again,) = ledger.undelivered()
        assert again == replace(outcome, task_token="token-3")
        assert coordinator.run_once(lane.now + LINGER) == []
        assert ledger.snapshot().waiting == ()
        assert len(lane.jobs("START_TEST")) == 1

        # A new execution (the migration's next revision) asks anew
        later = replace(request, execution="exec-2", requested_at=lane.now)
        assert coordinator.request(later, "token-4") == "new"


@pytest.mark.parametrize("ledger_kind", ["fake", "dynamodb"])
def test_an_outcome_follows_its_request_to_a_new_task_token(
    lanes: LaneFactory, ledger_kind: str
) -> None:
    with mock_aws():
        ledger = FakeLaunchLedger() if ledger_kind == "fake" else dynamodb_ledger()
        lane = lanes(1, ledger=ledger)
        server = lane.server_ids[0]
        request = LaunchRequest(
            f"mig-{server}", server, "test", "wave-1", lane.now - LINGER, execution="exec-1"
        )
        ledger.record_request(request, "token-1")
        lane.coordinator().run_once(lane.now)
        lane.emulator.clock.advance(AFTER_LAUNCH)

        # GIVEN the execution retried its task between the coordinator's read and its answer
        (waiting,) = ledger.snapshot().waiting
        ledger.record_request(request, "token-2")
        stale = LaunchOutcome(
            request.migration_id, "token-1", "test", "job-1", server, "LAUNCHED",
            execution="exec-1",
        )  # fmt: skip
        ledger.complete([stale])

        # THEN the request is answered on the token now waiting, and leaves the lane
        assert [o.task_token for o in ledger.undelivered()] == ["token-2"]
        assert ledger.snapshot().waiting == ()
        assert waiting.task_token == "token-1"
        # and another execution's request is never answered with this one's outcome
        ledger.record_request(replace(request, execution="exec-2"), "token-3")
        ledger.complete([replace(stale, task_token="token-2")])
        assert [w.task_token for w in ledger.snapshot().waiting] == ["token-3"]


def test_a_cutover_whose_window_closed_is_answered_and_never_started(lanes: LaneFactory) -> None:
    lane = lanes(2)
    lane.make_ready_for_cutover()
    closes = lane.now + timedelta(minutes=30)
    lane.request_all("cutover", window=(closes + timedelta(hours=1), closes + timedelta(hours=2)))
    lane.emulator.clock.advance(timedelta(hours=3))

    outcomes = lane.coordinator().run_once(lane.now)

    assert by_status(outcomes) == {"WINDOW_CLOSED": 2}
    assert lane.jobs("START_CUTOVER") == []
    assert lane.ledger.snapshot().waiting == ()


def test_test_requests_wait_for_replication_watched_in_bulk(lanes: LaneFactory) -> None:
    lane = lanes(0, replicating=300)
    fresh = [
        lane.emulator.add_source_server(
            hostname=f"fresh{index:03d}", disk_gib=(20,)
        ).source_server_id
        for index in range(250)
    ]  # just installed: initial sync
    stalling = fresh[0]
    lane.emulator.faults.stall_replication(stalling, ends_on_retry=False)
    replicated: list[str] = []
    coordinator = LaunchCoordinator(
        mgn=MgnAdapter(lane.client),
        ledger=lane.ledger,
        quotas=lane.quotas,
        linger=LINGER,
        readiness_poll=5 * LINGER,
        on_replicated=lambda ready: replicated.extend(r.request.migration_id for r in ready),
    )
    lane.request_all("test", fresh)
    lane.emulator.reset_metrics()

    # WHEN the coordinator runs while the servers still replicate
    outcomes = coordinator.run_once(lane.now)

    # THEN the new requests' servers are looked at in bulk (250 of the lane's 550 servers:
    # its one page, where two 200-ID filters would have been two calls), and the one whose
    # replication stalled is answered so, alone; nothing is launched
    assert lane.calls() == {"DescribeSourceServers": 1}
    assert [(o.source_server_id, o.launch_status) for o in outcomes] == [
        (stalling, "REPLICATION_STALLED")
    ]
    assert lane.jobs("START_TEST") == []

    # AND between polls, runs do not ask MGN about replication at all
    lane.emulator.clock.advance(timedelta(days=2))  # replicated by now
    # polls every 5 lingers (10 min): a run at :05 (the last one at :03) crosses no boundary
    between = lane.now.replace(minute=5, second=0, microsecond=0)
    lane.emulator.reset_metrics()
    assert coordinator.run_once(between) == []
    assert "DescribeSourceServers" not in lane.calls()

    # AND the run that crosses a poll boundary sees them launchable and starts them together
    boundary = between.replace(minute=11)  # the last run at :09: it crosses :10
    coordinator.run_once(boundary)
    assert lane.calls().get("DescribeSourceServers") == 1
    (job,) = lane.jobs("START_TEST")  # 200 servers: MGN's servers across active jobs
    assert len(servers_in(job)) == 200
    assert servers_in(job) < set(fresh[1:])
    assert sorted(replicated) == sorted(f"mig-{server}" for server in fresh[1:])
    assert all(launch.replication_ready for launch in lane.ledger.snapshot().waiting)


def test_launchable_servers_join_their_mgn_applications_50_per_call(lanes: LaneFactory) -> None:
    # GIVEN 120 test requests whose preparation left the association to the coordinator
    # (110 to join one application, 10 another), one of the 110 moved in the console to a
    # third application meanwhile
    lane = lanes(120)
    apps = {
        name: lane.client.create_application(name=name)["applicationID"]
        for name in ("wave-1/web", "wave-1/db", "console/elsewhere")
    }
    moved = lane.server_ids[3]
    lane.client.associate_source_servers(
        applicationID=apps["console/elsewhere"], sourceServerIDs=[moved]
    )
    join = {
        server: apps["wave-1/db"] if index >= 110 else apps["wave-1/web"]
        for index, server in enumerate(lane.server_ids)
    }
    lane.request_all("test", join=join)
    lane.emulator.reset_metrics()

    # WHEN the coordinator sees them launchable
    lane.coordinator().run_once(lane.now)

    # THEN they joined in bulk: 109 in three calls, 10 in one; the moved one was left where
    # it is (its cutover's preparation moves it back and reports the drift); the test job
    # started with all 120
    assert lane.calls()["AssociateSourceServers"] == 4
    servers = {
        item["sourceServerID"]: item.get("applicationID")
        for item in lane.client.describe_source_servers(filters={})["items"]
    }
    assert servers[moved] == apps["console/elsewhere"]
    assert {s for s, app in servers.items() if app == apps["wave-1/web"]} == set(
        lane.server_ids[:110]
    ) - {moved}
    assert {s for s, app in servers.items() if app == apps["wave-1/db"]} == set(
        lane.server_ids[110:]
    )
    (job,) = lane.jobs("START_TEST")
    assert servers_in(job) == set(lane.server_ids)


# --- helpers ------------------------------------------------------------------------------


def dynamodb_ledger() -> DynamoLaunchLedger:
    """The DynamoDB adapter on a fresh moto table (call inside ``mock_aws``)."""
    resources = provision(
        ResourceNames(environment="test"),
        sqs=boto3.client("sqs", region_name="us-east-1"),
        dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
        events=boto3.client("events", region_name="us-east-1"),
    )
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(resources.table_name)
    return DynamoLaunchLedger(table, LANE)


@contextmanager
def crash_on_record_job(ledger: LaunchLedger) -> Iterator[None]:
    """The ledger's ``record_job`` raises, as if the process died before it."""

    def crash(intent_id: str, job_id: str) -> None:
        raise CoordinatorCrashError(f"died before recording {job_id}")

    original = ledger.record_job
    ledger.record_job = crash  # type: ignore[method-assign]
    try:
        yield
    finally:
        ledger.record_job = original  # type: ignore[method-assign]


class StartFails(MgnAdapter):
    """The lane's MGN, where the process dies just before ``StartTest`` reaches MGN."""

    def start_test(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job:
        raise CoordinatorCrashError("died before StartTest")


class StaleJobSearch(MgnAdapter):
    """The lane's MGN, whose search of jobs by date misses the newest job once."""

    def __init__(self, client: MgnClient) -> None:
        super().__init__(client)
        self._stale = True

    def jobs_since(self, from_date: datetime) -> list[Job]:
        if self._stale:
            self._stale = False
            return []
        return super().jobs_since(from_date)


# --- reading many servers (the adapter the coordinator watches replication with) ------------


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 100 servers and filters of 20 IDs: MGN's 1,000 and 200, ten times smaller."""
    monkeypatch.setattr(mgn_adapter, "SOURCE_SERVERS_PER_PAGE", 100)
    monkeypatch.setattr(mgn_adapter, "MAX_IDS_PER_FILTER", 20)


@pytest.mark.usefixtures("small_pages")
def test_many_servers_are_read_from_the_lanes_pages_until_all_are_found(
    lanes: LaneFactory,
) -> None:
    # GIVEN a lane of 450 servers
    lane = lanes(450)
    adapter = MgnAdapter(lane.client)

    # WHEN 250 servers of its first 300 are asked for (thirteen filters' worth)
    wanted = lane.server_ids[50:300]
    lane.emulator.reset_metrics()
    found = adapter.source_servers(wanted)

    # THEN the lane's pages are read until every one is found: three pages, no filter
    assert sorted(server.source_server_id for server in found) == sorted(wanted)
    assert lane.calls() == {"DescribeSourceServers": 3}

    # AND one that does not exist costs no call of its own once every page was read
    lane.emulator.reset_metrics()
    found = adapter.source_servers([*lane.server_ids[:250], "s-00000000000000000"])
    assert sorted(server.source_server_id for server in found) == sorted(lane.server_ids[:250])
    assert lane.calls() == {"DescribeSourceServers": 5}


@pytest.mark.usefixtures("small_pages")
def test_servers_few_of_a_large_lane_are_read_with_filters_once_the_pages_did_not_pay(
    lanes: LaneFactory,
) -> None:
    # GIVEN a lane of 450 servers, and 21 wanted among its last ones
    lane = lanes(450)
    adapter = MgnAdapter(lane.client)
    wanted = lane.server_ids[-21:]

    # WHEN they are read: two pages (what their two filters would cost) find none of them
    lane.emulator.reset_metrics()
    found = adapter.source_servers(wanted)

    # THEN the rest are read with filters, every one found, each once
    assert sorted(server.source_server_id for server in found) == sorted(wanted)
    assert lane.calls() == {"DescribeSourceServers": 2 + 2}

    # AND from then on this lane's servers are read with filters straight away
    lane.emulator.reset_metrics()
    assert len(adapter.source_servers(wanted)) == 21
    assert lane.calls() == {"DescribeSourceServers": 2}
