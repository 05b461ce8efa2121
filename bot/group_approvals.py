"""Group approval messages: one per approval group in the wave's channel, edited as its
members pass their test launch (ready), fail, or are decided.

A group is the manifest's ``approval.scope`` (``application``: ``<wave>/<app>``; ``wave``:
``<wave>``). The message is posted when the first member's ``ApprovalRequested`` arrives and
edited for every member event after that; its buttons (Approve all ready, Approve selected,
Reject) carry the group key only. Deciding is :meth:`ApprovalService.decide_group`'s job:
each VM keeps its own token, decision and audit entry.

Fold, then effects: :func:`fold` is pure (state, event) -> state; :class:`GroupApprovalMessages`
loads the state item, folds, posts or edits the message and saves. The state item lives with
the migrations (``APPROVALGROUP#<group>`` / ``SLACK``) and is written conditionally on its
version, so a second writer never silently loses a member.

The group's size (for "still testing") is counted once, from the wave's migration records, when
the group is first seen (every member was published long before the first test launch passed);
a member the count missed (published later) raises it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from bot.threads import Message, mention, target_plain, window_plain
from orchestration.adapters.dynamo_transactions import (
    MAX_ITEMS_PER_TRANSACTION,
    put_all_but_refused,
)
from orchestration.adapters.state_store import MigrationRecord, MigrationStore
from orchestration.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventDetail,
    MigrationFailed,
    RollbackStarted,
)
from orchestration.observability import logger
from orchestration.pipeline.approvals import GroupOutcome
from orchestration.pipeline.spec import approval_group

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from bot.slack_api import PacedSlack

GROUP_APPROVE_READY_ACTION = "group_approve_ready"
GROUP_APPROVE_SELECTED_ACTION = "group_approve_selected"
GROUP_REJECT_ACTION = "group_reject"
GROUP_SK = "SLACK"
# The ts of a group message being posted (claimed by the notifier posting it).
POSTING = "posting"
CONFLICT_ATTEMPTS = 20
# A wave's group sizes, read with one Query of the wave, serve every group of it first seen
# within this many Slack seconds (a wave of 1,000 VMs in 100 applications: one Query, not 100).
GROUP_SIZES_MAX_AGE_SECONDS = 60.0

MemberStatus = Literal["ready", "failed", "approved", "rejected", "expired"]
DECIDED: frozenset[str] = frozenset({"approved", "rejected", "expired"})
DECISION_STATUS: dict[str, MemberStatus] = {
    "APPROVED": "approved",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
}
# Block Kit: checkboxes take at most 10 options, multi_static_select at most 100.
CHECKBOX_OPTIONS = 10
SELECT_OPTIONS = 100
# How many VM names the message lists per status before "and N more".
LISTED_NAMES = 15


@dataclass(frozen=True, slots=True)
class Member:
    migration_id: str
    vm: str
    status: MemberStatus
    sequence: int
    approval_id: str = ""
    note: str = ""  # who decided, or why it failed

    def to_item(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "status": self.status,
            "sequence": self.sequence,
            "approvalId": self.approval_id,
            "note": self.note,
        }

    @classmethod
    def from_item(cls, migration_id: str, item: dict[str, Any]) -> Member:
        return cls(
            migration_id,
            str(item["vm"]),
            item["status"],
            int(item["sequence"]),
            str(item.get("approvalId", "")),
            str(item.get("note", "")),
        )


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a group's message shows, folded from its members' events."""

    group: str
    wave: str
    app_name: str  # "" for a wave group
    size: int
    channel: str = ""
    ts: str = ""  # the message, once posted
    approvers: tuple[str, ...] = ()
    target_account_id: str = ""
    target_region: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    members: dict[str, Member] = field(default_factory=dict)
    version: int = 0  # of the stored item

    def count(self, status: str) -> int:
        return sum(1 for member in self.members.values() if member.status == status)

    @property
    def testing(self) -> int:
        """Members not heard of yet: still replicating or testing."""
        return max(0, self.size - len(self.members))

    @property
    def ready(self) -> list[Member]:
        return sorted((m for m in self.members.values() if m.status == "ready"), key=lambda m: m.vm)

    @property
    def what(self) -> str:
        return f"{self.app_name} (wave {self.wave})" if self.app_name else f"wave {self.wave}"

    # CutoverFacts, for the shared wording of targets and windows.
    @property
    def target_vm_name(self) -> str:
        return self.what


