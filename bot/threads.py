"""What a migration's Slack thread says: pure functions from status events to messages.

One root message per migration, edited in place, shows its *stage*: what a person needs to
know (in progress, cutting over, migrated, rolling back, rolled back, failed), with the VM,
application, wave and lane. Replies in its thread are only what a person needs: every failure
and rollback with its reason, the final result, and the approval message. Routine detail
(replication ready, test launched and verified, waiting for the window) stays in the step
history, which ``/wavepilot status`` shows. ``advance`` folds one event into the thread's
state and says which replies it adds; ``advance_late`` does the same for an event older than
the thread (one that came by the other queue); nothing here talks to Slack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from orchestration.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventDetail,
    HealthCheckResult,
    MigrationCompleted,
    MigrationFailed,
    MigrationParked,
    MigrationRequested,
    MigrationStatusUpdated,
    RollbackCompleted,
    RollbackStarted,
    Step,
)

PHASES: tuple[str, ...] = (
    "Queued",
    "Validate",
    "Prepare",
    "Replicate",
    "Test launch",
    "Approval",
    "Cutover",
    "Finalize",
)
STEP_PHASE: dict[str, int] = {
    Step.VALIDATE_INPUT: 1,
    Step.PREPARE_SOURCE: 2,
    Step.WAIT_FOR_REPLICATION: 3,
    Step.START_TEST_LAUNCH: 4,
    Step.VERIFY_TEST_LAUNCH: 4,
    Step.AWAIT_APPROVAL: 5,
    Step.PREPARE_CUTOVER: 6,
    Step.START_CUTOVER: 6,
    Step.VERIFY_CUTOVER: 6,
    Step.FINALIZE_CUTOVER: 7,
}
Outcome = Literal[
    "queued",
    "running",
    "awaiting approval",
    "paused",
    "parked",
    "migrated",
    "rolling back",
    "rolled back",
    "failed",
]
FINAL_OUTCOMES: frozenset[str] = frozenset({"migrated", "rolled back"})
# What the root shows as its headline. Awaiting approval is not a stage of the root: the
# approval message in the thread (mentioning the approvers) and the wave summary's count say
# it, which keeps a migration's thread within its Slack budget (docs/SLACK.md).
Stage = Literal[
    "in progress",
    "paused",
    "parked",
    "cutting over",
    "migrated",
    "rolling back",
    "rolled back",
    "failed",
]
STAGE_ICON: dict[str, str] = {
    "in progress": ":arrows_counterclockwise:",
    "paused": ":double_vertical_bar:",
    "parked": ":parking:",
    "cutting over": ":arrow_right:",
    "migrated": ":white_check_mark:",
    "rolling back": ":rewind:",
    "rolled back": ":leftwards_arrow_with_hook:",
    "failed": ":x:",
}
STAGES_SHOWN: tuple[str, ...] = ("Replicate and test", "Approval", "Cutover", "Done")
# What a wave summary counts: each thread is in exactly one category.
Category = Literal[
    "queued",
    "replicating/testing",
    "awaiting approval",
    "paused",
    "parked",
    "cutting over",
    "migrated",
    "rolling back",
    "rolled back",
    "failed",
]
CATEGORIES: tuple[Category, ...] = (
    "queued",
    "replicating/testing",
    "awaiting approval",
    "paused",
    "parked",
    "cutting over",
    "migrated",
    "rolling back",
    "rolled back",
    "failed",
)
# What the wave summary lists, with links: what went wrong, and what waits for a person.
FAILURE_CATEGORIES: frozenset[str] = frozenset({"failed", "parked", "rolling back", "rolled back"})
APPROVE_ACTION = "approval_approve"
REJECT_ACTION = "approval_reject"
# A parked migration's buttons (onFailure: park); the value is ``<migration>|<park>``.
PARK_RETRY_ACTION = "park_retry"
PARK_ROLLBACK_ACTION = "park_rollback"
# A held cutover's button (finalizeAfter); the value is the migration ID.
FINALIZE_NOW_ACTION = "finalize_now"
METADATA_EVENT_TYPE = "wavepilot_migration_status"
# A status event's ``data`` key marking a removal's report (orchestration.pipeline.removal).
REMOVED_FROM_MANIFESTS = "removedFromManifests"


@dataclass(frozen=True, slots=True)
class ThreadState:
    """What the root message shows, folded from the events seen so far."""

    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str
    target_account_id: str = ""  # the lane; empty: the hub's (or a thread from before lanes)
    target_region: str = ""
    phase: int = 0
    outcome: Outcome = "queued"
    detail: str = ""
    updated_at: str = ""  # the shown event's timestamp (ISO 8601)
    sequence: int = 0  # the last event folded in

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    @property
    def past_the_gate(self) -> bool:
        return self.phase >= STEP_PHASE[Step.AWAIT_APPROVAL]

    @property
    def stage(self) -> Stage:
        """The root's headline."""
        match self.outcome:
            case "queued" | "awaiting approval":
                return "in progress"
            case "running":
                return "cutting over" if self.past_the_gate else "in progress"
            case _:
                return self.outcome

    @property
    def category(self) -> Category:
        """Where the wave summary counts the migration."""
        match self.outcome:
            case "running":
                return "cutting over" if self.past_the_gate else "replicating/testing"
            case _:
                return self.outcome

    def to_item(self) -> dict[str, Any]:
        return {
            "migrationId": self.migration_id,
            "wave": self.wave,
            "appName": self.app_name,
            "targetVmName": self.target_vm_name,
            "targetAccountId": self.target_account_id,
            "targetRegion": self.target_region,
            "phase": self.phase,
            "outcome": self.outcome,
            "detail": self.detail,
            "updatedAt": self.updated_at,
            "sequence": self.sequence,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ThreadState:
        return cls(
            migration_id=str(item["migrationId"]),
            wave=str(item["wave"]),
            app_name=str(item["appName"]),
            target_vm_name=str(item["targetVmName"]),
            target_account_id=str(item.get("targetAccountId", "")),
            target_region=str(item.get("targetRegion", "")),
            phase=int(item["phase"]),
            outcome=item["outcome"],
            detail=str(item.get("detail", "")),
            updated_at=str(item.get("updatedAt", "")),
            sequence=int(item.get("sequence", 0)),
        )

    @classmethod
    def new(cls, event: EventDetail) -> ThreadState:
        return cls(
            event.migration_id,
            event.wave,
            event.app_name,
            event.target_vm_name,
            event.target_account_id,
            event.target_region,
        )

    @property
    def lane(self) -> str:
        """Where the VM migrates: ``account / Region``, or empty when no event has said."""
        if not self.target_account_id:
            return ""
        return f"{self.target_account_id} / {self.target_region}"


@dataclass(frozen=True, slots=True)
class Message:
    text: str  # the notification text (and what screen readers say)
    blocks: tuple[dict[str, Any], ...] = ()
    # News nobody acts on (a migration finalized): posted with a token Slack has free now,
    # else owed and posted after the events behind it (a cutover job's 200 results must not
    # wait for 200 posts at one a second). Failures and rollbacks are posted at once.
    can_wait: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One event's effect: the new state, replies to post, the approval message's new form."""

    state: ThreadState
    replies: tuple[Message, ...] = ()
    approval_request: ApprovalRequested | None = None
    approval_decision: ApprovalDecided | None = None


def advance(state: ThreadState, event: EventDetail) -> Change:  # noqa: PLR0911 - one per type
    """Fold ``event`` (newer than ``state.sequence``) into the thread."""
    moved = replace(
        state,
        sequence=event.sequence,
        updated_at=event.timestamp.isoformat(),
        target_vm_name=event.target_vm_name or state.target_vm_name,
        target_account_id=event.target_account_id or state.target_account_id,
        target_region=event.target_region or state.target_region,
    )
    match event:
        case MigrationRequested():
            return Change(replace(moved, outcome="queued", detail=f"revision {event.revision}"))
        case MigrationStatusUpdated():
            return _status(moved, event)
        case ApprovalRequested():
            return Change(
                replace(
                    moved,
                    phase=STEP_PHASE[Step.AWAIT_APPROVAL],
                    outcome="awaiting approval",
                    detail=f"waiting for {_mention_all(event.approvers)}",
                ),
                approval_request=event,
            )
        case ApprovalDecided():
            decided = {
                "APPROVED": f"approved by {_who(event.decided_by)}",
                "REJECTED": f"rejected by {_who(event.decided_by)}: {event.reason}",
                "EXPIRED": "approval expired: nobody decided in time",
            }[event.decision]
            outcome: Outcome = "running" if event.decision == "APPROVED" else "rolling back"
            gate = max(state.phase, STEP_PHASE[Step.AWAIT_APPROVAL])
            return Change(
                replace(moved, phase=gate, outcome=outcome, detail=decided),
                approval_decision=event,
            )
        case MigrationParked():
            return Change(
                replace(moved, outcome="parked", detail=f"parked: {event.step} failed"),
                (parked_message(event),),
            )
        case MigrationCompleted():
            minutes = event.duration_seconds / 60
            done = replace(
                moved,
                phase=len(PHASES) - 1,
                outcome="migrated",
                detail=f"running as {event.target_instance_id}",
            )
            return Change(
                done,
                (
                    Message(
                        f":white_check_mark: Finalized: {event.target_vm_name} runs in AWS as "
                        f"`{event.target_instance_id}` ({minutes:.1f} min end to end).",
                        can_wait=True,
                    ),
                ),
            )
        case MigrationFailed():
            if state.outcome in {"rolling back", "rolled back"}:
                # The pipeline's last word after a rollback: the thread has told it already
                # (with two queues it may overtake the rollback's own end).
                return Change(moved)
            return Change(
                replace(moved, outcome="failed", detail=f"{event.step} failed: {event.cause}"),
                (Message(f":x: *{event.step} failed*: {event.cause}"),),
            )
        case RollbackStarted():
            return Change(
                replace(moved, outcome="rolling back", detail=event.reason),
                (Message(f":rewind: Rolling back after {event.step}: {event.reason}"),),
            )
        case RollbackCompleted():
            terminated = ", ".join(f"`{i}`" for i in event.terminated_instance_ids) or "none"
            return Change(
                replace(moved, outcome="rolled back", detail=event.reason),
                (
                    Message(
                        f":leftwards_arrow_with_hook: Rolled back: {event.reason}. Instances "
                        f"terminated: {terminated}; the source server is "
                        f"{event.source_server_state}."
                    ),
                ),
            )
    return Change(moved)  # pragma: no cover - every event type is matched above


def advance_late(state: ThreadState, event: EventDetail) -> Change:
    """Fold ``event``, older than ``state.sequence``, into the thread.

    Events of one migration come by two queues (approvals and failures ahead of routine
    events), so an older event can arrive after a newer one. Its replies and its approval
    message still belong in the thread (the caller posts them once); its state does not,
    since the thread shows something
    newer, unless it is the migration's end (``RollbackCompleted`` overtaken by the
    ``MigrationFailed`` that follows it): a final state is never dropped."""
    change = advance(state, event)
    if change.state.final and not state.final:
        moved = replace(change.state, sequence=state.sequence)
    else:
        moved = state
    # The approval message is its own: a late request is posted unless it was (the caller
    # knows), a late decision still edits it (an edit is idempotent), e.g. a decision by
    # `/wavepilot approve` whose event arrived after the cutover's first steps.
    return replace(change, state=moved)


def _status(state: ThreadState, event: MigrationStatusUpdated) -> Change:
    if event.data.get(REMOVED_FROM_MANIFESTS):
        # The VM left the manifests (publish --cancel-removed): what that did or did not do
        # (a cutover under way goes on) is a reply; where the migration stands is unchanged.
        return Change(
            replace(state, detail=event.message),
            (Message(f":wastebasket: *Removed from the manifests*: {_escape(event.message)}"),),
        )
    phase = STEP_PHASE.get(event.step, state.phase)
    outcome: Outcome = state.outcome
    if event.step == Step.ROLLBACK:
        outcome = "rolled back" if event.status == "SUCCEEDED" else "rolling back"
    elif event.step == Step.PARK:
        # Parked (WAITING) until an operator's Retry (SUCCEEDED) or a rollback.
        outcome = "parked" if event.status == "WAITING" else "running"
    elif event.status == "FAILED":
        outcome = "failed"
    elif event.status == "WAITING" and event.data.get("held"):
        # An operator paused the wave: this launch waits for the resume (the root says so).
        outcome = "paused"
    elif event.step == Step.AWAIT_APPROVAL and event.status == "WAITING":
        outcome = "awaiting approval"
    elif state.outcome in {"queued", "awaiting approval", "paused"} or phase > state.phase:
        outcome = "running"
    moved = replace(state, phase=max(phase, state.phase), outcome=outcome, detail=event.message)
    if event.step == Step.FINALIZE_CUTOVER and event.status == "WAITING":
        return Change(moved, (finalize_hold_message(event),))
    milestone = _milestone(event)
    return Change(moved, (Message(milestone),) if milestone else ())


def _milestone(event: MigrationStatusUpdated) -> str | None:
    """A step's report is a reply only when it failed, when a verified launch ran post-launch
    actions (each one's result: what the approver and the team need to see), when an operator
    cut a finalizeAfter hold short or retried a parked migration (who did), or when MGN's
    console had the server (or its application) elsewhere than the manifests (drift, put
    back): the rest is routine detail. (A held cutover's reply, with its button, is
    ``finalize_hold_message``.)"""
    if event.status == "FAILED":
        return f":x: *{event.step} failed*: {event.message}"
    actions = event.data.get("postLaunchActions")
    if event.step in _VERIFY_STEPS and event.status == "SUCCEEDED" and actions:
        return post_launch_reply(event.step, actions)
    if event.step == Step.FINALIZE_CUTOVER and event.status == "IN_PROGRESS":
        return f":fast_forward: {_upper_first(event.message)}"
    if event.step == Step.PARK and event.status == "SUCCEEDED":
        return f":repeat: {_upper_first(event.message)}"
    drift = event.data.get("mgnDrift")
    if drift and event.status == "SUCCEEDED":  # prepare_source found MGN's grouping changed
        return ":warning: *MGN's waves and applications differed from the manifests*: " + (
            "; ".join(_escape(str(item)) for item in drift)
        )
    return None


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def finalize_hold_message(event: MigrationStatusUpdated) -> Message:
    """A verified cutover held before FinalizeCutover: until when, how to go back, and the
    operators' **Finalize now** (behind Slack's confirmation: there is no way back after)."""
    line = f":hourglass_flowing_sand: Cutover verified, *finalize* {event.message}"
    name = event.target_vm_name or event.migration_id
    blocks = (
        {"type": "section", "text": {"type": "mrkdwn", "text": line}},
        {
            "type": "actions",
            "block_id": "finalize_hold",
            "elements": [
                {
                    "type": "button",
                    "action_id": FINALIZE_NOW_ACTION,
                    "text": _plain("Finalize now"),
                    "value": event.migration_id,
                    "confirm": {
                        "title": _plain(_clip(f"Finalize {name} now?", 100)),
                        "text": _plain(
                            _clip(
                                f"MGN finalizes the cutover of {name}: the replication "
                                "resources are deleted and the source can no longer be "
                                "returned to. Operators only.",
                                300,
                            )
                        ),
                        "confirm": _plain("Finalize now"),
                        "deny": _plain("Cancel"),
                        "style": "danger",
                    },
                }
            ],
        },
    )
    return Message(line, blocks)


def finalize_requested_message(user: str, at: str) -> Message:
    """The hold's message once an operator asked to finalize: the button is gone."""
    line = (
        f":fast_forward: *Finalize now* asked by {_who(user)} {slack_date(at)}: MGN's "
        "FinalizeCutover follows within minutes"
    )
    return Message(line, ({"type": "section", "text": {"type": "mrkdwn", "text": line}},))


