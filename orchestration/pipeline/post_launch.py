"""What a launched instance's post-launch actions mean for the migration: wait, go on (with
warnings), or fail. Pure: the verify step passes in what MGN reported and how long it waited.

MGN runs the actions (SSM documents) after the instance boots and its SSM agent is seen, one
after another, and reports each on the launch job's participating server. An action that
must succeed for cutover (``mustSucceedForCutover``) and failed, or never ended, fails the
launch's verification, so the migration rolls back before anyone approves a cutover of an
instance that was never set up; an optional one that failed is a warning in the thread.
Actions set by hand in MGN's console are judged by their own ``mustSucceedForCutover`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestration.post_launch_actions import (
    ActionExecution,
    PostLaunchActionSpec,
    PostLaunchStatus,
    SourceServerAction,
)

# Beyond the actions' own timeouts: the SSM agent must be seen on the instance before the
# first one starts (MGN installs it at boot), and MGN must report each result.
SSM_GRACE_SECONDS = 900

ResultStatus = Literal["SUCCESS", "FAILED", "IN_PROGRESS", "NOT_STARTED", "TIMED_OUT"]
_ENDED_BADLY: frozenset[str] = frozenset({"FAILED", "TIMED_OUT"})
_WORDS = {
    "SUCCESS": "succeeded",
    "FAILED": "failed",
    "IN_PROGRESS": "running",
    "NOT_STARTED": "not started",
    "TIMED_OUT": "never ended",
}


@dataclass(frozen=True, slots=True)
class ActionResult:
    """One action's outcome on the launched instance, as the thread and the approval show it."""

    name: str
    ssm_document: str
    status: ResultStatus
    must_succeed: bool
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status in _ENDED_BADLY

    def line(self) -> str:
        """``join-domain (Contoso-JoinDomain) failed: reason`` (optional ones say so)."""
        optional = "" if self.must_succeed else ", optional"
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.name} ({self.ssm_document}{optional}) {_WORDS[self.status]}{reason}"

    def as_data(self) -> dict[str, Any]:
        """The step's status data and result (camelCase, as every status event's data)."""
        return {
            "name": self.name,
            "ssmDocument": self.ssm_document,
            "status": self.status,
            "mustSucceedForCutover": self.must_succeed,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class PostLaunchVerdict:
    """Every action's result; `waiting` while some have not ended and time remains."""

    results: tuple[ActionResult, ...]
    waiting: bool

    @property
    def blocking(self) -> tuple[ActionResult, ...]:
        """Actions that must succeed for cutover and did not: the launch fails."""
        return tuple(r for r in self.results if r.must_succeed and r.failed)

    @property
    def warnings(self) -> tuple[ActionResult, ...]:
        """Optional actions that did not succeed: the migration goes on, the thread says so."""
        return tuple(r for r in self.results if not r.must_succeed and r.failed)

    def summary(self) -> str:
        return "; ".join(result.line() for result in self.results)


@dataclass(frozen=True, slots=True)
class ActionChanges:
    """What makes MGN's actions on a server the manifest's: put these, remove those IDs."""

    put: tuple[PostLaunchActionSpec, ...]
    remove: tuple[str, ...]


def action_changes(
    current: Sequence[SourceServerAction], wanted: Sequence[PostLaunchActionSpec]
) -> ActionChanges:
    """Put each wanted action MGN does not hold exactly; remove Wavepilot's actions the
    manifest no longer names. Actions set by hand in MGN's console (other IDs) stay."""
    held = {action.action_id: action for action in current}
    wanted_ids = {action.action_id for action in wanted}
    return ActionChanges(
        put=tuple(
            action
            for action in wanted
            if action.action_id not in held or not held[action.action_id].matches(action)
        ),
        remove=tuple(
            action.action_id
            for action in current
            if action.wavepilots and action.action_id not in wanted_ids
        ),
    )


def wait_budget_seconds(wanted: Sequence[PostLaunchActionSpec]) -> int:
    """How long the actions may take in all: they run one after another, each within its
    timeout, after the SSM agent is seen."""
    return sum(action.timeout_seconds for action in wanted) + SSM_GRACE_SECONDS


def judge(
    wanted: Sequence[PostLaunchActionSpec],
    reported: PostLaunchStatus | None,
    *,
    waited_seconds: float,
) -> PostLaunchVerdict:
    """The verdict on the manifest's actions (`wanted`) and whatever else MGN ran, from
    MGN's report so far, after `waited_seconds` since the instance was seen running.

    A wanted action MGN has not reported is NOT_STARTED; past the wait budget, one not
    ended is TIMED_OUT (a failure). Without wanted actions nothing is waited for but the
    reported actions already running.
    """
    executions = {e.action_name: e for e in (reported.executions if reported else ())}
    results: list[ActionResult] = []
    for action in sorted(wanted, key=lambda a: a.order):
        execution = executions.pop(action.name, None)
        results.append(
            _result(execution)
            if execution is not None
            else ActionResult(
                action.name, action.ssm_document, "NOT_STARTED", action.must_succeed_for_cutover
            )
        )
    results.extend(_result(execution) for execution in executions.values())
    unfinished = any(r.status in {"IN_PROGRESS", "NOT_STARTED"} for r in results)
    budget = wait_budget_seconds(wanted)
    if unfinished and waited_seconds <= budget:
        return PostLaunchVerdict(tuple(results), waiting=True)
    return PostLaunchVerdict(
        tuple(
            _timed_out(r, budget) if r.status in {"IN_PROGRESS", "NOT_STARTED"} else r
            for r in results
        ),
        waiting=False,
    )


def _result(execution: ActionExecution) -> ActionResult:
    return ActionResult(
        name=execution.action_name,
        ssm_document=execution.ssm_document,
        status=execution.status,
        must_succeed=execution.must_succeed_for_cutover,
        reason=execution.failure_reason,
    )


def _timed_out(result: ActionResult, budget: int) -> ActionResult:
    where = "still running" if result.status == "IN_PROGRESS" else "never started"
    return ActionResult(
        result.name,
        result.ssm_document,
        "TIMED_OUT",
        result.must_succeed,
        f"{where} after {budget} s (its timeout and the SSM agent's {SSM_GRACE_SECONDS} s)",
    )
