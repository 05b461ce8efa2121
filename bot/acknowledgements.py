"""The notifier deletes what it handled from its priority queue itself, before it returns.

The priority queue is a FIFO queue of one message group (EventBridge puts a fixed group ID on
a FIFO target), and a FIFO group gives nothing more while any of its messages is in flight.
So a message the notifier has shown in Slack but that is not deleted holds every migration's
priority events for the queue's visibility timeout (six minutes): the event source mapping's
delete failing, or the function's runtime dying after the handler returned. The 1,000-VM
fault campaign met that hundreds of times (5% of deliveries not deleted, 2% of the notifier's
invocations crashing) when the status queue was FIFO too, and it stood still for most of a
day; the threads' final states were not shown (docs/RELIABILITY.md). The status queue is a
standard queue now: nothing waits behind a message in flight, and its mapping's delete is
enough (the records it is given are not deleted here).

So the handler deletes the records it is done with (shown, dropped as duplicates,
dead-lettered with their reason) with one ``DeleteMessageBatch`` per queue, and reports only
the failed ones back. The event source mapping deletes them again after a successful
invocation: whatever SQS answers that second delete, the messages are gone, and the mapping
does not hand its answer to the function. A delete here that fails is logged and left to the
mapping: it costs the group's wait, never an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from orchestration.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

SQS_DELETE_LIMIT = 10  # entries per DeleteMessageBatch


class HandledMessages:
    """Deletes handled records from the queues they came from (by event source ARN suffix)."""

    def __init__(self, client: SQSClient, queue_urls: Mapping[str, str]) -> None:
        # Queue name suffix (the part of the ARN after the account) -> its URL.
        self._client = client
        self._queue_urls = {suffix: url for suffix, url in queue_urls.items() if url}

    def _url_of(self, event_source_arn: str) -> str | None:
        return next(
            (url for suffix, url in self._queue_urls.items() if event_source_arn.endswith(suffix)),
            None,
        )

    def delete(self, records: Iterable[SQSRecord]) -> int:
        """Delete the records (best effort); how many SQS deleted."""
        by_queue: dict[str, list[SQSRecord]] = {}
        for record in records:
            url = self._url_of(record.event_source_arn)
            if url is not None:
                by_queue.setdefault(url, []).append(record)
        deleted = 0
        for url, handled in by_queue.items():
            for start in range(0, len(handled), SQS_DELETE_LIMIT):
                chunk = handled[start : start + SQS_DELETE_LIMIT]
                try:
                    answer = self._client.delete_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": r.receipt_handle}
                            for i, r in enumerate(chunk)
                        ],
                    )
                except Exception:
                    logger.exception("handled messages not deleted; the event source mapping will")
                    continue
                deleted += len(answer.get("Successful", []))
                for failure in answer.get("Failed", []):
                    logger.warning(
                        "a handled message was not deleted; the event source mapping will",
                        extra={
                            "message_id": chunk[int(failure["Id"])].message_id,
                            "code": failure.get("Code", ""),
                        },
                    )
        return deleted
