"""Where migrations stand, as plain data: one migration with its approval and history, or a
wave's migrations one row each.

The terminal renders these (:mod:`orchestration.operator_render`), ``--format json`` and the
Slack bot's ``/wavepilot status`` read them; nothing here knows how they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestration.events import Step
from orchestration.operators.ids import OperatorUsageError, id_kind

if TYPE_CHECKING:
    from orchestration.adapters.state_store import (
        ApprovalRecord,
        MigrationRecord,
        MigrationStore,
    )


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

    @property
    def lane(self) -> tuple[str, str]:
        """(target account, Region) of the VM's wave; empty for a request that names none
        (it runs in the hub's account and MGN Region)."""
        vm = self.record.request.effective_vm
        return (vm.target_account_id, vm.target_region) if vm is not None else ("", "")

    @property
    def lane_text(self) -> str:
        account, region = self.lane
        return f"account {account}, {region}" if account else "the hub's account and Region"

    def as_json(self) -> dict[str, Any]:
        record, approval = self.record, self.approval
        return {
            "migrationId": record.migration_id,
            "wave": record.wave,
            "appName": record.app_name,
            "targetVmName": record.target_vm_name,
            "targetAccountId": self.lane[0] or None,
            "targetRegion": self.lane[1] or None,
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
        # The record (gsi1 projects it whole) holds its history: only a migration whose
        # steps were all kept by an older version needs them read.
        history = record.history or tuple(store.history(record.migration_id))
        last = StepEntry.from_item(history[-1]) if history else None
        pending = None
        if record.approval_id and record.step == Step.AWAIT_APPROVAL:
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
