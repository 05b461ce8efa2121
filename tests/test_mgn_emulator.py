"""The MGN emulator, driven through the real boto3 `mgn` client over loopback.

EC2 is moto (`mock_aws`), except where a test needs hundreds of source servers and only MGN's
side matters: there an in-memory EC2 port keeps the suite fast. The simulated clock is frozen
(`speed=0`) and advanced by hand, so every test is deterministic and quick.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import StringShape
from botocore.retries import standard
from moto import mock_aws

from orchestration.local.mgn import (
    CONCURRENT_JOBS_QUOTA,
    LAUNCH_TYPE_TAG,
    SERVERS_IN_ACTIVE_JOBS_QUOTA,
    SOURCE_SERVER_ID_TAG,
    Boto3Ec2LaunchPort,
    EmulatorMetrics,
    EmulatorSettings,
    JobTiming,
    MgnEmulator,
    QuotaLimits,
    ReplicationError,
    ReplicationTiming,
    RequestRateLimit,
    ServiceQuotaExceededError,
    SimulatedClock,
    SourceServer,
)
from orchestration.local.mgn.protocol import UNKNOWN_OPERATION, mgn_service_model
from orchestration.local.mgn.states import (
    DataReplicationState,
    InitiatedBy,
    JobLogEvent,
    JobStatus,
    JobType,
    LaunchStatus,
    LifeCycleState,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_mgn.client import MgnClient

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REGION = "us-east-1"
TIMING = JobTiming()
AFTER_LAUNCH = TIMING.launch_total + timedelta(seconds=1)
AFTER_TERMINATE = TIMING.terminate_total + timedelta(seconds=1)
GIB = 1024**3
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})

# Every emulator the suite ran, for the closing check that all responses matched the model.
_SUITE_METRICS: list[EmulatorMetrics] = []


# --- Fixtures and helpers --------------------------------------------------------------------


class InMemoryEc2:
    """An `Ec2LaunchPort` for tests that need hundreds of servers but no real EC2 behaviour."""

    def __init__(self) -> None:
        self.running: set[str] = set()
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
        instance_id = f"i-{self._count:017x}"
        self.running.add(instance_id)
        return instance_id

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        self.running.difference_update(instance_ids)


def check_every_response_matched_the_model(metrics: EmulatorMetrics) -> None:
    """Each reply to a known operation was checked once, and none failed the check."""
    unknown = metrics.calls_by_operation.get(UNKNOWN_OPERATION, 0)
    assert metrics.invalid_responses == 0
    assert "InternalServerException" not in metrics.errors_by_code
    assert metrics.validated_responses == metrics.total_calls - unknown


# One boto3 session for the suite: moto drops boto3's default session on every mock start,
# and building a session per client costs ~0.1 s. The credentials are moto's placeholders.
_BOTO3 = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
)


@pytest.fixture(scope="session")
def ec2_client() -> EC2Client:
    """One EC2 client for the session (building one costs ~0.3 s); moto intercepts it
    whenever a test's `mock_aws` is active, and each test starts from an empty moto."""
    return _BOTO3.client("ec2")


@pytest.fixture
def ec2(
    aws_env: None, ec2_client: EC2Client, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EC2Client]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_MGN", raising=False)
    # MGN builds its own AMIs; moto's 1,300 stock ones cost ~0.3 s per reset and are not needed.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield ec2_client


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(speed=0, start=START)


def serve(emulator: MgnEmulator) -> Iterator[MgnEmulator]:
    with emulator.serve():
        yield emulator
    metrics = emulator.metrics()
    _SUITE_METRICS.append(metrics)
    check_every_response_matched_the_model(metrics)


@pytest.fixture
def emulator(ec2: EC2Client, clock: SimulatedClock) -> Iterator[MgnEmulator]:
    yield from serve(
        MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=clock, settings=EmulatorSettings(seed=7))
    )


def client_for(emulator: MgnEmulator, config: Config = NO_RETRIES) -> MgnClient:
    return _BOTO3.client("mgn", endpoint_url=emulator.endpoint_url, config=config)


@pytest.fixture
def mgn(emulator: MgnEmulator) -> MgnClient:
    return client_for(emulator)


def seed_ready(emulator: MgnEmulator, hostname: str = "web01", **extra: Any) -> SourceServer:
    """A server whose agent was installed a day ago: CONTINUOUS and READY_FOR_TEST now."""
    return emulator.add_source_server(
        hostname=hostname,
        fqdn=f"{hostname}.corp.example",
        agent_installed_at=emulator.clock.now() - timedelta(days=1),
        **extra,
    )


def describe(mgn: MgnClient, server_id: str) -> dict[str, Any]:
    items = mgn.describe_source_servers(filters={"sourceServerIDs": [server_id]})["items"]
    assert len(items) == 1
    return cast(dict[str, Any], items[0])


def job(mgn: MgnClient, job_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], mgn.describe_jobs(filters={"jobIDs": [job_id]})["items"][0])


def log_events(mgn: MgnClient, job_id: str) -> list[str]:
    return [item["event"] for item in mgn.describe_job_log_items(jobID=job_id)["items"]]


def error_body(error: ClientError) -> dict[str, Any]:
    """The parsed error response, including the modelled members (errors, quotaCode, ...)."""
    return cast(dict[str, Any], error.response)


def instance(ec2: EC2Client, instance_id: str) -> dict[str, Any]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return cast(dict[str, Any], reservations[0]["Instances"][0])


def launch_test(
    mgn: MgnClient, emulator: MgnEmulator, server: SourceServer
) -> tuple[str, dict[str, Any]]:
    """Start a test launch and let it finish; returns the job ID and the finished job."""
    job_id = mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]
    emulator.clock.advance(AFTER_LAUNCH)
    return job_id, job(mgn, job_id)


