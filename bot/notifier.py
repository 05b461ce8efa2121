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
edited for the last of a migration's events in a batch (the handler says which that is).

A root never holds up the events behind it: its post or edit is made with a token Slack's
pacer has free now, else it is owed and paid after a later batch (``pay_owed_roots``, the
longest owed first), on its next event or redelivery, or by the notifier's owed-roots reminder
(bot/owed_roots.py), so the final state always reaches Slack. What a person needs (a reply,
the approval message) waits for Slack's budget; a reply posts its thread's owed root first.

One event is handled as fold, then effects, then save: ``advance`` (pure, bot/threads.py)
says what changes; ``_show`` makes the Slack calls, idempotent edits before posts, so a
failure part-way leaves nothing that a redelivery would post twice; ``_keep`` writes the item
if it must.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from slack_sdk.errors import SlackApiError

from bot.group_approvals import GroupApprovalMessages, grouped
from bot.owed_roots import Owed, ReminderChain
from bot.slack_api import PacedSlack
from bot.summary_notifier import WaveSummaryNotifier
from bot.thread_store import (
    UNPOSTED,
    SlackThread,
    StaleThreadError,
    ThreadExistsError,
    ThreadStore,
)
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
# The sequence of a migration's first event (MigrationRequested of its first revision).
FIRST_SEQUENCE = 1
# A root's change of stage that is not shown at once (rolling back) waits until the root has
# not been edited for this long (Slack seconds): chat.update is one budget of about 50 a
# minute for the whole workspace.
MIN_ROOT_EDIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Known:
    """A thread as this container last folded it, and the sequence its item holds (the
    item is not written for an event that changed nothing shown); ``unsaved``: a write it
    needs was not made yet (kept for the batch's end, or refused there)."""

    thread: SlackThread
    stored_sequence: int
    unsaved: bool = False


class _Owing(NamedTuple):
    """Since when a thread owes something (Slack seconds), and its wave."""

    since: float
    wave: str


@dataclass(slots=True)
class ThreadSaves:
    """The thread writes of one batch (``StatusNotifier.saves_deferred``): per migration the
    thread to write and the sequence its item holds. Shared by the batch's worker threads.
    After the batch, ``unsaved`` names the migrations whose write was not made (their item
    had moved on, or the write failed): their records are to be retried."""

    threads: dict[str, tuple[SlackThread, int]] = field(default_factory=dict)
    unsaved: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, thread: SlackThread, stored_sequence: int) -> None:
        with self.lock:
            self.threads[thread.migration_id] = (thread, stored_sequence)


