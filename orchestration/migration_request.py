"""The migration request: the SQS message that starts (or cancels) one VM's migration.

The seed's Quick Start message (``migrationId``, ``appName``, ``source``, ``target``,
``environment``, ``wave``, ``sourceVmId``, ``targetVmName``, ``instanceType``, ``subnetId``,
``securityGroupIds``) is valid as it is. ``wavepilot publish`` adds the effective spec,
its ``revision`` and where the request came from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from orchestration.manifests.model import EffectiveVm

REQUEST_SCHEMA_VERSION = "1"

NonEmpty = Annotated[str, Field(min_length=1, max_length=2048)]


class Provenance(BaseModel):
    """Where a published request came from: the commit, file, line and author."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit: NonEmpty
    manifest_path: NonEmpty = Field(alias="manifestPath")
    line: int = Field(ge=1)
    author: str = ""


class MigrationRequest(BaseModel):
    """One VM's migration request, as sent on the request queue."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    schema_version: Literal["1"] | None = Field(default=None, alias="schemaVersion")
    action: Literal["migrate", "cancel"] = "migrate"
    migration_id: NonEmpty = Field(alias="migrationId")
    app_name: NonEmpty = Field(alias="appName")
    source: Literal["azure"] = "azure"
    target: Literal["aws"] = "aws"
    environment: NonEmpty
    wave: NonEmpty
    source_vm_id: NonEmpty = Field(alias="sourceVmId")
    target_vm_name: NonEmpty = Field(alias="targetVmName")
    instance_type: NonEmpty = Field(alias="instanceType")
    subnet_id: NonEmpty = Field(alias="subnetId")
    security_group_ids: list[NonEmpty] = Field(alias="securityGroupIds", min_length=1)
    revision: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    spec: EffectiveVm | None = None
    provenance: Provenance | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body, with the seed's field names; unset optional top-level fields left out.

        The spec is kept whole (nulls included) so that
        ``spec_revision(EffectiveVm.model_validate(body["spec"]))`` recomputes the revision.
        """
        data = self.model_dump(mode="json", by_alias=True)
        return {key: value for key, value in data.items() if value is not None}


class PublishableVm(Protocol):
    """A VM of a revision: its effective spec, identity, and where it is written.

    A :class:`LocatedVm` of a validated revision, or the plan's summary of a base VM.
    """

    @property
    def spec(self) -> EffectiveVm: ...
    @property
    def migration_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def spec_json(self) -> dict[str, Any]: ...
    @property
    def path(self) -> str: ...
    @property
    def line(self) -> int: ...


def request_for(
    vm: PublishableVm, *, commit: str, author: str, action: str = "migrate"
) -> MigrationRequest:
    """Build the request ``wavepilot publish`` sends for one effective VM."""
    spec = vm.spec
    return MigrationRequest.model_validate(
        {
            "schemaVersion": REQUEST_SCHEMA_VERSION,
            "action": action,
            "migrationId": vm.migration_id,
            "appName": spec.app_name,
            "source": "azure",
            "target": "aws",
            "environment": spec.environment,
            "wave": spec.wave,
            "sourceVmId": spec.source.azure_resource_id,
            "targetVmName": spec.target_vm_name,
            "instanceType": spec.instance_type,
            "subnetId": spec.subnet_id,
            "securityGroupIds": spec.security_group_ids,
            "revision": vm.revision,
            "spec": spec,
            "provenance": {
                "commit": commit,
                "manifestPath": vm.path,
                "line": vm.line,
                "author": author,
            },
        }
    )
