"""The Slack app (slack-bolt): approval buttons, the reject modal, ``/wavepilot`` commands.

Every listener acknowledges at once and does the slow work (DynamoDB, Step Functions, Slack
calls) in a lazy listener: on Lambda, Bolt re-invokes the function asynchronously for it
(``process_before_response=True``, as Lambda needs); locally it runs on a thread. Slack's
3-second limit is met either way. Bolt verifies every request's signature and timestamp
(older than five minutes is refused) before any listener runs.

Buttons carry the approval ID only; the task token stays in DynamoDB. A click decides
through :class:`~orchestration.pipeline.approvals.ApprovalService`: only the wave's approvers
(a listed user or a member of a listed user group), never the requester, exactly once
(a conditional write), audited either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import commands
from bot.group_approvals import (
    GROUP_APPROVE_READY_ACTION,
    GROUP_APPROVE_SELECTED_ACTION,
    GROUP_REJECT_ACTION,
    SELECT_BLOCK,
    SELECT_MODAL,
    outcome_text,
    select_modal,
    selected_ids,
)
from bot.group_approvals import REJECT_MODAL as GROUP_REJECT_MODAL
from bot.owed_roots import Owed, OwedRootsQueue
from bot.services import BotServices
from bot.threads import (
    APPROVE_ACTION,
    FINALIZE_NOW_ACTION,
    PARK_RETRY_ACTION,
    PARK_ROLLBACK_ACTION,
    REJECT_ACTION,
    approval_decided_message,
    finalize_requested_message,
    park_decided_message,
)
from orchestration.clock import Clock, ClockAwareExecutor
from orchestration.observability import count, logger
from orchestration.pipeline.approvals import ApprovalError, Decision
from orchestration.pipeline.finalize_now import FinalizeNowError
from orchestration.pipeline.parking import ParkDecision, ParkError
from orchestration.pipeline.wave_control import wave_control_text

REJECT_MODAL = "reject_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"


def build_app(
    *,
    client: WebClient,
    signing_secret: str,
    services: Callable[[], BotServices],
    clock: Clock,
    process_before_response: bool = True,
    owed_queue: Callable[[], OwedRootsQueue | None] = lambda: None,
) -> App:
    """The Bolt app; ``services`` is called on first use (not at import or cold start);
    ``owed_queue``: the notifier's status queue, asked to edit a wave's summary after a
    pause, resume or cancel."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        process_before_response=process_before_response,
        token_verification_enabled=False,
        logger=_BOLT_LOGGER,
        # Bolt's default pool (five threads), on the clock: the embedded default's simulated
        # clock keeps counting a lazy listener until it ends.
        listener_executor=ClockAwareExecutor(clock, max_workers=5, thread_name_prefix="bolt"),
    )
    listeners = Listeners(services, clock, owed_queue)
    app.action(APPROVE_ACTION)(ack=_ack, lazy=[listeners.approve])
    app.action(REJECT_ACTION)(listeners.open_reject_modal)
    app.view(REJECT_MODAL)(ack=listeners.ack_reason, lazy=[listeners.reject])
    app.action(GROUP_APPROVE_READY_ACTION)(ack=_ack, lazy=[listeners.approve_group])
    app.action(GROUP_APPROVE_SELECTED_ACTION)(listeners.open_select_modal)
    app.view(SELECT_MODAL)(ack=listeners.ack_selection, lazy=[listeners.approve_selected])
    app.action(GROUP_REJECT_ACTION)(listeners.open_group_reject_modal)
    app.view(GROUP_REJECT_MODAL)(ack=listeners.ack_reason, lazy=[listeners.reject_group])
    app.action(PARK_RETRY_ACTION)(ack=_ack, lazy=[listeners.retry_parked])
    app.action(PARK_ROLLBACK_ACTION)(ack=_ack, lazy=[listeners.roll_back_parked])
    app.action(FINALIZE_NOW_ACTION)(ack=_ack, lazy=[listeners.finalize_now])
    app.action(commands.FINALIZE_CONFIRM_ACTION)(ack=_ack, lazy=[listeners.confirm_finalize])
    app.action(commands.FINALIZE_CANCEL_ACTION)(listeners.cancel_finalize)
    app.command("/wavepilot")(ack=_ack, lazy=[listeners.run_command])
    app.action(commands.ROLLBACK_CONFIRM_ACTION)(ack=_ack, lazy=[listeners.confirm_rollback])
    app.action(commands.ROLLBACK_CANCEL_ACTION)(listeners.cancel_rollback)
    app.action(commands.APPROVE_CONFIRM_ACTION)(ack=_ack, lazy=[listeners.confirm_approval])
    app.action(commands.APPROVE_CANCEL_ACTION)(listeners.cancel_approval)
    app.action(commands.WAVE_CONTROL_CONFIRM_ACTION)(
        ack=_ack, lazy=[listeners.confirm_wave_control]
    )
    app.action(commands.WAVE_CONTROL_CANCEL_ACTION)(listeners.cancel_wave_control)
    return app


