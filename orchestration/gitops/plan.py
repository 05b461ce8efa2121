"""What merging a change will do: per wave, the VMs added, changed and removed.

A plan compares the effective VM specs of two git revisions. It is what the pull
request comment shows and exactly what ``wavepilot publish`` sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from orchestration.gitops.git import GitRepository, Revision
from orchestration.manifests.findings import Finding
from orchestration.manifests.validation import FileCache, LocatedVm, ManifestSet, validate_files
from orchestration.migration_request import MigrationRequest, request_for

PLAN_SCHEMA_VERSION = 1
DEFAULT_MANIFEST_DIR = "manifests/waves"


class NoWaveFilesError(Exception):
    """Neither revision has a wave file where the plan was told to look."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PlannedVm:
    """One VM in the plan; ``vm`` is the head version (base version for removals)."""

    vm: LocatedVm
    changes: tuple[FieldChange, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "migrationId": self.vm.migration_id,
            "revision": self.vm.revision,
            "targetVmName": self.vm.spec.target_vm_name,
            "appName": self.vm.spec.app_name,
            "sourceVmId": self.vm.spec.source.azure_resource_id,
            "path": self.vm.path,
            "line": self.vm.line,
        }
        if self.changes:
            data["changes"] = [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes]
        return data


@dataclass
class WavePlan:
    name: str
    path: str
    added: list[PlannedVm] = field(default_factory=list)
    changed: list[PlannedVm] = field(default_factory=list)
    removed: list[PlannedVm] = field(default_factory=list)
    unchanged_count: int = 0
    errors: int = 0
    """Error findings in the wave's head file: such a wave is not planned at all."""

    @property
    def plannable(self) -> bool:
        """A wave is compared with its base only once its head file validates.

        Until then none of its VMs counts as added, changed or removed: a typo must never
        look like a removal.
        """
        return self.errors == 0

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass
class Plan:
    base: Revision
    head: Revision
    waves: list[WavePlan]
    findings: list[Finding]
    requests: list[MigrationRequest]
    cancellations: list[MigrationRequest]

    @property
    def valid(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def not_planned(self) -> list[WavePlan]:
        """Waves whose head file has errors: nothing is counted for them."""
        return [w for w in self.waves if not w.plannable]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "added": sum(len(w.added) for w in self.waves),
            "changed": sum(len(w.changed) for w in self.waves),
            "removed": sum(len(w.removed) for w in self.waves),
            "unchanged": sum(w.unchanged_count for w in self.waves),
        }

    def as_json(self) -> dict[str, Any]:
        """The stable JSON form, documented in docs/PLAN_JSON.md."""
        return {
            "schemaVersion": PLAN_SCHEMA_VERSION,
            "base": None if self.base.is_empty else self.base.sha,
            "head": self.head.sha,
            "valid": self.valid,
            "totals": self.totals,
            "findings": [f.as_json() for f in self.findings],
            "waves": [
                {
                    "name": w.name,
                    "path": w.path,
                    "valid": w.plannable,
                    "errors": w.errors,
                    "added": [p.as_json() for p in w.added],
                    "changed": [p.as_json() for p in w.changed],
                    "removed": [p.as_json() for p in w.removed],
                    "unchangedCount": w.unchanged_count,
                }
                for w in self.waves
            ],
            "publish": {
                "messages": [r.body() for r in self.requests] if self.valid else [],
                "cancellations": [r.body() for r in self.cancellations] if self.valid else [],
            },
        }


def build_plan(
    repo: GitRepository,
    base: Revision,
    head: Revision,
    *,
    now: datetime,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
) -> Plan:
    """Validate head, diff its effective VMs against base's, and build the requests."""
    head_files = repo.read_files(head, manifest_dir)
    base_files = repo.read_files(base, manifest_dir)
    if not head_files and not base_files:
        raise NoWaveFilesError(
            f"no wave files (*.yaml, *.yml) under {manifest_dir!r} at {head.short} or "
            f"{base.short}: is --manifests the folder of the wave files, relative to the "
            "repository's root?"
        )
    cache: FileCache = {}
    head_set = validate_files(head_files, now=now, cache=cache)
    # The base may itself be invalid (a broken main): diff against whatever parts were valid.
    base_set = validate_files(base_files, now=now, cache=cache)
    return diff_sets(repo, base, head, base_set, head_set)


