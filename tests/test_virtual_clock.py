"""The simulated clock: virtual time that the CPU cannot stretch (docs/LOCAL_RUNTIME.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestration.local.virtual_clock import (
    ClockEvent,
    ClockThread,
    VirtualClock,
    active_virtual_clock,
    belong_to_active_clock,
)

POLL = 30.0  # the simulated approver looks every 30 simulated seconds


@contextmanager
def running(clock: VirtualClock) -> Iterator[VirtualClock]:
    clock.start()
    try:
        with clock.participating():
            yield clock
    finally:
        clock.close()


def test_sleeps_take_no_wall_time_and_end_in_deadline_order() -> None:
    ended: list[tuple[str, float]] = []
    with running(VirtualClock()) as clock:

        def sleeper(name: str, seconds: float) -> None:
            clock.sleep(seconds)
            ended.append((name, clock.monotonic()))

        threads = [
            threading.Thread(target=clock.counted(sleeper), args=(name, seconds))
            for name, seconds in (("hour", 3600.0), ("minute", 60.0), ("day", 86400.0))
        ]
        for thread in threads:
            thread.start()
        clock.sleep(90000.0)
        for thread in threads:
            thread.join()
    assert ended == [("minute", 60.0), ("hour", 3600.0), ("day", 86400.0)]


def test_an_event_set_by_a_counted_thread_wakes_the_waiter_before_time_moves() -> None:
    with running(VirtualClock()) as clock:
        event = ClockEvent()
        woke_at: list[float] = []

        def waiter() -> None:
            event.wait(timeout=7200)
            woke_at.append(clock.monotonic())

        thread = threading.Thread(target=clock.counted(waiter))
        thread.start()
        clock.sleep(600)
        event.set()
        clock.sleep(60)
        thread.join()
    assert woke_at == [600.0]


def test_a_counted_thread_that_computes_holds_virtual_time() -> None:
    with running(VirtualClock()) as clock:
        seen: list[float] = []

        def busy() -> None:
            total = 0
            for i in range(2_000_000):  # real work, no wait: virtual time must not move
                total += i
            seen.append(clock.monotonic())

        thread = threading.Thread(target=clock.counted(busy))
        thread.start()
        clock.sleep(1)  # deadline at 1 s: reached only after busy() ends
        thread.join()
    assert seen == [0.0]


def test_a_thread_left_over_from_a_closed_clock_never_holds_the_next_clocks_time() -> None:
    # A test's embedded system stops with a Step Functions thread still waiting on an event
    # (no deadline); the event is set while the next test's clock runs. Woken on the clock it
    # counted on, the thread must not be counted on the new one: a count nobody releases
    # would stop the new clock for good (the clean-clone CI's 600-second timeouts).
    first = VirtualClock().start()
    event = ClockEvent()
    leftover_ended = threading.Event()

    def leftover() -> None:
        event.wait()
        leftover_ended.set()

    ClockThread(target=leftover, daemon=True).start()
    for _ in range(500):
        if first.stats().waits:
            break
        threading.Event().wait(0.01)
    first.close()
    second = VirtualClock().start()
    try:
        event.set()
        assert leftover_ended.wait(5)
        slept = threading.Event()

        def sleeper() -> None:
            second.sleep(60)
            slept.set()

        threading.Thread(target=second.counted(sleeper), daemon=True).start()
        assert slept.wait(5), "the new clock never advanced: the leftover's count leaked into it"
        assert second.monotonic() == 60.0
    finally:
        second.close()


def test_a_thread_that_belongs_to_a_clock_sees_no_later_clock() -> None:
    first = VirtualClock().start()
    seen: list[object] = []
    go = threading.Event()

    def poller() -> None:  # a long-lived thread of the first system (an SQS poller)
        belong_to_active_clock()
        seen.append(active_virtual_clock())
        go.wait(5)
        seen.append(active_virtual_clock())

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    while not seen:
        threading.Event().wait(0.01)
    first.close()
    second = VirtualClock().start()
    try:
        go.set()
        thread.join(5)
        assert seen == [first, None]  # real time from then on, never the second clock
        assert active_virtual_clock() is second  # for every other thread, the second
    finally:
        second.close()


# The clock's acceptance on the whole system (the same makespan with the other core busy;
# MGN's job quota binding as ceil(N/J) x D) runs through `wavepilot rehearse` itself:
# tests/test_rehearse.py.
