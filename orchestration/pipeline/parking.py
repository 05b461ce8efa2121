"""Parked migrations (``onFailure: park``): a failure before the cutover waits for a person.

A test launch that failed, or whose checks did not pass, is cleaned up as a rollback would
(``Park``: the test instance terminated, the server ready for test again, nothing running),
then the execution waits at ``AwaitParkDecision`` on a task token stored in DynamoDB. The
migration's thread shows why, with **Retry** (the test launch starts again in the same
execution) and **Roll back**. Only the wave's operators decide (a listed user or a member of a
listed user group), exactly once (a conditional write), audited either way. Nobody deciding
within ``parkFor`` rolls the migration back (the task's timeout).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from orchestration.adapters.parks import ParkRecord, ParkStatus
from orchestration.adapters.stepfunctions import StepFunctionsRefusedError, TaskNotWaitingError
from orchestration.clock import Clock
from orchestration.events import MigrationParked, Step
from orchestration.pipeline.approvals import GroupMembership, no_groups
from orchestration.pipeline.manual_rollback import operator_refusal, operators_of
from orchestration.pipeline.ports import ApprovalGate, MigrationRecords, ParkRecords, StatusReports
from orchestration.pipeline.spec import MigrationSpec
from orchestration.pipeline.steps import failure_reason

ParkDecision = Literal["retry", "rollback"]
DECIDED_STATUS: dict[ParkDecision, ParkStatus] = {"retry": "RETRY", "rollback": "ROLLBACK"}


class ParkError(Exception):
    """A Retry or Roll back that was not taken; the message says why."""


@dataclass(frozen=True, slots=True)
class ParkDecided:
    migration_id: str
    target_vm_name: str
    decision: ParkDecision
    user: str


class ParkService:
    def __init__(  # noqa: PLR0917 - the service's six collaborators, as its siblings
        self,
        parks: ParkRecords,
        migrations: MigrationRecords,
        gate: ApprovalGate,
        reporter: StatusReports,
        clock: Clock,
        default_operators: list[str],
    ) -> None:
        self._parks = parks
        self._migrations = migrations
        self._gate = gate
        self._report = reporter
        self._clock = clock
        self._default_operators = default_operators

    def park(self, spec: MigrationSpec, task_token: str, state: Mapping[str, Any]) -> ParkRecord:
        """Store the token and say so in the thread: what failed, who may decide, and when
        the migration rolls back on its own."""
        now = self._clock.now()
        cleaned = state.get("park") or {}
        error = state.get("error") or {}
        seconds = int(cleaned.get("parkSeconds") or max(60, spec.park_for_minutes * 60))
        park = ParkRecord(
            park_id=f"prk-{uuid.uuid4().hex[:16]}",
            migration_id=spec.migration_id,
            status="PENDING",
            failed_step=str(cleaned.get("failedStep") or "the test launch"),
            error=str(error.get("Error", "error")),
            cause=failure_reason(error),
            parked_at=now,
            rollback_at=now + timedelta(seconds=seconds),
        )
        self._parks.create_park(park, task_token)
        self._report.step(
            spec,
            Step.PARK,
            "WAITING",
            f"parked after {park.failed_step} failed ({park.error}): {park.cause}; nothing is "
            f"running. Retry or Roll back (operators); it rolls back on its own at "
            f"{park.rollback_at:%Y-%m-%d %H:%M} UTC",
            migration_status="PARKED",
        )
        self._report.emit(
            spec,
            MigrationParked,
            park_id=park.park_id,
            step=park.failed_step,
            error=park.error,
            cause=park.cause,
            rollback_at=park.rollback_at,
            operators=list(spec.operators),
        )
        return park

    def decide(
        self,
        migration_id: str,
        decision: ParkDecision,
        *,
        user: str,
        reason: str = "",
        park_id: str | None = None,
        is_member: GroupMembership = no_groups,
    ) -> ParkDecided:
        """Retry or roll back a parked migration, or raise ``ParkError`` saying why not
        (audited either way). ``park_id``: the park a button was shown for; a later park of
        the same migration is not decided by an old button."""
        now = self._clock.now()

        def refuse(message: str) -> ParkError:
            self._migrations.audit_migration(
                migration_id,
                actor=user,
                action=f"park-{decision}",
                outcome="refused",
                detail=message,
                now=now,
            )
            return ParkError(message)

        record = self._migrations.get(migration_id)
        if record is None:
            raise ParkError(f"no migration {migration_id}: check the ID")
        operators = operators_of(record, self._default_operators)
        refusal = operator_refusal(user, record.wave, operators, is_member)
        if refusal is not None:
            raise refuse(refusal)
        park = self._parks.park(migration_id)
        if park is None:
            raise refuse(f"{record.target_vm_name} is not parked")
        if park_id is not None and park.park_id != park_id:
            raise refuse(
                f"this button is from an earlier park of {record.target_vm_name}; "
                "use the newest message in its thread"
            )
        if park.status != "PENDING":
            raise refuse(_closed(record.target_vm_name, park))
        why = reason.strip()
        token = self._parks.decide_park(
            migration_id,
            park.park_id,
            decision=DECIDED_STATUS[decision],
            user=user,
            reason=why,
            now=now,
        )
        if token is None:  # another click won
            current = self._parks.park(migration_id) or park
            raise refuse(_closed(record.target_vm_name, current))
        said = f"rolled back by <@{user}> while parked" + (f": {why}" if why else "")
        try:
            self._gate.send_task_success(
                token,
                {"decision": decision, "decidedBy": user, "reason": said, "parkId": park.park_id},
            )
        except TaskNotWaitingError:
            raise refuse(
                f"{record.target_vm_name} is no longer parked (it timed out or was rolled back)"
            ) from None
        except StepFunctionsRefusedError as exc:
            self._parks.revert_park_decision(migration_id, park.park_id, user=user)
            self._migrations.audit_migration(
                migration_id,
                actor=user,
                action=f"park-{decision}",
                outcome="failed",
                detail=str(exc),
                now=now,
            )
            raise
        self._migrations.audit_migration(
            migration_id,
            actor=user,
            action=f"park-{decision}",
            outcome="decided",
            detail=why or f"{decision} of park {park.park_id}",
            now=now,
        )
        if decision == "retry":
            spec = MigrationSpec.from_request(
                record.request,
                record.revision,
                record.correlation_id,
                default_approvers=self._default_operators,
            )
            self._report.step(
                spec,
                Step.PARK,
                "SUCCEEDED",
                f"retry by <@{user}>: the test launch starts again" + (f" ({why})" if why else ""),
                migration_status="RUNNING",
            )
        return ParkDecided(migration_id, record.target_vm_name, decision, user)

    def expire(self, migration_id: str, reason: str) -> None:
        """Close the migration's pending park (``parkFor`` ran out, or an operator's rollback
        stopped its execution) so that no button decides it any more."""
        park = self._parks.park(migration_id)
        if park is None or park.status != "PENDING":
            return
        self._parks.decide_park(
            migration_id,
            park.park_id,
            decision="EXPIRED",
            user="wavepilot",
            reason=reason,
            now=self._clock.now(),
        )


def _closed(vm: str, park: ParkRecord) -> str:
    if park.status == "EXPIRED":
        return f"{vm} is no longer parked: {park.reason or 'its time ran out'}"
    what = {"RETRY": "retried", "ROLLBACK": "rolled back"}.get(park.status, park.status.lower())
    return f"{vm} was already {what} by <@{park.decided_by}>"
