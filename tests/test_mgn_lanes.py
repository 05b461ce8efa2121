"""Lanes: one MGN endpoint hosting several target accounts and Regions (DESIGN.md decision 12).

Every client is a real boto3 `mgn` (or `ec2`) client signed with credentials from moto's STS
`AssumeRole` in the lane's account and with the lane's Region, exactly as the pipeline will
build them; the fleet tells the lanes apart from the requests alone. EC2 is moto in-process
(`mock_aws`), whose backends are per account and Region too. The clock is frozen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from orchestration.local.mgn import (
    CONCURRENT_JOBS_QUOTA,
    MGN_SERVICE_ROLE_NAME,
    SERVERS_IN_ACTIVE_JOBS_QUOTA,
    AssumedRoleEc2Ports,
    EmulatorSettings,
    JobTiming,
    LaneId,
    MgnFleet,
    QuotaLimits,
    ResourceNotFoundError,
    SimulatedClock,
    SourceServer,
    signed_by,
)
from orchestration.local.runtime import LOCAL_ACCOUNT_ID, LOCAL_REGION

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_mgn.client import MgnClient

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AFTER_LAUNCH = JobTiming().launch_total + timedelta(seconds=1)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})

HUB = LaneId(LOCAL_ACCOUNT_ID, LOCAL_REGION)
# The example waves' three lanes: two accounts, two Regions.
WAVE_1 = LaneId("111122223333", "us-east-1")
WAVE_2 = LaneId("444455556666", "us-east-1")
WAVE_3 = LaneId("444455556666", "eu-west-1")
TARGETS = (WAVE_1, WAVE_2, WAVE_3)
NEVER_SET_UP = LaneId("777788889999", "ap-southeast-2")


class InMemoryEc2:
    """An `Ec2LaunchPort` for the 200-server case, where only MGN's side matters."""

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
        pass


@pytest.fixture
def moto(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_MGN", raising=False)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield


@pytest.fixture
def fleet(moto: None) -> Iterator[MgnFleet]:
    fleet = MgnFleet(
        AssumedRoleEc2Ports(),
        clock=SimulatedClock(speed=0, start=START),
        settings=EmulatorSettings(account_id=HUB.account_id, region=HUB.region, seed=7),
    )
    for lane in TARGETS:
        fleet.add_lane(lane.account_id, lane.region)
    with fleet.serve():
        yield fleet
    for metrics in fleet.metrics().by_lane.values():
        assert metrics.invalid_responses == 0


def session_in(lane: LaneId) -> boto3.session.Session:
    """A session with a role's credentials in the lane's account, from moto's STS, and the
    lane's Region: how the pipeline will reach a target."""
    role_arn = f"arn:aws:iam::{lane.account_id}:role/wavepilot-target"
    sts: Any = boto3.client("sts")
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName="wavepilot")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
        region_name=lane.region,
    )


def mgn_in(fleet: MgnFleet, lane: LaneId) -> MgnClient:
    return session_in(lane).client("mgn", endpoint_url=fleet.endpoint_url, config=NO_RETRIES)


def ec2_in(lane: LaneId) -> EC2Client:
    return session_in(lane).client("ec2")


def seed_ready(fleet: MgnFleet, lane: LaneId, hostname: str, **extra: Any) -> SourceServer:
    """A server replicating for a day (READY_FOR_TEST) in `lane`."""
    return fleet.add_source_server(
        account_id=lane.account_id,
        region=lane.region,
        hostname=hostname,
        agent_installed_at=fleet.clock.now() - timedelta(days=1),
        **extra,
    )


def server_ids(mgn: MgnClient) -> set[str]:
    return {item["sourceServerID"] for item in mgn.describe_source_servers()["items"]}


def instance_ids(ec2: EC2Client) -> set[str]:
    return {
        instance["InstanceId"]
        for reservation in ec2.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
    }


# --- Routing ---------------------------------------------------------------------------------


def test_a_request_belongs_to_the_account_of_its_key_and_the_region_of_its_signature(
    fleet: MgnFleet,
) -> None:
    # GIVEN a request signed by botocore for a role in 444455556666 and for eu-west-1
    credentials = session_in(WAVE_3).get_credentials()
    assert credentials is not None
    key = credentials.access_key
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={key}/20260105/eu-west-1/mgn/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0123abcd"
    )

    # WHEN the fleet looks at it
    lane = fleet.lane_of({"authorization": authorization})

    # THEN it is that account and Region; moto's placeholder key and no signature are the hub
    assert signed_by(authorization) == (key, "eu-west-1")
    assert lane == WAVE_3
    assert lane.label == "444455556666/eu-west-1"
    placeholder = authorization.replace(key, "testing").replace("eu-west-1", "us-east-1")
    assert fleet.lane_of({"authorization": placeholder}) == HUB
    assert fleet.lane_of({}) == fleet.hub_lane == HUB
    assert signed_by("Bearer abc") is None


