"""A VM removed from the manifests: what its cancel (``publish --cancel-removed``) does.

``decide_cancel`` is the decision, pure, from where the migration stands:

- **Running, its cutover not started** (any step up to ``PrepareCutover``, or parked): rolled
  back, as an operator's rollback does it (its execution stopped, a rollback execution
  started), with the reason "removed from the manifests in <commit> (<file>) by <author>".
- **Cutover started** (``StartCutover``, ``VerifyCutover``, held or finalizing in
  ``FinalizeCutover``), or at a step this version does not know: left as it is, and the
  thread is told. Rolling production back because a line of YAML was deleted would be a
  footgun; an operator who means it runs ``/wavepilot rollback``.
- **Finalized, rolled back, never started**: nothing to stop (a migration never started is
  ended: it never starts later).
- **A cancel of another revision than the one recorded**: nothing is done, and the thread is
  told. The cancel names the revision the VM had when it was removed; another one recorded
  means a publish was missed, or the VM came back since (a newer merge): which is newer
  cannot be told here, and stopping a migration is not done on a guess.
- **Unknown migration**: recorded in its audit trail, nothing else.

Who may: the merge of the reviewed pull request that removed the VM is the authorization (as
it is for adding one); no operator list is checked. The actor audited is the commit's author.

MGN's grouping follows once nothing runs: the server leaves the application ``<wave>/<app>``
(which is archived, with its wave, when that leaves them empty; ``mgn_grouping``). The
ingress does it at once when nothing runs; a rollback is asynchronous, so the record keeps
the removal (``removedFromManifests``) and the rollback's end does it
(``RemovalService.ungroup_after_rollback``), also for a rollback that was already under way
or that ends a cut-over VM's migration later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestration.adapters.errors import TransientError
from orchestration.adapters.lanes import LaneError
from orchestration.adapters.mgn import (
    MgnError,
    MgnNotInitializedError,
    MgnThrottledError,
    SourceServerNotFoundError,
)
from orchestration.adapters.state_store import MigrationRecord, MigrationStore
from orchestration.adapters.stepfunctions import ExecutionDoesNotExistError
from orchestration.clock import Clock
from orchestration.events import MigrationStatusUpdated, Step
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.manual_rollback import (
    FINALIZED,
    ROLLED_BACK,
    RollbackRequestError,
    RollbackService,
)
from orchestration.pipeline.mgn_grouping_sync import MgnGroupingSync
from orchestration.pipeline.ports import Executions, Lanes, StatusReports
from orchestration.pipeline.resolution import resolve_source_server
from orchestration.pipeline.spec import MigrationSpec

# The status of a migration cancelled before its execution ever started (it never will).
CANCELLED = "CANCELLED"
# The steps of a migration whose cutover has not started: a removal rolls these back.
BEFORE_CUTOVER: frozenset[str] = frozenset(
    {
        Step.INTAKE,
        Step.VALIDATE_INPUT,
        Step.PREPARE_SOURCE,
        Step.WAIT_FOR_REPLICATION,
        Step.START_TEST_LAUNCH,
        Step.VERIFY_TEST_LAUNCH,
        Step.AWAIT_APPROVAL,
        Step.PREPARE_CUTOVER,
        Step.PARK,
    }
)
# The key of a status event's ``data`` that marks it as a removal's report (the bot replies).
REMOVED_KEY = "removedFromManifests"


class CancelOutcome(enum.StrEnum):
    ROLL_BACK = "rollback-started"  # running before its cutover: its rollback is started
    ROLLING_BACK = "rolling-back"  # rolling back already: its end ungroups the server
    LEFT_CUT_OVER = "left-cut-over"  # its cutover started: left as it is, told
    NOT_STARTED = "not-started"  # recorded, never started: ended, it never starts
    FINALIZED = "finalized"  # migrated: nothing to stop
    ENDED = "ended"  # rolled back (or cancelled) already: nothing to stop
    OTHER_REVISION = "other-revision"  # the cancel is not of the recorded revision
    UNKNOWN = "unknown"  # no such migration: recorded only


@dataclass(frozen=True, slots=True)
class CancelDecision:
    outcome: CancelOutcome
    why: str  # a clause: what the migration's state is, for the thread and the audit

    @property
    def ungroups_now(self) -> bool:
        """Nothing runs: the server can leave MGN's application at once (by the ingress)."""
        return self.outcome in {
            CancelOutcome.NOT_STARTED,
            CancelOutcome.FINALIZED,
            CancelOutcome.ENDED,
        }

    @property
    def kept_on_record(self) -> bool:
        """The removal is kept on the record, for a rollback's end to ungroup the server."""
        return self.outcome not in {CancelOutcome.OTHER_REVISION, CancelOutcome.UNKNOWN}


