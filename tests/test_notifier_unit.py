"""StatusNotifier's decisions over in-memory fakes: order by sequence (two queues), the
thread's Slack budget, coalesced root edits, writes of the thread item.

The fakes stand in for the thread table, the migrations table and paced Slack; they subclass
the real classes only to satisfy their types (bot/notifier.py names concrete classes), and
override every method the notifier calls.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from bot.group_approvals import (
    GroupApprovalMessages,
    GroupMessageConflictError,
    GroupState,
    GroupStore,
)
from bot.notifier import MIN_ROOT_EDIT_SECONDS, StatusNotifier
from bot.owed_roots import Owed, ReminderChain, owed_roots_body, owed_roots_in, reminder_id_in
from bot.slack_api import PacedSlack
from bot.summary_notifier import WaveSummaryNotifier
from bot.thread_store import (
    SlackThread,
    StaleThreadError,
    ThreadExistsError,
    ThreadStore,
    WaveSummaryMessage,
    WaveSummaryStore,
)
from bot.threads import ThreadState, advance
from orchestration.adapters.state_store import MigrationRecord, MigrationStore
from orchestration.adapters.wave_predictions import WavePrediction, WavePredictionStore
from orchestration.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventDetail,
    MigrationCompleted,
    MigrationFailed,
    MigrationRequested,
    MigrationStatusUpdated,
    RollbackCompleted,
    RollbackStarted,
)
from orchestration.local.virtual_clock import VirtualClock
from tests.support.fakes import NOW
from tests.support.pipeline import example_requests

CHANNEL = "C0DEFAULT01"


class InMemoryThreads(ThreadStore):
    def __init__(self) -> None:
        self.items: dict[str, SlackThread] = {}
        self.writes = 0
        self.reads = 0
        self.wave_reads = 0
        self.creates_together = 0

    def get(self, migration_id: str) -> SlackThread | None:
        self.reads += 1
        return self.items.get(migration_id)

    def create(self, thread: SlackThread) -> None:
        if thread.migration_id in self.items:
            raise ThreadExistsError(thread.migration_id)
        self.items[thread.migration_id] = thread
        self.writes += 1

    def save(self, thread: SlackThread, *, previous_sequence: int) -> None:
        stored = self.items.get(thread.migration_id)
        if stored is not None and stored.state.sequence != previous_sequence:
            raise StaleThreadError(thread.migration_id)
        self.items[thread.migration_id] = thread
        self.writes += 1

    def create_many(self, threads: Sequence[SlackThread]) -> set[str]:
        self.creates_together += 1
        existed = {t.migration_id for t in threads if t.migration_id in self.items}
        self.items.update((t.migration_id, t) for t in threads if t.migration_id not in existed)
        return existed

    def wave_threads(self, wave: str) -> list[SlackThread]:
        self.wave_reads += 1
        return [t for t in self.items.values() if t.state.wave == wave]


class NoMigrations(MigrationStore):
    """Hand-written requests: no channel of their own, so the default channel."""

    def __init__(self) -> None:
        pass

    def get(self, migration_id: str) -> MigrationRecord | None:
        return None


@dataclass
class Call:
    method: str
    channel: str
    text: str
    ts: str = ""
    thread_ts: str | None = None


@dataclass
class RecordingSlack(PacedSlack):
    """Slack's Web API as the notifier sees it, on a clock the test moves (epoch seconds)."""

    now: float = NOW.timestamp()
    calls: list[Call] = field(default_factory=list)
    # Tokens Slack has free now for a call that does not wait (try_post, try_update).
    free_tokens: float = float("inf")
    # Slack seconds a call that waits takes (its pacing), moving ``now``.
    paced_seconds: float = 0.0

    def wall_seconds(self) -> float:
        return self.now

    def wall_seconds_of(self, epoch_seconds: float) -> float:
        return epoch_seconds

    def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: Any = (),
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        ts = f"{1_700_000_000 + len(self.calls)}.000100"
        self.calls.append(Call("post", channel, text, ts, thread_ts))
        self.now += self.paced_seconds
        return ts

    def update(
        self,
        channel: str,
        ts: str,
        *,
        text: str,
        blocks: Any = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.calls.append(Call("update", channel, text, ts))
        self.now += self.paced_seconds

    def try_post(
        self,
        channel: str,
        *,
        text: str,
        blocks: Any = (),
        metadata: dict[str, Any] | None = None,
        thread_ts: str | None = None,
    ) -> str | None:
        if self.free_tokens < 1:
            return None
        self.free_tokens -= 1
        return self.post(channel, text=text, blocks=blocks, metadata=metadata, thread_ts=thread_ts)

    def try_update(
        self,
        channel: str,
        ts: str,
        *,
        text: str,
        blocks: Any = (),
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        if self.free_tokens < 1:
            return False
        self.free_tokens -= 1
        self.update(channel, ts, text=text, blocks=blocks, metadata=metadata)
        return True

    def wait(self, slack_seconds: float) -> None:
        self.now += max(0.0, slack_seconds)

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]


@dataclass
class Bot:
    notifier: StatusNotifier
    threads: InMemoryThreads
    slack: RecordingSlack

    def root_ts(self) -> str:
        return self.threads.items["mig-12345"].ts


@pytest.fixture
def bot() -> Bot:
    threads, slack = InMemoryThreads(), RecordingSlack()
    notifier = StatusNotifier(threads, NoMigrations(), slack, CHANNEL)
    return Bot(notifier, threads, slack)


def _status(sequence: int, step: str, status: str = "IN_PROGRESS", **extra: Any) -> EventDetail:
    return MigrationStatusUpdated(
        migration_id="mig-12345",
        wave="wave-3",
        app_name="billing-app",
        target_vm_name="billing-app-prod-01",
        correlation_id="corr-1",
        sequence=sequence,
        timestamp=extra.pop("timestamp", NOW),
        step=step,
        status=status,  # type: ignore[arg-type]
        message=extra.pop("message", f"{step} {status.lower()}"),
        **extra,
    )


def _identity(sequence: int) -> dict[str, Any]:
    return {
        "migration_id": "mig-12345",
        "wave": "wave-3",
        "app_name": "billing-app",
        "target_vm_name": "billing-app-prod-01",
        "correlation_id": "corr-1",
        "sequence": sequence,
        "timestamp": NOW,
    }


def test_the_first_event_starts_the_thread_in_the_default_channel(bot: Bot) -> None:
    assert bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True) == "applied"

    (root,) = bot.slack.calls
    assert (root.method, root.channel, root.thread_ts) == ("post", CHANNEL, None)
    thread = bot.threads.items["mig-12345"]
    assert (thread.ts, thread.state.sequence, thread.root_owed) == (root.ts, 1, False)


