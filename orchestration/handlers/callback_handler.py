"""``callback_handler``: status events -> signed POSTs to the migration's callback URLs.

An EventBridge rule sends every status event but ``MigrationRequested`` here, for migrations
that have callback URLs. The URLs come with the event (``routing.callbackUrls``, copied from
the manifest by the producer; never part of what is POSTed); an event put before routing
was added is routed by the migration's recorded request, as before. Delivery failures are
logged (``CALLBACK_FAILED``, host and status) and counted, never raised: a raise would make
EventBridge retry the whole event, and a dead CMDB must cost the pipeline nothing. The
handler raises only for its own faults (an event that breaks the contract, a missing signing
secret, DynamoDB (an event from before routing) or Secrets Manager errors).

The signing secret is ``CALLBACK_SIGNING_SECRET`` on the embedded default; on AWS
``CALLBACK_SIGNING_SECRET_ARN`` names a Secrets Manager secret (a plain string), read with
Powertools Parameters and cached, so rotating it needs no deployment
(``orchestration/adapters/secrets.py``).
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.events import EventDetail, parse_detail
from orchestration.observability import count, logger, metrics, tracer
from orchestration.pipeline.callbacks import (
    CALLBACK_DETAIL_TYPES,
    CallbackEvent,
    CallbackSender,
    DeliveryOutcome,
    callback_body,
)

# Time kept back from the Lambda timeout for logging, metrics and returning.
DEADLINE_MARGIN_SECONDS = 3.0


@logger.inject_lambda_context(correlation_id_path="detail.correlationId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    envelope = parse(event=event, model=EventBridgeModel)
    summary: dict[str, Any] = {"eventId": envelope.id, "delivered": 0, "failed": 0, "refused": 0}
    if envelope.detail_type not in CALLBACK_DETAIL_TYPES:
        logger.info("not a callback event; ignored", extra={"detail_type": envelope.detail_type})
        return {**summary, "skipped": "not a callback event"}
    detail = parse_detail(envelope.detail_type, cast(dict[str, Any], envelope.detail))
    logger.append_keys(
        migration_id=detail.migration_id,
        detail_type=detail.detail_type,
        sequence=detail.sequence,
    )
    urls = _callback_urls(detail)
    if not urls:
        logger.debug("the migration has no callback URLs")
        return summary
    sender = CallbackSender(wiring.callback_transport(), wiring.callback_signing_secret().current())
    body = callback_body(
        envelope.id,
        envelope.detail_type,
        str(event["time"]),
        detail.model_dump(mode="json", by_alias=True),
    )
    remaining_seconds = context.get_remaining_time_in_millis() / 1000
    deadline = sender.deadline_in(remaining_seconds - DEADLINE_MARGIN_SECONDS)
    outcomes = sender.deliver_all(
        urls, CallbackEvent(envelope.id, envelope.detail_type, body), deadline=deadline
    )
    for outcome in outcomes:
        _report(outcome)
        summary[outcome.result] += 1
    return summary


def _callback_urls(detail: EventDetail) -> list[str]:
    """The event's own routing; an event put before routing was added (retried across the
    deployment) is routed, as it used to be, by the migration's recorded request."""
    if detail.routing is not None:
        return list(detail.routing.callback_urls)
    logger.info("event without routing (put before it was added): reading the record")
    record = wiring.store().get(detail.migration_id)
    return record.callback_urls if record is not None else []


def _report(outcome: DeliveryOutcome) -> None:
    """One log line and metric per URL, from the handler's thread (Metrics is not shared
    across threads safely, so the parallel deliveries only return outcomes)."""
    fields = {
        "callback_host": outcome.host,
        "http_status": outcome.status,
        "attempts": outcome.attempts,
        "reason": outcome.reason,
    }
    count("CallbackAttempts", outcome.attempts)
    if outcome.result == "delivered":
        logger.info("CALLBACK_DELIVERED", extra=fields)
        count("CallbacksDelivered")
    elif outcome.result == "refused":
        logger.warning("CALLBACK_REFUSED", extra=fields)
        count("CallbacksRefused")
    else:
        logger.warning("CALLBACK_FAILED", extra=fields)
        count("CallbacksFailed")
