"""SQS event source mappings with Lambda's batch semantics, one poller thread per mapping.

What Lambda does for an SQS trigger, and so what the poller does: receive up to ``BatchSize``
messages (waiting up to ``MaximumBatchingWindowInSeconds`` to fill the batch), invoke the
function once with the batch, delete what succeeded, and leave the rest in flight until the
queue's visibility timeout makes it visible again. Receives are what count towards the queue's
``maxReceiveCount``, so a message that keeps failing moves to the dead-letter queue exactly
as on AWS (moto's ``ReceiveMessage`` implements the redrive).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from orchestration.local.runtime.counters import CounterBook
from orchestration.local.runtime.fault_points import active_runtime_faults
from orchestration.local.runtime.lambda_dispatch import InvocationOutcome, LambdaDispatcher
from orchestration.local.runtime.moto_backends import (
    ArnParts,
    EventSourceMappingRef,
    event_source_mapping_configuration,
    find_function_by_arn,
    has_visible_message,
    visible_message_count,
)
from orchestration.local.virtual_clock import active_virtual_clock, belong_to_active_clock

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

# On a virtual clock a queued message holds simulated time until a poller takes it: look often.
VIRTUAL_CLOCK_IDLE_POLL_SECONDS = 0.002
LOGGER = logging.getLogger(__name__)

SQS_RECEIVE_LIMIT = 10  # ReceiveMessage returns at most ten messages per call
DEFAULT_IDLE_POLL_SECONDS = 0.1
# On the virtual clock, how often a poller filling a batch within its window looks at its
# queue (simulated seconds): a batch that fills goes within this of its last message.
WINDOW_LOOK_SECONDS = 1.0
FAILURE_BACKOFF_SECONDS = 1.0  # after a polling error (say, the function was deleted)
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """The settings of a mapping the poller acts on, re-read before every batch."""

    queue_arn: str
    function_arn: str
    batch_size: int
    batching_window_seconds: float
    reports_batch_item_failures: bool
    enabled: bool

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any]) -> MappingSettings:
        return cls(
            queue_arn=str(configuration["EventSourceArn"]),
            function_arn=str(configuration["FunctionArn"]),
            batch_size=int(configuration.get("BatchSize") or SQS_RECEIVE_LIMIT),
            batching_window_seconds=float(configuration.get("MaximumBatchingWindowInSeconds") or 0),
            reports_batch_item_failures=REPORT_BATCH_ITEM_FAILURES
            in (configuration.get("FunctionResponseTypes") or []),
            enabled=configuration.get("State") == "Enabled",
        )


def _lambda_message_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    """SQS API shape (``StringValue``) to Lambda event shape (``stringValue``, base64 binaries)."""
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [
            base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
        ],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


def sqs_event_record(message: MessageTypeDef, *, queue_arn: str) -> dict[str, Any]:
    """One record of the event Lambda sends for an SQS batch, built from a received message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": ArnParts.parse(queue_arn).region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(  # noqa: PLR0911 - one return per rule of Lambda's
    outcome: InvocationOutcome, batch_message_ids: Sequence[str], *, reports_item_failures: bool
) -> set[str]:
    """Which messages of a batch failed, by Lambda's rules for SQS.

    A function error fails the whole batch. Without ``ReportBatchItemFailures`` any other result
    is a success. With it, an empty or null response (or ``batchItemFailures``) is a success,
    the listed ``itemIdentifier``s fail, and a malformed response (not an object, an identifier
    that is empty or not in the batch) fails the whole batch.
    """
    everything = set(batch_message_ids)
    if not outcome.succeeded:
        return everything
    if not reports_item_failures:
        return set()
    try:
        response = outcome.json()
    except ValueError:
        return everything
    if response is None or response == {}:
        return set()
    if not isinstance(response, dict):
        return everything
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            LOGGER.warning("invalid batchItemFailures entry %r: failing the whole batch", failure)
            return everything
        failed.add(identifier)
    return failed


