"""Send a request that can never succeed to the dead-letter queue, with the reason attached."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_REASON = 1_000  # SQS message attribute values are capped at 256 KiB; keep reasons readable
# What of a refused body is kept: SQS counts attributes in its message size limit, and a body
# this large was refused for its size anyway.
MAX_BODY_CHARACTERS = 32 * 1024
# The characters SQS accepts in a message (and in attribute values); others are escaped.
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sendable(body: str) -> tuple[str, list[str]]:
    """``body`` as SQS and DynamoDB accept it, and what was changed to make it so.

    A body that reached the queue is sendable; one built by hand (a test, a stray invoke)
    may hold characters SQS refuses or lone surrogates that cannot be encoded, or be huge.
    """
    changes: list[str] = []
    if not body:
        return "(empty body)", ["empty"]
    if len(body) > MAX_BODY_CHARACTERS:
        changes.append(f"truncated from {len(body)} characters")
        body = body[:MAX_BODY_CHARACTERS]
    escaped = _NOT_SQS_TEXT.sub(lambda match: f"\\u{ord(match.group()):04x}", body)
    if escaped != body:
        changes.append("characters SQS refuses escaped as \\uXXXX")
    return escaped, changes


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
        sent_body, changes = sendable(body)
        attributes = {
            "failureReason": {"DataType": "String", "StringValue": reason[:MAX_REASON]},
            "sourceMessageId": {"DataType": "String", "StringValue": source_message_id},
            "rejectedAt": {"DataType": "String", "StringValue": now.isoformat()},
            "rejectedBy": {"DataType": "String", "StringValue": rejected_by},
        }
        if changes:
            attributes["bodyChanged"] = {"DataType": "String", "StringValue": "; ".join(changes)}
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=sent_body,
            MessageAttributes=attributes,  # type: ignore[arg-type]
            **fifo,  # type: ignore[arg-type]
        )
