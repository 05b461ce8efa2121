"""What merging a change will do: per wave, the VMs added, changed and removed.

A plan compares the effective VMs of two git revisions. It is what the pull
request comment shows and exactly what ``wavepilot publish`` sends.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from multiprocessing.connection import Connection
from pathlib import PurePosixPath
from typing import Any, Protocol

from orchestration.gitops.git import GitRepository, Revision
from orchestration.gitops.requests import PublishableVm, request_for
from orchestration.manifests.findings import Finding
from orchestration.manifests.model import EffectiveVm
from orchestration.manifests.validation import (
    FileCache,
    LocatedVm,
    ManifestFile,
    ManifestSet,
    cutover_levels,
    validate_files,
)
from orchestration.migration_request import MigrationRequest

PLAN_SCHEMA_VERSION = 1
DEFAULT_MANIFEST_DIR = "manifests/waves"
# Base files that differ from head are validated in a second process (both cores) when
# there is this much of them: below it, starting the process costs more than it saves.
PARALLEL_BASE_MIN_BYTES = 512 * 1024


class NoWaveFilesError(Exception):
    """Neither revision has a wave file where the plan was told to look."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class BaseVm:
    """A VM as the base revision has it: what the diff compares, and names when removed.

    Plain data, so that a second process can validate the base and send it back cheaply.
    """

    migration_id: str
    revision: str
    path: str
    line: int
    effective_vm_json: dict[str, Any]

    @classmethod
    def of(cls, vm: PublishableVm) -> BaseVm:
        return cls(vm.migration_id, vm.revision, vm.path, vm.line, vm.effective_vm_json)

    @cached_property
    def effective_vm(self) -> EffectiveVm:
        return EffectiveVm.model_validate_json(json.dumps(self.effective_vm_json))


@dataclass(frozen=True)
class PlannedVm:
    """One VM in the plan; ``vm`` is the head version (base version for removals)."""

    vm: PublishableVm
    changes: tuple[FieldChange, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "migrationId": self.vm.migration_id,
            "revision": self.vm.revision,
            "targetVmName": self.vm.effective_vm.target_vm_name,
            "appName": self.vm.effective_vm.app_name,
            "sourceVmId": self.vm.effective_vm.source.azure_resource_id,
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
    cutover_order: list[list[str]] = field(default_factory=list)
    """The head's applications in cutover order (``dependsOn``), level by level; empty when
    no application has dependencies or the wave is not planned."""

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
                    "cutoverOrder": w.cutover_order,
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
    parallel: bool | None = None,
) -> Plan:
    """Validate head, diff its effective VMs against base's, and build the requests.

    ``parallel``: validate what differs in the base in a second process (``None``: when it
    pays, see :func:`_worth_a_process`).
    """
    head_files = repo.read_files(head, manifest_dir)
    base_files = repo.read_files(base, manifest_dir)
    if not head_files and not base_files:
        raise NoWaveFilesError(
            f"no wave files (*.yaml, *.yml) under {manifest_dir!r} at {head.short} or "
            f"{base.short}: is --manifests the folder of the wave files, relative to the "
            "repository's root?"
        )
    # Files identical in both revisions are validated once; the rest of the base, when it
    # is large, in a second process while this one validates the head.
    head_texts = {(f.path, f.text) for f in head_files}
    shared = [f for f in base_files if (f.path, f.text) in head_texts]
    base_only = [f for f in base_files if (f.path, f.text) not in head_texts]
    if parallel is None:
        parallel = _worth_a_process(base_only)
    cache: FileCache = {}
    with _BaseOnly(base_only, now, in_child=parallel) as base_only_side:
        head_set = validate_files(head_files, now=now, cache=cache)
        # The base may itself be invalid (a broken main): diff against its valid parts.
        baseline = Baseline([ValidatedBase.of(shared, now, cache), base_only_side])
        return diff_sets(repo, base, head, baseline, head_set)