class ConcurrencySlots:
    """A function's reserved concurrency, as its SQS event sources meet it.

    On AWS, Lambda's SQS poller retries a batch the function's reserved concurrency throttled,
    with backoff, until it runs (or the visibility timeout returns the messages). Here a
    poller waits for a slot instead: the same order of batches, without the backoff's delay
    or its receive counts. Shared by every poller of the runtime, keyed by function ARN.

    Slots go to waiting pollers first come, first served (``want``): a poller that ends a
    batch and finds more on its queue does not take the slot again ahead of another queue's
    poller that waited for it (on AWS each event source retries on its own; here the poller
    that just released would always win, and one queue's steady traffic would starve the
    other's, e.g. the notifier's status queue its priority queue).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._in_use: dict[str, int] = {}
        self._waiting: dict[str, list[object]] = {}

    def free(self, function_arn: str, limit: int | None, who: object = None) -> bool:
        """A slot is free for ``who``: under the limit, and no other poller waits ahead."""
        with self._condition:
            return self._free(function_arn, limit, who)

    def _free(self, function_arn: str, limit: int | None, who: object) -> bool:
        if limit is None:
            return True
        waiting = self._waiting.get(function_arn, [])
        ahead = bool(waiting) and waiting[0] is not who
        return self._in_use.get(function_arn, 0) < limit and not ahead

    def want(self, function_arn: str, who: object) -> None:
        """``who`` has a batch waiting for a slot: it gets the next one in its turn."""
        with self._condition:
            waiting = self._waiting.setdefault(function_arn, [])
            if not any(w is who for w in waiting):
                waiting.append(who)

    def withdraw(self, function_arn: str, who: object) -> None:
        """``who`` has nothing waiting any more: it does not hold up the others' turn."""
        with self._condition:
            waiting = self._waiting.get(function_arn, [])
            if any(w is who for w in waiting):
                self._waiting[function_arn] = [w for w in waiting if w is not who]
                self._condition.notify_all()

    def acquire(self, function_arn: str, limit: int | None, who: object = None) -> None:
        with self._condition:
            if who is not None and limit is not None:
                waiting = self._waiting.setdefault(function_arn, [])
                if not any(w is who for w in waiting):
                    waiting.append(who)
            while not self._free(function_arn, limit, who):
                self._condition.wait()
            waiting = self._waiting.get(function_arn, [])
            if waiting and waiting[0] is who:
                waiting.pop(0)
            self._in_use[function_arn] = self._in_use.get(function_arn, 0) + 1

    def release(self, function_arn: str) -> None:
        with self._condition:
            self._in_use[function_arn] -= 1
            self._condition.notify_all()


FUNCTION_SLOTS = ConcurrencySlots()


