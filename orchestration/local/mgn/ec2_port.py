"""The emulator's only way into EC2: launch templates, instances, termination.

MGN launches real EC2 instances in the account; locally "real" means moto. The emulator talks
to EC2 only through `Ec2LaunchPort`, so the runtime passes a boto3 client pointed at moto and
tests could pass anything else with the same three methods. `AssumedRoleEc2Ports` builds one
port per lane (account and Region) for `MgnFleet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import RunInstancesRequestTypeDef, TagTypeDef


class Ec2LaunchError(Exception):
    """EC2 refused a launch or termination; the job reports it (LAUNCH_FAILED, CLEANUP_FAIL)."""


class Ec2LaunchPort(Protocol):
    """What MGN needs from EC2."""

    def create_launch_template(self, name: str, instance_type: str, tags: Mapping[str, str]) -> str:
        """Create the server's launch template; returns its ID (`lt-...`).

        Raises:
            Ec2LaunchError: EC2 refused.
        """
        ...

    def run_instance(
        self,
        launch_template_id: str,
        source_server_id: str,
        tags: Mapping[str, str],
        instance_type_override: str | None = None,
    ) -> str:
        """Launch one instance from the template's DEFAULT version; returns its ID.

        Raises:
            Ec2LaunchError: EC2 refused (bad subnet, missing instance profile, ...).
        """
        ...

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        """Terminate instances.

        Raises:
            Ec2LaunchError: EC2 refused.
        """
        ...


def _tag_list(tags: Mapping[str, str]) -> list[TagTypeDef]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


class Boto3Ec2LaunchPort:
    """`Ec2LaunchPort` over a boto3 EC2 client (pointed at moto by the local runtime).

    Instances are launched from `$Default`, the version the pipeline selects with
    `modify_launch_template(DefaultVersion=...)`; subnet, security groups, instance profile
    and template tags therefore come from the pipeline's own template version.

    Args:
        client: the EC2 client.
        image_id: AMI to launch when the template names none. MGN builds the AMI from the
            replicated disks; moto needs none, so the default is to pass no ImageId.
    """

    def __init__(self, client: EC2Client, *, image_id: str | None = None) -> None:
        self._client = client
        self._image_id = image_id

    def create_launch_template(self, name: str, instance_type: str, tags: Mapping[str, str]) -> str:
        try:
            response = self._client.create_launch_template(
                LaunchTemplateName=name,
                LaunchTemplateData={"InstanceType": instance_type},  # type: ignore[typeddict-item]
                TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(tags)}],
            )
        except (ClientError, BotoCoreError) as error:
            raise Ec2LaunchError(f"CreateLaunchTemplate {name} failed: {error}") from error
        return response["LaunchTemplate"]["LaunchTemplateId"]

    def run_instance(
        self,
        launch_template_id: str,
        source_server_id: str,
        tags: Mapping[str, str],
        instance_type_override: str | None = None,
    ) -> str:
        request: RunInstancesRequestTypeDef = {
            "LaunchTemplate": {"LaunchTemplateId": launch_template_id, "Version": "$Default"},
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": _tag_list(tags)}],
        }
        if instance_type_override is not None:
            request["InstanceType"] = instance_type_override  # type: ignore[typeddict-item]
        if self._image_id is not None:
            request["ImageId"] = self._image_id
        try:
            reservation = self._client.run_instances(**request)
        except (ClientError, BotoCoreError) as error:
            raise Ec2LaunchError(f"RunInstances for {source_server_id} failed: {error}") from error
        return reservation["Instances"][0]["InstanceId"]

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        try:
            self._client.terminate_instances(InstanceIds=list(instance_ids))
        except (ClientError, BotoCoreError) as error:
            raise Ec2LaunchError(
                f"TerminateInstances {list(instance_ids)} failed: {error}"
            ) from error


# The role MGN itself acts with in a target account (its service-linked role). MGN launches and
# terminates a lane's instances with it, so locally each lane's EC2 calls are made with it too.
MGN_SERVICE_ROLE_NAME = (
    "aws-service-role/mgn.amazonaws.com/AWSServiceRoleForApplicationMigrationService"
)
_ROLE_SESSION_NAME = "mgn-emulator"


class AssumedRoleEc2Ports:
    """One `Boto3Ec2LaunchPort` per lane: EC2 in the lane's account and Region.

    Assumes MGN's service-linked role in the lane's account through STS (moto's, locally) and
    builds an EC2 client for the lane's Region from the credentials it returns. moto maps
    those temporary credentials to the role's account, so each lane's launch templates and
    instances live in that account's and Region's EC2, invisible to every other lane.

    Args:
        endpoint_url: where STS and EC2 are (None: boto3's own resolution, e.g.
            `AWS_ENDPOINT_URL` set by the local runtime, or moto's in-process mock).
        role_name: the role (with its path) assumed in each account.
        image_id: passed on to each `Boto3Ec2LaunchPort`.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        role_name: str = MGN_SERVICE_ROLE_NAME,
        image_id: str | None = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._role_name = role_name
        self._image_id = image_id

    def role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self._role_name}"

    def __call__(self, account_id: str, region: str) -> Boto3Ec2LaunchPort:
        """The EC2 port of the lane `account_id`/`region`.

        Raises:
            Ec2LaunchError: STS refused to issue credentials for the account.
        """
        # A session of its own: clients built from boto3's default session from several
        # threads at once can fail, and the default session's calls are the harness's.
        session = boto3.session.Session()
        sts: Any = session.client("sts", region_name=region, endpoint_url=self._endpoint_url)
        try:
            credentials = sts.assume_role(
                RoleArn=self.role_arn(account_id), RoleSessionName=_ROLE_SESSION_NAME
            )["Credentials"]
        except (ClientError, BotoCoreError) as error:
            raise Ec2LaunchError(
                f"AssumeRole {self.role_arn(account_id)} failed: {error}"
            ) from error
        ec2: EC2Client = session.client(
            "ec2",
            region_name=region,
            endpoint_url=self._endpoint_url,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return Boto3Ec2LaunchPort(ec2, image_id=self._image_id)