def fold(state: GroupState, event: EventDetail) -> GroupState:
    """Fold one member event in; an event not newer than what the member shows is ignored."""
    current = state.members.get(event.migration_id)
    if current is not None and event.sequence <= current.sequence:
        return state
    member: Member | None = None
    vm = event.target_vm_name or (current.vm if current else event.migration_id)
    match event:
        case ApprovalRequested():
            member = Member(event.migration_id, vm, "ready", event.sequence, event.approval_id)
            state = replace(
                state,
                approvers=tuple(event.approvers),
                target_account_id=event.target_account_id,
                target_region=event.target_region,
                window_start=event.window_start,
                window_end=event.window_end,
            )
        case ApprovalDecided():
            status = DECISION_STATUS[event.decision]
            note = "nobody decided in time" if status == "expired" else f"<@{event.decided_by}>"
            member = Member(event.migration_id, vm, status, event.sequence, event.approval_id, note)
        case MigrationFailed() | RollbackStarted():
            if current is not None and current.status in DECIDED:
                return state  # the decision stays what the group message shows
            cause = event.cause if isinstance(event, MigrationFailed) else event.reason
            member = Member(
                event.migration_id, vm, "failed", event.sequence, note=f"{event.step}: {cause}"
            )
    if member is None:
        return state
    members = {**state.members, event.migration_id: member}
    return replace(state, members=members, size=max(state.size, len(members)))


GROUP_METADATA_EVENT_TYPE = "wavepilot_approval_group"


def group_metadata(state: GroupState) -> dict[str, Any]:
    """The message's metadata: the group and its counts (how many members have reached the
    gate, ``ready`` or decided, is what a reader, or the rehearsal, checks it by)."""
    decided = sum(state.count(status) for status in ("approved", "rejected", "expired"))
    return {
        "event_type": GROUP_METADATA_EVENT_TYPE,
        "event_payload": {
            "group": state.group,
            "size": state.size,
            "ready": len(state.ready),
            "decided": decided,
            "failed": state.count("failed"),
        },
    }


def group_message(state: GroupState) -> Message:
    """The group's approval message: counts, who is ready, and the three buttons while any
    member is ready."""
    ready = state.ready
    counts = (
        f"*{len(ready)} ready* · {state.testing} still testing · {state.count('failed')} failed"
        f" · {state.count('approved')} approved · {state.count('rejected')} rejected"
        + (f" · {state.count('expired')} expired" if state.count("expired") else "")
    )
    approvers = ", ".join(mention(p) for p in state.approvers) or "nobody listed"
    head = f":raised_hand: *Approval: {state.what}* ({state.size} VMs)"
    fields = [
        f"*Target account / Region*\n{target_plain(state)}",
        f"*Cutover window*\n{window_plain(state)}",
        f"*Approvers*\n{approvers}",
        f"*Group*\n`{state.group}`",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{counts}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    lines = [
        _names(":white_check_mark: Ready", ready),
        _names(":x: Failed", _with("failed", state)),
        _names(":heavy_check_mark: Approved", _with("approved", state)),
        _names(":no_entry: Rejected", _with("rejected", state)),
        _names(":hourglass: Expired", _with("expired", state)),
    ]
    listed = "\n".join(line for line in lines if line)
    if listed:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(listed)}})
    if ready:
        blocks.append(
            {
                "type": "actions",
                "block_id": "group_approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": GROUP_APPROVE_READY_ACTION,
                        "text": _plain("Approve all ready"),
                        "style": "primary",
                        "value": state.group,
                        "confirm": group_confirm(state, len(ready)),
                    },
                    {
                        "type": "button",
                        "action_id": GROUP_APPROVE_SELECTED_ACTION,
                        "text": _plain("Approve selected"),
                        "value": state.group,
                    },
                    {
                        "type": "button",
                        "action_id": GROUP_REJECT_ACTION,
                        "text": _plain("Reject"),
                        "style": "danger",
                        "value": state.group,
                    },
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Each VM is decided on its own (its own audit entry); only VMs "
                    "ready when you click are covered. Those left out keep waiting until "
                    "their approval expires, then roll back.",
                }
            ],
        }
    )
    text = (
        f"Approval: {state.what}: {len(ready)} ready, {state.testing} still testing, "
        f"{state.count('failed')} failed, {state.count('approved')} approved, "
        f"{state.count('rejected')} rejected"
    )
    return Message(text, tuple(blocks))


