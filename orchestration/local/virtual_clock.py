"""A simulated clock the CPU cannot stretch: discrete-event time over threads.

``VirtualClock`` implements ``orchestration.clock.Clock``. Virtual time stands still while any
*counted* work runs, and jumps to the earliest registered deadline when none does:

- A thread is *counted* while it does work that virtual time must wait for: the thread that
  started the system (the driver), every Step Functions interpreter thread, an asynchronous
  Lambda invocation, an SQS poller holding a batch, a Bolt lazy listener. ``counted(fn)``
  counts a new thread from the moment its parent hands it work (no gap between the two).
- A counted thread stops counting while it waits *on the clock* (``sleep``, ``ClockEvent.wait``,
  ``ClockThread.join``) and counts again the instant it is woken: the waker (a deadline, or a
  counted thread setting the event) adds it back under the clock's lock, so no instant exists
  in which the woken thread is runnable and uncounted.
- Busy probes (``add_busy_probe``) cover work held in data rather than in a thread: a message
  on a queue with an event source mapping that no poller has taken yet.
- The scheduler thread advances ``now`` to the earliest deadline when no thread counts and no
  probe is busy, and wakes every waiter due by then.

Work therefore takes no simulated time, and simulated durations come only from waits (Step
Functions ``Wait`` states, retries, timeouts, MGN's job timelines read at that time, pacing,
people). See docs/LOCAL_RUNTIME.md, "The simulated clock".
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "LENT_HEADER",
    "ClockEvent",
    "ClockStats",
    "ClockThread",
    "VirtualClock",
    "active_virtual_clock",
    "belong_to_active_clock",
]

# A request carrying this header was sent by a counted thread lending its count (``lending``).
LENT_HEADER = "X-Wavepilot-Clock-Lent"
_INTERRUPT_POLL_SECONDS = 0.2  # real: how often a waiter re-checks its interrupt predicate
# Real seconds between looks at busy probes while one says busy: doubling from the first to the
# last (the wait for work held in data costs at most the last pause once it is taken).
_PROBE_PAUSE_FIRST = 0.001
_PROBE_PAUSE_MAX = 0.032

_active_lock = threading.Lock()
_active: VirtualClock | None = None
# The clock a thread was counted on (a ClockThread, a counted task, a participant): a thread
# left over from an embedded system that has stopped (a test's Step Functions execution still
# waiting when its runtime closed) must never wait on, or be counted by, the next system's clock.
_home = threading.local()


def active_virtual_clock() -> VirtualClock | None:
    """The virtual clock driving this process's embedded system, if any (one per process);
    None for a thread that belongs to an earlier clock (it runs on real time from then on)."""
    clock = _active
    home = getattr(_home, "clock", None)
    if home is not None and home is not clock:
        return None
    return clock


def belong_to_active_clock() -> None:
    """Make the calling thread (a long-lived thread of the running system: an SQS poller)
    belong to the clock active now: once that clock closes, the thread sees no clock (real
    time) and never counts on, or waits on, a later system's clock."""
    clock = active_virtual_clock()
    if clock is not None:
        _home.clock = clock


@contextmanager
def _at_home(clock: VirtualClock) -> Iterator[None]:
    previous = getattr(_home, "clock", None)
    _home.clock = clock
    try:
        yield
    finally:
        _home.clock = previous


@dataclass(frozen=True)
class ClockStats:
    now_seconds: float  # virtual seconds since the clock's start
    advances: int  # times virtual time jumped to a deadline
    waits: int  # waits registered on the clock


@dataclass(eq=False)
class _Waiter:
    deadline: float | None
    counted: bool
    clock: VirtualClock
    ready: threading.Event = field(default_factory=threading.Event)
    woken: bool = False
    signalled: bool = False


