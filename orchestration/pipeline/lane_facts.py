"""Facts about a lane that a wave's VMs share, looked up once a minute rather than per VM.

A wave's VMs name the same subnets, security groups, instance types and instance profile, and
validate within a minute or two of each other: asking EC2 and IAM for each VM repeats the same
answers hundreds of times (five to seven calls per VM). ``LaneFacts`` keeps a *good* answer
(the subnet exists, the groups exist, the type is offered, the profile exists) for a minute on
the clock, per warm Lambda container; a bad answer is never kept, so a problem is always
reported from a fresh look. One thread looks a fact up at a time; the others wait for its
answer instead of asking too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import TypeVar

from orchestration.clock import Clock

T = TypeVar("T")

FACTS_MAX_AGE = timedelta(minutes=1)


class LaneFacts:
    def __init__(self, clock: Clock, max_age: timedelta = FACTS_MAX_AGE) -> None:
        self._clock = clock
        self._max_age = max_age
        self._kept: dict[Hashable, tuple[datetime, object]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, look_up: Callable[[], T], *, good: Callable[[T], bool]) -> T:
        """The kept answer for ``key`` if good and under a minute old, else ``look_up()``
        (kept if ``good`` says so)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            now = self._clock.now()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] <= self._max_age:
                return kept[1]  # type: ignore[return-value]
            answer = look_up()
            if good(answer):
                self._kept[key] = (now, answer)
            else:
                self._kept.pop(key, None)
            return answer
