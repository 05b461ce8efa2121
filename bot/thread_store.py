"""Each migration's Slack thread, kept with the migration (``MIGRATION#<id>`` / ``SLACK``).

The item holds the channel, the root message's ``ts`` (the thread), what the root should
show (the folded :class:`~bot.threads.ThreadState`), the sequence the root shows now, and the
approval message. ``shownSequence < state.sequence`` means a root edit is owed: it is paid
on the next event or redelivery, so a final state is never lost to a failed edit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bot.threads import ThreadState
from orchestration.adapters.state_store import migration_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SLACK_SK = "SLACK"


@dataclass(frozen=True, slots=True)
class SlackThread:
    migration_id: str
    channel: str
    ts: str
    state: ThreadState
    shown_sequence: int
    approval_ts: str = ""
    approval_id: str = ""
    shown_phase: int = 0  # what the root shows now, and when it was edited (Slack seconds)
    shown_outcome: str = ""
    shown_at: float = 0.0

    @property
    def root_owed(self) -> bool:
        return self.shown_sequence < self.state.sequence

    def root_edit_due(self, now: float, min_interval: float, *, behind: bool = False) -> bool:
        """Whether the owed edit should be made now.

        A new outcome (awaiting approval, migrated, rolled back, failed...) and a final state
        are shown at once. A new phase is shown at once too, unless the bot is ``behind`` (its
        events are old: it is catching up), when, like a change of detail only (replication
        40% -> 60%), it waits until the root has not been edited for ``min_interval`` Slack
        seconds; the next event pays what is owed, so nothing is lost, only skipped over."""
        if not self.root_owed:
            return False
        if self.state.outcome != self.shown_outcome or self.state.final:
            return True
        if self.state.phase != self.shown_phase and not behind:
            return True
        return now - self.shown_at >= min_interval

    def shown(self, at: float) -> SlackThread:
        return replace(
            self,
            shown_sequence=self.state.sequence,
            shown_phase=self.state.phase,
            shown_outcome=self.state.outcome,
            shown_at=at,
        )


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
        if not item:
            return None
        return SlackThread(
            migration_id=migration_id,
            channel=str(item["channel"]),
            ts=str(item["threadTs"]),
            state=ThreadState.from_item(dict(item["state"])),  # type: ignore[arg-type]
            shown_sequence=int(item["shownSequence"]),  # type: ignore[arg-type]
            approval_ts=str(item.get("approvalTs", "")),
            approval_id=str(item.get("approvalId", "")),
            shown_phase=int(item.get("shownPhase", 0)),  # type: ignore[arg-type]
            shown_outcome=str(item.get("shownOutcome", "")),
            shown_at=float(item.get("shownAt", 0)),  # type: ignore[arg-type]
        )

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

    def save(self, thread: SlackThread, *, previous_sequence: int) -> None:
        """Write the thread if the stored one is still at ``previous_sequence``."""
        try:
            self._table.put_item(
                Item={**self._key(thread.migration_id), **_attributes(thread)},
                ConditionExpression="attribute_not_exists(pk) OR #state.#sequence = :previous",
                ExpressionAttributeNames={"#state": "state", "#sequence": "sequence"},
                ExpressionAttributeValues={":previous": previous_sequence},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleThreadError(thread.migration_id) from None
            raise


def _attributes(thread: SlackThread) -> dict[str, Any]:
    return {
        "channel": thread.channel,
        "threadTs": thread.ts,
        "state": thread.state.to_item(),
        "shownSequence": thread.shown_sequence,
        "approvalTs": thread.approval_ts,
        "approvalId": thread.approval_id,
        "shownPhase": thread.shown_phase,
        "shownOutcome": thread.shown_outcome,
        "shownAt": Decimal(str(round(thread.shown_at, 3))),
    }
