"""What the local runtime counts while it runs, for reports and for tests to assert on."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

KeyT = TypeVar("KeyT")


class RuleTarget(NamedTuple):
    """One EventBridge rule target, the unit events are delivered to."""

    rule_arn: str
    target_id: str


@dataclass(frozen=True, slots=True)
class EventSourceBatchStats:
    """What one SQS event source mapping's poller did."""

    batches: int = 0
    messages_received: int = 0
    messages_deleted: int = 0
    messages_left_for_retry: int = 0


@dataclass(frozen=True, slots=True)
class RuntimeCounters:
    """A snapshot of every counter, taken at one moment (or when the runtime stopped).

    ``state_transitions`` counts the ``*StateEntered`` events of each state machine's executions
    (what AWS bills as state transitions for Standard workflows), keyed by state machine name.
    """

    lambda_invocations: Mapping[str, int] = field(default_factory=dict)
    lambda_errors: Mapping[str, int] = field(default_factory=dict)
    lambda_timeouts_exceeded: Mapping[str, int] = field(default_factory=dict)
    events_delivered: Mapping[RuleTarget, int] = field(default_factory=dict)
    event_delivery_failures: Mapping[RuleTarget, int] = field(default_factory=dict)
    event_source_batches: Mapping[str, EventSourceBatchStats] = field(default_factory=dict)
    state_transitions: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_lambda_invocations(self) -> int:
        return sum(self.lambda_invocations.values())

    @property
    def total_state_transitions(self) -> int:
        return sum(self.state_transitions.values())


class ThreadSafeCounter(Generic[KeyT]):
    """A ``Counter`` that server, poller and worker threads may increment at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[KeyT] = Counter()

    def add(self, key: KeyT, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount

    def snapshot(self) -> dict[KeyT, int]:
        with self._lock:
            return dict(self._counts)


class EventSourceStatsBook:
    """Per-mapping batch statistics, updated once per batch by that mapping's poller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, EventSourceBatchStats] = {}

    def record_batch(self, mapping_uuid: str, *, received: int, deleted: int, retried: int) -> None:
        with self._lock:
            previous = self._stats.get(mapping_uuid, EventSourceBatchStats())
            self._stats[mapping_uuid] = EventSourceBatchStats(
                batches=previous.batches + 1,
                messages_received=previous.messages_received + received,
                messages_deleted=previous.messages_deleted + deleted,
                messages_left_for_retry=previous.messages_left_for_retry + retried,
            )

    def snapshot(self) -> dict[str, EventSourceBatchStats]:
        with self._lock:
            return dict(self._stats)


@dataclass(frozen=True, slots=True)
class CounterBook:
    """The live counters one runtime shares with its dispatcher, event delivery and pollers."""

    lambda_invocations: ThreadSafeCounter[str] = field(default_factory=ThreadSafeCounter)
    lambda_errors: ThreadSafeCounter[str] = field(default_factory=ThreadSafeCounter)
    lambda_timeouts_exceeded: ThreadSafeCounter[str] = field(default_factory=ThreadSafeCounter)
    events_delivered: ThreadSafeCounter[RuleTarget] = field(default_factory=ThreadSafeCounter)
    event_delivery_failures: ThreadSafeCounter[RuleTarget] = field(
        default_factory=ThreadSafeCounter
    )
    event_source_batches: EventSourceStatsBook = field(default_factory=EventSourceStatsBook)

    def snapshot(self, state_transitions: Mapping[str, int]) -> RuntimeCounters:
        return RuntimeCounters(
            lambda_invocations=self.lambda_invocations.snapshot(),
            lambda_errors=self.lambda_errors.snapshot(),
            lambda_timeouts_exceeded=self.lambda_timeouts_exceeded.snapshot(),
            events_delivered=self.events_delivered.snapshot(),
            event_delivery_failures=self.event_delivery_failures.snapshot(),
            event_source_batches=self.event_source_batches.snapshot(),
            state_transitions=dict(state_transitions),
        )
