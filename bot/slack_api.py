"""The bot's side of Slack's Web API: the real ``slack_sdk`` client, paced and retried.

Slack's limits (reference/slack.md) shape this module:

- ``chat.postMessage`` allows about one message per second per channel (short bursts), so
  posts are paced per channel;
- ``chat.update`` is one Tier 3 budget (about 50 a minute) for every message the app edits
  in the workspace, so edits are paced workspace-wide (and the notifier coalesces them);
- over a limit Slack answers 429 with ``Retry-After``: slack_sdk's
  ``RateLimitErrorRetryHandler`` sleeps that long and retries (here a few times, not once);
- a 500/503 (an outage) is retried with exponential backoff on the same clock.

Pacing is in-process: on AWS the notifier runs with reserved concurrency 1 and reads a FIFO
queue one batch at a time, so one container makes every status call. A clock scale lets the
embedded default run Slack's clock faster than real time (``SLACK_TIME_SCALE``); it is 1 on
AWS, where the waits are Slack's own.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.slack_response import SlackResponse

# Slack's published rates, per Slack second, with bursts no larger than the strictest reading
# of "short bursts" (the local stand-in enforces the same: docs/SLACK_STANDIN.md). Posts to a
# channel go 10% slower than the limit: requests do not arrive exactly as spaced when sent.
POSTS_PER_SECOND_PER_CHANNEL = 0.9
POST_BURST = 1
POSTS_PER_SECOND_PER_WORKSPACE = 300 / 60
WORKSPACE_POST_BURST = 60
UPDATES_PER_SECOND = 50 / 60
UPDATE_BURST = 10
# Retries per call, each after Retry-After: a storm of 429s is waited out inside one
# invocation rather than by SQS's visibility timeout (minutes). A longer storm fails the
# batch; SQS redelivers it after the visibility timeout: late, never lost.
RATE_LIMIT_RETRIES = 30
# Retries of a call Slack answered 500/503, after 1, 2, 4 ... 30 Slack seconds (about four
# minutes in all): a short outage is waited out inside one invocation. Failing the batch
# instead spends one of the status queue's five receives per visibility timeout, and a
# half-hour of outages dead-lettered status events, approval requests among them (the fault
# campaign found it, docs/RELIABILITY.md).
SERVER_ERROR_RETRIES = 10
SERVER_ERROR_MAX_WAIT_SECONDS = 30.0


class PacingClock:
    """The time the bot paces its calls and waits out ``Retry-After`` on: real time, or sped up
    by ``scale`` to match the embedded default's Slack stand-in (whose own clock is
    ``orchestration.local.slack.SlackClock``)."""

    def __init__(
        self,
        scale: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.scale = scale
        self._monotonic = monotonic
        self._sleep = sleep
        self._epoch = epoch

    def now(self) -> float:
        """Slack seconds since an arbitrary origin."""
        return self._monotonic() * self.scale

    def wall_seconds(self) -> float:
        """Slack seconds since the epoch (comparable across processes, unlike ``now``), on the
        same clock as ``now`` and ``sleep``: a rehearsal's simulated epoch, not the machine's."""
        return self._epoch() * self.scale

    def sleep(self, slack_seconds: float) -> None:
        if slack_seconds > 0:
            self._sleep(slack_seconds / self.scale)


class TokenBucket:
    """``rate`` tokens per Slack second up to ``burst``; ``take()`` waits for one."""

    def __init__(self, rate: float, burst: int, clock: PacingClock) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock.now()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token, sleeping until one is there; return the Slack seconds waited."""
        with self._lock:
            now = self._clock.now()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        self._clock.sleep(wait)
        return wait

    def try_take(self) -> bool:
        """Take a token if one is there now, without waiting (and without going ahead of a
        caller already waiting for one)."""
        with self._lock:
            now = self._clock.now()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def give_back(self) -> None:
        """Return a token taken with ``try_take`` and not spent."""
        with self._lock:
            self._tokens = min(self._burst, self._tokens + 1)


