"""The requests ``wavepilot publish`` sends: one per effective VM, built from the manifest."""

from __future__ import annotations

from typing import Any, Protocol

from orchestration.manifests.fields import escape_unprintable
from orchestration.manifests.model import EffectiveVm
from orchestration.migration_request import REQUEST_SCHEMA_VERSION, MigrationRequest


class PublishableVm(Protocol):
    """A VM of a revision: its effective spec, identity, and where it is written.

    A ``LocatedVm`` of a validated revision, or the plan's summary of a base VM.
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
                # From git, not the manifest: made printable rather than refused downstream.
                "manifestPath": escape_unprintable(vm.path)[:1024],
                "line": vm.line,
                "author": escape_unprintable(author)[:512],
            },
        }
    )
