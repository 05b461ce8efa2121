"""The prediction: what a rehearsal's observation says about migration day. Pure computation.

``build_report(observation)`` reads the step history, the MGN jobs and quota rejections, the
Slack and call counters of one rehearsal, and computes per VM its timeline, per wave its
window fit, critical path and bottlenecks, the calls per VM, and the quota floor
(``floor.py``). ``RehearsalReport.as_json()`` is the ``--report`` file and what ``make bench``
and the HTML page read: camelCase keys, instants as ``{"at": ISO 8601, "seconds": from the
rehearsal start}``, durations in simulated seconds (rounded to milliseconds).

How the step history reads (``orchestration/pipeline/steps.py`` and the ASL). The pipeline
reports few events, and not one per state; each phase is bounded by the events that exist:

- ``Intake`` SUCCEEDED: the execution started. ``ValidateInput`` STARTED/SUCCEEDED.
  ``PrepareSource`` SUCCEEDED only (test launch settings applied).
- ``WaitForReplication`` (reported by the ``CheckReplication`` task): IN_PROGRESS at each
  replication state change or 25 % step, SUCCEEDED once the server is CONTINUOUS and
  launchable. The state machine goes straight on to ``StartTestLaunch``.
- ``StartTestLaunch``: SUCCEEDED only, when MGN created the job. When MGN answers
  ServiceQuotaExceededException the Lambda raises ``MgnQuotaExceededError`` and the state
  machine's Retry waits and calls again: *no event*. Those waits are visible only in the
  emulator's ``quota_rejections``, so the test phase starts at ``WaitForReplication``
  SUCCEEDED, not at ``StartTestLaunch``'s first event (which is the job's creation).
- ``VerifyTestLaunch``: SUCCEEDED only (job launched, instance running, health checks ok);
  its polls report nothing.
- ``AwaitApproval``: WAITING when the approval is requested; a decision reports no step
  event (``ApprovalDecided`` is another event type), so the wait ends at the next step's
  first event (``PrepareCutover`` SUCCEEDED on approval; ``Rollback`` on a rejection or
  expiry, where the rollback's start is the better end).
- ``StartCutover``: WAITING once ("the cutover waits for the window") while the window has not
  opened, then its Wait state sleeps until it opens; SUCCEEDED when MGN created the cutover
  job; quota rejections are silent as for the test launch. A window already closed raises
  ``CutoverWindowClosedError``: the migration rolls back without a cutover job.
- ``VerifyCutover``, ``FinalizeCutover``, ``Rollback``: SUCCEEDED only. The rollback's start
  (the ``RollbackStarted`` event) is not in the history: the runner may record it
  (``VmObservation.rollback_started_at``); otherwise it is the first terminate job created
  after the last event before the rollback, else the rollback's own SUCCEEDED.

The phases of a VM (each from/to an instant; a phase still open when the VM rolled back
ends at the rollback's start, one still open at the end of the rehearsal at its end):

- ``setup``: the rehearsal's start (publish) to replication's start (intake, validation,
  the agent's initiation, any staging wait);
- ``replication``: ``replication_started_at`` (first byte; else ``PrepareSource`` SUCCEEDED)
  to ``replication_ready_at`` (first CONTINUOUS; else ``WaitForReplication`` SUCCEEDED);
- ``test``: ``WaitForReplication`` SUCCEEDED (else the first of ``StartTestLaunch``'s first
  event, the first quota rejection, the test job's creation) to ``VerifyTestLaunch``
  SUCCEEDED; its quota waits are inside it (``quotaWaitSeconds``);
- ``approval``: ``AwaitApproval``'s first event to its end, else the next step's first event;
- ``window-wait``: ``StartCutover`` WAITING to the window's start (or to the cutover's first
  attempt, if earlier);
- ``cutover``: the window wait's end (else the first of ``StartCutover``'s first event, the
  first quota rejection after approval, the cutover job's creation) to ``VerifyCutover``
  SUCCEEDED; quota waits inside;
- ``finalize``: ``VerifyCutover`` SUCCEEDED to ``FinalizeCutover`` SUCCEEDED;
- ``rollback``: the rollback's start to ``Rollback`` SUCCEEDED.

Gaps between phases (e.g. replication ready -> the next poll noticing it; PrepareCutover's
terminate job) are the pipeline's own time.

Where each VM's time went (``waits``), every second from the rehearsal's start to the VM's
end counted once, in this priority: ``quota`` (first rejection of a launch to its job's
creation), ``window`` (window wait), ``approval`` (approval phase), ``launch`` (MGN test and
cutover jobs, creation to end: conversion and boot), ``replication`` (start to replication
ready: setup included, the pipeline waits on it), ``pipeline`` (the rest: polls, Lambdas,
verification, finalize, rollback). ``slack`` (each event -> the thread's root edit showing
it, summed) runs beside the migration and holds nothing up: it is reported, not subtracted.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from orchestration.events import Step
from orchestration.rehearsal.floor import (
    FloorServer,
    FloorTimings,
    FloorWave,
    LaneFloor,
    lane_floor,
)
from orchestration.rehearsal.observation import (
    JobRecord,
    LaneQuotas,
    RehearsalObservation,
    StepRecord,
    VmObservation,
    WaveObservation,
)

REPORT_VERSION = 1

PhaseName = Literal[
    "setup", "replication", "test", "approval", "window-wait", "cutover", "finalize", "rollback"
]
PHASES: tuple[PhaseName, ...] = (
    "setup",
    "replication",
    "test",
    "approval",
    "window-wait",
    "cutover",
    "finalize",
    "rollback",
)
Cause = Literal["quota", "window", "approval", "launch", "replication", "pipeline", "slack"]
CAUSES: tuple[Cause, ...] = (
    "quota",
    "window",
    "approval",
    "launch",
    "replication",
    "pipeline",
    "slack",
)
CAUSE_LABELS: dict[Cause, str] = {
    "quota": "MGN quotas (waiting for a job slot)",
    "window": "the cutover window (waiting for it to open)",
    "approval": "approvals (people)",
    "launch": "MGN launch jobs (conversion and boot)",
    "replication": "replication (initiation and initial sync)",
    "pipeline": "the pipeline itself (polls, Lambdas, verification)",
    "slack": "Slack (event to the thread's update; beside the migration)",
}
Outcome = Literal["migrated", "rolled-back", "failed", "running"]

_ENDS = frozenset({"SUCCEEDED", "FAILED", "SKIPPED"})
_LAUNCH_KINDS = frozenset({"test", "cutover"})
Interval = tuple[datetime, datetime]


# --- the report's types --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instant:
    """A simulated instant, and its distance from the rehearsal's start."""

    at: datetime
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "seconds": _r(self.seconds)}