_saves: ContextVar[ThreadSaves | None] = ContextVar("wavepilot_thread_saves", default=None)


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
        # Threads folded and shown whose item a batch could not write: the next batch does.
        self._unsaved: set[str] = set()
        # Migrations whose root owes a post or an edit, and since when (Slack seconds): paid
        # with the tokens Slack has free after each batch, and by ``pay_owed_roots``.
        # With each one's wave (what a reminder names; "" while not known: adopted by name).
        self._owed: dict[str, _Owing] = {}
        # Thread items the batch created together (``create_threads``), not yet applied.
        self._created: dict[str, SlackThread] = {}
        self._created_lock = threading.Lock()
        # The owed-roots reminder this container put last (bot/owed_roots.py).
        self.reminders = ReminderChain()

    @contextmanager
    def saves_deferred(self) -> Iterator[ThreadSaves]:
        """Keep the thread writes made inside (one batch: its events, its owed payments, on
        any thread the batch's work runs in) and make them when it ends, in as few calls as
        DynamoDB allows: a batch of ten events is one write, not ten. Slack was called
        before: a thread whose write is not made stays folded here, marked unsaved (written
        with its migration's next event or redelivery); its migration is in ``unsaved``."""
        saves = ThreadSaves()
        token = _saves.set(saves)
        try:
            yield saves
        finally:
            _saves.reset(token)
            with self._created_lock:
                self._created.clear()  # created for this batch's events only
            saves.unsaved = self._save(saves)

    def _save(self, saves: ThreadSaves) -> set[str]:
        """Write the batch's threads, and those an earlier batch could not write (kept
        unsaved here); the migrations whose write was not made."""
        for migration_id in list(self._unsaved):
            known = self._known.get(migration_id)
            if known is None or not known.unsaved:
                self._unsaved.discard(migration_id)
            elif migration_id not in saves.threads:
                saves.add(known.thread, known.stored_sequence)
        pending = list(saves.threads.values())
        if not pending:
            return set()
        try:
            stale = self._threads.save_many(pending)
        except Exception:
            logger.exception(
                "thread items not written; written with the next batch, their events come again",
                extra={"threads": len(pending)},
            )
            self._unsaved.update(thread.migration_id for thread, _ in pending)
            return {thread.migration_id for thread, _ in pending}
        self._unsaved.difference_update(thread.migration_id for thread, _ in pending)
        for thread, _ in pending:
            if thread.migration_id in stale:
                # Another writer moved the thread on: read it again with its next event.
                self._known.pop(thread.migration_id, None)
                continue
            known = self._known.get(thread.migration_id)
            if known is not None and known.thread == thread:
                self._known[thread.migration_id] = _Known(thread, thread.state.sequence)
        return stale

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
        if event.sequence == FIRST_SEQUENCE and event.migration_id not in self._known:
            # A migration's first event (MigrationRequested): its thread has no item yet
            # unless this is a redelivery, so none is read; the item's conditional create
            # says which (a wave's first events are a read per VM otherwise).
            started = self._start_unread(event)
            if started is not None:
                return started
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
        self._note_owed(shown)
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
            return self._no_channel(event)
        change = advance(ThreadState.new(event), event)
        thread = self._start_thread(channel, change.state)
        return self._started(event, change, thread, _Known(thread, thread.state.sequence))

    def create_threads(self, events: Sequence[EventDetail]) -> None:
        """Create the items of the threads the batch's first events start, together (one
        call for the batch, not one per VM; their roots are posted as each event is
        applied, after its item exists). Those that exist already (a redelivery) are read
        when their event is applied; a failure here leaves each to its own create."""
        unposted: list[SlackThread] = []
        for event in events:
            if event.sequence != FIRST_SEQUENCE or event.migration_id in self._known:
                continue
            channel = self._channel_for(event)
            if channel:
                state = advance(ThreadState.new(event), event).state
                unposted.append(SlackThread(event.migration_id, channel, UNPOSTED, state, 0))
        if len(unposted) < 2:
            return  # one is created as its event is applied: the same one call
        try:
            existed = self._threads.create_many(unposted)
        except Exception:
            logger.exception("thread items not created together; each is created alone")
            return
        with self._created_lock:
            self._created.update(
                (t.migration_id, t) for t in unposted if t.migration_id not in existed
            )

    def _start_unread(self, event: EventDetail) -> Applied | None:
        """``_start`` for a thread not read first: its item is created before the root is
        posted (no root is posted for a thread that has one already). None if the item
        exists: the caller reads it and applies the event to it."""
        with self._created_lock:
            created = self._created.pop(event.migration_id, None)
        if created is not None and created.state.sequence == event.sequence:
            change = advance(ThreadState.new(event), event)
            unposted = created
        else:
            channel = self._channel_for(event)
            if not channel:
                return self._no_channel(event)
            change = advance(ThreadState.new(event), event)
            unposted = SlackThread(event.migration_id, channel, UNPOSTED, change.state, 0)
            try:
                self._threads.create(unposted)
            except ThreadExistsError:
                return None
        # The root's ts, if posted now, is written with the batch's thread items.
        thread = self._show_root(unposted, wait=False) or unposted
        return self._started(event, change, thread, _Known(unposted, unposted.state.sequence))

    def _started(
        self, event: EventDetail, change: Change, thread: SlackThread, known: _Known
    ) -> Applied:
        shown = self._show(thread, change, event, edit_root=False)
        self._keep(shown, known)
        self._note_owed(shown)
        if self._summaries is not None:
            self._summaries.note(event, shown, before=None)
        return "applied"

    @staticmethod
    def _no_channel(event: EventDetail) -> Applied:
        logger.warning(
            "no Slack channel for the migration (set SLACK_DEFAULT_CHANNEL)",
            extra={"migration_id": event.migration_id},
        )
        return "no channel"

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
            # Only with a token Slack has free now: a burst of a job's results must not hold
            # up the events behind it (and the wave summary, which shows them at once).
            thread = self._show_root(thread, wait=False) or thread
        at_once = [reply for reply in change.replies if not reply.can_wait]
        if at_once or (
            change.approval_request is not None and not grouped(change.approval_request)
        ):
            thread = self._posted(thread)  # what a person needs is posted in its thread
        for reply in at_once:
            # Blocks too: a parked migration's reply carries its Retry and Roll back buttons.
            self._slack.post(
                thread.channel, text=reply.text, blocks=reply.blocks, thread_ts=thread.ts
            )
        can_wait = tuple(reply.text for reply in change.replies if reply.can_wait)
        if can_wait:
            thread = self._reply_now_or_owe(
                replace(thread, owed_replies=(*thread.owed_replies, *can_wait))
            )
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
            known.unsaved
            or thread.ts != before.ts
            or thread.state.category != before.state.category
            or thread.state.stage != before.state.stage
            or thread.shown_stage != before.shown_stage
            or thread.replied != before.replied
            or thread.approval_ts != before.approval_ts
            or thread.owed_replies != before.owed_replies
        )
        stored = known.stored_sequence
        unsaved = False
        if durable:
            saves = _saves.get()
            if saves is not None:  # written when the batch ends (saves_deferred)
                saves.add(thread, stored)
                unsaved = True
            else:
                self._threads.save(thread, previous_sequence=stored)
                stored = thread.state.sequence
        self._known[thread.migration_id] = _Known(thread, stored, unsaved)
        if len(self._known) > MAX_KNOWN_THREADS:
            self._known.pop(next(iter(self._known)))

    def _start_thread(self, channel: str, state: ThreadState) -> SlackThread:
        """The thread's item, its root posted if Slack has a token free now, else owed (a
        wave's first events are a burst of one root per VM in one channel: 1,000 posts are
        18 minutes of Slack's budget)."""
        unposted = SlackThread(state.migration_id, channel, UNPOSTED, state, 0)
        thread = self._show_root(unposted, wait=False) or unposted
        try:
            self._threads.create(thread)
        except ThreadExistsError:  # pragma: no cover - the notifier runs one at a time
            logger.warning("thread created concurrently; a second root was posted")
            raise
        return thread

    def _now(self) -> float:
        return self._slack.wall_seconds()

    def _show_root(self, thread: SlackThread, *, wait: bool) -> SlackThread | None:
        """Post the root (not posted yet) or edit it to show the thread's state; waiting for
        Slack's budget when ``wait``, else only with a token free now. The thread as shown,
        or None if Slack was not called (no token now, or a 429)."""
        message = root_message(thread.state)
        metadata = root_metadata(thread.state)
        if not thread.ts:
            if wait:
                ts: str | None = self._slack.post(
                    thread.channel, text=message.text, blocks=message.blocks, metadata=metadata
                )
            else:
                ts = self._slack.try_post(
                    thread.channel, text=message.text, blocks=message.blocks, metadata=metadata
                )
            return None if ts is None else replace(thread, ts=ts).shown(self._now())
        if wait:
            self._slack.update(
                thread.channel,
                thread.ts,
                text=message.text,
                blocks=message.blocks,
                metadata=metadata,
            )
        elif not self._slack.try_update(
            thread.channel, thread.ts, text=message.text, blocks=message.blocks, metadata=metadata
        ):
            return None
        return thread.shown(self._now())

    def _reply_now_or_owe(self, thread: SlackThread, *, wait: bool = False) -> SlackThread:
        """Post the thread's owed replies in order (waiting for Slack's budget when ``wait``,
        else with tokens free now); those not posted stay owed. A reply needs its root: while
        the root is owed, so are they."""
        if not thread.ts:
            return thread
        owed = list(thread.owed_replies)
        while owed:
            if wait:
                self._slack.post(thread.channel, text=owed[0], thread_ts=thread.ts)
            elif self._slack.try_post(thread.channel, text=owed[0], thread_ts=thread.ts) is None:
                break
            owed.pop(0)
        return replace(thread, owed_replies=tuple(owed))

    def _posted(self, thread: SlackThread) -> SlackThread:
        """The thread with its root in Slack (posted now, waiting for Slack's budget, if it
        was owed): a reply needs its thread."""
        if thread.ts:
            return thread
        shown = self._show_root(thread, wait=True)
        assert shown is not None  # a waiting post returns its ts or raises
        return shown

    def _note_owed(self, thread: SlackThread) -> None:
        if thread.owes:
            self._owe(thread.migration_id, thread.state.wave, self._now())
        else:
            self._owed.pop(thread.migration_id, None)

    def _owe(self, migration_id: str, wave: str, since: float) -> None:
        """The migration's thread owes something (since when, unless it owed already)."""
        owing = self._owed.get(migration_id)
        self._owed[migration_id] = _Owing(owing.since if owing else since, wave)

    # --- owed roots ---------------------------------------------------------------------

    def owed_roots(self) -> list[str]:
        """The migrations whose root owes a post or an edit, the longest owed first."""
        return sorted(self._owed, key=lambda migration_id: self._owed[migration_id].since)

    def adopt_owed(self, owed: Owed, *, read_waves: Iterable[str] = ()) -> None:
        """What another container (or an earlier batch) left owed: pay it here too. The
        threads of ``read_waves`` (named by a reminder another container put) are read, and
        those whose item owes something are paid here."""
        now = self._now()
        for migration_id in owed.migration_ids:
            self._owed.setdefault(migration_id, _Owing(now, ""))
        for wave in dict.fromkeys(read_waves):
            for thread in self._threads.wave_threads(wave):
                if thread.owes:
                    self._owe(thread.migration_id, wave, now)
        if self._groups is not None:
            self._groups.adopt_owed(owed.groups)
        if self._summaries is not None:
            self._summaries.adopt_owed(owed.waves)

    def pay_owed(self, *, wait: bool, budget_seconds: float = 0.0) -> Owed:
        """Pay what Slack does not show yet, approval group messages first (a person acts on
        them), then roots (``pay_owed_roots``), then wave summaries whose edit is due;
        returns what is still owed."""
        started = self._now()
        groups = (
            self._groups.pay_owed(wait=wait, budget_seconds=budget_seconds)
            if self._groups is not None
            else []
        )
        left = budget_seconds - (self._now() - started)
        roots = self.pay_owed_roots(wait=wait, budget_seconds=max(0.0, left))
        left = budget_seconds - (self._now() - started)
        waves = (
            self._summaries.pay_owed(wait=wait, budget_seconds=max(0.0, left))
            if self._summaries is not None
            else []
        )
        # Threads are named by their wave (their items say what they owe); one whose wave
        # this container does not know yet (adopted by name, not read) by its migration.
        return Owed(
            tuple(m for m in roots if not self._owed[m].wave),
            tuple(groups),
            tuple(waves),
            tuple(dict.fromkeys(self._owed[m].wave for m in roots if self._owed[m].wave)),
        )

    def pay_owed_roots(self, *, wait: bool, budget_seconds: float = 0.0) -> list[str]:
        """Post or edit owed roots, the longest owed first: with the tokens Slack has free now
        (``wait=False``, after a batch of events), or waiting for Slack's budget for up to
        ``budget_seconds`` (an owed-roots message, nothing else waiting). A root whose
        coalescing interval has not passed stays owed. Returns what is still owed."""
        started = self._now()
        exhausted: set[tuple[str, bool]] = set()  # (channel, posting) out of tokens now
        due_next: float | None = None  # when the first root not due yet is (Slack seconds)
        for migration_id in self.owed_roots():
            if wait and self._now() - started >= budget_seconds:
                break
            known = self._thread(migration_id)
            if known is None or not known.thread.owes:
                self._owed.pop(migration_id, None)
                continue
            self._owe(migration_id, known.thread.state.wave, self._now())
            try:
                thread, due = self._pay_thread(known.thread, wait=wait, exhausted=exhausted)
            except SlackApiError as exc:
                # Not Slack's budget (the channel is gone, the token revoked): the item keeps
                # what is owed, the migration's next event tries again; the chain goes on.
                logger.error(
                    "owed root not shown", extra={"migration_id": migration_id, "error": str(exc)}
                )
                self._owed.pop(migration_id, None)
                continue
            if due is not None:
                due_next = due if due_next is None else min(due_next, due)
            if thread == known.thread:
                continue
            try:
                self._keep(thread, known)
            except StaleThreadError:
                # Another writer moved the thread on: read it again on the next payment.
                self._known.pop(migration_id, None)
                continue
            if not thread.owes:
                self._owed.pop(migration_id, None)
        if wait and due_next is not None:
            # Only roots coalescing an edit are left (rolling back): wait for the first of
            # them within the budget, so a reminder does not come straight back for nothing.
            self._slack.wait(min(due_next, started + budget_seconds) - self._now())
        return self.owed_roots()

    def _pay_thread(
        self, thread: SlackThread, *, wait: bool, exhausted: set[tuple[str, bool]]
    ) -> tuple[SlackThread, float | None]:
        """Show what the thread owes (its root, then its replies that could wait) with the
        tokens of kinds not ``exhausted`` (channel, posting); the thread as shown now, and
        when its root's coalesced edit is due if that is not yet."""
        if thread.root_owed:
            kind = (thread.channel, not thread.ts)
            if not thread.root_edit_due(self._now(), MIN_ROOT_EDIT_SECONDS):
                return self._pay_replies(thread, wait, exhausted), (
                    thread.shown_at + MIN_ROOT_EDIT_SECONDS
                )
            if kind in exhausted:
                return thread, None
            shown = self._show_root(thread, wait=wait)
            if shown is None:
                exhausted.add(kind)
                return thread, None
            thread = shown
        return self._pay_replies(thread, wait, exhausted), None

    def _pay_replies(
        self, thread: SlackThread, wait: bool, exhausted: set[tuple[str, bool]]
    ) -> SlackThread:
        posting = (thread.channel, True)  # replies are posts: the channel's post tokens
        if not thread.owed_replies or not thread.ts or posting in exhausted:
            return thread
        replied = self._reply_now_or_owe(thread, wait=wait)
        if replied.owed_replies:
            exhausted.add(posting)
        return replied

    def _channel_for(self, event: EventDetail) -> str:
        """The channel of a new thread: the event says (the thread keeps it from then on);
        an event put before routing was added is routed by the migration's record."""
        if event.routing is not None:
            return event.routing.slack_channel or self._default_channel
        record = self._migrations.get(event.migration_id)
        return (record.slack_channel if record is not None else None) or self._default_channel
