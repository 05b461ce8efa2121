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
- A cancel (``"action": "cancel"``, ``publish --cancel-removed``: the VM was removed from the
  manifests) is acted on by ``pipeline.removal`` (a running migration before its cutover is
  rolled back, a cut-over one is left and its thread told, MGN's grouping follows), once per
  ``migrationId`` + ``revision`` too, under its own key: a cancel names the revision the VM
  had when it was removed, the same one its migrate request had.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.adapters.dead_letters import sendable
from orchestration.events import MigrationRequested
from orchestration.migration_request import MigrationRequest
from orchestration.observability import count, logger, metrics, tracer
from orchestration.pipeline.intake import RequestRejectedError, parse_request
from orchestration.pipeline.reporter import Identity

processor = BatchProcessor(event_type=EventType.SQS)


def accept(
    identity: dict[str, str], request: MigrationRequest, revision: str, correlation_id: str
) -> dict[str, Any]:
    """Record the request and announce it; called once per ``identity`` (see ``_accept_once``)."""
    # The event's sequence is allocated in the write that records the request. Published
    # even when the revision was already recorded: a crash between the write and the put
    # must not lose the event, and the execution name makes a repeat harmless.
    outcome, sequence = wiring.store().accept_request(
        request, revision, correlation_id, wiring.clock().now()
    )
    event = wiring.reporter().put_numbered(
        Identity.of(request, correlation_id),
        MigrationRequested,
        sequence,
        revision=revision,
        request=request,
    )
    count("RequestsAccepted")
    return {**identity, "outcome": outcome.value, "sequence": event.sequence}


def _accept_once(**arguments: Any) -> dict[str, Any]:
    """``accept``, idempotent on ``identity`` (Powertools; the persistence layer is the
    wiring's, built on first use)."""
    once = idempotent_function(
        data_keyword_argument="identity",
        persistence_store=wiring.ingress_persistence(),
        config=wiring.ingress_idempotency(),
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )(accept)
    result: dict[str, Any] = once(**arguments)
    return result


def cancel(identity: dict[str, str], request: MigrationRequest, revision: str) -> dict[str, Any]:
    """Act on a cancel; called once per ``identity`` (see ``_cancel_once``)."""
    result = wiring.removals().cancel(request, revision)
    count("CancelsActedOn")
    return {**identity, **result}


def _cancel_once(**arguments: Any) -> dict[str, Any]:
    """``cancel``, idempotent on ``identity`` under a key of its own (a cancel and the
    migrate request it follows share their migration and revision)."""
    once = idempotent_function(
        data_keyword_argument="identity",
        persistence_store=wiring.ingress_persistence(),
        config=wiring.ingress_idempotency(),
        key_prefix=CANCEL_IDEMPOTENCY_KEY_PREFIX,
    )(cancel)
    result: dict[str, Any] = once(**arguments)
    return result


# Part of every idempotency record's key: stable across refactors of this module.
IDEMPOTENCY_KEY_PREFIX = "ingress_handler.accept"
CANCEL_IDEMPOTENCY_KEY_PREFIX = "ingress_handler.cancel"


@tracer.capture_method
def handle_record(record: SQSRecord) -> dict[str, Any]:
    try:
        request, revision = parse_request(record.body)
    except RequestRejectedError as exc:
        now = wiring.clock().now()
        kept_body, _ = sendable(record.body)
        wiring.store().record_rejection(record.message_id, exc.reason, kept_body, now)
        wiring.request_dead_letters().send(
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
    identity = {"migrationId": request.migration_id, "revision": revision}
    try:
        if request.action == "cancel":
            result = _cancel_once(identity=identity, request=request, revision=revision)
        else:
            result = _accept_once(
                identity=identity,
                request=request,
                revision=revision,
                correlation_id=correlation_id,
            )
    finally:
        logger.remove_keys(["migration_id", "wave"])
    logger.info(
        "request accepted", extra={"action": request.action, "outcome": result.get("outcome")}
    )
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    wiring.request_dead_letters()  # no DLQ configured: fail the invocation, not each record
    wiring.ingress_idempotency().register_lambda_context(context)
    count("RecordsReceived", len(event["Records"]))
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
