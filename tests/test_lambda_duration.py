"""How long an invocation would have run on AWS: real time without a simulated clock; on the
simulated clock its simulated waits plus its thread's CPU, not the real time a loaded
machine's hundreds of threads stretch."""

from __future__ import annotations

import time

from orchestration.local.runtime.lambda_dispatch import InvocationDuration
from orchestration.local.virtual_clock import VirtualClock


def test_without_a_simulated_clock_it_is_real_time() -> None:
    duration = InvocationDuration.start()
    time.sleep(0.05)
    seconds, how = duration.seconds()
    assert 0.05 <= seconds < 5
    assert how == "real time"


def test_on_the_simulated_clock_waits_count_and_idle_real_time_does_not() -> None:
    clock = VirtualClock().start()
    try:
        with clock.participating():
            duration = InvocationDuration.start()
            time.sleep(0.3)  # real time passing (other threads' work), not this invocation's
            idle, _ = duration.seconds()
            clock.sleep(400)  # a simulated wait of 400 s (Slack pacing, a retry's sleep)
            waited, how = duration.seconds()
    finally:
        clock.close()
    assert idle < 0.2  # no simulated time passed and the thread slept rather than computed
    assert 400 <= waited < 401
    assert how.startswith("simulated waits 400.0 s + CPU ")
