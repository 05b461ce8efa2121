"""StatusNotifier's decisions over in-memory fakes: order by sequence, coalesced root edits.

The fakes stand in for the thread table, the migrations table and paced Slack; they subclass
the real classes only to satisfy their types (bot/notifier.py names concrete classes), and
override every method the notifier calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from bot.notifier import BEHIND_SECONDS, MIN_ROOT_EDIT_SECONDS, StatusNotifier
from bot.slack_api import PacedSlack
from bot.thread_store import SlackThread, StaleThreadError, ThreadExistsError, ThreadStore
from orchestration.adapters.state_store import MigrationRecord, MigrationStore
from orchestration.events import (
    ApprovalDecided,
    ApprovalRequested,
    EventDetail,
    MigrationStatusUpdated,
)
from tests.support.fakes import NOW

CHANNEL = "C0DEFAULT01"


class InMemoryThreads(ThreadStore):
    def __init__(self) -> None:
        self.items: dict[str, SlackThread] = {}

    def get(self, migration_id: str) -> SlackThread | None:
        return self.items.get(migration_id)

    def create(self, thread: SlackThread) -> None:
        if thread.migration_id in self.items:
            raise ThreadExistsError(thread.migration_id)
        self.items[thread.migration_id] = thread

    def save(self, thread: SlackThread, *, previous_sequence: int) -> None:
        stored = self.items.get(thread.migration_id)
        if stored is not None and stored.state.sequence != previous_sequence:
            raise StaleThreadError(thread.migration_id)
        self.items[thread.migration_id] = thread


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

    # THEN nothing is posted again and the thread keeps the newest state
    assert len(bot.slack.calls) == calls
    assert bot.threads.items["mig-12345"].state.sequence == 3


def test_a_milestone_is_a_reply_in_the_thread(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)

    bot.notifier.apply(_status(2, "WaitForReplication", "SUCCEEDED"), edit_root=False)

    reply = bot.slack.calls[1]
    assert (reply.method, reply.thread_ts) == ("post", bot.root_ts())
    assert "Replication ready" in reply.text


def test_root_edits_are_coalesced_to_the_last_event_of_a_batch(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)

    # WHEN a batch of three events arrives; the handler marks the last one to edit the root
    bot.notifier.apply(_status(2, "ValidateInput", "SUCCEEDED"), edit_root=False)
    bot.notifier.apply(_status(3, "PrepareSource", "SUCCEEDED"), edit_root=False)
    assert bot.threads.items["mig-12345"].root_owed
    bot.notifier.apply(_status(4, "CheckReplication", "IN_PROGRESS"), edit_root=True)

    # THEN the root is edited once, for the last event
    assert bot.slack.methods() == ["post", "update"]
    thread = bot.threads.items["mig-12345"]
    assert (thread.shown_sequence, thread.root_owed) == (4, False)


def test_a_change_of_detail_only_edits_the_root_at_most_every_interval(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "WaitForReplication", "IN_PROGRESS"), edit_root=True)

    # WHEN progress changes within the same phase a few seconds later
    bot.slack.now += 5
    bot.notifier.apply(_status(2, "WaitForReplication", message="40%"), edit_root=True)
    # THEN the edit is owed, not made
    assert bot.slack.methods() == ["post"]
    assert bot.threads.items["mig-12345"].root_owed

    # WHEN the interval has passed, the next event pays what is owed
    bot.slack.now += MIN_ROOT_EDIT_SECONDS
    bot.notifier.apply(_status(3, "WaitForReplication", message="60%"), edit_root=True)
    assert bot.slack.methods() == ["post", "update"]


def test_a_redelivery_pays_an_owed_root_edit(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "WaitForReplication", "IN_PROGRESS"), edit_root=True)
    bot.slack.now += 5
    bot.notifier.apply(_status(2, "WaitForReplication", message="40%"), edit_root=True)

    bot.slack.now += MIN_ROOT_EDIT_SECONDS
    assert bot.notifier.apply(_status(2, "WaitForReplication", message="40%"), edit_root=True) == (
        "duplicate"
    )

    assert bot.slack.methods() == ["post", "update"]
    assert not bot.threads.items["mig-12345"].root_owed


def test_a_new_phase_is_shown_at_once_unless_the_bot_is_catching_up(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.slack.now += 5
    bot.notifier.apply(_status(2, "PrepareSource", "SUCCEEDED"), edit_root=True)
    assert bot.slack.methods() == ["post", "update"]

    # GIVEN events that waited longer than BEHIND_SECONDS in the queue
    old = NOW - timedelta(seconds=BEHIND_SECONDS + 1)
    bot.slack.now += 5
    bot.notifier.apply(_status(3, "WaitForReplication", timestamp=old), edit_root=True)

    assert bot.slack.methods() == ["post", "update"]  # the phase change waits its turn
    assert bot.threads.items["mig-12345"].root_owed


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


def test_a_thread_moved_on_by_another_writer_is_read_again(bot: Bot) -> None:
    bot.notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True)
    bot.notifier.apply(_status(2, "ValidateInput", "SUCCEEDED"), edit_root=False)
    # GIVEN another container folded event 3 into the stored thread meanwhile
    stored = bot.threads.items["mig-12345"]
    bot.threads.items["mig-12345"] = replace(stored, state=replace(stored.state, sequence=3))

    # WHEN this container applies event 3 (a duplicate now) and event 4
    assert bot.notifier.apply(_status(3, "PrepareSource", "SUCCEEDED"), edit_root=False) == (
        "duplicate"
    )
    assert bot.notifier.apply(_status(4, "WaitForReplication", "SUCCEEDED"), edit_root=False) == (
        "applied"
    )

    assert bot.threads.items["mig-12345"].state.sequence == 4


def test_without_any_channel_nothing_is_posted(bot: Bot) -> None:
    notifier = StatusNotifier(bot.threads, NoMigrations(), bot.slack, "")

    assert notifier.apply(_status(1, "ValidateInput", "STARTED"), edit_root=True) == "no channel"
    assert bot.slack.calls == []
