"""``ingress_handler``: SQS request queue -> recorded migration + ``MigrationRequested``.

- Partial batch failure (Powertools ``BatchProcessor``; the event source mapping sets
  ``ReportBatchItemFailures``): a transient failure fails only its own record, which SQS
  redelivers; after the queue's ``maxReceiveCount`` its redrive policy dead-letters it.
- A message that can never succeed (unreadable, too large or too deep, not JSON, not a valid
  request, an identifier some downstream service would refuse, a revision that does not
  match its spec) is recorded, sent to the dead-letter queue at once with its reason in the
  ``failureReason`` attribute, and removed from the queue: it is never retried.
- Permanent or transient is decided by where a failure happens, not by its type: reading the
  body (``parse_request``) is pure, so any failure there is the body's and permanent; the
  AWS calls after it (DynamoDB, EventBridge, the DLQ itself) fail the record, which is
  retried. Intake bounds the body so that no AWS call can fail because of its contents.
- Idempotent on the business keys ``migrationId`` + ``revision`` (Powertools
  ``idempotent_function``), not on the SQS message ID: a republished request is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration.adapters import aws
from orchestration.adapters.dead_letters import DeadLetterQueue, sendable
from orchestration.adapters.event_bus import EventBus
from orchestration.adapters.state_store import MigrationStore, utc_now
from orchestration.events import MigrationRequested
from orchestration.migration_request import MigrationRequest
from orchestration.observability import count, logger, metrics, tracer
from orchestration.pipeline.intake import RequestRejectedError, parse_request
from orchestration.pipeline.reporter import Identity, StatusReporter
from orchestration.settings import settings

processor = BatchProcessor(event_type=EventType.SQS)


@dataclass(frozen=True)
class _Dependencies:
    store: MigrationStore
    bus: EventBus
    dead_letters: DeadLetterQueue
    idempotency: IdempotencyConfig
    accept: Any  # the idempotent wrapper of _accept


@cache
def _dependencies() -> _Dependencies:
    """Built on first use, not at import, so tests and the local runtime set the env first."""
    config = settings()
    if not config.dead_letter_queue_url:
        raise RuntimeError("REQUEST_DLQ_URL is not set: rejected requests would be lost")
    store = MigrationStore(aws.state_table(config.table_name, config.aws_region))
    bus = EventBus(aws.events(), config.event_bus_name)
    reporter = StatusReporter(store, bus, utc_now)
    idempotency = IdempotencyConfig(
        event_key_jmespath="[migrationId, revision]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=config.idempotency_days * 86_400,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=config.table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="idempotency#ingress_handler",
        boto3_client=boto3.client("dynamodb", region_name=config.aws_region, config=aws.RETRIES),
    )

    def accept(
        identity: dict[str, str], request: MigrationRequest, revision: str, correlation_id: str
    ) -> dict[str, Any]:
        now = utc_now()
        outcome = store.record_request(request, revision, correlation_id, now)
        # Published even when the revision was already recorded: a crash between the two
        # writes must not lose the event, and the execution name makes a repeat harmless.
        event = reporter.emit(
            Identity.of(request, correlation_id),
            MigrationRequested,
            revision=revision,
            request=request,
        )
        count("RequestsAccepted")
        return {**identity, "outcome": outcome.value, "sequence": event.sequence}

    idempotent_accept = idempotent_function(
        data_keyword_argument="identity", persistence_store=persistence, config=idempotency
    )(accept)
    return _Dependencies(
        store=store,
        bus=bus,
        dead_letters=DeadLetterQueue(aws.sqs(), config.dead_letter_queue_url),
        idempotency=idempotency,
        accept=idempotent_accept,
    )


@tracer.capture_method
def handle_record(record: SQSRecord) -> dict[str, Any]:
    deps = _dependencies()
    try:
        request, revision = parse_request(record.body)
    except RequestRejectedError as exc:
        now = utc_now()
        kept_body, _ = sendable(record.body)
        deps.store.record_rejection(record.message_id, exc.reason, kept_body, now)
        deps.dead_letters.send(
            record.body, reason=exc.reason, source_message_id=record.message_id, now=now
        )
        logger.warning(
            "request rejected and dead-lettered",
            extra={"message_id": record.message_id, "reason": exc.reason},
        )
        count("RequestsRejected")
        return {"rejected": exc.reason}
    correlation_id = f"{request.migration_id}/{revision}"
    logger.set_correlation_id(correlation_id)
    logger.append_keys(migration_id=request.migration_id, wave=request.wave)
    try:
        result: dict[str, Any] = deps.accept(
            identity={"migrationId": request.migration_id, "revision": revision},
            request=request,
            revision=revision,
            correlation_id=correlation_id,
        )
    finally:
        logger.remove_keys(["migration_id", "wave"])
    logger.info("request accepted", extra={"outcome": result.get("outcome")})
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _dependencies().idempotency.register_lambda_context(context)
    count("RecordsReceived", len(event["Records"]))
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
