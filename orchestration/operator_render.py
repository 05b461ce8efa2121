"""The operator commands' status, drawn for a terminal with ``rich``.

Only the terminal CLI (:mod:`orchestration.operator_cli`) imports this: the data comes from
:mod:`orchestration.operators`, which the Slack Lambda shares without loading ``rich``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from orchestration.adapters.state_store import ApprovalRecord
    from orchestration.operators import MigrationStatus, WaveStatus


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
    """Facts, the commands that decide a pending approval, the step history, the audit trail.

    ``now`` says how far off the approval's expiry is; ``local`` adds ``--local`` to the
    commands it suggests."""
    record = status.record
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    step = record.step + (f" ({status.step_status})" if status.step_status else "")
    for label, value in (
        ("Wave", record.wave),
        ("Application", record.app_name),
        ("VM", record.target_vm_name),
        ("Target", status.lane_text),
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
    """One row per migration, with its pending approval; counts by status below."""
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