def test_an_event_not_newer_than_the_thread_is_dropped(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.notifier.apply(_status(3, "WaitForReplication", "SUCCEEDED"), edit_root=True)
    calls = len(bot.slack.calls)

    # WHEN a redelivery (3) and a late arrival (2) come in
    assert bot.notifier.apply(_status(3, "WaitForReplication", "SUCCEEDED"), edit_root=True) == (
        "duplicate"
    )
    assert bot.notifier.apply(_status(2, "PrepareSource", "SUCCEEDED"), edit_root=True) == (
        "duplicate"
    )

    # THEN nothing is posted again
    assert len(bot.slack.calls) == calls


def test_routine_steps_are_not_replies_but_a_failure_is(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)

    for sequence, step in enumerate(
        ("WaitForReplication", "StartTestLaunch", "VerifyTestLaunch"), start=2
    ):
        bot.notifier.apply(_status(sequence, step, "SUCCEEDED"), edit_root=True)
    assert bot.slack.methods() == ["post"]  # the root alone: neither replies nor edits

    bot.notifier.apply(
        _status(5, "VerifyTestLaunch", "FAILED", message="no answer on :80"), edit_root=True
    )

    reply = bot.slack.calls[-1]
    assert (reply.method, reply.thread_ts) == ("post", bot.root_ts())
    assert "*VerifyTestLaunch failed*: no answer on :80" in reply.text
    assert bot.slack.methods() == ["post", "update", "post"]  # the root shows failed at once


def test_a_happy_migration_costs_six_slack_calls_seven_item_writes_and_no_read(bot: Bot) -> None:
    # GIVEN every event a migration approved per VM puts on the bus, in order, each in its
    # own batch (the worst case for coalescing)
    events = _happy_path()

    for event in events:
        bot.slack.now += 60
        assert bot.notifier.apply(event, edit_root=True) == "applied"

    # THEN: the root, the approval message and its decided form, the root for the cutover
    # and for the end, and the final result as a reply
    assert [(c.method, c.thread_ts is not None) for c in bot.slack.calls] == [
        ("post", False),  # the root
        ("post", True),  # the approval message
        ("update", False),  # the approval message, decided (buttons gone)
        ("update", False),  # the root: cutting over
        ("update", False),  # the root: migrated
        ("post", True),  # Finalized ...
    ]
    assert bot.slack.calls[2].ts == bot.threads.items["mig-12345"].approval_ts
    assert "Finalized" in bot.slack.calls[-1].text
    # The item is written when what Slack shows, or what the summary counts, moved:
    # created (queued; before its root is posted), the root's ts (with its batch's items, in
    # a batch), replicating, awaiting approval, the approval message posted, cutting over,
    # migrated; and never read (the first event's item is created without a read).
    assert bot.threads.writes == 7
    assert bot.threads.reads == 0
    assert len(events) == 18  # one write for every three events (was one for each)


def test_a_first_event_delivered_again_to_a_new_container_posts_no_second_root(
    bot: Bot,
) -> None:
    # GIVEN a migration's first event shown, and then its next, in Slack
    assert bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True) == "applied"
    bot.notifier.apply(_status(2, "ValidateInput", "SUCCEEDED"), edit_root=True)
    posts, root = bot.slack.methods().count("post"), bot.root_ts()
    # WHEN a new container (a restart: nothing known) is handed the first event again
    restarted = StatusNotifier(bot.threads, NoMigrations(), bot.slack, CHANNEL)
    outcome = restarted.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)

    # THEN its create finds the item: the thread is read and the event is an old one
    assert outcome == "duplicate"
    assert bot.slack.methods().count("post") == posts
    assert bot.threads.reads == 1
    assert bot.threads.items["mig-12345"].ts == root