def raw_post(emulator: MgnEmulator, path: str, body: bytes) -> tuple[int, dict[str, str], Any]:
    """POST without botocore, to send what botocore would refuse to."""
    request = urllib.request.Request(  # noqa: S310 - loopback URL built from the emulator
        f"{emulator.endpoint_url}{path}", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


# --- Describe, seeding, replication ------------------------------------------------------------


def test_describe_source_servers_filters_and_paginates_with_boto3s_paginator(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN ready, replicating, archived and hint-less servers
    ready = [seed_ready(emulator, f"app{index}") for index in range(5)]
    replicating = emulator.add_source_server(
        hostname="db01", user_provided_id="azure-vm-db01", application_id="app-0123456789abcdefg"
    )
    archived = emulator.add_source_server(hostname="app0", archived=True)
    hintless = emulator.add_source_server(hostname=None)

    # WHEN paging through everything two at a time
    paginator = mgn.get_paginator("describe_source_servers")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))

    # THEN every server comes back exactly once, in creation order, over several pages
    seen = [item["sourceServerID"] for page in pages for item in page["items"]]
    expected = [s.source_server_id for s in [*ready, replicating, archived, hintless]]
    assert seen == expected
    assert len(pages) == 4
    # AND filters narrow the result
    by_state = mgn.describe_source_servers(filters={"lifeCycleStates": ["READY_FOR_TEST"]})
    assert {i["sourceServerID"] for i in by_state["items"]} == {s.source_server_id for s in ready}
    not_archived = mgn.describe_source_servers(filters={"isArchived": False})["items"]
    assert archived.source_server_id not in {i["sourceServerID"] for i in not_archived}
    only_archived = mgn.describe_source_servers(filters={"isArchived": True})["items"]
    assert [i["sourceServerID"] for i in only_archived] == [archived.source_server_id]
    by_app = mgn.describe_source_servers(filters={"applicationIDs": ["app-0123456789abcdefg"]})
    assert [i["userProvidedID"] for i in by_app["items"]] == ["azure-vm-db01"]
    by_type = mgn.describe_source_servers(filters={"replicationTypes": ["SNAPSHOT_SHIPPING"]})
    assert by_type["items"] == []
    # AND agent hints are as the agent reported them, never an awsInstanceID
    hints = describe(mgn, ready[0].source_server_id)["sourceProperties"]["identificationHints"]
    assert hints == {"hostname": "app0", "fqdn": "app0.corp.example"}
    assert "identificationHints" not in describe(mgn, hintless.source_server_id)["sourceProperties"]
    # AND a token from other filters is refused
    first = mgn.describe_source_servers(maxResults=1)
    with pytest.raises(mgn.exceptions.ValidationException):
        mgn.describe_source_servers(
            maxResults=1, nextToken=first["nextToken"], filters={"isArchived": True}
        )