class _TokenFromEnvironmentIsUsed(logging.Filter):
    """Bolt reads ``SLACK_BOT_TOKEN`` itself and warns that the client's token wins; the
    client was built from that very token (bot/config.py), so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_BOLT_LOGGER = logging.getLogger("wavepilot.slack_bolt")
_BOLT_LOGGER.addFilter(_TokenFromEnvironmentIsUsed())


def _ack(ack: Ack) -> None:
    ack()


class Listeners:
    """The app's listeners; each fast one only acknowledges (or opens the modal)."""

    def __init__(
        self,
        services: Callable[[], BotServices],
        clock: Clock,
        owed_queue: Callable[[], OwedRootsQueue | None] = lambda: None,
    ) -> None:
        self._services = services
        self._clock = clock
        self._owed_queue = owed_queue

    # --- approval buttons ----------------------------------------------------------------

    def approve(self, body: dict[str, Any], respond: Respond) -> None:
        services = self._services()
        approval_id = str(body["actions"][0].get("value", ""))
        count("SlackApprovalClicks")
        try:
            outcome = services.approvals.decide(
                approval_id,
                "APPROVED",
                user=body["user"]["id"],
                is_member=services.directory.is_member,
                is_requester=lambda who: _is_requester(services, approval_id, who),
            )
        except ApprovalError as exc:
            logger.info("approval refused", extra={"approval_id": approval_id, "reason": str(exc)})
            respond(text=f":warning: {exc}", response_type="ephemeral", replace_original=False)
            return
        decided = approval_decided_message(
            approval_id, "APPROVED", outcome.user, "", self._clock.now().isoformat()
        )
        respond(text=decided.text, blocks=list(decided.blocks), replace_original=True)

    def open_reject_modal(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Slack's trigger ID lives three seconds: the modal opens before the ack returns."""
        ack()
        container = body.get("container") or {}
        metadata = {
            "approvalId": body["actions"][0].get("value", ""),
            "channel": container.get("channel_id") or (body.get("channel") or {}).get("id"),
            "messageTs": container.get("message_ts", ""),
        }
        client.views_open(trigger_id=body["trigger_id"], view=_reject_modal(metadata))

    def ack_reason(self, ack: Ack, view: dict[str, Any]) -> None:
        if not _reason(view):
            ack(response_action="errors", errors={REASON_BLOCK: "Say why: it goes in the thread"})
            return
        ack()

    def reject(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        services = self._services()
        metadata = json.loads(view.get("private_metadata") or "{}")
        approval_id = str(metadata.get("approvalId", ""))
        user = body["user"]["id"]
        reason = _reason(view)
        try:
            outcome = services.approvals.decide(
                approval_id,
                "REJECTED",
                user=user,
                reason=reason,
                is_member=services.directory.is_member,
                is_requester=lambda who: _is_requester(services, approval_id, who),
            )
        except ApprovalError as exc:
            if metadata.get("channel"):
                client.chat_postEphemeral(
                    channel=metadata["channel"], user=user, text=f":warning: {exc}"
                )
            return
        if metadata.get("channel") and metadata.get("messageTs"):
            decided = approval_decided_message(
                approval_id, "REJECTED", outcome.user, reason, self._clock.now().isoformat()
            )
            client.chat_update(
                channel=metadata["channel"],
                ts=metadata["messageTs"],
                text=decided.text,
                blocks=list(decided.blocks),
            )

    # --- a parked migration's buttons (onFailure: park) -------------------------------------

    def retry_parked(self, body: dict[str, Any], respond: Respond) -> None:
        self._decide_park(body, respond, "retry")

    def roll_back_parked(self, body: dict[str, Any], respond: Respond) -> None:
        self._decide_park(body, respond, "rollback")

    def _decide_park(self, body: dict[str, Any], respond: Respond, decision: ParkDecision) -> None:
        """Retry or Roll back, by one of the wave's operators (checked, exactly once, audited
        by ParkService); the message keeps who decided, without its buttons."""
        services = self._services()
        migration_id, _, park_id = str(body["actions"][0].get("value", "")).partition("|")
        try:
            done = services.parks.decide(
                migration_id,
                decision,
                user=body["user"]["id"],
                park_id=park_id or None,
                is_member=services.directory.is_member,
            )
        except ParkError as exc:
            respond(text=f":warning: {exc}", response_type="ephemeral", replace_original=False)
            return
        decided = park_decided_message(done.decision, done.user, self._clock.now().isoformat())
        respond(text=decided.text, blocks=list(decided.blocks), replace_original=True)

    # --- a held cutover's Finalize now (finalizeAfter) ---------------------------------------

    def finalize_now(self, body: dict[str, Any], respond: Respond) -> None:
        """Finalize now (Slack's dialog confirmed it): by one of the wave's operators, while
        the cutover is held; the hold's message then says who asked, without its button."""
        services = self._services()
        migration_id = str(body["actions"][0].get("value", ""))
        try:
            done = services.finalizes.request(
                migration_id, user=body["user"]["id"], is_member=services.directory.is_member
            )
        except FinalizeNowError as exc:
            respond(text=f":warning: {exc}", response_type="ephemeral", replace_original=False)
            return
        asked = finalize_requested_message(done.user, self._clock.now().isoformat())
        respond(text=asked.text, blocks=list(asked.blocks), replace_original=True)

    def confirm_finalize(self, body: dict[str, Any], respond: Respond) -> None:
        reply = commands.finalize_confirmed(
            self._services(),
            user=body["user"]["id"],
            value=str(body["actions"][0].get("value", "")),
        )
        respond(text=reply.text, replace_original=True)

    def cancel_finalize(self, ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="Nothing was finalized: the hold goes on.", replace_original=True)

    # --- group approval buttons (approval.scope application or wave) -----------------------

    def approve_group(self, body: dict[str, Any], respond: Respond) -> None:
        """Approve all ready: every VM of the group waiting for a decision at this moment,
        each decided and audited on its own."""
        services = self._services()
        group = str(body["actions"][0].get("value", ""))
        count("SlackGroupApprovalClicks")
        outcome = services.approvals.decide_group(
            group,
            "APPROVED",
            user=body["user"]["id"],
            is_member=services.directory.is_member,
            is_requester=lambda approval, who: services.directory.is_requester(
                who, approval.requested_by
            ),
        )
        respond(text=outcome_text(outcome), response_type="ephemeral", replace_original=False)

    def open_select_modal(
        self, ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """Approve selected: a modal listing the VMs ready now (the trigger ID lives three
        seconds, so this one Query runs before the modal opens)."""
        ack()
        group = str(body["actions"][0].get("value", ""))
        ready = self._services().approvals.pending_in_group(group)
        if not ready:
            respond(
                text=f":information_source: No VM of `{group}` is waiting for a decision now.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        client.views_open(
            trigger_id=body["trigger_id"],
            view=select_modal(
                group,
                sorted(((a.approval_id, a.target_vm_name) for a in ready), key=lambda r: r[1]),
                _channel_of(body),
            ),
        )

    def ack_selection(self, ack: Ack, view: dict[str, Any]) -> None:
        if not selected_ids(view):
            ack(response_action="errors", errors={SELECT_BLOCK: "Pick at least one VM"})
            return
        ack()

    def approve_selected(
        self, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        self._decide_group_from_modal(
            body, view, client, decision="APPROVED", selected=selected_ids(view)
        )

    def open_group_reject_modal(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        metadata = {"group": body["actions"][0].get("value", ""), "channel": _channel_of(body)}
        modal = _reject_modal(metadata)
        modal["callback_id"] = GROUP_REJECT_MODAL
        modal["title"] = {"type": "plain_text", "text": "Reject the group"}
        modal["blocks"][0]["label"]["text"] = "Why? (every VM waiting now is rejected)"
        client.views_open(trigger_id=body["trigger_id"], view=modal)

    def reject_group(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        self._decide_group_from_modal(body, view, client, decision="REJECTED", reason=_reason(view))

    def _decide_group_from_modal(
        self,
        body: dict[str, Any],
        view: dict[str, Any],
        client: WebClient,
        *,
        decision: Decision,
        selected: Collection[str] | None = None,
        reason: str = "",
    ) -> None:
        """A group decision submitted in a modal; the decider is told the outcome privately."""
        services = self._services()
        metadata = json.loads(view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        outcome = services.approvals.decide_group(
            str(metadata.get("group", "")),
            decision,
            user=user,
            selected=selected,
            reason=reason,
            is_member=services.directory.is_member,
            is_requester=lambda approval, who: services.directory.is_requester(
                who, approval.requested_by
            ),
        )
        if metadata.get("channel"):
            client.chat_postEphemeral(
                channel=metadata["channel"], user=user, text=outcome_text(outcome)
            )

    # --- /wavepilot ----------------------------------------------------------------------

    def run_command(self, body: dict[str, Any], respond: Respond) -> None:
        reply = commands.run(self._services(), user=body["user_id"], text=body.get("text", ""))
        respond(text=reply.text, blocks=reply.blocks or None, response_type="ephemeral")

    def confirm_rollback(self, body: dict[str, Any], respond: Respond) -> None:
        reply = commands.rollback_confirmed(
            self._services(),
            user=body["user"]["id"],
            value=str(body["actions"][0].get("value", "{}")),
        )
        respond(text=reply.text, replace_original=True)

    def confirm_approval(self, body: dict[str, Any], respond: Respond) -> None:
        reply = commands.approve_confirmed(
            self._services(),
            user=body["user"]["id"],
            value=str(body["actions"][0].get("value", "")),
        )
        respond(text=reply.text, replace_original=True)

    def cancel_approval(self, ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="Approval cancelled: nothing was decided.", replace_original=True)

    def cancel_rollback(self, ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="Rollback cancelled: nothing was changed.", replace_original=True)

    def confirm_wave_control(
        self, body: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Pause, resume or cancel the wave; its channel is told who did it and why."""
        user = body["user"]["id"]
        services = self._services()
        reply, done = commands.wave_control_confirmed(
            services, user=user, value=str(body["actions"][0].get("value", "{}"))
        )
        respond(text=reply.text, replace_original=True)
        if done is None:
            return
        channels = {
            r.request.effective_vm.slack_channel
            for r in services.store.wave_migrations(done.wave)
            if r.request.effective_vm is not None
        }
        control = services.wave_control.state(done.wave)
        why = f": {control.reason}" if control is not None and control.reason else ""
        text = f"{commands.WAVE_ICON[done.action]} {wave_control_text(done)} (<@{user}>{why})"
        for channel in sorted(channels):
            client.chat_postMessage(channel=channel, text=text)
        queue = self._owed_queue()
        if queue is not None:
            # The wave's summary shows the pause (or cancel) at the notifier's next edit.
            queue.send(Owed(waves=(done.wave,)))

    def cancel_wave_control(self, ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="Nothing was changed: the wave goes on as it was.", replace_original=True)


def _channel_of(body: dict[str, Any]) -> str:
    container = body.get("container") or {}
    return str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")


def _is_requester(services: BotServices, approval_id: str, user: str) -> bool:
    approval = services.store.approval(approval_id)
    return approval is not None and services.directory.is_requester(user, approval.requested_by)


def _reason(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}
    return str(field.get("value") or "").strip()


def _reject_modal(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": "Reject the cutover"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why? (shown in the thread)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 1_500,
                },
            }
        ],
    }
