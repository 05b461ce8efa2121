"""Group approvals end to end on the embedded system (issue 15): the manifest's
``approval.scope``, one group message in the wave's channel, its buttons going to the real Bolt
app as Slack's signed requests, and each VM still decided, audited and cut over on its own."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bot.app import REASON_BLOCK, REASON_INPUT
from bot.group_approvals import (
    GROUP_APPROVE_READY_ACTION,
    GROUP_APPROVE_SELECTED_ACTION,
    GROUP_REJECT_ACTION,
    POSTING,
    SELECT_BLOCK,
    SELECT_INPUT,
    SELECT_MODAL,
    GroupState,
    GroupStore,
)
from bot.group_approvals import REJECT_MODAL as GROUP_REJECT_MODAL
from orchestration import wiring
from orchestration.gitops.requests import request_for
from orchestration.local.driver import MigrationDriver
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.pipeline import spec_of
from tests.support.waves import VmText, wave_text

pytestmark = pytest.mark.timeout(600)

# Long enough for twelve test launches to pass before the first approval expires.
FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=90)
APPROVER = "U0123456789"  # the only approver wave_text lists
MALLORY = "U0MALLORY01"  # in the workspace, in no list
ACCOUNT = "123456789012"


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        assert running.slack is not None
        running.slack.add_user(MALLORY, name="mallory", email="mallory@contoso.com")
        yield running


def _wave(name: str, vms: int) -> list[MigrationRequest]:
    """A wave of one application (``billing``) whose window is open now; no approval scope
    is written, so the default (application) applies."""
    start = datetime.now(UTC) - timedelta(hours=1)
    text = wave_text(
        name,
        [VmText(f"billing-{i:02d}", instance_type="t3.medium") for i in range(vms)],
        window=(start.isoformat(), (start + timedelta(hours=3)).isoformat()),
    )
    result = validate_files([ManifestFile(f"{name}.yaml", text)], now=datetime.now(UTC))
    assert result.valid, result.findings
    return [
        request_for(vm, commit="c" * 40, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]


def _groups() -> GroupStore:
    return GroupStore(
        boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(wiring.store()._table.name)
    )


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _all_ready(system: EmbeddedSystem, group: str, count: int) -> GroupState:
    """The group once ``count`` of its VMs are ready, in its state and in its Slack message
    (the state is saved before the message is edited)."""
    assert system.slack is not None
    slack = system.slack

    def ready() -> GroupState | None:
        state = _groups().get(group)
        if state is None or state.ts in {"", POSTING} or len(state.ready) != count:
            return None
        [shown] = [m for m in slack.channel_messages(state.channel) if m.ts == state.ts]
        payload = (shown.metadata or {}).get("event_payload") or {}
        return state if payload.get("ready") == count else None

    state: GroupState = _wait_for(f"{count} VMs of {group} ready in Slack", ready)
    return state


def test_an_application_approves_ten_selected_of_twelve_and_the_two_left_out_roll_back(
    system: EmbeddedSystem,
) -> None:
    # GIVEN an application of twelve VMs, approved as an application (the default scope)
    assert system.slack is not None
    requests = _wave("wave-9", 12)
    assert {r.effective_vm.approval_scope for r in requests if r.effective_vm} == {"application"}
    system.seed([spec_of(r) for r in requests])
    driver = MigrationDriver(system)
    driver.send(requests)
    state = _all_ready(system, "wave-9/billing", 12)

    # THEN one group message in the wave's channel, not one approval per thread
    group_messages = [
        m for m in system.slack.channel_messages(state.channel) if "Approval: billing" in m.text
    ]
    assert [m.ts for m in group_messages] == [state.ts]
    for thread in system.slack.threads(state.channel):
        assert not any("Approval needed" in reply.text for reply in thread.replies)
    assert "12 ready" in group_messages[0].text
    # (it was posted with the first batch of ready members and edited as the others became
    # ready, once per notifier batch; how many were still testing is counted from the
    # migrations recorded by then)
    first = re.search(r": (\d+) ready, (\d+) still testing", group_messages[0].versions[0].text)
    assert first is not None
    assert 1 <= int(first[1]) < 12
    assert int(first[2]) > 0
    assert len(group_messages[0].versions) < 12  # not one edit per member

    # WHEN the approver picks ten of the twelve in Approve selected
    system.slack.click_button(
        user=APPROVER,
        channel=state.channel,
        message_ts=state.ts,
        action_id=GROUP_APPROVE_SELECTED_ACTION,
    )
    [modal] = [v for v in system.slack.opened_views(APPROVER) if v.callback_id == SELECT_MODAL]
    [element] = [b["element"] for b in modal.view["blocks"] if b.get("block_id") == SELECT_BLOCK]
    assert element["type"] == "multi_static_select"  # twelve: more than checkboxes take
    assert len(element["options"]) == 12
    by_vm = {m.vm: m for m in state.ready}
    left_out = {"billing-03", "billing-07"}
    chosen = [m.approval_id for vm, m in by_vm.items() if vm not in left_out]
    response = system.slack.submit_view(
        user=APPROVER, view_id=modal.id, values={SELECT_BLOCK: {SELECT_INPUT: chosen}}
    )
    assert response.status == 200
    outcomes = driver.wait([r.migration_id for r in requests], approver=None, timeout=300)

    # THEN the ten cut over; the two left out waited until their approval expired, then
    # rolled back (the manifest's default: nobody decided them)
    store = wiring.store()
    for request in requests:
        outcome = outcomes[request.migration_id]
        approval_id = by_vm[request.target_vm_name].approval_id
        approval = store.approval(approval_id)
        assert approval is not None
        trail = store.audit_trail(approval_id)
        if request.target_vm_name in left_out:
            assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
            assert approval.status == "EXPIRED"
            assert [a["outcome"] for a in trail] == ["expired"]
        else:
            assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), (
                outcome.cause
            )
            assert (approval.status, approval.decided_by) == ("APPROVED", APPROVER)
            # AND each VM has its own audit entry, naming the group decision
            [entry] = trail
            assert entry["outcome"] == "decided"
            assert "group decision grp-" in entry["detail"]
            assert "on wave-9/billing" in entry["detail"]
            assert "approve selected 10 of 12 ready" in entry["detail"]
    decisions = {
        entry["detail"].split()[2]
        for request in requests
        if request.target_vm_name not in left_out
        for entry in store.audit_trail(by_vm[request.target_vm_name].approval_id)
    }
    assert len(decisions) == 1  # one group decision, ten per-VM entries
    # AND the group message ends showing what happened, without buttons
    final = _wait_for(
        "the group message's final form",
        lambda: (
            next(
                (
                    m
                    for m in system.slack.channel_messages(state.channel)
                    if m.ts == state.ts
                    and "10 approved" in m.text
                    and "expired" in json.dumps(m.blocks)
                ),
                None,
            )
            if system.slack
            else None
        ),
    )
    assert "0 ready" in final.text
    assert not any(b.get("type") == "actions" for b in final.blocks)


def test_a_group_click_twice_decides_once_and_a_non_approver_is_refused_per_vm(
    system: EmbeddedSystem,
) -> None:
    assert system.slack is not None
    assert system.api_calls is not None
    requests = _wave("wave-8", 3)
    system.seed([spec_of(r) for r in requests])
    driver = MigrationDriver(system)
    driver.send(requests)
    state = _all_ready(system, "wave-8/billing", 3)
    approval_ids = sorted(m.approval_id for m in state.ready)

    # WHEN someone who is no approver clicks Approve all ready
    system.slack.click_button(
        user=MALLORY,
        channel=state.channel,
        message_ts=state.ts,
        action_id=GROUP_APPROVE_READY_ACTION,
    )
    # THEN they are told once; every VM's refusal is audited; nothing is decided
    refusal = _wait_for(
        "the refusal",
        lambda: system.slack and [m.text for m in system.slack.ephemeral_messages(MALLORY)],
    )
    assert refusal == [
        f":warning: <@{MALLORY}> is not an approver of wave-8: nothing decided in "
        "`wave-8/billing` (3 VMs refused, each audited)."
    ]
    store = wiring.store()
    for approval_id in approval_ids:
        [entry] = store.audit_trail(approval_id)
        assert (entry["actor"], entry["outcome"]) == (MALLORY, "refused")
        assert "group decision grp-" in entry["detail"]
        approval = store.approval(approval_id)
        assert approval is not None
        assert approval.status == "PENDING"

    # WHEN the approver clicks Approve all ready twice (the second after the buttons went)
    for _ in range(2):
        system.slack.click_button(
            user=APPROVER,
            channel=state.channel,
            message_ts=state.ts,
            action_id=GROUP_APPROVE_READY_ACTION,
            value=state.group,
        )
    outcomes = driver.wait([r.migration_id for r in requests], approver=None, timeout=240)

    # THEN the confirmation named the count, the wave, the account and the window
    dialog = system.slack.confirm_dialogs(APPROVER)[0]
    assert dialog.title == "Cut over 3 VMs?"
    assert dialog.text.startswith(
        f"Approve the cutover of the 3 VMs ready now in billing (wave wave-8) into AWS "
        f"account {ACCOUNT} in us-east-1, in the window "
    )
    # AND every VM was decided once and cut over; the second click decided nothing
    assert all(o.status == "SUCCEEDED" for o in outcomes.values()), outcomes
    for approval_id in approval_ids:
        trail = store.audit_trail(approval_id)
        mine = [a for a in trail if a["actor"] == APPROVER]
        assert [a["outcome"] for a in mine].count("decided") == 1, mine
        # the second click either found nothing waiting, or lost each race to the first and
        # was refused (audited) as already decided
        assert all("already approved" in a["detail"] for a in mine if a["outcome"] == "refused"), (
            mine
        )
        assert [(a["actor"], a["outcome"]) for a in trail if a["actor"] == MALLORY] == [
            (MALLORY, "refused")
        ]
    answers = [m.text for m in system.slack.ephemeral_messages(APPROVER)]
    assert any(t.startswith(":white_check_mark: Approved ") for t in answers), answers
    assert any(
        "Nothing to decide in `wave-8/billing`" in t or "already approved" in t for t in answers
    ), answers
    successes = [
        n for op, n in system.api_calls.by_operation().items() if op.endswith(".SendTaskSuccess")
    ]
    assert successes == [3]


def test_a_group_rejected_with_a_reason_rolls_back_every_vm_waiting_each_audited(
    system: EmbeddedSystem,
) -> None:
    assert system.slack is not None
    requests = _wave("wave-7", 3)
    system.seed([spec_of(r) for r in requests])
    driver = MigrationDriver(system)
    driver.send(requests)
    state = _all_ready(system, "wave-7/billing", 3)

    # WHEN the approver clicks Reject and says why in its modal
    system.slack.click_button(
        user=APPROVER,
        channel=state.channel,
        message_ts=state.ts,
        action_id=GROUP_REJECT_ACTION,
        value=state.group,
    )
    [modal] = [
        v for v in system.slack.opened_views(APPROVER) if v.callback_id == GROUP_REJECT_MODAL
    ]
    response = system.slack.submit_view(
        user=APPROVER,
        view_id=modal.id,
        values={REASON_BLOCK: {REASON_INPUT: "test instances answer on the old DNS name"}},
    )
    assert response.status == 200
    outcomes = driver.wait([r.migration_id for r in requests], approver=None, timeout=240)

    # THEN every VM waiting was rejected on its own, with the reason, and rolled back
    store = wiring.store()
    for request in requests:
        outcome = outcomes[request.migration_id]
        assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
        approval_id = next(m.approval_id for m in state.ready if m.vm == request.target_vm_name)
        approval = store.approval(approval_id)
        assert approval is not None
        assert (approval.status, approval.decided_by) == ("REJECTED", APPROVER)
        assert approval.reason == "test instances answer on the old DNS name"
        [entry] = store.audit_trail(approval_id)
        assert entry["outcome"] == "decided"
        assert "group decision grp-" in entry["detail"]
        assert "on wave-7/billing" in entry["detail"]
    # AND the approver was told what was decided
    told = _wait_for(
        "the outcome",
        lambda: system.slack and [m.text for m in system.slack.ephemeral_messages(APPROVER)],
    )
    assert any("Rejected" in text and "3" in text for text in told), told
