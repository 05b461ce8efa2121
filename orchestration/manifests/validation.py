"""Validate wave manifests: every finding at once, each pinned to ``file:line:col``.

Per file: parse YAML with positions, validate the wave model, apply defaults to get each
effective VM. Across files: wave names, source VMs, target names and MGN source
server IDs must be unique. The result is the set of effective VMs that plan and publish use.
"""

from __future__ import annotations

import difflib
import gc
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestration.manifests.fields import check_tags
from orchestration.manifests.findings import Finding, Severity
from orchestration.manifests.limits import LIMITS
from orchestration.manifests.model import (
    DEFAULT_APPROVAL_SCOPE,
    DEFAULT_ON_FAILURE,
    DEFAULT_PARK_FOR,
    REQUIRED_EFFECTIVE_SETTINGS,
    EffectiveVm,
    LaunchSettings,
    Wave,
    finalize_after_minutes,
)
from orchestration.manifests.yaml_source import YamlDocument, YamlSourceError, parse_yaml
from orchestration.request_identity import migration_id, vm_revision

WAVE_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """The text of one wave file and the path to report it under.

    A file that could not be turned into text (too large, not UTF-8) has no text and an
    ``unreadable`` finding, which validation reports as the file's only finding.
    """

    path: str
    text: str
    unreadable: Finding | None = None


@dataclass(frozen=True)
class LocatedVm:
    """A VM with every default applied, where it is written, and its identity for the pipeline."""

    effective_vm: EffectiveVm
    document: YamlDocument = field(repr=False, compare=False)
    loc: tuple[str | int, ...]

    @property
    def path(self) -> str:
        return self.document.path

    @cached_property
    def line(self) -> int:
        return self.document.position(self.loc)[0]

    def position(self, *fields: str) -> tuple[int, int]:
        """Where one of this VM's fields is written (or the VM itself)."""
        return self.document.position((*self.loc, *fields))

    @cached_property
    def effective_vm_json(self) -> dict[str, Any]:
        return self.effective_vm.model_dump(mode="json")

    @cached_property
    def migration_id(self) -> str:
        return migration_id(self.effective_vm.wave, self.effective_vm.source.azure_resource_id)

    @cached_property
    def revision(self) -> str:
        return vm_revision(self.effective_vm)


