"""The migration request: the SQS message that starts (or cancels) one VM's migration.

The seed's Quick Start message (``migrationId``, ``appName``, ``source``, ``target``,
``environment``, ``wave``, ``sourceVmId``, ``targetVmName``, ``instanceType``, ``subnetId``,
``securityGroupIds``) is valid as it is. ``wavepilot publish`` adds the effective VM
(as ``spec``), its ``revision`` and where the request came from.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestration.execution_names import MAX_MIGRATION_ID_LENGTH
from orchestration.manifests.fields import (
    AZURE_VM_RESOURCE_ID,
    SOURCE_SERVER_ID,
    USER_PROVIDED_ID,
    AppName,
    EnvironmentName,
    InstanceType,
    PrintableText,
    TargetVmName,
    TextRule,
    WaveName,
    shown,
)
from orchestration.manifests.model import EffectiveVm
from orchestration.request_identity import REVISION_LENGTH, revision_of

REQUEST_SCHEMA_VERSION = "1"

# Every identifier becomes a Step Functions execution name, a DynamoDB key, Slack text or an
# EC2 tag. Each rule below accepts only what all of them accept, and everything `wavepilot
# publish` sends from a valid manifest (the manifest's own rules are reused where they exist;
# where the request is looser, for the seed's hand-written message, it is a superset of them).
MigrationId = Annotated[
    str,
    TextRule(
        rf"[A-Za-z0-9_-]{{1,{MAX_MIGRATION_ID_LENGTH}}}",
        f"a migration ID (1 to {MAX_MIGRATION_ID_LENGTH} characters of A-Z a-z 0-9 - _: it "
        f"names the Step Functions executions '<migrationId>-<revision>', at most 80 "
        "characters with a rollback's '-rollback-<time>')",
        "mig-12345",
    ),
    Field(description="The migration: one VM in one wave. Published: 'mig-' and 16 hex."),
]
Revision = Annotated[
    str,
    TextRule(
        rf"[0-9a-f]{{{REVISION_LENGTH}}}",
        f"a revision ({REVISION_LENGTH} lowercase hex digits, the hash of the spec)",
        "d5f6e397ea7a9aae",
    ),
]
_SOURCE_VM_ID_RULES = (AZURE_VM_RESOURCE_ID, SOURCE_SERVER_ID, USER_PROVIDED_ID)


def _source_vm_id(value: str) -> str:
    if not any(rule.matches(value) for rule in _SOURCE_VM_ID_RULES):
        raise ValueError(
            f"{shown(value)} is not an Azure VM resource ID (/subscriptions/<guid>/"
            "resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>), "
            f"{SOURCE_SERVER_ID.what} or {USER_PROVIDED_ID.what} (for example 'vm-123456')"
        )
    return value


SourceVmId = Annotated[
    str,
    Field(max_length=512),
    AfterValidator(_source_vm_id),
    Field(description="Azure VM resource ID, MGN source server ID or MGN userProvidedID."),
]
# Looser than the manifest's (8 or 17 hex digits): the seed's message says 'subnet-12345'.
# validate_input checks that the subnet and groups exist.
RequestSubnetId = Annotated[
    str,
    TextRule(
        r"subnet-[0-9a-f]{1,17}",
        "a subnet ID ('subnet-' and 1 to 17 lowercase hex digits)",
        "subnet-0a1b2c3d",
    ),
]
RequestSecurityGroupId = Annotated[
    str,
    TextRule(
        r"sg-[0-9a-f]{1,17}",
        "a security group ID ('sg-' and 1 to 17 lowercase hex digits)",
        "sg-0a1b2c3d",
    ),
]
CommitId = Annotated[
    str,
    TextRule(
        r"[0-9a-f]{40}|[0-9a-f]{64}",
        "a git commit ID (40 or 64 lowercase hex digits)",
        "3f2a" + "0" * 36,
    ),
]


class Provenance(BaseModel):
    """Where a published request came from: the commit, file, line and author."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    commit: CommitId
    manifest_path: Annotated[PrintableText, Field(min_length=1, max_length=1024)] = Field(
        alias="manifestPath"
    )
    line: int = Field(ge=1)
    author: Annotated[PrintableText, Field(max_length=512)] = ""


class MigrationRequest(BaseModel):
    """One VM's migration request, as sent on the request queue."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, populate_by_name=True, serialize_by_alias=True
    )

    schema_version: Literal["1"] | None = Field(default=None, alias="schemaVersion")
    action: Literal["migrate", "cancel"] = "migrate"
    migration_id: MigrationId = Field(alias="migrationId")
    app_name: AppName = Field(alias="appName")
    source: Literal["azure"] = "azure"
    target: Literal["aws"] = "aws"
    environment: EnvironmentName
    wave: WaveName
    source_vm_id: SourceVmId = Field(alias="sourceVmId")
    target_vm_name: TargetVmName = Field(alias="targetVmName")
    instance_type: InstanceType = Field(alias="instanceType")
    subnet_id: RequestSubnetId = Field(alias="subnetId")
    security_group_ids: list[RequestSecurityGroupId] = Field(
        alias="securityGroupIds", min_length=1, max_length=5
    )
    revision: Revision | None = None
    # The effective VM; ``spec`` on the wire (the message's contract: its name stays).
    effective_vm: EffectiveVm | None = Field(default=None, alias="spec")
    provenance: Provenance | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body, with the seed's field names; unset optional top-level fields left out.

        The effective VM is kept whole (nulls included) so that
        ``vm_revision(EffectiveVm.model_validate(body["spec"]))`` recomputes the revision.
        """
        data = self.model_dump(mode="json", by_alias=True)
        return {key: value for key, value in data.items() if value is not None}


def canonical_body(request: MigrationRequest) -> str:
    """The request as deterministic JSON: what ``wavepilot publish`` sends, byte for byte,
    and what a hand-written request's revision is the hash of."""
    return json.dumps(request.body(), sort_keys=True, separators=(",", ":"))


def body_revision(request: MigrationRequest) -> str:
    """The revision of a request that carries none (a hand-written one, like the seed's)."""
    return revision_of(canonical_body(request))