def test_a_reply_older_than_the_thread_is_posted_once_when_it_arrives(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    # GIVEN the rollback (priority queue) overtook the failed step's report (routine queue)
    rollback = RollbackStarted(**_identity(6), step="StartTestLaunch", reason="launch failed")
    assert bot.notifier.apply(rollback, edit_root=True) == "applied"

    # WHEN the failed step's report and two routine reports before it arrive, twice
    failed = _status(5, "StartTestLaunch", "FAILED", message="MGN job failed")
    for _ in range(2):
        assert bot.notifier.apply(_status(4, "StartTestLaunch", "STARTED"), edit_root=True) == (
            "duplicate"
        )
        bot.notifier.apply(failed, edit_root=True)

    # THEN its reply is in the thread once, after the rollback's; the root is not taken back
    replies = [c.text for c in bot.slack.calls if c.thread_ts]
    assert replies == [
        ":rewind: Rolling back after StartTestLaunch: launch failed",
        ":x: *StartTestLaunch failed*: MGN job failed",
    ]
    thread = bot.threads.items["mig-12345"]
    assert (thread.state.sequence, thread.state.outcome) == (6, "rolling back")


def test_a_rollback_end_overtaken_by_the_last_failure_still_ends_the_thread(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.notifier.apply(
        RollbackStarted(**_identity(2), step="StartTestLaunch", reason="launch failed"),
        edit_root=True,
    )
    # GIVEN the pipeline's last word (MigrationFailed, priority queue) overtook the rollback's
    # end (RollbackCompleted, routine queue)
    last = MigrationFailed(**_identity(4), step="StartTestLaunch", error="x", cause="launch failed")
    bot.notifier.apply(last, edit_root=True)
    assert bot.threads.items["mig-12345"].state.outcome == "rolling back"  # no second story

    # WHEN the rollback's end arrives
    completed = RollbackCompleted(
        **_identity(3),
        reason="launch failed",
        terminated_instance_ids=["i-0abc"],
        source_server_state="READY_FOR_TEST",
    )
    bot.slack.now += 1
    assert bot.notifier.apply(completed, edit_root=True) == "late"

    # THEN its reply is posted and the root shows the end: a final state is never dropped
    thread = bot.threads.items["mig-12345"]
    assert (thread.state.outcome, thread.shown_stage, thread.root_owed) == (
        "rolled back",
        "rolled back",
        False,
    )
    assert [c.text.split(":")[1] for c in bot.slack.calls if c.thread_ts] == [
        "rewind",
        "leftwards_arrow_with_hook",
    ]
    assert bot.slack.methods()[-2:] == ["update", "post"]  # the root, then the reply


def test_a_redelivery_pays_an_owed_root_edit(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "WaitForReplication", "IN_PROGRESS"), edit_root=True)
    # GIVEN a rollback started seconds after the root was posted: its edit waits
    bot.slack.now += 5
    rollback = RollbackStarted(**_identity(2), step="StartTestLaunch", reason="launch failed")
    bot.notifier.apply(rollback, edit_root=True)
    assert bot.slack.methods() == ["post", "post"]  # the root, the rollback's reply
    assert bot.threads.items["mig-12345"].root_owed

    # WHEN the event comes again after the interval
    bot.slack.now += MIN_ROOT_EDIT_SECONDS
    assert bot.notifier.apply(rollback, edit_root=True) == "duplicate"

    # THEN the owed edit is made, and the reply is not posted again
    assert bot.slack.methods() == ["post", "post", "update"]
    assert not bot.threads.items["mig-12345"].root_owed


def test_edits_wait_for_the_last_event_of_a_batch(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "VerifyTestLaunch", "SUCCEEDED"), edit_root=True)
    approved = ApprovalDecided(
        **_identity(2), approval_id="apv-1", decision="APPROVED", decided_by="U07ALICE001"
    )

    # WHEN a batch brings the approval and two routine steps; the handler marks the last
    bot.notifier.apply(approved, edit_root=False)
    bot.notifier.apply(_status(3, "PrepareCutover", "SUCCEEDED"), edit_root=False)
    assert bot.threads.items["mig-12345"].root_owed
    bot.notifier.apply(_status(4, "StartCutover", "STARTED"), edit_root=True)

    # THEN the root is edited once, for the last event
    assert bot.slack.methods() == ["post", "update"]
    assert not bot.threads.items["mig-12345"].root_owed


def test_the_approval_message_is_posted_then_updated_with_the_decision(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "VerifyTestLaunch", "SUCCEEDED"), edit_root=True)
    requested = ApprovalRequested(
        **_identity(2),
        approval_id="apv-0123456789abcdef",
        approvers=["U07ALICE001"],
        requested_by="",
        expires_at=NOW + timedelta(hours=1),
        summary="Cut over billing-app-prod-01?",
    )
    bot.notifier.apply(requested, edit_root=True)
    approval_ts = bot.threads.items["mig-12345"].approval_ts
    assert approval_ts

    decided = ApprovalDecided(
        **_identity(3),
        approval_id="apv-0123456789abcdef",
        decision="APPROVED",
        decided_by="U07ALICE001",
    )
    bot.notifier.apply(decided, edit_root=False)

    updates = [call for call in bot.slack.calls if call.method == "update"]
    assert updates[-1].ts == approval_ts
    assert bot.threads.items["mig-12345"].state.outcome == "running"


def test_a_decision_that_arrives_after_newer_events_still_edits_its_approval_message(
    bot: Bot,
) -> None:
    # GIVEN a migration at its gate, its approval message posted
    events = _happy_path()
    requested_at = next(i for i, e in enumerate(events) if isinstance(e, ApprovalRequested))
    for event in events[: requested_at + 1]:
        bot.notifier.apply(event, edit_root=True)
    approval_ts = bot.threads.items["mig-12345"].approval_ts
    decided, prepared = events[requested_at + 1], events[requested_at + 2]
    assert isinstance(decided, ApprovalDecided)

    # WHEN the cutover's first step (routine) is folded before the decision (its queue was
    # faster this time), then the decision arrives, and again (redelivered)
    bot.notifier.apply(prepared, edit_root=True)
    assert bot.notifier.apply(decided, edit_root=True) == "duplicate"
    bot.notifier.apply(decided, edit_root=True)
    bot.notifier.apply(requested := events[requested_at], edit_root=True)

    # THEN the approval message shows the decision (an idempotent edit), and the request
    # redelivered posts no second approval message
    updates = [call for call in bot.slack.calls if call.method == "update"]
    assert approval_ts in {call.ts for call in updates}
    assert isinstance(requested, ApprovalRequested)
    posts_of_approval = [c for c in bot.slack.calls if c.method == "post" and "Approv" in c.text]
    assert len(posts_of_approval) == 1