def parked_message(event: MigrationParked) -> Message:
    """A parked migration's reply: what failed, that nothing runs, when it rolls back on its
    own, and the operators' two buttons (Roll back asks to confirm first)."""
    operators = _mention_all(event.operators) if event.operators else "the wave's operators"
    headline = (
        f":parking: *Parked* after *{event.step}* failed: {_clip(_escape(event.cause), 1_500)}"
    )
    body = (
        "Nothing is running: the test instance was terminated and the source keeps "
        f"replicating. {operators}: *Retry* starts the test launch again, *Roll back* ends "
        f"the migration. Nobody deciding rolls it back "
        f"{slack_date(event.rollback_at.isoformat(), TIME_FORMAT)}."
    )
    value = f"{event.migration_id}|{event.park_id}"
    text = (
        f"Parked: {event.target_vm_name} ({event.wave}) after {event.step} failed: "
        f"{event.cause}. Retry or Roll back; it rolls back on its own at "
        f"{event.rollback_at.isoformat()}."
    )
    blocks = (
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{headline}\n{body}"}},
        {
            "type": "actions",
            "block_id": "park",
            "elements": [
                {
                    "type": "button",
                    "action_id": PARK_RETRY_ACTION,
                    "text": _plain("Retry"),
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": PARK_ROLLBACK_ACTION,
                    "text": _plain("Roll back"),
                    "style": "danger",
                    "value": value,
                    "confirm": {
                        "title": _plain(_clip(f"Roll back {event.target_vm_name}?", 100)),
                        "text": _plain(
                            _clip(
                                f"End the migration of {event.target_vm_name} (wave "
                                f"{event.wave}); the source stays as it is. Publish it again "
                                "to start over.",
                                300,
                            )
                        ),
                        "confirm": _plain("Roll back"),
                        "deny": _plain("Cancel"),
                        "style": "danger",
                    },
                },
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"`{event.migration_id}` · `{event.park_id}`"}],
        },
    )
    return Message(text, blocks)