class BaseSide(Protocol):
    """Part of the base revision, validated: every VM's revision, details on request."""

    def wave_paths(self) -> dict[str, str]: ...
    def summary(self) -> dict[str, tuple[str, str]]:
        """Migration ID -> (revision, wave) of every VM."""
        ...

    def details(self, wanted: set[str]) -> dict[str, PublishableVm]: ...


class ValidatedBase:
    """Base files validated in this process."""

    def __init__(self, manifests: ManifestSet) -> None:
        self._wave_paths = dict(manifests.wave_paths)
        self._vms: dict[str, LocatedVm] = {}
        for vm in manifests.vms:
            self._vms.setdefault(vm.migration_id, vm)

    @classmethod
    def of(
        cls, files: Sequence[ManifestFile], now: datetime, cache: FileCache | None = None
    ) -> ValidatedBase:
        return cls(validate_files(files, now=now, cache=cache))

    def wave_paths(self) -> dict[str, str]:
        return self._wave_paths

    def summary(self) -> dict[str, tuple[str, str]]:
        return {mid: (vm.revision, vm.effective_vm.wave) for mid, vm in self._vms.items()}

    def details(self, wanted: set[str]) -> dict[str, PublishableVm]:
        return {mid: self._vms[mid] for mid in wanted if mid in self._vms}


class _BaseOnly:
    """Base files that differ from head: validated in a forked process, or here.

    The child sends every VM's revision first (small), then, asked for them, the details of
    the VMs the diff needs (changed and removed ones) as plain data. A child that fails or
    does not answer is replaced by doing the work in this process: the plan never depends
    on it.
    """

    # A child that has not answered by then is given up on (and the work done here).
    CHILD_TIMEOUT_SECONDS = 300

    def __init__(self, files: Sequence[ManifestFile], now: datetime, *, in_child: bool) -> None:
        self._files, self._now, self._in_child = list(files), now, in_child
        self._process: multiprocessing.process.BaseProcess | None = None
        self._channel: Connection | None = None
        self._local: ValidatedBase | None = None
        self._wave_paths: dict[str, str] | None = None
        self._summary: dict[str, tuple[str, str]] | None = None

    def __enter__(self) -> _BaseOnly:
        if self._in_child and self._files:
            context = multiprocessing.get_context("fork")
            self._channel, child_end = context.Pipe(duplex=True)
            self._process = context.Process(
                target=_serve_base, args=(self._files, self._now, child_end), daemon=True
            )
            self._process.start()
            child_end.close()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():  # pragma: no cover - a child that will not end
                self._process.kill()
            self._process = None

    def _ask(self, request: object | None = None) -> Any:
        """The child's next answer (after sending ``request``), or None if it failed."""
        if self._channel is None:
            return None
        try:
            if request is not None:
                self._channel.send(request)
            if self._channel.poll(self.CHILD_TIMEOUT_SECONDS):
                return self._channel.recv()
        except (EOFError, OSError):
            pass
        self._close()  # from now on, the work is done here
        return None

    def _here(self) -> ValidatedBase:
        if self._local is None:
            self._local = ValidatedBase.of(self._files, self._now)
        return self._local

    def _load_summary(self) -> None:
        if self._summary is None:
            answer = self._ask()
            if answer is None:
                answer = (self._here().wave_paths(), self._here().summary())
            self._wave_paths, self._summary = answer

    def wave_paths(self) -> dict[str, str]:
        self._load_summary()
        return self._wave_paths or {}

    def summary(self) -> dict[str, tuple[str, str]]:
        self._load_summary()
        return self._summary or {}

    def details(self, wanted: set[str]) -> dict[str, PublishableVm]:
        answer = self._ask(sorted(wanted)) if self._local is None else None
        return dict(answer) if answer is not None else self._here().details(wanted)


def _worth_a_process(files: Sequence[ManifestFile]) -> bool:
    """Fork only a single-threaded process with a second core and enough work to share."""
    return (
        len(os.sched_getaffinity(0)) > 1
        and threading.active_count() == 1
        and sum(len(f.text) for f in files) >= PARALLEL_BASE_MIN_BYTES
    )


