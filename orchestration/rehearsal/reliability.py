"""The fault campaign's verdict (issue 18, goal R1), from what the rehearsal observed.

R1: no migration lost, no server launched twice, no execution stuck, every final state in its
Slack thread, every dead letter explained. Each figure comes with the cases behind it, so a
failed verdict says where to look. Pure: reads a ``RehearsalObservation``, computes nothing
the observation does not hold.

- **lost**: neither final nor running: no execution at all, or an execution that ended while
  the state table still says the migration is under way (nobody will ever finish it);
- **launched twice**: the MGN emulator's own job records: a server that took part, with a
  launch that did not fail, in two launch jobs of the same kind (test or cutover), or in two
  jobs of that kind at once. A rehearsal runs one execution per migration, so this is "within
  the same execution attempt";
- **stuck**: an execution still running at the end whose last step is older than the longest
  configured wait (the longest timeout, or its wave's window still to come);
- **not shown**: a final state its thread's root does not show (the rehearsal's own check);
- **unexplained dead letters**: a message on a DLQ without a ``failureReason``.

- **callbacks lost** (listed, not part of R1: callbacks are best effort, and the handler logs
  CALLBACK_FAILED for each): status events the callback endpoint saw attempts of and never
  accepted. An endpoint that refuses connections leaves no trace at the receiver: only its
  answered attempts are counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from orchestration.rehearsal.observation import (
    DeadLetter,
    InjectedFault,
    JobRecord,
    LostCallback,
    RehearsalObservation,
    VmObservation,
)

__all__ = ["Case", "ReliabilityReport", "assess"]

_RUNNING = "RUNNING"
_ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_FINAL_RECORDS = frozenset({"COMPLETED", "ROLLED_BACK", "FAILED", "PARKED"})
_LAUNCH_KINDS = ("test", "cutover")


@dataclass(frozen=True)
class Case:
    migration_id: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"migrationId": self.migration_id, "detail": self.detail}


@dataclass(frozen=True)
class ReliabilityReport:
    lost: tuple[Case, ...]
    launched_twice: tuple[Case, ...]
    stuck: tuple[Case, ...]
    not_shown_in_slack: tuple[Case, ...]
    dead_letters: tuple[DeadLetter, ...]
    faults_by_kind: dict[str, int]
    failures_visible: int  # migrations that failed or rolled back, their end in their thread
    injected: tuple[InjectedFault, ...] = ()
    callbacks_lost: tuple[LostCallback, ...] = ()

    @property
    def unexplained_dead_letters(self) -> tuple[DeadLetter, ...]:
        return tuple(d for d in self.dead_letters if not d.reason)

    @property
    def holds(self) -> bool:
        """Goal R1."""
        return not (
            self.lost
            or self.launched_twice
            or self.stuck
            or self.not_shown_in_slack
            or self.unexplained_dead_letters
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "r1Holds": self.holds,
            "faultsInjected": self.faults_by_kind,
            "faults": [
                {"kind": f.kind, "at": f.at.isoformat(), "detail": f.detail} for f in self.injected
            ],
            "lost": _cases(self.lost),
            "launchedTwice": _cases(self.launched_twice),
            "stuck": _cases(self.stuck),
            "notShownInSlack": _cases(self.not_shown_in_slack),
            "failuresVisibleInThread": self.failures_visible,
            # Allowed (callbacks are best effort) but never silent: each is listed here and
            # the callback handler logged CALLBACK_FAILED for it.
            "callbacksLost": {
                "count": len(self.callbacks_lost),
                "cases": [
                    {"migrationId": c.migration_id, "sequence": c.sequence, "attempts": c.attempts}
                    for c in self.callbacks_lost
                ],
            },
            "deadLetters": {
                "count": len(self.dead_letters),
                "unexplained": len(self.unexplained_dead_letters),
                "cases": [
                    {
                        "queue": d.queue,
                        "messageId": d.message_id,
                        "reason": d.reason,
                        "rejectedBy": d.rejected_by,
                        "body": d.body,
                    }
                    for d in self.dead_letters
                ],
            },
        }


def _cases(cases: tuple[Case, ...]) -> dict[str, Any]:
    return {"count": len(cases), "cases": [c.as_json() for c in cases]}


def assess(observation: RehearsalObservation) -> ReliabilityReport:
    windows = {w.name: w.window_end for w in observation.waves}
    end = observation.watched_until or observation.ended_at
    longest = timedelta(seconds=observation.longest_wait_seconds)
    lost, twice, stuck, not_shown = [], [], [], []
    visible = 0
    for vm in observation.vms:
        if (case := _lost(vm)) is not None:
            lost.append(case)
        twice.extend(_launched_twice(vm))
        if (case := _stuck(vm, end, longest, windows.get(vm.wave))) is not None:
            stuck.append(case)
        if vm.final_status in _ENDED and not vm.slack_final_shown:
            not_shown.append(
                Case(
                    vm.migration_id,
                    f"ended {vm.record_status}; its thread does not show it: "
                    + (vm.slack_thread or "no thread item (no event of it folded)"),
                )
            )
        elif vm.slack_final_shown and vm.record_status != "COMPLETED":
            visible += 1
    return ReliabilityReport(
        lost=tuple(lost),
        launched_twice=tuple(twice),
        stuck=tuple(stuck),
        not_shown_in_slack=tuple(not_shown),
        dead_letters=observation.dead_letters,
        faults_by_kind=dict(sorted(Counter(f.kind for f in observation.faults_injected).items())),
        failures_visible=visible,
        injected=observation.faults_injected,
        callbacks_lost=observation.callbacks_lost,
    )


def _lost(vm: VmObservation) -> Case | None:
    if vm.final_status == "NOT_STARTED":
        return Case(vm.migration_id, "no execution ever started")
    if vm.final_status in _ENDED and vm.record_status not in _FINAL_RECORDS:
        return Case(
            vm.migration_id,
            f"execution {vm.final_status} but the state table says {vm.record_status}",
        )
    return None


def _launched_twice(vm: VmObservation) -> list[Case]:
    by_kind: dict[str, list[JobRecord]] = defaultdict(list)
    for job in vm.jobs:
        if job.kind in _LAUNCH_KINDS:
            by_kind[job.kind].append(job)
    cases: list[Case] = []
    for kind, jobs in sorted(by_kind.items()):
        launched = [j for j in jobs if j.launch_status != "FAILED"]
        if len(launched) > 1:
            ids = ", ".join(j.job_id for j in launched)
            cases.append(Case(vm.migration_id, f"{kind} launched {len(launched)} times: {ids}"))
            continue
        ordered = sorted(jobs, key=lambda j: j.created_at)
        for first, second in pairwise(ordered):
            if first.ended_at is None or second.created_at < first.ended_at:
                cases.append(
                    Case(
                        vm.migration_id,
                        f"{kind} jobs {first.job_id} and {second.job_id} at the same time",
                    )
                )
    return cases


def _stuck(
    vm: VmObservation, end: datetime, longest: timedelta, window_end: datetime | None
) -> Case | None:
    if vm.final_status != _RUNNING:
        return None
    last = vm.steps[-1].at if vm.steps else None
    if last is None:
        return Case(vm.migration_id, "running with no step recorded")
    quiet_since = max(last, window_end) if window_end is not None else last
    if end - quiet_since > longest:
        return Case(
            vm.migration_id,
            f"no step since {last.isoformat(timespec='minutes')} "
            f"({vm.steps[-1].step} {vm.steps[-1].status})",
        )
    return None