class SqsEventSourcePoller:
    """Polls one queue for one mapping on a background thread until stopped or the mapping goes.

    Batches run one at a time per mapping (AWS scales pollers up with the backlog); short
    receives with a short idle sleep keep :meth:`stop` prompt.
    """

    def __init__(
        self,
        mapping: EventSourceMappingRef,
        *,
        endpoint_url: str,
        dispatcher: LambdaDispatcher,
        counters: CounterBook,
        idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
    ) -> None:
        self.mapping = mapping
        self._endpoint_url = endpoint_url
        self._dispatcher = dispatcher
        self._counters = counters
        self._idle_poll_seconds = idle_poll_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-event-source-{mapping.uuid[:8]}", daemon=True
        )
        self._queue_urls: dict[str, str] = {}
        self._probe: Callable[[], bool] | None = None
        self._in_batch = False
        self._slots = FUNCTION_SLOTS
        self._function_limit: int | None = None  # the function's reserved concurrency
        self._visible_count: Callable[[str, int], int] = visible_message_count

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; the batch in progress (if any) completes first."""
        self._stopping.set()
        clock = active_virtual_clock()
        if clock is not None and self._probe is not None:
            clock.remove_busy_probe(self._probe)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        belong_to_active_clock()  # a poller left running after its system stopped stays out
        sqs: SQSClient = boto3.client(
            "sqs", endpoint_url=self._endpoint_url, region_name=self.mapping.region
        )
        while not self._stopping.is_set():
            pause = self._idle_poll_seconds
            try:
                configuration = event_source_mapping_configuration(self.mapping)
                if configuration is None:
                    LOGGER.info("event source mapping %s deleted: poller ends", self.mapping.uuid)
                    return
                settings = MappingSettings.from_configuration(configuration)
                if settings.enabled and self._poll(sqs, settings):
                    continue  # more may be waiting: poll again at once
                if active_virtual_clock() is not None:
                    continue  # _poll paused already
            except Exception:
                LOGGER.exception("event source mapping %s: polling failed", self.mapping.uuid)
                pause = max(pause, FAILURE_BACKOFF_SECONDS)
            self._stopping.wait(pause)

    def _poll(self, sqs: SQSClient, settings: MappingSettings) -> bool:
        """One batch; on a virtual clock, counted from before the receive to the last delete
        and (until the first poll takes them) its queue's messages hold virtual time."""
        if settings.batching_window_seconds > 0:
            return self._poll_with_window(sqs, settings)
        clock = active_virtual_clock()
        if clock is None:
            limit = find_function_by_arn(settings.function_arn).reserved_concurrency
            self._slots.acquire(settings.function_arn, limit, self)
            try:
                return self._process_one_batch(sqs, settings)
            finally:
                self._slots.release(settings.function_arn)
        if self._probe is None:
            queue_arn, function_arn = settings.queue_arn, settings.function_arn
            self._function_limit = find_function_by_arn(function_arn).reserved_concurrency
            # While this poller handles a batch, nothing on its queue can be taken (one poller
            # per mapping), whatever the queue shows: a batch whose visibility timeout (real
            # seconds, moto's) runs out while its handler waits on the clock shows its
            # messages again, and a probe saying "busy" then would stop the clock that
            # handler waits for. Likewise while another mapping's batch holds the function's
            # last reserved slot: that batch's waits on the clock must be able to end.
            self._probe = lambda: (
                not self._in_batch
                and self._slots.free(function_arn, self._function_limit, self)
                and has_visible_message(queue_arn)
            )
            clock.add_busy_probe(self._probe)
        if not self._probe():  # look in-process first: virtual time waits for this poller
            if self._in_batch:
                pass
            elif has_visible_message(settings.queue_arn):
                self._slots.want(settings.function_arn, self)  # its turn at the next slot
            else:
                self._slots.withdraw(settings.function_arn, self)
            self._stopping.wait(VIRTUAL_CLOCK_IDLE_POLL_SECONDS)
            return False
        # Taken before counting on the clock: a poller waiting for a slot holds no time.
        self._slots.acquire(settings.function_arn, self._function_limit, self)
        try:
            with clock.participating():
                self._in_batch = True
                try:
                    return self._process_one_batch(sqs, settings)
                finally:
                    self._in_batch = False
        finally:
            self._slots.release(settings.function_arn)

    def _poll_with_window(self, sqs: SQSClient, settings: MappingSettings) -> bool:
        """One batch of a mapping with a batching window: filled first, then the function's
        slot taken to invoke it, as Lambda's pollers batch before they invoke (a poller that
        held the slot through its window would hold up the function's other queues for it:
        the notifier's priority queue, and its owed-roots reminders, behind every window)."""
        clock = active_virtual_clock()
        function_arn = settings.function_arn
        if clock is not None and self._probe is None:
            queue_arn = settings.queue_arn
            # Messages no batch has taken hold virtual time until this poller takes them,
            # whatever the function's slots (its window opens before it asks for one).
            self._probe = lambda: not self._in_batch and has_visible_message(queue_arn)
            clock.add_busy_probe(self._probe)
        if clock is not None and self._probe is not None and not self._probe():
            self._stopping.wait(VIRTUAL_CLOCK_IDLE_POLL_SECONDS)
            return False
        queue_url = self._queue_url(sqs, settings.queue_arn)
        self._in_batch = True
        try:
            if clock is None:
                batch = self._receive_batch(sqs, queue_url, settings)
            else:
                with clock.participating():
                    batch = self._receive_batch(sqs, queue_url, settings)
            if not batch:
                return False
            # Uncounted while it waits: the batch holding the slot may wait on the clock.
            limit = find_function_by_arn(function_arn).reserved_concurrency
            self._slots.acquire(function_arn, limit, self)
            try:
                if clock is None:
                    return self._process_one_batch(sqs, settings, batch)
                with clock.participating():
                    return self._process_one_batch(sqs, settings, batch)
            finally:
                self._slots.release(function_arn)
        finally:
            self._in_batch = False

    def _queue_url(self, sqs: SQSClient, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            arn = ArnParts.parse(queue_arn)
            self._queue_urls[queue_arn] = sqs.get_queue_url(
                QueueName=arn.resource, QueueOwnerAWSAccountId=arn.account_id
            )["QueueUrl"]
        return self._queue_urls[queue_arn]

    def _receive_batch(
        self, sqs: SQSClient, queue_url: str, settings: MappingSettings
    ) -> list[MessageTypeDef]:
        """Up to ``BatchSize`` messages. Without a batching window, what one receive returned
        (as Lambda's pollers: a receive that returned fewer than it asked for is not topped
        up by another, which would cost a receive per batch that is not full, an empty one
        most often). With one, the window opens with the first messages received: the poller
        receives again once the queue shows enough to fill the batch, or when the window
        ends (what arrived by then), so a trickle of events makes full batches; on the
        virtual clock the window is simulated seconds, and it holds no time."""
        batch: list[MessageTypeDef] = []
        window_ends: float | None = None
        while len(batch) < settings.batch_size and not self._stopping.is_set():
            asked = min(SQS_RECEIVE_LIMIT, settings.batch_size - len(batch))
            received = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=asked,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            batch.extend(received)
            if len(received) == asked:
                continue  # more may be waiting
            if not batch or settings.batching_window_seconds <= 0:
                break
            if window_ends is None:
                window_ends = self._monotonic() + settings.batching_window_seconds
            elif self._monotonic() >= window_ends:
                break  # the window's last receive
            if not self._wait_within_window(
                settings.queue_arn, settings.batch_size - len(batch), window_ends
            ):
                break
        return batch

    @staticmethod
    def _monotonic() -> float:
        clock = active_virtual_clock()
        return clock.monotonic() if clock is not None else time.monotonic()

    def _wait_within_window(self, queue_arn: str, wanted: int, window_ends: float) -> bool:
        """Wait until the queue shows ``wanted`` more messages or the window ends, looking
        in-process (no receive); True if a receive now would add to the batch."""
        clock = active_virtual_clock()
        while not self._stopping.is_set():
            visible = self._visible_count(queue_arn, wanted)
            remaining = window_ends - self._monotonic()
            if visible >= wanted or remaining <= 0:
                return visible > 0
            if clock is not None:
                clock.sleep(min(WINDOW_LOOK_SECONDS, remaining))
            else:
                self._stopping.wait(min(self._idle_poll_seconds, remaining))
        return False

    def _process_one_batch(
        self,
        sqs: SQSClient,
        settings: MappingSettings,
        received: list[MessageTypeDef] | None = None,
    ) -> bool:
        """Invoke the function with a batch (``received``, else one received now) and delete
        what succeeded; False if there was nothing to invoke it with."""
        queue_url = self._queue_url(sqs, settings.queue_arn)
        batch = received if received is not None else self._receive_batch(sqs, queue_url, settings)
        if not batch:
            return False
        event = {"Records": [sqs_event_record(m, queue_arn=settings.queue_arn) for m in batch]}
        function = find_function_by_arn(settings.function_arn)
        self._function_limit = function.reserved_concurrency
        outcome = self._dispatcher.invoke(function, json.dumps(event))
        failed = failed_message_ids(
            outcome,
            [m["MessageId"] for m in batch],
            reports_item_failures=settings.reports_batch_item_failures,
        )
        succeeded = [m for m in batch if m["MessageId"] not in failed]
        faults = active_runtime_faults()
        if faults is not None:  # at-least-once: some handled messages come back (fault_points)
            succeeded = [
                m
                for m in succeeded
                if not faults.delivers_again(
                    settings.queue_arn,
                    m["MessageId"],
                    int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                )
            ]
        for start in range(0, len(succeeded), SQS_RECEIVE_LIMIT):
            chunk = succeeded[start : start + SQS_RECEIVE_LIMIT]
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        self._counters.event_source_batches.record_batch(
            self.mapping.uuid, received=len(batch), deleted=len(succeeded), retried=len(failed)
        )
        return True