@dataclass(frozen=True, slots=True)
class Phase:
    name: PhaseName
    start: Instant
    end: Instant
    complete: bool  # False: the phase was cut short (rollback) or still running at the end
    quota_wait_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end.seconds - self.start.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": self.start.as_json(),
            "end": self.end.as_json(),
            "seconds": _r(self.seconds),
            "complete": self.complete,
            "quotaWaitSeconds": _r(self.quota_wait_seconds),
        }


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    kind: str
    created: Instant
    ended: Instant | None
    servers_in_job: int
    launch_status: str

    def as_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "kind": self.kind,
            "created": self.created.as_json(),
            "ended": self.ended.as_json() if self.ended else None,
            "serversInJob": self.servers_in_job,
            "launchStatus": self.launch_status,
        }


@dataclass(frozen=True, slots=True)
class Distribution:
    """Median (the middle, or the mean of the two middles), p95 (nearest rank), max."""

    count: int
    median_seconds: float
    p95_seconds: float
    max_seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "medianSeconds": _r(self.median_seconds),
            "p95Seconds": _r(self.p95_seconds),
            "maxSeconds": _r(self.max_seconds),
        }


@dataclass(frozen=True, slots=True)
class SlackFigures:
    """One migration's thread: its calls, each event's wait for the root to show it (Slack's
    clock), and its approval message's wait from the pipeline's request (None: no approval
    was requested, or its message never appeared)."""

    calls: int
    delays: Distribution
    total_delay_seconds: float
    final_shown: bool
    calls_by_method: Mapping[str, int] = field(default_factory=dict)
    delay_values: tuple[float, ...] = ()  # each event's, for a wave's distribution
    approval_status: str = ""  # "": no approval requested
    approval_message_seconds: float | None = None
    # From the final result's event to the wave summary counting it (None: not counted).
    final_to_summary_seconds: float | None = None

    @property
    def approval_requested(self) -> bool:
        return bool(self.approval_status)

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "callsByMethod": dict(sorted(self.calls_by_method.items())),
            "delays": self.delays.as_json(),
            "totalDelaySeconds": _r(self.total_delay_seconds),
            "finalShown": self.final_shown,
            "approvalStatus": self.approval_status or None,
            "approvalMessageSeconds": _r(self.approval_message_seconds),
        }


@dataclass(frozen=True, slots=True)
class SlackSummary:
    """What Slack showed of a wave (or the run), and what it cost.

    ``eventToSlack`` pools every event's wait for its thread's root to show it, ``approvalMessage``
    every approval's wait from the pipeline's request to its message with the Approve button,
    ``finalToSummary`` every final result's wait for the wave's summary message to count it
    (Slack's clock, which the simulated clock shares). A wave's calls are those on its
    migrations' threads; the run's are every call the bot made (directory lookups included).
    """

    vms: int
    calls_per_vm: float
    calls_per_vm_by_method: Mapping[str, float]
    event_to_slack: Distribution
    approval_message: Distribution
    final_to_summary: Distribution
    approvals_requested: int
    approvals_not_shown: int  # requested, but no message with the Approve button appeared
    approvals_expired: int
    lost_updates: int  # final states the thread's root never showed
    rate_limited: int  # 429s

    def as_json(self) -> dict[str, Any]:
        return {
            "vms": self.vms,
            "callsPerVm": _r(self.calls_per_vm),
            "callsPerVmByMethod": _rounded(self.calls_per_vm_by_method),
            "eventToSlack": self.event_to_slack.as_json(),
            "approvalMessage": self.approval_message.as_json(),
            "finalToSummary": self.final_to_summary.as_json(),
            "approvalsRequested": self.approvals_requested,
            "approvalsNotShown": self.approvals_not_shown,
            "approvalsExpired": self.approvals_expired,
            "lostUpdates": self.lost_updates,
            "rateLimited": self.rate_limited,
        }


@dataclass(frozen=True, slots=True)
class VmReport:
    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str
    lane: str
    os_family: str
    final_status: str
    record_status: str
    outcome: Outcome
    ended: Instant
    phases: tuple[Phase, ...]
    jobs: tuple[Job, ...]
    quota_rejections: int
    quota_wait_seconds: float
    quota_intervals: tuple[tuple[Instant, Instant], ...]  # first rejection -> job created
    waits: Mapping[Cause, float]
    slack: SlackFigures
    missed_window: bool  # approved or tested, but no cutover job before the window closed
    # The first step that failed (a VM rolled back or failed): what a person would read first.
    failure: StepFailure | None = None

    def phase(self, name: PhaseName) -> Phase | None:
        return next((phase for phase in self.phases if phase.name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "migrationId": self.migration_id,
            "wave": self.wave,
            "appName": self.app_name,
            "targetVmName": self.target_vm_name,
            "lane": self.lane,
            "osFamily": self.os_family,
            "finalStatus": self.final_status,
            "recordStatus": self.record_status,
            "outcome": self.outcome,
            "ended": self.ended.as_json(),
            "phases": [phase.as_json() for phase in self.phases],
            "jobs": [job.as_json() for job in self.jobs],
            "quotaRejections": self.quota_rejections,
            "quotaWaitSeconds": _r(self.quota_wait_seconds),
            "quotaWaits": [
                {"start": start.as_json(), "end": end.as_json()}
                for start, end in self.quota_intervals
            ],
            "waits": {cause: _r(self.waits.get(cause, 0.0)) for cause in CAUSES},
            "slack": self.slack.as_json(),
            "missedWindow": self.missed_window,
            "failure": self.failure.as_json() if self.failure is not None else None,
        }


@dataclass(frozen=True, slots=True)
class StepFailure:
    """A migration's first FAILED step, as its history says it (the rollback's cause)."""

    step: str
    at: Instant
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "at": self.at.as_json(), "message": self.message}


