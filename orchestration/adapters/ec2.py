"""EC2 and IAM reads the pipeline's live checks need, and the launch template MGN uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_iam.client import IAMClient


@dataclass(frozen=True, slots=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True, slots=True)
class Instance:
    instance_id: str
    state: str
    private_ip: str | None
    instance_type: str
    system_status: str
    instance_status: str


def _missing(exc: ClientError) -> bool:
    return (
        exc.response.get("Error", {})
        .get("Code", "")
        .endswith((".NotFound", ".Malformed", "NoSuchEntity"))
    )


class Ec2Adapter:
    def __init__(self, ec2: EC2Client, iam: IAMClient) -> None:
        self._ec2 = ec2
        self._iam = iam

    def subnet(self, subnet_id: str) -> Subnet | None:
        try:
            subnets = self._ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        if not subnets:
            return None
        found = subnets[0]
        return Subnet(found["SubnetId"], found["VpcId"], found["AvailabilityZone"])

    def security_group_vpcs(self, group_ids: list[str]) -> dict[str, str]:
        """VPC of each security group that exists (missing ones are left out)."""
        found: dict[str, str] = {}
        for group_id in group_ids:  # one by one: a batch call fails whole on one bad ID
            try:
                groups = self._ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
            except ClientError as exc:
                if _missing(exc):
                    continue
                raise
            for group in groups:
                found[group["GroupId"]] = group.get("VpcId", "")
        return found

    def instance_type_offered(self, instance_type: str, availability_zone: str) -> bool:
        offerings = self._ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[
                {"Name": "location", "Values": [availability_zone]},
                {"Name": "instance-type", "Values": [instance_type]},
            ],
        )["InstanceTypeOfferings"]
        return any(o.get("InstanceType") == instance_type for o in offerings)

    def instance_profile_exists(self, name: str) -> bool:
        try:
            self._iam.get_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def set_launch_template(
        self,
        launch_template_id: str,
        *,
        instance_type: str,
        subnet_id: str,
        security_group_ids: list[str],
        iam_instance_profile: str | None,
        tags: dict[str, str],
    ) -> int:
        """A new default version of MGN's launch template for this server (where subnet,
        security groups, type, profile and tags belong: not in MGN's launch configuration)."""
        tag_list = [{"Key": key, "Value": value} for key, value in sorted(tags.items())]
        data: dict[str, Any] = {
            "InstanceType": instance_type,
            "NetworkInterfaces": [
                {"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": security_group_ids}
            ],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        }
        if iam_instance_profile:
            data["IamInstanceProfile"] = {"Name": iam_instance_profile}
        version = self._ec2.create_launch_template_version(
            LaunchTemplateId=launch_template_id,
            LaunchTemplateData=data,  # type: ignore[arg-type]
            VersionDescription=json.dumps({"by": "wavepilot", "subnet": subnet_id})[:255],
        )["LaunchTemplateVersion"]["VersionNumber"]
        self._ec2.modify_launch_template(
            LaunchTemplateId=launch_template_id, DefaultVersion=str(version)
        )
        return int(version)

    def instance(self, instance_id: str) -> Instance | None:
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        instances = [i for r in reservations for i in r.get("Instances", [])]
        if not instances:
            return None
        found = instances[0]
        statuses = self._ec2.describe_instance_status(
            InstanceIds=[instance_id], IncludeAllInstances=True
        ).get("InstanceStatuses", [])
        status = statuses[0] if statuses else {}
        return Instance(
            instance_id=instance_id,
            state=found.get("State", {}).get("Name", "unknown"),
            private_ip=found.get("PrivateIpAddress"),
            instance_type=found.get("InstanceType", ""),
            system_status=status.get("SystemStatus", {}).get("Status", "unknown"),
            instance_status=status.get("InstanceStatus", {}).get("Status", "unknown"),
        )
