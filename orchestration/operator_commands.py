"""``wavepilot status|approve|reject``: what an operator sees and decides from a terminal.

The Slack bot is the normal way to follow a migration and to decide its approval gate; these
commands are for operators and break-glass, against AWS (the usual AWS environment plus
``DYNAMODB_TABLE_NAME``, ``AWS_REGION``, ``EVENTBRIDGE_BUS_NAME``) or, with ``--local``,
against a running embedded system (``orchestration/local/connection.py``).

Decisions go through :class:`~orchestration.pipeline.approvals.ApprovalService`, as the
bot's do: the approver check, the self-approval check, exactly-once decisions, expiry and
the audit trail all apply. ``--as`` names the Slack user deciding; the CLI cannot prove who
runs it, so on AWS the boundary is IAM (the table, ``events:PutEvents`` and
``states:SendTaskSuccess``/``SendTaskFailure``) and every attempt is audited under the ID.

IDs: ``apv-...`` is an approval, ``mig-...`` a migration (whose approval is the one meant).
The functions over a store return data, and renderables for the terminal; the Slack bot's
``/wavepilot`` commands use them too. ``run_status`` and ``run_decision``, the terminal
commands, are in :mod:`orchestration.operator_cli` (with ``--local``, which the deployed
package does not carry).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from orchestration.pipeline.approvals import (
    ApprovalError,
    ApprovalNotFoundError,
    Decision,
    NotAnApproverError,
    no_groups,
)

if TYPE_CHECKING:
    from orchestration.adapters.state_store import (
        ApprovalRecord,
        MigrationRecord,
        MigrationStore,
    )
    from orchestration.pipeline.approvals import ApprovalService, GroupMembership

EXIT_OK = 0
EXIT_REFUSED = 1
APPROVAL_PREFIX = "apv-"
MIGRATION_PREFIX = "mig-"
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{8,}")
IAM_HINT = (
    "the CLI needs dynamodb:GetItem, Query, PutItem and UpdateItem on the state table and its "
    "gsi1 index, events:PutEvents on the bus and states:SendTaskSuccess/SendTaskFailure"
)
OutputFormat = Literal["text", "json"]


class OperatorUsageError(Exception):
    """Bad arguments, unknown IDs, an unreachable environment: exit status 2."""


class OperatorFailedError(Exception):
    """AWS refused or failed: exit status 1."""


# --- IDs -------------------------------------------------------------------------------


def id_kind(target: str) -> Literal["approval", "migration"]:
    """``apv-...`` is an approval ID, ``mig-...`` a migration ID; anything else is an error."""
    if target.startswith(APPROVAL_PREFIX) and len(target) > len(APPROVAL_PREFIX):
        return "approval"
    if target.startswith(MIGRATION_PREFIX) and len(target) > len(MIGRATION_PREFIX):
        return "migration"
    raise OperatorUsageError(
        f"{target!r} is neither an approval ID (apv-...) nor a migration ID (mig-...); "
        "`wavepilot status --wave WAVE` lists both"
    )


def check_slack_user(user: str) -> str:
    if not SLACK_USER_ID.fullmatch(user):
        raise OperatorUsageError(
            f"--as {user!r}: give the Slack user ID of the person deciding (like U07ALICE001; "
            "in Slack: profile, More, Copy member ID), not a name or an email"
        )
    return user


# --- status ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepEntry:
    at: str
    step: str
    status: str
    message: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StepEntry:
        return cls(
            at=str(item.get("at", "")),
            step=str(item.get("step", "")),
            status=str(item.get("status", "")),
            message=str(item.get("message", "")),
        )

    def as_json(self) -> dict[str, str]:
        return {"at": self.at, "step": self.step, "status": self.status, "message": self.message}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str
    actor: str
    action: str
    outcome: str
    detail: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AuditEntry:
        return cls(
            at=str(item.get("at", "")),
            actor=str(item.get("actor", "")),
            action=str(item.get("action", "")),
            outcome=str(item.get("outcome", "")),
            detail=str(item.get("detail", "")),
        )

    def as_json(self) -> dict[str, str]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    record: MigrationRecord
    history: tuple[StepEntry, ...]
    approval: ApprovalRecord | None
    audit: tuple[AuditEntry, ...]

    @property
    def step_status(self) -> str:
        return self.history[-1].status if self.history else ""

    @property
    def updated_at(self) -> str:
        return self.history[-1].at if self.history else ""

    @property
    def pending_approval_id(self) -> str | None:
        if self.approval is not None and self.approval.status == "PENDING":
            return self.approval.approval_id
        return None

    def as_json(self) -> dict[str, Any]:
        record, approval = self.record, self.approval
        return {
            "migrationId": record.migration_id,
            "wave": record.wave,
            "appName": record.app_name,
            "targetVmName": record.target_vm_name,
            "status": record.status,
            "step": record.step,
            "stepStatus": self.step_status,
            "updatedAt": self.updated_at,
            "revision": record.revision,
            "executionArn": record.execution_arn,
            "correlationId": record.correlation_id,
            "approval": None
            if approval is None
            else {
                "approvalId": approval.approval_id,
                "status": approval.status,
                "approvers": list(approval.approvers),
                "requestedBy": approval.requested_by,
                "expiresAt": approval.expires_at.isoformat(),
                "decidedBy": approval.decided_by or None,
                "decidedAt": approval.decided_at or None,
                "reason": approval.reason or None,
                "audit": [entry.as_json() for entry in self.audit],
            },
            "history": [entry.as_json() for entry in self.history],
        }


@dataclass(frozen=True, slots=True)
class WaveRow:
    migration_id: str
    app_name: str
    target_vm_name: str
    status: str
    step: str
    step_status: str
    updated_at: str
    pending_approval_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "migrationId": self.migration_id,
            "appName": self.app_name,
            "targetVmName": self.target_vm_name,
            "status": self.status,
            "step": self.step,
            "stepStatus": self.step_status,
            "updatedAt": self.updated_at,
            "pendingApprovalId": self.pending_approval_id,
        }


@dataclass(frozen=True, slots=True)
class WaveStatus:
    wave: str
    rows: tuple[WaveRow, ...]

    def as_json(self) -> dict[str, Any]:
        return {"wave": self.wave, "migrations": [row.as_json() for row in self.rows]}


def migration_status(store: MigrationStore, target: str) -> MigrationStatus:
    """A migration (or the migration of an approval) with its approval and step history."""
    migration_id = target
    if id_kind(target) == "approval":
        found = store.approval(target)
        if found is None:
            raise OperatorUsageError(f"no approval {target}")
        migration_id = found.migration_id
    record = store.get(migration_id)
    if record is None:
        raise OperatorUsageError(f"no migration {migration_id}")
    approval_id = target if target != migration_id else record.approval_id
    approval = store.approval(approval_id) if approval_id else None
    return MigrationStatus(
        record=record,
        history=tuple(StepEntry.from_item(item) for item in store.history(migration_id)),
        approval=approval,
        audit=tuple(AuditEntry.from_item(item) for item in store.audit_trail(approval_id))
        if approval is not None and approval_id
        else (),
    )


def wave_status(store: MigrationStore, wave: str) -> WaveStatus:
    """One row per migration of ``wave``, by application and VM."""
    records = store.wave_migrations(wave)
    if not records:
        raise OperatorUsageError(f"no migrations recorded for wave {wave!r}")
    rows = []
    for record in sorted(records, key=lambda r: (r.app_name, r.target_vm_name, r.migration_id)):
        history = store.history(record.migration_id)
        last = StepEntry.from_item(history[-1]) if history else None
        pending = None
        if record.approval_id and record.step == "AwaitApproval":
            approval = store.approval(record.approval_id)
            if approval is not None and approval.status == "PENDING":
                pending = approval.approval_id
        rows.append(
            WaveRow(
                migration_id=record.migration_id,
                app_name=record.app_name,
                target_vm_name=record.target_vm_name,
                status=record.status,
                step=record.step,
                step_status=last.status if last else "",
                updated_at=last.at if last else "",
                pending_approval_id=pending,
            )
        )
    return WaveStatus(wave, tuple(rows))


def _utc(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _relative(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    size = abs(seconds)
    if size < 120:
        amount = f"{size} s"
    elif size < 2 * 3600:
        amount = f"{size // 60} min"
    elif size < 2 * 86_400:
        amount = f"{size // 3600} h {size % 3600 // 60} min"
    else:
        amount = f"{size // 86_400} d {size % 86_400 // 3600} h"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"


def _approval_text(approval: ApprovalRecord, now: datetime) -> Text:
    text = Text(f"{approval.approval_id} ")
    style = {"PENDING": "bold yellow", "APPROVED": "green"}.get(approval.status, "red")
    text.append(approval.status, style=style)
    if approval.status == "PENDING":
        text.append(
            f"; approvers {', '.join(approval.approvers) or '(none)'}; expires "
            f"{_utc(approval.expires_at.isoformat())} UTC "
            f"({_relative(approval.expires_at, now)})"
        )
    else:
        text.append(f" by {approval.decided_by} at {_utc(approval.decided_at)} UTC")
        if approval.reason:
            text.append(f": {approval.reason}")
    return text


def render_migration_status(
    status: MigrationStatus, now: datetime, *, local: bool = False
) -> RenderableType:
    record = status.record
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    step = record.step + (f" ({status.step_status})" if status.step_status else "")
    for label, value in (
        ("Wave", record.wave),
        ("Application", record.app_name),
        ("VM", record.target_vm_name),
        ("Status", record.status),
        ("Step", step),
        ("Revision", record.revision),
        ("Execution", record.execution_arn or "-"),
    ):
        facts.add_row(label, Text(value))
    if status.approval is not None:
        facts.add_row("Approval", _approval_text(status.approval, now))
    parts: list[RenderableType] = [
        Text(f"Migration {record.migration_id}", style="bold"),
        facts,
    ]
    if status.pending_approval_id:
        where = " --local" if local else ""
        parts.append(
            Text(
                f"Decide with: wavepilot approve {status.pending_approval_id} --as <Slack user ID>"
                f"{where}\n         or: wavepilot reject {status.pending_approval_id} "
                f"--as <Slack user ID> --reason TEXT{where}"
            )
        )
    history = Table(title="Step history (UTC)", title_justify="left")
    for column in ("Time", "Step", "Status", "Message"):
        history.add_column(column, no_wrap=column != "Message")
    for entry in status.history:
        history.add_row(_utc(entry.at), entry.step, entry.status, Text(entry.message))
    parts.append(history)
    if status.audit:
        audit = Table(title="Approval audit trail (UTC)", title_justify="left")
        for column in ("Time", "Who", "Action", "Outcome", "Detail"):
            audit.add_column(column, no_wrap=column != "Detail")
        for item in status.audit:
            audit.add_row(_utc(item.at), item.actor, item.action, item.outcome, Text(item.detail))
        parts.append(audit)
    return Group(*parts)


def render_wave_status(status: WaveStatus) -> RenderableType:
    table = Table(title=f"Wave {status.wave}", title_justify="left", show_edge=False)
    # IDs are copied into the next command: never cut them; narrow terminals wrap the rest.
    id_width = max((len(row.migration_id) for row in status.rows), default=0)
    approval_width = max((len(row.pending_approval_id or "") for row in status.rows), default=0)
    table.add_column("VM")
    table.add_column("Application")
    table.add_column("Migration", no_wrap=True, min_width=id_width)
    table.add_column("Status", no_wrap=True)
    table.add_column("Step")
    table.add_column("Updated (UTC)")
    table.add_column("Pending approval", no_wrap=True, min_width=approval_width)
    for row in status.rows:
        # A step that succeeded is the usual case: only say how a step stands otherwise.
        shown = row.step_status not in {"", "SUCCEEDED"}
        table.add_row(
            Text(row.target_vm_name),
            Text(row.app_name),
            row.migration_id,
            row.status,
            row.step + (f" ({row.step_status})" if shown else ""),
            _utc(row.updated_at)[:16] if row.updated_at else "-",
            row.pending_approval_id or "",
        )
    counts = Counter(row.status for row in status.rows)
    table.caption = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
    return table


# --- decisions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionResult:
    decided: bool
    decision: Decision
    approval_id: str
    migration_id: str
    target_vm_name: str
    wave: str
    user: str
    message: str


def resolve_approval(store: MigrationStore, target: str) -> ApprovalRecord:
    """The approval ``target`` names: itself (``apv-``) or its migration's (``mig-``)."""
    if id_kind(target) == "approval":
        approval = store.approval(target)
        if approval is None:
            raise OperatorUsageError(f"no approval {target}")
        return approval
    record = store.get(target)
    if record is None:
        raise OperatorUsageError(f"no migration {target}")
    if record.approval_id is None:
        raise OperatorFailedError(
            f"{target} ({record.target_vm_name}) has no approval to decide yet: it is at "
            f"{record.step} ({record.status}); its gate opens once its test launch is verified"
        )
    approval = store.approval(record.approval_id)
    if approval is None:  # pragma: no cover - the record points at an approval it created
        raise OperatorUsageError(f"no approval {record.approval_id} (named by {target})")
    return approval