def first_failure(vm: VmObservation, origin: datetime) -> StepFailure | None:
    """The VM's first FAILED step, if it did not migrate (None for a VM that did)."""
    if outcome_of(vm) == "migrated":
        return None
    failed = next((s for s in vm.steps if s.status == "FAILED"), None)
    if failed is None:
        return None
    return StepFailure(failed.step, _instant(failed.at, origin), failed.message)


@dataclass(frozen=True, slots=True)
class WindowFit:
    """The wave's cutovers against its window.

    ``fits``: every cutover ended by the window's end and none was shut out (None: no VM
    reached the cutover). An overrun is the latest of (last cutover end, the instant a VM
    shut out by the closed window gave up) past the window's end, rounded up to the minute
    in ``verdict``; the spare time is rounded down.
    """

    window_start: Instant
    window_end: Instant
    cutover_start: Instant | None
    cutover_end: Instant | None
    fits: bool | None
    spare_seconds: float
    overrun_seconds: float
    missed: int  # VMs that could not start their cutover before the window closed
    verdict: str

    def as_json(self) -> dict[str, Any]:
        return {
            "windowStart": self.window_start.as_json(),
            "windowEnd": self.window_end.as_json(),
            "cutoverStart": self.cutover_start.as_json() if self.cutover_start else None,
            "cutoverEnd": self.cutover_end.as_json() if self.cutover_end else None,
            "fits": self.fits,
            "spareSeconds": _r(self.spare_seconds),
            "overrunSeconds": _r(self.overrun_seconds),
            "missed": self.missed,
            "verdict": self.verdict,
        }


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The wave's VM that finished last, and the phases its time was made of."""

    migration_id: str
    target_vm_name: str
    ended: Instant
    phases: tuple[Phase, ...]
    text: str

    def as_json(self) -> dict[str, Any]:
        return {
            "migrationId": self.migration_id,
            "targetVmName": self.target_vm_name,
            "ended": self.ended.as_json(),
            "phases": [
                {
                    "name": phase.name,
                    "seconds": _r(phase.seconds),
                    "quotaWaitSeconds": _r(phase.quota_wait_seconds),
                }
                for phase in self.phases
            ],
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """One cause of waiting, summed over VMs (VM-seconds), ranked by it."""

    cause: Cause
    vm_seconds: float
    per_vm_seconds: float
    on_path: bool  # False for Slack: it runs beside the migration

    @property
    def label(self) -> str:
        return CAUSE_LABELS[self.cause]

    def as_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "label": self.label,
            "vmSeconds": _r(self.vm_seconds),
            "vmHours": _r(self.vm_seconds / 3600),
            "perVmSeconds": _r(self.per_vm_seconds),
            "onPath": self.on_path,
        }


@dataclass(frozen=True, slots=True)
class WaveReport:
    name: str
    lane: str
    vm_count: int
    outcomes: Mapping[Outcome, int]
    applications: tuple[str, ...]
    replication_done_by: Instant | None
    test_first_start: Instant | None
    test_last_end: Instant | None
    approval_waits: Distribution
    window: WindowFit | None  # None: the wave is not in the observation's waves
    critical_path: CriticalPath | None
    bottlenecks: tuple[Bottleneck, ...]
    slack: SlackSummary

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lane": self.lane,
            "vmCount": self.vm_count,
            "outcomes": {outcome: self.outcomes.get(outcome, 0) for outcome in _OUTCOMES},
            "applications": list(self.applications),
            "replicationDoneBy": _instant_json(self.replication_done_by),
            "testLaunches": {
                "firstStart": _instant_json(self.test_first_start),
                "lastEnd": _instant_json(self.test_last_end),
            },
            "approvalWaits": self.approval_waits.as_json(),
            "window": self.window.as_json() if self.window else None,
            "criticalPath": self.critical_path.as_json() if self.critical_path else None,
            "bottlenecks": [bottleneck.as_json() for bottleneck in self.bottlenecks],
            "slack": self.slack.as_json(),
        }


@dataclass(frozen=True, slots=True)
class CallFigures:
    """The run's counters, divided by its VM count (0 VMs: 0)."""

    vms: int
    aws_per_vm: float
    aws_per_vm_by_service: Mapping[str, float]
    mgn_per_vm: float
    mgn_per_vm_by_operation: Mapping[str, float]
    slack_per_vm: float
    slack_per_vm_by_method: Mapping[str, float]
    slack_rate_limited: int
    lost_slack_updates: tuple[str, ...]  # migration ids whose thread does not show the end
    lambda_invocations_per_vm: float
    state_transitions_per_vm: float
    approvals_expired: int

    def as_json(self) -> dict[str, Any]:
        return {
            "vms": self.vms,
            "awsPerVm": _r(self.aws_per_vm),
            "awsPerVmByService": _rounded(self.aws_per_vm_by_service),
            "mgnPerVm": _r(self.mgn_per_vm),
            "mgnPerVmByOperation": _rounded(self.mgn_per_vm_by_operation),
            "slackPerVm": _r(self.slack_per_vm),
            "slackPerVmByMethod": _rounded(self.slack_per_vm_by_method),
            "slackRateLimited": self.slack_rate_limited,
            "lostSlackUpdates": len(self.lost_slack_updates),
            "lostSlackUpdateMigrationIds": list(self.lost_slack_updates),
            "lambdaInvocationsPerVm": _r(self.lambda_invocations_per_vm),
            "stateTransitionsPerVm": _r(self.state_transitions_per_vm),
            "approvalsExpired": self.approvals_expired,
        }


