"""``slack_notifier``: the two queues to Slack -> each migration's Slack thread.

EventBridge puts the routine status events on the status queue (rule
``<prefix>-status-to-slack``; a standard queue, in batches of up to ten, filled within a
batching window if terraform sets one) and what a person must act on or know at once on the
priority queue (rule ``<prefix>-priority-to-slack``, ``events.PRIORITY_EVENT_TYPES``; FIFO, one
group, at once); this function reads both, each through its own event source mapping,
migrations side by side and each migration's events in the order of their ``sequence`` (see
``handler``; the notifier drops what is older than its thread shows). A body that is not a
status event can never succeed: it goes at once, with its reason, to the dead-letter queue of
the queue it came from (``SLACK_STATUS_DLQ_URL``, ``SLACK_PRIORITY_DLQ_URL``), so it cannot
hold up the events behind it. A record that fails on its last receive (``SLACK_MAX_RECEIVES``,
the queues' ``maxReceiveCount``) goes there too, with why it failed: SQS's redrive would move
it on its next receive with no reason at all. What it is done with from the priority queue it
deletes itself before it returns (bot/acknowledgements.py): a FIFO group waits for every
message in flight; the status queue's event source mapping deletes its batch's successes.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from bot import wiring
from bot.owed_roots import OWED_ROOTS_PAYMENT_SECONDS, Owed, owed_roots_in, reminder_id_in
from orchestration.clock import parallel_map
from orchestration.events import EVENT_TYPES, EventDetail, parse_detail
from orchestration.observability import count, logger, metrics, tracer


class UnreadableEventError(ValueError):
    """The body is not a Wavepilot status event."""


def read_event(body: str) -> EventDetail:
    """The status event in an EventBridge-to-SQS body; only ``detail-type`` and ``detail`` are
    read (moto's SQS target leaves out ``account``, which the rest of the envelope is)."""
    try:
        envelope = json.loads(body)
    except ValueError as exc:
        raise UnreadableEventError(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise UnreadableEventError("not an EventBridge event (a JSON object)")
    detail_type, detail = envelope.get("detail-type"), envelope.get("detail")
    if detail_type not in EVENT_TYPES or not isinstance(detail, dict):
        raise UnreadableEventError(f"not a Wavepilot status event (detail-type {detail_type!r})")
    try:
        return parse_detail(detail_type, detail)
    except ValidationError as exc:
        raise UnreadableEventError(f"{detail_type} breaks its schema: {exc}") from None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Each migration's events in order, migrations side by side.

    Order matters within a migration, not across them, so the batch is split by migration,
    each migration's records in the order of their events' ``sequence`` (the status queue is
    a standard queue: best-effort order), and the groups run in parallel (Powertools' FIFO
    processor would run the whole batch in one line: one slow Slack call would hold up every
    migration). A group stops at its first
    failure: that record and the migration's later ones are reported failed and come back.
    The last record of each group edits the root: successive edits of a root are coalesced.
    """
    received: dict[str, list[tuple[int, SQSRecord]]] = {}
    reminders: list[SQSRecord] = []  # owed-roots messages (bot/owed_roots.py)
    owed = Owed()
    for raw in event.get("Records", []):
        record = SQSRecord(raw)
        named = owed_roots_in(record.body)
        if named is not None:
            reminders.append(record)
            owed = owed.with_(named)
            continue
        migration_id, sequence = _migration_and_sequence(record.body)
        key = migration_id or f"unreadable:{record.message_id}"
        received.setdefault(key, []).append((sequence, record))
    groups = {
        key: [record for _, record in sorted(records, key=lambda pair: pair[0])]
        for key, records in received.items()
    }
    workers = max(1, min(MAX_PARALLEL_MIGRATIONS, len(groups)))
    outcomes: Counter[str] = Counter()
    failed: list[str] = []
    reasons: dict[str, str] = {}  # message ID -> why it failed (its first failure here)
    # The batch's thread items are written together when it ends (one call for the batch).
    with wiring.notifier().saves_deferred() as saves:
        _create_threads(groups)
        results = (
            parallel_map(
                wiring.clock(),
                _process_group,
                groups.values(),
                max_workers=workers,
                thread_name_prefix="slack-thread",
            )
            if groups
            else []
        )
        shown: list[tuple[str, EventDetail]] = []
        for group_outcomes, group_failed, group_shown in results:
            outcomes.update(group_outcomes)
            failed.extend(group_failed)
            reasons = {**group_failed, **reasons}
            shown.extend(group_shown)
        try:
            wiring.notifier().apply_to_groups([event for _, event in shown])
        except Exception as exc:
            # The threads have these events (a redelivery repeats nothing there); their
            # approval groups' messages do not yet: SQS delivers them again.
            logger.exception("approval group messages not updated; SQS delivers the events again")
            for message_id, _ in shown:
                failed.append(message_id)
                reasons.setdefault(message_id, f"approval group messages not updated: {_why(exc)}")
        owed_failed, owed_reason = _pay_owed_roots(
            reminders, owed, events_waited=bool(groups), batch=groups
        )
    failed += owed_failed
    for message_id in owed_failed:
        reasons.setdefault(message_id, owed_reason)
    for migration_id in saves.unsaved:
        # Shown in Slack, its thread item not written: its events come again, and the
        # thread (kept here, marked unsaved) is written then without showing them twice.
        for record in groups.get(migration_id, []):
            failed.append(record.message_id)
            reasons.setdefault(record.message_id, "its thread item was not written")
    records = {r.message_id: r for r in (*reminders, *(r for g in groups.values() for r in g))}
    failed, given_up = _give_up_on_last_receives(list(dict.fromkeys(failed)), reasons, records)
    outcomes["given up"] += given_up
    # Done with the rest: the priority queue's deleted now, so neither a lost delete nor a
    # crash after this line holds its one FIFO group for its visibility timeout
    # (bot/acknowledgements.py); the status queue's are left to its event source mapping.
    retried = set(failed)
    wiring.handled_messages().delete(r for r in records.values() if r.message_id not in retried)
    for outcome, n in outcomes.items():  # Metrics is not thread-safe: added here
        if n:
            count(OUTCOME_METRICS[outcome], n)
    if failed:
        count("SlackEventsRetried", len(failed))
    return {
        "batchItemFailures": [
            {"itemIdentifier": message_id} for message_id in dict.fromkeys(failed)
        ]
    }


def _create_threads(groups: dict[str, list[SQSRecord]]) -> None:
    """The threads the batch's first events start, their items created together (a wave's
    first events: one write for ten VMs). Only first deliveries: a record delivered again may
    find an item, which its own create tells."""
    firsts: list[EventDetail] = []
    for records in groups.values():
        record = records[0]
        if int(record.attributes.approximate_receive_count or 1) > 1:
            continue
        try:
            firsts.append(read_event(record.body))
        except UnreadableEventError:
            continue  # dead-lettered when its group is processed
    wiring.notifier().create_threads(firsts)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _give_up_on_last_receives(
    failed: list[str], reasons: dict[str, str], records: dict[str, SQSRecord]
) -> tuple[list[str], int]:
    """The failed records still worth a retry, and how many were given up on: a record on its
    queue's last receive goes to the queue's DLQ now, with why it failed, instead of coming
    back once more only for SQS's redrive to move it there without a reason."""
    limit = wiring.max_receives()
    if not limit:
        return failed, 0
    retried: list[str] = []
    given_up = 0
    for message_id in failed:
        record = records.get(message_id)
        receives = int(record.attributes.approximate_receive_count or 0) if record else 0
        dead_letters = wiring.status_dead_letters(record.event_source_arn) if record else None
        if record is None or receives < limit or dead_letters is None:
            retried.append(message_id)
            continue
        try:
            dead_letters.send(
                record.body,
                reason=f"not shown in Slack after {receives} receives (the queue's "
                f"maxReceiveCount): {reasons.get(message_id, 'failed')}",
                source_message_id=message_id,
                now=wiring.clock().now(),
                rejected_by="slack_notifier",
            )
        except Exception:
            logger.exception("could not dead-letter a status event; SQS's redrive will")
            retried.append(message_id)
            continue
        logger.error(
            "status event given up on after its last receive",
            extra={"message_id": message_id, "reason": reasons.get(message_id, "")},
        )
        given_up += 1
    return retried, given_up


def _pay_owed_roots(
    reminders: list[SQSRecord],
    owed: Owed,
    *,
    events_waited: bool,
    batch: dict[str, list[SQSRecord]],
) -> tuple[list[str], str]:
    """Pay owed roots after the batch's events: with Slack's free tokens only while events
    flow, waiting for Slack's budget for a few seconds when an owed-roots message came alone;
    remind the queue of what is still owed. Returns the message IDs to retry, and why."""
    notifier = wiring.notifier()
    if reminders:
        # A reminder another container put (before a restart): its waves' threads are read.
        earlier = [
            wave
            for r in reminders
            if not notifier.reminders.ours(reminder_id_in(r.body))
            for wave in (owed_roots_in(r.body) or Owed()).root_waves
        ]
        try:
            notifier.adopt_owed(owed, read_waves=earlier)
        except Exception as exc:
            # The reminders come back (their waves read again then); the batch's events went.
            logger.exception("owed threads not read; the reminders are delivered again")
            return [r.message_id for r in reminders], f"owed threads not read: {_why(exc)}"
        notifier.reminders.handled(reminder_id_in(r.body) for r in reminders)
    still_owed = notifier.pay_owed(
        wait=bool(reminders) and not events_waited, budget_seconds=OWED_ROOTS_PAYMENT_SECONDS
    )
    queue = wiring.owed_roots_queue()
    if queue is None or not notifier.reminders.needs_reminder(still_owed):
        return [], ""
    try:
        reminder_id = queue.send(still_owed)
    except Exception as exc:
        # Nothing reminds the queue: the batch comes back, and its redelivery tries again.
        logger.exception("owed-roots reminder not sent; the batch is delivered again")
        return [r.message_id for r in reminders] + [
            r.message_id for records in batch.values() for r in records
        ], f"owed-roots reminder not sent: {_why(exc)}"
    notifier.reminders.sent(reminder_id, still_owed)
    count("SlackRootsOwed", len(notifier.owed_roots()))
    return [], ""


OUTCOME_METRICS = {
    "applied": "SlackEventsApplied",
    "late": "SlackEventsAppliedLate",
    "duplicate": "SlackEventsDropped",
    "no channel": "SlackEventsWithoutChannel",
    "dead-lettered": "SlackEventsUnreadable",
    "given up": "SlackEventsGivenUp",
}
# Migrations handled side by side in one batch (a batch holds at most ten records).
MAX_PARALLEL_MIGRATIONS = 10


def _process_group(
    records: list[SQSRecord],
) -> tuple[list[str], dict[str, str], list[tuple[str, EventDetail]]]:
    """One migration's records in order: (outcomes, the records to retry with why, the events
    its thread took, by message ID)."""
    outcomes: list[str] = []
    shown: list[tuple[str, EventDetail]] = []
    for index, record in enumerate(records):
        try:
            outcome, detail = _process(record, edit_root=index == len(records) - 1)
        except Exception as exc:
            logger.exception(
                "status event not shown in Slack; SQS delivers it again",
                extra={"message_id": record.message_id},
            )
            why = _why(exc)
            failed = {record.message_id: why} | {
                r.message_id: f"an earlier event of its migration failed: {why}"
                for r in records[index + 1 :]
            }
            return outcomes, failed, shown
        outcomes.append(outcome)
        if detail is not None:
            shown.append((record.message_id, detail))
    return outcomes, {}, shown


def _process(record: SQSRecord, *, edit_root: bool) -> tuple[str, EventDetail | None]:
    try:
        detail = read_event(record.body)
    except UnreadableEventError as exc:
        logger.error(
            "unreadable status event", extra={"reason": str(exc), "message_id": record.message_id}
        )
        dead_letters = wiring.status_dead_letters(record.event_source_arn)
        if dead_letters is None:
            raise  # retried until the queue's redrive policy dead-letters it
        dead_letters.send(
            record.body,
            reason=f"not a status event: {exc}",
            source_message_id=record.message_id,
            now=wiring.clock().now(),
            rejected_by="slack_notifier",
        )
        return "dead-lettered", None
    return wiring.notifier().apply(detail, edit_root=edit_root), detail


def _migration_and_sequence(body: str) -> tuple[str, int]:
    """The event's migration and sequence, as far as the body says them ("" and 0 if not: an
    unreadable record is dead-lettered when its group is processed)."""
    try:
        detail = json.loads(body).get("detail") or {}
        sequence = detail.get("sequence", 0)
        return str(detail.get("migrationId", "")), sequence if isinstance(sequence, int) else 0
    except (ValueError, AttributeError):
        return "", 0
