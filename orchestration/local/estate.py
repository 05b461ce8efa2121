"""The emulated target estate: the network and instance profiles the manifests name.

The example manifests name real-looking IDs (``subnet-0a11b22c``, ``sg-0b21c32d43e54f650``);
``validate_input`` checks them live. Here they are created in emulated EC2 with exactly
those IDs, in one VPC, so the pipeline's live checks pass for the right reason. One emulated
account and Region stands in for every target account and Region the manifests name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import moto.ec2.models.security_groups as moto_security_groups
import moto.ec2.models.subnets as moto_subnets

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_iam.client import IAMClient

    from orchestration.pipeline.spec import MigrationSpec

_ID_LOCK = threading.Lock()
# The moto functions that pick new IDs; patched only while the estate is created.
SUBNET_ID_HOOK = (moto_subnets, "random_subnet_id")
SECURITY_GROUP_ID_HOOK = (moto_security_groups, "random_security_group_id")


@contextmanager
def _next_id_is(hook: tuple[object, str], chosen: str) -> Iterator[None]:
    module, name = hook
    original: Callable[[], str] = getattr(module, name)
    setattr(module, name, lambda: chosen)
    try:
        yield
    finally:
        setattr(module, name, original)


@dataclass(frozen=True, slots=True)
class Estate:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    instance_profiles: tuple[str, ...]


def provision_estate(specs: Iterable[MigrationSpec], *, ec2: EC2Client, iam: IAMClient) -> Estate:
    specs = list(specs)
    subnets = sorted({s.subnet_id for s in specs} | {s.test_subnet_id for s in specs})
    groups = sorted({g for s in specs for g in (*s.security_group_ids, *s.test_security_group_ids)})
    profiles = sorted({s.iam_instance_profile for s in specs if s.iam_instance_profile})
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    types_in_subnet: dict[str, set[str]] = {}
    for spec in specs:
        for subnet_id in (spec.subnet_id, spec.test_subnet_id):
            types_in_subnet.setdefault(subnet_id, set()).add(spec.instance_type)
    existing_subnets = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    existing_groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    with _ID_LOCK:
        for index, subnet_id in enumerate(subnets):
            if subnet_id in existing_subnets:
                continue
            with _next_id_is(SUBNET_ID_HOOK, subnet_id):
                ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=f"10.0.{index}.0/24",
                    AvailabilityZone=_zone_offering(ec2, zones, types_in_subnet[subnet_id]),
                )
        for group_id in groups:
            if group_id in existing_groups:
                continue
            with _next_id_is(SECURITY_GROUP_ID_HOOK, group_id):
                ec2.create_security_group(
                    GroupName=f"wavepilot-{group_id}", Description="emulated", VpcId=vpc_id
                )
    for profile in profiles:
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_instance_profile(InstanceProfileName=profile)
    return Estate(vpc_id, tuple(subnets), tuple(groups), tuple(profiles))


def _zone_offering(ec2: EC2Client, zones: list[str], instance_types: set[str]) -> str:
    """The first zone where every instance type the subnet's VMs use is offered."""
    for zone in zones:
        offered = {
            o["InstanceType"]
            for o in ec2.describe_instance_type_offerings(
                LocationType="availability-zone",
                Filters=[
                    {"Name": "location", "Values": [zone]},
                    {"Name": "instance-type", "Values": sorted(instance_types)},
                ],
            )["InstanceTypeOfferings"]
        }
        if instance_types <= offered:
            return zone
    return zones[0]
