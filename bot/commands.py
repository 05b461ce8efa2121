"""``/wavepilot status|approve|reject|rollback|pause|resume|cancel|help``: parsing and answers,
Slack-formatted.

The commands decide through the same services as the buttons and ``wavepilot`` on the
command line (:mod:`orchestration.operators`), so the approver check, the
self-approval check, exactly-once decisions and the audit trail all apply. Every answer is
ephemeral; an error says how to fix the command.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.group_approvals import GroupFacts, group_question, outcome_text
from bot.services import BotServices
from bot.threads import PHASES, STEP_PHASE, cutover_question
from orchestration.operators import (
    OperatorFailedError,
    OperatorUsageError,
    decide,
    id_kind,
    migration_status,
    resolve_approval,
    wave_status,
)
from orchestration.operators.ids import APPROVAL_PREFIX, MIGRATION_PREFIX
from orchestration.pipeline.finalize_now import FinalizeNowError
from orchestration.pipeline.manual_rollback import RollbackRequestError
from orchestration.pipeline.parking import ParkError
from orchestration.pipeline.wave_control import (
    WaveAction,
    WaveControlError,
    WaveControlled,
    wave_control_text,
)

ROLLBACK_CONFIRM_ACTION = "rollback_confirm"
ROLLBACK_CANCEL_ACTION = "rollback_cancel"
APPROVE_CONFIRM_ACTION = "approve_confirm"
APPROVE_CANCEL_ACTION = "approve_cancel"
FINALIZE_CONFIRM_ACTION = "finalize_confirm"
FINALIZE_CANCEL_ACTION = "finalize_cancel"
WAVE_CONTROL_CONFIRM_ACTION = "wave_control_confirm"
WAVE_CONTROL_CANCEL_ACTION = "wave_control_cancel"
HELP = """*`/wavepilot` commands*
• `status <migration|wave>`: where a migration (`mig-...`) or every migration of a wave stands
• `approve <approval|migration>`: approve a cutover (`apv-...` or its migration; asks first)
• `approve <wave|wave/application>`: approve every VM of the wave (or application) ready now, \
each decided and audited on its own (asks first, naming the count, account and window)
• `reject <approval|migration> <reason>`: reject it; the migration rolls back
• `reject <wave|wave/application> <reason>`: reject every VM of it waiting for a decision
• `rollback <migration> <reason>`: stop a migration and roll it back (operators; asks first)
• `retry <migration> [reason]`: start a parked migration's test launch again (operators)
• `finalize <migration>`: end a finalizeAfter hold now: MGN finalizes, no way back \
(operators; asks first)
• `pause <wave> <reason>`: no new test launch or cutover starts in the wave; running jobs \
finish (operators; asks first)
• `resume <wave>`: the paused wave goes on where each migration stood (operators; asks first)
• `cancel <wave> <reason>`: roll back every migration of the wave that has not finalized \
(operators; asks first)
• `help`: this list"""


class CommandError(Exception):
    """A command that cannot run as typed; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def run(services: BotServices, *, user: str, text: str) -> Reply:
    """Run one ``/wavepilot`` command for ``user``; errors come back as replies too."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return Reply(f":warning: {exc} (check your quotes). Try `/wavepilot help`.")
    if not words or words[0] == "help":
        return Reply(HELP)
    verb, args = words[0].lower(), words[1:]
    command = COMMANDS.get(verb)
    if command is None:
        return Reply(f":warning: unknown command `{verb}`.\n{HELP}")
    try:
        return command(services, user, args)
    except (
        CommandError,
        OperatorUsageError,
        OperatorFailedError,
        RollbackRequestError,
        WaveControlError,
    ) as exc:
        return Reply(f":warning: {exc}")


def _status_command(services: BotServices, user: str, args: list[str]) -> Reply:
    return _status(services, _one(args, "status <migration|wave>"))


def _approve_command(services: BotServices, user: str, args: list[str]) -> Reply:
    target = _one(args, "approve <approval|migration|wave|wave/application>")
    if not _names_one_vm(target):
        return _confirm_group_approval(services, target)
    return _confirm_approval(services, user, target)


def _reject_command(services: BotServices, user: str, args: list[str]) -> Reply:
    target, reason = _target_and_reason(
        args, "reject <approval|migration|wave|wave/application> <reason>"
    )
    if not _names_one_vm(target):
        return _decide_group(services, user, target, reason)
    return _decide(services, user, target, reason)


def _names_one_vm(target: str) -> bool:
    return target.startswith((APPROVAL_PREFIX, MIGRATION_PREFIX))


def _group_of(target: str) -> str:
    """``wave-1/intranet`` is that application's group; ``wave-1`` is every group of the wave
    (its wave group, or its applications' groups): the store's ``<wave>/`` prefix."""
    return target if "/" in target else f"{target}/"


def _confirm_group_approval(services: BotServices, target: str) -> Reply:
    """Ask before approving a group, naming the count of VMs ready now, the wave, the target
    account(s) and the window; nothing is decided until the approver confirms."""
    ready = services.approvals.pending_in_group(_group_of(target))
    if not ready:
        raise CommandError(
            f"no VM of `{target}` is waiting for a decision now (name a wave, or a wave and "
            "application as `wave-1/intranet`; VMs approved one by one are named by `mig-...`)"
        )
    first = ready[0]
    lanes = sorted({(a.target_account_id, a.target_region) for a in ready})
    wave, _, app = target.partition("/")
    facts = GroupFacts(
        wave=wave,
        what=f"{app} (wave {wave})" if app else f"wave {wave}",
        target_account_id=", ".join(account for account, _region in lanes),
        target_region=", ".join(sorted({region for _account, region in lanes})),
        window_start=first.window_start,
        window_end=first.window_end,
    )
    question = f":warning: {group_question(facts, len(ready))}"
    blocks = _confirmation(
        question,
        block_id="approve",
        confirm=(APPROVE_CONFIRM_ACTION, "Approve cutover", "primary", target),
        cancel=(APPROVE_CANCEL_ACTION, target),
    )
    return Reply(question, blocks)


def _decide_group(services: BotServices, user: str, target: str, reason: str) -> Reply:
    outcome = services.approvals.decide_group(
        _group_of(target),
        "REJECTED" if reason else "APPROVED",
        user=user,
        reason=reason,
        is_member=services.directory.is_member,
        is_requester=lambda approval, who: services.directory.is_requester(
            who, approval.requested_by
        ),
    )
    return Reply(outcome_text(outcome))


def _rollback_command(services: BotServices, user: str, args: list[str]) -> Reply:
    target, reason = _target_and_reason(args, "rollback <migration> <reason>")
    return _confirm_rollback(services, user, target, reason)


def _retry_command(services: BotServices, user: str, args: list[str]) -> Reply:
    """A parked migration (onFailure: park): its test launch starts again."""
    if not args:
        raise CommandError("usage: `/wavepilot retry <migration> [reason]`")
    target, reason = args[0], " ".join(args[1:])
    if id_kind(target) != "migration":
        raise CommandError("retry a migration (`mig-...`), not an approval")
    try:
        done = services.parks.decide(
            target, "retry", user=user, reason=reason, is_member=services.directory.is_member
        )
    except ParkError as exc:
        return Reply(f":warning: {exc}")
    return Reply(
        f":repeat: Retry of *{done.target_vm_name}*: its test launch starts again "
        f"(`/wavepilot status {target}`)."
    )


def _finalize_command(services: BotServices, user: str, args: list[str]) -> Reply:
    """Ask before cutting a held cutover's finalizeAfter short (checked first: an operator,
    not finalized); nothing is asked of the execution until the operator confirms."""
    target = _one(args, "finalize <migration>")
    if id_kind(target) != "migration":
        raise CommandError("finalize a migration (`mig-...`), not an approval")
    try:
        record = services.finalizes.check(target, user=user, is_member=services.directory.is_member)
    except FinalizeNowError as exc:
        return Reply(f":warning: {exc}")
    question = (
        f":warning: Finalize *{record.target_vm_name}* ({record.app_name}, {record.wave}) "
        "now? MGN's FinalizeCutover deletes the replication resources: the source can no "
        "longer be returned to."
    )
    blocks = _confirmation(
        question,
        block_id="finalize",
        confirm=(FINALIZE_CONFIRM_ACTION, "Finalize now", "danger", target),
        cancel=(FINALIZE_CANCEL_ACTION, target),
    )
    return Reply(question, blocks)


def finalize_confirmed(services: BotServices, *, user: str, value: str) -> Reply:
    """The operator confirmed: re-check and ask the held execution to finalize."""
    try:
        done = services.finalizes.request(value, user=user, is_member=services.directory.is_member)
    except FinalizeNowError as exc:
        return Reply(f":warning: {exc}")
    return Reply(
        f":fast_forward: Finalize now: *{done.target_vm_name}* is finalized within minutes "
        f"(`/wavepilot status {value}`)."
    )


def _wave_command(action: WaveAction) -> Callable[[BotServices, str, list[str]], Reply]:
    def command(services: BotServices, user: str, args: list[str]) -> Reply:
        if action == "resume":
            wave, reason = _one(args, "resume <wave>"), ""
        else:
            wave, reason = _target_and_reason(args, f"{action} <wave> <reason>")
        return _confirm_wave_control(services, user, action, wave, reason)

    return command


COMMANDS: dict[str, Callable[[BotServices, str, list[str]], Reply]] = {
    "status": _status_command,
    "approve": _approve_command,
    "reject": _reject_command,
    "rollback": _rollback_command,
    "retry": _retry_command,
    "finalize": _finalize_command,
    "pause": _wave_command("pause"),
    "resume": _wave_command("resume"),
    "cancel": _wave_command("cancel"),
}

WAVE_QUESTIONS = {
    "pause": "Pause *{wave}* ({count} migrations)? No new test launch or cutover starts until "
    "it is resumed; MGN jobs already running finish.",
    "resume": "Resume *{wave}* ({count} migrations)? Each goes on where it stood.",
    "cancel": "Cancel *{wave}*? Every one of its {count} migrations that has not finalized is "
    "rolled back: executions stop, anything launched is terminated.",
}
WAVE_BUTTONS = {"pause": ("Pause wave", "danger"), "resume": ("Resume wave", "primary")}


def _confirm_wave_control(
    services: BotServices, user: str, action: WaveAction, wave: str, reason: str
) -> Reply:
    """Ask before pausing, resuming or cancelling a wave (checked first: an operator, a state
    the wave can move from); nothing changes until the operator confirms."""
    records = services.wave_control.check(
        wave, action, user=user, is_member=services.directory.is_member
    )
    question = ":warning: " + WAVE_QUESTIONS[action].format(wave=wave, count=len(records))
    if reason:
        question += f"\nReason: {reason}"
    label, style = WAVE_BUTTONS.get(action, ("Cancel wave", "danger"))
    value = json.dumps({"action": action, "wave": wave, "reason": reason[:1_500]})
    blocks = _confirmation(
        question,
        block_id="wave_control",
        confirm=(WAVE_CONTROL_CONFIRM_ACTION, label, style, value),
        cancel=(WAVE_CONTROL_CANCEL_ACTION, wave),
    )
    return Reply(question, blocks)


def wave_control_confirmed(
    services: BotServices, *, user: str, value: str
) -> tuple[Reply, WaveControlled | None]:
    """The operator confirmed: re-check and pause, resume or cancel the wave. The reply, and
    what was done (None if refused)."""
    request = json.loads(value)
    try:
        done = services.wave_control.change(
            str(request["wave"]),
            request["action"],
            user=user,
            reason=str(request.get("reason", "")),
            is_member=services.directory.is_member,
        )
    except WaveControlError as exc:
        return Reply(f":warning: {exc}"), None
    return Reply(f"{WAVE_ICON[done.action]} {wave_control_text(done)}"), done


WAVE_ICON = {
    "pause": ":double_vertical_bar:",
    "resume": ":arrow_forward:",
    "cancel": ":octagonal_sign:",
}


def _one(args: list[str], usage: str) -> str:
    if len(args) != 1:
        raise CommandError(f"usage: `/wavepilot {usage}`")
    return args[0]


def _target_and_reason(args: list[str], usage: str) -> tuple[str, str]:
    if len(args) < 2:
        raise CommandError(f"usage: `/wavepilot {usage}` (the reason goes in the thread)")
    return args[0], " ".join(args[1:])


def _status(services: BotServices, target: str) -> Reply:
    if target.startswith(("mig-", "apv-")):
        status = migration_status(services.store, target)
        record = status.record
        lines = [
            f"*{record.target_vm_name}* ({record.app_name}, {record.wave}) `{record.migration_id}`",
            f"Target: {status.lane_text}",
            f"Status: *{record.status}*, step {record.step or '-'} {status.step_status}".rstrip(),
            f"Phase: {_phase(record.step)}",
        ]
        if status.pending_approval_id:
            lines.append(f"Waiting for approval `{status.pending_approval_id}`")
        # The step history: the routine detail the thread leaves out (docs/SLACK.md).
        earlier = len(status.history) - MAX_STEPS_SHOWN
        if earlier > 0:
            lines.append(f"… {earlier} earlier steps (`wavepilot status {record.migration_id}`)")
        for entry in status.history[-MAX_STEPS_SHOWN:]:
            lines.append(f"• {entry.at[:19]} {entry.step} {entry.status}: {_clip(entry.message)}")
        return Reply("\n".join(lines))
    try:
        wave = wave_status(services.store, target)
    except OperatorUsageError:
        raise CommandError(
            f"{target!r} is not a migration ID (mig-...) nor a wave with migrations"
        ) from None
    counts: dict[str, int] = {}
    for row in wave.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
    lines = [f"*{wave.wave}*: {len(wave.rows)} migrations ({summary})"]
    for row in wave.rows[:40]:
        waiting = f" (approval `{row.pending_approval_id}`)" if row.pending_approval_id else ""
        lines.append(f"• {row.target_vm_name} ({row.app_name}): {row.status} {row.step}{waiting}")
    if len(wave.rows) > 40:
        lines.append(f"… and {len(wave.rows) - 40} more (`wavepilot status --wave` lists all)")
    return Reply("\n".join(lines))


MAX_STEPS_SHOWN = 20


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _phase(step: str) -> str:
    index = STEP_PHASE.get(step, 0)
    return f"{PHASES[index]} ({index + 1}/{len(PHASES)})"


def _decide(services: BotServices, user: str, target: str, reason: str) -> Reply:
    id_kind(target)
    result = decide(
        services.store,
        services.approvals,
        target,
        "REJECTED" if reason else "APPROVED",
        user=user,
        reason=reason,
        is_member=services.directory.is_member,
        is_requester=services.directory.is_requester,
    )
    return Reply((":white_check_mark: " if result.decided else ":warning: ") + result.message)


def _confirm_approval(services: BotServices, user: str, target: str) -> Reply:
    """Ask before approving, naming what the Approve button's dialog names: the VM, its wave,
    the target account and Region, the cutover window. A gate that cannot be decided any
    more is answered at once (who decided it, or that it expired)."""
    id_kind(target)
    approval = resolve_approval(services.store, target)
    if approval.status != "PENDING":
        return _decide(services, user, approval.approval_id, "")
    question = (
        f":warning: {cutover_question(approval)}\nApproval `{approval.approval_id}` of "
        f"`{approval.migration_id}`; the approval message in the migration's thread shows the "
        "test instance and its health checks."
    )
    blocks = _confirmation(
        question,
        block_id="approve",
        confirm=(APPROVE_CONFIRM_ACTION, "Approve cutover", "primary", approval.approval_id),
        cancel=(APPROVE_CANCEL_ACTION, approval.approval_id),
    )
    return Reply(question, blocks)


def approve_confirmed(services: BotServices, *, user: str, value: str) -> Reply:
    """The approver confirmed: decide the approval the question named (checked and audited
    as a button click is)."""
    try:
        if not _names_one_vm(value):
            return _decide_group(services, user, value, "")
        return _decide(services, user, value, "")
    except (OperatorUsageError, OperatorFailedError) as exc:
        return Reply(f":warning: {exc}")


def _confirm_rollback(services: BotServices, user: str, target: str, reason: str) -> Reply:
    if id_kind(target) != "migration":
        raise CommandError("roll back a migration (`mig-...`), not an approval")
    record = services.rollbacks.check(target, user=user, is_member=services.directory.is_member)
    value = json.dumps({"migrationId": target, "reason": reason[:1_500]})
    question = (
        f":warning: Roll back *{record.target_vm_name}* ({record.app_name}, {record.wave})? "
        f"Its execution stops now (step {record.step or '-'}), anything launched is "
        f"terminated and the source server is made ready to launch again.\nReason: {reason}"
    )
    blocks = _confirmation(
        question,
        block_id="rollback",
        confirm=(ROLLBACK_CONFIRM_ACTION, "Roll back", "danger", value),
        cancel=(ROLLBACK_CANCEL_ACTION, target),
    )
    return Reply(question, blocks)


def _confirmation(
    question: str,
    *,
    block_id: str,
    confirm: tuple[str, str, str, str],
    cancel: tuple[str, str],
) -> list[dict[str, Any]]:
    """A question with its two buttons: ``confirm`` is (action, label, style, value), ``cancel``
    is (action, value)."""
    confirm_action, label, style, confirm_value = confirm
    cancel_action, cancel_value = cancel
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": question}},
        {
            "type": "actions",
            "block_id": block_id,
            "elements": [
                {
                    "type": "button",
                    "action_id": confirm_action,
                    "text": {"type": "plain_text", "text": label},
                    "style": style,
                    "value": confirm_value,
                },
                {
                    "type": "button",
                    "action_id": cancel_action,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": cancel_value,
                },
            ],
        },
    ]


def rollback_confirmed(services: BotServices, *, user: str, value: str) -> Reply:
    """The operator confirmed: re-check (time has passed) and start the rollback."""
    request = json.loads(value)
    try:
        started = services.rollbacks.request(
            request["migrationId"],
            user=user,
            reason=request["reason"],
            is_member=services.directory.is_member,
        )
    except RollbackRequestError as exc:
        return Reply(f":warning: {exc}")
    stopped = "stopped its execution and " if started.stopped_execution_arn else ""
    return Reply(
        f":rewind: Rollback of `{started.migration_id}` requested by <@{user}>: {stopped}"
        "started the rollback; follow it in the migration's thread."
    )
