"""The owed-roots message: the notifier's reminder to itself of what Slack does not show yet.

A root's post or edit waits for Slack's budget without holding up the events behind it
(``StatusNotifier.pay_owed_roots``): what a batch cannot pay with the tokens Slack has free
stays owed. So that the last ones are paid when no more events come (a cutover job's 200
results end a wave), the notifier puts one message on its own status queue naming what is
owed; handling it pays for a few Slack seconds and puts the next one while anything is still
owed. Approval group messages whose edit waits are named too (paid before the roots: a
person acts on them), and wave summaries whose coalesced edit is due after the last event of a
burst. The reminders form one chain that ends when nothing is owed (``ReminderChain``): the
container puts the next one when the last it put comes back.

What is owed is always named by a reminder on the queue, not only in the container's memory:
when a batch owes something the pending reminder does not name, the container puts a new one
naming everything owed, which becomes the chain's head (the one it supersedes is only read
when it comes back). A restarted container (a deployment, Lambda recycling it) knows nothing,
so its first batch that owes anything puts a reminder too, and the older ones on the queue
bring back what the old container owed. Before, a root owed since the last reminder was put
lived only in memory: a restart lost it, and a final state owed then was never shown.

Threads are named by their wave (``rootWaves``), not one by one: what a thread owes is on its
item (a root not posted, a stage not shown, replies that could wait), so a container handed a
reminder it did not put reads the named waves' threads and pays those that owe. A wave's
burst of owed roots is then one name, not a new reminder for every batch that owes one more
(about two reminders per VM in a 1,000-VM wave before, each a message to send and receive).
Older reminders naming migrations (``migrationIds``) are still read.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

OWED_ROOTS_KIND = "wavepilot.slack/roots-owed"
# Slack seconds an owed-roots message alone pays for (about 8 posts and 8 edits): events
# arriving meanwhile wait no longer than that.
OWED_ROOTS_PAYMENT_SECONDS = 10.0
# Migrations a message names (a wave of a few thousand VMs; an SQS body is at most 256 KiB).
MAX_OWED_IN_MESSAGE = 5_000
# Reminder IDs a container remembers putting (a chain has one pending; superseded ones come
# back later).
REMINDERS_REMEMBERED = 1_000


@dataclass(frozen=True, slots=True)
class Owed:
    """What Slack does not show yet: threads (by wave; by migration where the wave is not
    known yet) and approval group messages (by group), each the longest owed first."""

    migration_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    waves: tuple[str, ...] = ()  # wave summaries owing an edit
    root_waves: tuple[str, ...] = ()  # waves with a thread that owes (its item says what)

    def __bool__(self) -> bool:
        return bool(self.migration_ids or self.groups or self.waves or self.root_waves)

    def names(self) -> frozenset[str]:
        """Everything owed, one name each (a wave's threads, a root, a group's message, a
        wave's summary)."""
        return frozenset(
            (
                *self.migration_ids,
                *(f"roots:{w}" for w in self.root_waves),
                *(f"group:{g}" for g in self.groups),
                *(f"wave:{w}" for w in self.waves),
            )
        )

    def in_one_message(self) -> Owed:
        """What one reminder can name."""
        return Owed(
            self.migration_ids[:MAX_OWED_IN_MESSAGE],
            self.groups[:MAX_OWED_IN_MESSAGE],
            self.waves[:MAX_OWED_IN_MESSAGE],
            self.root_waves[:MAX_OWED_IN_MESSAGE],
        )

    def with_(self, other: Owed) -> Owed:
        """Both, each name once."""
        return Owed(
            *(
                tuple(dict.fromkeys((*mine, *theirs)))
                for mine, theirs in (
                    (self.migration_ids, other.migration_ids),
                    (self.groups, other.groups),
                    (self.waves, other.waves),
                    (self.root_waves, other.root_waves),
                )
            )
        )


def owed_roots_body(owed: Owed, reminder_id: str = "") -> str:
    named = owed.in_one_message()
    return json.dumps(
        {
            "kind": OWED_ROOTS_KIND,
            "reminderId": reminder_id,
            "rootWaves": list(named.root_waves),
            "migrationIds": list(named.migration_ids),
            "groups": list(named.groups),
            "waves": list(named.waves),
        }
    )


def reminder_id_in(body: str) -> str:
    """The ID of the reminder in ``body`` ("" if it has none, or is none)."""
    try:
        message: Any = json.loads(body)
    except ValueError:
        return ""
    return str(message.get("reminderId") or "") if isinstance(message, dict) else ""


@dataclass
class ReminderChain:
    """The reminder this container put last and has not seen come back, and what it names."""

    pending: str | None = None
    named: frozenset[str] = frozenset()
    # The reminders this container put, the latest (a reminder it did not put comes from a
    # container before it: what it names is read from the table).
    put_here: deque[str] = field(default_factory=lambda: deque(maxlen=REMINDERS_REMEMBERED))

    def ours(self, reminder_id: str) -> bool:
        return bool(reminder_id) and reminder_id in self.put_here

    def handled(self, reminder_ids: Iterable[str]) -> None:
        """Reminders came back: if the chain's head is among them, it is no longer pending."""
        if self.pending is not None and self.pending in set(reminder_ids):
            self.pending, self.named = None, frozenset()

    def needs_reminder(self, owed: Owed) -> bool:
        """Whether to put a reminder now: something is owed and either no reminder of this
        container is pending or the pending one does not name all of it."""
        if not owed:
            return False
        return self.pending is None or not owed.in_one_message().names() <= self.named

    def sent(self, reminder_id: str, owed: Owed) -> None:
        self.pending, self.named = reminder_id, owed.in_one_message().names()
        self.put_here.append(reminder_id)


def owed_roots_in(body: str) -> Owed | None:
    """What an owed-roots message names; None if the body is not one."""
    try:
        message: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") != OWED_ROOTS_KIND:
        return None
    return Owed(
        _names(message.get("migrationIds")),
        _names(message.get("groups")),
        _names(message.get("waves")),
        _names(message.get("rootWaves")),
    )


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


class OwedRootsQueue:
    """The status queue, as the notifier's reminder to itself."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, owed: Owed) -> str:
        """Put a reminder naming ``owed``; its ID."""
        reminder_id = uuid.uuid4().hex
        self._client.send_message(
            QueueUrl=self._queue_url, MessageBody=owed_roots_body(owed, reminder_id)
        )
        return reminder_id
