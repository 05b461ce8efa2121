"""``wavepilot rehearse``: the command around ``run.rehearse`` and ``report.build_report``.

Reads the manifests (or makes a synthetic wave) and the profile, refuses bad input the way
``wavepilot validate`` does (``file:line:col``), runs the rehearsal with a progress bar, prints
the summary per wave and writes the JSON and HTML reports.

Exit status: 0 when every migration reached a final state and every final state reached its
Slack thread (the forecast may still say a wave overruns its window: that is a finding, not a
failure of the command); 1 when manifests or the profile are invalid or the run left
migrations unfinished or Slack updates lost; 2 for usage errors. With ``--faults`` (a fault
campaign, docs/RELIABILITY.md) the verdict is goal R1 instead: 0 when it holds, else 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestration.manifests import disk
from orchestration.manifests.findings import Severity
from orchestration.rehearsal import run
from orchestration.rehearsal.faults import load_fault_profile
from orchestration.rehearsal.profile import ProfileError, RehearsalProfile, load_profile
from orchestration.rehearsal.reliability import ReliabilityReport, assess
from orchestration.statemachine import LaunchSettings
from orchestration.terminal import terminal

_FAULT_CAMPAIGN_DAYS = 30.0  # beyond every configured wait (a week at most) and a window
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
    faults: Path | None = None  # a fault campaign's profile (faults.py)


def _read_input(
    options: RehearseOptions, profile: RehearsalProfile, *, wants_callbacks: bool = False
) -> run.RehearsalInput | None:
    """The VMs to rehearse; None (findings printed) when the manifests have errors."""
    if options.paths is None:
        assert options.vms is not None
        return run.synthetic_input(
            options.vms, start=options.start, profile=profile, callbacks=wants_callbacks
        )
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
        faults = load_fault_profile(options.faults) if options.faults else None
    except ProfileError as exc:
        for finding in exc.findings:
            print(finding)
        return EXIT_FAILED
    rehearsal = _read_input(
        options, profile, wants_callbacks=bool(faults and faults.callback_outages.count)
    )
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
            faults=faults,
            # With faults, a migration stuck for good must not hold the run for a year.
            timeout_days=_FAULT_CAMPAIGN_DAYS if faults else run.DEFAULT_TIMEOUT_DAYS,
        )
    report = build_report(observation)
    reliability = assess(observation) if faults else None
    if options.report:
        options.report.parent.mkdir(parents=True, exist_ok=True)
        document = report.as_json()
        if reliability is not None:
            document["reliability"] = reliability.as_json()
        options.report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
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
    if reliability is not None:
        print_reliability(reliability, console)
        # Under faults, R1 is the verdict: migrations may fail (visibly), none may be lost.
        return EXIT_OK if reliability.holds else EXIT_FAILED
    return EXIT_FAILED if unfinished or lost else EXIT_OK


def print_reliability(reliability: ReliabilityReport, console: Any) -> None:
    """R1's figures, each with its first cases (the JSON report has them all)."""
    faults = ", ".join(f"{kind} {n}" for kind, n in reliability.faults_by_kind.items())
    console.print(f"[bold]Fault campaign[/]: injected {faults or 'nothing'}")
    figures = (
        ("lost", reliability.lost),
        ("launched twice", reliability.launched_twice),
        ("stuck", reliability.stuck),
        ("final state not in Slack", reliability.not_shown_in_slack),
    )
    for name, cases in figures:
        console.print(f"  {name}: {len(cases)}", markup=False)
        for case in cases[:5]:
            console.print(f"    {case.migration_id}: {case.detail}", markup=False)
    console.print(
        f"  failures visible in their thread: {reliability.failures_visible}", markup=False
    )
    console.print(
        f"  callbacks lost (logged CALLBACK_FAILED): {len(reliability.callbacks_lost)}",
        markup=False,
    )
    unexplained = reliability.unexplained_dead_letters
    console.print(
        f"  dead letters: {len(reliability.dead_letters)}, unexplained {len(unexplained)}",
        markup=False,
    )
    for letter in reliability.dead_letters[:5]:
        reason = letter.reason or "(no reason)"
        console.print(f"    {letter.queue}: {reason} [{letter.body[:80]}]", markup=False)
    verdict = "[bold green]R1 holds" if reliability.holds else "[bold red]R1 does not hold"
    console.print(verdict)
