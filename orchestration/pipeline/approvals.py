"""The approval gate: who may decide, exactly once, with an audit trail.

The gate's Step Functions task token is stored in DynamoDB under an approval ID and never
leaves AWS: Slack buttons and CLI commands carry only the approval ID. A decision is a
conditional write, so a double click decides once; every attempt, allowed or refused, is
audited. The Slack bot and ``wavepilot approve`` both decide through this service.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestration.adapters.event_bus import events_deferred
from orchestration.adapters.state_store import ApprovalRecord, AuditEntry
from orchestration.adapters.stepfunctions import StepFunctionsRefusedError, TaskNotWaitingError
from orchestration.clock import Clock
from orchestration.events import (
    ApprovalDecided,
    ApprovalRequested,
    HealthCheckResult,
    LaunchedInstance,
    PostLaunchActionResult,
    Step,
)
from orchestration.pipeline.errors import APPROVAL_REJECTED
from orchestration.pipeline.ports import ApprovalGate, ApprovalRecords, StatusReports
from orchestration.pipeline.spec import MigrationSpec

# What a person decides at an approval gate (events.ApprovalOutcome adds EXPIRED: no one did).
Decision = Literal["APPROVED", "REJECTED"]
# Whether a Slack user belongs to a user group (the bot asks Slack; the CLI cannot).
GroupMembership = Callable[[str, str], bool]


def no_groups(user: str, group: str) -> bool:
    return False


class ApprovalError(Exception):
    """A decision that was not taken; the message is what the user sees."""


class ApprovalNotFoundError(ApprovalError):
    pass


class ApprovalAlreadyDecidedError(ApprovalError):
    pass


class ApprovalExpiredError(ApprovalError):
    pass


class NotAnApproverError(ApprovalError):
    pass


class SelfApprovalError(ApprovalError):
    pass


@dataclass(frozen=True, slots=True)
class VerifiedTestLaunch:
    """What the verified test launch showed (the approver decides on it)."""

    instance: LaunchedInstance | None = None
    health_checks: tuple[HealthCheckResult, ...] = ()
    post_launch_actions: tuple[PostLaunchActionResult, ...] = ()

    @classmethod
    def from_step(cls, result: Mapping[str, Any] | None) -> VerifiedTestLaunch:
        """From ``VerifyTestLaunch``'s result (``$.testCheck``); empty if there is none."""
        if not result or not result.get("instanceId"):
            return cls()
        return cls(
            LaunchedInstance(
                instance_id=str(result["instanceId"]),
                private_ip=str(result.get("privateIp") or ""),
            ),
            tuple(HealthCheckResult.model_validate(c) for c in result.get("healthChecks", [])),
            tuple(
                PostLaunchActionResult.model_validate(a)
                for a in result.get("postLaunchActions", [])
            ),
        )


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    approval: ApprovalRecord
    decision: Decision
    user: str


@dataclass(frozen=True, slots=True)
class GroupDecision:
    """One click (or command) deciding several VMs of an approval group."""

    decision_id: str
    group: str
    user: str
    summary: str  # "approve all ready 10 of 10 ready"

    def describe(self) -> str:
        """What each VM's audit entry says about the group decision it was part of."""
        return f"group decision {self.decision_id} on {self.group} by {self.user}: {self.summary}"


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """What a group decision did, VM by VM."""

    decision: GroupDecision
    ready: int  # the group's approvals pending when the decision was taken
    decided: tuple[DecisionOutcome, ...]
    refused: tuple[tuple[ApprovalRecord, ApprovalError], ...]
    # Selected approvals that were no longer pending (decided or expired meanwhile).
    not_pending: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Taking:
    """One decision being taken: by whom, when, why, as part of which group decision."""

    decision: Decision
    user: str
    reason: str
    now: datetime
    group_decision: GroupDecision | None = None

    @property
    def action(self) -> str:
        return "approve" if self.decision == "APPROVED" else "reject"

    @property
    def context(self) -> str:
        """What each audit entry says of the group decision it was part of."""
        return self.group_decision.describe() if self.group_decision is not None else ""


# From this many VMs in one group decision, their decisions are written together
# (``decide_approvals``: a read and a transaction per 50 VMs, the audit entries in a batch:
# three calls, where each VM alone costs three, its decision, its event's number and its
# audit entry). A wave's approvers click as VMs become ready: many clicks decide two.
DECIDED_TOGETHER_FROM = 2


