"""The bot's wiring forgets everything it built when told to (a new embedded system, a test).

Every builder is cached per container; one left out of ``reset()`` keeps a client of the
previous embedded system (its moto port is gone): the owed-roots reminder did, and its sends
failed in the next rehearsal of the same test process.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

from bot import wiring
from orchestration import wiring as orchestration_wiring


def test_reset_forgets_every_cached_builder() -> None:
    cached = sorted(
        name
        for name, value in vars(wiring).items()
        if callable(value) and hasattr(value, "cache_clear") and value.__module__ == wiring.__name__
    )
    cleared = inspect.getsource(wiring.reset)

    assert cached, "the wiring caches its builders"
    assert [name for name in cached if f"{name}," not in cleared] == []


class _StoppedClock:
    """A pipeline clock standing at one simulated instant (a rehearsal's, not the machine's)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def test_the_bots_slack_time_is_the_pipelines_clock_not_the_machines() -> None:
    # Edit intervals and payment budgets are measured on wall_seconds while waits happen on the
    # pipeline's clock: on the machine's time, a rehearsal's 30-second interval lasted 30 real
    # seconds, hundreds of simulated ones.
    simulated = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    orchestration_wiring.use_clock(_StoppedClock(simulated))
    try:
        assert wiring._slack_clock().wall_seconds() == simulated.timestamp()
    finally:
        orchestration_wiring.use_clock(None)