def test_replication_progresses_by_disk_size_on_the_simulated_clock(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN a freshly installed agent on a server with 100 + 50 GiB of disks
    server = emulator.add_source_server(hostname="file01", os_family="windows", disk_gib=[100, 50])
    timing = ReplicationTiming()
    sync = timedelta(seconds=150 * GIB / timing.bandwidth_bytes_per_second)

    # THEN it starts INITIATING and NOT_READY, not launchable (no lagDuration)
    fresh = describe(mgn, server.source_server_id)
    assert fresh["lifeCycle"]["state"] == "NOT_READY"
    assert fresh["dataReplicationInfo"]["dataReplicationState"] == "INITIATING"
    assert "lagDuration" not in fresh["dataReplicationInfo"]
    assert fresh["sourceProperties"]["os"]["fullString"].startswith("Microsoft Windows")

    # WHEN half the initial sync has passed
    emulator.clock.advance(timing.initiation + sync / 2)
    halfway = describe(mgn, server.source_server_id)["dataReplicationInfo"]
    assert halfway["dataReplicationState"] == "INITIAL_SYNC"
    disks = halfway["replicatedDisks"]
    assert [d["totalStorageBytes"] for d in disks] == [100 * GIB, 50 * GIB]
    assert [round(d["replicatedStorageBytes"] / d["totalStorageBytes"], 2) for d in disks] == [
        0.5,
        0.5,
    ]
    assert {step["status"] for step in halfway["dataReplicationInitiation"]["steps"]} == {
        "SUCCEEDED"
    }
    assert datetime.fromisoformat(halfway["etaDateTime"]) > emulator.clock.now()

    # WHEN the rest of the sync has passed
    emulator.clock.advance(sync / 2 + timedelta(seconds=1))
    synced = describe(mgn, server.source_server_id)
    assert synced["dataReplicationInfo"]["dataReplicationState"] == "CONTINUOUS"
    assert synced["dataReplicationInfo"]["lagDuration"] == "PT0S"
    assert synced["lifeCycle"]["state"] == "READY_FOR_TEST"
    assert synced["lifeCycle"]["firstByteDateTime"] == "2026-01-05T09:10:00.000000Z"
    # AND the Python view is the wire view
    assert emulator.describe_source_server(server.source_server_id) == synced


# --- Launches, EC2, lifecycle ----------------------------------------------------------------


def test_test_launch_creates_a_real_instance_from_the_default_template_version(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN the pipeline's launch settings: right-sizing off, c5.xlarge in a new default version
    server = seed_ready(emulator, tags={"app": "billing"})
    configuration = mgn.update_launch_configuration(
        sourceServerID=server.source_server_id,
        targetInstanceTypeRightSizingMethod="NONE",
        copyTags=True,
        launchDisposition="STARTED",
    )
    template_id = configuration["ec2LaunchTemplateID"]
    assert template_id == server.ec2_launch_template_id
    version = ec2.create_launch_template_version(
        LaunchTemplateId=template_id,
        SourceVersion="1",
        LaunchTemplateData={"InstanceType": "c5.xlarge"},
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(version))

    # WHEN a test launch starts
    started = mgn.start_test(sourceServerIDs=[server.source_server_id], tags={"wave": "w1"})
    assert started["ResponseMetadata"]["HTTPStatusCode"] == 202
    job_id = started["job"]["jobID"]

    # THEN the job is PENDING, then STARTED with the server IN_PROGRESS, then LAUNCHED
    assert started["job"]["status"] == "PENDING"
    assert describe(mgn, server.source_server_id)["lifeCycle"]["state"] == "TESTING"
    emulator.clock.advance(TIMING.pending)
    running = job(mgn, job_id)
    assert running["status"] == "STARTED"
    assert running["participatingServers"][0]["launchStatus"] == "IN_PROGRESS"
    emulator.clock.advance(AFTER_LAUNCH - TIMING.pending)
    finished = job(mgn, job_id)
    assert finished["status"] == "COMPLETED"
    assert finished["tags"] == {"wave": "w1"}
    participant = finished["participatingServers"][0]
    assert participant["launchStatus"] == "LAUNCHED"

    # AND the instance is real, from the default version, tagged with server and launch type
    launched = instance(ec2, participant["launchedEc2InstanceID"])
    assert launched["InstanceType"] == "c5.xlarge"
    tags = {tag["Key"]: tag["Value"] for tag in launched["Tags"]}
    assert tags[SOURCE_SERVER_ID_TAG] == server.source_server_id
    assert tags[LAUNCH_TYPE_TAG] == "test"
    assert tags["app"] == "billing"  # copyTags
    assert tags["aws:ec2launchtemplate:version"] == str(version)

    # AND the server shows the instance, still in TESTING
    described = describe(mgn, server.source_server_id)
    assert described["launchedInstance"] == {
        "ec2InstanceID": participant["launchedEc2InstanceID"],
        "jobID": job_id,
        "firstBoot": "SUCCEEDED",
    }
    assert described["lifeCycle"]["lastTest"]["initiated"]["jobID"] == job_id
    assert log_events(mgn, job_id) == [
        "JOB_START",
        "SNAPSHOT_START",
        "SNAPSHOT_END",
        "CONVERSION_START",
        "CONVERSION_END",
        "LAUNCH_START",
        "JOB_END",
    ]


def test_basic_right_sizing_overrides_the_templates_instance_type_as_mgn_does(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN a 4-core, 16 GiB server left at MGN's default right-sizing (BASIC)
    server = seed_ready(emulator, cpu_cores=4, ram_gib=16)
    assert (
        mgn.get_launch_configuration(sourceServerID=server.source_server_id)[
            "targetInstanceTypeRightSizingMethod"
        ]
        == "BASIC"
    )

    # WHEN it is launched
    _, finished = launch_test(mgn, emulator, server)

    # THEN the recommended type wins over the template's
    launched = instance(ec2, finished["participatingServers"][0]["launchedEc2InstanceID"])
    assert launched["InstanceType"] == "m5.xlarge"
    recommended = describe(mgn, server.source_server_id)["sourceProperties"]
    assert recommended["recommendedInstanceType"] == "m5.xlarge"


def test_revert_then_terminate_really_terminates_the_test_instance(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN a finished test launch
    server = seed_ready(emulator)
    _, finished = launch_test(mgn, emulator, server)
    instance_id = finished["participatingServers"][0]["launchedEc2InstanceID"]

    # THEN terminating is refused while TESTING
    with pytest.raises(mgn.exceptions.ConflictException):
        mgn.terminate_target_instances(sourceServerIDs=[server.source_server_id])

    # WHEN the test is reverted and the instance terminated
    reverted = mgn.change_server_life_cycle_state(
        sourceServerID=server.source_server_id, lifeCycle={"state": "READY_FOR_TEST"}
    )
    assert reverted["lifeCycle"]["state"] == "READY_FOR_TEST"
    assert "reverted" in reverted["lifeCycle"]["lastTest"]
    terminate = mgn.terminate_target_instances(sourceServerIDs=[server.source_server_id])
    assert terminate["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert terminate["job"]["type"] == "TERMINATE"
    assert terminate["job"]["initiatedBy"] == "TERMINATE"
    emulator.clock.advance(AFTER_TERMINATE)

    # THEN the job says TERMINATED, EC2 agrees and the server has no launched instance
    done = job(mgn, terminate["job"]["jobID"])
    assert done["status"] == "COMPLETED"
    assert done["participatingServers"][0]["launchStatus"] == "TERMINATED"
    assert instance(ec2, instance_id)["State"]["Name"] == "terminated"
    assert "launchedInstance" not in describe(mgn, server.source_server_id)
    assert log_events(mgn, terminate["job"]["jobID"]) == [
        "JOB_START",
        "CLEANUP_START",
        "CLEANUP_END",
        "JOB_END",
    ]


def test_cutover_replaces_the_test_instance_then_finalize_disconnects_and_keeps_it(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN a tested server marked ready for cutover (test instance still running)
    server = seed_ready(emulator)
    _, tested = launch_test(mgn, emulator, server)
    test_instance = tested["participatingServers"][0]["launchedEc2InstanceID"]
    marked = mgn.change_server_life_cycle_state(
        sourceServerID=server.source_server_id, lifeCycle={"state": "READY_FOR_CUTOVER"}
    )
    assert "finalized" in marked["lifeCycle"]["lastTest"]

    # WHEN cutting over
    cutover = mgn.start_cutover(sourceServerIDs=[server.source_server_id])["job"]
    assert cutover["initiatedBy"] == "START_CUTOVER"
    assert describe(mgn, server.source_server_id)["lifeCycle"]["state"] == "CUTTING_OVER"
    # THEN finalizing during the job is refused
    with pytest.raises(mgn.exceptions.ConflictException):
        mgn.finalize_cutover(sourceServerID=server.source_server_id)
    emulator.clock.advance(AFTER_LAUNCH)
    cutover_instance = job(mgn, cutover["jobID"])["participatingServers"][0][
        "launchedEc2InstanceID"
    ]

    # AND the test instance was cleaned up by the cutover launch
    assert instance(ec2, test_instance)["State"]["Name"] == "terminated"
    assert log_events(mgn, cutover["jobID"])[1:3] == ["CLEANUP_START", "CLEANUP_END"]

    # WHEN finalizing
    final = mgn.finalize_cutover(sourceServerID=server.source_server_id)

    # THEN CUTOVER, replication DISCONNECTED, the cutover instance keeps running
    assert final["lifeCycle"]["state"] == "CUTOVER"
    assert "finalized" in final["lifeCycle"]["lastCutover"]
    assert final["dataReplicationInfo"]["dataReplicationState"] == "DISCONNECTED"
    assert instance(ec2, cutover_instance)["State"]["Name"] == "running"
    # AND finalizing again is a harmless no-op; terminating is refused; archiving works
    again = mgn.finalize_cutover(sourceServerID=server.source_server_id)
    assert again["lifeCycle"]["state"] == "CUTOVER"
    with pytest.raises(mgn.exceptions.ConflictException):
        mgn.terminate_target_instances(sourceServerIDs=[server.source_server_id])
    assert mgn.mark_as_archived(sourceServerID=server.source_server_id)["isArchived"] is True


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda m, s: m.start_cutover(sourceServerIDs=[s]), "cutover before any test"),
        (lambda m, s: m.finalize_cutover(sourceServerID=s), "finalize without a cutover"),
        (lambda m, s: m.mark_as_archived(sourceServerID=s), "archive a live server"),
        (
            lambda m, s: m.change_server_life_cycle_state(
                sourceServerID=s, lifeCycle={"state": "CUTOVER"}
            ),
            "CUTOVER without a cutover launch",
        ),
        (
            lambda m, s: m.change_server_life_cycle_state(
                sourceServerID=s, lifeCycle={"state": "READY_FOR_CUTOVER"}
            ),
            "skip testing",
        ),
    ],
)
def test_illegal_transitions_are_conflicts(
    emulator: MgnEmulator,
    mgn: MgnClient,
    call: Callable[[MgnClient, str], object],
    why: str,
) -> None:
    server = seed_ready(emulator)
    with pytest.raises(mgn.exceptions.ConflictException) as refused:
        call(mgn, server.source_server_id)
    body = error_body(refused.value)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409, why
    assert body["errors"][0]["resourceId"] == server.source_server_id
    assert describe(mgn, server.source_server_id)["lifeCycle"]["state"] == "READY_FOR_TEST"


def test_launches_need_a_launchable_server(emulator: MgnEmulator, mgn: MgnClient) -> None:
    # GIVEN a server still in initial sync, and an unknown ID
    syncing = emulator.add_source_server(hostname="slow01", disk_gib=[2000])

    # THEN launching it is a conflict naming why; an unknown server is a validation error
    with pytest.raises(mgn.exceptions.ConflictException) as refused:
        mgn.start_test(sourceServerIDs=[syncing.source_server_id])
    assert error_body(refused.value)["errors"][0]["code"] == "INVALID_LIFECYCLE_STATE"
    with pytest.raises(mgn.exceptions.ValidationException):
        mgn.start_test(sourceServerIDs=["s-00000000000000000"])
    with pytest.raises(mgn.exceptions.ResourceNotFoundException):
        mgn.change_server_life_cycle_state(
            sourceServerID="s-00000000000000000", lifeCycle={"state": "READY_FOR_TEST"}
        )
    with pytest.raises(mgn.exceptions.ResourceNotFoundException):
        mgn.describe_job_log_items(jobID="mgnjob-00000000000000000")


def test_a_failed_launch_can_be_retried_and_a_retest_replaces_the_previous_instance(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN the next launch of a server is made to fail
    server = seed_ready(emulator)
    emulator.faults.fail_next_launch(server.source_server_id, raw_error="conversion timed out")

    # WHEN it is launched
    failed_id, failed = launch_test(mgn, emulator, server)

    # THEN FAILED, LAUNCH_FAILED with the raw error, no instance, back to READY_FOR_TEST
    participant = failed["participatingServers"][0]
    assert participant["launchStatus"] == "FAILED"
    assert "launchedEc2InstanceID" not in participant
    log = mgn.describe_job_log_items(jobID=failed_id)["items"]
    failure = next(item for item in log if item["event"] == "LAUNCH_FAILED")
    assert failure["eventData"]["rawError"] == "conversion timed out"
    assert ec2.describe_instances()["Reservations"] == []
    assert describe(mgn, server.source_server_id)["lifeCycle"]["state"] == "READY_FOR_TEST"

    # WHEN launched twice more (the second from TESTING)
    _, first = launch_test(mgn, emulator, server)
    retest_id, second = launch_test(mgn, emulator, server)

    # THEN each succeeds and the re-test replaced the first instance
    first_instance = first["participatingServers"][0]["launchedEc2InstanceID"]
    assert second["participatingServers"][0]["launchStatus"] == "LAUNCHED"
    assert instance(ec2, first_instance)["State"]["Name"] == "terminated"
    assert "CLEANUP_END" in log_events(mgn, retest_id)


def test_a_whole_job_failure_fails_every_server_of_the_job_as_mgn_reports_it(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    # GIVEN every launch job fails as a whole
    servers = [seed_ready(emulator, f"vm{index}") for index in range(3)]
    ids = [server.source_server_id for server in servers]
    emulator.faults.fail_launch_jobs(1.0, seed=1)

    # WHEN the three are launched in one job
    job_id = mgn.start_test(sourceServerIDs=ids)["job"]["jobID"]
    emulator.clock.advance(AFTER_LAUNCH)

    # THEN the job ends (COMPLETED: MGN's jobs have no failed status) with every server
    # FAILED, a LAUNCH_FAILED each, no instance, each back to READY_FOR_TEST
    failed = job(mgn, job_id)
    assert failed["status"] == "COMPLETED"
    assert {p["launchStatus"] for p in failed["participatingServers"]} == {"FAILED"}
    assert all("launchedEc2InstanceID" not in p for p in failed["participatingServers"])
    log = mgn.describe_job_log_items(jobID=job_id)["items"]
    assert sorted(
        i["eventData"]["sourceServerID"] for i in log if i["event"] == "LAUNCH_FAILED"
    ) == sorted(ids)
    assert ec2.describe_instances()["Reservations"] == []
    assert {describe(mgn, i)["lifeCycle"]["state"] for i in ids} == {"READY_FOR_TEST"}
    assert emulator.faults.jobs_failed_whole() == [job_id]

    # WHEN the failures stop (rate 0), the same servers launch
    emulator.faults.fail_launch_jobs(0.0)
    _, again = launch_test(mgn, emulator, servers[0])

    # THEN it succeeds
    assert again["participatingServers"][0]["launchStatus"] == "LAUNCHED"


# --- Quotas ------------------------------------------------------------------------------------


def test_twenty_first_concurrent_job_exceeds_the_quota(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN 20 jobs in progress
    servers = [seed_ready(emulator, f"vm{index}") for index in range(21)]
    for server in servers[:20]:
        mgn.start_test(sourceServerIDs=[server.source_server_id])

    # WHEN a 21st starts
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException) as refused:
        mgn.start_test(sourceServerIDs=[servers[20].source_server_id])

    # THEN it is refused with 402 and the quota named
    body = error_body(refused.value)
    assert body["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert body["quotaCode"] == CONCURRENT_JOBS_QUOTA
    assert body["quotaValue"] == 20
    assert body["serviceCode"] == "mgn"
    assert emulator.metrics().quota_errors == 1
    # AND once the jobs complete there is room again
    emulator.clock.advance(AFTER_LAUNCH)
    mgn.start_test(sourceServerIDs=[servers[20].source_server_id])


def test_two_hundred_servers_across_active_jobs_is_the_limit(
    aws_env: None, clock: SimulatedClock
) -> None:
    # In-memory EC2: 201 moto launch templates would cost seconds and test nothing about MGN.
    # The replicating-servers quota (150, adjustable) is raised so all 202 replicate.
    settings = EmulatorSettings(quotas=QuotaLimits(replicating_servers=202))
    for emulator in serve(MgnEmulator(InMemoryEc2(), clock=clock, settings=settings)):
        mgn = client_for(emulator)
        ids = [seed_ready(emulator, f"vm{index}").source_server_id for index in range(202)]

        # WHEN 201 servers are sent in one job THEN the request itself is invalid
        with pytest.raises(mgn.exceptions.ValidationException):
            mgn.start_test(sourceServerIDs=ids[:201])

        # WHEN 200 are in an active job THEN one more, in another job, exceeds the quota
        mgn.start_test(sourceServerIDs=ids[:200])
        with pytest.raises(mgn.exceptions.ServiceQuotaExceededException) as refused:
            mgn.start_test(sourceServerIDs=[ids[200]])
        assert error_body(refused.value)["quotaCode"] == SERVERS_IN_ACTIVE_JOBS_QUOTA


def test_one_terminate_job_retires_200_servers_instances_within_the_job_quotas(
    aws_env: None, clock: SimulatedClock
) -> None:
    # How the launch coordinator retires a batch's test instances: TerminateTargetInstances
    # takes 1-200 servers, and its job counts against the same quotas as launches.
    settings = EmulatorSettings(quotas=QuotaLimits(replicating_servers=202))
    for emulator in serve(MgnEmulator(InMemoryEc2(), clock=clock, settings=settings)):
        mgn = client_for(emulator)
        ids = [seed_ready(emulator, f"vm{index}").source_server_id for index in range(202)]
        mgn.start_test(sourceServerIDs=ids[:200])
        clock.advance(AFTER_LAUNCH)
        mgn.start_test(sourceServerIDs=ids[200:])
        clock.advance(AFTER_LAUNCH)
        for server_id in ids:
            mgn.change_server_life_cycle_state(
                sourceServerID=server_id, lifeCycle={"state": "READY_FOR_CUTOVER"}
            )

        with pytest.raises(mgn.exceptions.ValidationException):
            mgn.terminate_target_instances(sourceServerIDs=ids[:201])
        started = mgn.terminate_target_instances(sourceServerIDs=ids[:200], tags={"k": "v"})
        assert started["job"]["type"] == "TERMINATE"
        assert started["job"]["tags"] == {"k": "v"}
        # 200 servers in an active job: a further job (even a terminate) exceeds the quota
        with pytest.raises(mgn.exceptions.ServiceQuotaExceededException) as refused:
            mgn.terminate_target_instances(sourceServerIDs=ids[200:])
        assert error_body(refused.value)["quotaCode"] == SERVERS_IN_ACTIVE_JOBS_QUOTA

        clock.advance(AFTER_TERMINATE)
        done = job(mgn, started["job"]["jobID"])
        assert done["status"] == "COMPLETED"
        assert {s["launchStatus"] for s in done["participatingServers"]} == {"TERMINATED"}
        assert len(done["participatingServers"]) == 200
        assert all("launchedInstance" not in describe(mgn, server_id) for server_id in ids[:200])
        assert "launchedInstance" in describe(mgn, ids[200])
        # the servers keep their lifecycle state: ready for their cutover
        assert {describe(mgn, i)["lifeCycle"]["state"] for i in ids[:200]} == {"READY_FOR_CUTOVER"}


def test_a_second_job_on_a_busy_server_is_a_conflict(emulator: MgnEmulator, mgn: MgnClient) -> None:
    server = seed_ready(emulator)
    running = mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]

    with pytest.raises(mgn.exceptions.ConflictException) as refused:
        mgn.start_test(sourceServerIDs=[server.source_server_id])

    detail = error_body(refused.value)["errors"][0]
    assert detail["code"] == "JOB_IN_PROGRESS"
    assert running in detail["message"]


def test_concurrent_callers_get_exactly_the_quota(emulator: MgnEmulator) -> None:
    # GIVEN 25 launchable servers and 25 threads, each starting a test at once
    servers = [seed_ready(emulator, f"vm{index}") for index in range(25)]
    clients = {server.source_server_id: client_for(emulator) for server in servers}
    barrier = threading.Barrier(len(servers))

    def start(server: SourceServer) -> str:
        mgn = clients[server.source_server_id]  # clients are thread-safe; sessions are not
        barrier.wait()
        try:
            return mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]
        except mgn.exceptions.ServiceQuotaExceededException:
            return "refused"

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        outcomes = list(pool.map(start, servers))

    # THEN exactly 20 jobs exist, all distinct, and 5 callers were refused
    started = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(started) == 20
    assert len(set(started)) == 20
    assert len(emulator.jobs()) == 20


def test_seeding_refuses_what_mgn_would_never_report_and_the_server_quota(
    clock: SimulatedClock,
) -> None:
    settings = EmulatorSettings(quotas=QuotaLimits(non_archived_servers=1))
    emulator = MgnEmulator(InMemoryEc2(), clock=clock, settings=settings)
    with pytest.raises(ValueError, match="app-"):
        emulator.add_source_server(hostname="web01", application_id="app-1")
    with pytest.raises(ValueError, match="userProvidedID"):
        emulator.add_source_server(hostname="web01", user_provided_id=" padded")
    with pytest.raises(ValueError, match="disk"):
        emulator.add_source_server(hostname="web01", disk_gib=[])
    emulator.add_source_server(hostname="web01")
    emulator.add_source_server(hostname="old-web01", archived=True)  # archived: not counted
    with pytest.raises(ServiceQuotaExceededError):
        emulator.add_source_server(hostname="web02")


# --- Throttling and faults ---------------------------------------------------------------------


def test_throttling_is_recovered_by_boto3_standard_retries(
    emulator: MgnEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep boto3's real retry decisions but not its real sleeps (seconds of jitter).
    delays: list[float] = []
    original_delay = standard.ExponentialBackoff.delay_amount

    def recorded_delay(self: standard.ExponentialBackoff, context: Any) -> float:
        delays.append(original_delay(self, context))
        return 0.0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", recorded_delay)
    seed_ready(emulator)
    emulator.faults.throttle_next_requests(3)
    mgn = client_for(emulator, Config(retries={"mode": "standard", "max_attempts": 10}))

    response = mgn.describe_source_servers()

    assert len(response["items"]) == 1
    assert response["ResponseMetadata"]["RetryAttempts"] == 3
    assert len(delays) == 3
    assert emulator.metrics().throttling_errors == 3


def test_the_token_bucket_answers_429_with_retry_after(
    ec2: EC2Client, clock: SimulatedClock
) -> None:
    settings = EmulatorSettings(request_rate=RequestRateLimit(requests_per_second=0.5, burst=2))
    for emulator in serve(MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=clock, settings=settings)):
        mgn = client_for(emulator)
        mgn.describe_jobs()
        mgn.describe_jobs()
        with pytest.raises(mgn.exceptions.ThrottlingException) as throttled:
            mgn.describe_jobs()
        body = error_body(throttled.value)
        assert body["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert int(body["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
        assert body["retryAfterSeconds"] == body["ResponseMetadata"]["HTTPHeaders"]["retry-after"]


def test_a_throttling_window_lasts_for_simulated_time(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    emulator.faults.throttle_for(timedelta(minutes=5))
    with pytest.raises(mgn.exceptions.ThrottlingException):
        mgn.describe_jobs()
    emulator.clock.advance(timedelta(minutes=5))
    assert mgn.describe_jobs()["items"] == []


def test_a_replication_stall_grows_lag_blocks_launches_and_drains_after(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN a continuously replicating server
    server = seed_ready(emulator)

    # WHEN replication stalls for ten minutes
    emulator.faults.stall_replication(
        server.source_server_id, error=ReplicationError.AGENT_NOT_SEEN
    )
    emulator.clock.advance(timedelta(minutes=10))

    # THEN STALLED with the error, lag grows, and launches are refused with the reason
    info = describe(mgn, server.source_server_id)["dataReplicationInfo"]
    assert info["dataReplicationState"] == "STALLED"
    assert info["dataReplicationError"]["error"] == "AGENT_NOT_SEEN"
    assert info["lagDuration"] == "PT10M"
    assert sum(d["backloggedStorageBytes"] for d in info["replicatedDisks"]) > 0
    with pytest.raises(mgn.exceptions.ConflictException) as refused:
        mgn.start_test(sourceServerIDs=[server.source_server_id])
    assert error_body(refused.value)["errors"][0]["code"] == "REPLICATION_NOT_CONTINUOUS"

    # WHEN the stall ends THEN the backlog drains and replication is CONTINUOUS again
    emulator.faults.clear_replication_stall(server.source_server_id)
    draining = describe(mgn, server.source_server_id)["dataReplicationInfo"]
    assert draining["dataReplicationState"] == "BACKLOG"
    assert draining["lagDuration"] == "PT10M"
    emulator.clock.advance(timedelta(seconds=10))
    recovered = describe(mgn, server.source_server_id)["dataReplicationInfo"]
    assert recovered["dataReplicationState"] == "CONTINUOUS"
    assert recovered["lagDuration"] == "PT0S"


def test_a_stall_during_initial_sync_delays_readiness_until_retried(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = emulator.add_source_server(hostname="web02", disk_gib=[10])
    emulator.faults.stall_replication(server.source_server_id)
    emulator.clock.advance(timedelta(days=1))
    stalled = describe(mgn, server.source_server_id)
    assert stalled["lifeCycle"]["state"] == "NOT_READY"
    assert stalled["dataReplicationInfo"]["dataReplicationState"] == "STALLED"

    # WHEN the pipeline retries replication THEN the stall ends and sync resumes
    mgn.retry_data_replication(sourceServerID=server.source_server_id)
    emulator.clock.advance(ReplicationTiming().initiation + timedelta(minutes=5))
    assert describe(mgn, server.source_server_id)["lifeCycle"]["state"] == "READY_FOR_TEST"


def test_quota_pressure_counts_phantom_jobs_and_servers(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = seed_ready(emulator)
    emulator.faults.apply_quota_pressure(active_jobs=20)
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
        mgn.start_test(sourceServerIDs=[server.source_server_id])
    emulator.faults.apply_quota_pressure(servers_in_active_jobs=200)
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
        mgn.start_test(sourceServerIDs=[server.source_server_id])
    emulator.faults.clear()
    assert mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["status"] == "PENDING"


# --- Wire protocol -----------------------------------------------------------------------------


def test_launch_configuration_updates_and_rejects_unknown_enum_values(
    emulator: MgnEmulator, mgn: MgnClient, ec2: EC2Client
) -> None:
    server = seed_ready(emulator)
    updated = mgn.update_launch_configuration(
        sourceServerID=server.source_server_id,
        name="billing-web",
        copyPrivateIp=True,
        licensing={"osByol": True},
        bootMode="UEFI",
        launchDisposition="STOPPED",
    )
    assert (updated["name"], updated["bootMode"], updated["licensing"]) == (
        "billing-web",
        "UEFI",
        {"osByol": True},
    )
    with pytest.raises(mgn.exceptions.ValidationException) as refused:
        mgn.update_launch_configuration(
            sourceServerID=server.source_server_id,
            launchDisposition="PAUSED",  # type: ignore[arg-type]
        )
    assert "PAUSED" in error_body(refused.value)["message"]
    fetched = mgn.get_launch_configuration(sourceServerID=server.source_server_id)
    assert fetched["launchDisposition"] == "STOPPED"
    templates = ec2.describe_launch_templates(LaunchTemplateIds=[fetched["ec2LaunchTemplateID"]])
    assert len(templates["LaunchTemplates"]) == 1
    assert mgn.list_source_server_actions(sourceServerID=server.source_server_id)["items"] == []


def test_invalid_requests_are_validation_exceptions(emulator: MgnEmulator) -> None:
    # Missing a required member, sent by botocore with its own validation off.
    unchecked = client_for(
        emulator, Config(parameter_validation=False, retries={"total_max_attempts": 1})
    )
    with pytest.raises(unchecked.exceptions.ValidationException) as refused:
        unchecked.start_test()  # type: ignore[call-arg]
    assert "sourceServerIDs" in error_body(refused.value)["message"]

    # A malformed ID and a body that is not JSON, sent raw.
    status, headers, body = raw_post(emulator, "/StartTest", b'{"sourceServerIDs": ["nope"]}')
    assert (status, headers["x-amzn-ErrorType"], body["reason"]) == (
        400,
        "ValidationException",
        "fieldValidationFailed",
    )
    status, _, body = raw_post(emulator, "/DescribeJobs", b"{not json")
    assert (status, body["reason"]) == (400, "cannotParse")


def test_unknown_operations_are_404_with_a_clear_message(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    status, headers, body = raw_post(emulator, "/LaunchEverything", b"{}")
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "POST /<OperationName>" in body["message"]
    with pytest.raises(ClientError) as not_emulated:
        mgn.list_imports()
    assert not_emulated.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "ListImports is not emulated" in not_emulated.value.response["Error"]["Message"]


def test_an_uninitialized_account_must_call_initialize_service(
    ec2: EC2Client, clock: SimulatedClock
) -> None:
    settings = EmulatorSettings(initialized=False)
    for emulator in serve(MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=clock, settings=settings)):
        mgn = client_for(emulator)
        with pytest.raises(mgn.exceptions.UninitializedAccountException):
            mgn.describe_source_servers()
        assert mgn.initialize_service()["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert mgn.describe_source_servers()["items"] == []


def test_describe_jobs_is_newest_first_filtered_and_paginated(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    servers = [seed_ready(emulator, f"vm{index}") for index in range(4)]
    job_ids = []
    for server in servers:
        job_ids.append(mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"])
        emulator.clock.advance(timedelta(hours=1))

    pages = list(mgn.get_paginator("describe_jobs").paginate(PaginationConfig={"PageSize": 3}))
    assert [item["jobID"] for page in pages for item in page["items"]] == job_ids[::-1]
    assert len(pages) == 2
    window = mgn.describe_jobs(
        filters={"fromDate": "2026-01-05T09:30:00Z", "toDate": "2026-01-05T11:00:00Z"}
    )
    assert [item["jobID"] for item in window["items"]] == job_ids[2:0:-1]
    summaries = emulator.jobs()
    assert [summary.job_id for summary in summaries] == job_ids
    assert all(summary.status is JobStatus.COMPLETED for summary in summaries)
    assert summaries[0].job_type is JobType.LAUNCH
    assert summaries[0].initiated_by is InitiatedBy.START_TEST
    assert summaries[0].participants[0].launch_status is LaunchStatus.LAUNCHED


def test_the_endpoint_environment_variable_routes_an_unmodified_client(
    emulator: MgnEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = seed_ready(emulator)
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    plain = boto3.client("mgn", region_name=REGION)
    assert plain.describe_source_servers()["items"][0]["sourceServerID"] == server.source_server_id
    assert emulator.metrics().calls_by_operation["DescribeSourceServers"] == 1


def test_a_response_that_breaks_the_model_is_a_loud_500(
    emulator: MgnEmulator, mgn: MgnClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = seed_ready(emulator)
    monkeypatch.setattr(
        "orchestration.local.mgn.operations.render_launch_configuration",
        lambda server_id, configuration: {"sourceServerID": server_id, "bootMode": "SIDEWAYS"},
    )
    with pytest.raises(ClientError) as broken:
        mgn.get_launch_configuration(sourceServerID=server.source_server_id)
    assert broken.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "SIDEWAYS" in broken.value.response["Error"]["Message"]
    assert emulator.metrics().invalid_responses == 1

    # AND an operation that crashes still answers (500), rather than dropping the connection
    def crash(server: object, now: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr("orchestration.local.mgn.operations.render_source_server", crash)
    with pytest.raises(ClientError) as crashed:
        mgn.describe_source_servers()
    assert crashed.value.response["Error"]["Code"] == "InternalServerException"
    assert "boom" in crashed.value.response["Error"]["Message"]
    emulator.reset_metrics()  # the fixture's closing check is about genuine responses


def test_on_a_running_clock_instances_appear_in_ec2_without_any_mgn_request(
    ec2: EC2Client,
) -> None:
    # GIVEN a clock at 60,000x (a 10.5-minute launch takes ~10 ms) and a background settle
    clock = SimulatedClock(speed=60_000, start=START)
    settings = EmulatorSettings(background_settle_seconds=0.01)
    for emulator in serve(MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=clock, settings=settings)):
        server = seed_ready(emulator)
        client_for(emulator).start_test(sourceServerIDs=[server.source_server_id])

        # WHEN only EC2 is watched
        deadline = time.monotonic() + 5
        reservations: list[Any] = []
        while not reservations and time.monotonic() < deadline:
            time.sleep(0.01)
            reservations = list(ec2.describe_instances()["Reservations"])

        # THEN the test instance appeared on its own
        assert len(reservations) == 1
        tags = {tag["Key"]: tag["Value"] for tag in reservations[0]["Instances"][0]["Tags"]}
        assert tags[SOURCE_SERVER_ID_TAG] == server.source_server_id


# --- Units the wire tests lean on --------------------------------------------------------------


def test_the_simulated_clock_runs_at_its_speed_and_advances_by_hand() -> None:
    real = [100.0]
    clock = SimulatedClock(speed=600, start=START, real_time=lambda: real[0])
    real[0] += 2.0
    assert clock.now() == START + timedelta(minutes=20)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(hours=1, minutes=20)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


# --- Waves and applications ------------------------------------------------------------------


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_waves_are_created_listed_updated_and_named_once(mgn: MgnClient) -> None:
    created = mgn.create_wave(name="wave-1", description="first", tags={"managed-by": "x"})

    assert created["waveID"].startswith("wave-")
    assert len(created["waveID"]) == 22
    assert created["arn"].endswith(f":wave/{created['waveID']}")
    assert created["waveAggregatedStatus"]["totalApplications"] == 0
    with pytest.raises(ClientError) as taken:
        mgn.create_wave(name="wave-1")
    assert error_code(taken) == "ConflictException"
    assert error_body(taken.value)["errors"][0]["code"] == "NAME_IN_USE"
    assert error_body(taken.value)["resourceId"] == created["waveID"]
    renamed = mgn.update_wave(waveID=created["waveID"], name="wave-one", description="1st")
    assert (renamed["name"], renamed["description"]) == ("wave-one", "1st")
    second = mgn.create_wave(name="wave-1")  # the old name is free again
    listed = mgn.list_waves()["items"]
    assert [(w["waveID"], w["name"]) for w in listed] == [
        (created["waveID"], "wave-one"),
        (second["waveID"], "wave-1"),
    ]
    assert listed[0]["tags"] == {"managed-by": "x"}
    only = mgn.list_waves(filters={"waveIDs": [second["waveID"]]})["items"]
    assert [w["waveID"] for w in only] == [second["waveID"]]


def test_list_waves_and_applications_paginate_with_boto3s_paginators(mgn: MgnClient) -> None:
    wave_ids = [mgn.create_wave(name=f"w{i}")["waveID"] for i in range(5)]
    app_ids = [mgn.create_application(name=f"a{i}")["applicationID"] for i in range(5)]

    waves = mgn.get_paginator("list_waves").paginate(PaginationConfig={"PageSize": 2})
    apps = mgn.get_paginator("list_applications").paginate(PaginationConfig={"PageSize": 2})
    assert [w["waveID"] for page in waves for w in page["items"]] == wave_ids
    assert [a["applicationID"] for page in apps for a in page["items"]] == app_ids


def test_applications_join_one_wave_and_servers_one_application(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    wave = mgn.create_wave(name="wave-1")["waveID"]
    other_wave = mgn.create_wave(name="wave-2")["waveID"]
    app = mgn.create_application(name="wave-1/intranet")["applicationID"]
    other_app = mgn.create_application(name="wave-2/intranet")["applicationID"]
    server = seed_ready(emulator).source_server_id

    mgn.associate_applications(waveID=wave, applicationIDs=[app])
    mgn.associate_applications(waveID=wave, applicationIDs=[app])  # again: nothing changes
    mgn.associate_source_servers(applicationID=app, sourceServerIDs=[server])

    assert describe(mgn, server)["applicationID"] == app
    listed = mgn.list_applications(filters={"waveIDs": [wave]})["items"]
    assert [(a["applicationID"], a["waveID"]) for a in listed] == [(app, wave)]
    assert listed[0]["applicationAggregatedStatus"]["totalSourceServers"] == 1
    assert (
        mgn.list_waves(filters={"waveIDs": [wave]})["items"][0]["waveAggregatedStatus"][
            "totalApplications"
        ]
        == 1
    )
    filtered = mgn.describe_source_servers(filters={"applicationIDs": [app]})["items"]
    assert [s["sourceServerID"] for s in filtered] == [server]
    with pytest.raises(ClientError) as in_other_wave:
        mgn.associate_applications(waveID=other_wave, applicationIDs=[app])
    assert error_code(in_other_wave) == "ConflictException"
    assert error_body(in_other_wave.value)["errors"] == [
        {
            "message": error_body(in_other_wave.value)["errors"][0]["message"],
            "code": "APPLICATION_IN_OTHER_WAVE",
            "resourceId": app,
            "resourceType": "APPLICATION",
        }
    ]
    with pytest.raises(ClientError) as in_other_app:
        mgn.associate_source_servers(applicationID=other_app, sourceServerIDs=[server])
    assert error_body(in_other_app.value)["errors"][0]["code"] == (
        "SOURCE_SERVER_IN_OTHER_APPLICATION"
    )
    assert describe(mgn, server)["applicationID"] == app  # a refused call changed nothing

    mgn.disassociate_source_servers(applicationID=app, sourceServerIDs=[server])
    mgn.associate_source_servers(applicationID=other_app, sourceServerIDs=[server])
    assert describe(mgn, server)["applicationID"] == other_app
    with pytest.raises(ClientError) as not_member:
        mgn.disassociate_source_servers(applicationID=app, sourceServerIDs=[server])
    assert error_body(not_member.value)["errors"][0]["code"] == "SOURCE_SERVER_NOT_IN_APPLICATION"
    mgn.disassociate_applications(waveID=wave, applicationIDs=[app])
    assert "waveID" not in mgn.list_applications(filters={"applicationIDs": [app]})["items"][0]


def test_archiving_needs_an_empty_resource_and_archived_ones_take_no_associations(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    wave = mgn.create_wave(name="wave-1")["waveID"]
    app = mgn.create_application(name="wave-1/intranet")["applicationID"]
    server = seed_ready(emulator).source_server_id
    mgn.associate_applications(waveID=wave, applicationIDs=[app])
    mgn.associate_source_servers(applicationID=app, sourceServerIDs=[server])

    for archive, not_empty in (
        (lambda: mgn.archive_wave(waveID=wave), wave),
        (lambda: mgn.archive_application(applicationID=app), app),
    ):
        with pytest.raises(ClientError) as refused:
            archive()
        assert error_code(refused) == "ConflictException"
        assert (
            error_body(refused.value)["errors"][0]["code"],
            error_body(refused.value)["resourceId"],
        ) == (
            "RESOURCE_NOT_EMPTY",
            not_empty,
        )
    mgn.disassociate_source_servers(applicationID=app, sourceServerIDs=[server])
    assert mgn.archive_application(applicationID=app)["isArchived"] is True
    assert mgn.archive_wave(waveID=wave)["isArchived"] is True  # its one app is archived
    assert [w["waveID"] for w in mgn.list_waves(filters={"isArchived": False})["items"]] == []

    with pytest.raises(ClientError) as archived_app:
        mgn.associate_source_servers(applicationID=app, sourceServerIDs=[server])
    with pytest.raises(ClientError) as archived_wave:
        mgn.associate_applications(waveID=wave, applicationIDs=[app])
    with pytest.raises(ClientError) as name_of_archived:
        mgn.create_application(name="wave-1/intranet")
    for refused in (archived_app, archived_wave, name_of_archived):
        assert error_code(refused) == "ConflictException"
    assert "unarchive it" in error_body(name_of_archived.value)["message"]
    assert mgn.unarchive_wave(waveID=wave)["isArchived"] is False
    assert mgn.unarchive_application(applicationID=app)["isArchived"] is False
    mgn.associate_applications(waveID=wave, applicationIDs=[app])
    mgn.associate_source_servers(applicationID=app, sourceServerIDs=[server])
    assert describe(mgn, server)["applicationID"] == app


def test_unknown_waves_applications_and_servers_are_resource_not_found(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    app = mgn.create_application(name="intranet")["applicationID"]
    missing_wave, missing_app = "wave-00000000000000000", "app-00000000000000000"

    cases: list[tuple[Callable[[], object], str, str]] = [
        (lambda: mgn.update_wave(waveID=missing_wave, name="x"), missing_wave, "WAVE"),
        (lambda: mgn.archive_application(applicationID=missing_app), missing_app, "APPLICATION"),
        (
            lambda: mgn.associate_source_servers(
                applicationID=app, sourceServerIDs=["s-00000000000000000"]
            ),
            "s-00000000000000000",
            "SOURCE_SERVER",
        ),
    ]
    for call, resource_id, resource_type in cases:
        with pytest.raises(ClientError) as missing:
            call()
        assert error_code(missing) == "ResourceNotFoundException"
        body = error_body(missing.value)
        assert (body["resourceId"], body["resourceType"]) == (resource_id, resource_type)


def test_batch_calls_take_at_most_fifty_ids(emulator: MgnEmulator, mgn: MgnClient) -> None:
    wave = mgn.create_wave(name="wave-1")["waveID"]
    app = mgn.create_application(name="big")["applicationID"]
    servers = [
        emulator.add_source_server(hostname=f"vm{i:02d}").source_server_id for i in range(51)
    ]

    mgn.associate_source_servers(applicationID=app, sourceServerIDs=servers[:50])
    too_long: list[Callable[[], object]] = [
        lambda: mgn.associate_source_servers(applicationID=app, sourceServerIDs=servers),
        lambda: mgn.disassociate_source_servers(applicationID=app, sourceServerIDs=servers),
        lambda: mgn.associate_applications(waveID=wave, applicationIDs=[app] * 51),
    ]
    for call in too_long:
        with pytest.raises(ClientError) as too_many:
            call()
        assert error_code(too_many) == "ValidationException"
        assert "above the maximum 50" in error_body(too_many.value)["message"]
    assert describe(mgn, servers[50]).get("applicationID") is None


def test_wave_application_and_membership_quotas(ec2: EC2Client, clock: SimulatedClock) -> None:
    quotas = QuotaLimits(active_waves=2, active_applications=1, servers_per_application=2)
    with contextmanager(serve)(
        MgnEmulator(
            Boto3Ec2LaunchPort(ec2), clock=clock, settings=EmulatorSettings(seed=7, quotas=quotas)
        )
    ) as emulator:
        mgn = client_for(emulator)
        first = mgn.create_wave(name="w1")["waveID"]
        mgn.create_wave(name="w2")
        app = mgn.create_application(name="a1")["applicationID"]
        servers = [seed_ready(emulator, f"vm{i}").source_server_id for i in range(3)]
        mgn.associate_source_servers(applicationID=app, sourceServerIDs=servers[:2])

        refusals = []
        calls: list[Callable[[], object]] = [
            lambda: mgn.create_wave(name="w3"),
            lambda: mgn.create_application(name="a2"),
            lambda: mgn.associate_source_servers(applicationID=app, sourceServerIDs=servers[2:]),
        ]
        for call in calls:
            with pytest.raises(ClientError) as full:
                call()
            assert error_code(full) == "ServiceQuotaExceededException"
            refusals.append(
                (error_body(full.value)["quotaCode"], error_body(full.value)["quotaValue"])
            )
        assert refusals == [
            ("ActiveWaves", 2),
            ("ActiveApplications", 1),
            ("SourceServersPerApplication", 2),
        ]
        mgn.archive_wave(waveID=first)
        mgn.create_wave(name="w3")  # an archived wave frees its place
        with pytest.raises(ClientError) as unarchive:
            mgn.unarchive_wave(waveID=first)
        assert error_code(unarchive) == "ServiceQuotaExceededException"


@pytest.mark.parametrize(
    ("enum", "shape_name"),
    [
        (LifeCycleState, "LifeCycleState"),
        (DataReplicationState, "DataReplicationState"),
        (JobStatus, "JobStatus"),
        (JobType, "JobType"),
        (InitiatedBy, "InitiatedBy"),
        (LaunchStatus, "LaunchStatus"),
        (JobLogEvent, "JobLogEvent"),
        (ReplicationError, "DataReplicationErrorString"),
    ],
)
def test_the_emulators_vocabulary_is_the_models(enum: type[Any], shape_name: str) -> None:
    shape = mgn_service_model().shape_for(shape_name)
    assert isinstance(shape, StringShape)
    model_values = set(shape.enum)
    assert {member.value for member in enum} <= model_values


def test_every_response_in_this_session_matched_the_model() -> None:
    # Runs last in this file: every emulator above recorded its metrics at teardown.
    for metrics in _SUITE_METRICS:
        check_every_response_matched_the_model(metrics)
    assert sum(metrics.invalid_responses for metrics in _SUITE_METRICS) == 0


def test_a_server_can_be_seeded_with_the_id_a_manifest_names(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = emulator.add_source_server(
        hostname="billing-web-01", source_server_id="s-1a2b3c4d5e6f70801"
    )

    assert server.source_server_id == "s-1a2b3c4d5e6f70801"
    assert describe(mgn, "s-1a2b3c4d5e6f70801")["sourceServerID"] == "s-1a2b3c4d5e6f70801"
    with pytest.raises(ValueError, match="already exists"):
        emulator.add_source_server(hostname="other", source_server_id="s-1a2b3c4d5e6f70801")
    with pytest.raises(ValueError, match="never report"):
        emulator.add_source_server(hostname="bad", source_server_id="s-short")


def test_source_servers_are_tagged_untagged_and_described_with_their_tags(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = seed_ready(emulator)
    arn = describe(mgn, server.source_server_id)["arn"]

    mgn.tag_resource(resourceArn=arn, tags={"wavepilot:post-launch-actions": "set", "team": "a"})

    assert describe(mgn, server.source_server_id)["tags"] == {
        "wavepilot:post-launch-actions": "set",
        "team": "a",
    }
    mgn.untag_resource(resourceArn=arn, tagKeys=["wavepilot:post-launch-actions", "absent"])
    assert mgn.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a"}
    # AND an ARN MGN does not know is refused with MGN's error
    with pytest.raises(ClientError) as refused:
        mgn.list_tags_for_resource(resourceArn=arn.replace(server.source_server_id, "s-0"))
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    check_every_response_matched_the_model(emulator.metrics())
