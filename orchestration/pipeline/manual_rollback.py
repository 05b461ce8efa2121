"""An operator's rollback: stop the migration's execution and run the rollback on its own.

Step Functions cannot move a running execution to another state, so a requested rollback
stops the execution (``StopExecution``, which also ends a wait at the approval gate) and
starts a new execution of the same state machine with the original input plus
``rollbackRequest``; the definition sends such an execution straight to ``Rollback``, which
polls until nothing launched is left, as after any failure. Only the wave's operators may
ask (a listed user or a member of a listed user group); a finalized migration is refused,
because MGN cannot take back a finalized cutover. Every attempt is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestration.adapters.state_store import MigrationRecord
from orchestration.adapters.stepfunctions import ExecutionDoesNotExistError
from orchestration.clock import Clock
from orchestration.events import Step
from orchestration.execution_names import rollback_execution_name
from orchestration.pipeline.approvals import GroupMembership, is_listed, no_groups
from orchestration.pipeline.errors import ROLLBACK_REQUESTED
from orchestration.pipeline.ports import Executions, MigrationRecords

FINALIZED = "COMPLETED"
ROLLED_BACK = "ROLLED_BACK"


def operator_refusal(
    user: str, wave: str, operators: Sequence[str], is_member: GroupMembership
) -> str | None:
    """Why ``user`` may not act as an operator of ``wave`` (None: they may)."""
    if is_listed(user, operators, is_member):
        return None
    return f"<@{user}> is not an operator of {wave}; its operators are " + (
        ", ".join(operators) or "nobody"
    )


def operators_of(record: MigrationRecord, default_operators: list[str]) -> list[str]:
    """Who may act on a migration: its wave's operators (a hand-written request names none:
    the deployment's default approvers)."""
    vm = record.request.effective_vm
    return list(vm.operators) if vm is not None else list(default_operators)


class RollbackRequestError(Exception):
    """A rollback that was not started; the message says why and what to do."""


class NotAnOperatorError(RollbackRequestError):
    pass


@dataclass(frozen=True, slots=True)
class ManualRollbackStarted:
    migration_id: str
    execution_arn: str
    stopped_execution_arn: str | None


class RollbackService:
    def __init__(
        self,
        store: MigrationRecords,
        executions: Executions,
        state_machine_arn: str,
        clock: Clock,
        default_operators: list[str],
    ) -> None:
        self._store = store
        self._executions = executions
        self._state_machine_arn = state_machine_arn
        self._clock = clock
        self._default_operators = default_operators

    def operators(self, record: MigrationRecord) -> list[str]:
        return operators_of(record, self._default_operators)

    def check(
        self, migration_id: str, *, user: str, is_member: GroupMembership = no_groups
    ) -> MigrationRecord:
        """The migration, if ``user`` may roll it back now; else audit the refusal and raise
        saying why."""
        try:
            return self._check(migration_id, user=user, is_member=is_member)
        except RollbackRequestError as exc:
            self._store.audit_migration(
                migration_id,
                actor=user,
                action="rollback",
                outcome="refused",
                detail=str(exc),
                now=self._clock.now(),
            )
            raise

    def _check(
        self, migration_id: str, *, user: str, is_member: GroupMembership
    ) -> MigrationRecord:
        record = self._store.get(migration_id)
        if record is None:
            raise RollbackRequestError(f"no migration {migration_id}: check the ID")
        refusal = operator_refusal(user, record.wave, self.operators(record), is_member)
        if refusal is not None:
            raise NotAnOperatorError(refusal)
        return _rollable(record)

    def request(
        self,
        migration_id: str,
        *,
        user: str,
        reason: str,
        is_member: GroupMembership = no_groups,
    ) -> ManualRollbackStarted:
        if not reason.strip():
            raise RollbackRequestError("a rollback needs a reason (it goes in the thread)")
        record = self.check(migration_id, user=user, is_member=is_member)
        return self._start(
            record,
            actor=user,
            requested=f"requested by <@{user}>: {reason.strip()}",
            reason=reason.strip(),
        )

    def request_for_removal(
        self, record: MigrationRecord, *, actor: str, reason: str
    ) -> ManualRollbackStarted:
        """Roll back a migration whose VM was removed from the manifests (``pipeline.removal``).

        No operator list is checked: the merge of the reviewed pull request that removed the
        VM is the authorization, and ``actor`` (its author) is who is audited. Whether a
        removal may roll the migration back at all (not once its cutover started) is the
        caller's decision; the states no rollback can start from are refused (and audited) as
        for an operator."""
        try:
            _rollable(record)
        except RollbackRequestError as exc:
            self._store.audit_migration(
                record.migration_id,
                actor=actor,
                action="rollback",
                outcome="refused",
                detail=str(exc),
                now=self._clock.now(),
            )
            raise
        return self._start(record, actor=actor, requested=reason, reason=reason)

    def _start(
        self, record: MigrationRecord, *, actor: str, requested: str, reason: str
    ) -> ManualRollbackStarted:
        """Stop the migration's execution and start the one that rolls it back; ``requested``
        is the reason the thread shows (``RollbackStarted``), ``reason`` the audit's."""
        now = self._clock.now()
        migration_id = record.migration_id
        assert record.execution_arn is not None
        execution = self._executions.execution(record.execution_arn)
        stopped = None
        if execution.running:
            try:
                self._executions.stop(
                    record.execution_arn,
                    error=ROLLBACK_REQUESTED,
                    cause=f"rollback requested by {actor}: {reason}"[:32_000],
                )
                stopped = record.execution_arn
            except ExecutionDoesNotExistError:  # it ended meanwhile: roll back what it left
                pass
        request = {"requestedBy": actor, "reason": requested}
        payload = {**execution.input, "rollbackRequest": request}
        name = rollback_execution_name(migration_id, record.revision, now)
        arn = self._executions.start(self._state_machine_arn, name, payload)
        self._store.set_execution(migration_id, record.revision, arn, now)
        self._store.audit_migration(
            migration_id,
            actor=actor,
            action="rollback",
            outcome="started",
            detail=f"{reason} (stopped {stopped or 'nothing'}; started {arn})",
            now=now,
        )
        return ManualRollbackStarted(migration_id, arn, stopped)


def _rollable(record: MigrationRecord) -> MigrationRecord:
    """The record, if a rollback can start from where it stands; else why not."""
    if record.status == FINALIZED:
        raise RollbackRequestError(
            f"{record.target_vm_name} is finalized: the AWS instance is production and MGN "
            "cannot take a finalized cutover back. Roll back by hand (docs/RUNBOOK.md)."
        )
    if record.status == ROLLED_BACK:
        raise RollbackRequestError(f"{record.target_vm_name} is already rolled back")
    if record.step == Step.ROLLBACK:
        raise RollbackRequestError(f"{record.target_vm_name} is already rolling back")
    if not record.execution_arn:
        raise RollbackRequestError(
            f"{record.target_vm_name} has no execution yet: nothing to roll back"
        )
    return record
