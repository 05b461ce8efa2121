"""Send a request that can never succeed to the dead-letter queue, with the reason attached."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_REASON = 1_000  # SQS message attribute values are capped at 256 KiB; keep reasons readable


class DeadLetterQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(
        self,
        body: str,
        *,
        reason: str,
        source_message_id: str,
        now: datetime,
        rejected_by: str = "ingress_handler",
    ) -> None:
        fifo: dict[str, str] = (
            # A FIFO dead-letter queue (the Slack status queue's) needs a group and a
            # deduplication ID; the source message's ID makes a repeated send harmless.
            {"MessageGroupId": "dead-letters", "MessageDeduplicationId": source_message_id}
            if self._queue_url.endswith(".fifo")
            else {}
        )
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body or "(empty body)",
            MessageAttributes={
                "failureReason": {"DataType": "String", "StringValue": reason[:MAX_REASON]},
                "sourceMessageId": {"DataType": "String", "StringValue": source_message_id},
                "rejectedAt": {"DataType": "String", "StringValue": now.isoformat()},
                "rejectedBy": {"DataType": "String", "StringValue": rejected_by},
            },
            **fifo,  # type: ignore[arg-type]
        )
