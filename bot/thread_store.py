"""The bot's Slack items: each migration's thread and each wave's summary message.

A thread is kept with its migration (``MIGRATION#<id>`` / ``SLACK``): the channel, the root
message's ``ts`` (the thread), what the root should show (the folded
:class:`~bot.threads.ThreadState`), the stage the root shows now, the approval message, and
which events' replies were posted (so a late or redelivered event replies exactly once).
``shownStage != state.stage`` means a root edit is owed: it is paid on the next event or
redelivery, so a final state is never lost to a failed edit. Thread items are also in the
table's ``gsi1`` under ``SLACKTHREADS#<wave>``: one Query counts a wave for its summary.

A wave's summary message is ``SLACKWAVE#<wave>`` / ``SUMMARY``: its channel and ``ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bot.threads import ThreadState
from orchestration.adapters.dynamo_transactions import (
    MAX_ITEMS_PER_TRANSACTION,
    put_all_but_refused,
)
from orchestration.adapters.state_store import migration_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SLACK_SK = "SLACK"
# The ts of a root not posted yet (owed: the notifier posts it when Slack has budget).
UNPOSTED = ""
SUMMARY_SK = "SUMMARY"
# Sequences whose replies a thread remembers; older ones are below ``reply_floor``.
MAX_REPLIED = 16
# A root's stage change within this many Slack seconds of its last edit waits (coalesced)
# unless it is one of these; the final state is always shown at once.
STAGES_SHOWN_AT_ONCE: frozenset[str] = frozenset(
    {"cutting over", "migrated", "rolled back", "failed"}
)


def wave_threads_key(wave: str) -> str:
    return f"SLACKTHREADS#{wave}"


@dataclass(frozen=True, slots=True)
class SlackThread:
    migration_id: str
    channel: str
    ts: str
    state: ThreadState
    shown_sequence: int
    approval_ts: str = ""
    approval_id: str = ""
    shown_stage: str = ""  # what the root shows now, and when it was edited (Slack seconds)
    shown_at: float = 0.0
    replied: tuple[int, ...] = ()  # the latest events whose replies were posted
    reply_floor: int = 0  # and every event up to this one
    owed_replies: tuple[str, ...] = ()  # replies that can wait, not posted yet (in order)

    @property
    def root_owed(self) -> bool:
        """The root does not show the thread's stage yet (details alone are not shown)."""
        return self.shown_stage != self.state.stage

    @property
    def owes(self) -> bool:
        """Slack does not show all of the thread yet: its root, or a reply that could wait."""
        return self.root_owed or bool(self.owed_replies)

    def root_edit_due(self, now: float, min_interval: float) -> bool:
        """Whether the owed edit should be made now.

        Cutting over, failed and a final state are shown at once; another change of stage
        (rolling back, usually followed at once by rolled back) waits until the root has not
        been edited for ``min_interval`` Slack seconds. The next event or a redelivery pays
        what is owed, so nothing is lost, only skipped over."""
        if not self.root_owed:
            return False
        if self.state.stage in STAGES_SHOWN_AT_ONCE:
            return True
        return now - self.shown_at >= min_interval

    def shown(self, at: float) -> SlackThread:
        return replace(
            self, shown_sequence=self.state.sequence, shown_stage=self.state.stage, shown_at=at
        )

    def replied_to(self, sequence: int) -> bool:
        return sequence <= self.reply_floor or sequence in self.replied

    def with_reply(self, sequence: int) -> SlackThread:
        """Remember that ``sequence``'s replies are posted (the oldest beyond the bound fold
        into ``reply_floor``: a migration has a handful of reply-bearing events)."""
        replied = tuple(sorted({*self.replied, sequence}))
        floor = self.reply_floor
        if len(replied) > MAX_REPLIED:
            floor, replied = max(floor, replied[-MAX_REPLIED - 1]), replied[-MAX_REPLIED:]
        return replace(self, replied=replied, reply_floor=floor)


# ``save_many``'s previous sequence for a thread to create: written only if it has no item.
NO_ITEM = -1


class ThreadExistsError(Exception):
    """Another writer created the migration's thread first."""


class StaleThreadError(Exception):
    """The stored thread is not the one the write was based on (another writer moved it)."""


class ThreadStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def _key(migration_id: str) -> dict[str, str]:
        return {"pk": migration_pk(migration_id), "sk": SLACK_SK}

    def get(self, migration_id: str) -> SlackThread | None:
        item = self._table.get_item(Key=self._key(migration_id), ConsistentRead=True).get("Item")
        return _thread(item) if item else None

    def wave_threads(self, wave: str) -> list[SlackThread]:
        """Every thread of the wave (one Query on ``gsi1``, paged; eventually consistent)."""
        query: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :wave",
            "ExpressionAttributeValues": {":wave": wave_threads_key(wave)},
        }
        found: list[SlackThread] = []
        while True:
            response = self._table.query(**query)
            found += [_thread(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return found
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def create(self, thread: SlackThread) -> None:
        try:
            self._table.put_item(
                Item={**self._key(thread.migration_id), **_attributes(thread)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ThreadExistsError(thread.migration_id) from None
            raise

    def create_many(self, threads: Sequence[SlackThread]) -> set[str]:
        """Create each thread's item if it has none, in as few calls as DynamoDB allows (one
        ``TransactWriteItems`` per 100, a ``PutItem`` for one): the migrations whose item
        existed already (nothing written for them). Raises for any other failure."""
        return self.save_many([(thread, NO_ITEM) for thread in threads])

    def save(self, thread: SlackThread, *, previous_sequence: int) -> None:
        """Write the thread if the stored one is still at ``previous_sequence``."""
        try:
            self._table.put_item(**self._conditional_put(thread, previous_sequence))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleThreadError(thread.migration_id) from None
            raise

    def _conditional_put(self, thread: SlackThread, previous_sequence: int) -> dict[str, Any]:
        """The thread's item, written only if the stored one is still at ``previous_sequence``
        (or there is none; ``NO_ITEM``: only if there is none): a ``PutItem``'s arguments, a
        transaction's ``Put``."""
        item = {"Item": {**self._key(thread.migration_id), **_attributes(thread)}}
        if previous_sequence == NO_ITEM:
            return {**item, "ConditionExpression": "attribute_not_exists(pk)"}
        return {
            **item,
            "ConditionExpression": "attribute_not_exists(pk) OR #state.#sequence = :previous",
            "ExpressionAttributeNames": {"#state": "state", "#sequence": "sequence"},
            "ExpressionAttributeValues": {":previous": previous_sequence},
        }

    def save_many(self, threads: Sequence[tuple[SlackThread, int]]) -> set[str]:
        """Write each thread if its stored item is still at the sequence paired with it, in
        as few calls as DynamoDB allows (``TransactWriteItems``, up to 100 items): the
        migrations whose item had moved on (stale, nothing written for them). One thread is
        a ``PutItem``. Raises for any other failure (nothing of that call written)."""
        stale: set[str] = set()
        for start in range(0, len(threads), MAX_ITEMS_PER_TRANSACTION):
            stale |= self._save_chunk(list(threads[start : start + MAX_ITEMS_PER_TRANSACTION]))
        return stale

    def _save_chunk(self, threads: list[tuple[SlackThread, int]]) -> set[str]:
        if not threads:
            return set()
        if len(threads) == 1:
            [(thread, previous)] = threads
            try:
                self.save(thread, previous_sequence=previous)
            except StaleThreadError:
                return {thread.migration_id}
            return set()
        return put_all_but_refused(
            self._table,
            [
                (thread.migration_id, self._conditional_put(thread, previous))
                for thread, previous in threads
            ],
        )


def _thread(item: dict[str, Any]) -> SlackThread:
    state = ThreadState.from_item(dict(item["state"]))
    replied = item.get("replied")
    return SlackThread(
        migration_id=state.migration_id,
        channel=str(item["channel"]),
        ts=str(item["threadTs"]),
        state=state,
        shown_sequence=int(item["shownSequence"]),
        approval_ts=str(item.get("approvalTs", "")),
        approval_id=str(item.get("approvalId", "")),
        shown_stage=str(item.get("shownStage", "")),
        shown_at=float(item.get("shownAt", 0)),
        replied=tuple(sorted(int(n) for n in replied or ())),
        # A thread from before replies were remembered: every event it folded in was replied.
        reply_floor=int(item.get("replyFloor", 0)) if replied is not None else state.sequence,
        owed_replies=tuple(str(text) for text in item.get("owedReplies") or ()),
    )


def _attributes(thread: SlackThread) -> dict[str, Any]:
    return {
        "gsi1pk": wave_threads_key(thread.state.wave),
        "gsi1sk": thread.migration_id,
        "channel": thread.channel,
        "threadTs": thread.ts,
        "state": thread.state.to_item(),
        "shownSequence": thread.shown_sequence,
        "approvalTs": thread.approval_ts,
        "approvalId": thread.approval_id,
        "shownStage": thread.shown_stage,
        "shownAt": Decimal(str(round(thread.shown_at, 3))),
        "replied": list(thread.replied),
        "replyFloor": thread.reply_floor,
        "owedReplies": list(thread.owed_replies),
    }


@dataclass(frozen=True, slots=True)
class WaveSummaryMessage:
    """Where a wave's summary message is: it is posted once and edited in place."""

    wave: str
    channel: str
    ts: str
    window_start: str = ""  # the wave's cutover window (ISO 8601), once an event named it
    window_end: str = ""


class WaveSummaryStore:
    """``SLACKWAVE#<wave>`` / ``SUMMARY``: written when the summary is posted (and when the
    wave's window is learned later, which a request from before windows would make rare)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def _key(wave: str) -> dict[str, str]:
        return {"pk": f"SLACKWAVE#{wave}", "sk": SUMMARY_SK}

    def get(self, wave: str) -> WaveSummaryMessage | None:
        item = self._table.get_item(Key=self._key(wave), ConsistentRead=True).get("Item")
        if not item:
            return None
        return WaveSummaryMessage(
            wave,
            str(item["channel"]),
            str(item["ts"]),
            str(item.get("windowStart", "")),
            str(item.get("windowEnd", "")),
        )

    def create(self, summary: WaveSummaryMessage) -> None:
        try:
            self._table.put_item(
                Item={**self._key(summary.wave), **_summary_attributes(summary)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ThreadExistsError(summary.wave) from None
            raise

    def save(self, summary: WaveSummaryMessage) -> None:
        self._table.put_item(Item={**self._key(summary.wave), **_summary_attributes(summary)})


def _summary_attributes(summary: WaveSummaryMessage) -> dict[str, Any]:
    return {
        "channel": summary.channel,
        "ts": summary.ts,
        "windowStart": summary.window_start,
        "windowEnd": summary.window_end,
    }