def test_the_hub_lane_is_todays_single_lane_and_is_served_by_the_fleet(fleet: MgnFleet) -> None:
    # GIVEN a server seeded without naming a lane
    server = fleet.add_source_server(hostname="hub01")

    # WHEN a client with the runtime's own credentials and Region asks
    hub_client = boto3.client(
        "mgn", region_name=LOCAL_REGION, endpoint_url=fleet.endpoint_url, config=NO_RETRIES
    )

    # THEN it sees the hub's server, whose ARN names the hub account and Region
    items = hub_client.describe_source_servers()["items"]
    assert [item["sourceServerID"] for item in items] == [server.source_server_id]
    assert items[0]["arn"].startswith(f"arn:aws:mgn:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:")
    # AND the hub lane reports the fleet's endpoint and cannot be served on its own
    assert fleet.hub.endpoint_url == fleet.endpoint_url
    assert fleet.environment() == {"AWS_ENDPOINT_URL_MGN": fleet.endpoint_url}
    with pytest.raises(RuntimeError, match="MgnFleet"):
        fleet.hub.start()


# --- State per lane --------------------------------------------------------------------------


def test_servers_seeded_in_a_lane_are_invisible_to_every_other_lane(fleet: MgnFleet) -> None:
    # GIVEN two servers in each of the three target lanes
    seeded = {
        lane: {seed_ready(fleet, lane, f"{lane.region}-{index}") for index in range(2)}
        for lane in TARGETS
    }

    for lane in TARGETS:
        # WHEN each lane's client describes its source servers
        mgn = mgn_in(fleet, lane)
        items = mgn.describe_source_servers()["items"]

        # THEN it sees its own servers only, with ARNs in its account and Region
        assert {item["sourceServerID"] for item in items} == {
            server.source_server_id for server in seeded[lane]
        }
        assert all(
            item["arn"].startswith(f"arn:aws:mgn:{lane.region}:{lane.account_id}:")
            for item in items
        )
        # AND another lane's server is unknown here
        other = next(s for other in TARGETS if other != lane for s in seeded[other])
        with pytest.raises(mgn.exceptions.ResourceNotFoundException):
            mgn.get_launch_configuration(sourceServerID=other.source_server_id)
    assert server_ids(mgn_in(fleet, HUB)) == set()


def test_a_job_launches_its_instance_only_in_its_lanes_account_and_region(
    fleet: MgnFleet,
) -> None:
    # GIVEN a ready server in the eu-west-1 lane of 444455556666
    server = seed_ready(fleet, WAVE_3, "eu01")
    mgn = mgn_in(fleet, WAVE_3)

    # WHEN a test launch runs to the end
    job_id = mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]
    fleet.clock.advance(AFTER_LAUNCH)
    job = mgn.describe_jobs(filters={"jobIDs": [job_id]})["items"][0]

    # THEN the instance exists in that account and Region's EC2, and nowhere else
    assert job["status"] == "COMPLETED"
    launched = job["participatingServers"][0]["launchedEc2InstanceID"]
    assert instance_ids(ec2_in(WAVE_3)) == {launched}
    for other in (HUB, WAVE_1, WAVE_2, LaneId(WAVE_1.account_id, WAVE_3.region)):
        assert instance_ids(ec2_in(other)) == set(), other
    # AND the launch template MGN made for the server is in that lane too
    template = ec2_in(WAVE_3).describe_launch_templates(
        LaunchTemplateIds=[server.ec2_launch_template_id]
    )["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in template] == [f"mgn-{server.source_server_id}"]
    # AND the job is in that lane's list only
    assert [summary.job_id for summary in fleet.lane(*WAVE_3).jobs()] == [job_id]
    assert all(not fleet.lane(*lane).jobs() for lane in (HUB, WAVE_1, WAVE_2))


def test_each_lane_assumes_mgns_service_role_in_its_own_account() -> None:
    ports = AssumedRoleEc2Ports()

    assert (
        ports.role_arn("444455556666") == f"arn:aws:iam::444455556666:role/{MGN_SERVICE_ROLE_NAME}"
    )


# --- Quotas per lane -------------------------------------------------------------------------


def test_twenty_jobs_in_one_lane_do_not_stop_another_lane_from_starting_one(
    fleet: MgnFleet,
) -> None:
    # GIVEN 21 ready servers in one lane and one in another
    crowded = [seed_ready(fleet, WAVE_1, f"web{index:02}") for index in range(21)]
    other = seed_ready(fleet, WAVE_2, "app01")
    mgn = mgn_in(fleet, WAVE_1)

    # WHEN 20 jobs start in the first lane
    for server in crowded[:20]:
        mgn.start_test(sourceServerIDs=[server.source_server_id])

    # THEN the 21st is refused there
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException) as refused:
        mgn.start_test(sourceServerIDs=[crowded[20].source_server_id])
    assert refused.value.response["quotaCode"] == CONCURRENT_JOBS_QUOTA  # type: ignore[typeddict-item]
    # AND the other lane still starts a job
    started = mgn_in(fleet, WAVE_2).start_test(sourceServerIDs=[other.source_server_id])
    assert started["job"]["status"] == "PENDING"
    # AND the refusal is counted in the crowded lane only
    metrics = fleet.metrics().by_lane
    assert metrics[WAVE_1].quota_errors == 1
    assert metrics[WAVE_2].quota_errors == 0