@dataclass(frozen=True, slots=True)
class LaneFloorReport:
    lane: str
    quotas: LaneQuotas
    batched: LaneFloor
    per_vm: LaneFloor

    def as_json(self) -> dict[str, Any]:
        return {
            "lane": self.lane,
            "servers": self.batched.servers,
            "quotas": {
                "concurrentJobs": self.quotas.concurrent_jobs,
                "serversPerJob": self.quotas.servers_per_job,
                "serversInActiveJobs": self.quotas.servers_in_active_jobs,
                "replicatingServers": self.quotas.replicating_servers,
            },
            "batched": _lane_floor_json(self.batched),
            "perVm": _lane_floor_json(self.per_vm),
        }


@dataclass(frozen=True, slots=True)
class FloorReport:
    """The makespan MGN's quotas allow (``floor.py``): batched (the quotas' best) and one
    server per job (today's design), and the observed makespan's ratio to each."""

    batched_seconds: float
    per_vm_seconds: float
    ratio_to_batched: float | None
    ratio_to_per_vm: float | None
    lanes: tuple[LaneFloorReport, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "batchedSeconds": _r(self.batched_seconds),
            "batchedHours": _r(self.batched_seconds / 3600),
            "perVmSeconds": _r(self.per_vm_seconds),
            "perVmHours": _r(self.per_vm_seconds / 3600),
            "ratioToBatched": _r(self.ratio_to_batched),
            "ratioToPerVm": _r(self.ratio_to_per_vm),
            "includes": "replication (initiation, initial sync over each wave's link, staging "
            "slots), test and cutover jobs under the lane's job quotas, the window's opening",
            "excludes": "approvals, verification, finalize, polls and Lambdas, the window's "
            "end, failures",
            "lanes": [lane.as_json() for lane in self.lanes],
        }


@dataclass(frozen=True, slots=True)
class RehearsalReport:
    design: str
    started_at: datetime
    ended_at: datetime
    wall_seconds: float
    waves: tuple[WaveReport, ...]
    vms: tuple[VmReport, ...]
    bottlenecks: tuple[Bottleneck, ...]
    calls: CallFigures
    floor: FloorReport
    slack: SlackSummary

    @property
    def makespan_seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def makespan_hours(self) -> float:
        return self.makespan_seconds / 3600

    def as_json(self) -> dict[str, Any]:
        """The ``--report`` file: camelCase keys, stable order (docs/REHEARSAL.md)."""
        return {
            "reportVersion": REPORT_VERSION,
            "design": self.design,
            "startedAt": self.started_at.isoformat(),
            "endedAt": self.ended_at.isoformat(),
            "wallSeconds": _r(self.wall_seconds),
            "makespanSeconds": _r(self.makespan_seconds),
            "makespanHours": _r(self.makespan_hours),
            "vmCount": len(self.vms),
            "outcomes": {outcome: _count(self.vms, outcome) for outcome in _OUTCOMES},
            "floor": self.floor.as_json(),
            "bottlenecks": [bottleneck.as_json() for bottleneck in self.bottlenecks],
            "calls": self.calls.as_json(),
            "slack": self.slack.as_json(),
            "waves": [wave.as_json() for wave in self.waves],
            "vms": [vm.as_json() for vm in self.vms],
        }


_OUTCOMES: tuple[Outcome, ...] = ("migrated", "rolled-back", "failed", "running")


# --- building it ---------------------------------------------------------------------------


def build_report(observation: RehearsalObservation) -> RehearsalReport:
    """The prediction from one rehearsal's observation."""
    waves_by_name = {wave.name: wave for wave in observation.waves}
    vms = tuple(vm_report(vm, waves_by_name.get(vm.wave), observation) for vm in observation.vms)
    wave_names = [wave.name for wave in observation.waves]
    wave_names += sorted({vm.wave for vm in vms} - set(wave_names))
    waves = tuple(
        wave_report(
            name,
            waves_by_name.get(name),
            [vm for vm in vms if vm.wave == name],
            observation.started_at,
            rate_limited=_wave_rate_limited(waves_by_name.get(name), observation),
        )
        for name in wave_names
    )
    return RehearsalReport(
        design=observation.design,
        started_at=observation.started_at,
        ended_at=observation.ended_at,
        wall_seconds=observation.wall_seconds,
        waves=waves,
        vms=vms,
        bottlenecks=rank_bottlenecks(vms),
        calls=call_figures(observation),
        floor=floor_report(observation),
        slack=slack_summary(
            vms,
            rate_limited=observation.slack_rate_limited,
            calls_by_method=observation.slack_calls_by_method,
        ),
    )


def _wave_rate_limited(wave: WaveObservation | None, observation: RehearsalObservation) -> int:
    """The 429s of calls naming the wave's channel (0 for a wave with none)."""
    if wave is None or not wave.slack_channel:
        return 0
    return observation.slack_rate_limited_by_channel.get(wave.slack_channel, 0)


# --- one VM --------------------------------------------------------------------------------