def decide_cancel(  # noqa: PLR0911 - one answer per state
    status: str | None, step: str, *, has_execution: bool, same_revision: bool
) -> CancelDecision:
    """What a cancel does to a migration that stands at ``status`` / ``step`` (``status``
    None: no migration is recorded); ``same_revision``: the cancel names the revision
    recorded."""
    if status is None:
        return CancelDecision(CancelOutcome.UNKNOWN, "no such migration was ever requested")
    if not same_revision:
        return CancelDecision(
            CancelOutcome.OTHER_REVISION,
            "the migration runs another revision than the one removed (a publish missed, or "
            "the VM back in the manifests since): it is not stopped",
        )
    if status == FINALIZED:
        return CancelDecision(CancelOutcome.FINALIZED, "it is finalized: nothing to stop")
    if status in {ROLLED_BACK, CANCELLED}:
        ended = "rolled back" if status == ROLLED_BACK else "cancelled"
        return CancelDecision(CancelOutcome.ENDED, f"it is {ended} already: nothing to stop")
    if not has_execution:
        return CancelDecision(
            CancelOutcome.NOT_STARTED, "it never started: nothing to stop, and it never starts"
        )
    if step in BEFORE_CUTOVER:
        return CancelDecision(
            CancelOutcome.ROLL_BACK, f"at {step}, before its cutover: it is rolled back"
        )
    if step == Step.ROLLBACK:
        return CancelDecision(CancelOutcome.ROLLING_BACK, "it is rolling back already")
    return CancelDecision(
        CancelOutcome.LEFT_CUT_OVER,
        f"its cutover has started ({step}): a removal does not roll a cutover back, it goes "
        "on. If it must not, roll it back before it finalizes (`/wavepilot rollback "
        "<migration> <reason>`); to keep it, put the VM back in the manifests",
    )


def removal_reason(request: MigrationRequest) -> str:
    """Why: 'removed from the manifests in <commit> (<file>) by <author>' (the rollback's
    reason in the thread, the audit's detail)."""
    provenance = request.provenance
    if provenance is None:  # intake refuses such a cancel; said plainly all the same
        return "removed from the manifests (a cancel request that names no commit)"
    # The name without the address: "Ann <ann@contoso.com>" would be a link in Slack's text
    # (the audit keeps the whole author, ``removal_actor``).
    name = provenance.author.split(" <", 1)[0].strip()
    by = f" by {name}" if name else ""
    return (
        f"removed from the manifests in {provenance.commit[:12]} ({provenance.manifest_path}){by}"
    )


def removal_actor(request: MigrationRequest) -> str:
    """Who the audit names: the commit's author (the merge authorized the removal)."""
    provenance = request.provenance
    if provenance is None:
        return "publish"
    return provenance.author or f"commit {provenance.commit[:12]}"


