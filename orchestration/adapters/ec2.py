"""EC2 and IAM reads the pipeline's live checks need, and the launch template MGN uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from orchestration.launch_records import Instance

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_iam.client import IAMClient


@dataclass(frozen=True, slots=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True, slots=True)
class SubnetFacts:
    """A subnet as preflight needs it: its VPC (and whether that is the default one), CIDR."""

    subnet_id: str
    vpc_id: str
    cidr_block: str
    default_vpc: bool


@dataclass(frozen=True, slots=True)
class TemplateFacts:
    """A launch template's versions and what its default version launches into."""

    launch_template_id: str
    default_version: int
    latest_version: int
    subnet_id: str | None = None
    private_ip: str | None = None
    network_interfaces: int = 0


# EC2's filters take at most 200 values per filter.
MAX_FILTER_VALUES = 200
# DescribeInstanceStatus takes at most 100 instance IDs per call.
MAX_STATUS_IDS = 100
# DescribeInstances pages by reservation (with a filter; at most 1,000 a page): MGN launches
# each server's instance alone, one reservation each, so a page of 1,000 holds the 200
# instances of a filter. Asked for no page size, a reply may stop early (moto's at 100) with
# a NextToken: the rest is read from the next pages, never dropped.
INSTANCES_PAGE_SIZE = 1000


def _chunks(values: list[str], size: int = MAX_FILTER_VALUES) -> list[list[str]]:
    unique = sorted(set(values))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


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

    def subnets(self, subnet_ids: list[str]) -> dict[str, SubnetFacts]:
        """The subnets that exist among ``subnet_ids``, 200 per call (a filter, so one missing
        ID does not fail the batch), with their VPCs' default flag (one more call per 200)."""
        found: list[Any] = []
        for chunk in _chunks(subnet_ids):
            paginator = self._ec2.get_paginator("describe_subnets")
            for page in paginator.paginate(Filters=[{"Name": "subnet-id", "Values": chunk}]):
                found.extend(page.get("Subnets", []))
        defaults: set[str] = set()
        for chunk in _chunks([subnet["VpcId"] for subnet in found]):
            vpcs = self._ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": chunk}])
            defaults |= {vpc["VpcId"] for vpc in vpcs.get("Vpcs", []) if vpc.get("IsDefault")}
        return {
            subnet["SubnetId"]: SubnetFacts(
                subnet["SubnetId"],
                subnet["VpcId"],
                subnet["CidrBlock"],
                subnet["VpcId"] in defaults,
            )
            for subnet in found
        }

    def has_default_vpc(self) -> bool:
        vpcs = self._ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
        return bool(vpcs.get("Vpcs"))

    def launch_templates(self, template_ids: list[str]) -> dict[str, TemplateFacts]:
        """Each template's default and latest version numbers (200 per call), and what its
        default version launches into (one call per template: EC2 describes one template's
        versions at a time). A template that is gone is left out."""
        found: dict[str, TemplateFacts] = {}
        for chunk in _chunks(template_ids):
            for template in self._described_templates(chunk):
                template_id = template["LaunchTemplateId"]
                found[template_id] = self._with_default_version(
                    TemplateFacts(
                        template_id,
                        int(template["DefaultVersionNumber"]),
                        int(template["LatestVersionNumber"]),
                    )
                )
        return found

    def _described_templates(self, template_ids: list[str]) -> list[Any]:
        """By ID, in one call; one by one only if one of them is missing (EC2 then fails
        the whole call)."""
        try:
            return list(
                self._ec2.describe_launch_templates(LaunchTemplateIds=template_ids)[
                    "LaunchTemplates"
                ]
            )
        except ClientError as exc:
            if not _missing(exc):
                raise
            if len(template_ids) == 1:
                return []
        return [
            template
            for template_id in template_ids
            for template in self._described_templates([template_id])
        ]

    def _with_default_version(self, template: TemplateFacts) -> TemplateFacts:
        versions = self._ec2.describe_launch_template_versions(
            LaunchTemplateId=template.launch_template_id, Versions=["$Default"]
        )["LaunchTemplateVersions"]
        data: Any = versions[0].get("LaunchTemplateData", {}) if versions else {}
        interfaces = data.get("NetworkInterfaces", [])
        primary: Any = next((nic for nic in interfaces if nic.get("DeviceIndex", 0) == 0), {})
        return TemplateFacts(
            template.launch_template_id,
            template.default_version,
            template.latest_version,
            subnet_id=primary.get("SubnetId"),
            private_ip=primary.get("PrivateIpAddress"),
            network_interfaces=len(interfaces),
        )

    def instance_profile_roles(self, name: str) -> list[str] | None:
        """The roles of an instance profile, None if it does not exist."""
        try:
            profile = self._iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return [role["RoleName"] for role in profile.get("Roles", [])]

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
        return self.instances([instance_id]).get(instance_id)

    def instances(self, instance_ids: list[str]) -> dict[str, Instance]:
        """The instances EC2 knows of these IDs (one missing is left out), with their status
        checks: one ``DescribeInstances`` per 200 IDs (a filter, which does not fail on an
        unknown ID; every page of its answer read, in pages of ``INSTANCES_PAGE_SIZE``
        reservations) and one ``DescribeInstanceStatus`` per 100 found."""
        found: dict[str, Any] = {}
        paginator = self._ec2.get_paginator("describe_instances")
        for chunk in _chunks(instance_ids):
            try:
                for page in paginator.paginate(
                    Filters=[{"Name": "instance-id", "Values": chunk}],
                    PaginationConfig={"PageSize": INSTANCES_PAGE_SIZE},
                ):
                    found.update(
                        (i["InstanceId"], i)
                        for r in page.get("Reservations", [])
                        for i in r.get("Instances", [])
                    )
            except ClientError as exc:
                if _missing(exc):
                    continue
                raise
        statuses: dict[str, Any] = {}
        for chunk in _chunks(list(found), MAX_STATUS_IDS):
            for status in self._ec2.describe_instance_status(
                InstanceIds=chunk, IncludeAllInstances=True
            ).get("InstanceStatuses", []):
                statuses[status["InstanceId"]] = status
        return {
            instance_id: Instance(
                instance_id=instance_id,
                state=item.get("State", {}).get("Name", "unknown"),
                private_ip=item.get("PrivateIpAddress"),
                instance_type=item.get("InstanceType", ""),
                system_status=statuses.get(instance_id, {})
                .get("SystemStatus", {})
                .get("Status", "unknown"),
                instance_status=statuses.get(instance_id, {})
                .get("InstanceStatus", {})
                .get("Status", "unknown"),
            )
            for instance_id, item in found.items()
        }
