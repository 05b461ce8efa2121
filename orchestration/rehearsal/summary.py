"""The rehearsal's summary in the terminal: one row per wave, then the run's figures.

What a team wants at the end of ``wavepilot rehearse`` before opening the page: does each
wave fit its window, what made its longest VM long, what held the VMs up most, and how far
the run is from what MGN's quotas allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from orchestration.rehearsal.report import (
    Bottleneck,
    Cause,
    RehearsalReport,
    SlackSummary,
    WaveReport,
    format_duration,
)

SHORT_CAUSES: dict[Cause, str] = {
    "quota": "MGN quotas",
    "window": "the cutover window",
    "approval": "approvals",
    "launch": "MGN launch jobs",
    "replication": "replication",
    "pipeline": "the pipeline itself",
    "slack": "Slack",
}


def summary_renderables(
    report: RehearsalReport,
    *,
    json_path: Path | str | None = None,
    html_path: Path | str | None = None,
) -> list[RenderableType]:
    """The table per wave, the run's line, and where the report was written (if it was)."""
    renderables: list[RenderableType] = [
        wave_table(report.waves),
        run_line(report),
        slack_line(report.slack),
    ]
    written = [
        f"{path} ({kind})" for kind, path in (("JSON", json_path), ("HTML", html_path)) if path
    ]
    if written:
        renderables.append(Text(f"Report written: {', '.join(written)}", style="dim"))
    return renderables


def print_summary(
    report: RehearsalReport,
    console: Console,
    *,
    json_path: Path | str | None = None,
    html_path: Path | str | None = None,
) -> None:
    for renderable in summary_renderables(report, json_path=json_path, html_path=html_path):
        console.print(renderable)


def wave_table(waves: Sequence[WaveReport]) -> Table:
    table = Table(title="Migration day, rehearsed", title_justify="left", show_lines=True)
    table.add_column("Wave", no_wrap=True)
    table.add_column("VMs", justify="right")
    table.add_column("Done by", justify="right", no_wrap=True)
    table.add_column("Window")
    table.add_column("Critical path")
    table.add_column("Held up most by")
    table.add_column("Slack")
    for wave in waves:
        table.add_row(
            wave.name,
            _vm_counts(wave),
            format_duration(wave.critical_path.ended.seconds) if wave.critical_path else "-",
            _window(wave),
            _critical_path(wave),
            _top_bottleneck(wave.bottlenecks),
            _slack_cell(wave.slack),
        )
    return table


def run_line(report: RehearsalReport) -> Text:
    floor = report.floor
    calls = report.calls
    line = Text()
    line.append(f"Makespan {report.makespan_hours:.1f} h", style="bold")
    batched, per_vm = floor.batched_seconds / 3600, floor.per_vm_seconds / 3600
    line.append(
        f" · quota floor {batched:.1f} h batched{_ratio(floor.ratio_to_batched)}"
        f", {per_vm:.1f} h one server per job{_ratio(floor.ratio_to_per_vm)}"
    )
    line.append(
        f" · per VM: {calls.aws_per_vm:.0f} AWS, {calls.mgn_per_vm:.0f} MGN, "
        f"{calls.slack_per_vm:.0f} Slack calls"
    )
    lost = len(calls.lost_slack_updates)
    line.append(f" · {lost} lost Slack update(s)", style="red" if lost else "")
    if calls.slack_rate_limited:
        line.append(f" · {calls.slack_rate_limited} Slack 429(s)")
    line.append(f" · {report.design} design, {report.wall_seconds:.0f} s real time", style="dim")
    return line


def slack_line(slack: SlackSummary) -> Text:
    """The run's Slack figures: calls per VM by method, event to Slack, approval messages."""
    line = Text("Slack", style="bold")
    by_method = ", ".join(
        f"{per_vm:.1f} {method.removeprefix('chat.')}"
        for method, per_vm in slack.calls_per_vm_by_method.items()
    )
    line.append(f" · per VM: {by_method or 'no calls'}")
    events, finals = slack.event_to_slack, slack.final_to_summary
    line.append(
        f" · event to thread root p95 {_seconds(events.p95_seconds)}, "
        f"max {_seconds(events.max_seconds)}"
    )
    line.append(
        f" · final result to wave summary p95 {_seconds(finals.p95_seconds)}, "
        f"max {_seconds(finals.max_seconds)}"
    )
    line.append(f" · {_approval_text(slack)}")
    line.append(
        f" · {slack.lost_updates} lost update(s)", style="red" if slack.lost_updates else ""
    )
    line.append(f" · {slack.approvals_expired} expired approval(s) · {slack.rate_limited} 429(s)")
    return line


def _slack_cell(slack: SlackSummary) -> Text:
    events = slack.event_to_slack
    text = Text(
        f"event p95 {_seconds(events.p95_seconds)}, max {_seconds(events.max_seconds)}\n"
        f"{_approval_text(slack)}\n{slack.calls_per_vm:.1f} calls per VM"
    )
    if slack.lost_updates:
        text.append(f"\n{slack.lost_updates} lost", style="red")
    if slack.approvals_expired:
        text.append(f"\n{slack.approvals_expired} expired")
    if slack.rate_limited:
        text.append(f"\n{slack.rate_limited} 429(s)")
    return text


def _approval_text(slack: SlackSummary) -> str:
    approvals = slack.approval_message
    if approvals.count == 0:
        return "no approval messages"
    text = (
        f"approval message p50 {_seconds(approvals.median_seconds)}, "
        f"p95 {_seconds(approvals.p95_seconds)}, max {_seconds(approvals.max_seconds)}"
    )
    if slack.approvals_not_shown:
        text += f" ({slack.approvals_not_shown} never shown)"
    return text


def _seconds(seconds: float) -> str:
    """Slack's lags are seconds to minutes: one decimal below a minute."""
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def _vm_counts(wave: WaveReport) -> Text:
    text = Text(f"{wave.outcomes.get('migrated', 0)}/{wave.vm_count} migrated")
    rolled_back = wave.outcomes.get("rolled-back", 0)
    if rolled_back:
        text.append(f"\n{rolled_back} rolled back", style="red")
    others = wave.outcomes.get("failed", 0) + wave.outcomes.get("running", 0)
    if others:
        text.append(f"\n{others} failed or running", style="red")
    return text


def _window(wave: WaveReport) -> Text:
    if wave.window is None:
        return Text("no window", style="dim")
    style = {True: "green", False: "red", None: "dim"}[wave.window.fits]
    return Text(wave.window.verdict, style=style)


def _critical_path(wave: WaveReport) -> Text:
    if wave.critical_path is None:
        return Text("-")
    path = wave.critical_path
    return Text(f"{path.target_vm_name}: ", style="bold").append(path.text, style="")


def _top_bottleneck(bottlenecks: Sequence[Bottleneck]) -> str:
    top = next((b for b in bottlenecks if b.on_path and b.vm_seconds > 0), None)
    if top is None:
        return "-"
    return f"{SHORT_CAUSES[top.cause]}: {format_duration(top.per_vm_seconds)} per VM"


def _ratio(ratio: float | None) -> str:
    return f" (x {ratio:.2f})" if ratio is not None else ""