def _mentions(requested_by: str) -> Callable[[str], bool]:
    """Whether the requester recorded names this Slack user (hand-written requests may)."""
    return lambda user: (
        re.search(rf"(?<![A-Z0-9]){re.escape(user)}(?![A-Z0-9])", requested_by) is not None
    )


def decide(
    store: MigrationStore,
    service: ApprovalService,
    target: str,
    decision: Decision,
    *,
    user: str,
    reason: str = "",
    is_member: GroupMembership = no_groups,
    is_requester: Callable[[str, str], bool] | None = None,
) -> DecisionResult:
    """Decide the approval ``target`` names, through the approval service (audited).

    ``is_requester(user, requested_by)`` says whether the user asked for the change; by
    default, whether the recorded requester names the user's ID (the Slack bot also compares
    the user's email with the commit author's)."""
    check_slack_user(user)
    if decision == "REJECTED" and not reason.strip():
        raise OperatorUsageError("a rejection needs --reason (it is shown in the Slack thread)")
    approval = resolve_approval(store, target)

    def result(decided: bool, message: str) -> DecisionResult:
        return DecisionResult(
            decided=decided,
            decision=decision,
            approval_id=approval.approval_id,
            migration_id=approval.migration_id,
            target_vm_name=approval.target_vm_name,
            wave=approval.wave,
            user=user,
            message=message,
        )

    try:
        service.decide(
            approval.approval_id,
            decision,
            user=user,
            reason=reason.strip(),
            is_member=is_member,
            is_requester=_mentions(approval.requested_by)
            if is_requester is None
            else lambda who: is_requester(who, approval.requested_by),
        )
    except ApprovalNotFoundError as exc:  # pragma: no cover - resolved just above
        raise OperatorUsageError(str(exc)) from None
    except ApprovalError as exc:
        message = str(exc)
        groups = [a for a in approval.approvers if a.startswith("S")]
        if isinstance(exc, NotAnApproverError) and groups and is_member is no_groups:
            message += (
                f" (the CLI cannot ask Slack who is in {', '.join(groups)}: a member decides "
                "in Slack, or a user the wave lists by ID decides here)"
            )
        return result(False, message)
    what = (
        f"{approval.target_vm_name} ({approval.wave}, {approval.migration_id}) "
        f"{'approved' if decision == 'APPROVED' else 'rejected'} by <@{user}> "
        f"[{approval.approval_id}]"
    )
    if decision == "APPROVED":
        return result(True, f"{what}: the cutover goes ahead")
    return result(True, f"{what}: {reason.strip()}; the migration rolls back")
