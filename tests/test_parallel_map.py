"""Work handed to a pool stays the caller's: ``parallel_map`` and Bolt's listener executor
run each task in a copy of the submitter's context (the local runtime reads the running
function from it to attribute AWS calls: IAM policies are checked against those records)."""

from __future__ import annotations

from contextvars import ContextVar

from orchestration.clock import SYSTEM_CLOCK, ClockAwareExecutor, parallel_map
from orchestration.local.virtual_clock import VirtualClock

RUNNING: ContextVar[str | None] = ContextVar("running", default=None)


def _seen(_: int) -> str | None:
    return RUNNING.get()


def test_parallel_map_runs_each_item_in_the_callers_context() -> None:
    token = RUNNING.set("wavepilot-slack-notifier")
    try:
        assert (
            parallel_map(SYSTEM_CLOCK, _seen, range(6), max_workers=3)
            == ["wavepilot-slack-notifier"] * 6
        )
        clock = VirtualClock().start()
        try:
            with clock.participating():
                assert (
                    parallel_map(clock, _seen, range(6), max_workers=3)
                    == ["wavepilot-slack-notifier"] * 6
                )
        finally:
            clock.close()
    finally:
        RUNNING.reset(token)


def test_a_listener_submitted_from_a_request_runs_in_its_context() -> None:
    executor = ClockAwareExecutor(SYSTEM_CLOCK, max_workers=2)
    try:
        token = RUNNING.set("wavepilot-slack-bot")
        try:
            future = executor.submit(_seen, 0)
        finally:
            RUNNING.reset(token)
        assert future.result(timeout=5) == "wavepilot-slack-bot"
        assert executor.submit(_seen, 0).result(timeout=5) is None
    finally:
        executor.shutdown()
