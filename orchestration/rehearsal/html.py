"""The report as one self-contained HTML page: a summary per wave, then the timeline picture.

People would rather look than read: each wave gets an SVG drawn here, server-side (no
script needed to see it, nothing fetched from the network), one bar per VM grouped by
application, coloured by phase, the cutover window as a shaded band, a time axis in hours
from the rehearsal's start, a tooltip (``<title>``) on every segment. Each VM's bar is a
``<g class="vm-bar" data-migration-id="...">``. Every string from the manifests (VM, wave,
application names) passes through jinja2's autoescape. A small inline script only adds a
filter box; the page reads the same without it.

This module computes the geometry (pure, testable); ``templates/report.html.j2`` draws it.
With many VMs the bars get thinner (down to ``MIN_BAR_HEIGHT``) and the page scrolls.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

import jinja2

from orchestration.rehearsal.report import (
    PHASES,
    Phase,
    PhaseName,
    RehearsalReport,
    VmReport,
    WaveReport,
    format_duration,
)

LABEL_WIDTH = 260  # px: the VM and application names left of the bars
PLOT_WIDTH = 900  # px: the time axis (with the labels, fits a 1280 px screen)
AXIS_HEIGHT = 26
APP_ROW_HEIGHT = 16
MAX_BAR_HEIGHT = 16
MIN_BAR_HEIGHT = 4
BARS_AT_FULL_HEIGHT = 80  # up to this many VMs in the run, bars keep their full height
LABELLED_BAR_HEIGHT = 10  # thinner bars carry their name in the tooltip only
TICK_HOURS = (0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 24, 48, 96, 168)
MAX_TICKS = 16

PHASE_LABELS: dict[PhaseName, str] = {
    "setup": "setup (intake, validation, agent initiation)",
    "replication": "replication",
    "test": "test launch",
    "approval": "approval wait",
    "window-wait": "window wait",
    "cutover": "cutover",
    "finalize": "finalize",
    "rollback": "rollback",
}


@dataclass(frozen=True, slots=True)
class Segment:
    phase: str  # a PhaseName, or "quota" for the quota waits drawn over a launch
    x: float
    width: float
    title: str


@dataclass(frozen=True, slots=True)
class Bar:
    migration_id: str
    label: str
    outcome: str
    y: float
    height: float
    show_label: bool
    span_x: float  # the thin line under the segments: the VM's whole time
    span_width: float
    segments: tuple[Segment, ...]
    title: str


@dataclass(frozen=True, slots=True)
class AppHeader:
    name: str
    y: float
    vms: int


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class WaveChart:
    wave: WaveReport
    width: int
    height: float
    plot_top: float
    window_x: float | None
    window_width: float
    window_title: str
    ticks: tuple[Tick, ...]
    apps: tuple[AppHeader, ...]
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class LegendEntry:
    phase: str
    label: str


def render_html(report: RehearsalReport) -> str:
    """The page: the summary at the top, a timeline per wave below."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        charts=wave_charts(report),
        legend=legend(),
        label_width=LABEL_WIDTH,
        duration=format_duration,
    )


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("orchestration.rehearsal", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def legend() -> tuple[LegendEntry, ...]:
    return (
        *(LegendEntry(phase, PHASE_LABELS[phase]) for phase in PHASES),
        LegendEntry("quota", "quota wait (inside a launch)"),
        LegendEntry("window", "cutover window"),
    )


def bar_height(vm_count: int) -> float:
    """Full height for a small run; thinner, down to a floor, for a large one."""
    if vm_count <= BARS_AT_FULL_HEIGHT:
        return MAX_BAR_HEIGHT
    return max(MIN_BAR_HEIGHT, math.floor(MAX_BAR_HEIGHT * BARS_AT_FULL_HEIGHT / vm_count))


def time_span_seconds(report: RehearsalReport) -> float:
    """What the axis covers: the run, every VM's end and every window's end."""
    ends = [report.makespan_seconds, *(vm.ended.seconds for vm in report.vms)]
    ends += [wave.window.window_end.seconds for wave in report.waves if wave.window]
    return max([*ends, 60.0])


def ticks(span_seconds: float) -> tuple[Tick, ...]:
    hours = span_seconds / 3600
    step = next((s for s in TICK_HOURS if hours / s <= MAX_TICKS), TICK_HOURS[-1])
    count = math.floor(hours / step + 1e-9)
    return tuple(
        Tick(_x(i * step * 3600, span_seconds), f"{i * step:g}h") for i in range(count + 1)
    )


def wave_charts(report: RehearsalReport) -> tuple[WaveChart, ...]:
    span = time_span_seconds(report)
    height = bar_height(len(report.vms))
    axis = ticks(span)
    vms_by_wave: dict[str, list[VmReport]] = {}
    for vm in report.vms:
        vms_by_wave.setdefault(vm.wave, []).append(vm)
    return tuple(
        wave_chart(wave, vms_by_wave.get(wave.name, []), span, height, axis)
        for wave in report.waves
    )


def wave_chart(
    wave: WaveReport,
    vms: list[VmReport],
    span_seconds: float,
    height: float,
    axis: tuple[Tick, ...],
) -> WaveChart:
    """One wave's picture: per application a header row, then one bar per VM."""
    y = float(AXIS_HEIGHT)
    apps: list[AppHeader] = []
    bars: list[Bar] = []
    gap = max(1.0, height / 4)
    for app in sorted({vm.app_name for vm in vms}, key=natural_key):
        members = sorted(
            (vm for vm in vms if vm.app_name == app),
            key=lambda vm: (natural_key(vm.target_vm_name), vm.migration_id),
        )
        apps.append(AppHeader(app, y, len(members)))
        y += APP_ROW_HEIGHT
        for vm in members:
            bars.append(vm_bar(vm, y, height, span_seconds))
            y += height + gap
    window = wave.window
    window_x = _x(window.window_start.seconds, span_seconds) if window else None
    window_width = (
        _x(window.window_end.seconds, span_seconds) - _x(window.window_start.seconds, span_seconds)
        if window
        else 0.0
    )
    return WaveChart(
        wave=wave,
        width=LABEL_WIDTH + PLOT_WIDTH + 20,
        height=y + 4,
        plot_top=AXIS_HEIGHT,
        window_x=window_x,
        window_width=max(0.0, window_width),
        window_title=(
            f"cutover window {window.window_start.at.isoformat()} to "
            f"{window.window_end.at.isoformat()}: {window.verdict}"
            if window
            else ""
        ),
        ticks=axis,
        apps=tuple(apps),
        bars=tuple(bars),
    )


def vm_bar(vm: VmReport, y: float, height: float, span_seconds: float) -> Bar:
    segments = [_segment(vm, phase, span_seconds) for phase in vm.phases]
    segments += [
        Segment(
            "quota",
            _x(start.seconds, span_seconds),
            _width(start.seconds, end.seconds, span_seconds),
            f"{vm.target_vm_name}: quota wait {format_duration(end.seconds - start.seconds)} "
            "(MGN refused the launch: no job slot)",
        )
        for start, end in vm.quota_intervals
    ]
    return Bar(
        migration_id=vm.migration_id,
        label=vm.target_vm_name or vm.migration_id,
        outcome=vm.outcome,
        y=y,
        height=height,
        show_label=height >= LABELLED_BAR_HEIGHT,
        span_x=_x(0.0, span_seconds),
        span_width=_width(0.0, vm.ended.seconds, span_seconds),
        segments=tuple(segments),
        title=(
            f"{vm.target_vm_name} ({vm.migration_id}), {vm.app_name}: {vm.outcome}, "
            f"ended at {format_duration(vm.ended.seconds)}"
        ),
    )


def _segment(vm: VmReport, phase: Phase, span_seconds: float) -> Segment:
    title = (
        f"{vm.target_vm_name}: {PHASE_LABELS[phase.name]} {format_duration(phase.seconds)}, "
        f"{format_duration(phase.start.seconds)} to {format_duration(phase.end.seconds)} "
        f"({phase.start.at.isoformat()} to {phase.end.at.isoformat()})"
    )
    if phase.quota_wait_seconds > 0:
        title += f"; quota wait {format_duration(phase.quota_wait_seconds)}"
    if not phase.complete:
        title += "; cut short"
    return Segment(
        phase.name,
        _x(phase.start.seconds, span_seconds),
        _width(phase.start.seconds, phase.end.seconds, span_seconds),
        title,
    )


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """``app-2`` before ``app-10``: numbers inside names compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in re.split(r"(\d+)", name)
        if part
    )


def _x(seconds: float, span_seconds: float) -> float:
    return round(LABEL_WIDTH + max(0.0, seconds) / span_seconds * PLOT_WIDTH, 2)


def _width(start: float, end: float, span_seconds: float) -> float:
    """At least half a pixel: a 30 s finalize is still there to hover."""
    return max(0.5, round(_x(end, span_seconds) - _x(start, span_seconds), 2))