def vm_report(
    vm: VmObservation, wave: WaveObservation | None, observation: RehearsalObservation
) -> VmReport:
    origin = observation.started_at
    running = vm.final_status == "RUNNING"
    cut = rollback_start(vm)
    last = vm.steps[-1].at if vm.steps else origin
    vm_end = max(observation.ended_at if running else last, origin)
    quota_intervals = quota_waits(vm, cut or vm_end)
    phases = vm_phases(vm, wave, origin, cut=cut, vm_end=vm_end, quota_intervals=quota_intervals)
    vm_end = max([vm_end, *(phase.end.at for phase in phases)])
    waits = attribute_waits(vm, phases, quota_intervals, origin, vm_end)
    delays = vm.slack_delays_seconds
    return VmReport(
        migration_id=vm.migration_id,
        wave=vm.wave,
        app_name=vm.app_name,
        target_vm_name=vm.target_vm_name,
        lane=lane_of(vm.account_id, vm.region),
        os_family=vm.os_family,
        final_status=vm.final_status,
        record_status=vm.record_status,
        outcome=outcome_of(vm),
        ended=_instant(vm_end, origin),
        phases=phases,
        jobs=tuple(_job(job, origin) for job in vm.jobs),
        quota_rejections=len(vm.quota_rejections),
        quota_wait_seconds=waits["quota"],
        quota_intervals=tuple(
            (_instant(start, origin), _instant(end, origin)) for start, end in quota_intervals
        ),
        waits=waits,
        slack=SlackFigures(
            calls=vm.slack_calls,
            delays=distribution(delays),
            total_delay_seconds=sum(delays),
            final_shown=vm.slack_final_shown,
            calls_by_method=vm.slack_calls_by_method,
            delay_values=tuple(delays),
            approval_status=vm.approval_status,
            approval_message_seconds=approval_message_seconds(vm),
            final_to_summary_seconds=final_to_summary_seconds(vm),
        ),
        missed_window=missed_window(vm, phases, wave, cut or vm_end),
        failure=first_failure(vm, origin),
    )


def approval_message_seconds(vm: VmObservation) -> float | None:
    """From the pipeline's approval request to its message in Slack (None: not both)."""
    if vm.approval_requested_at is None or vm.approval_shown_at is None:
        return None
    return (vm.approval_shown_at - vm.approval_requested_at).total_seconds()


def final_to_summary_seconds(vm: VmObservation) -> float | None:
    """From the final result's event to the wave summary counting it (None: not both)."""
    if vm.final_event_at is None or vm.final_in_summary_at is None:
        return None
    return (vm.final_in_summary_at - vm.final_event_at).total_seconds()


def lane_of(account_id: str, region: str) -> str:
    """The lane's key, as ``RehearsalObservation.quotas`` names it."""
    return f"{account_id}/{region}"


def outcome_of(vm: VmObservation) -> Outcome:
    if vm.record_status == "COMPLETED":
        return "migrated"
    if vm.record_status == "ROLLED_BACK":
        return "rolled-back"
    if vm.final_status == "RUNNING":
        return "running"
    return "failed"


def rollback_start(vm: VmObservation) -> datetime | None:
    """When the rollback began: recorded, else inferred (see the module docstring)."""
    if vm.rollback_started_at is not None:
        return vm.rollback_started_at
    index = next((i for i, r in enumerate(vm.steps) if r.step == Step.ROLLBACK), None)
    if index is None:
        return None
    done = vm.steps[index].at
    before = vm.steps[index - 1].at if index > 0 else done
    terminates = [
        job.created_at
        for job in vm.jobs
        if job.kind == "terminate" and before < job.created_at <= done
    ]
    return min(terminates, default=done)


def quota_waits(vm: VmObservation, unresolved_until: datetime) -> tuple[Interval, ...]:
    """From the first rejection of each launch attempt to the job MGN finally created.

    A rejection belongs to the first test or cutover job created at or after it; rejections
    no job followed (the migration rolled back, or the run ended) wait until
    ``unresolved_until``.
    """
    created = sorted(job.created_at for job in vm.jobs if job.kind in _LAUNCH_KINDS)
    first_rejection: dict[int, datetime] = {}
    for rejected in sorted(vm.quota_rejections):
        index = bisect.bisect_left(created, rejected)
        first_rejection.setdefault(index, rejected)
    intervals = []
    for index, rejected in sorted(first_rejection.items()):
        until = created[index] if index < len(created) else unresolved_until
        if until > rejected:
            intervals.append((rejected, until))
    return tuple(intervals)


