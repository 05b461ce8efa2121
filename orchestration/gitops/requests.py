"""The requests ``wavepilot publish`` sends: one per effective VM, built from the manifest."""

from __future__ import annotations

from typing import Any, Protocol

from orchestration.manifests.fields import escape_unprintable
from orchestration.manifests.model import EffectiveVm
from orchestration.migration_request import REQUEST_SCHEMA_VERSION, MigrationRequest


class PublishableVm(Protocol):
    """A VM of a revision: the effective VM, its identity, and where it is written.

    A ``LocatedVm`` of a validated revision, or the plan's summary of a base VM.
    """

    @property
    def effective_vm(self) -> EffectiveVm: ...
    @property
    def migration_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def effective_vm_json(self) -> dict[str, Any]: ...
    @property
    def path(self) -> str: ...
    @property
    def line(self) -> int: ...


def request_for(
    vm: PublishableVm, *, commit: str, author: str, action: str = "migrate"
) -> MigrationRequest:
    """Build the request ``wavepilot publish`` sends for one effective VM."""
    effective = vm.effective_vm
    if effective.source.disks_gib is not None:
        # Disk sizes feed the rehearsal's estimate only: the request is what the message
        # carries, and the message leaves them out (MGN reads the disks from the agent).
        source = effective.source.model_copy(update={"disks_gib": None})
        effective = effective.model_copy(update={"source": source})
    return MigrationRequest.model_validate(
        {
            "schemaVersion": REQUEST_SCHEMA_VERSION,
            "action": action,
            "migrationId": vm.migration_id,
            "appName": effective.app_name,
            "source": "azure",
            "target": "aws",
            "environment": effective.environment,
            "wave": effective.wave,
            "sourceVmId": effective.source.azure_resource_id,
            "targetVmName": effective.target_vm_name,
            "instanceType": effective.instance_type,
            "subnetId": effective.subnet_id,
            "securityGroupIds": effective.security_group_ids,
            "revision": vm.revision,
            "spec": effective,
            "provenance": {
                "commit": commit,
                # From git, not the manifest: made printable rather than refused downstream.
                "manifestPath": escape_unprintable(vm.path)[:1024],
                "line": vm.line,
                "author": escape_unprintable(author)[:512],
            },
        }
    )
