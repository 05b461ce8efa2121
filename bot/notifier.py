"""Status events -> each migration's Slack thread, and each wave's summary.

A thread costs a handful of Slack calls over a whole migration (docs/SLACK.md, "The budget"):
the root is posted once and edited only when its stage changes (coalesced), replies are only
what a person needs (failures, rollbacks, the final result, the approval message), and the
thread item is written only when something shown in Slack changed or must be remembered.

Order: events of one migration come by two queues (approvals and failures ahead of routine
events), and EventBridge and SQS deliver at least once, so an event can be older than what
the thread has folded in. The root shows the newest state (the event's ``sequence`` decides);
an older event's replies are still posted, exactly once (the thread remembers which events'
replies it posted); an older routine event is dropped. Root edits are coalesced: the root is
edited for the last of a migration's events in a batch (the handler says which that is), and
an edit that fails or waits is owed and paid on the next event or redelivery, so the final
state always reaches Slack.

One event is handled as fold, then effects, then save: ``advance`` (pure, bot/threads.py)
says what changes; ``_show`` makes the Slack calls, idempotent edits before posts, so a
failure part-way leaves nothing that a redelivery would post twice; ``_keep`` writes the item
if it must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.group_approvals import GroupApprovalMessages, grouped
from bot.slack_api import PacedSlack
from bot.summary_notifier import WaveSummaryNotifier
from bot.thread_store import SlackThread, StaleThreadError, ThreadExistsError, ThreadStore
from bot.threads import (
    Change,
    ThreadState,
    advance,
    advance_late,
    approval_decided_message,
    approval_request_message,
    root_message,
    root_metadata,
)
from orchestration.adapters.state_store import MigrationStore
from orchestration.events import EventDetail
from orchestration.observability import logger

# "late": older than the thread, its replies posted now; "duplicate": nothing left to do.
Applied = Literal["applied", "late", "duplicate", "no channel"]
MAX_KNOWN_THREADS = 5_000
# A root's change of stage that is not shown at once (rolling back) waits until the root has
# not been edited for this long (Slack seconds): chat.update is one budget of about 50 a
# minute for the whole workspace.
MIN_ROOT_EDIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Known:
    """A thread as this container last folded it, and the sequence its item holds (the
    item is not written for an event that changed nothing shown)."""

    thread: SlackThread
    stored_sequence: int


class StatusNotifier:
    def __init__(
        self,
        threads: ThreadStore,
        migrations: MigrationStore,
        slack: PacedSlack,
        default_channel: str,
        *,
        summaries: WaveSummaryNotifier | None = None,
        groups: GroupApprovalMessages | None = None,
    ) -> None:
        self._groups = groups  # approval groups (issue 15): bot/group_approvals.py
        self._threads = threads
        self._migrations = migrations
        self._slack = slack
        self._default_channel = default_channel
        self._summaries = summaries
        # The notifier runs one container at a time, so most reads are saved; every write is
        # conditional on the sequence the item held when this container read or wrote it.
        self._known: dict[str, _Known] = {}

    def apply(self, event: EventDetail, *, edit_root: bool) -> Applied:
        """Fold one event into its thread; edit the root too when ``edit_root``."""
        try:
            applied = self._apply(event, edit_root=edit_root)
        except StaleThreadError:
            # Another writer moved the thread on (a second container): start from the table.
            self._known.pop(event.migration_id, None)
            applied = self._apply(event, edit_root=edit_root)
        return applied

    def apply_to_groups(self, events: Sequence[EventDetail]) -> None:
        """Fold a batch's events (already in their threads) into their approval groups'
        messages: after the threads, once per batch, so members of one group folded side by
        side never race for its message (bot/group_approvals.py)."""
        if self._groups is not None:
            self._groups.apply(events)

    def _apply(self, event: EventDetail, *, edit_root: bool) -> Applied:
        known = self._thread(event.migration_id)
        if known is None:
            return self._start(event)
        thread = known.thread
        late = event.sequence <= thread.state.sequence
        if late:
            change = advance_late(thread.state, event)
            if thread.replied_to(event.sequence):
                change = replace(change, replies=())
            request = change.approval_request
            if request is not None and request.approval_id == thread.approval_id:
                change = replace(change, approval_request=None)  # posted already
        else:
            change = advance(thread.state, event)
        shown = self._show(replace(thread, state=change.state), change, event, edit_root=edit_root)
        self._keep(shown, known)
        if self._summaries is not None:
            self._summaries.note(event, shown, before=thread.state.category)
        if not late:
            return "applied"
        if change.replies:
            return "late"
        logger.info(
            "event not newer than the thread; dropped",
            extra={
                "migration_id": event.migration_id,
                "sequence": event.sequence,
                "shown": thread.state.sequence,
            },
        )
        return "duplicate"

    def _start(self, event: EventDetail) -> Applied:
        """The migration's first event (whichever queue brought it): post the root."""
        channel = self._channel_for(event)
        if not channel:
            logger.warning(
                "no Slack channel for the migration (set SLACK_DEFAULT_CHANNEL)",
                extra={"migration_id": event.migration_id},
            )
            return "no channel"
        change = advance(ThreadState.new(event), event)
        thread = self._start_thread(channel, change.state)
        known = _Known(thread, thread.state.sequence)
        shown = self._show(thread, change, event, edit_root=False)
        self._keep(shown, known)
        if self._summaries is not None:
            self._summaries.note(event, shown, before=None)
        return "applied"

    def _show(
        self, thread: SlackThread, change: Change, event: EventDetail, *, edit_root: bool
    ) -> SlackThread:
        """The event's Slack calls: edits first (a redelivery may make them again), then the
        posts (remembered in the returned thread, which the caller writes at once)."""
        decision = change.approval_decision
        decided = decision is not None and decision.approval_id == thread.approval_id
        if decision is not None and decided and thread.approval_ts:
            message = approval_decided_message(
                decision.approval_id,
                decision.decision,
                decision.decided_by,
                decision.reason,
                decision.timestamp.isoformat(),
            )
            self._slack.update(
                thread.channel, thread.approval_ts, text=message.text, blocks=message.blocks
            )
        if edit_root and thread.root_edit_due(self._now(), MIN_ROOT_EDIT_SECONDS):
            self._edit_root(thread)
            thread = thread.shown(self._now())
        for reply in change.replies:
            self._slack.post(thread.channel, text=reply.text, thread_ts=thread.ts)
        if change.replies:
            thread = thread.with_reply(event.sequence)
        # Approval groups hook (issue 15): a grouped approval is decided in its group message.
        if change.approval_request is not None and not grouped(change.approval_request):
            request = change.approval_request
            message = approval_request_message(request)
            ts = self._slack.post(
                thread.channel, text=message.text, blocks=message.blocks, thread_ts=thread.ts
            )
            thread = replace(thread, approval_ts=ts, approval_id=request.approval_id)
        return thread

    def _thread(self, migration_id: str) -> _Known | None:
        known = self._known.get(migration_id)
        if known is not None:
            return known
        stored = self._threads.get(migration_id)
        return _Known(stored, stored.state.sequence) if stored is not None else None

    def _keep(self, thread: SlackThread, known: _Known) -> None:
        """Write the item if Slack shows something new or a reply must be remembered (and
        what the summary counts moved); otherwise only this container keeps the fold."""
        before = known.thread
        durable = (
            thread.state.category != before.state.category
            or thread.state.stage != before.state.stage
            or thread.shown_stage != before.shown_stage
            or thread.replied != before.replied
            or thread.approval_ts != before.approval_ts
        )
        stored = known.stored_sequence
        if durable:
            self._threads.save(thread, previous_sequence=stored)
            stored = thread.state.sequence
        self._known[thread.migration_id] = _Known(thread, stored)
        if len(self._known) > MAX_KNOWN_THREADS:
            self._known.pop(next(iter(self._known)))

    def _start_thread(self, channel: str, state: ThreadState) -> SlackThread:
        message = root_message(state)
        ts = self._slack.post(
            channel, text=message.text, blocks=message.blocks, metadata=root_metadata(state)
        )
        thread = SlackThread(state.migration_id, channel, ts, state, 0).shown(self._now())
        try:
            self._threads.create(thread)
        except ThreadExistsError:  # pragma: no cover - the notifier runs one at a time
            logger.warning("thread created concurrently; a second root was posted")
            raise
        return thread

    def _now(self) -> float:
        return self._slack.wall_seconds()

    def _edit_root(self, thread: SlackThread) -> None:
        message = root_message(thread.state)
        self._slack.update(
            thread.channel,
            thread.ts,
            text=message.text,
            blocks=message.blocks,
            metadata=root_metadata(thread.state),
        )

    def _channel_for(self, event: EventDetail) -> str:
        """The channel of a new thread: the event says (the thread keeps it from then on);
        an event put before routing was added is routed by the migration's record."""
        if event.routing is not None:
            return event.routing.slack_channel or self._default_channel
        record = self._migrations.get(event.migration_id)
        return (record.slack_channel if record is not None else None) or self._default_channel