def vm_phases(
    vm: VmObservation,
    wave: WaveObservation | None,
    origin: datetime,
    *,
    cut: datetime | None,
    vm_end: datetime,
    quota_intervals: Sequence[Interval],
) -> tuple[Phase, ...]:
    """The VM's phases in order (see the module docstring for each one's bounds)."""
    steps = vm.steps
    open_until = cut or vm_end  # where a phase the VM never finished ends
    spans: list[tuple[PhaseName, datetime | None, datetime | None, datetime]] = []

    replication_start = vm.replication_started_at or _at(_ended(steps, Step.PREPARE_SOURCE))
    replication_seen = _at(_ended(steps, Step.WAIT_FOR_REPLICATION, {"SUCCEEDED"}))
    spans.append(("setup", origin, replication_start, open_until))
    spans.append(
        ("replication", replication_start, vm.replication_ready_at or replication_seen, open_until)
    )

    test_job = _first_job(vm.jobs, "test")
    approval_record = _first(steps, Step.AWAIT_APPROVAL)
    test_end = _at(_ended(steps, Step.VERIFY_TEST_LAUNCH))
    # Quota rejections after the test launch was verified belong to the cutover.
    cutover_rejections = [r for r in vm.quota_rejections if test_end is not None and r > test_end]
    test_rejections = [r for r in vm.quota_rejections if r not in cutover_rejections]
    test_start = replication_seen or _earliest(
        _at(_first(steps, Step.START_TEST_LAUNCH)),
        min(test_rejections, default=None),
        test_job.created_at if test_job else None,
    )
    spans.append(("test", test_start, test_end, open_until))

    approval_start = _at(approval_record)
    approval_end = _earliest(
        _at(_ended(steps, Step.AWAIT_APPROVAL)),
        _at(_next_other_step(steps, Step.AWAIT_APPROVAL)),
        cut if cut is not None and approval_start is not None and cut >= approval_start else None,
    )
    spans.append(("approval", approval_start, approval_end, open_until))

    cutover_job = _first_job(vm.jobs, "cutover")
    waiting = _first(steps, Step.START_CUTOVER, {"WAITING"})
    attempted = _earliest(
        _at(_first(steps, Step.START_CUTOVER, _ENDS | {"STARTED", "IN_PROGRESS"})),
        min(cutover_rejections, default=None),
        cutover_job.created_at if cutover_job else None,
    )
    cutover_start = attempted
    if waiting is not None:
        opens = max(waiting.at, wave.window_start) if wave is not None else waiting.at
        stop = attempted or open_until
        window_open = min(opens, stop)
        spans.append(("window-wait", waiting.at, window_open if opens <= stop else None, stop))
        cutover_start = window_open if attempted is not None else None
    spans.append(("cutover", cutover_start, _at(_ended(steps, Step.VERIFY_CUTOVER)), open_until))

    verified = _at(_ended(steps, Step.VERIFY_CUTOVER, {"SUCCEEDED"}))
    spans.append(("finalize", verified, _at(_ended(steps, Step.FINALIZE_CUTOVER)), open_until))
    spans.append(("rollback", cut, _at(_ended(steps, Step.ROLLBACK)), vm_end))

    phases = []
    for name, start, end, until in spans:
        if start is None:
            continue
        stop = max(end if end is not None else until, start)
        quota = _overlap_seconds(quota_intervals, (start, stop))
        phases.append(
            Phase(name, _instant(start, origin), _instant(stop, origin), end is not None, quota)
        )
    return tuple(phases)


def attribute_waits(
    vm: VmObservation,
    phases: Sequence[Phase],
    quota_intervals: Sequence[Interval],
    origin: datetime,
    vm_end: datetime,
) -> dict[Cause, float]:
    """Every second of the VM's time counted once, by the priority in the module docstring."""
    span = (origin, vm_end)

    def phase_intervals(*names: PhaseName) -> list[Interval]:
        return [(p.start.at, p.end.at) for p in phases if p.name in names]

    jobs = [
        (job.created_at, job.ended_at or vm_end) for job in vm.jobs if job.kind in _LAUNCH_KINDS
    ]
    replication = phase_intervals("replication")
    replicated_until = max((end for _start, end in replication), default=None)
    by_cause: list[tuple[Cause, list[Interval]]] = [
        ("quota", list(quota_intervals)),
        ("window", phase_intervals("window-wait")),
        ("approval", phase_intervals("approval")),
        ("launch", jobs),
        ("replication", [(origin, replicated_until)] if replicated_until else []),
    ]
    covered: list[Interval] = []
    waits: dict[Cause, float] = {}
    for cause, intervals in by_cause:
        clipped = [_clip(interval, span) for interval in intervals]
        before = _union_seconds(covered)
        covered = [*covered, *clipped]
        waits[cause] = _union_seconds(covered) - before
    waits["pipeline"] = max(0.0, (vm_end - origin).total_seconds() - _union_seconds(covered))
    waits["slack"] = sum(vm.slack_delays_seconds)
    return waits


def missed_window(
    vm: VmObservation, phases: Sequence[Phase], wave: WaveObservation | None, gave_up: datetime
) -> bool:
    """Tested, not migrated, no cutover job, and it gave up once the window had closed."""
    test = next((phase for phase in phases if phase.name == "test"), None)
    return (
        wave is not None
        and outcome_of(vm) != "migrated"
        and test is not None
        and test.complete
        and _first_job(vm.jobs, "cutover") is None
        and gave_up >= wave.window_end
    )


# --- one wave ------------------------------------------------------------------------------


def wave_report(
    name: str,
    wave: WaveObservation | None,
    vms: Sequence[VmReport],
    origin: datetime,
    *,
    rate_limited: int = 0,
) -> WaveReport:
    outcomes: dict[Outcome, int] = {outcome: _count(vms, outcome) for outcome in _OUTCOMES}
    replication_ends = [p.end for p in _phases(vms, "replication") if p.complete]
    tests = _phases(vms, "test")
    last = max(vms, key=lambda vm: (vm.ended.seconds, vm.migration_id), default=None)
    return WaveReport(
        name=name,
        lane=lane_of(wave.account_id, wave.region) if wave else (vms[0].lane if vms else ""),
        vm_count=len(vms),
        outcomes=outcomes,
        applications=tuple(sorted({vm.app_name for vm in vms})),
        replication_done_by=_latest(replication_ends),
        test_first_start=_earliest_instant([p.start for p in tests]),
        test_last_end=_latest([p.end for p in tests]),
        approval_waits=distribution([p.seconds for p in _phases(vms, "approval")]),
        window=window_fit(wave, vms, origin) if wave else None,
        critical_path=critical_path(last) if last else None,
        bottlenecks=rank_bottlenecks(vms),
        slack=slack_summary(vms, rate_limited=rate_limited),
    )


