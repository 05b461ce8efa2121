"""The group approval message as pure functions: folding member events, Block Kit by value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.group_approvals import (
    GROUP_APPROVE_READY_ACTION,
    GroupState,
    fold,
    group_message,
    select_modal,
)
from orchestration.events import ApprovalDecided, ApprovalRequested, MigrationFailed

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


def _common(migration_id: str, sequence: int) -> dict[str, object]:
    return {
        "migration_id": migration_id,
        "wave": "wave-1",
        "app_name": "intranet",
        "target_vm_name": f"vm-{migration_id[-1]}",
        "correlation_id": "c",
        "sequence": sequence,
        "timestamp": NOW,
    }


def _ready(migration_id: str, sequence: int = 10) -> ApprovalRequested:
    return ApprovalRequested.model_validate(
        {
            **_common(migration_id, sequence),
            "approval_id": f"apv-{migration_id[-1]}",
            "approvers": ["U07ALICE001"],
            "requested_by": "dana",
            "expires_at": NOW + timedelta(hours=1),
            "summary": "Cut over?",
            "target_account_id": "111122223333",
            "target_region": "us-east-1",
            "window_start": NOW,
            "window_end": NOW + timedelta(hours=6),
            "approval_scope": "application",
            "approval_group": "wave-1/intranet",
        }
    )


def _state() -> GroupState:
    return GroupState("wave-1/intranet", "wave-1", "intranet", size=4)


def test_members_move_from_testing_to_ready_failed_and_decided() -> None:
    state = fold(fold(_state(), _ready("mig-1")), _ready("mig-2"))
    assert [m.vm for m in state.ready] == ["vm-1", "vm-2"]
    assert state.testing == 2

    failed = MigrationFailed.model_validate(
        {**_common("mig-3", 7), "step": "VerifyTestLaunch", "error": "E", "cause": "port 22"}
    )
    decided = ApprovalDecided.model_validate(
        {
            **_common("mig-1", 11),
            "approval_id": "apv-1",
            "decision": "APPROVED",
            "decided_by": "U07ALICE001",
        }
    )
    state = fold(fold(state, failed), decided)

    assert [m.vm for m in state.ready] == ["vm-2"]
    assert (state.count("failed"), state.count("approved"), state.testing) == (1, 1, 1)
    # an older event of a member is dropped (at-least-once, out of order delivery)
    assert fold(state, _ready("mig-1", sequence=5)) == state


def test_a_failure_after_a_decision_does_not_change_what_the_group_shows() -> None:
    rejected = ApprovalDecided.model_validate(
        {**_common("mig-1", 11), "approval_id": "apv-1", "decision": "REJECTED", "decided_by": "U1"}
    )
    state = fold(fold(_state(), _ready("mig-1")), rejected)
    rolled = MigrationFailed.model_validate(
        {**_common("mig-1", 14), "step": "Rollback", "error": "E", "cause": "rejected"}
    )
    assert fold(state, rolled).members["mig-1"].status == "rejected"


def test_the_message_names_counts_and_its_approve_all_confirm_names_count_wave_account_window() -> (
    None
):
    state = fold(fold(_state(), _ready("mig-1")), _ready("mig-2"))
    message = group_message(state)

    assert message.text.startswith(
        "Approval: intranet (wave wave-1): 2 ready, 2 still testing, 0 failed"
    )
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    approve_all = actions["elements"][0]
    assert approve_all["action_id"] == GROUP_APPROVE_READY_ACTION
    assert approve_all["value"] == "wave-1/intranet"
    assert approve_all["confirm"]["text"]["text"] == (
        "Approve the cutover of the 2 VMs ready now in intranet (wave wave-1) into AWS account "
        "111122223333 in us-east-1, in the window 2026-12-05 20:00 to 2026-12-06 02:00 UTC?"
    )
    # nothing ready: no buttons
    empty = group_message(_state())
    assert not any(b["type"] == "actions" for b in empty.blocks)


def test_approve_selected_uses_checkboxes_up_to_ten_and_a_multi_select_up_to_a_hundred() -> None:
    def element(count: int) -> dict[str, object]:
        ready = [(f"apv-{i}", f"vm-{i:03d}") for i in range(count)]
        [block] = [b for b in select_modal("g", ready, "C1")["blocks"] if b["type"] == "input"]
        found: dict[str, object] = block["element"]
        return found

    assert element(10)["type"] == "checkboxes"
    assert element(11)["type"] == "multi_static_select"
    big = element(130)
    assert len(big["options"]) == 100  # type: ignore[arg-type]
    modal = select_modal("g", [(f"apv-{i}", f"vm-{i}") for i in range(130)], "C1")
    assert "30 more are ready" in str(modal["blocks"])