@dataclass
class SlackUsage:
    """What the bot asked of Slack: calls per method, 429s met, Slack seconds spent pacing."""

    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    paced_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> SlackUsage:
        # Bolt deep-copies a request (with its client) for each lazy listener: the copies
        # must count into the same tally.
        return self

    def called(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1

    def limited(self, method: str) -> None:
        with self._lock:
            self.rate_limited[method] += 1


class PacedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, sleeping ``Retry-After`` on the Slack clock and counting."""

    def __init__(self, clock: PacingClock, usage: SlackUsage, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock
        self._usage = usage

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:  # pragma: no cover - only 429 responses are retried here
            raise error or RuntimeError("no response to retry")
        self._usage.limited(request.url.rsplit("/", 1)[-1])
        retry_after = next(
            (values[0] for key, values in response.headers.items() if key.lower() == "retry-after"),
            "1",
        )
        state.next_attempt_requested = True
        self._clock.sleep(int(retry_after) + random.random())  # noqa: S311 - jitter
        state.increment_current_attempt()


class PacedServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack_sdk's 500/503 handler, backing off exponentially on the Slack clock."""

    def __init__(self, clock: PacingClock, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        wait = min(SERVER_ERROR_MAX_WAIT_SECONDS, 2.0**state.current_attempt)
        self._clock.sleep(wait + random.random())  # noqa: S311 - jitter
        state.increment_current_attempt()


def web_client(
    token: str,
    base_url: str,
    *,
    clock: PacingClock,
    usage: SlackUsage,
    rate_limit_retries: int = RATE_LIMIT_RETRIES,
) -> WebClient:
    """The real client with connection-error and 429 retries (Slack's own handlers).

    ``rate_limit_retries=0`` leaves 429s to the caller (:class:`PacedSlack` retries them
    through its pacing, so a retry does not jump the queue of paced calls)."""
    handlers: list[RetryHandler] = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        PacedServerErrorRetryHandler(clock, SERVER_ERROR_RETRIES),
    ]
    if rate_limit_retries:
        handlers.append(PacedRateLimitRetryHandler(clock, usage, rate_limit_retries))
    return WebClient(token=token, base_url=base_url, retry_handlers=handlers, timeout=10)


class PacedSlack:
    """The calls the notifier makes, paced the way Slack limits them."""

    def __init__(self, client: WebClient, clock: PacingClock, usage: SlackUsage) -> None:
        self.client = client
        self.usage = usage
        self._clock = clock
        self._channel_buckets: dict[str, TokenBucket] = {}
        self._updates = TokenBucket(UPDATES_PER_SECOND, UPDATE_BURST, clock)
        self._posts = TokenBucket(POSTS_PER_SECOND_PER_WORKSPACE, WORKSPACE_POST_BURST, clock)
        self._lock = threading.Lock()

    def wall_seconds(self) -> float:
        return self._clock.wall_seconds()

    def wall_seconds_of(self, epoch_seconds: float) -> float:
        """A real instant (epoch seconds) on the same scale as ``wall_seconds``."""
        return epoch_seconds * self._clock.scale

    def _channel(self, channel: str) -> TokenBucket:
        with self._lock:
            bucket = self._channel_buckets.get(channel)
            if bucket is None:
                bucket = TokenBucket(POSTS_PER_SECOND_PER_CHANNEL, POST_BURST, self._clock)
                self._channel_buckets[channel] = bucket
            return bucket

    def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: Sequence[dict[str, Any]] = (),
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post (in a thread when ``thread_ts``); return the message's ``ts``."""
        response = self._paced(
            "chat.postMessage",
            (self._channel(channel), self._posts),
            self._post_call(channel, text, blocks, thread_ts, metadata),
        )
        return str(response["ts"])

    def _post_call(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]],
        thread_ts: str | None,
        metadata: dict[str, Any] | None,
    ) -> Callable[[], SlackResponse]:
        return lambda: self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=list(blocks) or None,
            thread_ts=thread_ts,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )

    def _update_call(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: Sequence[dict[str, Any]],
        metadata: dict[str, Any] | None,
    ) -> Callable[[], SlackResponse]:
        return lambda: self.client.chat_update(
            channel=channel, ts=ts, text=text, blocks=list(blocks), metadata=metadata
        )

    def update(
        self,
        channel: str,
        ts: str,
        *,
        text: str,
        blocks: Sequence[dict[str, Any]] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._paced(
            "chat.update", (self._updates,), self._update_call(channel, ts, text, blocks, metadata)
        )

    def try_post(
        self,
        channel: str,
        *,
        text: str,
        blocks: Sequence[dict[str, Any]] = (),
        metadata: dict[str, Any] | None = None,
        thread_ts: str | None = None,
    ) -> str | None:
        """Post a message to the channel (in a thread with ``thread_ts``) if Slack's budget
        allows it now; its ``ts``, or None (not posted: no token now, or a 429)."""
        response = self._now_or_never(
            "chat.postMessage",
            (self._channel(channel), self._posts),
            self._post_call(channel, text, blocks, thread_ts, metadata),
        )
        return None if response is None else str(response["ts"])

    def try_update(
        self,
        channel: str,
        ts: str,
        *,
        text: str,
        blocks: Sequence[dict[str, Any]] = (),
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Edit a message if Slack's budget allows it now; whether it was edited."""
        response = self._now_or_never(
            "chat.update", (self._updates,), self._update_call(channel, ts, text, blocks, metadata)
        )
        return response is not None

    def wait(self, slack_seconds: float) -> None:
        """Wait on Slack's clock (the embedded default's simulated one, where it runs)."""
        self._clock.sleep(slack_seconds)

    def _now_or_never(
        self, method: str, buckets: Sequence[TokenBucket], call: Callable[[], SlackResponse]
    ) -> SlackResponse | None:
        """Call if every bucket has a token now (else None, taking nothing); a 429 is None too
        (the caller keeps the call owed; a blocking call waits ``Retry-After`` out)."""
        taken: list[TokenBucket] = []
        for bucket in buckets:
            if not bucket.try_take():
                for held in taken:
                    held.give_back()
                return None
            taken.append(bucket)
        self.usage.called(method)
        try:
            return call()
        except SlackApiError as exc:
            if exc.response.status_code != 429:
                raise
            self.usage.limited(method)
            return None

    def _paced(
        self, method: str, buckets: Sequence[TokenBucket], call: Callable[[], SlackResponse]
    ) -> SlackResponse:
        """Wait for the buckets, call; after a 429, wait ``Retry-After`` and queue again."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            self.usage.paced_seconds += sum(bucket.take() for bucket in buckets)
            self.usage.called(method)
            try:
                return call()
            except SlackApiError as exc:
                if exc.response.status_code != 429 or attempt == RATE_LIMIT_RETRIES:
                    raise
                self.usage.limited(method)
                retry_after = int(exc.response.headers.get("Retry-After", "1"))
                self._clock.sleep(retry_after + random.random())  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover
