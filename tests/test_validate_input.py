"""``validate_input``'s live checks: every problem at once, each saying what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from orchestration import wiring
from orchestration.adapters.state_store import MigrationStore
from orchestration.local.estate import assumed_role_sessions, provision_lane_estates
from orchestration.local.mgn import Boto3Ec2LaunchPort, MgnEmulator, SimulatedClock
from orchestration.manifests.aws_catalog import ec2_instance_types
from orchestration.pipeline.errors import PrerequisiteError
from orchestration.pipeline.spec import MigrationSpec
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.support.pipeline import example_requests, spec_of

__all__ = ["emulated_aws"]


@pytest.fixture
def mgn(emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[MgnEmulator]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    emulator = MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=SimulatedClock(speed=0))
    with emulator.serve() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_MGN", endpoint)
        wiring.reset()
        yield emulator
    wiring.reset()


def _spec(**changes: Any) -> MigrationSpec:
    [request] = example_requests("wave-1")[:1]
    return spec_of(request).model_copy(update=changes)


def _in_lane(spec: MigrationSpec) -> Any:
    """The VM's estate in its wave's target account and Region (wave-1: 111122223333,
    us-east-1); returns that lane's EC2, where validate_input looks through its role."""
    provision_lane_estates([spec])
    return assumed_role_sessions()(spec.target_account_id, spec.target_region).client("ec2")


def _state(spec: MigrationSpec) -> dict[str, Any]:
    MigrationStore(wiring.store()._table).record_request(
        example_requests("wave-1")[0], spec.revision, spec.correlation_id, wiring.clock().now()
    )
    return {"spec": spec.model_dump(mode="json", by_alias=True)}


def test_valid_prerequisites_resolve_the_source_server(mgn: MgnEmulator) -> None:
    spec = _spec()
    _in_lane(spec)
    server = mgn.add_source_server(hostname="intranet-web-01", user_provided_id="intranet-web-01")

    result = wiring.steps().validate_input(_state(spec))

    assert result["sourceServerId"] == server.source_server_id
    # the launch template is read from MGN's answer when the test launch is prepared
    assert "launchTemplateId" not in result


def test_every_problem_is_reported_at_once_with_what_to_fix(mgn: MgnEmulator) -> None:
    good = _spec()
    ec2 = _in_lane(good)
    other_vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    foreign_group = ec2.create_security_group(
        GroupName="elsewhere", Description="x", VpcId=other_vpc
    )["GroupId"]
    mgn.add_source_server(hostname="twin", user_provided_id="intranet-web-01")
    mgn.add_source_server(hostname="twin", user_provided_id="intranet-web-01")
    unavailable = _type_not_offered_in_the_zone_of(ec2, good.subnet_id)
    spec = good.model_copy(
        update={
            "test_subnet_id": "subnet-0deadbee",
            "security_group_ids": [good.security_group_ids[0], foreign_group],
            "iam_instance_profile": "no-such-profile",
            "instance_type": unavailable,
        }
    )

    with pytest.raises(PrerequisiteError) as raised:
        wiring.steps().validate_input(_state(spec))

    message = str(raised.value)
    assert (
        "test subnet subnet-0deadbee does not exist in account 111122223333, Region us-east-1"
        in message
    )
    assert f"security group {foreign_group} is in {other_vpc}" in message
    assert "they must share a VPC" in message
    assert f"instance type {unavailable} is not offered in" in message
    assert "IAM instance profile 'no-such-profile' does not exist" in message
    assert "2 source servers have userProvidedID 'intranet-web-01'" in message
    assert "set source.sourceServerId" in message


def test_a_vm_without_an_agent_says_so(mgn: MgnEmulator) -> None:
    spec = _spec()
    _in_lane(spec)
    mgn.add_source_server(hostname=None)  # an agent that reported no hints

    with pytest.raises(PrerequisiteError, match="is the replication agent installed"):
        wiring.steps().validate_input(_state(spec))


def _type_not_offered_in_the_zone_of(ec2: Any, subnet_id: str) -> str:
    zone = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailabilityZone"]
    offered = {
        o["InstanceType"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "location", "Values": [zone]}]
        )
        for o in page["InstanceTypeOfferings"]
    }
    return sorted(ec2_instance_types() - offered)[0]


def test_the_hub_does_not_see_the_lanes_network(mgn: MgnEmulator) -> None:
    # GIVEN the VM's network exists in the hub account only, not in its wave's target account
    spec = _spec()
    hub = MigrationSpec.model_validate(
        {**spec.model_dump(by_alias=False), "target_account_id": "", "target_region": ""}
    )
    provision_lane_estates([hub])
    mgn.add_source_server(hostname="intranet-web-01", user_provided_id="intranet-web-01")

    # THEN validate_input, looking in the target account, does not find it
    with pytest.raises(PrerequisiteError, match="does not exist in account 111122223333"):
        wiring.steps().validate_input(_state(spec))


def test_more_nics_than_mgn_launches_fail_validation_saying_so(mgn: MgnEmulator) -> None:
    spec = _spec()
    _in_lane(spec)
    mgn.add_source_server(
        hostname="intranet-web-01",
        user_provided_id="intranet-web-01",
        private_ips=["172.16.4.1", "172.16.5.1", "172.16.6.1"],
    )

    with pytest.raises(PrerequisiteError) as raised:
        wiring.steps().validate_input(_state(spec))

    assert "the source VM reports 3 network interfaces; MGN launches at most 2" in str(raised.value)


def test_an_initial_sync_ending_after_the_window_opens_is_a_warning_in_the_status(
    mgn: MgnEmulator, emulated_aws: EmulatedAws
) -> None:
    spec = _spec()  # its window opened an hour ago
    _in_lane(spec)
    mgn.add_source_server(
        hostname="intranet-web-01",
        user_provided_id="intranet-web-01",
        disk_gib=[500],
        replication_bytes_per_second=1_000_000,
    )

    result = wiring.steps().validate_input(_state(spec))

    assert result["sourceServerId"].startswith("s-")
    messages = [
        event["detail"]["message"]
        for event in emulated_aws.captured()
        if event["detail-type"] == "MigrationStatusUpdated"
    ]
    assert any(
        message.startswith("prerequisites met; MGN source server ")
        and "; warning: initial sync ends about " in message
        and "after the window opens" in message
        for message in messages
    ), messages
