"""Request admission: a token bucket over real time, plus throttling forced by faults."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.errors import ThrottlingError
from orchestration.local.mgn.settings import RequestRateLimit


class TokenBucket:
    """`rate` tokens per real second, at most `burst` saved up; one token per request."""

    def __init__(
        self, limit: RequestRateLimit, *, real_time: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = limit.requests_per_second
        self._capacity = float(limit.burst)
        self._tokens = self._capacity
        self._real_time = real_time
        self._refilled_at = real_time()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token; returns 0 if granted, else the real seconds until one is available."""
        with self._lock:
            now = self._real_time()
            self._tokens = min(
                self._capacity, self._tokens + (now - self._refilled_at) * self._rate
            )
            self._refilled_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate


class RequestGate:
    """Decides whether a request is served or answered with ThrottlingException (429).

    Forced throttling (a fault) is checked first: the next N requests, or every request until a
    simulated instant. Throttled requests do not take tokens.
    """

    def __init__(self, bucket: TokenBucket, clock: SimulatedClock) -> None:
        self._bucket = bucket
        self._clock = clock
        self._forced_remaining = 0
        self._forced_until: datetime | None = None
        self._lock = threading.Lock()

    def admit(self) -> None:
        """Raises:
        ThrottlingError: the request must be refused.
        """
        with self._lock:
            if self._forced_remaining > 0:
                self._forced_remaining -= 1
                raise ThrottlingError("Rate exceeded (injected fault)", retry_after_seconds=1)
            if self._forced_until is not None and self._clock.now() < self._forced_until:
                raise ThrottlingError(
                    "Rate exceeded (injected fault window)", retry_after_seconds=1
                )
        wait = self._bucket.take()
        if wait > 0:
            raise ThrottlingError("Rate exceeded", retry_after_seconds=max(1, math.ceil(wait)))

    def force_next(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._forced_remaining = count

    def force_until(self, until: datetime | None) -> None:
        with self._lock:
            self._forced_until = until
