"""Map inventory rows to wave drafts: wave -> application -> VM, nothing invented.

A value the inventory does not give, or gives in a form that would not validate, becomes
the placeholder ``CHANGE-ME`` (which the validator rejects) and a :class:`ValueToFill`
saying which row and column it came from and why. Settings every VM of a wave (or of an
application) shares are lifted into that level's ``defaults``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestration.inventory.sources import Cell, Origin, RowProblem, ServerRow
from orchestration.manifests.fields import (
    AwsAccountId,
    AwsRegion,
    AzureVmResourceId,
    EnvironmentName,
    FreeText,
    Hostname,
    IamInstanceProfileName,
    InstanceType,
    SecurityGroupId,
    SlackChannelId,
    SlackPrincipalId,
    SubnetId,
    TargetVmName,
    UserProvidedId,
    check_tags,
)

PLACEHOLDER = "CHANGE-ME"
NOT_IN_INVENTORY = "(not in the inventory)"

# Launch settings in the order the examples write them (tags are kept apart: merged by key).
LIFTABLE_SETTINGS = (
    "osFamily",
    "instanceType",
    "subnetId",
    "securityGroupIds",
    "testSubnetId",
    "testSecurityGroupIds",
    "iamInstanceProfile",
)
_SLUG_RUN = re.compile(r"[^a-z0-9]+")
_VM_NAME_RUN = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Setting:
    """A value to write, with the comment that goes on its line (if any)."""

    value: str | tuple[str, ...] | tuple[int, ...]
    comment: str | None = None

    @property
    def is_placeholder(self) -> bool:
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        return PLACEHOLDER in values


@dataclass(frozen=True, slots=True)
class ValueToFill:
    """A placeholder written into a wave, and the inventory row and column behind it."""

    origin: Origin
    key: str  # the manifest key: slackChannel, subnetId, source.azureResourceId, ...
    column: str
    value: str | None
    why: str
    vm: Origin | None = None  # None for a wave-level key

    def __str__(self) -> str:
        shown = NOT_IN_INVENTORY if self.value is None else repr(self.value)
        return f"{self.origin}: {self.column}: {shown} will not validate: {self.why}"


@dataclass(frozen=True, slots=True)
class Caution:
    """Something imported as it is but worth a look (it does not stop validation)."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: warning: {self.message}"


@dataclass
class VmDraft:
    origin: Origin
    target_vm_name: str
    source: dict[str, Setting]
    settings: dict[str, Setting]
    tags: dict[str, str]


@dataclass
class ApplicationDraft:
    name: str
    description: str | None
    vms: list[VmDraft] = field(default_factory=list)
    defaults: dict[str, Setting] = field(default_factory=dict)
    default_tags: dict[str, str] = field(default_factory=dict)


@dataclass
class WaveDraft:
    name: str
    description: str | None
    first_row: Origin
    top: dict[str, Setting]  # environment, target.*, cutoverWindow.*, slackChannel, ...
    applications: list[ApplicationDraft] = field(default_factory=list)
    defaults: dict[str, Setting] = field(default_factory=dict)
    default_tags: dict[str, str] = field(default_factory=dict)
    to_fill: list[ValueToFill] = field(default_factory=list)
    warnings: list[Caution] = field(default_factory=list)


@dataclass(frozen=True)
class ExistingWave:
    """Values a person filled into a wave file earlier, kept when the inventory lacks them.

    Read with YAML's base loader: every scalar stays the string written, so a kept value is
    written back byte for byte.
    """

    top: Mapping[str, Any]
    vms: Mapping[str, Mapping[str, Any]]  # lowercase targetVmName -> effective settings


@dataclass(frozen=True)
class WaveSettings:
    """Wave settings given on the command line, for rows whose inventory does not give them.

    A row's own value wins; a given value is checked like any other (its column is the option).
    """

    account_id: str | None = None
    region: str | None = None
    environment: str | None = None

    def fill(self, row: ServerRow) -> ServerRow:
        return replace(
            row,
            account_id=row.account_id or _given("--account-id", self.account_id),
            region=row.region or _given("--region", self.region),
            environment=row.environment or _given("--environment", self.environment),
        )


def _given(option: str, value: str | None) -> Cell | None:
    return Cell(option, value) if value else None


def slug(text: str) -> str:
    """A wave or application name: lowercase letters, digits and '-', at most 63."""
    return _SLUG_RUN.sub("-", text.lower()).strip("-")[:63].strip("-")