def test_a_thread_moved_on_by_another_writer_is_read_again(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.notifier.apply(_status(2, "ValidateInput", "SUCCEEDED"), edit_root=False)
    # GIVEN another container folded event 3 into the stored thread meanwhile
    stored = bot.threads.items["mig-12345"]
    bot.threads.items["mig-12345"] = replace(stored, state=replace(stored.state, sequence=3))

    # WHEN this container applies event 3 (routine: nothing to write) and an approval (4)
    bot.notifier.apply(_status(3, "PrepareSource", "SUCCEEDED"), edit_root=False)
    approved = ApprovalDecided(
        **_identity(4), approval_id="apv-1", decision="APPROVED", decided_by="U07ALICE001"
    )
    assert bot.notifier.apply(approved, edit_root=False) == "applied"

    # THEN its write found the thread moved on, read it again and applied the approval
    stored = bot.threads.items["mig-12345"]
    assert (stored.state.sequence, stored.state.stage) == (4, "cutting over")


def _happy_path() -> list[EventDetail]:
    """The events of a migration approved per VM, as the pipeline puts them."""
    steps = [
        ("ValidateInput", "STARTED"),
        ("ValidateInput", "SUCCEEDED"),
        ("PrepareSource", "SUCCEEDED"),
        ("WaitForReplication", "IN_PROGRESS"),
        ("WaitForReplication", "IN_PROGRESS"),
        ("WaitForReplication", "SUCCEEDED"),
        ("StartTestLaunch", "SUCCEEDED"),
        ("VerifyTestLaunch", "SUCCEEDED"),
        ("AwaitApproval", "WAITING"),
    ]
    request = example_requests()[0]
    events: list[EventDetail] = [MigrationRequested(**_identity(1), revision="r1", request=request)]
    events += [_status(n, step, status) for n, (step, status) in enumerate(steps, start=2)]
    n = len(events) + 1
    events += [
        ApprovalRequested(
            **_identity(n),
            approval_id="apv-0123456789abcdef",
            approvers=["U07ALICE001"],
            requested_by="",
            expires_at=NOW + timedelta(hours=1),
            summary="Cut over billing-app-prod-01?",
        ),
        ApprovalDecided(
            **_identity(n + 1),
            approval_id="apv-0123456789abcdef",
            decision="APPROVED",
            decided_by="U07ALICE001",
        ),
        _status(n + 2, "PrepareCutover", "SUCCEEDED"),
        _status(n + 3, "StartCutover", "WAITING"),
        _status(n + 4, "StartCutover", "SUCCEEDED"),
        _status(n + 5, "VerifyCutover", "SUCCEEDED"),
        _status(n + 6, "FinalizeCutover", "SUCCEEDED"),
        MigrationCompleted(**_identity(n + 7), target_instance_id="i-0new", duration_seconds=600),
    ]
    return events


def test_without_any_channel_nothing_is_posted(bot: Bot) -> None:
    notifier = StatusNotifier(bot.threads, NoMigrations(), bot.slack, "")

    assert notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True) == "no channel"
    assert bot.slack.calls == []


class _SummaryAt(WaveSummaryStore):
    """The wave's summary, posted already (in memory)."""

    def __init__(self) -> None:
        self.saved: list[WaveSummaryMessage] = []

    def get(self, wave: str) -> WaveSummaryMessage | None:
        return WaveSummaryMessage(wave, CHANNEL, "1700000000.000100")

    def save(self, summary: WaveSummaryMessage) -> None:
        self.saved.append(summary)


class _NoThreads(InMemoryThreads):
    def wave_threads(self, wave: str) -> list[SlackThread]:
        return []


class _NoPredictions(WavePredictionStore):
    def __init__(self) -> None:
        pass

    def get(self, wave: str) -> WavePrediction | None:
        return None


@dataclass
class _PacedOnTheClock(RecordingSlack):
    """Each edit waits two seconds for its token, on the simulated clock, as PacedSlack's
    pacing does in the embedded default."""

    clock: VirtualClock = field(default_factory=VirtualClock)

    def wall_seconds(self) -> float:
        return self.clock.time()

    def wait(self, slack_seconds: float) -> None:
        self.clock.sleep(slack_seconds)

    def update(self, channel: str, ts: str, **kwargs: Any) -> None:
        self.clock.sleep(2.0)
        super().update(channel, ts, **kwargs)


def test_two_notes_of_one_wave_at_once_do_not_stop_the_simulated_clock() -> None:
    # GIVEN the wave summary being edited by one thread (its edit paced on the simulated
    # clock) while another thread notes a change of the same wave
    clock = VirtualClock().start()
    slack = _PacedOnTheClock(clock=clock)
    summaries = WaveSummaryNotifier(_SummaryAt(), _NoThreads(), slack, _NoPredictions())
    event = _status(5, "FinalizeCutover", "SUCCEEDED")
    thread = SlackThread(
        "mig-12345", CHANNEL, "1700000000.000200", advance(ThreadState.new(event), event).state, 0
    )
    try:
        workers = [
            threading.Thread(
                target=clock.counted(summaries.note),
                args=(event, replace(thread, migration_id=f"mig-{n}")),
                kwargs={"before": None},
                daemon=True,
            )
            for n in range(2)
        ]
        for worker in workers:
            worker.start()

        # THEN both end: the second waits for the lock on the clock, so the clock moves on
        # and wakes the first (blocked on the lock, it looked busy and time stood still)
        for worker in workers:
            worker.join(timeout=20)
        assert not any(worker.is_alive() for worker in workers)
        assert [call.method for call in slack.calls].count("update") >= 1
    finally:
        clock.close()


# --- owed roots: a burst does not wait for Slack's budget ----------------------------------


def _requested(migration_id: str, sequence: int = 1) -> EventDetail:
    return _status(sequence, "ValidateInput", "STARTED").model_copy(
        update={"migration_id": migration_id}
    )


def test_roots_without_a_free_token_are_owed_and_the_events_go_on(bot: Bot) -> None:
    # GIVEN Slack's budget spent (a wave's first events: one root per VM in one channel)
    bot.slack.free_tokens = 0
    for n, migration_id in enumerate(("mig-a", "mig-b", "mig-c")):
        bot.slack.now += n
        assert bot.notifier.apply(_requested(migration_id), edit_root=True) == "applied"

    # THEN nothing waited: the threads are kept, their roots owed, the longest owed first
    assert bot.slack.calls == []
    assert [t.ts for t in bot.threads.items.values()] == ["", "", ""]
    assert bot.notifier.owed_roots() == ["mig-a", "mig-b", "mig-c"]

    # WHEN two tokens are free after a later batch
    bot.slack.free_tokens = 2
    still_owed = bot.notifier.pay_owed_roots(wait=False)

    # THEN the two longest owed are posted and kept; the third stays owed
    assert still_owed == ["mig-c"]
    assert [c.method for c in bot.slack.calls] == ["post", "post"]
    assert bot.threads.items["mig-a"].ts == bot.slack.calls[0].ts
    assert not bot.threads.items["mig-b"].root_owed
    assert bot.threads.items["mig-c"].root_owed