class VirtualClock:
    """Virtual time for the embedded system (see the module docstring).

    Args:
        start: the virtual instant at creation (timezone-aware); the real now by default.
        settle_seconds: a real pause before each advance, re-checking quiescence after it: a
            safety margin for work handed between threads outside the accounting (0.0005 s).
    """

    def __init__(self, start: datetime | None = None, *, settle_seconds: float = 0.0005) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._epoch = self._start.timestamp()
        self._settle = settle_seconds
        self._lock = threading.Condition(threading.Lock())
        self._now = 0.0
        self._active = 0
        self._generation = 0
        self._heap: list[tuple[float, int, _Waiter]] = []
        self._sequence = itertools.count()
        self._probes: list[Callable[[], bool]] = []
        self._local = threading.local()
        self._closed = False
        self._advances = 0
        self._waits = 0
        self._scheduler: threading.Thread | None = None

    def __copy__(self) -> VirtualClock:
        return self  # one time for the process: copies (Bolt deep-copies its context) share it

    def __deepcopy__(self, memo: dict[int, Any]) -> VirtualClock:
        return self

    # --- the Clock protocol ------------------------------------------------------------

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._now)

    def monotonic(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._closed:
            if seconds > 0:
                time.sleep(min(seconds, 0.01))  # after close: do not spin, do not hang
            return
        self._block(self._now + seconds, None)

    # --- more of time --------------------------------------------------------------------

    def time(self) -> float:
        """Epoch seconds (``time.time()`` on this clock)."""
        return self._epoch + self._now

    def stats(self) -> ClockStats:
        return ClockStats(self._now, self._advances, self._waits)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> VirtualClock:
        global _active  # noqa: PLW0603 - one embedded system per process, by design
        with _active_lock:
            if _active is not None and _active is not self:
                raise RuntimeError("another virtual clock is active in this process")
            _active = self
        if self._scheduler is None:
            self._scheduler = threading.Thread(
                target=self._schedule, name="virtual-clock", daemon=True
            )
            self._scheduler.start()
        return self

    def close(self) -> None:
        """Stop advancing and wake every waiter (as if its deadline had passed); later waits
        on this clock return at once. Waits on ``ClockEvent``s fall back to real time."""
        global _active  # noqa: PLW0603
        with self._lock:
            self._closed = True
            for _, _, waiter in self._heap:
                self._wake(waiter, signalled=False)
            self._heap.clear()
            self._lock.notify_all()
        with _active_lock:
            if _active is self:
                _active = None
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
            self._scheduler = None

    @property
    def closed(self) -> bool:
        return self._closed

    # --- accounting ----------------------------------------------------------------------

    def is_counted(self) -> bool:
        return bool(getattr(self._local, "counted", False))

    @contextmanager
    def participating(self) -> Iterator[None]:
        """Count the calling thread for the duration of the block."""
        if self.is_counted():
            yield
            return
        self._add(1)
        self._local.counted = True
        try:
            with _at_home(self):
                yield
        finally:
            self._local.counted = False
            self._add(-1)

    def counted(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Count ``function``'s future run from now (call this in the thread that hands it the
        work); the returned callable (to be called once) runs it counted, then stops counting."""
        release = self.hold()

        def run(*args: Any, **kwargs: Any) -> Any:
            was = self.is_counted()
            self._local.counted = True
            try:
                with _at_home(self):
                    return function(*args, **kwargs)
            finally:
                self._local.counted = was
                release()

        return run

    @contextmanager
    def lending(self) -> Iterator[bool]:
        """Client side of a synchronous request to a server thread of this process: the calling
        thread lends its count to the request (yields True if it had one to lend; send
        ``LENT_HEADER`` then) and takes it back when the block ends; the count never drops."""
        if not self.is_counted():
            yield False
            return
        self._local.counted = False
        try:
            yield True
        finally:
            self._local.counted = True

    @contextmanager
    def borrowing(self, lent: bool) -> Iterator[None]:
        """Server side: while handling a request whose client lent its count, this thread holds
        it (its clock waits release it, its wakes take it back) and gives it back at the end."""
        if not lent or self.is_counted():
            yield
            return
        self._local.counted = True
        try:
            yield
        finally:
            self._local.counted = False

    def map_counted(
        self, function: Callable[[Any], Any], items: list[Any], executor: Any
    ) -> list[Any]:
        """``list(executor.map(function, items))`` for a counted caller: each task is counted
        from submission, and the caller waits on the clock (not counted) until the last task
        wakes it, before that task stops counting."""
        if not items:
            return []
        done = ClockEvent()
        remaining = [len(items)]
        lock = threading.Lock()

        def task(item: Any) -> Any:
            try:
                return function(item)
            finally:
                with lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    done.set()

        futures = [executor.submit(self.counted(task), item) for item in items]
        done.wait()
        return [future.result() for future in futures]

    def hold(self) -> Callable[[], None]:
        """Count one unit of work now; call the returned function once when it is done."""
        self._add(1)
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._add(-1)

        return release

    def add_busy_probe(self, probe: Callable[[], bool]) -> None:
        """``probe()`` True means work is pending that no counted thread holds yet."""
        self._probes.append(probe)

    def remove_busy_probe(self, probe: Callable[[], bool]) -> None:
        if probe in self._probes:
            self._probes.remove(probe)

    def _add(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            self._generation += 1
            if self._active == 0:
                self._lock.notify_all()

    # --- waiting -------------------------------------------------------------------------

    def _block(
        self,
        deadline: float | None,
        event: ClockEvent | None,
        interrupt: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait until ``deadline`` (virtual) or ``event`` is set; True if the event woke us."""
        waiter = _Waiter(deadline, self.is_counted(), self)
        with self._lock:
            if self._closed or (deadline is not None and deadline <= self._now):
                return event is not None and event._flag
            if event is not None:
                with event._lock:  # lock order: a clock's, then an event's (set() takes one)
                    if event._flag:
                        return True
                    event._waiters.append(waiter)
            self._waits += 1
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, next(self._sequence), waiter))
            if waiter.counted:
                self._active -= 1
            self._generation += 1
            self._lock.notify_all()
        while not waiter.ready.wait(_INTERRUPT_POLL_SECONDS if interrupt else None):
            if interrupt is not None and interrupt():
                with self._lock:
                    self._wake(waiter, signalled=False)
        return waiter.signalled

    def _wake(self, waiter: _Waiter, *, signalled: bool) -> None:
        """Under the lock: make ``waiter`` runnable, counted again from this instant."""
        if waiter.woken:
            return
        waiter.woken = True
        waiter.signalled = signalled
        if waiter.counted:
            self._active += 1
            self._generation += 1
        waiter.ready.set()

    def _schedule(self) -> None:
        probe_pause = _PROBE_PAUSE_FIRST
        while True:
            with self._lock:
                while not self._closed and not (self._active == 0 and self._due_heap()):
                    self._lock.wait()
                if self._closed:
                    return
                generation = self._generation
            if any(probe() for probe in list(self._probes)):
                # Work held in data: look again soon, less often the longer it stays (a backed-up
                # queue is scanned by its probe; every look takes the CPU from the work itself).
                time.sleep(probe_pause)
                probe_pause = min(probe_pause * 2, _PROBE_PAUSE_MAX)
                continue
            probe_pause = _PROBE_PAUSE_FIRST
            if self._settle:
                time.sleep(self._settle)
            with self._lock:
                if self._closed:
                    return
                if self._generation != generation or self._active != 0 or not self._due_heap():
                    continue
                self._now = max(self._now, self._heap[0][0])
                while self._heap and self._heap[0][0] <= self._now:
                    _, _, waiter = heapq.heappop(self._heap)
                    self._wake(waiter, signalled=False)
                self._advances += 1
                self._generation += 1

    def _due_heap(self) -> bool:
        """Under the lock: drop woken waiters from the top; True if a deadline remains."""
        while self._heap and self._heap[0][2].woken:
            heapq.heappop(self._heap)
        return bool(self._heap)