@dataclass
class ManifestSet:
    """What validation found in a set of wave files."""

    waves: dict[str, Wave] = field(default_factory=dict)
    wave_paths: dict[str, str] = field(default_factory=dict)
    vms: list[LocatedVm] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def valid(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class FileResult:
    """What one file yields on its own: its wave (if valid), effective VMs and findings."""

    wave: Wave | None
    vms: tuple[LocatedVm, ...]
    findings: tuple[Finding, ...]
    document: YamlDocument | None = None


# Results of files already validated, by path and text. Plan validates two revisions in
# which most files are the same; each distinct file is then parsed and validated once.
FileCache = dict[tuple[str, str], FileResult]


def validate_files(
    files: Iterable[ManifestFile], *, now: datetime, cache: FileCache | None = None
) -> ManifestSet:
    """Validate wave files together; ``now`` decides which windows are already past."""
    result = ManifestSet()
    # The cyclic garbage collector would rescan every node and value kept so far each time
    # it runs, during validation and after it. Nothing built here is cyclic garbage, so it
    # is paused while we build and what we built is frozen out of its scans afterwards:
    # at 10,000 VMs that makes validation about three times faster, and keeps later work
    # (plan, publish) from paying seconds of collection over the same objects.
    with _gc_paused():
        for manifest in files:
            if manifest.unreadable is not None:
                _add_file(result, manifest.path, FileResult(None, (), (manifest.unreadable,)))
                continue
            key = (manifest.path, manifest.text)
            file_result = cache.get(key) if cache is not None else None
            if file_result is None:
                file_result = _validate_file(manifest, now)
                if cache is not None:
                    cache[key] = file_result
            _add_file(result, manifest.path, file_result)
        _check_unique_across_files(result)
    result.findings.sort()
    return result


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def is_wave_file(path: str) -> bool:
    return path.endswith(WAVE_FILE_SUFFIXES)


def _add_file(result: ManifestSet, path: str, file_result: FileResult) -> None:
    result.findings.extend(file_result.findings)
    wave = file_result.wave
    if wave is None:
        return
    if wave.name in result.waves:
        document = file_result.document
        line, col = document.position(("name",)) if document else (1, 1)
        result.findings.append(
            Finding(
                path,
                line,
                col,
                f"name: wave {wave.name!r} is already defined in {result.wave_paths[wave.name]}",
            )
        )
        return
    result.waves[wave.name] = wave
    result.wave_paths[wave.name] = path
    result.vms.extend(file_result.vms)


# --- one file -------------------------------------------------------------------------


def _validate_file(manifest: ManifestFile, now: datetime) -> FileResult:
    try:
        document = parse_yaml(manifest.path, manifest.text)
    except YamlSourceError as exc:
        return FileResult(None, (), (exc.finding,))
    data = document.data
    if not isinstance(data, dict):
        line, col = document.position(())
        kind = _yaml_kind(data)
        finding = Finding(manifest.path, line, col, f"a wave manifest is a mapping, not {kind}")
        return FileResult(None, (), (finding,))
    too_many = _too_many_vms(document)
    if too_many is not None:
        return FileResult(None, (), (too_many,))

    findings = list(_missing_settings(document))
    try:
        wave = Wave.model_validate(data)
    except ValidationError as exc:
        findings.extend(_findings_from_error(document, exc))
        return FileResult(None, (), tuple(findings))

    expected_name = PurePosixPath(manifest.path).stem
    if wave.name != expected_name:
        line, col = document.position(("name",))
        findings.append(
            Finding(
                manifest.path,
                line,
                col,
                f"name: the wave is called {wave.name!r} but its file is {expected_name!r}: "
                "rename one so they match",
            )
        )
    if wave.cutover_window.end < now:
        line, col = document.position(("cutoverWindow", "end"))
        findings.append(
            Finding(
                manifest.path,
                line,
                col,
                f"cutoverWindow.end: the window closed at {wave.cutover_window.end.isoformat()}, "
                "it is already in the past",
                Severity.WARNING,
            )
        )
    seen_apps: set[str] = set()
    for index, app in enumerate(wave.applications):
        if app.name in seen_apps:
            line, col = document.position(("applications", index, "name"))
            findings.append(
                Finding(
                    manifest.path,
                    line,
                    col,
                    f"applications[{index}].name: application {app.name!r} is already defined "
                    "in this wave: merge the two or rename one",
                )
            )
        seen_apps.add(app.name)
    findings.extend(_dependency_findings(document, wave))
    vms = _effective_vms(document, wave, findings)
    return FileResult(wave, tuple(vms), tuple(findings), document)


def _dependency_findings(document: YamlDocument, wave: Wave) -> Iterator[Finding]:
    """``dependsOn``: names of other applications of the wave, each once, without cycles."""
    names = [app.name for app in wave.applications]
    known = set(names)
    edges: dict[str, list[tuple[str, int, int]]] = {}  # app -> (dependency, app index, entry)
    for index, app in enumerate(wave.applications):
        seen: set[str] = set()
        for entry, name in enumerate(app.depends_on or ()):
            loc = ("applications", index, "dependsOn", entry)
            line, col = document.position(loc)
            where = f"{_format_loc(loc)}: "
            if name == app.name:
                message = f"application {name!r} cannot depend on itself"
            elif name not in known:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                message = (
                    f"no application {name!r} in wave {wave.name!r}{hint}: dependsOn names "
                    "applications of the same wave"
                )
            elif name in seen:
                message = f"{name!r} is listed twice in dependsOn"
            else:
                message = ""
                edges.setdefault(app.name, []).append((name, index, entry))
            seen.add(name)
            if message:
                yield Finding(document.path, line, col, where + message)
    for cycle, index, entry in _cycles(names, edges):
        loc = ("applications", index, "dependsOn", entry)
        line, col = document.position(loc)
        yield Finding(
            document.path,
            line,
            col,
            f"{_format_loc(loc)}: dependsOn makes a cycle, {' -> '.join(cycle)} (each "
            "depends on the next): none of these could ever cut over; remove one dependency",
        )


def _cycles(
    names: Sequence[str], edges: dict[str, list[tuple[str, int, int]]]
) -> Iterator[tuple[list[str], int, int]]:
    """Each dependency that closes a cycle: the cycle (first name repeated at its end) and
    where that dependency is written. Iterative depth-first search, in file order."""
    done: set[str] = set()
    for root in names:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        pending = [iter(edges.get(root, ()))]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            name, index, entry = step
            if name in on_path:
                yield [*path[path.index(name) :], name], index, entry
            elif name not in done:
                path.append(name)
                on_path.add(name)
                pending.append(iter(edges.get(name, ())))


def cutover_levels(wave: Wave) -> list[list[str]]:
    """The wave's applications in cutover order: level 1 has no dependencies, level 2
    depends only on level 1, and so on (file order within a level). Empty when no
    application has ``dependsOn``. For a wave that validated (no unknown names, no cycles);
    applications a cycle would hold are left out."""
    if not any(app.depends_on for app in wave.applications):
        return []
    remaining = {app.name: set(app.depends_on or ()) - {app.name} for app in wave.applications}
    placed: set[str] = set()
    levels: list[list[str]] = []
    while remaining:
        level = [name for name, needs in remaining.items() if needs <= placed]
        if not level:
            break
        levels.append(level)
        placed.update(level)
        for name in level:
            del remaining[name]
    return levels


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a plain string"
    return f"a {type(value).__name__} value"


def _iter_vm_layers(
    data: dict[str, Any],
) -> Iterator[tuple[tuple[str | int, ...], list[dict[str, Any]]]]:
    """Yield each VM's location and its settings layers (wave, application, VM), tolerantly."""
    wave_defaults = data.get("defaults")
    applications = data.get("applications")
    if not isinstance(applications, list):
        return
    for app_index, app in enumerate(applications):
        if not isinstance(app, dict) or not isinstance(app.get("vms"), list):
            continue
        for vm_index, vm in enumerate(app["vms"]):
            if not isinstance(vm, dict):
                continue
            layers = [
                layer
                for layer in (wave_defaults, app.get("defaults"), vm)
                if isinstance(layer, dict)
            ]
            yield ("applications", app_index, "vms", vm_index), layers


def _too_many_vms(document: YamlDocument) -> Finding | None:
    """The VM past the per-file limit, found before any VM is validated."""
    for count, (loc, _) in enumerate(_iter_vm_layers(document.data), start=1):
        if count > LIMITS.vms:
            line, col = document.position(loc)
            return Finding(
                document.path,
                line,
                col,
                f"{_format_loc(loc)}: more than {LIMITS.vms:,} VMs in one wave file "
                "(the limit): split the wave",
            )
    return None


def _missing_settings(document: YamlDocument) -> Iterator[Finding]:
    """Settings no layer provides. Checked on raw data so they are reported with type errors."""
    for loc, layers in _iter_vm_layers(document.data):
        missing = [
            key
            for key in REQUIRED_EFFECTIVE_SETTINGS
            if all(layer.get(key) is None for layer in layers)
        ]
        if missing:
            line, col = document.position(loc)
            names = ", ".join(missing)
            yield Finding(
                document.path,
                line,
                col,
                f"{_format_loc(loc)}: no value for {names}: set it on the VM, in its "
                "application's defaults or in the wave's defaults",
            )


def _effective_vms(document: YamlDocument, wave: Wave, findings: list[Finding]) -> list[LocatedVm]:
    """Apply defaults to every VM of a validated wave.

    Every value was validated with the wave, so effective VMs are assembled without
    validating again (at 10,000 VMs that halves the time); only the merged tag set can
    break a rule none of its parts broke.
    """
    wave_fields: dict[str, Any] = {
        "wave": wave.name,
        "environment": wave.environment,
        "target_account_id": wave.target.account_id,
        "target_region": wave.target.region,
        "cutover_window": wave.cutover_window,
        "slack_channel": wave.slack_channel,
        "approvers": wave.approvers,
        "operators": wave.operators,
    }
    vms: list[LocatedVm] = []
    for app_index, app in enumerate(wave.applications):
        approval = app.approval or wave.approval
        scope = approval.scope if approval is not None else DEFAULT_APPROVAL_SCOPE
        hold = finalize_after_minutes(app.finalize_after or wave.finalize_after or "0")
        after = list(dict.fromkeys(app.depends_on or ()))
        on_failure = app.on_failure or wave.on_failure or DEFAULT_ON_FAILURE
        park_for = (
            finalize_after_minutes(app.park_for or wave.park_for or DEFAULT_PARK_FOR)
            if on_failure == "park"
            else 0
        )
        for vm_index, vm in enumerate(app.vms):
            loc = ("applications", app_index, "vms", vm_index)
            settings = _merge_settings((wave.defaults, app.defaults, vm))
            if any(settings.get(name) is None for name in _REQUIRED_FIELD_NAMES):
                continue  # already reported by _missing_settings
            try:
                settings["tags"] = check_tags(settings["tags"])
            except ValueError as exc:
                line, col = document.position(loc)
                findings.append(
                    Finding(
                        document.path,
                        line,
                        col,
                        f"{_format_loc(loc)}: tags (wave, application and VM merged): {exc}",
                    )
                )
                continue
            effective_vm = EffectiveVm.model_construct(
                **wave_fields,
                app_name=app.name,
                source=vm.source,
                target_vm_name=vm.target_vm_name,
                approval_scope=scope,
                finalize_after_minutes=hold,
                cutover_after=after,
                on_failure=on_failure,
                park_for_minutes=park_for,
                **settings,
            )
            vms.append(LocatedVm(effective_vm=effective_vm, document=document, loc=loc))
    return vms


_SETTING_NAMES = tuple(LaunchSettings.model_fields)
_REQUIRED_FIELD_NAMES = tuple(
    name
    for name, info in LaunchSettings.model_fields.items()
    if info.alias in REQUIRED_EFFECTIVE_SETTINGS
)


def _merge_settings(layers: Sequence[LaunchSettings | None]) -> dict[str, Any]:
    """Wave defaults, then application defaults, then the VM: the last value set wins;
    tags merge key by key."""
    merged: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for layer in layers:
        if layer is None:
            continue
        for name in _SETTING_NAMES:
            value = getattr(layer, name)
            if value is None:
                continue
            if name == "tags":
                tags.update(value)
            else:
                merged[name] = value
    merged["tags"] = tags
    merged.setdefault("test_subnet_id", merged.get("subnet_id"))
    merged.setdefault("test_security_group_ids", merged.get("security_group_ids"))
    merged.setdefault("iam_instance_profile", None)
    merged.setdefault("boot_mode", "USE_SOURCE")
    merged.setdefault("os_byol", False)
    merged.setdefault("health_checks", [])
    merged.setdefault("callback_urls", [])
    merged.setdefault("post_launch_actions", [])
    return merged


# --- across files ---------------------------------------------------------------------


def _check_unique_across_files(result: ManifestSet) -> None:
    def claim(
        seen: dict[str, LocatedVm], key: str, vm: LocatedVm, what: str, value: str, *at: str
    ) -> None:
        first = seen.setdefault(key, vm)
        if first is not vm:
            line, col = vm.position(*at)
            result.findings.append(
                Finding(
                    vm.path,
                    line,
                    col,
                    f"{what} {value!r} is already used by {first.effective_vm.target_vm_name!r} "
                    f"in wave {first.effective_vm.wave!r} ({first.path}:{first.line})",
                )
            )

    sources: dict[str, LocatedVm] = {}
    server_ids: dict[str, LocatedVm] = {}
    user_provided_ids: dict[str, LocatedVm] = {}
    names: dict[str, LocatedVm] = {}
    for vm in result.vms:
        effective = vm.effective_vm
        claim(
            sources,
            effective.source.azure_resource_id.lower(),
            vm,
            "source VM",
            effective.source.azure_resource_id,
            "source",
            "azureResourceId",
        )
        if effective.source.source_server_id:
            claim(
                server_ids,
                effective.source.source_server_id.lower(),
                vm,
                "MGN source server",
                effective.source.source_server_id,
                "source",
                "sourceServerId",
            )
        if effective.source.user_provided_id:
            claim(
                user_provided_ids,
                effective.source.user_provided_id,
                vm,
                "MGN userProvidedId",
                effective.source.user_provided_id,
                "source",
                "userProvidedId",
            )
        claim(
            names,
            f"{effective.target_account_id}/{effective.target_vm_name.lower()}",
            vm,
            f"targetVmName in account {effective.target_account_id}:",
            effective.target_vm_name,
            "targetVmName",
        )


# --- pydantic errors as findings ------------------------------------------------------


def findings_from_validation_error(
    document: YamlDocument, exc: ValidationError
) -> Iterator[Finding]:
    """pydantic's errors on ``document``'s data as findings at the lines they point to (for
    other YAML files validated by a model, e.g. the rehearsal profile)."""
    return _findings_from_error(document, exc)


def _findings_from_error(document: YamlDocument, exc: ValidationError) -> Iterator[Finding]:
    for error in exc.errors(include_url=False):
        loc = _data_loc(document.data, error["loc"])
        if error["type"] == "extra_forbidden":
            line, col = document.key_position(loc)
        else:
            line, col = document.position(loc)
        if error["type"] == "missing":
            shown_loc = loc[:-1]  # the key does not exist: name the mapping that lacks it
        elif error["type"] == "union_tag_invalid":
            loc = (*loc, "type")
            line, col = document.position(loc)
            shown_loc = loc
        else:
            shown_loc = loc
        prefix = f"{_format_loc(shown_loc)}: " if shown_loc else ""
        yield Finding(
            document.path, line, col, prefix + _describe(error, document.source_text(loc))
        )


def _data_loc(data: Any, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop the parts pydantic adds that are not in the data (tagged-union tags)."""
    cleaned: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        is_last = index == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and part not in node and not is_last:
            continue
        cleaned.append(part)
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(cleaned)


def _format_loc(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@cache
def _known_keys() -> list[str]:
    """Every key a manifest may use anywhere, for 'did you mean' hints."""
    keys: set[str] = set()
    stack: list[type[BaseModel]] = [Wave, EffectiveVm]
    seen: set[type[BaseModel]] = set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
        stack.extend(_nested_models(model))
    return sorted(keys)


def _nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    def walk(annotation: Any) -> Iterator[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in typing.get_args(annotation):
            yield from walk(arg)

    for info in model.model_fields.values():
        yield from walk(info.annotation)


def _describe(error: ErrorDetails, written: str | None = None) -> str:  # noqa: PLR0911, PLR0912 - one message per error kind
    """A finding's message: what is wrong and what is expected, in the manifest's words."""
    kind = error["type"]
    value = error.get("input")
    context = error.get("ctx") or {}
    if kind == "missing":
        return f"missing required key {error['loc'][-1]!r}"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, _known_keys(), n=1)
        if close and close[0] == key:
            return f"key {key!r} is not allowed at this level"
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool | int | float):
            text = written if written is not None else str(value)
            kind_name = "boolean" if isinstance(value, bool) else "number"
            hint = f" (YAML reads {text} as a {kind_name}: write it in quotes, '{text}')"
        return f"expected a string, got {_shown(value)}{hint}"
    if kind in {"dict_type", "model_type", "model_attributes_type", "list_type"}:
        wanted = "a list" if kind == "list_type" else "a mapping"
        return f"expected {wanted}, got {_shown(value)}"
    if kind == "union_tag_invalid":
        expected = context.get("expected_tags", "")
        return f"unknown type {context.get('tag')!r}: expected one of {expected}"
    if kind == "union_tag_not_found":
        return "missing required key 'type' (tcp or http)"
    if kind in {"too_long", "too_short"}:
        actual = context.get("actual_length")
        if kind == "too_short" and context.get("min_length") == 1:
            return "must not be empty"
        bound = "at most" if kind == "too_long" else "at least"
        limit = context.get("max_length" if kind == "too_long" else "min_length")
        return f"has {actual} items, {bound} {limit} allowed"
    if kind == "string_too_long":
        return f"is {len(str(value))} characters long, at most {context.get('max_length')} allowed"
    if kind in {"timezone_aware", "datetime_from_date_parsing"} or (
        kind == "datetime_parsing" and isinstance(value, str) and "T" not in value
    ):
        return (
            f"{value!r} has no time zone: write a full timestamp with one, "
            "such as 2026-12-05T22:00:00Z or 2026-12-05T22:00:00+01:00"
        )
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"{error['msg'].replace('Input should be', 'should be')}, got {_shown(value)}"
    message = error["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind == "assertion_error":
        return message.removeprefix("Assertion failed, ")
    message = message.replace("Input should be", "should be")
    if kind in {"literal_error", "int_type", "bool_type", "datetime_parsing", "datetime_type"}:
        return f"{message}, got {_shown(value)}"
    return message


def _shown(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    return repr(value)