def target_vm_name(text: str) -> str:
    """Lowercase, runs of other characters as '-', starting with a letter or digit."""
    name = _VM_NAME_RUN.sub("-", text.lower())
    return name.lstrip("._-")[:63]


@cache
def _adapter(rule: Any) -> TypeAdapter[Any]:
    return TypeAdapter(rule)


def rule_problem(rule: object, value: object) -> str | None:
    """Why ``value`` breaks a manifest field rule (the validator's own words), or None."""
    try:
        _adapter(rule).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    return None


class _Collector:
    """Builds one wave's settings, recording each placeholder it writes."""

    def __init__(self, draft: WaveDraft, existing: ExistingWave | None) -> None:
        self.draft = draft
        self.existing = existing

    def placeholder(
        self,
        origin: Origin,
        key: str,
        column: str,
        value: str | None,
        why: str,
        *,
        vm: Origin | None = None,
        kept: object = None,
        as_list: bool = False,
    ) -> Setting:
        if kept is not None:
            return Setting(tuple(kept) if isinstance(kept, list) else str(kept))
        self.draft.to_fill.append(ValueToFill(origin, key, column, value, why, vm))
        comment = f"{PLACEHOLDER}: {why}" if value is None else f"inventory: {value!r}"
        return Setting((PLACEHOLDER,) if as_list else PLACEHOLDER, comment)

    def kept_top(self, key: str, check: Callable[[Any], bool]) -> object:
        if self.existing is None:
            return None
        value = self.existing.top.get(key)
        return value if value is not None and check(value) else None

    def kept_vm(self, name: str, key: str, check: Callable[[Any], bool]) -> object:
        if self.existing is None:
            return None
        value = self.existing.vms.get(name.lower(), {}).get(key)
        return value if value is not None and check(value) else None


def _valid(rule: object) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and rule_problem(rule, value) is None


def _valid_list(rule: object) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, list)
        and 1 <= len(value) <= 5
        and all(isinstance(item, str) and rule_problem(rule, item) is None for item in value)
    )


_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$"
)


def _slack_principals(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(_valid(SlackPrincipalId)(item) for item in value)
    )


def _timestamp(value: Any) -> bool:
    return isinstance(value, str) and bool(_TIMESTAMP.match(value))


def group_waves(
    rows: Sequence[ServerRow], *, wave_name: str | None
) -> tuple[dict[str, list[ServerRow]], list[RowProblem]]:
    """Rows by wave name (as the file will be named), in the order waves first appear.

    A row without a wave (and no ``--wave``), without an application or a name, or landing
    in another account or Region than its wave's first row, is refused.
    """
    waves: dict[str, list[ServerRow]] = {}
    problems: list[RowProblem] = []
    for row in rows:
        wave_cell = row.wave
        name = slug(wave_cell.value) if wave_cell else slug(wave_name or "")
        if not name:
            column = wave_cell.column if wave_cell else "wave"
            problems.append(
                RowProblem(
                    row.origin,
                    f"{column}: no wave name (give the column, or --wave NAME): row not imported",
                )
            )
            continue
        if row.application is None or not slug(row.application.value):
            problems.append(RowProblem(row.origin, "no application name: row not imported"))
            continue
        if row.name is None or not target_vm_name(row.name.value):
            problems.append(RowProblem(row.origin, "no server name: row not imported"))
            continue
        clash = _target_clash(waves[name][0], row) if name in waves else None
        if clash:
            problems.append(RowProblem(row.origin, clash))
            continue
        waves.setdefault(name, []).append(row)
    return waves, problems


def _description(draft: WaveDraft, origin: Origin, level: str, text: str | None) -> str | None:
    """A wave's or application's description, left out (and said) when it would not validate."""
    problem = rule_problem(FreeText, text) if text is not None else None
    if problem is None:
        return text
    draft.warnings.append(Caution(origin, f"{level} description: {problem}: left out"))
    return None


def _environment(rows: Sequence[ServerRow]) -> tuple[str | None, str | None, str]:
    """The wave's environment when its rows agree on a valid one; else what they gave and why."""
    given = sorted({row.environment.value.lower() for row in rows if row.environment})
    if not given:
        return None, None, "the wave's environment label (lowercase, such as prod)"
    if len(given) > 1:
        return None, ";".join(given), "a wave has one environment: split the wave or pick one"
    problem = rule_problem(EnvironmentName, given[0])
    return (given[0], None, "") if problem is None else (None, given[0], problem)