def _serve_base(
    files: Sequence[ManifestFile], now: datetime, channel: Connection
) -> None:  # pragma: no cover - runs in the forked process; the plans it gives are tested
    try:
        side = ValidatedBase.of(files, now)
        channel.send((side.wave_paths(), side.summary()))
        wanted = set(channel.recv())
        channel.send({mid: BaseVm.of(vm) for mid, vm in side.details(wanted).items()})
    finally:
        channel.close()


class Baseline:
    """The base revision, from its parts: wave files and VM revisions, details on request."""

    def __init__(self, sides: Sequence[BaseSide]) -> None:
        self._sides = list(sides)
        self.wave_paths: dict[str, str] = {}
        self.revisions: dict[str, tuple[str, str]] = {}
        for side in self._sides:
            for name, path in side.wave_paths().items():
                self.wave_paths.setdefault(name, path)
            for mid, revision in side.summary().items():
                self.revisions.setdefault(mid, revision)

    def details(self, wanted: set[str]) -> dict[str, PublishableVm]:
        found: dict[str, PublishableVm] = {}
        for side in self._sides:
            missing = wanted - found.keys()
            if missing:
                found.update(side.details(missing))
        return found


def diff_sets(
    repo: GitRepository,
    base: Revision,
    head: Revision,
    baseline: Baseline,
    head_set: ManifestSet,
) -> Plan:
    waves = _wave_plans(baseline.wave_paths, head_set)
    wave_names = sorted(waves)
    not_planned = {name for name, wave in waves.items() if not wave.plannable}
    base_vms = {
        migration_id: (revision, wave)
        for migration_id, (revision, wave) in baseline.revisions.items()
        if wave not in not_planned
    }
    head_vms = {
        vm.migration_id: vm for vm in head_set.vms if vm.effective_vm.wave not in not_planned
    }
    changed = {
        mid for mid, vm in head_vms.items() if base_vms.get(mid, (vm.revision,))[0] != vm.revision
    }
    removed_ids = base_vms.keys() - head_vms.keys()
    before = baseline.details(changed | removed_ids)
    for migration_id, vm in head_vms.items():
        wave = waves[vm.effective_vm.wave]
        if migration_id not in base_vms:
            wave.added.append(PlannedVm(vm))
        elif migration_id in changed:
            old = before[migration_id].effective_vm_json
            wave.changed.append(PlannedVm(vm, tuple(_field_changes(old, vm.effective_vm_json))))
        else:
            wave.unchanged_count += 1
    for migration_id in removed_ids:
        waves[base_vms[migration_id][1]].removed.append(PlannedVm(before[migration_id]))
    for wave in waves.values():
        head_wave = head_set.waves.get(wave.name)
        if head_wave is not None and wave.plannable:
            wave.cutover_order = cutover_levels(head_wave)
        for bucket in (wave.added, wave.changed, wave.removed):
            bucket.sort(
                key=lambda p: (p.vm.effective_vm.app_name, p.vm.effective_vm.target_vm_name)
            )

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


def _wave_plans(base_wave_paths: dict[str, str], head_set: ManifestSet) -> dict[str, WavePlan]:
    """One plan per wave in base or head; a wave whose head file has errors is not planned.

    A head file that does not validate may not even say which wave it is: it stands for
    the wave its path held in the base, or else the wave its file name names.
    """
    errors = Counter(finding.path for finding in head_set.errors)
    waves = {
        name: WavePlan(name, head_set.wave_paths.get(name) or base_wave_paths[name])
        for name in set(head_set.wave_paths) | set(base_wave_paths)
    }
    for wave in waves.values():
        head_path = head_set.wave_paths.get(wave.name)
        wave.errors = errors.pop(head_path, 0) if head_path else 0
    base_wave_at = {path: name for name, path in base_wave_paths.items()}
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
