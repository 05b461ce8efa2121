"""Slack's Web API rate limits as token buckets on the Slack clock.

Slack publishes per-minute rates (tiers) and says bursts are "occasionally" allowed, without a
burst size. The stand-in picks bursts that are stricter than any plausible reading of that, so a
bot that stays within them here stays within them on slack.com (docs/SLACK_STANDIN.md explains
each number).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

_EPSILON = 1e-6


@dataclass(frozen=True)
class RateLimit:
    """A sustained rate (`per_minute`) and how many calls may be made at once (`burst`)."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"per_minute must be > 0 and burst >= 1, got {self}")


# Burst = about 12 Slack seconds of the tier's budget (a fifth of a minute): enough to open a
# modal right after an ephemeral reply, far below a minute's worth all at once.
TIER_2 = RateLimit(per_minute=20, burst=4)
TIER_3 = RateLimit(per_minute=50, burst=10)
TIER_4 = RateLimit(per_minute=100, burst=20)


def _default_method_limits() -> dict[str, RateLimit]:
    return {
        "auth.test": TIER_4,
        "chat.update": TIER_3,
        "chat.delete": TIER_3,
        "conversations.info": TIER_3,
        "conversations.history": TIER_3,
        "conversations.replies": TIER_3,
        "chat.postEphemeral": TIER_4,
        "chat.getPermalink": TIER_4,
        "views.open": TIER_4,
        "views.update": TIER_4,
        "users.info": TIER_4,
        "usergroups.users.list": TIER_2,
    }


@dataclass(frozen=True)
class SlackRateLimits:
    """Every limit the stand-in enforces; replace fields to model a stricter or looser Slack.

    Attributes:
        post_per_channel: chat.postMessage per channel. Slack documents "1 per second" and
            unquantified short bursts, so the burst is 1: the second post to a channel within a
            second is refused, which is the worst case a bot must survive.
        post_per_workspace: chat.postMessage across all channels ("a workspace-wide limit",
            unquantified; several hundred per minute is the lowest reading of it).
        methods: per method, per workspace (the tiers).
    """

    post_per_channel: RateLimit = RateLimit(per_minute=60, burst=1)
    post_per_workspace: RateLimit = RateLimit(per_minute=300, burst=60)
    methods: dict[str, RateLimit] = field(default_factory=_default_method_limits)


class _TokenBucket:
    """`limit.per_minute / 60` tokens per Slack second, at most `limit.burst` saved up."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._rate = limit.per_minute / 60.0
        self._capacity = float(limit.burst)
        self._tokens = self._capacity
        self._refilled_at = now

    def wait(self, now: float) -> float:
        """Refill to `now`; Slack seconds until a token is available (0 if one is)."""
        if now > self._refilled_at:
            self._tokens = min(
                self._capacity, self._tokens + (now - self._refilled_at) * self._rate
            )
            self._refilled_at = now
        # Slack times are float epoch seconds (about 0.2 microseconds of precision), so a bucket
        # that is full "exactly now" may read 0.9999999 tokens: treat that as a token.
        return 0.0 if self._tokens >= 1 - _EPSILON else (1 - self._tokens) / self._rate

    def take(self) -> None:
        self._tokens -= 1


@dataclass
class _Injected:
    remaining: int
    method: str | None
    retry_after: int


class RateLimiter:
    """Admits or refuses Web API calls; refused calls take no tokens and have no effect.

    Injected limits (a test forcing 429s) are checked first, in the order they were injected.
    """

    def __init__(self, limits: SlackRateLimits, now: Callable[[], float]) -> None:
        self._limits = limits
        self._now = now
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        self._injected: list[_Injected] = []
        self._refused: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inject(self, count: int, *, method: str | None, retry_after: int) -> None:
        if count < 0 or retry_after < 1:
            raise ValueError("count must be >= 0 and retry_after >= 1")
        with self._lock:
            self._injected.append(_Injected(count, method, retry_after))

    def admit(self, method: str, *, channel: str = "") -> int | None:
        """None if the call may proceed, else the Retry-After (whole Slack seconds, >= 1).

        Args:
            channel: the channel id the call targets (chat.postMessage's per-channel budget).
        """
        with self._lock:
            for injected in self._injected:
                if injected.remaining > 0 and injected.method in (None, method):
                    injected.remaining -= 1
                    self._refused[method] += 1
                    return injected.retry_after
            buckets = self._buckets_for(method, channel)
            now = self._now()
            wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
            if wait > 0:
                self._refused[method] += 1
                return max(1, math.ceil(wait - _EPSILON))
            for bucket in buckets:
                bucket.take()
            return None

    def refused(self) -> dict[str, int]:
        with self._lock:
            return dict(self._refused)

    def _buckets_for(self, method: str, channel: str) -> list[_TokenBucket]:
        wanted: list[tuple[tuple[str, str], RateLimit]] = []
        if method == "chat.postMessage":
            wanted.append(((method, "channel:" + channel), self._limits.post_per_channel))
            wanted.append(((method, "workspace"), self._limits.post_per_workspace))
        elif method in self._limits.methods:
            wanted.append(((method, "workspace"), self._limits.methods[method]))
        buckets = []
        for key, limit in wanted:
            if key not in self._buckets:
                self._buckets[key] = _TokenBucket(limit, self._now())
            buckets.append(self._buckets[key])
        return buckets
