"""The clock: every "now" and every "wait" in Wavepilot goes through one injected ``Clock``.

Services take a ``Clock`` instead of calling ``datetime.now``/``time.time``/``time.sleep``, so a
simulated clock can drive a rehearsal (the embedded default swaps one in through
``orchestration.wiring.use_clock``). ``SYSTEM_CLOCK`` is real time.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "parallel_map"]


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


def parallel_map(
    clock: Clock,
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_workers: int,
    thread_name_prefix: str = "",
) -> list[Any]:
    """``function`` over ``items`` on a thread pool, results in order, each in a copy of the
    caller's context (what runs there is still the caller's work: the local runtime's record
    of which function made an AWS call reads it). A clock that has ``map_counted`` (the
    embedded default's simulated clock) keeps the waits of the pool's threads on it: its time
    advances only when none of them can run."""
    values = [(contextvars.copy_context(), item) for item in items]

    def in_callers_context(value: tuple[contextvars.Context, Any]) -> Any:
        context, item = value
        return context.run(function, item)

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix) as pool:
        mapper = getattr(clock, "map_counted", None)
        if mapper is not None:
            return list(mapper(in_callers_context, values, pool))
        return list(pool.map(in_callers_context, values))


class ClockAwareExecutor(ThreadPoolExecutor):
    """A thread pool for work handed on in the background (Bolt's lazy listeners): with a
    clock that counts work (the embedded default's simulated clock), a task submitted by a
    counted thread is counted from its submission to its end, so simulated time does not
    run ahead while it works (a group approval deciding 200 VMs one after the other). With
    any other clock, a plain thread pool."""

    def __init__(self, clock: Clock, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._clock = clock

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        counted = getattr(self._clock, "counted", None)
        is_counted = getattr(self._clock, "is_counted", None)
        if counted is not None and is_counted is not None and is_counted():
            fn = counted(fn)
        # In a copy of the submitter's context: the listener's work is still its request's.
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