def test_two_hundred_servers_in_flight_in_one_lane_do_not_block_another(moto: None) -> None:
    # GIVEN a fleet whose lanes launch into in-memory EC2, 201 ready servers in one lane and
    # one in another
    ec2_by_lane: dict[LaneId, InMemoryEc2] = {}

    def ec2_for(account_id: str, region: str) -> InMemoryEc2:
        return ec2_by_lane.setdefault(LaneId(account_id, region), InMemoryEc2())

    fleet = MgnFleet(
        ec2_for,
        clock=SimulatedClock(speed=0, start=START),
        # The replicating-servers quota (150, adjustable) is raised so all 201 replicate.
        settings=EmulatorSettings(
            check_responses=False, quotas=QuotaLimits(replicating_servers=201)
        ),
    )
    crowded = [seed_ready(fleet, WAVE_1, f"vm{index:03}") for index in range(201)]
    other = seed_ready(fleet, WAVE_3, "eu01")
    with fleet.serve():
        mgn = mgn_in(fleet, WAVE_1)
        # WHEN 200 servers are in one active job there
        mgn.start_test(sourceServerIDs=[server.source_server_id for server in crowded[:200]])

        # THEN one more server is refused in that lane
        with pytest.raises(mgn.exceptions.ServiceQuotaExceededException) as refused:
            mgn.start_test(sourceServerIDs=[crowded[200].source_server_id])
        quota_code = refused.value.response["quotaCode"]  # type: ignore[typeddict-item]
        assert quota_code == SERVERS_IN_ACTIVE_JOBS_QUOTA
        # AND another lane starts its own job
        started = mgn_in(fleet, WAVE_3).start_test(sourceServerIDs=[other.source_server_id])
        assert started["job"]["participatingServers"][0]["sourceServerID"] == (
            other.source_server_id
        )
    # AND only the lanes that launched built an EC2 port (the hub never needed one)
    assert set(ec2_by_lane) == {WAVE_1, WAVE_3}


def test_a_lane_can_have_settings_of_its_own(fleet: MgnFleet) -> None:
    # GIVEN a lane allowed one concurrent job
    lane = LaneId("121212121212", "eu-central-1")
    fleet.add_lane(*lane, settings=EmulatorSettings(quotas=QuotaLimits(concurrent_jobs=1), seed=3))
    first, second = (seed_ready(fleet, lane, name) for name in ("a01", "a02"))
    mgn = mgn_in(fleet, lane)

    # WHEN two jobs start there
    mgn.start_test(sourceServerIDs=[first.source_server_id])

    # THEN the second is refused, while the fleet's template still allows 20 elsewhere
    with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
        mgn.start_test(sourceServerIDs=[second.source_server_id])
    assert fleet.lane(*lane).settings.account_id == lane.account_id
    assert fleet.lane(*WAVE_1).settings.quotas.concurrent_jobs == 20
    with pytest.raises(ValueError, match="already exists"):
        fleet.add_lane(*lane)


# --- Initialization per lane -----------------------------------------------------------------


def test_a_lane_nobody_set_up_is_uninitialized_until_initialize_service(fleet: MgnFleet) -> None:
    # GIVEN a client for an account and Region where MGN was never initialized
    mgn = mgn_in(fleet, NEVER_SET_UP)

    # WHEN it describes source servers or starts a launch
    # THEN MGN's UninitializedAccountException, as on AWS
    with pytest.raises(mgn.exceptions.UninitializedAccountException):
        mgn.describe_source_servers()
    with pytest.raises(mgn.exceptions.UninitializedAccountException):
        mgn.describe_jobs()
    # AND the initialized lanes are unaffected
    assert server_ids(mgn_in(fleet, WAVE_1)) == set()

    # WHEN InitializeService is called there
    mgn.initialize_service()

    # THEN that lane answers from then on, empty
    assert mgn.describe_source_servers()["items"] == []
    assert NEVER_SET_UP in fleet.lanes()