def _target_clash(first: ServerRow, row: ServerRow) -> str | None:
    for attribute in ("account_id", "region"):
        mine, theirs = getattr(row, attribute), getattr(first, attribute)
        mine_value = mine.value if mine else ""
        theirs_value = theirs.value if theirs else ""
        if mine_value != theirs_value:
            column = (mine or theirs).column
            return (
                f"{column}: {mine_value!r} differs from {theirs_value!r} in "
                f"{first.origin.unit} {first.origin.number}: a wave lands in one account and "
                "Region, so give this server its own wave: row not imported"
            )
    return None


def draft_wave(
    name: str, rows: Sequence[ServerRow], existing: ExistingWave | None
) -> tuple[WaveDraft, list[RowProblem]]:
    """One wave from its rows: placeholders where the inventory falls short, defaults lifted."""
    first = rows[0]
    description = first.wave_description or (
        first.wave.value if first.wave and first.wave.value != name else None
    )
    draft = WaveDraft(name=name, description=None, first_row=first.origin, top={})
    draft.description = _description(draft, first.origin, "wave", description)
    collect = _Collector(draft, existing)
    origin = first.origin

    environment, shown, why = _environment(rows)
    if environment is not None:
        draft.top["environment"] = Setting(environment)
    else:
        column = next((r.environment.column for r in rows if r.environment), "environment")
        draft.top["environment"] = collect.placeholder(
            origin,
            "environment",
            column,
            shown,
            why,
            kept=collect.kept_top("environment", _valid(EnvironmentName)),
        )

    for key, cell, rule, what in (
        ("target.accountId", first.account_id, AwsAccountId, "the AWS account ID (12 digits)"),
        ("target.region", first.region, AwsRegion, "the AWS Region to land in"),
    ):
        problem = rule_problem(rule, cell.value) if cell else what
        if cell and problem is None:
            draft.top[key] = Setting(cell.value)
        else:
            draft.top[key] = collect.placeholder(
                origin,
                key,
                cell.column if cell else key,
                cell.value if cell else None,
                str(problem),
                kept=collect.kept_top(key, _valid(rule)),
            )
    for key, why, check in (
        (
            "cutoverWindow.start",
            "when cutovers may start, e.g. 2027-01-09T21:00:00+01:00",
            _timestamp,
        ),
        ("cutoverWindow.end", "when cutovers must be done, with a time zone", _timestamp),
        ("slackChannel", "the wave's Slack channel ID (C...)", _valid(SlackChannelId)),
        ("approvers", "Slack user (U...) or group (S...) IDs who approve", _slack_principals),
        ("operators", "Slack user or group IDs who may roll back", _slack_principals),
    ):
        draft.top[key] = collect.placeholder(
            origin,
            key,
            key,
            None,
            why,
            kept=collect.kept_top(key, check),
            as_list=key in {"approvers", "operators"},
        )

    problems: list[RowProblem] = []
    applications: dict[str, ApplicationDraft] = {}
    seen: dict[str, dict[str, Origin]] = {"name": {}, "id": {}, "upid": {}, "host": {}}
    for row in rows:
        vm = _draft_vm(row, collect, seen, problems)
        if vm is None:
            continue
        assert row.application is not None  # group_waves refused rows without one
        app_name = slug(row.application.value)
        app = applications.get(app_name)
        if app is None:
            app_description = row.application_description or (
                row.application.value if row.application.value != app_name else None
            )
            app_description = _description(draft, row.origin, "application", app_description)
            app = applications[app_name] = ApplicationDraft(app_name, app_description)
        app.vms.append(vm)
    draft.applications = list(applications.values())
    lift_defaults(draft)
    return draft, problems


