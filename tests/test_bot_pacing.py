"""The bot's pacing and coalescing rules, on a clock the test moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.slack_api import PacingClock, TokenBucket
from bot.thread_store import SlackThread
from bot.threads import ThreadState, advance
from orchestration.events import ApprovalDecided, MigrationCompleted, MigrationStatusUpdated


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []
        self.advances = True  # False: a sleep is only recorded (another thread's wait)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.advances:
            self.now += seconds


def test_a_bucket_spaces_calls_at_its_rate_on_the_slack_clock() -> None:
    fake = FakeTime()
    clock = PacingClock(10.0, monotonic=fake.monotonic, sleep=fake.sleep)
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)

    waits = [bucket.take() for _ in range(4)]

    assert waits == [0.0, 1.0, 1.0, 1.0]  # Slack seconds
    assert fake.slept == [0.1, 0.1, 0.1]  # real seconds at 10x


def test_a_call_that_does_not_wait_takes_a_token_only_if_one_is_free_now() -> None:
    fake = FakeTime()
    clock = PacingClock(1.0, monotonic=fake.monotonic, sleep=fake.sleep)
    bucket = TokenBucket(rate=1.0, burst=2, clock=clock)

    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    fake.now += 0.5
    assert not bucket.try_take()  # half a token
    fake.now += 0.5
    assert bucket.try_take()
    assert fake.slept == []  # never waited


def test_a_call_that_does_not_wait_never_goes_ahead_of_one_that_waits() -> None:
    fake = FakeTime()
    clock = PacingClock(1.0, monotonic=fake.monotonic, sleep=fake.sleep)
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.take() == 0.0
    # A waiting call reserved the next token (it sleeps on another thread: time stays)
    fake.advances = False
    assert bucket.take() == 1.0
    fake.now += 1.0  # that token's time comes: it is the waiting call's
    assert not bucket.try_take()
    bucket.give_back()  # a token returned (taken and not spent) is free again
    assert bucket.try_take()


def _status(sequence: int, step: str, status: str, message: str) -> MigrationStatusUpdated:
    return MigrationStatusUpdated(
        migration_id="mig-1",
        wave="wave-1",
        app_name="app",
        target_vm_name="vm-01",
        correlation_id="c",
        sequence=sequence,
        timestamp=datetime(2026, 11, 26, tzinfo=UTC),
        step=step,
        status=status,  # type: ignore[arg-type]
        message=message,
    )


def _thread(state: ThreadState, shown_at: float) -> SlackThread:
    return SlackThread("mig-1", "C1", "1.0", state, 0).shown(shown_at)


def test_the_root_is_owed_an_edit_only_when_its_stage_changes() -> None:
    start = ThreadState("mig-1", "wave-1", "app", "vm-01")
    replicating = advance(start, _status(1, "WaitForReplication", "IN_PROGRESS", "40%")).state
    thread = _thread(replicating, shown_at=100.0)

    # Routine progress (detail, phase) does not change what the root shows.
    progressed = advance(replicating, _status(2, "WaitForReplication", "IN_PROGRESS", "60%"))
    testing = advance(progressed.state, _status(3, "StartTestLaunch", "SUCCEEDED", "job"))
    for state in (progressed.state, testing.state):
        assert not _replace_state(thread, state).root_owed
        assert not _replace_state(thread, state).root_edit_due(now=1_000.0, min_interval=30.0)

    # Approved: cutting over is shown at once.
    approved = advance(testing.state, _decided(4, "APPROVED"))
    assert approved.state.stage == "cutting over"
    assert _replace_state(thread, approved.state).root_edit_due(now=100.5, min_interval=30.0)

    # Rejected: rolling back waits for the interval (rolled back usually follows at once).
    rejected = advance(testing.state, _decided(4, "REJECTED"))
    rolling_back = _replace_state(thread, rejected.state)
    assert rolling_back.root_owed
    assert not rolling_back.root_edit_due(now=110.0, min_interval=30.0)
    assert rolling_back.root_edit_due(now=131.0, min_interval=30.0)

    # The final state is shown at once, with its reply.
    done = advance(
        approved.state,
        MigrationCompleted(
            migration_id="mig-1",
            wave="wave-1",
            app_name="app",
            target_vm_name="vm-01",
            correlation_id="c",
            sequence=5,
            timestamp=datetime(2026, 11, 26, tzinfo=UTC),
            target_instance_id="i-1",
            duration_seconds=60,
        ),
    )
    assert done.state.final
    assert _replace_state(thread, done.state).root_edit_due(now=100.5, min_interval=30.0)
    assert [r.text.split(":")[1] for r in done.replies] == ["white_check_mark"]


def _decided(sequence: int, decision: str) -> ApprovalDecided:
    return ApprovalDecided(
        migration_id="mig-1",
        wave="wave-1",
        app_name="app",
        target_vm_name="vm-01",
        correlation_id="c",
        sequence=sequence,
        timestamp=datetime(2026, 11, 26, tzinfo=UTC),
        approval_id="apv-1",
        decision=decision,  # type: ignore[arg-type]
        decided_by="U1",
        reason="no" if decision == "REJECTED" else "",
    )


def _replace_state(thread: SlackThread, state: ThreadState) -> SlackThread:
    return replace(thread, state=state)