def test_a_reply_posts_its_owed_root_first(bot: Bot) -> None:
    bot.slack.free_tokens = 0
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    assert bot.root_ts() == ""

    failed = MigrationFailed(
        **_identity(2), step="ValidateInput", error="SubnetNotFound", cause="subnet not found"
    )
    bot.notifier.apply(failed, edit_root=True)

    # The failure is what a person needs: its root is posted (waiting), then the reply in it
    root, reply = bot.slack.calls
    assert (root.method, root.thread_ts) == ("post", None)
    assert (reply.method, reply.thread_ts) == ("post", root.ts)
    assert bot.root_ts() == root.ts


def test_an_owed_edit_is_paid_once_the_root_shows_the_newest_state(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "WaitForReplication", "IN_PROGRESS"), edit_root=True)
    bot.slack.free_tokens = 0
    events = _happy_path()
    for event in events[events.index(_first_cutover(events)) :]:
        bot.slack.now += 60
        bot.notifier.apply(event, edit_root=True)
    assert bot.notifier.owed_roots() == ["mig-12345"]
    edits_before = bot.slack.methods().count("update")

    bot.slack.free_tokens = 5
    assert bot.notifier.pay_owed_roots(wait=False) == []

    # One edit, to the final state: the stages in between were skipped over, not shown late
    updates = [call for call in bot.slack.calls if call.method == "update"]
    assert len(updates) == edits_before + 1
    assert updates[-1].text.endswith(": migrated")
    # AND the final result, a reply that could wait, is posted after the root shows it
    assert "Finalized" in bot.slack.calls[-1].text
    assert bot.slack.calls[-1].thread_ts == bot.root_ts()
    assert not bot.threads.items["mig-12345"].owes


def test_paying_owed_roots_while_waiting_stops_at_its_budget(bot: Bot) -> None:
    bot.slack.free_tokens = 0
    for n in range(20):
        bot.notifier.apply(_requested(f"mig-{n:02d}"), edit_root=True)
    bot.slack.paced_seconds = 1.1  # one post a channel a second, a little under

    still_owed = bot.notifier.pay_owed_roots(wait=True, budget_seconds=10.0)

    assert len(bot.slack.calls) == 10  # 0, 1.1, ..., 9.9 Slack seconds in: then the budget
    assert still_owed == [f"mig-{n:02d}" for n in range(10, 20)]


def test_an_owed_root_another_container_left_is_paid_here(bot: Bot) -> None:
    bot.slack.free_tokens = 0
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    # GIVEN a fresh container that knows nothing of it but the reminder
    fresh = StatusNotifier(bot.threads, NoMigrations(), bot.slack, CHANNEL)
    fresh.adopt_owed(Owed(("mig-12345", "mig-unknown")))
    bot.slack.free_tokens = 1

    assert fresh.pay_owed_roots(wait=False) == []
    assert bot.root_ts() == bot.slack.calls[0].ts


def test_a_batch_of_first_events_creates_its_threads_in_one_write_before_any_root(
    bot: Bot,
) -> None:
    # GIVEN mig-b's thread exists already (its first event comes again to a new container)
    bot.notifier.apply(_requested("mig-b"), edit_root=True)
    posts = len(bot.slack.calls)
    notifier = StatusNotifier(bot.threads, NoMigrations(), bot.slack, CHANNEL)
    firsts = [_requested(m) for m in ("mig-a", "mig-b", "mig-c")]

    # WHEN a batch brings three migrations' first events
    notifier.create_threads(firsts)
    # THEN their items are created in one write, before any root is posted
    assert bot.threads.creates_together == 1
    assert len(bot.slack.calls) == posts
    assert {m: bot.threads.items[m].ts for m in ("mig-a", "mig-c")} == {"mig-a": "", "mig-c": ""}
    writes, reads = bot.threads.writes, bot.threads.reads

    # WHEN the events are applied: no create of their own, the existing thread read
    outcomes = [notifier.apply(event, edit_root=True) for event in firsts]
    assert outcomes == ["applied", "duplicate", "applied"]
    assert bot.threads.writes == writes + 2  # mig-a's and mig-c's root ts, nothing else
    assert bot.threads.reads == reads + 1  # mig-b's, which existed
    assert len(bot.slack.calls) == posts + 2  # no second root for mig-b
    assert bot.threads.items["mig-a"].ts
    assert bot.threads.items["mig-c"].ts


def test_a_wave_of_owed_roots_is_one_name_and_a_later_container_reads_what_they_owe(
    bot: Bot,
) -> None:
    # GIVEN a burst of a wave's first events with Slack's budget spent: every root owed
    bot.slack.free_tokens = 0
    chain = bot.notifier.reminders
    for n in range(5):
        bot.notifier.apply(_requested(f"mig-{n}"), edit_root=True)
        owed = bot.notifier.pay_owed(wait=False)
        # THEN what is owed is named by the wave: one reminder for the burst, not one a root
        assert owed.root_waves == ("wave-3",)
        assert owed.migration_ids == ()
        if chain.needs_reminder(owed):
            chain.sent(f"r-{n}", owed)
    assert list(chain.put_here) == ["r-0"]
    assert chain.ours("r-0")
    assert not chain.ours("r-from-before")
    assert owed_roots_in(owed_roots_body(owed, "r-0")) == Owed(root_waves=("wave-3",))

    # WHEN a container started after a restart gets that reminder: it did not put it, so it
    # reads the wave's threads, and pays those whose item owes (all five roots)
    fresh = StatusNotifier(bot.threads, NoMigrations(), bot.slack, CHANNEL)
    assert not fresh.reminders.ours("r-0")
    fresh.adopt_owed(Owed(root_waves=("wave-3",)), read_waves=["wave-3"])
    assert bot.threads.wave_reads == 1
    assert sorted(fresh.owed_roots()) == [f"mig-{n}" for n in range(5)]
    bot.slack.free_tokens = float("inf")
    assert fresh.pay_owed(wait=False) == Owed()
    assert all(bot.threads.items[f"mig-{n}"].ts for n in range(5))
    assert [c.method for c in bot.slack.calls] == ["post"] * 5


def _first_cutover(events: list[EventDetail]) -> EventDetail:
    return next(
        e for e in events if isinstance(e, MigrationStatusUpdated) and e.step == "StartCutover"
    )


def test_an_owed_roots_reminder_names_its_migrations_and_nothing_else_is_one() -> None:
    owed = Owed(("mig-a", "mig-b"), ("wave-9/billing",))

    assert owed_roots_in(owed_roots_body(owed)) == owed
    assert owed_roots_in('{"detail-type": "MigrationFailed", "detail": {}}') is None
    assert owed_roots_in("not json") is None
    assert owed_roots_in('{"kind": "wavepilot.slack/roots-owed", "migrationIds": 7}') == Owed()


def test_what_is_owed_is_always_named_by_a_reminder_on_the_queue_not_only_in_memory() -> None:
    chain = ReminderChain()
    first = Owed(("mig-a",))
    assert chain.needs_reminder(first)
    chain.sent("r-1", first)
    assert not chain.needs_reminder(first)  # the pending reminder names it: one chain
    # GIVEN a later batch owes another root while r-1 is still on the queue
    more = Owed(("mig-a", "mig-b"), waves=("wave-1",))
    # THEN a new reminder names it (a restart now would lose it with the container's memory)
    assert chain.needs_reminder(more)
    chain.sent("r-2", more)
    # WHEN the superseded r-1 comes back: it is only read, the chain's head is r-2
    chain.handled(["r-1"])
    assert not chain.needs_reminder(more)
    # WHEN r-2 comes back with something still owed: the chain goes on
    chain.handled(["r-2"])
    assert chain.needs_reminder(Owed(("mig-b",)))
    # A restarted container knows of no reminder: its first batch that owes anything puts one
    assert ReminderChain().needs_reminder(Owed(groups=("wave-1/billing",)))
    assert not ReminderChain().needs_reminder(Owed())
    assert reminder_id_in(owed_roots_body(more, "r-2")) == "r-2"
    assert owed_roots_in(owed_roots_body(more, "r-2")) == more


# --- owed approval group edits --------------------------------------------------------------


class InMemoryGroups(GroupStore):
    """Group states in memory; ``writes`` counts write calls (a ``save_many`` is one, as
    ``TransactWriteItems``: all or nothing)."""

    def __init__(self) -> None:
        self.items: dict[str, GroupState] = {}
        self.reads = 0
        self.writes = 0

    def get(self, group: str) -> GroupState | None:
        self.reads += 1
        return self.items.get(group)

    def save(self, state: GroupState) -> GroupState:
        self.writes += 1
        return self._put(state)

    def _put(self, state: GroupState) -> GroupState:
        stored = self.items.get(state.group)
        if stored is not None and stored.version != state.version:
            raise GroupMessageConflictError(state.group)
        saved = replace(state, version=state.version + 1)
        self.items[state.group] = saved
        return saved

    def save_many(self, states: Sequence[GroupState]) -> tuple[list[GroupState], set[str]]:
        if len(states) == 1:
            try:
                return [self.save(states[0])], set()
            except GroupMessageConflictError:
                return [], {states[0].group}
        if not states:
            return [], set()
        self.writes += 1
        moved = {
            state.group
            for state in states
            if (stored := self.items.get(state.group)) is not None
            and stored.version != state.version
        }
        if moved:  # nothing written: the others again
            saved, conflicts = self.save_many([s for s in states if s.group not in moved])
            return saved, moved | conflicts
        return [self._put(state) for state in states], set()


class SizedMigrations(NoMigrations):
    def wave_migrations(self, wave: str) -> list[MigrationRecord]:
        return []


def _ready_for_group(n: int) -> EventDetail:
    return ApprovalRequested.model_validate(
        {
            **_identity(10),
            "migration_id": f"mig-{n:02d}",
            "target_vm_name": f"billing-{n:02d}",
            "approval_id": f"apv-{n:02d}",
            "approvers": ["U07ALICE001"],
            "requested_by": "",
            "expires_at": NOW + timedelta(hours=1),
            "summary": "Cut over?",
            "approval_scope": "application",
            "approval_group": "wave-3/billing-app",
        }
    )


def test_a_burst_of_ready_members_edits_their_group_message_once_when_a_token_is_free() -> None:
    slack, store = RecordingSlack(), InMemoryGroups()
    groups = GroupApprovalMessages(store, SizedMigrations(), slack, lambda _event: CHANNEL)
    groups.apply([_ready_for_group(1)])  # the message is posted with its first ready member
    assert slack.methods() == ["post"]

    # GIVEN no free token: three more batches of ready members
    slack.free_tokens = 0
    for n in (2, 3, 4):
        groups.apply([_ready_for_group(n)])

    # THEN the edits are owed, not made (nor waited for)
    assert slack.methods() == ["post"]
    assert groups.owed() == ["wave-3/billing-app"]

    # WHEN a token is free: one edit shows all four ready (as this container saved the
    # group: not read again)
    slack.free_tokens = 1
    reads = store.reads
    assert groups.pay_owed(wait=False) == []
    assert slack.methods() == ["post", "update"]
    assert ": 4 ready," in slack.calls[-1].text
    assert store.items["wave-3/billing-app"].count("ready") == 4
    assert store.reads == reads

    # AND a container that only adopted the edit (an owed-roots reminder) reads the group
    slack.free_tokens = 1
    adopted = GroupApprovalMessages(store, SizedMigrations(), slack, lambda _event: CHANNEL)
    adopted.adopt_owed(["wave-3/billing-app"])
    assert adopted.pay_owed(wait=False) == []
    assert store.reads == reads + 1
    assert ": 4 ready," in slack.calls[-1].text