class ApprovalService:
    def __init__(
        self,
        store: ApprovalRecords,
        gate: ApprovalGate,
        reporter: StatusReports,
        clock: Clock,
    ) -> None:
        self._store = store
        self._gate = gate
        self._report = reporter
        self._clock = clock

    def request(
        self,
        spec: MigrationSpec,
        task_token: str,
        timeout_seconds: int,
        test_launch: VerifiedTestLaunch | None = None,
    ) -> ApprovalRecord:
        """Open the gate and announce it with what the approver needs to decide."""
        test_launch = test_launch or VerifiedTestLaunch()
        now = self._clock.now()
        approval = ApprovalRecord(
            approval_id=f"apv-{uuid.uuid4().hex[:16]}",
            migration_id=spec.migration_id,
            wave=spec.wave,
            target_vm_name=spec.target_vm_name,
            approvers=tuple(spec.approvers),
            requested_by=spec.requested_by,
            status="PENDING",
            expires_at=now + timedelta(seconds=timeout_seconds),
            requested_at=now,
            target_account_id=spec.target_account_id,
            target_region=spec.target_region,
            window_start=spec.window_start,
            window_end=spec.window_end,
            group=spec.approval_group,
            scope=spec.approval_scope if spec.approval_group else "vm",
            app_name=spec.app_name,
            correlation_id=spec.correlation_id,
            slack_channel=spec.slack_channel,
            callback_urls=tuple(spec.callback_urls),
        )
        self._store.create_approval(approval, task_token)
        self._report.step(
            spec,
            Step.AWAIT_APPROVAL,
            "WAITING",
            f"test launch verified; awaiting approval {approval.approval_id}",
        )
        self._report.emit(
            spec,
            ApprovalRequested,
            approval_id=approval.approval_id,
            approvers=list(approval.approvers),
            requested_by=approval.requested_by,
            expires_at=approval.expires_at,
            summary=(
                f"Cut over {spec.target_vm_name} ({spec.app_name}, {spec.wave}) "
                f"to {spec.instance_type}?"
            ),
            target_account_id=spec.target_account_id,
            target_region=spec.target_region,
            window_start=spec.window_start,
            window_end=spec.window_end,
            test_instance=test_launch.instance,
            health_checks=list(test_launch.health_checks),
            post_launch_actions=list(test_launch.post_launch_actions),
            approval_scope=approval.scope,
            approval_group=approval.group,
        )
        return approval

    def decide(
        self,
        approval_id: str,
        decision: Decision,
        *,
        user: str,
        reason: str = "",
        is_member: GroupMembership = no_groups,
        is_requester: Callable[[str], bool] = lambda _user: False,
        group_decision: GroupDecision | None = None,
        read: ApprovalRecord | None = None,
    ) -> DecisionOutcome:
        """Decide the approval, or raise an ApprovalError saying why not (and audit it).

        ``group_decision``: this is one VM of a group decision; its audit entries name it.
        ``read``: the approval as its caller just read it (a group's pending ones), not read
        again: the decision's conditional write still refuses one decided meanwhile.
        """
        now = self._clock.now()
        approval = read if read is not None else self._store.approval(approval_id)
        if approval is None:
            raise ApprovalNotFoundError(f"no approval {approval_id}")
        taking = _Taking(decision, user, reason, now, group_decision)
        self._check(approval, taking, is_member=is_member, is_requester=is_requester)
        token = self._store.decide_approval(
            approval_id, decision=decision, user=user, reason=reason, now=now
        )
        if token is None:  # lost the race to another click
            current = self._store.approval(approval_id) or approval
            raise self._refused(approval, taking, _already(current))
        return self._deliver(approval, taking, token)

    def _check(
        self,
        approval: ApprovalRecord,
        taking: _Taking,
        *,
        is_member: GroupMembership,
        is_requester: Callable[[str], bool],
    ) -> None:
        """Raise (audited) why ``taking`` may not decide ``approval``, if it may not."""
        user = taking.user
        if approval.status != "PENDING":
            raise self._refused(approval, taking, _already(approval))
        if taking.now >= approval.expires_at:
            raise self._refused(
                approval,
                taking,
                ApprovalExpiredError(
                    f"approval {approval.approval_id} expired at {approval.expires_at.isoformat()}"
                ),
            )
        if not is_listed(user, approval.approvers, is_member):
            raise self._refused(
                approval,
                taking,
                NotAnApproverError(f"<@{user}> is not an approver of {approval.wave}"),
            )
        if is_requester(user):
            raise self._refused(
                approval,
                taking,
                SelfApprovalError("you requested this change: someone else must approve it"),
            )

    def _refused(
        self, approval: ApprovalRecord, taking: _Taking, error: ApprovalError
    ) -> ApprovalError:
        self._store.audit(
            approval.approval_id,
            actor=taking.user,
            action=taking.action,
            outcome="refused",
            detail=_joined(taking.context, str(error)),
            now=taking.now,
        )
        return error

    def _deliver(
        self,
        approval: ApprovalRecord,
        taking: _Taking,
        token: str,
        *,
        sequence: int | None = None,
        audits: list[AuditEntry] | None = None,
    ) -> DecisionOutcome:
        """Tell the waiting execution a recorded decision, audit it and announce it
        (``ApprovalDecided``, numbered ``sequence`` if its write allocated one; the audit
        entry kept in ``audits`` if given, written by the caller with the others)."""
        user, decision, now = taking.user, taking.decision, taking.now
        try:
            if decision == "APPROVED":
                self._gate.send_task_success(token, {"decision": decision, "decidedBy": user})
            else:
                self._gate.send_task_failure(
                    token, error=APPROVAL_REJECTED, cause=taking.reason or f"rejected by {user}"
                )
        except TaskNotWaitingError as exc:
            raise self._refused(
                approval,
                taking,
                ApprovalExpiredError(f"approval {approval.approval_id} is no longer waiting"),
            ) from exc
        except StepFunctionsRefusedError as exc:
            # The gate never heard: the decision must not stand, or nobody could retry it.
            self._store.revert_decision(approval.approval_id, user=user)
            self._store.audit(
                approval.approval_id,
                actor=user,
                action=taking.action,
                outcome="failed",
                detail=str(exc),
                now=now,
            )
            raise
        decided = AuditEntry(
            approval.approval_id,
            user,
            taking.action,
            "decided",
            _joined(taking.context, taking.reason),
            now,
        )
        if audits is not None:
            audits.append(decided)
        else:
            self._store.audit(
                decided.approval_id,
                actor=decided.actor,
                action=decided.action,
                outcome=decided.outcome,
                detail=decided.detail,
                now=decided.at,
            )
        fields: dict[str, Any] = {
            "approval_id": approval.approval_id,
            "decision": decision,
            "decided_by": user,
            "reason": taking.reason,
            "approval_group": approval.group,
            "group_decision_id": taking.group_decision.decision_id if taking.group_decision else "",
        }
        if sequence is not None:  # allocated with the decision: the approval names it
            self._report.put_numbered(approval, ApprovalDecided, sequence, **fields)
            return DecisionOutcome(approval, decision, user)
        # Named and routed as the approval says (an approval stored before it kept that:
        # as the migration's record says).
        identity = approval if approval.correlation_id else self._store.get(approval.migration_id)
        if identity is not None:
            self._report.emit(identity, ApprovalDecided, **fields)
        return DecisionOutcome(approval, decision, user)

    def pending_in_group(self, group: str) -> list[ApprovalRecord]:
        """The group's approvals waiting now: the VMs whose test launch passed its checks
        and that nobody decided yet (``<wave>/`` lists every group of the wave)."""
        return self._store.pending_group_approvals(group)

    def decide_group(
        self,
        group: str,
        decision: Decision,
        *,
        user: str,
        reason: str = "",
        selected: Collection[str] | None = None,
        is_member: GroupMembership = no_groups,
        is_requester: Callable[[ApprovalRecord, str], bool] = lambda _approval, _user: False,
    ) -> GroupOutcome:
        """Decide every approval of ``group`` pending now (or those of them ``selected``, by
        approval ID), each through :meth:`decide`: its own token, checks and audit entry,
        which names this group decision. A VM whose approval is not pending at this moment
        (still testing, failed, decided, expired) is never covered."""
        ready = self.pending_in_group(group)
        chosen = [a for a in ready if selected is None or a.approval_id in selected]
        label = {"APPROVED": "approve", "REJECTED": "reject"}[decision]
        what = f"{label} all ready" if selected is None else f"{label} selected"
        group_decision = GroupDecision(
            decision_id=f"grp-{uuid.uuid4().hex[:16]}",
            group=group,
            user=user,
            summary=f"{what} {len(chosen)} of {len(ready)} ready",
        )
        decided: list[DecisionOutcome] = []
        refused: list[tuple[ApprovalRecord, ApprovalError]] = []
        taking = _Taking(decision, user, reason, self._clock.now(), group_decision)
        checked: list[ApprovalRecord] = []
        for approval in chosen:
            try:
                self._check(
                    approval,
                    taking,
                    is_member=is_member,
                    is_requester=functools.partial(is_requester, approval),
                )
            except ApprovalError as exc:
                refused.append((approval, exc))
            else:
                checked.append(approval)
        # Many VMs: their decisions written together, each with its event's sequence number
        # (before its execution resumes, so nothing it reports next is numbered before it);
        # the audit entries written together at the end, the ApprovalDecided events put ten
        # to a PutEvents call. A VM not decided together (its approval decided meanwhile,
        # its record moved, an approval stored before it named its migration) is decided
        # alone, as ever.
        together: Mapping[str, tuple[str, int]] = {}
        named = [a for a in checked if a.correlation_id]
        if len(named) >= DECIDED_TOGETHER_FROM:
            together = self._store.decide_approvals(
                [(a.approval_id, a.migration_id) for a in named],
                decision=decision,
                user=user,
                reason=reason,
                now=taking.now,
            )
        with events_deferred():
            told, refused_now = self._tell_each(
                checked, together, taking, is_member=is_member, is_requester=is_requester
            )
        decided.extend(told)
        refused.extend(refused_now)
        missing = tuple(sorted(set(selected or ()) - {a.approval_id for a in ready}))
        return GroupOutcome(group_decision, len(ready), tuple(decided), tuple(refused), missing)

    def _tell_each(
        self,
        checked: Sequence[ApprovalRecord],
        together: Mapping[str, tuple[str, int]],
        taking: _Taking,
        *,
        is_member: GroupMembership,
        is_requester: Callable[[ApprovalRecord, str], bool],
    ) -> tuple[list[DecisionOutcome], list[tuple[ApprovalRecord, ApprovalError]]]:
        """Tell each checked VM's execution its decision: those decided together (their
        token and event's sequence in ``together``) as they are, the others decided alone.
        If telling one fails (Step Functions refused, or did not answer), the VMs decided
        together and not told yet are pending again, as they would be had each been decided
        in turn, so that a new click can decide them; the error is raised."""
        decided: list[DecisionOutcome] = []
        refused: list[tuple[ApprovalRecord, ApprovalError]] = []
        audits: list[AuditEntry] = []
        untold = [a.approval_id for a in checked if a.approval_id in together]
        try:
            for approval in checked:
                try:
                    if approval.approval_id in together:
                        token, sequence = together[approval.approval_id]
                        outcome = self._deliver(
                            approval, taking, token, sequence=sequence, audits=audits
                        )
                    else:
                        outcome = self.decide(
                            approval.approval_id,
                            taking.decision,
                            user=taking.user,
                            reason=taking.reason,
                            is_member=is_member,
                            is_requester=functools.partial(is_requester, approval),
                            group_decision=taking.group_decision,
                            read=approval,
                        )
                    decided.append(outcome)
                except ApprovalError as exc:
                    refused.append((approval, exc))
                except StepFunctionsRefusedError:
                    untold = [i for i in untold if i != approval.approval_id]  # reverted
                    raise
                untold = [i for i in untold if i != approval.approval_id]
        except Exception:
            for approval_id in untold:
                self._store.revert_decision(approval_id, user=taking.user)
            raise
        finally:
            if audits:
                self._store.audit_many(audits)
        return decided, refused

    def expire(self, migration_id: str, reason: str = "") -> None:
        """Mark the migration's pending approval EXPIRED (its gate timed out, or an operator
        rolled the migration back while it waited) and say so."""
        approval_id = self._store.pending_approval_id(migration_id)
        now = self._clock.now()
        if approval_id is None:
            return
        if (
            self._store.decide_approval(
                approval_id,
                decision="EXPIRED",
                user="wavepilot",
                reason=reason or "timed out",
                now=now,
            )
            is None
        ):
            return  # decided meanwhile: nothing to expire
        self._store.audit(
            approval_id,
            actor="wavepilot",
            action="expire",
            outcome="expired",
            detail=reason or "timed out",
            now=now,
        )
        record = self._store.get(migration_id)
        approval = self._store.approval(approval_id)  # its group, for the group message
        if record is not None:
            self._report.emit(
                record,
                ApprovalDecided,
                approval_id=approval_id,
                decision="EXPIRED",
                decided_by="wavepilot",
                reason=reason or "no decision before the approval timed out",
                approval_group=approval.group if approval is not None else "",
            )


def is_listed(user: str, principals: Sequence[str], is_member: GroupMembership) -> bool:
    """Whether ``user`` is one of ``principals``: listed, or a member of a listed user group
    (``S...``). The rule of every list a wave names: approvers, operators."""
    if user in principals:
        return True
    return any(group.startswith("S") and is_member(user, group) for group in principals)


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _already(approval: ApprovalRecord) -> ApprovalAlreadyDecidedError:
    return ApprovalAlreadyDecidedError(
        f"already {approval.status.lower()} by <@{approval.decided_by}> at {approval.decided_at}"
    )