def diff_sets(
    repo: GitRepository,
    base: Revision,
    head: Revision,
    base_set: ManifestSet,
    head_set: ManifestSet,
) -> Plan:
    waves = _wave_plans(base_set, head_set)
    wave_names = sorted(waves)
    not_planned = {name for name, wave in waves.items() if not wave.plannable}
    base_vms = {vm.migration_id: vm for vm in base_set.vms if vm.spec.wave not in not_planned}
    head_vms = {vm.migration_id: vm for vm in head_set.vms if vm.spec.wave not in not_planned}
    for migration_id, vm in head_vms.items():
        wave = waves[vm.spec.wave]
        before = base_vms.get(migration_id)
        if before is None:
            wave.added.append(PlannedVm(vm))
        elif before.revision != vm.revision:
            wave.changed.append(
                PlannedVm(vm, tuple(_field_changes(before.spec_json, vm.spec_json)))
            )
        else:
            wave.unchanged_count += 1
    for migration_id, vm in base_vms.items():
        if migration_id not in head_vms:
            waves[vm.spec.wave].removed.append(PlannedVm(vm))
    for wave in waves.values():
        for bucket in (wave.added, wave.changed, wave.removed):
            bucket.sort(key=lambda p: (p.vm.spec.app_name, p.vm.spec.target_vm_name))

    published = [p for wave in waves.values() for p in (*wave.added, *wave.changed)]
    removed = [p for wave in waves.values() for p in wave.removed]
    # Who asked for it: the last author in the range of each file involved (a removal
    # too is an edit of the file, or its deletion, made in the range).
    authors = repo.last_authors(head, {p.vm.path for p in (*published, *removed)}, since=base)
    requests = [
        request_for(p.vm, commit=head.sha, author=authors.get(p.vm.path, "")) for p in published
    ]
    cancellations = [
        request_for(p.vm, commit=head.sha, author=authors.get(p.vm.path, ""), action="cancel")
        for p in removed
    ]
    return Plan(
        base=base,
        head=head,
        waves=[waves[name] for name in wave_names],
        findings=head_set.findings,
        requests=requests,
        cancellations=cancellations,
    )


def _wave_plans(base_set: ManifestSet, head_set: ManifestSet) -> dict[str, WavePlan]:
    """One plan per wave in base or head; a wave whose head file has errors is not planned.

    A head file that does not validate may not even say which wave it is: it stands for
    the wave its path held in the base, or else the wave its file name names.
    """
    errors = Counter(finding.path for finding in head_set.errors)
    waves = {
        name: WavePlan(name, head_set.wave_paths.get(name) or base_set.wave_paths[name])
        for name in set(head_set.wave_paths) | set(base_set.wave_paths)
    }
    for wave in waves.values():
        head_path = head_set.wave_paths.get(wave.name)
        wave.errors = errors.pop(head_path, 0) if head_path else 0
    base_wave_at = {path: name for name, path in base_set.wave_paths.items()}
    for path, count in errors.items():
        # A wave file is named after its wave, so a moved file still finds its base wave.
        name = base_wave_at.get(path) or PurePosixPath(path).stem
        if name in head_set.wave_paths:
            name = path  # that name is taken by a valid file: keep this one apart
        wave = waves.setdefault(name, WavePlan(name, path))
        wave.path, wave.errors = path, count
    return waves


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> Iterator[FieldChange]:
    flat_old, flat_new = dict(_flatten(old)), dict(_flatten(new))
    for key in sorted(flat_old.keys() | flat_new.keys()):
        before, after = flat_old.get(key), flat_new.get(key)
        if before != after:
            yield FieldChange(key, before, after)


def _flatten(value: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings become dotted keys; lists stay whole (their order matters)."""
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict):
            yield from _flatten(item, f"{path}.")
        else:
            yield path, item
