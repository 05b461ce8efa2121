"""``report_github_progress``: status events -> each wave's deployment and result comment.

EventBridge puts the events that can change a migration's standing in its wave
(``wave_progress.PROGRESS_DETAIL_TYPES``: its request, its steps, its end) on this function's
FIFO queue (rule ``<prefix>-status-to-github``, one message group: one batch at a time, so two
batches never race to create a wave's deployment). A batch is grouped by wave; each wave is
reported once (``WaveProgressReporter.report``), from the migrations' records, so the order
and repetition of events do not matter. A wave whose report fails (GitHub down after the
client's retries, DynamoDB) comes back, and with it every record after its first one (FIFO:
nothing after a failed record may be taken as done).

Without a repository and a token (``GitHubSettings.configured``) the function does nothing
and says so in one log line per batch; Terraform also leaves its rule disabled then.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from orchestration import wiring
from orchestration.adapters.github_rest import GitHubApiError
from orchestration.events import EVENT_TYPES, parse_detail
from orchestration.gitops.progress_reporter import Reported
from orchestration.observability import count, logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = [SQSRecord(raw) for raw in event.get("Records", [])]
    waves: dict[str, list[tuple[int, str]]] = {}  # wave -> (position, migration ID)
    first_failed = len(records)
    for position, record in enumerate(records):
        try:
            read = _wave_and_migration(record)
        except Exception:
            logger.exception("unreadable event not dead-lettered; SQS delivers it again")
            first_failed = min(first_failed, position)
            continue
        if read is not None:
            waves.setdefault(read[0], []).append((position, read[1]))
    with wiring.github_progress() as reporter:
        if reporter is None:
            logger.info(
                "progress on GitHub is not configured (GITHUB_REPOSITORY and "
                "GITHUB_TOKEN_SECRET_ARN): events not reported",
                extra={"records": len(records)},
            )
            return {"batchItemFailures": []}
        for wave, items in waves.items():
            try:
                reported = reporter.report(wave, [migration_id for _, migration_id in items])
            except GitHubApiError as exc:
                logger.warning(
                    "GITHUB_PROGRESS_FAILED: the wave's events come back",
                    extra={"wave": wave, "reason": str(exc)},
                )
                count("GitHubProgressFailed")
                first_failed = min(first_failed, items[0][0])
                continue
            except Exception:
                logger.exception("wave progress not reported; its events come back")
                count("GitHubProgressFailed")
                first_failed = min(first_failed, items[0][0])
                continue
            for done in reported:
                _log(done)
    return {
        "batchItemFailures": [
            {"itemIdentifier": record.message_id} for record in records[first_failed:]
        ]
    }


def _wave_and_migration(record: SQSRecord) -> tuple[str, str] | None:
    """The event's wave and migration; None when the body is no status event: it can never
    succeed, so it goes at once to the queue's DLQ with its reason (or, without one, is logged
    and dropped), never holding up the events behind it."""
    try:
        envelope = json.loads(record.body)
        detail_type = envelope["detail-type"]
        if detail_type not in EVENT_TYPES:
            raise ValueError(f"detail-type {detail_type!r}")
        detail = parse_detail(detail_type, envelope["detail"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        reason = f"not a status event: {str(exc)[:500]}"
        logger.error("unreadable event", extra={"message_id": record.message_id, "reason": reason})
        count("GitHubProgressUnreadable")
        dead_letters = wiring.github_progress_dead_letters()
        if dead_letters is not None:
            dead_letters.send(
                record.body,
                reason=reason,
                source_message_id=record.message_id,
                now=wiring.clock().now(),
                rejected_by="report_github_progress",
            )
        return None
    return detail.wave, detail.migration_id


def _log(done: Reported) -> None:
    fields = {
        "wave": done.wave,
        "commit": done.commit,
        "deployment_id": done.deployment_id,
        "state": done.status,
        "description": done.description,
        "pull_request": done.commented_on,
    }
    if done.created:
        logger.info("GITHUB_DEPLOYMENT_CREATED", extra=fields)
        count("GitHubDeploymentsCreated")
    if done.status:
        logger.info("GITHUB_DEPLOYMENT_STATUS", extra=fields)
        count("GitHubDeploymentStatuses")
    if done.commented_on is not None:
        logger.info("GITHUB_WAVE_RESULT_COMMENTED", extra=fields)
        count("GitHubWaveResultComments")
    elif done.no_pull_request:
        logger.warning("the wave ended, but no merged pull request has its commit", extra=fields)