def slack_summary(
    vms: Sequence[VmReport],
    *,
    rate_limited: int,
    calls_by_method: Mapping[str, int] | None = None,
) -> SlackSummary:
    """The VMs' Slack figures together (see ``SlackSummary``); ``calls_by_method``: the run's
    every call, else the calls on the VMs' threads."""
    if calls_by_method is None:
        summed: dict[str, int] = {}
        for vm in vms:
            for method, n in vm.slack.calls_by_method.items():
                summed[method] = summed.get(method, 0) + n
        calls_by_method = summed
    count = len(vms)
    requested = [vm.slack for vm in vms if vm.slack.approval_requested]
    shown = [
        f.approval_message_seconds for f in requested if f.approval_message_seconds is not None
    ]
    return SlackSummary(
        vms=count,
        calls_per_vm=sum(calls_by_method.values()) / count if count else 0.0,
        calls_per_vm_by_method={
            method: calls_by_method[method] / count if count else 0.0
            for method in sorted(calls_by_method)
        },
        event_to_slack=distribution(d for vm in vms for d in vm.slack.delay_values),
        approval_message=distribution(shown),
        final_to_summary=distribution(
            f for vm in vms if (f := vm.slack.final_to_summary_seconds) is not None
        ),
        approvals_requested=len(requested),
        approvals_not_shown=len(requested) - len(shown),
        approvals_expired=sum(1 for f in requested if f.approval_status == "EXPIRED"),
        lost_updates=sum(1 for vm in vms if not vm.slack.final_shown),
        rate_limited=rate_limited,
    )


def window_fit(wave: WaveObservation, vms: Sequence[VmReport], origin: datetime) -> WindowFit:
    """The wave's cutovers against its window (see ``WindowFit``)."""
    cutovers = _phases(vms, "cutover")
    start = _earliest_instant([phase.start for phase in cutovers])
    end = _latest([phase.end for phase in cutovers])
    window_end = _instant(wave.window_end, origin)
    missed = [vm for vm in vms if vm.missed_window]
    late = [end.seconds] if end else []
    late += [_gave_up(vm).seconds for vm in missed]
    overrun = max((seconds - window_end.seconds for seconds in late), default=0.0)
    if not cutovers and not missed:
        fits, verdict = None, "no cutover"
    elif overrun > 0 or missed:
        fits = False
        shut_out = f"{len(missed)} VM(s) could not start before the window closed"
        verdict = f"overruns by {_minutes(overrun, up=True)} min" if overrun > 0 else "overruns"
        verdict += (
            f"; {shut_out}" if missed and overrun > 0 else (f": {shut_out}" if missed else "")
        )
    else:
        fits = True
        verdict = f"fits with {_minutes(-overrun, up=False)} min to spare"
    return WindowFit(
        window_start=_instant(wave.window_start, origin),
        window_end=window_end,
        cutover_start=start,
        cutover_end=end,
        fits=fits,
        spare_seconds=max(0.0, -overrun) if fits else 0.0,
        overrun_seconds=max(0.0, overrun),
        missed=len(missed),
        verdict=verdict,
    )


def critical_path(vm: VmReport) -> CriticalPath:
    """The VM that finished last and its phases, e.g. ``replication 6h10 -> test 40m (quota
    wait 30m) -> approval 12m -> window wait 3h -> cutover 25m`` (the text leaves out phases
    shorter than a second; ``phases`` has them all)."""
    return CriticalPath(
        migration_id=vm.migration_id,
        target_vm_name=vm.target_vm_name,
        ended=vm.ended,
        phases=vm.phases,
        text=" -> ".join(_phase_text(phase) for phase in vm.phases if phase.seconds >= 1),
    )


def _phase_text(phase: Phase) -> str:
    text = f"{phase.name.replace('-', ' ')} {format_duration(phase.seconds)}"
    if phase.quota_wait_seconds > 0:
        text += f" (quota wait {format_duration(phase.quota_wait_seconds)})"
    return text


def rank_bottlenecks(vms: Sequence[VmReport]) -> tuple[Bottleneck, ...]:
    """Each cause's VM-seconds over the VMs, largest first (ties in the causes' order)."""
    count = len(vms) or 1
    totals = {cause: sum(vm.waits.get(cause, 0.0) for vm in vms) for cause in CAUSES}
    ranked = sorted(CAUSES, key=lambda cause: (-totals[cause], CAUSES.index(cause)))
    return tuple(
        Bottleneck(cause, totals[cause], totals[cause] / count, cause != "slack")
        for cause in ranked
    )


# --- calls and the floor -------------------------------------------------------------------


def call_figures(observation: RehearsalObservation) -> CallFigures:
    vms = len(observation.vms)

    def per_vm(total: float) -> float:
        return total / vms if vms else 0.0

    def per_vm_each(counts: Mapping[str, int]) -> dict[str, float]:
        return {key: per_vm(counts[key]) for key in sorted(counts)}

    return CallFigures(
        vms=vms,
        aws_per_vm=per_vm(sum(observation.api_calls_by_service.values())),
        aws_per_vm_by_service=per_vm_each(observation.api_calls_by_service),
        mgn_per_vm=per_vm(sum(observation.mgn_calls_by_operation.values())),
        mgn_per_vm_by_operation=per_vm_each(observation.mgn_calls_by_operation),
        slack_per_vm=per_vm(sum(vm.slack_calls for vm in observation.vms)),
        slack_per_vm_by_method=per_vm_each(observation.slack_calls_by_method),
        slack_rate_limited=observation.slack_rate_limited,
        lost_slack_updates=tuple(
            vm.migration_id for vm in observation.vms if not vm.slack_final_shown
        ),
        lambda_invocations_per_vm=per_vm(observation.lambda_invocations),
        state_transitions_per_vm=per_vm(observation.state_transitions),
        approvals_expired=observation.approvals_expired,
    )


