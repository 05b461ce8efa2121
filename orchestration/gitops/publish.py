"""Send migration requests to the request queue: ten per SendMessageBatch, retried."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from orchestration.migration_request import MigrationRequest, canonical_body

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

SQS_BATCH_SIZE = 10
_QUEUE_URL_REGION = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


@dataclass(frozen=True, slots=True)
class FailedRequest:
    request: MigrationRequest
    code: str
    reason: str


@dataclass
class PublishReport:
    sent: list[MigrationRequest] = field(default_factory=list)
    failed: list[FailedRequest] = field(default_factory=list)
    batches: int = 0
    retried_entries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class PublishInterruptedError(Exception):
    """Publishing stopped part way: ``report`` holds what was sent, ``cause`` why it stopped."""

    def __init__(self, report: PublishReport, cause: BotoCoreError | ClientError) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause


def sqs_client(queue_url: str) -> SQSClient:
    """An SQS client with standard retries; endpoint and credentials from the usual AWS env.

    ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_SQS``) points it at the embedded queue.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        match = _QUEUE_URL_REGION.match(queue_url)
        region = match.group(1) if match else "us-east-1"
    # AWS_MAX_ATTEMPTS, the SDKs' own variable, overrides the default of 8 attempts.
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return boto3.client(
        "sqs",
        region_name=region,
        config=Config(
            retries={"mode": "standard", "max_attempts": int(attempts) if attempts.isdigit() else 8}
        ),
    )


class RequestPublisher:
    """Publishes requests to one queue, standard or FIFO.

    On a FIFO queue each migration is its own message group (its requests stay in order)
    and the deduplication ID is ``migrationId-revision``, so SQS itself drops a repeat
    within its five-minute window; the ingress drops repeats after that.
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo")
        self._max_attempts = max_attempts
        self._sleep = sleep

    def publish(self, requests: Sequence[MigrationRequest]) -> PublishReport:
        """Send every request; entries SQS refuses for a while are retried with backoff.

        Raises:
            PublishInterruptedError: SQS could not be reached or refused the call itself
                (credentials, permissions); it says what was sent before that.
        """
        report = PublishReport()
        try:
            for start in range(0, len(requests), SQS_BATCH_SIZE):
                self._send_batch(list(requests[start : start + SQS_BATCH_SIZE]), report)
        except (BotoCoreError, ClientError) as exc:
            raise PublishInterruptedError(report, exc) from exc
        return report

    def _entry(
        self, entry_id: str, request: MigrationRequest
    ) -> SendMessageBatchRequestEntryTypeDef:
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "MessageBody": message_body(request),
            "MessageAttributes": {
                "migrationId": {"DataType": "String", "StringValue": request.migration_id},
                "action": {"DataType": "String", "StringValue": request.action},
                "wave": {"DataType": "String", "StringValue": request.wave},
            },
        }
        if self._fifo:
            entry["MessageGroupId"] = request.migration_id
            entry["MessageDeduplicationId"] = (
                f"{request.migration_id}-{request.revision or 'none'}-{request.action}"
            )
        return entry

    def _send_batch(self, batch: list[MigrationRequest], report: PublishReport) -> None:
        pending = {str(index): request for index, request in enumerate(batch)}
        for attempt in range(1, self._max_attempts + 1):
            report.batches += 1
            response = self._client.send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[self._entry(entry_id, req) for entry_id, req in pending.items()],
            )
            for success in response.get("Successful", []):
                report.sent.append(pending.pop(success["Id"]))
            retry_later: dict[str, MigrationRequest] = {}
            for failure in response.get("Failed", []):
                request = pending.pop(failure["Id"])
                if failure.get("SenderFault") or attempt == self._max_attempts:
                    report.failed.append(
                        FailedRequest(request, failure.get("Code", ""), failure.get("Message", ""))
                    )
                else:
                    retry_later[failure["Id"]] = request
            if not retry_later:
                return
            report.retried_entries += len(retry_later)
            pending = retry_later
            # Full jitter, capped: what AWS's own SDKs do between retries.
            self._sleep(random.uniform(0, min(8.0, 0.2 * 2**attempt)))  # noqa: S311


def message_body(request: MigrationRequest) -> str:
    """Deterministic JSON: the same request always gives byte-identical bodies."""
    return canonical_body(request)
