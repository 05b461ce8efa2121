"""Status events -> each migration's Slack thread (root edited in place, replies in order).

Events arrive in order from a FIFO queue, but EventBridge may deliver them out of the order
they were put, and SQS at least once: an event whose ``sequence`` is not newer than what the
thread has folded in is dropped. Root edits are coalesced: the root is edited once for the
last of a migration's events in a batch (the handler says which that is), and an edit that
fails is owed and paid on redelivery, so the final state always reaches Slack.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from bot.slack_api import PacedSlack
from bot.thread_store import SlackThread, StaleThreadError, ThreadExistsError, ThreadStore
from bot.threads import (
    ThreadState,
    advance,
    approval_decided_message,
    approval_request_message,
    root_message,
    root_metadata,
)
from orchestration.adapters.state_store import MigrationStore
from orchestration.events import EventDetail
from orchestration.observability import logger

Applied = Literal["applied", "duplicate", "no channel"]
MAX_KNOWN_THREADS = 5_000
# A root whose phase and outcome have not changed is edited at most this often (Slack
# seconds): chat.update is one budget of about 50 a minute for the whole workspace.
MIN_ROOT_EDIT_SECONDS = 30.0
# An event older than this (Slack seconds) means the bot is catching up: phase-only root edits
# are then coalesced like detail changes, leaving chat.update's budget to what matters.
BEHIND_SECONDS = 60.0


class StatusNotifier:
    def __init__(
        self,
        threads: ThreadStore,
        migrations: MigrationStore,
        slack: PacedSlack,
        default_channel: str,
    ) -> None:
        self._threads = threads
        self._migrations = migrations
        self._slack = slack
        self._default_channel = default_channel
        # Threads as this container last wrote them: the notifier runs one container at a
        # time, so most reads are saved; every write is conditional on what it last saw.
        self._known: dict[str, SlackThread] = {}

    def apply(self, event: EventDetail, *, edit_root: bool) -> Applied:
        """Fold one event into its thread; edit the root too when ``edit_root``."""
        try:
            return self._apply(event, edit_root=edit_root)
        except StaleThreadError:
            # Another writer moved the thread on (a second container): start from the table.
            self._known.pop(event.migration_id, None)
            return self._apply(event, edit_root=edit_root)

    def _thread(self, migration_id: str) -> SlackThread | None:
        known = self._known.get(migration_id)
        return known if known is not None else self._threads.get(migration_id)

    def _save(self, thread: SlackThread, previous: SlackThread | None) -> None:
        self._threads.save(thread, previous_sequence=previous.state.sequence if previous else 0)
        self._known[thread.migration_id] = thread
        if len(self._known) > MAX_KNOWN_THREADS:
            self._known.pop(next(iter(self._known)))

    def _apply(self, event: EventDetail, *, edit_root: bool) -> Applied:
        thread = self._thread(event.migration_id)
        if thread is not None and event.sequence <= thread.state.sequence:
            logger.info(
                "event not newer than the thread; dropped",
                extra={
                    "migration_id": event.migration_id,
                    "sequence": event.sequence,
                    "shown": thread.state.sequence,
                },
            )
            if edit_root and thread.root_edit_due(
                self._now(), MIN_ROOT_EDIT_SECONDS, behind=self._behind(event)
            ):
                self._edit_root(thread)
                self._save(thread.shown(self._now()), thread)
            return "duplicate"
        if thread is None:
            channel = self._channel_for(event)
            if not channel:
                logger.warning(
                    "no Slack channel for the migration (set SLACK_DEFAULT_CHANNEL)",
                    extra={"migration_id": event.migration_id},
                )
                return "no channel"
            change = advance(ThreadState.new(event), event)
            thread = self._start_thread(channel, change.state)
            previous = thread
        else:
            change = advance(thread.state, event)
            previous, thread = thread, replace(thread, state=change.state)
        posted = bool(change.replies or change.approval_request or change.approval_decision)
        for reply in change.replies:
            self._slack.post(thread.channel, text=reply.text, thread_ts=thread.ts)
        if change.approval_request is not None:
            request = change.approval_request
            message = approval_request_message(request)
            ts = self._slack.post(
                thread.channel, text=message.text, blocks=message.blocks, thread_ts=thread.ts
            )
            thread = replace(thread, approval_ts=ts, approval_id=request.approval_id)
        decision = change.approval_decision
        if (
            decision is not None
            and thread.approval_ts
            and decision.approval_id == thread.approval_id
        ):
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
        if posted:
            # Keep what was posted before anything else can fail: a redelivery must not post
            # the replies again.
            self._save(thread, previous)
            previous = thread
        if edit_root and thread.root_edit_due(
            self._now(), MIN_ROOT_EDIT_SECONDS, behind=self._behind(event)
        ):
            self._edit_root(thread)
            thread = thread.shown(self._now())
        if thread != previous:
            self._save(thread, previous)
        return "applied"

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
        self._known[thread.migration_id] = thread
        return thread

    def _now(self) -> float:
        return self._slack.wall_seconds()

    def _behind(self, event: EventDetail) -> bool:
        """Whether the event waited longer than ``BEHIND_SECONDS`` (Slack) to get here."""
        happened = self._slack.wall_seconds_of(event.timestamp.timestamp())
        return self._now() - happened > BEHIND_SECONDS

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
