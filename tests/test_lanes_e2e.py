"""Each wave runs in its own target account and Region (a lane), end to end on the embedded
system: the steps reach each lane through its Wavepilot role, MGN's quotas are per lane, and
a lane that cannot be used is refused by validate_input before anything is touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from orchestration.local.demo import launched_lanes
from orchestration.local.driver import MigrationDriver
from orchestration.local.estate import HUB_LANE, lane_of_spec
from orchestration.local.mgn import SOURCE_SERVER_ID_TAG, LaneId
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
WAVE_1 = LaneId("111122223333", "us-east-1")
WAVE_2 = LaneId("444455556666", "us-east-1")
WAVE_3 = LaneId("444455556666", "eu-west-1")


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _one_per_wave() -> list[MigrationRequest]:
    return [example_requests(wave)[0] for wave in ("wave-1", "wave-2", "wave-3")]


def _instances(ec2: Any) -> dict[str, str]:
    """Instance ID -> source server ID, of every instance MGN launched there."""
    found: dict[str, str] = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            if SOURCE_SERVER_ID_TAG in tags:
                found[instance["InstanceId"]] = tags[SOURCE_SERVER_ID_TAG]
    return found


def _failure(outcome: Any) -> str:
    """Why it failed, as its rollback reported it (the step's error and message)."""
    message = str(next(s["message"] for s in outcome.steps if s["step"] == "Rollback"))
    assert message.startswith("rolled back after ValidateInput (PrerequisiteError): "), message
    return message


def test_three_waves_migrate_in_three_lanes_with_quotas_per_lane(system: EmbeddedSystem) -> None:
    # GIVEN one VM of each example wave: two accounts, two Regions
    requests = _one_per_wave()
    specs = [spec_of(r) for r in requests]
    assert [lane_of_spec(s) for s in specs] == [WAVE_1, WAVE_2, WAVE_3]
    servers = system.seed(specs)
    driver = MigrationDriver(system)
    # AND wave-1's lane is full: 200 servers in flight in active jobs (another team's)
    assert system.mgn_fleet is not None
    full = system.mgn_fleet.lane(*WAVE_1)
    full.faults.apply_quota_pressure(servers_in_active_jobs=200)

    # WHEN all three are published
    driver.send(requests)
    others = [requests[1].migration_id, requests[2].migration_id]
    first = driver.wait(others, timeout=120)

    # THEN the waves in the other lanes migrate while wave-1's lane is full
    assert {o.status for o in first.values()} == {"SUCCEEDED"}, [o.cause for o in first.values()]
    assert full.metrics().quota_errors >= 1
    held = driver.wait([requests[0].migration_id], timeout=0.1)[requests[0].migration_id]
    assert held.status == "RUNNING"
    # AND once the other team's jobs finish, wave-1 migrates too
    full.faults.apply_quota_pressure(servers_in_active_jobs=0)
    last = driver.wait([requests[0].migration_id], timeout=120)[requests[0].migration_id]
    assert last.status == "SUCCEEDED", last.cause

    # AND each instance exists only in its own lane (none in the hub)
    by_lane = {lane: _instances(system.lane_ec2(lane)) for lane in (WAVE_1, WAVE_2, WAVE_3)}
    for request, lane in zip(requests, (WAVE_1, WAVE_2, WAVE_3), strict=True):
        server_id = servers[request.migration_id]
        assert server_id in by_lane[lane].values()
        assert all(server_id not in other.values() for key, other in by_lane.items() if key != lane)
    assert _instances(system.client("ec2")) == {}
    # AND the emulator recorded each launch in the request's lane; MGN calls went to all three
    assert launched_lanes(system, servers) == {
        r.migration_id: lane for r, lane in zip(requests, (WAVE_1, WAVE_2, WAVE_3), strict=True)
    }
    calls = system.mgn_fleet.metrics().calls_by_lane
    assert all(calls[lane.label] > 0 for lane in (WAVE_1, WAVE_2, WAVE_3))
    assert calls.get(HUB_LANE.label, 0) == 0


def test_a_lane_without_the_role_or_without_mgn_is_refused_and_nothing_is_created(
    system: EmbeddedSystem,
) -> None:
    # GIVEN wave-1's account has no Wavepilot role, and MGN was never initialized in
    # wave-3's Region (its agents were installed, say, before someone reset the account)
    assert system.mgn_fleet is not None
    system.mgn_fleet.add_lane(*WAVE_3, initialized=False)
    wave_1, _, wave_3 = _one_per_wave()
    system.seed([spec_of(wave_1), spec_of(wave_3)], accounts_without_role={WAVE_1.account_id})
    driver = MigrationDriver(system)
    templates_before = {
        lane: _template_versions(system.lane_ec2(lane)) for lane in (WAVE_1, WAVE_3, HUB_LANE)
    }

    # WHEN both are published
    driver.send([wave_1, wave_3])
    outcomes = driver.wait([wave_1.migration_id, wave_3.migration_id], timeout=90)

    # THEN validate_input refuses each, saying which account, Region and role, and what to do
    no_role, uninitialized = outcomes[wave_1.migration_id], outcomes[wave_3.migration_id]
    assert (no_role.status, no_role.record_status) == ("FAILED", "ROLLED_BACK")
    message = _failure(no_role)
    assert "target account 111122223333 (Region us-east-1): cannot assume role" in message
    assert "arn:aws:iam::111122223333:role/wavepilot-local-target" in message
    assert "Apply terraform/modules/target-account in account 111122223333" in message
    assert (uninitialized.status, uninitialized.record_status) == ("FAILED", "ROLLED_BACK")
    message = _failure(uninitialized)
    assert "MGN is not initialized in account 444455556666, Region eu-west-1" in message
    assert "aws mgn initialize-service --region eu-west-1` in account 444455556666" in message
    # AND nothing was created anywhere: no MGN job, no instance, no launch template version
    for lane, emulator in system.mgn_fleet.lanes().items():
        assert emulator.jobs() == [], lane
    for lane in (WAVE_1, WAVE_3, HUB_LANE):
        assert _instances(system.lane_ec2(lane)) == {}, lane
        assert _template_versions(system.lane_ec2(lane)) == templates_before[lane], lane


def _template_versions(ec2: Any) -> dict[str, int]:
    return {
        t["LaunchTemplateId"]: t["LatestVersionNumber"]
        for t in ec2.describe_launch_templates()["LaunchTemplates"]
    }
