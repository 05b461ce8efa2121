"""Deciding an approval gate, as the CLI and the Slack bot's ``/wavepilot`` commands do.

Decisions go through :class:`~orchestration.pipeline.approvals.ApprovalService`, as the
bot's buttons do: the approver check, the self-approval check, exactly-once decisions, expiry
and the audit trail all apply. An operator may name the approval (``apv-...``) or its
migration (``mig-...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestration.operators.ids import (
    OperatorFailedError,
    OperatorUsageError,
    check_reason,
    check_slack_user,
    id_kind,
)
from orchestration.pipeline.approvals import (
    ApprovalError,
    ApprovalNotFoundError,
    Decision,
    NotAnApproverError,
    no_groups,
)

if TYPE_CHECKING:
    from orchestration.adapters.state_store import ApprovalRecord, MigrationStore
    from orchestration.pipeline.approvals import ApprovalService, GroupMembership


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What came of a decision: ``decided`` is false when the approval service refused it
    (not an approver, already decided, expired), and ``message`` says what happened."""

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
    check_reason(decision, reason)
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