def _draft_vm(  # noqa: PLR0912, PLR0915 - one block per VM key
    row: ServerRow,
    collect: _Collector,
    seen: dict[str, dict[str, Origin]],
    problems: list[RowProblem],
) -> VmDraft | None:
    origin = row.origin
    assert row.name is not None  # group_waves refused rows without one
    as_written = row.name_is_target_vm_name and rule_problem(TargetVmName, row.name.value) is None
    name = row.name.value if as_written else target_vm_name(row.name.value)
    for kind, value, column in (
        ("name", name.lower(), row.name.column),
        ("id", row.azure_resource_id.value.lower() if row.azure_resource_id else "", "id"),
        ("upid", row.user_provided_id.value if row.user_provided_id else "", "user-provided-id"),
    ):
        if value and value in seen[kind]:
            earlier = seen[kind][value]
            problems.append(
                RowProblem(
                    origin,
                    f"{column}: {value!r} is already {earlier.unit} {earlier.number}'s: "
                    "row not imported",
                )
            )
            return None
    for kind, value in (
        ("name", name.lower()),
        ("id", row.azure_resource_id.value.lower() if row.azure_resource_id else ""),
        ("upid", row.user_provided_id.value if row.user_provided_id else ""),
    ):
        if value:
            seen[kind][value] = origin
    try:
        tags = check_tags(dict(row.tags))
    except ValueError as exc:
        problems.append(RowProblem(origin, f"{row.tags_column}: {exc}: row not imported"))
        return None

    def vm_placeholder(
        key: str,
        cell: Cell | None,
        why: str,
        check: Callable[[Any], bool],
        *,
        as_list: bool = False,
    ) -> Setting:
        return collect.placeholder(
            origin,
            key,
            cell.column if cell else key,
            cell.value if cell else None,
            why,
            vm=origin,
            kept=collect.kept_vm(name, key, check),
            as_list=as_list,
        )

    source: dict[str, Setting] = {}
    resource_id = row.azure_resource_id
    problem = (
        rule_problem(AzureVmResourceId, resource_id.value)
        if resource_id
        else "the Azure VM's resource ID (/subscriptions/.../virtualMachines/<name>)"
    )
    if resource_id and problem is None:
        source["azureResourceId"] = Setting(resource_id.value)
    else:
        source["azureResourceId"] = vm_placeholder(
            "source.azureResourceId", resource_id, str(problem), _valid(AzureVmResourceId)
        )
    for key, cell, rule in (
        ("userProvidedId", row.user_provided_id, UserProvidedId),
        ("hostname", row.hostname, Hostname),
    ):
        if cell is None:
            continue
        problem = rule_problem(rule, cell.value)
        if problem is None:
            source[key] = Setting(cell.value)
        else:
            collect.draft.warnings.append(
                Caution(origin, f"{cell.column}: {problem}: not used to find the server in MGN")
            )
    if "hostname" in source:
        host = str(source["hostname"].value).lower()
        if host in seen["host"]:
            earlier = seen["host"][host]
            collect.draft.warnings.append(
                Caution(
                    origin,
                    f"{row.hostname.column if row.hostname else 'hostname'}: {host!r} is also "
                    f"{earlier.unit} {earlier.number}'s: MGN finds a server by hostname only "
                    "when exactly one matches",
                )
            )
        seen["host"][host] = origin
    if not {"userProvidedId", "hostname"} & source.keys():
        source["sourceServerId"] = vm_placeholder(
            "source.sourceServerId",
            None,
            "how MGN finds this server: its source server ID (s-...)",
            lambda value: isinstance(value, str),
        )
    if row.disks_gib and len(row.disks_gib) <= 64 and all(1 <= s <= 65536 for s in row.disks_gib):
        source["disksGiB"] = Setting(row.disks_gib)

    settings: dict[str, Setting] = {}
    os_family = row.os_family.value.lower() if row.os_family else ""
    if os_family in {"windows", "linux"}:
        settings["osFamily"] = Setting(os_family)
    else:
        settings["osFamily"] = vm_placeholder(
            "osFamily",
            row.os_family,
            "windows or linux",
            lambda value: value in {"windows", "linux"},
        )
    if (
        row.instance_type is not None
        and rule_problem(InstanceType, row.instance_type.value) is None
    ):
        settings["instanceType"] = Setting(row.instance_type.value)
    elif row.azure_size is not None:
        kept = collect.kept_vm(name, "instanceType", _valid(InstanceType))
        settings["instanceType"] = (
            Setting(str(kept))
            if kept is not None
            else collect.placeholder(
                origin,
                "instanceType",
                row.azure_size.column,
                row.azure_size.value,
                "an Azure size is not an EC2 instance type: choose one",
                vm=origin,
            )
        )
    else:
        cell = row.instance_type
        settings["instanceType"] = vm_placeholder(
            "instanceType",
            cell,
            str(rule_problem(InstanceType, cell.value)) if cell else "an EC2 instance type",
            _valid(InstanceType),
        )
    for key, cells, required in (
        ("subnetId", row.subnet_ids, True),
        ("testSubnetId", row.test_subnet_ids, False),
    ):
        if not cells and not required:
            continue
        problem = (
            "a subnet ID (subnet-...)"
            if not cells
            else "one subnet: the manifest has one network interface"
            if len(cells) > 1
            else rule_problem(SubnetId, cells[0].value)
        )
        if problem is None:
            settings[key] = Setting(cells[0].value)
        else:
            shown = cells[0] if len(cells) == 1 else None
            cell = shown or (
                Cell(cells[0].column, ";".join(c.value for c in cells)) if cells else None
            )
            settings[key] = vm_placeholder(key, cell, problem, _valid(SubnetId))
    for key, cells, required in (
        ("securityGroupIds", row.security_group_ids, True),
        ("testSecurityGroupIds", row.test_security_group_ids, False),
    ):
        if not cells and not required:
            continue
        problems_found = [rule_problem(SecurityGroupId, cell.value) for cell in cells]
        problem = (
            "1 to 5 security group IDs (sg-...)"
            if not cells or len(cells) > 5
            else next((p for p in problems_found if p), None)
        )
        if problem is None:
            settings[key] = Setting(tuple(cell.value for cell in cells))
        else:
            joined = Cell(cells[0].column, ";".join(c.value for c in cells)) if cells else None
            settings[key] = vm_placeholder(
                key, joined, problem, _valid_list(SecurityGroupId), as_list=True
            )
    if row.iam_instance_profile is not None:
        cell = row.iam_instance_profile
        problem = rule_problem(IamInstanceProfileName, cell.value)
        settings["iamInstanceProfile"] = (
            Setting(cell.value)
            if problem is None
            else vm_placeholder("iamInstanceProfile", cell, problem, _valid(IamInstanceProfileName))
        )
    for cell in row.not_carried:
        collect.draft.warnings.append(
            Caution(
                origin,
                f"{cell.column}: {cell.value!r} is not carried: a wave manifest has no such "
                "setting",
            )
        )
    return VmDraft(origin, name, source, settings, tags)


