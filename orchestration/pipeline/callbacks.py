"""Status callbacks: what is posted, how it is signed, and how hard delivery tries.

External systems (CMDB, ticketing) subscribe to a migration by listing https URLs in the
manifest. Each receives every status event but ``MigrationRequested`` (which carries the
whole request) as a signed JSON POST; ``docs/CALLBACKS.md`` is the receiver's contract.

Delivery is best effort and bounded: a few attempts with exponential backoff and full jitter
on connection errors, timeouts, 429 and 5xx, all inside a deadline the handler derives from
its Lambda timeout. A dead endpoint costs a few seconds and a ``CALLBACK_FAILED`` log line;
it never fails the invocation, so EventBridge does not retry it and a migration never waits.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from orchestration.adapters.callback_transport import CallbackTransport, CallbackTransportError
from orchestration.events import EVENT_TYPES, MigrationRequested

EVENT_ID_HEADER = "X-Wavepilot-Event-Id"
TIMESTAMP_HEADER = "X-Wavepilot-Timestamp"
SIGNATURE_HEADER = "X-Wavepilot-Signature"
SIGNATURE_SCHEME = "v1"
# How far a receiver should let a timestamp stray from its clock before calling it a replay.
REPLAY_TOLERANCE_SECONDS = 300

# Every status event but the request itself: the rule's pattern and the handler's filter.
CALLBACK_DETAIL_TYPES: tuple[str, ...] = tuple(
    name for name in EVENT_TYPES if name != MigrationRequested.detail_type
)

# The rule sends the callback handler only the events of migrations with a callback URL:
# ``routing.callbackUrls`` holds an https URL (the manifest and the request allow no other
# scheme). terraform/eventbridge.tf (status_callbacks) has the same pattern.
CALLBACK_ROUTING_PATTERN: dict[str, Any] = {"routing": {"callbackUrls": [{"prefix": "https://"}]}}


def callback_event_pattern(source: str) -> dict[str, Any]:
    """The callback rule's event pattern, as the embedded system and Terraform create it."""
    return {
        "source": [source],
        "detail-type": list(CALLBACK_DETAIL_TYPES),
        "detail": CALLBACK_ROUTING_PATTERN,
    }


DeliveryResult = Literal["delivered", "failed", "refused"]


# --- the body and its signature ----------------------------------------------------------


def callback_body(
    event_id: str, detail_type: str, event_time: str, detail: Mapping[str, Any]
) -> bytes:
    """The POST body: the EventBridge event's ``id``, ``detail-type``, ``time`` and ``detail``.

    ``detail`` carries ``migrationId`` and ``sequence``, so receivers drop duplicates and
    out-of-order deliveries without a second lookup. Its ``routing`` is left out: it stays in
    AWS (one receiver must not learn another's URL, nor any token in it). Compact JSON,
    UTF-8: receivers verify the signature over these exact bytes, never over a
    re-serialisation.
    """
    sent = {key: value for key, value in detail.items() if key != "routing"}
    document = {"id": event_id, "detail-type": detail_type, "time": event_time, "detail": sent}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``: the timestamp is signed with the body,
    so a captured request cannot be replayed later with a fresh timestamp."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def signed_headers(secret: str, event_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


class CallbackSignatureError(Exception):
    """A delivery that must not be trusted; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_signature(
    secret: str,
    *,
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    now: float,
    tolerance_seconds: int = REPLAY_TOLERANCE_SECONDS,
) -> None:
    """What a receiver does (the local receiver and the docs' example both follow it).

    The signature header is a comma-separated list so a secret can later be rotated by
    sending two ``v1=`` values; any one matching is enough.

    Raises:
        CallbackSignatureError: a missing or malformed header, a timestamp outside the
            replay window, or no matching signature.
    """
    if not timestamp_header or not signature_header:
        raise CallbackSignatureError("missing timestamp or signature header")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise CallbackSignatureError("the timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance_seconds:
        raise CallbackSignatureError("the timestamp is outside the replay window")
    expected = signature(secret, timestamp, body)
    offered = [part.strip() for part in signature_header.split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise CallbackSignatureError("no signature matches")


# --- which URLs are acceptable -----------------------------------------------------------


def callback_url_problem(url: str) -> str | None:  # noqa: PLR0911 - one return per rule
    """Why a URL must not receive events, or ``None``.

    Manifest validation already demands https without credentials; this is checked again at
    send time because a request can be hand-written. Literal private, loopback and
    link-local addresses are refused too: the function must not become a way to post into
    the VPC or at the instance metadata service.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme != "https":
        return f"scheme {parts.scheme or '(none)'!r} is not https"
    if not parts.hostname:
        return "no host"
    if parts.username or parts.password:
        return "carries credentials"
    if port == 0:
        return "port 0"
    if parts.hostname == "localhost" or parts.hostname.endswith(".localhost"):
        return "a loopback host"
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    if not address.is_global:
        return "a private, loopback or link-local address"
    return None


def url_host(url: str) -> str:
    """The host alone, for logs: paths and queries of webhook URLs often embed tokens."""
    try:
        return urlsplit(url).hostname or "(none)"
    except ValueError:
        return "(invalid)"


# --- retries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one URL is tried. The defaults keep the worst case near 25 s per URL
    (three 5 s attempts plus backoff or capped ``Retry-After``), URLs go in parallel, and
    the handler's deadline cuts whatever remains."""

    max_attempts: int = 3
    attempt_timeout_seconds: float = 5.0
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 4.0
    max_retry_after_seconds: float = 5.0
    # An attempt with less time than this left is not started: it could only time out.
    min_attempt_seconds: float = 1.0

    @staticmethod
    def retryable_status(status: int) -> bool:
        """429 and 5xx may pass; any other answer is final (4xx will not change by retrying)."""
        return status == 429 or 500 <= status <= 599

    def backoff_seconds(self, retry: int, jitter: float) -> float:
        """Full jitter: uniform in ``[0, min(cap, base * 2**(retry - 1))]``; ``jitter`` in [0, 1).

        Receivers that fail together do not get retried together.
        """
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** (retry - 1))
        return ceiling * jitter

    def delay_before_retry(
        self, retry: int, *, retry_after: str | None, jitter: float, now: datetime
    ) -> float:
        """``Retry-After`` when the receiver sent a usable one (capped), else the backoff."""
        asked = parse_retry_after(retry_after, now) if retry_after else None
        if asked is not None:
            return min(asked, self.max_retry_after_seconds)
        return self.backoff_seconds(retry, jitter)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