def test_a_reminder_with_only_a_coalescing_root_left_waits_for_it_rather_than_spin(
    bot: Bot,
) -> None:
    bot.notifier.apply(_status(1, "WaitForReplication", "IN_PROGRESS"), edit_root=True)
    bot.slack.now += 5
    rollback = RollbackStarted(**_identity(2), step="StartTestLaunch", reason="launch failed")
    bot.notifier.apply(rollback, edit_root=True)  # rolling back: its edit waits 30 s
    shown_at = bot.threads.items["mig-12345"].shown_at

    assert bot.notifier.pay_owed_roots(wait=True, budget_seconds=60.0) == ["mig-12345"]
    assert bot.slack.now == shown_at + MIN_ROOT_EDIT_SECONDS  # waited until it is due

    assert bot.notifier.pay_owed_roots(wait=True, budget_seconds=10.0) == []
    assert bot.slack.methods()[-1] == "update"


def test_a_final_result_without_a_free_token_is_owed_and_a_fresh_container_posts_it_once(
    bot: Bot,
) -> None:
    # GIVEN a migration whose last events come in a cutover job's burst: no token free
    events = _happy_path()
    for event in events[:-1]:
        bot.slack.now += 60
        bot.notifier.apply(event, edit_root=True)
    bot.slack.free_tokens = 0
    calls_before = len(bot.slack.calls)
    bot.notifier.apply(events[-1], edit_root=True)

    # THEN the notifier went on without posting "Finalized" (nobody acts on it) and owes it,
    # in the thread's item, not only in this container
    assert len(bot.slack.calls) == calls_before
    assert bot.notifier.owed_roots() == ["mig-12345"]
    assert [text.split(":")[1] for text in bot.threads.items["mig-12345"].owed_replies] == [
        "white_check_mark"
    ]

    # WHEN a fresh container is reminded of it, twice
    fresh = StatusNotifier(bot.threads, NoMigrations(), bot.slack, CHANNEL)
    fresh.adopt_owed(Owed(("mig-12345",)))
    bot.slack.free_tokens = 5
    assert fresh.pay_owed_roots(wait=False) == []
    assert fresh.pay_owed_roots(wait=False) == []

    # THEN the root shows the end, and the final result is posted once, in the thread
    posted = [call for call in bot.slack.calls[calls_before:] if call.method == "post"]
    assert [("Finalized" in call.text, call.thread_ts) for call in posted] == [
        (True, bot.root_ts())
    ]
    assert bot.slack.calls[-2].text.endswith(": migrated")
    assert not bot.threads.items["mig-12345"].owes


