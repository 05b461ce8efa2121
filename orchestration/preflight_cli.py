"""``wavepilot preflight WAVE``: MGN's known footguns, checked the day before migration day.

Reads the wave's manifest (as ``wavepilot validate`` does), gathers each VM's facts in its
target account and Region (:mod:`orchestration.pipeline.preflight_facts`) and prints the
findings of :mod:`orchestration.pipeline.preflight`, as a table or JSON.

Where it reads: on AWS, with the caller's own credentials, which must be those of the wave's
target account (read-only: docs/RUNBOOK.md lists the actions); the hub's target role trusts
only the step functions. With ``--local``, through the lane roles of a running embedded
system, as the pipeline does. Exit 0: no errors (warnings allowed); 1: errors found; 2: usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from orchestration.adapters.ec2 import Ec2Adapter
from orchestration.adapters.lanes import Lane
from orchestration.adapters.mgn import MgnAdapter
from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestration.manifests import disk
from orchestration.manifests.model import EffectiveVm
from orchestration.manifests.validation import validate_files
from orchestration.operator_cli import OutputFormat, connect, operator_errors
from orchestration.pipeline.preflight import (
    LaneFacts,
    PreflightFinding,
    VmFacts,
    check_wave,
    summary,
)
from orchestration.pipeline.preflight_facts import PreflightLane, gather_lane, lane_label
from orchestration.terminal import terminal

LaneReader = Callable[[Lane], PreflightLane]


class _CallerLane:
    """A lane read with the caller's own credentials (``aws.caller_client``)."""

    def __init__(self, lane: Lane) -> None:
        from orchestration.adapters import aws

        account = aws.caller_client("sts", lane.region).get_caller_identity()["Account"]
        if account != lane.account_id:
            raise UsageError(
                f"the wave's target is account {lane.account_id} but these credentials are "
                f"account {account}'s: run with credentials of {lane.account_id} (for example "
                "AWS_PROFILE=<its profile>), or pass --local to reach a running `make demo`"
            )
        self.mgn = MgnAdapter(aws.caller_client("mgn", lane.region))
        self.ec2 = Ec2Adapter(
            aws.caller_client("ec2", lane.region), aws.caller_client("iam", lane.region)
        )


def caller_lanes(lane: Lane) -> PreflightLane:
    return _CallerLane(lane)


def role_lanes(lane: Lane) -> PreflightLane:
    from orchestration import wiring

    return wiring.lanes().clients(lane)


def wave_vms(wave: str, manifests: str, now: datetime) -> list[EffectiveVm]:
    """The wave's effective VMs from the manifests folder; a wave that is not there or does
    not validate is a usage error (``wavepilot validate`` says why)."""
    try:
        paths = disk.discover([manifests])
    except disk.PathNotFoundError as exc:
        raise UsageError(f"no such file or folder: {exc}") from None
    files, unreadable = disk.read(paths)
    result = validate_files(files, now=now)
    vms = [located.effective_vm for located in result.vms if located.effective_vm.wave == wave]
    if not vms:
        problems = [str(f) for f in [*unreadable, *result.findings] if wave in str(f.path)]
        detail = f": {problems[0]}" if problems else ""
        raise UsageError(
            f"no valid wave {wave!r} in {manifests}{detail} (run `wavepilot validate`)"
        )
    return vms


def preflight(
    vms: Sequence[EffectiveVm], lanes: LaneReader, now: datetime
) -> list[PreflightFinding]:
    """Every finding of the wave's VMs, lane by lane."""
    by_lane: dict[str, list[EffectiveVm]] = {}
    for vm in vms:
        by_lane.setdefault(lane_label(vm), []).append(vm)
    lane_facts: dict[str, LaneFacts] = {}
    vm_facts: list[VmFacts] = []
    lane_of: dict[str, str] = {}
    for label, members in sorted(by_lane.items()):
        lane = Lane(members[0].target_account_id, members[0].target_region)
        lane_facts[label], facts = gather_lane(label, lanes(lane), members)
        vm_facts.extend(facts)
        lane_of.update({vm.target_vm_name: label for vm in members})
    return check_wave(vm_facts, lane_facts, lane_of, now)


def run_preflight(
    wave: str,
    *,
    manifests: str,
    now: datetime,
    output: OutputFormat = "text",
    local: bool = False,
    lanes: LaneReader | None = None,
) -> int:
    """``wavepilot preflight``: exit 0 without errors, 1 with errors."""
    vms = wave_vms(wave, manifests, now)
    with operator_errors(local=local):
        connect(local=local)
        findings = preflight(vms, lanes or (role_lanes if local else caller_lanes), now)
    errors, warnings = summary(findings)
    if output == "json":
        document = {
            "wave": wave,
            "vms": len(vms),
            "errors": errors,
            "warnings": warnings,
            "findings": [finding.as_json() for finding in findings],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(wave, len(vms), findings)
    return EXIT_FAILED if errors else EXIT_OK


def _print(wave: str, vm_count: int, findings: Sequence[PreflightFinding]) -> None:
    console = terminal()
    errors, warnings = summary(findings)
    if findings:
        table = Table(title=f"preflight: {wave}", show_lines=False)
        for column in ("severity", "VM", "check", "what to do"):
            table.add_column(column, overflow="fold")
        for finding in findings:
            style = "red" if finding.severity == "error" else "yellow"
            table.add_row(
                Text(finding.severity, style=style), finding.vm, finding.check, finding.message
            )
        console.print(table)
    console.print(
        Text(
            f"{wave}: {vm_count} VM{'s' if vm_count != 1 else ''} checked, "
            f"{errors} error{'s' if errors != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}"
        ),
        soft_wrap=True,
    )
