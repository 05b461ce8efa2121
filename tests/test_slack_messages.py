"""The approval message and the cutover confirmations, by value: what an approver sees before a
production cutover, within Block Kit's limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from slack_sdk.models.blocks import Block, ButtonElement

from bot import commands
from bot.directory import SlackDirectory
from bot.services import BotServices
from bot.threads import (
    APPROVE_ACTION,
    PARK_RETRY_ACTION,
    PARK_ROLLBACK_ACTION,
    REJECT_ACTION,
    ThreadState,
    advance,
    approval_request_message,
    cutover_confirm,
    cutover_question,
    root_message,
)
from orchestration.adapters.state_store import ApprovalRecord, MigrationStore
from orchestration.events import ApprovalRequested, MigrationParked, MigrationStatusUpdated
from orchestration.local.slack.web_api import confirm_problem
from orchestration.pipeline.approvals import (
    ApprovalAlreadyDecidedError,
    ApprovalService,
    VerifiedTestLaunch,
)
from orchestration.pipeline.finalize_now import FinalizeNowService
from orchestration.pipeline.manual_rollback import RollbackService
from orchestration.pipeline.parking import ParkService
from orchestration.pipeline.wave_control import WaveControlService

EST = timezone(timedelta(hours=-5))
WINDOW_START = datetime(2026, 12, 5, 20, 0, tzinfo=EST)
WINDOW_END = datetime(2026, 12, 6, 2, 0, tzinfo=EST)
WINDOW_TEXT = "2026-12-05 20:00 to 2026-12-06 02:00 UTC-05:00"


def _event(**changes: Any) -> ApprovalRequested:
    fields: dict[str, Any] = {
        "migration_id": "mig-0123456789abcdef",
        "wave": "wave-1",
        "app_name": "intranet",
        "target_vm_name": "intranet-web-01",
        "correlation_id": "corr-1",
        "sequence": 12,
        "timestamp": datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        "approval_id": "apv-0123456789abcdef",
        "approvers": ["U07ALICE001", "S07MIGLEADS"],
        "requested_by": "Dana Smith <dana@contoso.com>",
        "expires_at": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        "summary": "Cut over intranet-web-01 (intranet, wave-1) to t3.medium?",
        "target_account_id": "111122223333",
        "target_region": "us-east-1",
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
        "test_instance": {"instanceId": "i-0a1b2c3d4e5f60718", "privateIp": "10.0.1.17"},
        "health_checks": [
            {
                "type": "http",
                "target": "http://10.0.1.17:80/healthz",
                "passed": True,
                "detail": "HTTP 200 (expected 200)",
            },
            {"type": "tcp", "target": "10.0.1.17:5432", "passed": False, "detail": "a <b> & c"},
        ],
    }
    fields.update(changes)
    return ApprovalRequested.model_validate(fields)


def _buttons(blocks: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


def _mrkdwn(blocks: tuple[dict[str, Any], ...]) -> str:
    texts = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
    return "\n".join(texts)


def test_approve_opens_a_confirmation_naming_vm_wave_account_region_and_window() -> None:
    # GIVEN the gate's event WHEN its message is built
    message = approval_request_message(_event())

    # THEN Approve carries Slack's confirmation dialog, and Reject does not need one
    buttons = _buttons(message.blocks)
    assert buttons[APPROVE_ACTION]["value"] == "apv-0123456789abcdef"
    assert "confirm" not in buttons[REJECT_ACTION]
    assert buttons[APPROVE_ACTION]["confirm"] == {
        "title": {"type": "plain_text", "text": "Cut over intranet-web-01?"},
        "text": {
            "type": "plain_text",
            "text": (
                "Approve the cutover of intranet-web-01 (wave wave-1) into AWS account "
                f"111122223333 in us-east-1, in the window {WINDOW_TEXT}?"
            ),
        },
        "confirm": {"type": "plain_text", "text": "Approve cutover"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    }


def test_the_message_shows_what_the_approver_decides_on() -> None:
    message = approval_request_message(_event())

    shown = _mrkdwn(message.blocks)
    for fact in (
        "*VM*\nintranet-web-01",
        "*Application / wave*\nintranet / wave-1",
        "*Target account / Region*\n`111122223333` us-east-1",
        "*Test instance*\n`i-0a1b2c3d4e5f60718` at `10.0.1.17`",
        # mrkdwn's control characters escaped: the author's address is not swallowed as a link
        "*Requested by*\nDana Smith &lt;dana@contoso.com&gt;",
        ":white_check_mark: http `http://10.0.1.17:80/healthz` passed: HTTP 200 (expected 200)",
        ":x: tcp `10.0.1.17:5432` failed: a &lt;b&gt; &amp; c",
        "<@U07ALICE001>, <!subteam^S07MIGLEADS>",
    ):
        assert fact in shown, fact
    # the window in each reader's time zone, with the manifest's times as the fallback
    assert "<!date^1796518800^{date_short_pretty} {time}|2026-12-05T20:00:00-05:00> to " in shown
    # AND the notification text (what screen readers and notifications say) has the essentials
    assert message.text == (
        "Approval needed: Cut over intranet-web-01 (intranet, wave-1) to t3.medium? Test "
        "instance i-0a1b2c3d4e5f60718 (10.0.1.17), health checks 1/2 passed; window "
        f"{WINDOW_TEXT}. Approvers: <@U07ALICE001>, <!subteam^S07MIGLEADS>"
    )


def test_the_blocks_are_within_block_kit_limits_even_for_the_longest_names() -> None:
    # GIVEN the longest names a manifest allows
    event = _event(target_vm_name="v" * 63, wave="w" * 63, app_name="a" * 63)

    message = approval_request_message(event)

    # THEN Slack's own SDK models accept every block and the Approve button's dialog
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    approve = _buttons(message.blocks)[APPROVE_ACTION]
    ButtonElement(**approve).validate_json()
    confirm = approve["confirm"]
    assert len(confirm["title"]["text"]) <= 100
    assert len(confirm["text"]["text"]) <= 300
    assert confirm["text"]["text"].endswith(f"in the window {WINDOW_TEXT}?")
    # AND the local Slack (which checks as slack.com does) has nothing to refuse
    assert confirm_problem(confirm) is None
    # AND past the limit, the text is clipped rather than refused by Slack
    huge = cutover_confirm(replace(_record(), target_vm_name="v" * 400))
    assert len(huge["title"]["text"]) == 100
    assert len(huge["text"]["text"]) == 300
    assert confirm_problem(huge) is None


def test_a_gate_announced_without_the_new_fields_still_renders() -> None:
    # GIVEN an event from before the test instance and target were announced (schema 1)
    old = ApprovalRequested.model_validate(
        {
            key: value
            for key, value in _event().model_dump(by_alias=True).items()
            if key
            not in {
                "targetAccountId",
                "targetRegion",
                "windowStart",
                "windowEnd",
                "testInstance",
                "healthChecks",
            }
        }
    )

    message = approval_request_message(old)

    shown = _mrkdwn(message.blocks)
    assert "*Test instance*\nnot reported" in shown
    assert "*Health checks*\nnot reported" in shown
    confirm = _buttons(message.blocks)[APPROVE_ACTION]["confirm"]
    assert "the pipeline's own AWS account and Region" in confirm["text"]["text"]
    assert "none set (the cutover starts once approved)" in confirm["text"]["text"]


def test_no_health_checks_in_the_manifest_says_what_was_checked() -> None:
    message = approval_request_message(_event(health_checks=[]))

    assert "none in the manifest: only EC2's status checks were run" in _mrkdwn(message.blocks)


def test_the_verified_test_launch_is_read_from_the_step_result() -> None:
    result = {
        "done": True,
        "instanceId": "i-0a1b2c3d4e5f60718",
        "privateIp": "10.0.1.17",
        "checks": ["tcp 22"],
        "healthChecks": [
            {"type": "tcp", "target": "10.0.1.17:22", "passed": True, "detail": "connected"}
        ],
    }

    verified = VerifiedTestLaunch.from_step(result)

    assert verified.instance is not None
    assert (verified.instance.instance_id, verified.instance.private_ip) == (
        "i-0a1b2c3d4e5f60718",
        "10.0.1.17",
    )
    assert [(c.type, c.target, c.passed) for c in verified.health_checks] == [
        ("tcp", "10.0.1.17:22", True)
    ]
    assert VerifiedTestLaunch.from_step(None) == VerifiedTestLaunch()


# --- /wavepilot approve ----------------------------------------------------------------------


def _record(**changes: Any) -> ApprovalRecord:
    record = ApprovalRecord(
        approval_id="apv-0123456789abcdef",
        migration_id="mig-0123456789abcdef",
        wave="wave-1",
        target_vm_name="intranet-web-01",
        approvers=("U07ALICE001",),
        requested_by="Dana Smith <dana@contoso.com>",
        status="PENDING",
        expires_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        target_account_id="111122223333",
        target_region="us-east-1",
        window_start=WINDOW_START,
        window_end=WINDOW_END,
    )
    return replace(record, **changes)


class _Store:
    def __init__(self, approval: ApprovalRecord) -> None:
        self._approval = approval

    def approval(self, approval_id: str) -> ApprovalRecord | None:
        return self._approval if approval_id == self._approval.approval_id else None


class _Approvals:
    """Decides a pending approval; refuses any other, as ApprovalService does."""

    def __init__(self, approval: ApprovalRecord) -> None:
        self._approval = approval
        self.attempts: list[tuple[str, str, str]] = []

    def decide(self, approval_id: str, decision: str, *, user: str, **_: Any) -> None:
        self.attempts.append((approval_id, decision, user))
        if self._approval.status != "PENDING":
            raise ApprovalAlreadyDecidedError(f"already {self._approval.status.lower()}")


class _Directory:
    def is_member(self, user: str, group: str) -> bool:
        return False

    def is_requester(self, user: str, requested_by: str) -> bool:
        return False


def _services(approval: ApprovalRecord) -> tuple[BotServices, _Approvals]:
    approvals = _Approvals(approval)
    services = BotServices(
        store=cast(MigrationStore, _Store(approval)),
        approvals=cast(ApprovalService, approvals),
        rollbacks=cast(RollbackService, None),
        directory=cast(SlackDirectory, _Directory()),
        wave_control=cast(WaveControlService, None),
        parks=cast(ParkService, None),
        finalizes=cast(FinalizeNowService, None),
    )
    return services, approvals


def test_the_approve_command_asks_first_naming_the_same_facts_as_the_button() -> None:
    services, approvals = _services(_record())

    # WHEN an approver types /wavepilot approve
    reply = commands.run(services, user="U07ALICE001", text="approve apv-0123456789abcdef")

    # THEN nothing is decided yet: the answer asks, with the dialog's facts
    assert approvals.attempts == []
    assert cutover_question(_record()) in reply.text
    assert cutover_question(_record()) == cutover_confirm(_event())["text"]["text"]
    buttons = {
        e["action_id"]: e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert buttons[commands.APPROVE_CONFIRM_ACTION]["value"] == "apv-0123456789abcdef"
    assert commands.APPROVE_CANCEL_ACTION in buttons

    # WHEN they confirm THEN the approval the question named is decided, as a click would
    done = commands.approve_confirmed(services, user="U07ALICE001", value="apv-0123456789abcdef")
    assert approvals.attempts == [("apv-0123456789abcdef", "APPROVED", "U07ALICE001")]
    assert done.text.startswith(":white_check_mark:")


@pytest.mark.parametrize("status", ["APPROVED", "EXPIRED"])
def test_an_approval_no_longer_pending_is_answered_without_asking(status: str) -> None:
    services, approvals = _services(_record(status=status))

    reply = commands.run(services, user="U07ALICE001", text="approve apv-0123456789abcdef")

    # the service refuses (and audits) it as before: no question to confirm
    assert not any(b["type"] == "actions" for b in reply.blocks)
    assert reply.text == f":warning: already {status.lower()}"
    assert approvals.attempts == [("apv-0123456789abcdef", "APPROVED", "U07ALICE001")]


def _status_event(account: str = "", region: str = "") -> MigrationStatusUpdated:
    return MigrationStatusUpdated(
        migration_id="mig-0123456789abcdef",
        wave="wave-3",
        app_name="billing-app",
        target_vm_name="billing-app-prod-01",
        correlation_id="mig-0123456789abcdef/0123456789abcdef",
        sequence=2,
        timestamp=datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
        step="ValidateInput",
        status="STARTED",
        message="checking",
        target_account_id=account,
        target_region=region,
    )


def test_the_root_message_names_the_lane_the_vm_migrates_into() -> None:
    # GIVEN a thread whose events say where the VM goes
    event = _status_event("444455556666", "eu-west-1")
    state = advance(ThreadState.new(event), event).state

    # WHEN its root is rendered, THEN the target account and Region are shown with the VM
    message = root_message(state)
    assert "billing-app-prod-01 (billing-app, wave-3 into 444455556666 / eu-west-1)" in message.text
    fields = [f["text"] for b in message.blocks if "fields" in b for f in b["fields"]]
    assert "*Target account / Region*\n`444455556666 / eu-west-1`" in fields
    # AND the lane survives the thread's round trip through DynamoDB
    assert ThreadState.from_item(state.to_item()).lane == "444455556666 / eu-west-1"


def test_a_thread_from_before_lanes_learns_its_lane_from_the_next_event() -> None:
    old = ThreadState.from_item(
        {
            "migrationId": "mig-0123456789abcdef",
            "wave": "wave-3",
            "appName": "billing-app",
            "targetVmName": "billing-app-prod-01",
            "phase": 1,
            "outcome": "running",
        }
    )
    assert old.lane == ""
    assert "Target account" not in str(root_message(old).blocks)

    event = _status_event("444455556666", "eu-west-1")
    assert advance(old, event).state.lane == "444455556666 / eu-west-1"


# --- a parked migration (onFailure: park) -----------------------------------------------------


def _parked(**changes: Any) -> MigrationParked:
    fields: dict[str, Any] = {
        "migration_id": "mig-0123456789abcdef",
        "wave": "wave-1",
        "app_name": "intranet",
        "target_vm_name": "intranet-web-01",
        "correlation_id": "corr-1",
        "sequence": 14,
        "timestamp": datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        "park_id": "prk-0123456789abcdef",
        "step": "VerifyTestLaunch",
        "error": "HealthCheckFailedError",
        "cause": "http://10.0.1.17:80/healthz answered 503 <b>",
        "rollback_at": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        "operators": ["U07BOBOPS01", "S07MIGLEADS"],
    }
    fields.update(changes)
    return MigrationParked.model_validate(fields)


def test_a_parked_migration_says_why_and_offers_retry_and_a_confirmed_roll_back() -> None:
    event = _parked()
    change = advance(ThreadState.new(event), event)

    assert (change.state.outcome, change.state.stage, change.state.category) == (
        "parked",
        "parked",
        "parked",
    )
    [reply] = change.replies
    assert not reply.can_wait  # a person must act: posted at once
    text = _mrkdwn(reply.blocks)
    assert "*Parked* after *VerifyTestLaunch* failed" in text
    assert "answered 503 &lt;b&gt;" in text  # free text escaped
    assert "<@U07BOBOPS01>, <!subteam^S07MIGLEADS>" in text
    # when it rolls back on its own, in each reader's time zone
    assert f"<!date^{int(event.rollback_at.timestamp())}^" in text
    buttons = _buttons(reply.blocks)
    assert {b["value"] for b in buttons.values()} == {"mig-0123456789abcdef|prk-0123456789abcdef"}
    assert "confirm" not in buttons[PARK_RETRY_ACTION]
    assert confirm_problem(buttons[PARK_ROLLBACK_ACTION]["confirm"]) is None
    for block in reply.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


def test_a_retried_park_runs_again_and_says_who_retried() -> None:
    event = _parked()
    parked = advance(ThreadState.new(event), event).state
    retried = MigrationStatusUpdated.model_validate(
        {
            **_parked().model_dump(include={"migration_id", "wave", "app_name", "correlation_id"}),
            "target_vm_name": "intranet-web-01",
            "sequence": 15,
            "timestamp": datetime(2026, 12, 2, 9, 5, tzinfo=UTC),
            "step": "Park",
            "status": "SUCCEEDED",
            "message": "retry by <@U07BOBOPS01>: the test launch starts again",
        }
    )

    change = advance(parked, retried)

    assert change.state.outcome == "running"
    assert [r.text for r in change.replies] == [
        ":repeat: Retry by <@U07BOBOPS01>: the test launch starts again"
    ]


def test_a_launch_held_by_a_wave_pause_shows_paused_until_it_goes_on() -> None:
    event = _status_event()
    state = advance(ThreadState.new(event), event).state
    held = event.model_copy(
        update={
            "sequence": 3,
            "step": "StartCutover",
            "status": "WAITING",
            "message": "wave wave-3 paused by <@U07BOBOPS01>: the cutover launch starts when "
            "the wave is resumed",
            "data": {"held": True},
        }
    )

    paused = advance(state, held).state

    assert (paused.outcome, paused.stage, paused.category) == ("paused", "paused", "paused")
    assert "paused" in root_message(paused).text
    resumed = held.model_copy(
        update={"sequence": 4, "status": "SUCCEEDED", "message": "cutover started", "data": {}}
    )
    assert advance(paused, resumed).state.outcome == "running"


def test_mgn_drift_found_by_prepare_source_is_a_reply_and_routine_preparation_is_not() -> None:
    start = _status_event()
    state = advance(ThreadState.new(start), start).state
    routine = start.model_copy(
        update={"sequence": 3, "step": "PrepareSource", "status": "SUCCEEDED", "message": "ok"}
    )
    drifted = routine.model_copy(
        update={
            "sequence": 4,
            "data": {"mgnDrift": ["MGN had the server in application <Payroll>; moved back"]},
        }
    )

    assert advance(state, routine).replies == ()
    [reply] = advance(state, drifted).replies
    assert reply.text == (
        ":warning: *MGN's waves and applications differed from the manifests*: "
        "MGN had the server in application &lt;Payroll&gt;; moved back"
    )
