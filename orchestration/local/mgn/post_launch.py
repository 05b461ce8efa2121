"""Post-launch actions: stored per source server, run on each launched instance, on the clock.

MGN runs a server's active actions (PutSourceServerAction) with SSM once the launched
instance's SSM agent is seen, one after another in ``order``, and reports them on the launch
job's participating server (``postLaunchActionsStatus``). The emulator plans the whole run
when the instance has booted (`plan_run`) and derives what MGN would report at any instant
from that plan (`render_status`), as replication is derived from its plan: nothing is
scheduled, and the answer depends only on the simulated time of the request.

Each action succeeds after `PostLaunchTiming.action`, unless a fault says otherwise
(`FaultInjector.fail_post_launch_action`): FAILED after the same time with the fault's
reason, or, timing out, IN_PROGRESS until its ``timeoutSeconds`` and then FAILED with SSM's
timeout reason. An action whose ``timeoutSeconds`` is shorter than `PostLaunchTiming.action`
times out likewise. The job does not wait for its actions (MGN's does not either): it completes
when its launches end, and the actions' results keep changing on it afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestration.local.mgn.wire_format import format_timestamp

Outcome = Literal["SUCCESS", "FAILED", "TIMED_OUT"]


@dataclass(slots=True)
class ServerActionRecord:
    """One PutSourceServerAction, as stored (wire names in `render_action`)."""

    action_id: str
    action_name: str
    document_identifier: str
    order: int
    sequence: int
    document_version: str | None = None
    active: bool = True
    timeout_seconds: int | None = None
    must_succeed_for_cutover: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    external_parameters: dict[str, Any] | None = None
    description: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class ActionFault:
    """How the named action fails on one server: with `reason`, or by timing out."""

    times_out: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PlannedExecution:
    """One action's run on one launched instance: when it starts and ends, and how."""

    action: ServerActionRecord
    execution_id: str
    starts_at: datetime
    ends_at: datetime
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PostLaunchRun:
    """A launched instance's actions: the SSM agent is seen at `ssm_seen_at`, then each runs."""

    ssm_seen_at: datetime
    executions: tuple[PlannedExecution, ...]


# SSM's reason for a command that ran past its execution timeout.
TIMED_OUT_REASON = "Execution timed out after {seconds} seconds (SSM document {document})"
# What MGN runs an action for when it gives no timeout (SSM Run Command's default: 1 hour).
DEFAULT_TIMEOUT_SECONDS = 3600


def plan_run(
    *,
    job_id: str,
    source_server_id: str,
    actions: list[ServerActionRecord],
    faults: dict[str, ActionFault],
    booted_at: datetime,
    ssm_agent_discovery: timedelta,
    action_duration: timedelta,
) -> PostLaunchRun | None:
    """The run of the server's active actions on the instance that booted at `booted_at`
    (None if it has none): in ``order`` (then the order they were put), one at a time."""
    active = sorted((a for a in actions if a.active), key=lambda a: (a.order, a.sequence))
    if not active:
        return None
    seen_at = booted_at + ssm_agent_discovery
    at = seen_at
    planned: list[PlannedExecution] = []
    for action in active:
        fault = faults.get(action.action_name)
        timeout = timedelta(seconds=action.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
        # An action that needs longer than its timeout times out, as SSM would end it.
        if (fault is not None and fault.times_out) or action_duration > timeout:
            outcome: Outcome = "TIMED_OUT"
            ends_at = at + timeout
            reason = TIMED_OUT_REASON.format(
                seconds=int(timeout.total_seconds()), document=action.document_identifier
            )
        else:
            outcome = "FAILED" if fault is not None else "SUCCESS"
            ends_at = at + action_duration
            reason = fault.reason if fault is not None else ""
        planned.append(
            PlannedExecution(
                action=action,
                execution_id=_execution_id(job_id, source_server_id, action.action_id),
                starts_at=at,
                ends_at=ends_at,
                outcome=outcome,
                reason=reason,
            )
        )
        at = ends_at
    return PostLaunchRun(ssm_seen_at=seen_at, executions=tuple(planned))


def render_status(run: PostLaunchRun, now: datetime) -> dict[str, Any]:
    """``postLaunchActionsStatus`` as MGN reports it at `now`: nothing before the SSM agent
    is seen; then every action that has started, IN_PROGRESS until it ends."""
    if now < run.ssm_seen_at:
        return {"postLaunchActionsLaunchStatusList": []}
    statuses: list[dict[str, Any]] = []
    for execution in run.executions:
        if now < execution.starts_at:
            break
        done = now >= execution.ends_at
        status = ("SUCCESS" if execution.outcome == "SUCCESS" else "FAILED") if done else None
        action = execution.action
        document: dict[str, Any] = {
            "actionName": action.action_name,
            "ssmDocumentName": action.document_identifier,
            "mustSucceedForCutover": action.must_succeed_for_cutover,
            "parameters": action.parameters,
        }
        if action.timeout_seconds is not None:
            document["timeoutSeconds"] = action.timeout_seconds
        entry: dict[str, Any] = {
            "ssmDocument": document,
            "ssmDocumentType": "COMMAND",
            "executionID": execution.execution_id,
            "executionStatus": status or "IN_PROGRESS",
        }
        if done and status == "FAILED":
            entry["failureReason"] = execution.reason
        statuses.append(entry)
    return {
        "ssmAgentDiscoveryDatetime": format_timestamp(run.ssm_seen_at),
        "postLaunchActionsLaunchStatusList": statuses,
    }


def render_action(action: ServerActionRecord) -> dict[str, Any]:
    """A SourceServerActionDocument (PutSourceServerAction's answer, ListSourceServerActions'
    items); absent members are left out, as MGN does."""
    values: dict[str, Any] = {
        "actionID": action.action_id,
        "actionName": action.action_name,
        "documentIdentifier": action.document_identifier,
        "order": action.order,
        "documentVersion": action.document_version,
        "active": action.active,
        "timeoutSeconds": action.timeout_seconds,
        "mustSucceedForCutover": action.must_succeed_for_cutover,
        "parameters": action.parameters,
        "externalParameters": action.external_parameters,
        "description": action.description,
        "category": action.category,
    }
    return {key: value for key, value in values.items() if value is not None}


def _execution_id(job_id: str, source_server_id: str, action_id: str) -> str:
    """An SSM command ID (a UUID's shape), the same for the same launch and action."""
    digest = hashlib.sha256(f"{job_id}:{source_server_id}:{action_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
