"""Read an inventory file into neutral server rows, refusing what must not be read.

Pure functions: bytes in, :class:`ServerRow` records and :class:`RowProblem` messages out.
Nothing here decides what a manifest holds; :mod:`orchestration.inventory.waves` does.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

InventoryFormat = Literal["cmf", "mgn", "azure"]
FORMATS: tuple[InventoryFormat, ...] = ("cmf", "mgn", "azure")
FORMAT_NAMES: dict[InventoryFormat, str] = {
    "cmf": "Cloud Migration Factory server list",
    "mgn": "MGN import CSV",
    "azure": "az vm list --show-details JSON",
}

MAX_INVENTORY_BYTES = 20 * 1024 * 1024

# Cells a spreadsheet would run as a formula when the sheet (or a CSV exported from the
# manifests) is opened: '=' anything, or '+', '-', '@' followed by formula-like content
# (a call, a DDE pipe, a sheet reference, an operator). '-12' or '+44 20' stay values.
_FORMULA = re.compile(r"^(?:=|[+\-@].*[(|!=&^*/\"])", re.DOTALL)
_FORMULA_LEAD = ("\t", "\r")

CMF_COLUMNS = ("wave_name", "app_name", "server_name")
MGN_PREFIX = "mgn:"


class InventoryRefusedError(Exception):
    """The whole file is refused (too large, not UTF-8, not an inventory we know)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a server came from: a CSV row (its line, the header is 1) or a JSON item."""

    file: str
    number: int
    unit: Literal["row", "item"] = "row"

    def __str__(self) -> str:
        where = str(self.number) if self.unit == "row" else f"item {self.number}"
        return f"{self.file}:{where}"

    @property
    def described(self) -> str:
        return f"{self.file} {self.unit} {self.number}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One value as the inventory gives it, with the column it came from."""

    column: str
    value: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row (or the file) that cannot be imported as written: ``file:row: message``."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"


@dataclass(frozen=True)
class ServerRow:
    """One server of the inventory, in the inventory's own words (strings, not checked yet)."""

    origin: Origin
    wave: Cell | None = None
    wave_description: str | None = None
    application: Cell | None = None
    application_description: str | None = None
    account_id: Cell | None = None
    region: Cell | None = None
    environment: Cell | None = None
    name: Cell | None = None  # what targetVmName is made from
    # The name is the EC2 Name tag itself (MGN's instance Name tag): kept as written when valid.
    name_is_target_vm_name: bool = False
    azure_resource_id: Cell | None = None
    user_provided_id: Cell | None = None
    hostname: Cell | None = None
    os_family: Cell | None = None
    instance_type: Cell | None = None
    azure_size: Cell | None = None
    subnet_ids: tuple[Cell, ...] = ()
    security_group_ids: tuple[Cell, ...] = ()
    test_subnet_ids: tuple[Cell, ...] = ()
    test_security_group_ids: tuple[Cell, ...] = ()
    iam_instance_profile: Cell | None = None
    tags: tuple[tuple[str, str], ...] = ()
    tags_column: str = "tags"
    disks_gib: tuple[int, ...] = ()
    not_carried: tuple[Cell, ...] = field(default=())


@dataclass(frozen=True)
class Inventory:
    format: InventoryFormat
    rows: tuple[ServerRow, ...]
    problems: tuple[RowProblem, ...]


