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
- Idempotent on the business keys ``migrationId`` + ``revision``, not on the SQS message
  ID: the migration's record is the idempotency (``MigrationStore.accept_request``). A new
  migration or revision is recorded and its announcement numbered in one write; a repeat is
  announced again only while nothing has started it (its first announcement may have been
  lost), and dropped once it has started: a republished wave costs no second start.
- The batch's announcements are put together once its records are handled (ten to a
  ``PutEvents`` call); a record whose announcement EventBridge refused fails alone and comes
  back: its repeat is announced then (it has not started).
- A cancel (``"action": "cancel"``, ``publish --cancel-removed``: the VM was removed from the
  manifests) is acted on by ``pipeline.removal`` (a running migration before its cutover is
  rolled back, a cut-over one is left and its thread told, MGN's grouping follows), once per
  ``migrationId`` + ``revision`` too, under its own key: a cancel names the revision the VM
  had when it was removed, the same one its migrate request had.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import (
    PartialItemFailureResponse,
    PartialItemFailures,
)
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


# The batch's announcements, by SQS message ID: put together when its records are handled.
_announcements: ContextVar[list[tuple[str, MigrationRequested]] | None] = ContextVar(
    "wavepilot_ingress_announcements", default=None
)


def accept(
    message_id: str, request: MigrationRequest, revision: str, correlation_id: str
) -> dict[str, Any]:
    """Record the request and announce it (the record decides whether: a repeat of a
    migration already started is not announced again)."""
    identity = {"migrationId": request.migration_id, "revision": revision}
    outcome, sequence = wiring.store().accept_request(
        request, revision, correlation_id, wiring.clock().now()
    )
    if sequence is None:
        count("RequestsRepeated")
        return {**identity, "outcome": outcome.value, "announced": False}
    event = wiring.reporter().numbered(
        Identity.of(request, correlation_id),
        MigrationRequested,
        sequence,
        revision=revision,
        request=request,
    )
    kept = _announcements.get()
    if kept is None:
        raise RuntimeError("accept runs in the handler's batch (its announcements are kept)")
    kept.append((message_id, event))
    count("RequestsAccepted")
    return {**identity, "outcome": outcome.value, "sequence": sequence}


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
            result = accept(record.message_id, request, revision, correlation_id)
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
    kept: list[tuple[str, MigrationRequested]] = []
    token = _announcements.set(kept)
    try:
        response = process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
    finally:
        _announcements.reset(token)
    return {"batchItemFailures": [*response["batchItemFailures"], *_announce(kept)]}


def _announce(kept: list[tuple[str, MigrationRequested]]) -> list[PartialItemFailures]:
    """Put the batch's announcements together; the records whose announcement was not put
    fail (SQS delivers them again, and their repeat is announced: nothing started them)."""
    if not kept:
        return []
    reasons = wiring.reporter().put_each([event for _, event in kept])
    failed: list[PartialItemFailures] = []
    for (message_id, event), why in zip(kept, reasons, strict=True):
        if why:
            logger.warning(
                "announcement not put; the request is delivered again",
                extra={"message_id": message_id, "migration_id": event.migration_id, "why": why},
            )
            failed.append({"itemIdentifier": message_id})
    if failed:
        count("AnnouncementsRefused", len(failed))
    return failed
