"""Simulated time: MGN's minutes-to-hours processes compressed into seconds, or frozen for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimulatedClock:
    """A UTC clock that runs `speed` simulated seconds per real second and can be advanced by hand.

    Everything the emulator reports (replication progress, job transitions, timestamps) is computed
    from this clock, so a frozen clock (`speed=0`) plus `advance()` makes a test deterministic,
    and the demo can run at e.g. 600x (ten simulated minutes per real second).

    Args:
        speed: simulated seconds per real second; 0 freezes time except for `advance()`.
        start: the simulated time at creation (timezone-aware); defaults to the real UTC now.
        real_time: a monotonic seconds source, injectable for tests of the clock itself.
    """

    def __init__(
        self,
        speed: float = 600.0,
        *,
        start: datetime | None = None,
        real_time: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self._speed = speed
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._real_time = real_time
        self._real_start = real_time()
        self._manual_offset = timedelta()
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        """The current simulated time (UTC, never earlier than a previous reading)."""
        with self._lock:
            real_elapsed = self._real_time() - self._real_start
            return self._start + timedelta(seconds=real_elapsed * self._speed) + self._manual_offset

    def advance(self, delta: timedelta | float) -> datetime:
        """Move simulated time forward by `delta` (a timedelta or seconds); returns the new now."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta():
            raise ValueError("the simulated clock cannot go backwards")
        with self._lock:
            self._manual_offset += step
        return self.now()