def group_question(state: GroupState | GroupFacts, ready: int) -> str:
    """The confirmation's question: the count, the wave, the account, the window."""
    vms = "1 VM" if ready == 1 else f"{ready} VMs"
    return (
        f"Approve the cutover of the {vms} ready now in {state.what} into "
        f"{target_plain(state)}, in the window {window_plain(state)}?"
    )


def group_confirm(state: GroupState, ready: int) -> dict[str, Any]:
    return {
        "title": _plain(_clip(f"Cut over {ready} VMs?" if ready != 1 else "Cut over 1 VM?", 100)),
        "text": _plain(_clip(group_question(state, ready), 300)),
        "confirm": _plain("Approve cutover"),
        "deny": _plain("Cancel"),
        "style": "danger",
    }


@dataclass(frozen=True, slots=True)
class GroupFacts:
    """What a group confirmation names, from the group's pending approvals (the command)."""

    wave: str
    what: str
    target_account_id: str
    target_region: str
    window_start: datetime | None
    window_end: datetime | None

    @property
    def target_vm_name(self) -> str:
        return self.what


def _with(status: str, state: GroupState) -> list[Member]:
    return sorted((m for m in state.members.values() if m.status == status), key=lambda m: m.vm)


def _names(label: str, members: Sequence[Member]) -> str:
    if not members:
        return ""
    shown = ", ".join(
        f"{m.vm}" + (f" ({m.note})" if m.note and m.status != "ready" else "")
        for m in members[:LISTED_NAMES]
    )
    more = f" and {len(members) - LISTED_NAMES} more" if len(members) > LISTED_NAMES else ""
    return f"{label} ({len(members)}): {shown}{more}"


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def _clip(text: str, limit: int = 2_900) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the modals ----------------------------------------------------------------------------

SELECT_MODAL = "group_approve_selected_modal"
SELECT_BLOCK = "vms"
SELECT_INPUT = "vms_input"
REJECT_MODAL = "group_reject_modal"