def test_a_failure_is_posted_at_once_even_without_a_free_token(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.slack.free_tokens = 0

    bot.notifier.apply(
        _status(2, "ValidateInput", "FAILED", message="no such server"), edit_root=True
    )

    assert "failed" in bot.slack.calls[-1].text
    assert bot.slack.calls[-1].thread_ts == bot.root_ts()
    assert not bot.threads.items["mig-12345"].owed_replies


def test_a_threads_owed_replies_survive_its_item() -> None:
    from bot.thread_store import _attributes, _thread

    state = advance(ThreadState.new(_requested("mig-12345")), _requested("mig-12345")).state
    thread = SlackThread("mig-12345", CHANNEL, "1700000000.000100", state, 1)
    owing = replace(thread, owed_replies=("first", "second"))

    assert _thread(_attributes(owing)).owed_replies == ("first", "second")
    assert _thread(_attributes(thread)).owed_replies == ()


def test_a_summary_change_after_the_last_event_of_a_burst_is_shown_once_due() -> None:
    # GIVEN the summary edited for a result, and another result seconds later (the end of a
    # job's burst: no event comes after it for the next half hour)
    slack = RecordingSlack()
    summaries = WaveSummaryNotifier(_SummaryAt(), _NoThreads(), slack, _NoPredictions())
    first, second = _status(20, "FinalizeCutover", "SUCCEEDED"), _status(21, "Rollback", "FAILED")
    for n, event in enumerate((first, second)):
        thread = SlackThread(
            f"mig-{n}", CHANNEL, "1.1", advance(ThreadState.new(event), event).state, 0
        )
        summaries.note(event, thread, before=None)
        slack.now += 5
    edits = slack.methods().count("update")
    assert summaries.owed() == ["wave-3"]

    # WHEN paid before it is due: nothing; with a wait, the pay waits for it within its budget
    assert summaries.pay_owed(wait=False) == ["wave-3"]
    assert summaries.pay_owed(wait=True, budget_seconds=60.0) == ["wave-3"]
    assert slack.methods().count("update") == edits

    # THEN once due, one edit shows it
    assert summaries.pay_owed(wait=False) == []
    assert slack.methods().count("update") == edits + 1


class _CountedThreads(_NoThreads):
    def __init__(self) -> None:
        super().__init__()
        self.recounts = 0

    def wave_threads(self, wave: str) -> list[SlackThread]:
        self.recounts += 1
        return []


def test_a_wave_whose_migrations_end_in_a_burst_is_recounted_once_not_once_per_migration() -> None:
    # GIVEN a wave of 200 migrations running (the summary recounted once for them)
    slack, threads = RecordingSlack(), _CountedThreads()
    summaries = WaveSummaryNotifier(_SummaryAt(), threads, slack, _NoPredictions())

    def note(n: int, event: EventDetail, before: str | None) -> None:
        event = event.model_copy(update={"migration_id": f"mig-{n:03d}"})
        state = advance(ThreadState.new(event), event).state
        thread = SlackThread(f"mig-{n:03d}", CHANNEL, "1.1", state, 0)
        summaries.note(event, thread, before=before)  # type: ignore[arg-type]

    for n in range(200):
        note(n, _status(5, "WaitForReplication"), None)
    recounts = threads.recounts
    assert recounts == 1
    # WHEN a cutover job's 200 results come within seconds (each migration ends)
    done = MigrationCompleted(**_identity(20), target_instance_id="i-0new", duration_seconds=600)
    for n in range(200):
        note(n, done, "cutting over")
    # THEN the wave is recounted when its last migration ends, not for each (a Query of every
    # thread of the wave each time: quadratic in the wave), and that edit shows the end
    assert threads.recounts == recounts + 1
    assert "200" in slack.calls[-1].text
    assert summaries.owed() == []


def test_a_long_waves_summary_is_folded_between_reads_and_read_again_when_it_ends() -> None:
    # GIVEN a wave of 20 migrations waiting for replication (the summary read once for them)
    slack, threads = RecordingSlack(), _CountedThreads()
    summaries = WaveSummaryNotifier(_SummaryAt(), threads, slack, _NoPredictions())

    def note(n: int, event: EventDetail, before: str | None) -> None:
        event = event.model_copy(update={"migration_id": f"mig-{n:03d}"})
        state = advance(ThreadState.new(event), event).state
        thread = SlackThread(f"mig-{n:03d}", CHANNEL, "1.1", state, 0)
        summaries.note(event, thread, before=before)  # type: ignore[arg-type]

    for n in range(20):
        note(n, _status(5, "WaitForReplication"), None)
    assert threads.recounts == 1
    edits = slack.methods().count("update")
    # WHEN one migration after another cuts over, one every 31 s (an edit each, 589 s)
    done = MigrationCompleted(**_identity(20), target_instance_id="i-0new", duration_seconds=600)
    for n in range(19):
        slack.now += 31
        note(n, done, "waiting")
    # THEN every edit showed the change, but the wave's threads were read again only every
    # WAVE_REREAD_SECONDS (one read at 310 s), the rest folded from what was noted
    assert slack.methods().count("update") == edits + 19
    assert "19" in slack.calls[-1].text
    assert threads.recounts == 2
    # AND when the last one ends, the counts the wave ends with are read, not folded
    slack.now += 1
    note(19, done, "waiting")
    assert threads.recounts == 3
    assert "20" in slack.calls[-1].text


class _CountedWave(NoMigrations):
    """The example wave's records (its applications are approval groups), reads counted."""

    def __init__(self) -> None:
        from tests.support.pipeline import example_requests

        self.reads = 0
        self.records = [
            MigrationRecord(
                r.migration_id,
                r.wave,
                r.app_name,
                r.target_vm_name,
                "r1",
                "PENDING",
                "",
                "c",
                None,
                r,
            )
            for r in example_requests(approval_scope="application")
        ]

    def wave_migrations(self, wave: str) -> list[MigrationRecord]:
        self.reads += 1
        return self.records


def test_every_group_of_a_wave_first_seen_together_is_sized_from_one_read_of_the_wave() -> None:
    slack, store, wave = RecordingSlack(), InMemoryGroups(), _CountedWave()
    groups = GroupApprovalMessages(store, wave, slack, lambda _event: CHANNEL)
    apps = sorted({r.app_name for r in wave.records})
    assert len(apps) >= 2

    # WHEN the first member of each application's group is ready, within a minute
    for n, app in enumerate(apps):
        member = next(r for r in wave.records if r.app_name == app)
        groups.apply(
            [
                _ready_for_group(n).model_copy(
                    update={
                        "migration_id": member.migration_id,
                        "wave": member.wave,
                        "app_name": app,
                        "approval_group": f"{member.wave}/{app}",
                    }
                )
            ]
        )
        slack.now += 5

    # THEN the wave was read once for all of them, and each group knows its own size
    assert wave.reads == 1
    for app in apps:
        size = sum(1 for r in wave.records if r.app_name == app)
        assert store.items[f"wave-1/{app}"].size == size


def test_a_batch_moving_several_groups_saves_them_in_one_write_and_refolds_one_moved_on() -> None:
    slack, store = RecordingSlack(), InMemoryGroups()
    groups = GroupApprovalMessages(store, SizedMigrations(), slack, lambda _event: CHANNEL)

    def ready(n: int, app: str) -> EventDetail:
        event = _ready_for_group(n)
        return event.model_copy(update={"approval_group": f"wave-3/{app}"})

    # WHEN a batch brings ready members of three applications' groups
    groups.apply([ready(1, "billing-app"), ready(2, "crm-app"), ready(3, "hr-app")])

    # THEN the three groups are written together, then each message is posted
    assert store.writes == 1 + 3  # one write for the three; each post's ts saved after it
    assert slack.methods() == ["post", "post", "post"]
    assert {g: s.count("ready") for g, s in store.items.items()} == {
        "wave-3/billing-app": 1,
        "wave-3/crm-app": 1,
        "wave-3/hr-app": 1,
    }

    # WHEN another notifier saved one of them meanwhile, and the next batch moves all three
    other = store.items["wave-3/crm-app"]
    store.items[other.group] = replace(other, version=other.version + 1)
    writes, reads = store.writes, store.reads
    groups.apply([ready(4, "billing-app"), ready(5, "crm-app"), ready(6, "hr-app")])

    # THEN the two not moved are written together, the third read again, folded and saved
    assert (store.writes - writes, store.reads - reads) == (3, 1)  # refused, two, the third
    assert {g: s.count("ready") for g, s in store.items.items()} == {
        "wave-3/billing-app": 2,
        "wave-3/crm-app": 2,
        "wave-3/hr-app": 2,
    }


def test_a_group_folded_batch_after_batch_is_read_once_and_again_after_another_saved_it() -> None:
    slack, store = RecordingSlack(), InMemoryGroups()
    groups = GroupApprovalMessages(store, SizedMigrations(), slack, lambda _event: CHANNEL)

    # WHEN four batches each bring a ready member of one group
    for n in (1, 2, 3, 4):
        groups.apply([_ready_for_group(n)])

    # THEN it was read once (the first batch found nothing), then folded on what was saved
    assert store.reads == 1
    assert store.items["wave-3/billing-app"].count("ready") == 4

    # WHEN another notifier saves the group meanwhile (a member decided there)
    other = store.items["wave-3/billing-app"]
    store.items[other.group] = replace(other, version=other.version + 1)
    groups.apply([_ready_for_group(5)])

    # THEN the save conflicts, the group is read again and the member folded on it
    assert store.reads == 2
    assert store.items["wave-3/billing-app"].count("ready") == 5
