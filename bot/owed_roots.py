"""The owed-roots message: the notifier's reminder to itself of what Slack does not show yet.

A root's post or edit waits for Slack's budget without holding up the events behind it
(``StatusNotifier.pay_owed_roots``): what a batch cannot pay with the tokens Slack has free
stays owed. So that the last ones are paid when no more events come (a cutover job's 200
results end a wave), the notifier puts one message on its own status queue naming what is
owed; handling it pays for a few Slack seconds and puts the next one while anything is still
owed. Approval group messages whose edit waits are named too (paid before the roots: a
person acts on them), and wave summaries whose coalesced edit is due after the last event of a
burst. One message is in the queue at a time (one FIFO group, and a container
sends one only if it has none pending), so the reminders form one chain that ends when nothing
is owed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

OWED_ROOTS_KIND = "wavepilot.slack/roots-owed"
OWED_ROOTS_GROUP = "slack-roots-owed"
# Slack seconds an owed-roots message alone pays for (about 8 posts and 8 edits): events
# arriving meanwhile wait no longer than that.
OWED_ROOTS_PAYMENT_SECONDS = 10.0
# Migrations a message names (a wave of a few thousand VMs; an SQS body is at most 256 KiB).
MAX_OWED_IN_MESSAGE = 5_000


@dataclass(frozen=True, slots=True)
class Owed:
    """What Slack does not show yet: thread roots (by migration) and approval group messages
    (by group), each the longest owed first."""

    migration_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    waves: tuple[str, ...] = ()  # wave summaries owing an edit

    def __bool__(self) -> bool:
        return bool(self.migration_ids or self.groups or self.waves)


def owed_roots_body(owed: Owed) -> str:
    return json.dumps(
        {
            "kind": OWED_ROOTS_KIND,
            "migrationIds": list(owed.migration_ids[:MAX_OWED_IN_MESSAGE]),
            "groups": list(owed.groups[:MAX_OWED_IN_MESSAGE]),
            "waves": list(owed.waves[:MAX_OWED_IN_MESSAGE]),
        }
    )


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
    )


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


class OwedRootsQueue:
    """The status queue, as the notifier's reminder to itself."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, owed: Owed) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=owed_roots_body(owed),
            MessageGroupId=OWED_ROOTS_GROUP,
            MessageDeduplicationId=uuid.uuid4().hex,  # each reminder is a new one
        )
