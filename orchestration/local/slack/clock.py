"""Slack-clock time: what rate limits, message timestamps and edit times are measured against."""

from __future__ import annotations

import time
from datetime import datetime

from orchestration.local.mgn.clock import SimulatedClock


class SlackClock:
    """Epoch seconds on a clock that runs `speed` Slack seconds per real second.

    A thin wrapper over the MGN emulator's `SimulatedClock` (so the whole embedded runtime can
    share one notion of simulated time) that speaks Slack's unit: float epoch seconds, as in a
    message `ts`. `speed=0` freezes it for tests; `advance()` moves it by hand.

    Args:
        speed: Slack seconds per real second (1 = real time; the embedded runtime runs it 60x).
        start: the Slack time at creation; defaults to the real now.
        simulated: an existing `SimulatedClock` to follow instead of creating one.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start: datetime | None = None,
        simulated: SimulatedClock | None = None,
    ) -> None:
        self._clock = simulated if simulated is not None else SimulatedClock(speed, start=start)
        self._wall_start = time.time()
        self._slack_start = self.now()

    @property
    def speed(self) -> float:
        return self._clock.speed

    def now(self) -> float:
        """Current Slack time in epoch seconds."""
        return self._clock.now().timestamp()

    def advance(self, seconds: float) -> float:
        """Move Slack time forward by `seconds`; returns the new now."""
        return self._clock.advance(seconds).timestamp()

    def at(self, moment: datetime) -> float:
        """The Slack time (epoch seconds) of a real instant, as this clock runs (the embedded
        runtime's events carry real timestamps; Slack's lag is measured on its clock)."""
        return self._slack_start + (moment.timestamp() - self._wall_start) * self.speed
