"""`make bench`: one large wave rehearsed with `wavepilot rehearse` (docs/BENCHMARKS.md).

A thin caller: it runs the command itself on a synthetic wave (200 VMs by default, one lane,
the profile `benchmarks/profiles/wave-1000.yaml`) and prints the figures the scale work is
measured by, from the command's JSON report: wall time, makespan and its ratio to the quota
floors, MGN, Slack and AWS calls per VM, lost Slack updates, quota waits. These are the
per-VM design's figures: the baseline batched launches are compared against, in one run.
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

PROFILE = Path(__file__).parent / "profiles" / "wave-1000.yaml"
START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a fixed start: the same input every run


def run(vms: int, profile: Path, report: Path, html: Path | None) -> tuple[int, float]:
    argv = ["rehearse", "--vms", str(vms), "--profile", str(profile)]
    argv += ["--start", START.isoformat(), "--report", str(report)]
    argv += ["--html", str(html)] if html else []
    began = time.monotonic()
    code = wavepilot(argv)
    return code, time.monotonic() - began


def figures(data: dict[str, Any], wall: float) -> list[tuple[str, str]]:
    calls, floor = data["calls"], data["floor"]
    quota_wait = sum(vm["quotaWaitSeconds"] for vm in data["vms"]) / max(1, data["vmCount"])
    return [
        ("migrations migrated", f"{data['outcomes']['migrated']} / {data['vmCount']}"),
        ("wall time (the whole command)", f"{wall:.0f} s"),
        ("simulated makespan", f"{data['makespanHours']:.1f} h"),
        ("quota floor: batched jobs (the quotas' best)", f"{floor['batchedHours']:.1f} h"),
        ("quota floor: one server per job (today's design)", f"{floor['perVmHours']:.1f} h"),
        ("makespan / batched floor", f"{floor['ratioToBatched']:.2f}x"),
        ("MGN calls per VM", f"{calls['mgnPerVm']:.1f}"),
        ("AWS calls per VM (all services, MGN included)", f"{calls['awsPerVm']:.1f}"),
        ("Slack calls per VM", f"{calls['slackPerVm']:.1f}"),
        ("Slack 429s met", str(calls["slackRateLimited"])),
        ("Slack updates lost", str(calls["lostSlackUpdates"])),
        ("approvals expired", str(calls["approvalsExpired"])),
        ("Lambda invocations per VM", f"{calls['lambdaInvocationsPerVm']:.1f}"),
        ("state transitions per VM", f"{calls['stateTransitionsPerVm']:.1f}"),
        ("mean MGN quota wait per VM", f"{quota_wait / 60:.1f} min"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 200: the per-VM design retries MGN quota refusals, so its cost grows with the square of
    # the wave (docs/BENCHMARKS.md); 1,000 VMs is for batched launches.
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--profile", type=Path, default=PROFILE)
    parser.add_argument("--report", type=Path, help="keep the JSON report here")
    parser.add_argument("--html", type=Path, help="keep the HTML report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wavepilot-bench-") as folder:
        report = args.report or Path(folder) / "rehearsal.json"
        code, wall = run(args.vms, args.profile, report, args.html)
        data = json.loads(report.read_text())
    table = Table(title=f"wavepilot rehearse --vms {args.vms} ({data['design']} design)")
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    for label, value in figures(data, wall):
        table.add_row(label, value)
    console = Console(width=110)
    console.print(table)
    console.print(
        f"command: python -m benchmarks.rehearsal --vms {args.vms} --profile {args.profile} "
        f"(exit {code})"
    )


if __name__ == "__main__":
    main()