def lift_defaults(draft: WaveDraft) -> None:
    """Move settings shared by every VM of the wave, then of an application, into defaults."""
    every_vm = [vm for app in draft.applications for vm in app.vms]
    draft.defaults = _shared(every_vm)
    draft.default_tags = _shared_tags(every_vm)
    for vm in every_vm:
        _drop(vm, draft.defaults, draft.default_tags)
    for app in draft.applications:
        if len(app.vms) < 2:
            continue
        app.defaults = _shared(app.vms)
        app.default_tags = _shared_tags(app.vms)
        for vm in app.vms:
            _drop(vm, app.defaults, app.default_tags)


def _shared(vms: Iterable[VmDraft]) -> dict[str, Setting]:
    vms = list(vms)
    shared: dict[str, Setting] = {}
    for key in LIFTABLE_SETTINGS:
        values = {vm.settings.get(key) for vm in vms}
        if len(values) == 1 and None not in values:
            shared[key] = next(iter(values))  # type: ignore[assignment]
    return shared


def _shared_tags(vms: Iterable[VmDraft]) -> dict[str, str]:
    vms = list(vms)
    if not vms:
        return {}
    common = set(vms[0].tags.items())
    for vm in vms[1:]:
        common &= set(vm.tags.items())
    return dict(sorted(common))


def _drop(vm: VmDraft, settings: Mapping[str, Setting], tags: Mapping[str, str]) -> None:
    vm.settings = {key: value for key, value in vm.settings.items() if key not in settings}
    vm.tags = {key: value for key, value in vm.tags.items() if key not in tags}


def existing_wave(document: object) -> ExistingWave | None:
    """What a person filled in an earlier import (parsed with YAML's base loader)."""
    if not isinstance(document, dict):
        return None
    top: dict[str, Any] = {}
    for key in ("environment", "slackChannel", "approvers", "operators"):
        top[key] = document.get(key)
    for outer, inner in (("target", ("accountId", "region")), ("cutoverWindow", ("start", "end"))):
        mapping = document.get(outer)
        for key in inner:
            top[f"{outer}.{key}"] = mapping.get(key) if isinstance(mapping, dict) else None
    vms: dict[str, dict[str, Any]] = {}
    wave_defaults = _mapping(document.get("defaults"))
    for app in _items(document.get("applications")):
        app_defaults = _mapping(app.get("defaults"))
        for vm in _items(app.get("vms")):
            name = vm.get("targetVmName")
            if not isinstance(name, str):
                continue
            effective = {**wave_defaults, **app_defaults, **vm}
            source = _mapping(vm.get("source"))
            for key, value in source.items():
                effective[f"source.{key}"] = value
            vms[name.lower()] = effective
    return ExistingWave(top, vms)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
