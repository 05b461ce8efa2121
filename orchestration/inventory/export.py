"""``wavepilot export --format mgn-csv``: the manifests' VMs as MGN's import CSV.

One row per VM, from its effective settings (defaults applied). What MGN's import file has
no column for (the Azure resource ID, test network, boot mode, BYOL, health checks,
callbacks) is left out and said; ``wavepilot import`` of the file, next to the same
manifests, gives back the same effective VMs for what it carries.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestration.clock import SYSTEM_CLOCK
from orchestration.inventory.sources import looks_like_formula
from orchestration.manifests import disk
from orchestration.manifests.validation import LocatedVm, ManifestSet, validate_files

_INSTANCE_TAG = "mgn:launch:tag:instance:"
_BASE_COLUMNS = (
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
)


@dataclass(frozen=True)
class MgnExport:
    text: str
    rows: int
    notes: tuple[str, ...]  # "path:line: targetVmName: ..." for what is left out or refused
    refused: int


def mgn_import_csv(manifests: ManifestSet) -> MgnExport:
    """The CSV text of every valid VM; VMs MGN's import cannot take are refused with a note."""
    notes: list[str] = []
    rows: list[dict[str, str]] = []
    refused = 0
    for vm in manifests.vms:
        row = _row(manifests, vm)
        where = f"{vm.path}:{vm.line}: {vm.effective_vm.target_vm_name}"
        if vm.effective_vm.source.user_provided_id is None:
            notes.append(
                f"{where}: no source.userProvidedId: MGN's import identifies servers by it: "
                "not exported"
            )
            refused += 1
            continue
        formula = next((k for k, v in row.items() if looks_like_formula(v)), None)
        if formula is not None:
            notes.append(
                f"{where}: {formula}: {row[formula]!r} would run as a spreadsheet formula: "
                "not exported"
            )
            refused += 1
            continue
        left_out = _left_out(vm)
        if left_out:
            notes.append(f"{where}: not in MGN's import file: {', '.join(left_out)}")
        rows.append(row)
    groups = max((len(vm.effective_vm.security_group_ids) for vm in manifests.vms), default=0)
    tags = sorted({key for row in rows for key in row if key.startswith(_INSTANCE_TAG)})
    columns = [
        *_BASE_COLUMNS,
        *(f"mgn:launch:nic:0:security-group-id:{n}" for n in range(groups)),
        f"{_INSTANCE_TAG}Name",
        *(tag for tag in tags if tag != f"{_INSTANCE_TAG}Name"),
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return MgnExport(out.getvalue(), len(rows), tuple(notes), refused)


def _row(manifests: ManifestSet, vm: LocatedVm) -> dict[str, str]:
    effective = vm.effective_vm
    wave = manifests.waves[effective.wave]
    application = next(app for app in wave.applications if app.name == effective.app_name)
    row = {
        "mgn:account-id": effective.target_account_id,
        "mgn:region": effective.target_region,
        "mgn:wave:name": effective.wave,
        "mgn:wave:description": wave.description or "",
        "mgn:app:name": effective.app_name,
        "mgn:app:description": application.description or "",
        "mgn:server:user-provided-id": effective.source.user_provided_id or "",
        "mgn:server:platform": effective.os_family.upper(),
        "mgn:server:fqdn-for-action-framework": effective.source.hostname or "",
        "mgn:launch:instance-type": effective.instance_type,
        "mgn:launch:iam-instance-profile:name": effective.iam_instance_profile or "",
        "mgn:launch:nic:0:subnet-id": effective.subnet_id,
        f"{_INSTANCE_TAG}Name": effective.target_vm_name,
    }
    for index, group in enumerate(effective.security_group_ids):
        row[f"mgn:launch:nic:0:security-group-id:{index}"] = group
    for key, value in effective.tags.items():
        if key != "Name":
            row[f"{_INSTANCE_TAG}{key}"] = value
    return row


def _left_out(vm: LocatedVm) -> list[str]:
    effective = vm.effective_vm
    left_out = []
    if effective.test_subnet_id != effective.subnet_id:
        left_out.append("testSubnetId")
    if effective.test_security_group_ids != effective.security_group_ids:
        left_out.append("testSecurityGroupIds")
    if effective.boot_mode != "USE_SOURCE":
        left_out.append("bootMode")
    if effective.os_byol:
        left_out.append("osByol")
    if effective.health_checks:
        left_out.append("healthChecks")
    if effective.callback_urls:
        left_out.append("callbackUrls")
    if effective.post_launch_actions:
        left_out.append("postLaunchActions")
    if effective.source.source_server_id:
        left_out.append("source.sourceServerId")
    return left_out


def run_export(targets: list[str], output: Path | None) -> int:
    """Validate the wave files, then write their VMs as MGN's import CSV (stdout by default).

    Exit 0 every VM exported; 1 the manifests do not validate (nothing written) or some VMs
    could not be exported; 2 a path that does not exist or holds no wave files.
    """
    try:
        paths = disk.discover(targets)
    except disk.PathNotFoundError as exc:
        raise UsageError(f"no such file or folder: {exc}") from None
    if not paths:
        raise UsageError(f"no wave files (*.yaml, *.yml) in {' '.join(targets)}")
    files, unreadable = disk.read(paths)
    manifests = validate_files(files, now=SYSTEM_CLOCK.now())
    errors = sorted([*unreadable, *manifests.errors])
    if errors:
        for finding in errors:
            print(finding, file=sys.stderr)
        print(
            f"{len(errors)} errors: the manifests must validate before they are exported",
            file=sys.stderr,
        )
        return EXIT_FAILED
    export = mgn_import_csv(manifests)
    if output is None:
        sys.stdout.write(export.text)
    else:
        output.write_text(export.text, encoding="utf-8", newline="")
    for note in export.notes:
        print(note, file=sys.stderr)
    print(
        f"{export.rows} VMs exported{f' to {output}' if output else ''}; MGN's import file has "
        "no Azure resource ID, cutover window, Slack or environment: they stay in the manifests",
        file=sys.stderr,
    )
    return EXIT_FAILED if export.refused else EXIT_OK