def park_decided_message(decision: str, user: str, at: str) -> Message:
    """The parked message once decided: the buttons are gone, who decided stays."""
    line = {
        "retry": f":repeat: *Retry* by {_who(user)} {slack_date(at)}: the test launch starts again",
        "rollback": f":leftwards_arrow_with_hook: *Roll back* by {_who(user)} {slack_date(at)}",
    }[decision]
    return Message(line, ({"type": "section", "text": {"type": "mrkdwn", "text": line}},))


_VERIFY_STEPS: dict[str, str] = {Step.VERIFY_TEST_LAUNCH: "test", Step.VERIFY_CUTOVER: "cutover"}
_ACTION_ICONS = {"SUCCESS": ":white_check_mark:", "IN_PROGRESS": ":hourglass:"}


def post_launch_reply(step: str, actions: list[dict[str, Any]]) -> str:
    """The post-launch actions' results on a verified launch's instance, one line each; an
    optional action that failed is a warning (the migration went on without it)."""
    failed = [a for a in actions if a.get("status") not in {"SUCCESS", "IN_PROGRESS"}]
    title = (
        f":warning: *Post-launch actions* on the {_VERIFY_STEPS.get(step, 'launched')} "
        f"instance: {len(failed)} optional action(s) did not succeed; the migration goes on"
        if failed
        else f":gear: *Post-launch actions* on the {_VERIFY_STEPS.get(step, 'launched')} "
        "instance succeeded"
    )
    lines = [title]
    for action in actions:
        icon = _ACTION_ICONS.get(str(action.get("status")), ":warning:")
        optional = "" if action.get("mustSucceedForCutover", True) else ", optional"
        reason = f": {_escape(str(action['reason']))}" if action.get("reason") else ""
        lines.append(
            f"{icon} `{_escape(str(action.get('name', '')))}` "
            f"({_escape(str(action.get('ssmDocument', '')))}{optional}) "
            f"{str(action.get('status', '')).lower()}{reason}"
        )
    return _clip("\n".join(lines), 3_000)


