"""Finalize now: an operator cuts a ``finalizeAfter`` hold short.

During the hold the source keeps replicating and a rollback can still return to it. Once the
team is sure (the application owners signed off, the batch jobs ran), an operator may end the
hold early: the held execution looks at the migration's record every few minutes
(``CheckFinalizeHold``) and goes on to MGN's ``FinalizeCutover`` when it finds the request.
Only the wave's operators may ask, only while the cutover is held (a conditional write on the
record's step), and every attempt is audited: finalizing is the one step with no way back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orchestration.adapters.state_store import MigrationRecord
from orchestration.clock import Clock
from orchestration.pipeline.approvals import GroupMembership, no_groups
from orchestration.pipeline.manual_rollback import FINALIZED, operator_refusal, operators_of
from orchestration.pipeline.ports import MigrationRecords


class FinalizeRecords(MigrationRecords, Protocol):
    def request_finalize(self, migration_id: str, *, user: str, now: datetime) -> bool:
        """Recorded only while the cutover is held; False if it is not."""
        ...


class FinalizeNowError(Exception):
    """A finalize-now request that was not taken; the message says why."""


@dataclass(frozen=True, slots=True)
class FinalizeRequested:
    migration_id: str
    target_vm_name: str
    user: str


class FinalizeNowService:
    def __init__(self, store: FinalizeRecords, clock: Clock, default_operators: list[str]) -> None:
        self._store = store
        self._clock = clock
        self._default_operators = default_operators

    def check(
        self, migration_id: str, *, user: str, is_member: GroupMembership = no_groups
    ) -> MigrationRecord:
        """The migration, if ``user`` may finalize it now; else audit the refusal and raise
        saying why (a confirmation is asked only of who may confirm)."""
        try:
            return self._check(migration_id, user=user, is_member=is_member)
        except FinalizeNowError as exc:
            self._audit(migration_id, user, "refused", str(exc))
            raise

    def request(
        self,
        migration_id: str,
        *,
        user: str,
        reason: str = "",
        is_member: GroupMembership = no_groups,
    ) -> FinalizeRequested:
        record = self.check(migration_id, user=user, is_member=is_member)
        if not self._store.request_finalize(migration_id, user=user, now=self._clock.now()):
            message = (
                f"{record.target_vm_name} is not held before FinalizeCutover now: only a "
                "verified cutover waiting for its finalizeAfter can be finalized early"
            )
            self._audit(migration_id, user, "refused", message)
            raise FinalizeNowError(message)
        self._audit(migration_id, user, "requested", reason.strip() or "finalize now")
        return FinalizeRequested(migration_id, record.target_vm_name, user)

    def _check(
        self, migration_id: str, *, user: str, is_member: GroupMembership
    ) -> MigrationRecord:
        record = self._store.get(migration_id)
        if record is None:
            raise FinalizeNowError(f"no migration {migration_id}: check the ID")
        operators = operators_of(record, self._default_operators)
        refusal = operator_refusal(user, record.wave, operators, is_member)
        if refusal is not None:
            raise FinalizeNowError(refusal)
        if record.status == FINALIZED:
            raise FinalizeNowError(f"{record.target_vm_name} is finalized already")
        return record

    def _audit(self, migration_id: str, user: str, outcome: str, detail: str) -> None:
        self._store.audit_migration(
            migration_id,
            actor=user,
            action="finalize-now",
            outcome=outcome,
            detail=detail,
            now=self._clock.now(),
        )