class RemovalService:
    """Acts on a cancel (the ingress) and finishes it after a rollback (the rollback's end)."""

    def __init__(
        self,
        *,
        store: MigrationStore,
        rollbacks: RollbackService,
        executions: Executions,
        reporter: StatusReports,
        lanes: Lanes,
        grouping: MgnGroupingSync,
        clock: Clock,
    ) -> None:
        self._store = store
        self._rollbacks = rollbacks
        self._executions = executions
        self._reporter = reporter
        self._lanes = lanes
        self._grouping = grouping
        self._clock = clock

    def cancel(self, request: MigrationRequest, revision: str) -> dict[str, Any]:
        """Act on one cancel (once per migration and revision: the ingress's idempotency)."""
        reason = removal_reason(request)
        actor = removal_actor(request)
        record = self._with_earlier_execution(self._store.get(request.migration_id))
        decision = decide_cancel(
            record.status if record else None,
            record.step if record else "",
            has_execution=bool(record and record.execution_arn),
            same_revision=record is not None and record.revision == revision,
        )
        if record is None:
            self._audit(request.migration_id, actor, decision, reason)
            return {"outcome": decision.outcome.value}
        if decision.kept_on_record:
            self._store.mark_removed(record.migration_id, record.revision, reason, self._now())
        done = decision.why
        if decision.outcome is CancelOutcome.ROLL_BACK:
            try:
                self._rollbacks.request_for_removal(record, actor=actor, reason=reason)
            except RollbackRequestError as exc:  # it moved on meanwhile (ended, say): told
                done = f"not rolled back: {exc}"
            else:
                self._audit(record.migration_id, actor, decision, f"{reason}: {done}")
                # The rollback's own events tell the thread (RollbackStarted, the reason).
                return {"outcome": decision.outcome.value}
        grouping = ""
        if decision.ungroups_now:
            spec = MigrationSpec.from_request(record.request, record.revision, "removal")
            try:
                grouping = self.ungroup(spec)
            except (MgnThrottledError, TransientError):
                raise  # the record fails, SQS delivers it again: nothing was said yet
            except MgnError as exc:  # refused (a role without the grouping actions, say)
                grouping = _by_hand(spec, exc)
        if decision.outcome is CancelOutcome.NOT_STARTED:
            self._reporter.step(
                MigrationSpec.from_request(record.request, record.revision, record.correlation_id),
                Step.INTAKE,
                "SKIPPED",
                _told(record, reason, done, grouping),
                migration_status=CANCELLED,
                removedFromManifests=reason,  # REMOVED_KEY
            )
        else:
            self._reporter.emit(
                record,
                MigrationStatusUpdated,
                step=Step.INTAKE,
                status="SKIPPED",
                message=_told(record, reason, done, grouping),
                data={REMOVED_KEY: reason},
            )
        self._audit(record.migration_id, actor, decision, f"{reason}: {done}{_clause(grouping)}")
        return {"outcome": decision.outcome.value}

    def _with_earlier_execution(self, record: MigrationRecord | None) -> MigrationRecord | None:
        """The record, as running the execution of an earlier revision if one still runs.

        A revision recorded while the previous one's execution runs waits for it
        (``start_migration``): the record names no execution of its own, but the migration
        runs all the same, and the removal is of that VM. Its cancel acts on that execution
        (rolled back, or left at its cutover) rather than taking the VM for never started."""
        if record is None or record.execution_arn or not record.last_execution_arn:
            return record
        try:
            earlier = self._executions.execution(record.last_execution_arn)
        except ExecutionDoesNotExistError:
            return record
        if not earlier.running:
            return record
        return replace(record, execution_arn=earlier.execution_arn)

    def ungroup(self, spec: MigrationSpec) -> str:
        """Take the removed VM's server out of its MGN application (and archive what that
        left empty); says what was done, or why nothing was. Throttling and transient errors
        are raised (the caller's retry); a lane or server that is not there is said."""
        try:
            server = resolve_source_server(self._lanes.for_spec(spec).mgn, spec.source)
            done = self._grouping.remove(spec, server)
        except SourceServerNotFoundError:
            return "its source server is not in MGN: MGN's grouping is unchanged"
        except (LaneError, MgnNotInitializedError) as exc:
            return f"MGN's grouping is unchanged (the lane cannot be used: {exc})"
        if not done:
            return "its source server is in no application of this wave in MGN"
        return "in MGN: " + ", ".join(done)

    def ungroup_after_rollback(self, spec: MigrationSpec, record: MigrationRecord) -> None:
        """The rollback of a migration whose VM was removed has ended: its server leaves
        MGN's application now, and the thread is told. Never fails the rollback: what could
        not be done is said, for a person to do in MGN's console."""
        reason = record.removed_from_manifests or ""
        try:
            grouping = self.ungroup(spec)
        except (MgnError, LaneError, TransientError) as exc:
            grouping = _by_hand(spec, exc)
        self._reporter.emit(
            spec,
            MigrationStatusUpdated,
            step=Step.ROLLBACK,
            status="SUCCEEDED",
            message=f"{record.target_vm_name} was {reason} and is rolled back; {grouping}",
            data={REMOVED_KEY: reason},
        )

    def _audit(self, migration_id: str, actor: str, decision: CancelDecision, detail: str) -> None:
        self._store.audit_migration(
            migration_id,
            actor=actor,
            action="cancel-removed",
            outcome=decision.outcome.value,
            detail=detail,
            now=self._now(),
        )

    def _now(self) -> datetime:
        return self._clock.now()


def _by_hand(spec: MigrationSpec, error: Exception) -> str:
    return (
        f"MGN's grouping could not be changed ({error}): take the server out of application "
        f"{spec.wave}/{spec.app_name} in MGN's console"
    )


def _told(record: MigrationRecord, reason: str, done: str, grouping: str) -> str:
    return f"{record.target_vm_name} was {reason}: {done}{_clause(grouping)}"


def _clause(text: str) -> str:
    return f"; {text}" if text else ""