# --- rendering -----------------------------------------------------------------------------


def root_message(state: ThreadState) -> Message:
    """The root: the stage, what the VM is and where it goes; the detail of the event that
    brought the stage (who approved, which step failed). Routine progress is not shown here
    (each change would cost an edit): ``/wavepilot status`` has it."""
    stage = state.stage
    title = f"{STAGE_ICON[stage]} {state.target_vm_name}: {stage}"
    fields = [
        f"*Application*\n{state.app_name}",
        f"*Wave*\n{state.wave}",
        *([f"*Target account / Region*\n`{state.lane}`"] if state.lane else []),
        f"*Last update*\n{slack_date(state.updated_at)}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"`{_progress(state)}`"}},
    ]
    if state.detail:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(state.detail)}]}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"`{state.migration_id}` · step by step: "
                    f"`/wavepilot status {state.migration_id}`",
                }
            ],
        }
    )
    into = f" into {state.lane}" if state.lane else ""
    text = f"{state.target_vm_name} ({state.app_name}, {state.wave}{into}): {stage}"
    return Message(text, tuple(blocks))


def root_metadata(state: ThreadState) -> dict[str, Any]:
    """Message metadata: which event the root shows (lets anyone measure Slack's lag)."""
    return {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {
            "migration_id": state.migration_id,
            "sequence": state.sequence,
            "event_time": state.updated_at,
            "outcome": state.outcome,
        },
    }