def test_a_lane_added_uninitialized_answers_uninitialized_account(fleet: MgnFleet) -> None:
    lane = LaneId("555566667777", "us-west-2")
    fleet.add_lane(*lane, initialized=False)
    mgn = mgn_in(fleet, lane)

    with pytest.raises(mgn.exceptions.UninitializedAccountException):
        mgn.describe_source_servers()
    mgn.initialize_service()
    assert mgn.describe_source_servers()["items"] == []


# --- Metrics per lane ------------------------------------------------------------------------


def test_calls_are_counted_per_lane(fleet: MgnFleet) -> None:
    # GIVEN some calls in two lanes and the hub, and one in a lane nobody set up
    for _ in range(3):
        mgn_in(fleet, WAVE_1).describe_source_servers()
    mgn_in(fleet, WAVE_3).describe_jobs()
    boto3.client(
        "mgn", region_name=LOCAL_REGION, endpoint_url=fleet.endpoint_url
    ).describe_source_servers()
    with pytest.raises(Exception, match="UninitializedAccount"):
        mgn_in(fleet, NEVER_SET_UP).describe_source_servers()

    # WHEN the fleet's metrics are read
    metrics = fleet.metrics()

    # THEN calls are by "account/region", each lane with its own operations and errors
    assert metrics.calls_by_lane == {
        "111122223333/us-east-1": 3,
        "123456789012/us-east-1": 1,
        "444455556666/eu-west-1": 1,
        "444455556666/us-east-1": 0,
        "777788889999/ap-southeast-2": 1,
    }
    assert metrics.total_calls == 6
    assert dict(metrics.by_lane[WAVE_1].calls_by_operation) == {"DescribeSourceServers": 3}
    assert dict(metrics.by_lane[NEVER_SET_UP].errors_by_code) == {
        "UninitializedAccountException": 1
    }
    # AND a reset clears every lane
    fleet.reset_metrics()
    assert fleet.metrics().total_calls == 0


def test_seeded_fleets_give_each_lane_reproducible_ids_of_its_own() -> None:
    def fleet_ids() -> list[str]:
        fleet = MgnFleet(
            lambda account_id, region: InMemoryEc2(),
            clock=SimulatedClock(speed=0, start=START),
            settings=EmulatorSettings(seed=11),
        )
        return [
            fleet.add_source_server(
                account_id=lane.account_id, region=lane.region, hostname="same"
            ).source_server_id
            for lane in (HUB, *TARGETS)
        ]

    first = fleet_ids()

    assert len(set(first)) == 4
    assert fleet_ids() == first


def test_quota_rejections_and_replication_timelines_are_read_over_every_lane(
    moto: None,
) -> None:
    # GIVEN a fleet allowing one job at a time per lane, two lanes with two ready servers each,
    # and one new server given its own bandwidth
    fleet = MgnFleet(
        lambda account_id, region: InMemoryEc2(),
        clock=SimulatedClock(speed=0, start=START),
        settings=EmulatorSettings(seed=5, quotas=QuotaLimits(concurrent_jobs=1)),
    )
    servers = {lane: [seed_ready(fleet, lane, f"vm{n}") for n in range(2)] for lane in TARGETS[:2]}
    installed = fleet.clock.now()
    slow = fleet.add_source_server(
        account_id=WAVE_3.account_id,
        region=WAVE_3.region,
        hostname="slow01",
        disk_gib=[10],
        replication_bytes_per_second=1e6,
    )
    with fleet.serve():
        # WHEN each lane refuses a second job, the second lane a minute later
        for lane in TARGETS[:2]:
            mgn = mgn_in(fleet, lane)
            first, second = (server.source_server_id for server in servers[lane])
            mgn.start_test(sourceServerIDs=[first])
            with pytest.raises(mgn.exceptions.ServiceQuotaExceededException):
                mgn.start_test(sourceServerIDs=[second])
            fleet.clock.advance(timedelta(minutes=1))

    # THEN the fleet lists both refusals, oldest first, each naming its lane
    rejections = fleet.quota_rejections()
    assert [(r.lane_label, r.operation, r.source_server_ids) for r in rejections] == [
        (lane.label, "StartTest", (servers[lane][1].source_server_id,)) for lane in TARGETS[:2]
    ]
    assert rejections[1].at - rejections[0].at == timedelta(minutes=1)
    # AND a server's replication timeline is found in its lane, at its own bandwidth
    timeline = fleet.replication_timeline(slow.source_server_id)
    assert timeline.started_at == installed
    assert timeline.ready_at == installed + timedelta(minutes=10, seconds=10 * 1024**3 / 1e6)
    with pytest.raises(ResourceNotFoundError):
        fleet.replication_timeline("s-00000000000000000")
