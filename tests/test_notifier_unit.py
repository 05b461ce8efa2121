"""StatusNotifier's decisions over in-memory fakes: order by sequence (two queues), the
thread's Slack budget, coalesced root edits, writes of the thread item.

The fakes stand in for the thread table, the migrations table and paced Slack; they subclass
the real classes only to satisfy their types (bot/notifier.py names concrete classes), and
override every method the notifier calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from bot.notifier import MIN_ROOT_EDIT_SECONDS, StatusNotifier
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

    def get(self, migration_id: str) -> SlackThread | None:
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


def test_a_happy_migration_costs_six_slack_calls_and_six_item_writes(bot: Bot) -> None:
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
    # created (queued), replicating, awaiting approval, the approval message posted,
    # cutting over, migrated.
    assert bot.threads.writes == 6
    assert len(events) == 18  # one write for every three events (was one for each)


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