def select_modal(group: str, ready: Sequence[tuple[str, str]], channel: str) -> dict[str, Any]:
    """Approve selected: the VMs ready now (approval ID, VM name), as checkboxes when they
    fit (10), else a multi-select (100); beyond 100 the first 100 are offered and the modal
    says how many more wait (approve those next, or with Approve all ready)."""
    offered = list(ready[:SELECT_OPTIONS])
    options = [{"text": _plain(_clip(vm, 75)), "value": approval_id} for approval_id, vm in offered]
    element: dict[str, Any]
    if len(options) <= CHECKBOX_OPTIONS:
        element = {"type": "checkboxes", "action_id": SELECT_INPUT, "options": options}
    else:
        element = {
            "type": "multi_static_select",
            "action_id": SELECT_INPUT,
            "placeholder": _plain("VMs to approve"),
            "options": options,
        }
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": SELECT_BLOCK,
            "label": _plain("VMs ready now (each is decided and audited on its own)"),
            "element": element,
        }
    ]
    if len(ready) > SELECT_OPTIONS:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{len(ready) - SELECT_OPTIONS} more are ready: Slack lists at "
                        "most 100 here. Approve these, then open this again for the rest.",
                    }
                ],
            }
        )
    return {
        "type": "modal",
        "callback_id": SELECT_MODAL,
        "private_metadata": json.dumps({"group": group, "channel": channel}),
        "title": _plain("Approve selected"),
        "submit": _plain("Approve cutover"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def selected_ids(view: dict[str, Any]) -> list[str]:
    values = (view.get("state") or {}).get("values") or {}
    chosen = (values.get(SELECT_BLOCK) or {}).get(SELECT_INPUT) or {}
    return [str(option["value"]) for option in chosen.get("selected_options") or []]


# --- the executor --------------------------------------------------------------------------


class GroupMessageConflictError(Exception):
    """The stored group state moved on since it was read."""


class GroupStore:
    """Group states in the state table (``APPROVALGROUP#<group>`` / ``SLACK``)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def _key(group: str) -> dict[str, str]:
        return {"pk": f"APPROVALGROUP#{group}", "sk": GROUP_SK}

    def get(self, group: str) -> GroupState | None:
        item: dict[str, Any] | None = self._table.get_item(
            Key=self._key(group), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return GroupState(
            group=group,
            wave=str(item["wave"]),
            app_name=str(item.get("appName", "")),
            size=int(item["size"]),
            channel=str(item.get("channel", "")),
            ts=str(item.get("ts", "")),
            approvers=tuple(str(a) for a in item.get("approvers") or []),
            target_account_id=str(item.get("targetAccountId", "")),
            target_region=str(item.get("targetRegion", "")),
            window_start=_moment(item.get("windowStart")),
            window_end=_moment(item.get("windowEnd")),
            members={
                migration_id: Member.from_item(migration_id, dict(value))
                for migration_id, value in _members_item(item).items()
            },
            version=int(item.get("version", 0)),
        )

    def save(self, state: GroupState) -> GroupState:
        """Write ``state`` if the stored item is still at ``state.version``."""
        try:
            self._table.put_item(**self._conditional_put(state))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise GroupMessageConflictError(state.group) from None
            raise
        return replace(state, version=state.version + 1)

    def save_many(self, states: Sequence[GroupState]) -> tuple[list[GroupState], set[str]]:
        """Write each state if its stored item is still at its version, in as few calls as
        DynamoDB allows (``TransactWriteItems``, up to 100 items; one state is a ``PutItem``):
        the states as saved, and the groups whose item had moved on (nothing written for
        them). Raises for any other failure (nothing of that call written)."""
        saved: list[GroupState] = []
        conflicts: set[str] = set()
        for start in range(0, len(states), MAX_ITEMS_PER_TRANSACTION):
            chunk_saved, chunk_conflicts = self._save_chunk(
                list(states[start : start + MAX_ITEMS_PER_TRANSACTION])
            )
            saved += chunk_saved
            conflicts |= chunk_conflicts
        return saved, conflicts

    def _save_chunk(self, states: list[GroupState]) -> tuple[list[GroupState], set[str]]:
        if not states:
            return [], set()
        if len(states) == 1:
            try:
                return [self.save(states[0])], set()
            except GroupMessageConflictError:
                return [], {states[0].group}
        moved = put_all_but_refused(
            self._table, [(state.group, self._conditional_put(state)) for state in states]
        )
        return [
            replace(state, version=state.version + 1)
            for state in states
            if state.group not in moved
        ], moved

    def _conditional_put(self, state: GroupState) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self._key(state.group),
            "wave": state.wave,
            "appName": state.app_name,
            "size": state.size,
            "channel": state.channel,
            "ts": state.ts,
            "approvers": list(state.approvers),
            "targetAccountId": state.target_account_id,
            "targetRegion": state.target_region,
            "windowStart": state.window_start.isoformat() if state.window_start else "",
            "windowEnd": state.window_end.isoformat() if state.window_end else "",
            "members": {m.migration_id: m.to_item() for m in state.members.values()},
            "version": state.version + 1,
        }
        return {
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk) OR version = :previous",
            "ExpressionAttributeValues": {":previous": state.version},
        }


def _members_item(item: dict[str, Any]) -> dict[str, Any]:
    return dict(item.get("members") or {})


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


# Group states a container keeps (a wave of 1,000 VMs has a few hundred groups at most).
MAX_KEPT_GROUPS = 2_000


class GroupApprovalMessages:
    """Keep each approval group's Slack message up to date with its members' events."""

    def __init__(
        self,
        store: GroupStore,
        migrations: MigrationStore,
        slack: PacedSlack,
        channel_for: Callable[[EventDetail], str],
    ) -> None:
        self._store = store
        self._migrations = migrations
        self._slack = slack
        self._channel_for = channel_for
        # Groups whose message owes an edit, and since when (Slack seconds): a burst of ready
        # members edits each message once when Slack has a token, not once per batch.
        self._owed: dict[str, float] = {}
        # Wave -> (when read, Slack seconds; members per group): see _size.
        self._sizes: dict[str, tuple[float, Counter[str]]] = {}
        # Each group as this container last saved it: folded on without a read (a save is
        # conditional on its version, so one another notifier moved on is read again).
        self._saved: dict[str, GroupState] = {}

    def group_of(self, event: EventDetail) -> str:
        """The event's approval group, "" if it has none (vm scope) or does not concern one."""
        match event:
            case ApprovalRequested() | ApprovalDecided():
                return event.approval_group
            case MigrationFailed() | RollbackStarted():
                record = self._migrations.get(event.migration_id)
                return _record_group(record) if record is not None else ""
        return ""

    def apply(self, events: Sequence[EventDetail]) -> int:
        """Fold a batch's events into their groups' messages: per group one read and one
        Slack call, however many of its members the batch moved (a group of 200 ready in the
        same minute is a handful of edits, not 200), and one write for all the groups the
        batch moved (a batch of ten approvals in ten applications: one write, not ten).
        Returns how many groups moved.

        The states are saved first (conditionally), Slack is called after: of two notifiers
        folding the same group at once, the loser folds again on what the winner saved. The
        first ready member claims the post (``ts = "posting"``) in that save, so only one
        message is ever posted; members folded while it posts are shown by the poster's
        final edit."""
        by_group: dict[str, list[EventDetail]] = {}
        for event in events:
            group = self.group_of(event)
            if group:
                by_group.setdefault(group, []).append(event)
        moved = 0
        pending = by_group
        # A conflict means another notifier saved the group: fold again on what it saved.
        for _attempt in range(CONFLICT_ATTEMPTS):
            folded = {
                group: fold_and_claim
                for group, members in pending.items()
                if (fold_and_claim := self._fold(group, members)) is not None
            }
            claiming = {group for group, (_, claims) in folded.items() if claims}
            # Saved first, together (one write for the batch's groups), Slack called after.
            saved, conflicts = self._store.save_many([state for state, _ in folded.values()])
            failed: Exception | None = None
            for state in saved:
                self._keep(state)
                try:
                    if state.group in claiming:
                        self._post(state)
                    elif state.ts and state.ts != POSTING:
                        self._show_or_owe(state)
                except Exception as exc:
                    # The other groups are still shown; this one's edit is owed, and the
                    # batch's events come again (the caller fails them).
                    if state.ts and state.ts != POSTING:
                        self._owed.setdefault(state.group, self._slack.wall_seconds())
                    failed = failed or exc
            if failed is not None:
                raise failed
            moved += len(saved)
            for group in conflicts:
                self._saved.pop(group, None)
                logger.info("group state moved on; folding again", extra={"group": group})
            pending = {group: by_group[group] for group in conflicts}
            if not pending:
                return moved
        raise GroupMessageConflictError(next(iter(pending)))

    def _fold(self, group: str, events: Sequence[EventDetail]) -> tuple[GroupState, bool] | None:
        """The group's state with the batch's events folded in, and whether this fold claims
        its post (the first ready member: ``ts = "posting"``, only one message is ever
        posted); None if they change nothing."""
        state = self._saved.get(group) or self._store.get(group)
        if state is None:
            wave, _, app = group.partition("/")
            state = GroupState(group, wave, app, size=self._size(group, wave))
        folded = state
        for event in events:
            folded = fold(folded, event)
        if folded == state:
            return None
        if not folded.ts and folded.ready:
            return replace(folded, ts=POSTING, channel=self._channel_for(events[0])), True
        return folded, False

    def _post(self, claimed: GroupState) -> None:
        message = group_message(claimed)
        ts = self._slack.post(
            claimed.channel,
            text=message.text,
            blocks=message.blocks,
            metadata=group_metadata(claimed),
        )
        shown = claimed.version
        latest = claimed  # as saved here; read again only if another notifier saved since
        while True:
            try:
                posted = self._keep(self._store.save(replace(latest, ts=ts)))
                break
            except GroupMessageConflictError:
                # Another member was folded in meanwhile: keep it, add the ts.
                latest = self._store.get(claimed.group) or claimed
        if posted.version != shown + 1:
            self._show_or_owe(posted)  # members folded while posting

    def _keep(self, saved: GroupState) -> GroupState:
        self._saved[saved.group] = saved
        if len(self._saved) > MAX_KEPT_GROUPS:
            self._saved.pop(next(iter(self._saved)))
        return saved

    def _show_or_owe(self, state: GroupState) -> None:
        """Edit the message with a token Slack has free now, else owe the edit (paid by
        ``pay_owed`` with the group's state as it is then)."""
        message = group_message(state)
        if self._slack.try_update(
            state.channel,
            state.ts,
            text=message.text,
            blocks=message.blocks,
            metadata=group_metadata(state),
        ):
            self._owed.pop(state.group, None)
        else:
            self._owed.setdefault(state.group, self._slack.wall_seconds())

    def owed(self) -> list[str]:
        """Groups whose message owes an edit, the longest owed first."""
        return sorted(self._owed, key=self._owed.__getitem__)

    def adopt_owed(self, groups: Sequence[str]) -> None:
        now = self._slack.wall_seconds()
        for group in groups:
            self._owed.setdefault(group, now)

    def pay_owed(self, *, wait: bool, budget_seconds: float = 0.0) -> list[str]:
        """Edit owed group messages to their stored state, the longest owed first: with the
        tokens Slack has free now, or waiting for up to ``budget_seconds``. Returns what is
        still owed."""
        started = self._slack.wall_seconds()
        for group in self.owed():
            if wait and self._slack.wall_seconds() - started >= budget_seconds:
                break
            # As this container saved it last (only notifiers write groups, one at a time;
            # a group another container moved on is read again at its next save).
            state = self._saved.get(group) or self._store.get(group)
            if state is None or not state.ts or state.ts == POSTING:
                self._owed.pop(group, None)  # nothing to edit (the poster shows it)
                continue
            message = group_message(state)
            arguments: dict[str, Any] = {
                "text": message.text,
                "blocks": message.blocks,
                "metadata": group_metadata(state),
            }
            if wait:
                self._slack.update(state.channel, state.ts, **arguments)
            elif not self._slack.try_update(state.channel, state.ts, **arguments):
                break  # edits share one budget: none is free now
            self._owed.pop(group, None)
        return self.owed()

    def _size(self, group: str, wave: str) -> int:
        """Members of a group first seen: every group of the wave counted from one read of
        the wave, kept a minute (its groups' first members come together)."""
        now = self._slack.wall_seconds()
        read = self._sizes.get(wave)
        if read is None or now - read[0] > GROUP_SIZES_MAX_AGE_SECONDS or group not in read[1]:
            sizes = Counter(_record_group(r) for r in self._migrations.wave_migrations(wave))
            read = self._sizes[wave] = (now, sizes)
        return read[1][group]


def _record_group(record: MigrationRecord) -> str:
    vm = record.request.effective_vm
    if vm is None:
        return ""
    return approval_group(vm.approval_scope, record.wave, record.app_name)


def grouped(event: ApprovalRequested) -> bool:
    """Whether the approval is decided through a group message (not in the VM's thread)."""
    return bool(event.approval_group)


# --- what the decider is told ----------------------------------------------------------------


def outcome_text(outcome: GroupOutcome) -> str:
    """One ephemeral answer for a group decision: what was decided, what was refused, why."""
    decision = outcome.decision
    verb = "Approved" if decision.summary.startswith("approve") else "Rejected"
    if outcome.ready == 0:
        return (
            f":information_source: Nothing to decide in `{decision.group}`: no VM is waiting "
            "for a decision now (still testing, failed, or decided already)."
        )
    refused = outcome.refused
    if refused and not outcome.decided:
        reasons = {str(error) for _approval, error in refused}
        if len(reasons) == 1:
            [reason] = reasons
            return (
                f":warning: {reason}: nothing decided in `{decision.group}` "
                f"({len(refused)} VMs refused, each audited)."
            )
    lines = [
        f":white_check_mark: {verb} {len(outcome.decided)} of {outcome.ready} ready in "
        f"`{decision.group}` (decision `{decision.decision_id}`)."
        if outcome.decided
        else f":warning: Nothing decided in `{decision.group}`."
    ]
    lines.extend(
        f"• skipped {approval.target_vm_name}: {error}" for approval, error in refused[:20]
    )
    if len(refused) > 20:
        lines.append(f"• … and {len(refused) - 20} more skipped")
    if outcome.not_pending:
        lines.append(
            f"• {len(outcome.not_pending)} selected VMs were no longer waiting (decided or "
            "expired meanwhile)"
        )
    return "\n".join(lines)