# --- delivery ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    """One status event, ready to post to every URL of its migration."""

    event_id: str
    detail_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The result for one URL; ``host`` only, never the full URL (see :func:`url_host`)."""

    host: str
    result: DeliveryResult
    attempts: int
    status: int | None
    reason: str


class CallbackSender:
    """Delivers one event to each URL: signs every attempt afresh, retries per the policy."""

    def __init__(
        self,
        transport: CallbackTransport,
        signing_secret: str,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._transport = transport
        self._secret = signing_secret
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._jitter = jitter

    def deadline_in(self, seconds: float) -> float:
        """The deadline ``seconds`` from now on the clock this sender measures time with
        (``monotonic``): a deadline read from another clock (the pipeline's, simulated in a
        rehearsal) would mean nothing to it."""
        return self._monotonic() + seconds

    def deliver_all(
        self, urls: Sequence[str], event: CallbackEvent, *, deadline: float
    ) -> list[DeliveryOutcome]:
        """Every URL in parallel (one dead endpoint must not starve the others of time).

        ``deadline`` is on the ``monotonic`` clock. A delivery still running at the deadline
        (a receiver trickling its answer) is reported as failed and left behind.
        """
        unique = list(dict.fromkeys(urls))  # a URL listed twice gets the event once
        if not unique:
            return []
        pool = ThreadPoolExecutor(max_workers=len(unique), thread_name_prefix="callback")
        try:
            futures = [pool.submit(self.deliver, url, event, deadline=deadline) for url in unique]
            wait(futures, timeout=max(0.0, deadline - self._monotonic()) + 1.0)
            return [
                future.result()
                if future.done()
                else DeliveryOutcome(url_host(url), "failed", 0, None, "deadline exceeded")
                for url, future in zip(unique, futures, strict=True)
            ]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def deliver(  # noqa: PLR0911 - one return per way a delivery ends
        self, url: str, event: CallbackEvent, *, deadline: float
    ) -> DeliveryOutcome:
        host = url_host(url)
        problem = callback_url_problem(url)
        if problem is not None:
            return DeliveryOutcome(host, "refused", 0, None, problem)
        status: int | None = None
        reason = "not attempted"
        for attempt in range(1, self.policy.max_attempts + 1):
            remaining = deadline - self._monotonic()
            if remaining < self.policy.min_attempt_seconds:
                return DeliveryOutcome(
                    host, "failed", attempt - 1, status, f"{reason}; out of time"
                )
            timestamp = int(self._wall_clock())
            headers = signed_headers(self._secret, event.event_id, event.body, timestamp)
            timeout = min(self.policy.attempt_timeout_seconds, remaining)
            retry_after: str | None = None
            try:
                response = self._transport.send(url, event.body, headers, timeout)
            except CallbackTransportError as exc:
                status, reason = None, str(exc)
                if not exc.retryable:
                    return DeliveryOutcome(host, "failed", attempt, None, reason)
            else:
                status, retry_after = response.status, response.retry_after
                if 200 <= status <= 299:
                    return DeliveryOutcome(host, "delivered", attempt, status, f"HTTP {status}")
                reason = f"HTTP {status}"
                if not self.policy.retryable_status(status):
                    return DeliveryOutcome(host, "failed", attempt, status, reason)
            if attempt == self.policy.max_attempts:
                break
            delay = self.policy.delay_before_retry(
                attempt,
                retry_after=retry_after,
                jitter=self._jitter(),
                now=datetime.fromtimestamp(self._wall_clock(), UTC),
            )
            if deadline - self._monotonic() - delay < self.policy.min_attempt_seconds:
                return DeliveryOutcome(host, "failed", attempt, status, f"{reason}; out of time")
            self._sleep(delay)
        return DeliveryOutcome(
            host, "failed", self.policy.max_attempts, status, f"{reason}; gave up"
        )