def _progress(state: ThreadState) -> str:
    """``■■□□  Replicate and test > Approval > [Cutover] > Done``, by stage."""
    current = {"cutting over": 2, "migrated": 4}.get(state.stage)
    if current is None:  # in progress, or where it failed
        current = 2 if state.past_the_gate and state.outcome != "awaiting approval" else 0
        current = 1 if state.outcome == "awaiting approval" else current
    done = min(current, len(STAGES_SHOWN))
    bar = "".join("■" if i < done else "□" for i in range(len(STAGES_SHOWN)))
    names = " > ".join(f"[{name}]" if i == current else name for i, name in enumerate(STAGES_SHOWN))
    return f"{bar}  {names}"


class CutoverFacts(Protocol):
    """What a cutover confirmation names; an ``ApprovalRequested`` event and a stored
    ``ApprovalRecord`` both have it."""

    @property
    def target_vm_name(self) -> str: ...
    @property
    def wave(self) -> str: ...
    @property
    def target_account_id(self) -> str: ...
    @property
    def target_region(self) -> str: ...
    @property
    def window_start(self) -> datetime | None: ...
    @property
    def window_end(self) -> datetime | None: ...


# Block Kit's limits for a confirmation dialog (plain_text characters).
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30


def cutover_question(facts: CutoverFacts) -> str:
    """The question, in plain text: VM, wave, target account and Region, cutover window."""
    return (
        f"Approve the cutover of {facts.target_vm_name} (wave {facts.wave}) "
        f"into {target_plain(facts)}, in the window {window_plain(facts)}?"
    )


def cutover_confirm(facts: CutoverFacts) -> dict[str, Any]:
    """Slack's confirmation dialog for Approve: no production cutover on one click."""
    return {
        "title": _plain(_clip(f"Cut over {facts.target_vm_name}?", CONFIRM_TITLE_MAX)),
        "text": _plain(_clip(cutover_question(facts), CONFIRM_TEXT_MAX)),
        "confirm": _plain("Approve cutover"),
        "deny": _plain("Cancel"),
        "style": "danger",
    }


def target_plain(facts: CutoverFacts) -> str:
    if not facts.target_account_id and not facts.target_region:
        return "the pipeline's own AWS account and Region (the request names no target)"
    return (
        f"AWS account {facts.target_account_id or '(not named)'} "
        f"in {facts.target_region or '(Region not named)'}"
    )


def window_plain(facts: CutoverFacts) -> str:
    """``2026-12-05 20:00 to 2026-12-06 02:00 UTC-05:00`` (the manifest's own offset)."""
    start, end = facts.window_start, facts.window_end
    if start is None or end is None:
        return "none set (the cutover starts once approved)"
    end = end.astimezone(start.tzinfo)
    offset = start.utcoffset() or timedelta(0)
    zone = "UTC" if not offset else f"UTC{start.strftime('%z')[:3]}:{start.strftime('%z')[3:]}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} {zone}"


def approval_request_message(event: ApprovalRequested) -> Message:
    """The approval message: what the approver needs to decide, and the buttons.

    Approve opens Slack's confirmation dialog naming the VM, wave, target and window."""
    approvers = _mention_all(event.approvers)
    instance = event.test_instance
    tested = (
        f"`{instance.instance_id}` at `{instance.private_ip or 'no private IP'}`"
        if instance
        else "not reported"
    )
    window = (
        f"{slack_date(event.window_start.isoformat(), TIME_FORMAT)} to "
        f"{slack_date(event.window_end.isoformat(), TIME_FORMAT)}"
        if event.window_start and event.window_end
        else window_plain(event)
    )
    target = (
        f"`{event.target_account_id or '(not named)'}` {event.target_region}".rstrip()
        if event.target_account_id or event.target_region
        else "the pipeline's own account and Region"
    )
    fields = [
        f"*VM*\n{event.target_vm_name}",
        f"*Application / wave*\n{event.app_name} / {event.wave}",
        f"*Target account / Region*\n{target}",
        f"*Cutover window*\n{window}",
        f"*Test instance*\n{tested}",
        f"*Requested by*\n{_escape(event.requested_by) or 'unknown (no commit author)'}",
        f"*Expires*\n{slack_date(event.expires_at.isoformat())}",
    ]
    passed = sum(check.passed for check in event.health_checks)
    succeeded = sum(action.status == "SUCCESS" for action in event.post_launch_actions)
    actions_plain = (
        f"post-launch actions {succeeded}/{len(event.post_launch_actions)} succeeded; "
        if event.post_launch_actions
        else ""
    )
    tested_plain = (
        f"{instance.instance_id} ({instance.private_ip or 'no private IP'})"
        if instance
        else "not reported"
    )
    text = (
        f"Approval needed: {event.summary} Test instance {tested_plain}, "
        f"health checks {passed}/{len(event.health_checks)} passed; {actions_plain}"
        f"window {window_plain(event)}. Approvers: {approvers}"
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f":raised_hand: *Approval needed* {approvers}\n{event.summary}",
            },
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _health_lines(event)}},
        *(
            [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": post_launch_reply(
                            Step.VERIFY_TEST_LAUNCH,
                            [
                                a.model_dump(mode="json", by_alias=True)
                                for a in event.post_launch_actions
                            ],
                        ),
                    },
                }
            ]
            if event.post_launch_actions
            else []
        ),
        {
            "type": "actions",
            "block_id": "approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "text": _plain("Approve"),
                    "style": "primary",
                    "value": event.approval_id,
                    "confirm": cutover_confirm(event),
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION,
                    "text": _plain("Reject"),
                    "style": "danger",
                    "value": event.approval_id,
                },
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"`{event.approval_id}`"}],
        },
    ]
    return Message(text, tuple(blocks))


def _health_lines(event: ApprovalRequested) -> str:
    if not event.health_checks:
        if event.test_instance is None:
            return "*Health checks*\nnot reported"
        return "*Health checks*\nnone in the manifest: only EC2's status checks were run"
    lines = [_health_line(check) for check in event.health_checks]
    return _clip("*Health checks*\n" + "\n".join(lines), 3_000)


def _health_line(check: HealthCheckResult) -> str:
    icon, verdict = (":white_check_mark:", "passed") if check.passed else (":x:", "failed")
    detail = f": {_escape(check.detail)}" if check.detail else ""
    return f"{icon} {check.type} `{_escape(check.target)}` {verdict}{detail}"


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def approval_decided_message(
    approval_id: str, decision: str, decided_by: str, reason: str, at: str
) -> Message:
    """The approval message once decided: the buttons are gone, the decision stays."""
    when = slack_date(at)
    line = {
        "APPROVED": f":white_check_mark: *Approved* by {_who(decided_by)} {when}",
        "REJECTED": f":no_entry: *Rejected* by {_who(decided_by)} {when}: {_clip(reason)}",
        "EXPIRED": f":hourglass: *Expired* {when}: nobody decided in time; rolling back",
    }.get(decision, f"{decision} by {_who(decided_by)} {when}")
    blocks = (
        {"type": "section", "text": {"type": "mrkdwn", "text": line}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{approval_id}`"}]},
    )
    return Message(line, blocks)


def mention(principal: str) -> str:
    """``<@U...>`` for a user, ``<!subteam^S...>`` for a user group."""
    return f"<!subteam^{principal}>" if principal.startswith("S") else f"<@{principal}>"


def _mention_all(principals: list[str]) -> str:
    return ", ".join(mention(p) for p in principals) or "nobody (no approvers listed)"


def _who(user: str) -> str:
    return "Wavepilot" if user == "wavepilot" else f"<@{user}>"


TIME_SECS_FORMAT = "{date_short_pretty} {time_secs}"
TIME_FORMAT = "{date_short_pretty} {time}"


def slack_date(iso: str, token_format: str = TIME_SECS_FORMAT) -> str:
    """Slack renders ``<!date^epoch^...|fallback>`` in each reader's own time zone."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso)
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{token_format}|{moment.isoformat()}>"


def _escape(text: str) -> str:
    """Free text in mrkdwn: ``&``, ``<`` and ``>`` are Slack's control characters
    (a commit author ``Dana <dana@contoso.com>`` would otherwise vanish into a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = 2_000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