def decode_inventory(name: str, data: bytes) -> str:
    """The file's text: UTF-8 (a byte-order mark is dropped), at most 20 MiB."""
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryRefusedError(
            f"{name}: {len(data):,} bytes is over the {MAX_INVENTORY_BYTES // (1024 * 1024)} MiB "
            "limit for an inventory: split it into several files"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryRefusedError(
            f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8 "
            "(in Excel: 'CSV UTF-8 (Comma delimited)')"
        ) from None


def detect_format(text: str) -> InventoryFormat | None:
    """From the JSON shape or the CSV header; ``None`` when it is none of the three."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return "azure"
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)), [])
    except csv.Error:
        return None
    columns = {column.strip() for column in header}
    if any(column.startswith(MGN_PREFIX) for column in columns):
        return "mgn"
    if set(CMF_COLUMNS) <= columns:
        return "cmf"
    return None


def parse_inventory(name: str, text: str, inventory_format: InventoryFormat) -> Inventory:
    """Every row the file holds, and a problem for each row that cannot be imported."""
    try:
        return _parse_inventory(name, text, inventory_format)
    except csv.Error as exc:
        raise InventoryRefusedError(
            f"{name}: not a CSV file this command can read: {exc}"
        ) from None


def _parse_inventory(name: str, text: str, inventory_format: InventoryFormat) -> Inventory:
    if inventory_format == "azure":
        rows, problems = _parse_azure(name, text)
    else:
        parse_row = _cmf_row if inventory_format == "cmf" else _mgn_row
        rows, problems = [], []
        for origin, cells in _csv_records(name, text):
            formula = _formula_problem(origin, cells.items())
            if formula is not None:
                problems.append(formula)
                continue
            row = parse_row(origin, cells, problems)
            if row is not None:
                rows.append(row)
    return Inventory(inventory_format, tuple(rows), tuple(problems))


def looks_like_formula(value: str) -> bool:
    return value.startswith(_FORMULA_LEAD) or bool(_FORMULA.match(value))


def _formula_problem(origin: Origin, cells: Iterable[tuple[str, str]]) -> RowProblem | None:
    for column, value in cells:
        if looks_like_formula(value):
            return RowProblem(
                origin,
                f"{column}: {_shown(value)} looks like a spreadsheet formula (formula "
                "injection): row not imported; write the value itself",
            )
    return None


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _delimiter(text: str) -> str:
    """``,``, or ``;`` as some Excel locales save: told by the header (names hold neither)."""
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def _csv_records(name: str, text: str) -> Iterator[tuple[Origin, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = [column.strip() for column in next(reader, [])]
    line = reader.line_num + 1
    for record in reader:
        origin = Origin(name, line)
        line = reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        yield (
            origin,
            {column: cell.strip() for column, cell in zip(header, record, strict=False) if column},
        )


def _cell(cells: Mapping[str, str], column: str) -> Cell | None:
    value = cells.get(column, "")
    return Cell(column, value) if value else None


def _list(cells: Mapping[str, str], column: str) -> tuple[Cell, ...]:
    return tuple(
        Cell(column, item.strip()) for item in cells.get(column, "").split(";") if item.strip()
    )


def _tags(
    origin: Origin, column: str, text: str, problems: list[RowProblem]
) -> tuple[tuple[str, str], ...] | None:
    """``k=v;k=v`` (a trailing ``;`` is fine); ``None`` after reporting a malformed pair."""
    tags: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(";")):
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            problems.append(
                RowProblem(origin, f"{column}: {_shown(pair)} is not key=value: row not imported")
            )
            return None
        formula = _formula_problem(origin, [(column, key.strip()), (column, value.strip())])
        if formula is not None:
            problems.append(formula)
            return None
        tags[key.strip()] = value.strip()
    return tuple(sorted(tags.items()))


def _cmf_row(
    origin: Origin, cells: Mapping[str, str], problems: list[RowProblem]
) -> ServerRow | None:
    r_type = cells.get("r_type", "")
    if r_type and r_type.lower() != "rehost":
        problems.append(
            RowProblem(
                origin,
                f"r_type: {r_type!r}: only rehosted servers migrate with MGN: row not imported",
            )
        )
        return None
    tags = _tags(origin, "tags", cells.get("tags", ""), problems)
    if tags is None:
        return None
    tenancy = cells.get("tenancy", "")
    return ServerRow(
        origin=origin,
        wave=_cell(cells, "wave_name"),
        application=_cell(cells, "app_name"),
        account_id=_cell(cells, "aws_accountid"),
        region=_cell(cells, "aws_region"),
        environment=_cell(cells, "server_environment"),
        name=_cell(cells, "server_name"),
        hostname=_cell(cells, "server_fqdn"),
        os_family=_cell(cells, "server_os_family"),
        instance_type=_cell(cells, "instanceType"),
        subnet_ids=_list(cells, "subnet_IDs"),
        security_group_ids=_list(cells, "securitygroup_IDs"),
        test_subnet_ids=_list(cells, "subnet_IDs_test"),
        test_security_group_ids=_list(cells, "securitygroup_IDs_test"),
        tags=tags,
        not_carried=(Cell("tenancy", tenancy),)
        if tenancy and tenancy.lower() not in {"shared", "default"}
        else (),
    )


_MGN_CARRIED = {
    "mgn:account-id",
    "mgn:region",
    "mgn:wave:name",
    "mgn:wave:description",
    "mgn:app:name",
    "mgn:app:description",
    "mgn:server:user-provided-id",
    "mgn:server:platform",
    "mgn:server:fqdn-for-action-framework",
    "mgn:launch:instance-type",
    "mgn:launch:iam-instance-profile:name",
    "mgn:launch:nic:0:subnet-id",
}
_MGN_SECURITY_GROUP = re.compile(r"^mgn:launch:nic:0:security-group-id:(\d+)$")
_MGN_INSTANCE_TAG = "mgn:launch:tag:instance:"


def _mgn_row(
    origin: Origin, cells: Mapping[str, str], problems: list[RowProblem]
) -> ServerRow | None:
    del problems  # an MGN row has no cell that refuses the whole row
    groups = sorted(
        (int(match.group(1)), Cell(column, value))
        for column, value in cells.items()
        if value and (match := _MGN_SECURITY_GROUP.match(column))
    )
    tags = {
        column.removeprefix(_MGN_INSTANCE_TAG): value
        for column, value in cells.items()
        if column.startswith(_MGN_INSTANCE_TAG) and value
    }
    name_tag = tags.pop("Name", None)
    name = (
        Cell(f"{_MGN_INSTANCE_TAG}Name", name_tag)
        if name_tag
        else _cell(cells, "mgn:server:user-provided-id")
    )
    not_carried = tuple(
        Cell(column, value)
        for column, value in cells.items()
        if value
        and column.startswith("mgn:launch:")
        and column not in _MGN_CARRIED
        and not _MGN_SECURITY_GROUP.match(column)
        and not column.startswith(_MGN_INSTANCE_TAG)
        and not (column == "mgn:launch:placement:tenancy" and value.lower() == "default")
    )
    return ServerRow(
        origin=origin,
        wave=_cell(cells, "mgn:wave:name"),
        wave_description=cells.get("mgn:wave:description") or None,
        application=_cell(cells, "mgn:app:name"),
        application_description=cells.get("mgn:app:description") or None,
        account_id=_cell(cells, "mgn:account-id"),
        region=_cell(cells, "mgn:region"),
        name=name,
        name_is_target_vm_name=bool(name_tag),
        user_provided_id=_cell(cells, "mgn:server:user-provided-id"),
        hostname=_cell(cells, "mgn:server:fqdn-for-action-framework"),
        os_family=_cell(cells, "mgn:server:platform"),
        instance_type=_cell(cells, "mgn:launch:instance-type"),
        subnet_ids=_list(cells, "mgn:launch:nic:0:subnet-id"),
        security_group_ids=tuple(cell for _, cell in groups),
        iam_instance_profile=_cell(cells, "mgn:launch:iam-instance-profile:name"),
        tags=tuple(sorted(tags.items())),
        tags_column=f"{_MGN_INSTANCE_TAG}*",
        not_carried=not_carried,
    )


def _parse_azure(name: str, text: str) -> tuple[list[ServerRow], list[RowProblem]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryRefusedError(
            f"{name}:{exc.lineno}: not valid JSON ({exc.msg}): give the output of "
            "`az vm list --show-details --output json`"
        ) from None
    if not isinstance(document, list):
        raise InventoryRefusedError(
            f"{name}: expected a JSON list of VMs, as `az vm list --show-details --output json` "
            f"prints, not a JSON {type(document).__name__}"
        )
    rows: list[ServerRow] = []
    problems: list[RowProblem] = []
    for number, vm in enumerate(document, start=1):
        origin = Origin(name, number, "item")
        row = _azure_row(origin, vm, problems)
        if row is not None:
            rows.append(row)
    return rows, problems


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _azure_row(origin: Origin, vm: object, problems: list[RowProblem]) -> ServerRow | None:
    if not isinstance(vm, dict):
        problems.append(RowProblem(origin, "not a JSON object: item not imported"))
        return None
    hardware = _object(vm.get("hardwareProfile"))
    storage = _object(vm.get("storageProfile"))
    os_disk = _object(storage.get("osDisk"))
    raw_tags = _object(vm.get("tags"))
    tags = tuple(sorted((str(key), _text(value)) for key, value in raw_tags.items()))
    strings = [
        ("id", _text(vm.get("id"))),
        ("name", _text(vm.get("name"))),
        ("resourceGroup", _text(vm.get("resourceGroup"))),
        *((f"tags.{key}", value) for key, value in tags),
        *((f"tags.{key}", key) for key, _ in tags),
    ]
    formula = _formula_problem(origin, strings)
    if formula is not None:
        problems.append(formula)
        return None
    if not _text(vm.get("id")) or not _text(vm.get("name")):
        problems.append(RowProblem(origin, "id, name: missing: item not imported"))
        return None
    disks = [os_disk.get("diskSizeGb")]
    data_disks = storage.get("dataDisks")
    if isinstance(data_disks, list):
        disks += [_object(disk).get("diskSizeGb") for disk in data_disks]
    vm_name = _text(vm.get("name"))
    return ServerRow(
        origin=origin,
        application=_cell_of("resourceGroup", vm.get("resourceGroup")),
        name=Cell("name", vm_name),
        azure_resource_id=Cell("id", _text(vm.get("id"))),
        user_provided_id=Cell("name", vm_name),
        os_family=_cell_of("storageProfile.osDisk.osType", os_disk.get("osType")),
        azure_size=_cell_of("hardwareProfile.vmSize", hardware.get("vmSize")),
        tags=tags,
        disks_gib=tuple(
            size for size in disks if isinstance(size, int) and not isinstance(size, bool)
        ),
    )


def _cell_of(column: str, value: object) -> Cell | None:
    text = _text(value)
    return Cell(column, text) if text else None


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}
