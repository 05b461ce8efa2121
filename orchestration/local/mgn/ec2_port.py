"""The emulator's only way into EC2: launch templates, instances, termination.

MGN launches real EC2 instances in the account; locally "real" means moto. The emulator talks
to EC2 only through `Ec2LaunchPort`, so the runtime passes a boto3 client pointed at moto and
tests could pass anything else with the same three methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

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
