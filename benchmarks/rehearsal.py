"""`make bench`: large waves rehearsed with `wavepilot rehearse`, per launch design.

The figures are recorded in docs/BENCHMARKS.md.

A thin caller: it runs the command itself on a synthetic wave (one lane, the profile
`benchmarks/profiles/wave-1000.yaml`, a fixed start) once per launch design asked for, and
prints the figures the scale work is measured by, from each run's JSON report, side by side
with the ratio per-vm / batched when both ran: wall time, makespan and its ratio to the quota
floor (P1), MGN and AWS calls per VM (P2, P6), Slack calls, lost Slack updates, quota waits.

`make bench` runs 200 VMs with both designs (the ratio, in one run), then 1,000 VMs batched
(P5: the per-VM design's quota retries grow with the square of the wave, so 1,000 VMs of it
would take hours of wall time; docs/BENCHMARKS.md has the estimate).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestration.cli import main as wavepilot
from orchestration.statemachine import LAUNCH_DESIGNS

PROFILE = Path(__file__).parent / "profiles" / "wave-1000.yaml"
START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a fixed start: the same input every run


def run(vms: int, design: str, profile: Path, report: Path, html: Path | None) -> tuple[int, float]:
    argv = ["rehearse", "--vms", str(vms), "--profile", str(profile)]
    argv += ["--start", START.isoformat(), "--launch-design", design, "--report", str(report)]
    argv += ["--html", str(html)] if html else []
    began = time.monotonic()
    code = wavepilot(argv)
    return code, time.monotonic() - began


# (label, how to read it from a report and the wall time, format, compare as a ratio)
MEASURES: list[tuple[str, Any, str, bool]] = [
    (
        "migrations migrated",
        lambda d, w: f"{d['outcomes']['migrated']} / {d['vmCount']}",
        "",
        False,
    ),
    ("wall time of the whole command (P5)", lambda d, w: w, "{:,.0f} s", True),
    ("simulated makespan", lambda d, w: d["makespanHours"], "{:.1f} h", True),
    (
        "quota floor: jobs as large as the quotas allow",
        lambda d, w: d["floor"]["batchedHours"],
        "{:.1f} h",
        False,
    ),
    ("quota floor: one server per job", lambda d, w: d["floor"]["perVmHours"], "{:.1f} h", False),
    ("makespan / batched floor (P1)", lambda d, w: d["floor"]["ratioToBatched"], "{:.2f}x", False),
    ("MGN calls per VM (P2)", lambda d, w: d["calls"]["mgnPerVm"], "{:.1f}", True),
    ("AWS calls per VM, all services (P6)", lambda d, w: d["calls"]["awsPerVm"], "{:.1f}", True),
    (
        "Lambda invocations per VM",
        lambda d, w: d["calls"]["lambdaInvocationsPerVm"],
        "{:.1f}",
        True,
    ),
    ("state transitions per VM", lambda d, w: d["calls"]["stateTransitionsPerVm"], "{:.1f}", True),
    ("Slack calls per VM", lambda d, w: d["calls"]["slackPerVm"], "{:.1f}", True),
    ("Slack 429s met", lambda d, w: d["calls"]["slackRateLimited"], "{}", False),
    ("Slack updates lost", lambda d, w: d["calls"]["lostSlackUpdates"], "{}", False),
    ("approvals expired", lambda d, w: d["calls"]["approvalsExpired"], "{}", False),
    ("mean MGN quota wait per VM", lambda d, w: _quota_wait_minutes(d), "{:.1f} min", True),
    ("StartTest + StartCutover calls (refusals included)", lambda d, w: _starts(d), "{:,}", True),
]


def _quota_wait_minutes(data: dict[str, Any]) -> float:
    waited = sum(float(vm["quotaWaitSeconds"]) for vm in data["vms"])
    return waited / max(1, int(data["vmCount"])) / 60


def _starts(data: dict[str, Any]) -> int:
    per_vm = data["calls"]["mgnPerVmByOperation"]
    starts = float(per_vm.get("StartTest", 0)) + float(per_vm.get("StartCutover", 0))
    return round(starts * int(data["vmCount"]))


def table(vms: int, results: dict[str, tuple[dict[str, Any], float]]) -> Table:
    designs = list(results)
    compared = designs == ["per-vm", "batched"]
    rendered = Table(title=f"wavepilot rehearse --vms {vms}, by launch design")
    rendered.add_column("Measure")
    for design in designs:
        rendered.add_column(design, justify="right")
    if compared:
        rendered.add_column("per-vm / batched", justify="right")
    for label, read, fmt, ratio in MEASURES:
        values = [read(*results[design]) for design in designs]
        cells = [fmt.format(v) if fmt else str(v) for v in values]
        if compared:
            cells.append(f"{values[0] / values[1]:.2f}x" if ratio and values[1] else "")
        rendered.add_row(label, *cells)
    return rendered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument(
        "--designs",
        default="per-vm,batched",
        help=f"comma-separated launch designs, of {', '.join(LAUNCH_DESIGNS)}",
    )
    parser.add_argument("--profile", type=Path, default=PROFILE)
    parser.add_argument("--keep", type=Path, help="keep each design's JSON and HTML reports here")
    args = parser.parse_args()
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = sorted(set(designs) - set(LAUNCH_DESIGNS))
    if unknown:
        parser.error(f"unknown launch design(s): {', '.join(unknown)}")
    results: dict[str, tuple[dict[str, Any], float]] = {}
    codes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="wavepilot-bench-") as folder:
        where = args.keep or Path(folder)
        where.mkdir(parents=True, exist_ok=True)
        for design in designs:
            report = where / f"rehearsal-{args.vms}-{design}.json"
            html = where / f"rehearsal-{args.vms}-{design}.html" if args.keep else None
            codes[design], wall = run(args.vms, design, args.profile, report, html)
            results[design] = (json.loads(report.read_text()), wall)
    console = Console(width=120)
    console.print(table(args.vms, results))
    for line in not_migrated(results):
        console.print(line, markup=False, highlight=False)
    console.print(
        f"command: python -m benchmarks.rehearsal --vms {args.vms} --designs {','.join(designs)}"
        f" --profile {args.profile} (exit {', '.join(f'{d} {c}' for d, c in codes.items())})"
    )


def not_migrated(results: dict[str, tuple[dict[str, Any], float]]) -> list[str]:
    """A line for each VM that did not migrate, with its first failed step: the JSON reports
    live in a temporary folder (without --keep), and an unexpected rollback in a profile
    without failures must be explained from the run that met it."""
    lines = []
    for design, (report, _) in results.items():
        for vm in report.get("vms", []):
            if vm.get("outcome") == "migrated":
                continue
            failure = vm.get("failure") or {}
            lines.append(
                f"{design}: {vm.get('migrationId')} {vm.get('outcome')} "
                f"(record {vm.get('recordStatus')}): "
                + (
                    f"{failure.get('step')} failed: {failure.get('message')}"
                    if failure
                    else "no failed step in its history"
                )
            )
    return lines


if __name__ == "__main__":
    main()
