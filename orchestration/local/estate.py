"""The emulated target estate: the network and instance profiles the manifests name.

The example manifests name real-looking IDs (``subnet-0a11b22c``, ``sg-0b21c32d43e54f650``);
``validate_input`` checks them live. Here they are created in emulated EC2 with exactly
those IDs, in one VPC, so the pipeline's live checks pass for the right reason.

`provision_estate` builds one estate with the clients it is given (today's embedded system:
the hub account and Region stand in for every target). `provision_lane_estates` builds each
wave's estate in the wave's own target account and Region (a lane, DESIGN.md decision 12):
one VPC per lane, the instance profiles in the lane's account (IAM is global per account).
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import moto.ec2.models.security_groups as moto_security_groups
import moto.ec2.models.subnets as moto_subnets

from orchestration.local.mgn import LaneId
from orchestration.local.runtime import LOCAL_ACCOUNT_ID, LOCAL_REGION
from orchestration.pipeline.preflight import CONVERSION_PROFILE

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_iam.client import IAMClient

    from orchestration.pipeline.spec import MigrationSpec

_ID_LOCK = threading.Lock()
ESTATE_VPC_NAME = "wavepilot-local-estate"
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


def provision_estate(
    specs: Iterable[MigrationSpec],
    *,
    ec2: EC2Client,
    iam: IAMClient,
    vpc_cidr: str = "10.0.0.0/16",
) -> Estate:
    """`vpc_cidr`: the estate VPC's block when it is created (lanes get distinct ones, so a
    private IP names one instance across lanes, as the VM stand-ins need)."""
    specs = list(specs)
    subnets = sorted({s.subnet_id for s in specs} | {s.test_subnet_id for s in specs})
    groups = sorted({g for s in specs for g in (*s.security_group_ids, *s.test_security_group_ids)})
    profiles = sorted({s.iam_instance_profile for s in specs if s.iam_instance_profile})
    vpc_id = _estate_vpc(ec2, vpc_cidr)
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    types_in_subnet: dict[str, set[str]] = {}
    for spec in specs:
        for subnet_id in (spec.subnet_id, spec.test_subnet_id):
            types_in_subnet.setdefault(subnet_id, set()).add(spec.instance_type)
    described = ec2.describe_subnets()["Subnets"]
    existing_subnets = {s["SubnetId"] for s in described}
    # Blocks still free in the estate's VPC (it may hold an earlier wave's subnets).
    used = {s["CidrBlock"] for s in described if s["VpcId"] == vpc_id}
    first_two = ".".join(ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlock"].split(".")[:2])
    free_blocks = (
        f"{first_two}.{i}.0/24" for i in range(256) if f"{first_two}.{i}.0/24" not in used
    )
    existing_groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    with _ID_LOCK:
        for subnet_id in subnets:
            if subnet_id in existing_subnets:
                continue
            with _next_id_is(SUBNET_ID_HOOK, subnet_id):
                ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=next(free_blocks),
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
    _conversion_server_profile(iam)
    return Estate(vpc_id, tuple(subnets), tuple(groups), tuple(profiles))


# What MGN's InitializeService creates in the account for its conversion server (and
# `wavepilot preflight` looks for): the instance profile and its role of the same name.
CONVERSION_SERVER_ROLE = CONVERSION_PROFILE
_EC2_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def _conversion_server_profile(iam: IAMClient) -> None:
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=CONVERSION_SERVER_ROLE, AssumeRolePolicyDocument=_EC2_TRUST)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_instance_profile(InstanceProfileName=CONVERSION_SERVER_ROLE)
    profile = iam.get_instance_profile(InstanceProfileName=CONVERSION_SERVER_ROLE)
    if not profile["InstanceProfile"].get("Roles"):
        iam.add_role_to_instance_profile(
            InstanceProfileName=CONVERSION_SERVER_ROLE, RoleName=CONVERSION_SERVER_ROLE
        )


def _estate_vpc(ec2: EC2Client, cidr: str = "10.0.0.0/16") -> str:
    """The estate's VPC in this account and Region, created on first use (so provisioning
    again, e.g. for another wave in the same lane, adds to the same network)."""
    tagged = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [ESTATE_VPC_NAME]}])
    if tagged["Vpcs"]:
        return tagged["Vpcs"][0]["VpcId"]
    return ec2.create_vpc(
        CidrBlock=cidr,
        TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": ESTATE_VPC_NAME}]}
        ],
    )["Vpc"]["VpcId"]


# The administrator role AWS Organizations creates in every member account: who builds a
# landing zone's network. moto's STS issues credentials for it whether or not it exists.
ESTATE_ROLE_NAME = "OrganizationAccountAccessRole"
HUB_LANE = LaneId(LOCAL_ACCOUNT_ID, LOCAL_REGION)

SessionForLane = Callable[[str, str], boto3.session.Session]


def assumed_role_sessions(
    *, role_name: str = ESTATE_ROLE_NAME, endpoint_url: str | None = None
) -> SessionForLane:
    """(account_id, region) -> a boto3 session with `role_name` assumed in that account.

    Credentials come from STS (moto's, locally: it maps them to the role's account, so EC2
    and IAM calls made with them land in that account). `endpoint_url` None: boto3's own
    resolution (`AWS_ENDPOINT_URL` under the local runtime, or moto's in-process mock).
    """

    def session_for(account_id: str, region: str) -> boto3.session.Session:
        sts: Any = boto3.session.Session().client(
            "sts", region_name=region, endpoint_url=endpoint_url
        )
        issued = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}",
            RoleSessionName="wavepilot-local-estate",
        )["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=issued["AccessKeyId"],
            aws_secret_access_key=issued["SecretAccessKey"],
            aws_session_token=issued["SessionToken"],
            region_name=region,
        )

    return session_for


# The header moto's server reads the account of a request from before the access key
# (`BaseResponse.get_current_account`): how the local landing zone acts as an account's
# administrator before any role exists there, as AWS Organizations does for a new account.
MOTO_ACCOUNT_HEADER = "x-moto-account-id"
ORGANIZATION_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def account_admin_client(
    service: str, account_id: str, region: str = LOCAL_REGION, *, endpoint_url: str | None = None
) -> Any:
    """A client acting in `account_id` of the moto server (header `x-moto-account-id`)."""
    client: Any = boto3.client(  # type: ignore[call-overload]
        service, region_name=region, endpoint_url=endpoint_url
    )

    def in_account(request: Any, **_: Any) -> None:
        request.headers[MOTO_ACCOUNT_HEADER] = account_id

    client.meta.events.register("before-sign.*.*", in_account)
    return client


def ensure_role(
    iam: Any, role_name: str, trust: dict[str, Any], *, path: str = "/", description: str = ""
) -> str:
    """The role's ARN, created with `trust` if it does not exist (its trust updated if it does)."""
    import json

    try:
        arn = iam.create_role(
            RoleName=role_name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=description,
        )["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    return str(arn)


def open_account(account_id: str, *, endpoint_url: str | None = None) -> str:
    """A member account of the local organization: its `OrganizationAccountAccessRole`
    (what AWS Organizations creates in every account it creates), trusting the management
    (hub) account. Idempotent; returns the role's ARN."""
    iam = account_admin_client("iam", account_id, endpoint_url=endpoint_url)
    return ensure_role(
        iam, ESTATE_ROLE_NAME, ORGANIZATION_TRUST, description="the organization's administrator"
    )


def lane_of_spec(spec: MigrationSpec, default: LaneId = HUB_LANE) -> LaneId:
    """The VM's target account and Region; what a spec leaves empty comes from `default`."""
    return LaneId(
        spec.target_account_id or default.account_id, spec.target_region or default.region
    )


def provision_lane_estates(
    specs: Iterable[MigrationSpec],
    *,
    session_for: SessionForLane | None = None,
    endpoint_url: str | None = None,
    default_lane: LaneId = HUB_LANE,
) -> dict[LaneId, Estate]:
    """Create each lane's estate (subnets, security groups, instance profiles its VMs name,
    with exactly those IDs) in that lane's account and Region; idempotent like
    `provision_estate`.

    Args:
        specs: the VMs; grouped by `target_account_id` and `target_region`.
        session_for: credentials per lane; `assumed_role_sessions(endpoint_url=...)` by
            default.
        endpoint_url: where STS, EC2 and IAM are, for the default `session_for`.
        default_lane: the lane of specs that name no target (the hub).

    Returns:
        The estate of every lane the specs name.
    """
    sessions = session_for or assumed_role_sessions(endpoint_url=endpoint_url)
    by_lane: dict[LaneId, list[MigrationSpec]] = {}
    for spec in specs:
        by_lane.setdefault(lane_of_spec(spec, default_lane), []).append(spec)
    estates: dict[LaneId, Estate] = {}
    for lane, lane_specs in sorted(by_lane.items()):
        session = sessions(lane.account_id, lane.region)
        ec2: EC2Client = session.client("ec2", endpoint_url=endpoint_url)
        iam: IAMClient = session.client("iam", endpoint_url=endpoint_url)
        estates[lane] = provision_estate(
            lane_specs, ec2=ec2, iam=iam, vpc_cidr=lane_vpc_cidr(lane, default_lane)
        )
    return estates


def lane_vpc_cidr(lane: LaneId, hub: LaneId = HUB_LANE) -> str:
    """A lane's estate VPC block: the hub's 10.0.0.0/16, every other lane one of 10.1-250
    chosen from its label (stable whatever else is provisioned)."""
    if lane == hub:
        return "10.0.0.0/16"
    return f"10.{1 + zlib.crc32(lane.label.encode()) % 250}.0.0/16"


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
