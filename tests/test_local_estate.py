"""The emulated estate: the manifests' own network IDs, created in moto (and its canary)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.local.estate import (
    HUB_LANE,
    SECURITY_GROUP_ID_HOOK,
    SUBNET_ID_HOOK,
    assumed_role_sessions,
    lane_of_spec,
    provision_estate,
    provision_lane_estates,
)
from orchestration.local.mgn import LaneId
from tests.support.pipeline import example_requests, spec_of

WAVES = ("wave-1", "wave-2", "wave-3", "wave-4")


def test_moto_still_picks_ids_where_the_estate_patches_it() -> None:
    """Canary: a moto upgrade that moves these functions breaks the estate loudly, here."""
    for module, name in (SUBNET_ID_HOOK, SECURITY_GROUP_ID_HOOK):
        function = getattr(module, name, None)
        assert callable(function), f"moto moved {module.__name__}.{name}"
        assert not inspect.signature(function).parameters, f"{name} now takes arguments"
        assert name in inspect.getsource(module), f"{module.__name__} no longer calls {name}"


@pytest.fixture
def ec2_iam(aws_env: None) -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield (
            boto3.client("ec2", region_name="us-east-1"),
            boto3.client("iam", region_name="us-east-1"),
        )


def test_the_estate_has_the_ids_the_manifests_name(ec2_iam: tuple[Any, Any]) -> None:
    ec2, iam = ec2_iam
    specs = [spec_of(r) for wave in ("wave-1", "wave-3") for r in example_requests(wave)]

    estate = provision_estate(specs, ec2=ec2, iam=iam)

    subnets = {
        s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=list(estate.subnet_ids))["Subnets"]
    }
    assert set(subnets) == {s.subnet_id for s in specs} | {s.test_subnet_id for s in specs}
    groups = ec2.describe_security_groups(GroupIds=list(estate.security_group_ids))[
        "SecurityGroups"
    ]
    assert {g["VpcId"] for g in groups} == {estate.vpc_id}
    for spec in specs:  # every VM's type is offered where its subnet is
        zone = subnets[spec.subnet_id]["AvailabilityZone"]
        offered = ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[
                {"Name": "location", "Values": [zone]},
                {"Name": "instance-type", "Values": [spec.instance_type]},
            ],
        )["InstanceTypeOfferings"]
        assert offered, (spec.instance_type, zone)
    assert iam.get_instance_profile(InstanceProfileName="wavepilot-ssm-instance")


def test_provisioning_twice_is_harmless(ec2_iam: tuple[Any, Any]) -> None:
    ec2, iam = ec2_iam
    specs = [spec_of(r) for r in example_requests("wave-1")[:1]]
    first = provision_estate(specs, ec2=ec2, iam=iam)

    second = provision_estate(specs, ec2=ec2, iam=iam)

    assert second.subnet_ids == first.subnet_ids
    assert len(ec2.describe_subnets(SubnetIds=list(first.subnet_ids))["Subnets"]) == len(
        first.subnet_ids
    )


def test_each_lane_gets_its_estate_in_its_own_account_and_region(aws_env: None) -> None:
    # GIVEN the example waves: three lanes (two accounts, two Regions)
    specs = [spec_of(r) for wave in WAVES for r in example_requests(wave)]
    lanes = {lane_of_spec(spec) for spec in specs}
    with mock_aws():
        # WHEN the lane estates are provisioned (twice: it is idempotent)
        provision_lane_estates(specs)
        estates = provision_lane_estates(specs)
        sessions = assumed_role_sessions()

        # THEN each lane has its VMs' subnets and groups, with their IDs, in one VPC there
        assert (
            set(estates)
            == lanes
            == {
                LaneId("111122223333", "us-east-1"),
                LaneId("444455556666", "us-east-1"),
                LaneId("444455556666", "eu-west-1"),
            }
        )
        for lane, estate in estates.items():
            ec2 = sessions(*lane).client("ec2")
            lane_specs = [s for s in specs if lane_of_spec(s) == lane]
            named = {s.subnet_id for s in lane_specs} | {s.test_subnet_id for s in lane_specs}
            subnets = ec2.describe_subnets()["Subnets"]
            assert {s["SubnetId"] for s in subnets if s["VpcId"] == estate.vpc_id} == named
            assert {s["OwnerId"] for s in subnets if s["VpcId"] == estate.vpc_id} == {
                lane.account_id
            }
            groups = ec2.describe_security_groups(GroupIds=list(estate.security_group_ids))
            assert {g["VpcId"] for g in groups["SecurityGroups"]} == {estate.vpc_id}
            # AND no other lane's subnets are there
            others = {i for other, e in estates.items() if other != lane for i in e.subnet_ids}
            assert not others & {s["SubnetId"] for s in subnets}
        # AND the instance profile exists in both target accounts, not in the hub
        for account_id in ("111122223333", "444455556666"):
            iam = sessions(account_id, "us-east-1").client("iam")
            assert iam.get_instance_profile(InstanceProfileName="wavepilot-ssm-instance")
        hub_iam = boto3.client("iam", region_name="us-east-1")
        with pytest.raises(hub_iam.exceptions.NoSuchEntityException):
            hub_iam.get_instance_profile(InstanceProfileName="wavepilot-ssm-instance")
        assert not boto3.client("ec2", region_name="us-east-1").describe_subnets(
            Filters=[{"Name": "subnet-id", "Values": ["subnet-0a11b22c"]}]
        )["Subnets"]


def test_a_spec_without_a_target_is_in_the_hub_lane() -> None:
    spec = spec_of(example_requests("wave-1")[0]).model_copy(
        update={"target_account_id": "", "target_region": ""}
    )

    assert lane_of_spec(spec) == HUB_LANE == LaneId("123456789012", "us-east-1")


def test_waves_of_one_lane_provisioned_one_by_one_share_its_network(aws_env: None) -> None:
    # GIVEN two waves in the same lane (wave-3 and wave-4: 444455556666 in eu-west-1)
    with mock_aws():
        # WHEN they are provisioned one after the other
        third = provision_lane_estates([spec_of(r) for r in example_requests("wave-3")])
        fourth = provision_lane_estates([spec_of(r) for r in example_requests("wave-4")])

        # THEN both live in the lane's one VPC, each subnet in a block of its own
        lane = LaneId("444455556666", "eu-west-1")
        assert third[lane].vpc_id == fourth[lane].vpc_id
        ec2 = assumed_role_sessions()(*lane).client("ec2")
        subnets = ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [third[lane].vpc_id]}]
        )["Subnets"]
        named = {*third[lane].subnet_ids, *fourth[lane].subnet_ids}
        assert {s["SubnetId"] for s in subnets} == named
        assert len({s["CidrBlock"] for s in subnets}) == len(subnets)