def floor_report(observation: RehearsalObservation) -> FloorReport:
    """Both floors per lane; the run's floor is its slowest lane's (lanes run in parallel)."""
    origin = observation.started_at
    waves = {
        wave.name: FloorWave(
            name=wave.name,
            bytes_per_second=observation.replication_bytes_per_second.get(wave.name, 0.0),
            window_start_seconds=(wave.window_start - origin).total_seconds(),
        )
        for wave in observation.waves
    }
    timings = FloorTimings(
        replication_initiation_seconds=observation.replication_initiation_seconds,
        test_launch_seconds=observation.test_launch_seconds,
        cutover_launch_seconds=observation.cutover_launch_seconds,
    )
    servers_by_lane: dict[str, list[FloorServer]] = {}
    for vm in observation.vms:
        servers_by_lane.setdefault(lane_of(vm.account_id, vm.region), []).append(
            FloorServer(vm.migration_id, vm.wave, vm.os_family, vm.disk_bytes)
        )
    lanes = []
    for lane, servers in sorted(servers_by_lane.items()):
        quotas = observation.quotas.get(lane, LaneQuotas())
        lanes.append(
            LaneFloorReport(
                lane=lane,
                quotas=quotas,
                batched=lane_floor(servers, waves, quotas, timings),
                per_vm=lane_floor(servers, waves, quotas, timings, servers_per_job=1),
            )
        )
    batched = max((lane.batched.makespan_seconds for lane in lanes), default=0.0)
    per_vm = max((lane.per_vm.makespan_seconds for lane in lanes), default=0.0)
    makespan = (observation.ended_at - origin).total_seconds()
    return FloorReport(
        batched_seconds=batched,
        per_vm_seconds=per_vm,
        ratio_to_batched=makespan / batched if batched > 0 else None,
        ratio_to_per_vm=makespan / per_vm if per_vm > 0 else None,
        lanes=tuple(lanes),
    )


# --- small helpers -------------------------------------------------------------------------


def distribution(values: Iterable[float]) -> Distribution:
    ordered = sorted(values)
    if not ordered:
        return Distribution(0, 0.0, 0.0, 0.0)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    return Distribution(len(ordered), statistics.median(ordered), p95, ordered[-1])


def format_duration(seconds: float) -> str:
    """``45s``, ``40m``, ``3h``, ``6h10``: the way people say durations on migration day."""
    if seconds < 60:
        return f"{round(seconds)}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, rest = divmod(minutes, 60)
    return f"{hours}h" if rest == 0 else f"{hours}h{rest:02d}"


def _minutes(seconds: float, *, up: bool) -> int:
    minutes = seconds / 60
    return math.ceil(minutes - 1e-9) if up else math.floor(minutes + 1e-9)


def _first(
    steps: Sequence[StepRecord], step: Step, statuses: Iterable[str] | None = None
) -> StepRecord | None:
    wanted = set(statuses) if statuses is not None else None
    return next(
        (r for r in steps if r.step == step and (wanted is None or r.status in wanted)), None
    )


def _ended(
    steps: Sequence[StepRecord], step: Step, statuses: Iterable[str] = _ENDS
) -> StepRecord | None:
    return _first(steps, step, statuses)


def _next_other_step(steps: Sequence[StepRecord], step: Step) -> StepRecord | None:
    """The first event of another step after the step's first event."""
    index = next((i for i, r in enumerate(steps) if r.step == step), None)
    if index is None:
        return None
    return next((r for r in steps[index + 1 :] if r.step != step), None)


def _first_job(jobs: Sequence[JobRecord], kind: str) -> JobRecord | None:
    return min((job for job in jobs if job.kind == kind), key=lambda j: j.created_at, default=None)


def _at(record: StepRecord | None) -> datetime | None:
    return record.at if record is not None else None


def _earliest(*instants: datetime | None) -> datetime | None:
    return min((at for at in instants if at is not None), default=None)


def _instant(at: datetime, origin: datetime) -> Instant:
    return Instant(at, (at - origin).total_seconds())


def _instant_json(instant: Instant | None) -> dict[str, Any] | None:
    return instant.as_json() if instant else None


def _job(job: JobRecord, origin: datetime) -> Job:
    return Job(
        job_id=job.job_id,
        kind=job.kind,
        created=_instant(job.created_at, origin),
        ended=_instant(job.ended_at, origin) if job.ended_at else None,
        servers_in_job=job.servers_in_job,
        launch_status=job.launch_status,
    )


def _gave_up(vm: VmReport) -> Instant:
    rollback = vm.phase("rollback")
    return rollback.start if rollback else vm.ended


def _phases(vms: Sequence[VmReport], name: PhaseName) -> list[Phase]:
    return [phase for vm in vms for phase in vm.phases if phase.name == name]


def _latest(instants: Sequence[Instant]) -> Instant | None:
    return max(instants, key=lambda i: i.seconds, default=None)


def _earliest_instant(instants: Sequence[Instant]) -> Instant | None:
    return min(instants, key=lambda i: i.seconds, default=None)


def _count(vms: Sequence[VmReport], outcome: Outcome) -> int:
    return sum(1 for vm in vms if vm.outcome == outcome)


def _clip(interval: Interval, span: Interval) -> Interval:
    start, end = max(interval[0], span[0]), min(interval[1], span[1])
    return (start, max(start, end))


def _union_seconds(intervals: Sequence[Interval]) -> float:
    total = 0.0
    reach: datetime | None = None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def _overlap_seconds(intervals: Sequence[Interval], span: Interval) -> float:
    return _union_seconds([_clip(interval, span) for interval in intervals])


def _lane_floor_json(floor: LaneFloor) -> dict[str, Any]:
    return {
        "serversPerJob": floor.servers_per_job,
        "replicationDoneSeconds": _r(floor.replication_done_seconds),
        "testLaunchesDoneSeconds": _r(floor.test_launches_done_seconds),
        "cutoversDoneSeconds": _r(floor.cutovers_done_seconds),
        "testJobs": floor.test_jobs,
        "cutoverJobs": floor.cutover_jobs,
        "makespanSeconds": _r(floor.makespan_seconds),
    }


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {key: _r(value) for key, value in values.items()}


def _r(value: float | None) -> Any:
    """Seconds and ratios to the millisecond: stable JSON for tests and benchmarks."""
    return None if value is None else round(value, 3)
