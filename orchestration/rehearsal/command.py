"""``wavepilot rehearse``: the command around ``run.rehearse`` and ``report.build_report``.

Reads the manifests (or makes a synthetic wave) and the profile, refuses bad input the way
``wavepilot validate`` does (``file:line:col``), runs the rehearsal with a progress bar, prints
the summary per wave and writes the JSON and HTML reports.

Exit status: 0 when every migration reached a final state and every final state reached its
Slack thread (the forecast may still say a wave overruns its window: that is a finding, not a
failure of the command); 1 when manifests or the profile are invalid or the run left
migrations unfinished or Slack updates lost; 2 for usage errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestration.manifests import disk
from orchestration.manifests.findings import Severity
from orchestration.rehearsal import run
from orchestration.rehearsal.profile import ProfileError, RehearsalProfile, load_profile
from orchestration.statemachine import LaunchSettings
from orchestration.terminal import terminal

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class RehearseOptions:
    paths: Sequence[str] | None  # None: a synthetic wave of ``vms`` VMs
    start: datetime
    waves: tuple[str, ...] = ()
    vms: int | None = None
    profile: Path | None = None
    report: Path | None = None
    html: Path | None = None
    launch_design: str = "per-vm"  # LaunchSettings.design: "per-vm" or "batched"


def _read_input(options: RehearseOptions, profile: RehearsalProfile) -> run.RehearsalInput | None:
    """The VMs to rehearse; None (findings printed) when the manifests have errors."""
    if options.paths is None:
        assert options.vms is not None
        return run.synthetic_input(options.vms, start=options.start, profile=profile)
    try:
        paths = disk.discover(list(options.paths))
    except disk.PathNotFoundError as exc:
        raise UsageError(f"no such file or folder: {exc}") from None
    if not paths:
        raise UsageError(f"no wave files (*.yaml, *.yml) in {' '.join(options.paths)}")
    files, unreadable = disk.read(paths)
    rehearsal, findings = run.manifest_input(files, start=options.start, waves=options.waves)
    findings = sorted([*unreadable, *findings])
    for finding in findings:
        print(finding)
    if any(f.severity is Severity.ERROR for f in findings):
        return None
    return rehearsal


def run_rehearse(options: RehearseOptions) -> int:
    from orchestration.rehearsal.html import render_html
    from orchestration.rehearsal.report import build_report
    from orchestration.rehearsal.summary import print_summary

    console = terminal()
    try:
        profile = load_profile(options.profile)
    except ProfileError as exc:
        for finding in exc.findings:
            print(finding)
        return EXIT_FAILED
    rehearsal = _read_input(options, profile)
    if rehearsal is None:
        console.print("[bold red]not rehearsed:[/] fix the manifests first")
        return EXIT_FAILED
    if not rehearsal.vms:
        raise UsageError("no VMs to rehearse")
    console.print(
        f"Rehearsing {len(rehearsal.vms):,} VM{'s' if len(rehearsal.vms) != 1 else ''} from "
        f"{rehearsal.start.isoformat(timespec='minutes')} on the simulated clock "
        "(the embedded system: Step Functions, Lambdas, MGN emulator, Slack bot)"
    )
    with Progress(
        TextColumn("[bold]migrations ended"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("simulated {task.fields[simulated]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("rehearsal", total=len(rehearsal.vms), simulated="-")

        def show(progress: run.Progress) -> None:
            elapsed = progress.simulated_now - rehearsal.start
            hours, rest = divmod(int(elapsed.total_seconds()), 3600)
            bar.update(task, completed=progress.ended, simulated=f"+{hours}h{rest // 60:02d}")

        observation = run.rehearse(
            rehearsal,
            profile,
            on_progress=show,
            launch=LaunchSettings.aws(options.launch_design),
        )
    report = build_report(observation)
    if options.report:
        options.report.parent.mkdir(parents=True, exist_ok=True)
        options.report.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    if options.html:
        options.html.parent.mkdir(parents=True, exist_ok=True)
        options.html.write_text(render_html(report), encoding="utf-8")
    print_summary(report, console, json_path=options.report, html_path=options.html)
    unfinished = [v for v in observation.vms if v.final_status not in TERMINAL_STATUSES]
    lost = [v for v in observation.vms if not v.slack_final_shown]
    if unfinished:
        console.print(f"[bold red]{len(unfinished)} migrations did not reach a final state")
    if lost:
        console.print(f"[bold red]{len(lost)} final states never reached their Slack thread")
    return EXIT_FAILED if unfinished or lost else EXIT_OK