class ClockEvent:
    """``threading.Event`` whose timed waits run on the active virtual clock (real time when
    there is none): what the Step Functions interpreter waits on in simulated mode."""

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._real = threading.Event()

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set  # noqa: N815 - threading.Event's alias

    def set(self) -> None:
        with self._lock:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            # Woken on the clock it waits on (counted there again if it was counted): never on
            # whichever clock is active now, which may be a later system's.
            with waiter.clock._lock:
                waiter.clock._wake(waiter, signalled=True)
        self._real.set()

    def clear(self) -> None:
        self._flag = False
        self._real.clear()

    def wait(self, timeout: float | None = None) -> bool:
        clock = active_virtual_clock()
        if clock is None or clock.closed:
            return self._real.wait(timeout)
        if self._flag:
            return True
        deadline = None if timeout is None else clock.monotonic() + max(0.0, timeout)
        return clock._block(deadline, self) or self._flag


class ClockThread(threading.Thread):
    """``threading.Thread`` counted on the active virtual clock from ``start()`` to its end,
    whose ``join`` waits on that clock (plain when there is none)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock_done = ClockEvent()
        self._clock_release: Callable[[], None] | None = None
        self._clock: VirtualClock | None = None

    def start(self) -> None:
        clock = active_virtual_clock()
        if clock is not None and not clock.closed:
            self._clock = clock
            self._clock_release = clock.hold()  # counted from the parent's instant
        try:
            super().start()
        except BaseException:
            if self._clock_release is not None:
                self._clock_release()
            raise

    def run(self) -> None:
        clock, release = self._clock, self._clock_release
        if clock is not None:
            clock._local.counted = True
            _home.clock = clock
        try:
            super().run()
        finally:
            self._clock_done.set()  # wakes a joiner (counted) before this thread stops counting
            if clock is not None and release is not None:
                clock._local.counted = False
                release()

    def join(self, timeout: float | None = None) -> None:
        clock = active_virtual_clock()
        if clock is None or clock.closed or self._clock is not clock:
            super().join(timeout)
            return
        self._clock_done.wait(timeout)
        if self._clock_done.is_set():
            super().join(1.0)  # its run() has returned: only thread teardown is left


def virtual_time_module(
    clock_getter: Callable[[], VirtualClock | None] = active_virtual_clock,
) -> Any:
    """A stand-in for the ``time`` module whose ``time``/``sleep``/``monotonic`` run on the
    active virtual clock (the real ones when there is none)."""

    class _Time:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def time() -> float:
            clock = clock_getter()
            return clock.time() if clock is not None and not clock.closed else time.time()

        @staticmethod
        def monotonic() -> float:
            clock = clock_getter()
            return clock.monotonic() if clock is not None and not clock.closed else time.monotonic()

        @staticmethod
        def sleep(seconds: float) -> None:
            clock = clock_getter()
            if clock is not None and not clock.closed:
                clock.sleep(seconds)
            else:
                time.sleep(seconds)

    return _Time()


def virtual_threading_module() -> Any:
    """A stand-in for the ``threading`` module with ``Event``/``Thread`` on the virtual clock."""

    class _Threading:
        Event = ClockEvent
        Thread = ClockThread

        def __getattr__(self, name: str) -> Any:
            return getattr(threading, name)

    return _Threading()
