"""The emulated estate: the manifests' own network IDs, created in moto (and its canary)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.local.estate import SECURITY_GROUP_ID_HOOK, SUBNET_ID_HOOK, provision_estate
from tests.support.pipeline import example_requests, spec_of


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
