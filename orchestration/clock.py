"""The clock: every "now" and every "wait" in Wavepilot goes through one injected ``Clock``.

Services take a ``Clock`` instead of calling ``datetime.now``/``time.time``/``time.sleep``, so a
simulated clock can drive a rehearsal (the embedded default swaps one in through
``orchestration.wiring.use_clock``). ``SYSTEM_CLOCK`` is real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin, never going back: for durations and deadlines."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
