"""What the embedded Slack shows of each migration, and what it cost: for the demo, its
``--report``, the rehearsal benchmark and the tests.

A migration's final state counts as delivered when its thread's root message shows it: the
root carries, as message metadata, the outcome and the event it was rendered from. A final
state that never reaches the root is a lost update. Slack's lag is measured on the stand-in's
clock (the embedded Slack runs faster than real time, as the pipeline does), from an event's
timestamp to the root edit that first showed it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from bot.thread_store import SlackThread, ThreadStore
from orchestration.adapters.state_store import MigrationStore
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.slack import SlackStandIn, Thread

# The migration's recorded status -> what its root should end up saying.
FINAL_OUTCOMES = {"COMPLETED": "migrated", "ROLLED_BACK": "rolled back"}


@dataclass
class SlackReport:
    threads: list[dict[str, Any]] = field(default_factory=list)
    calls_by_method: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    lost_updates: list[str] = field(default_factory=list)  # migration IDs
    slowest_delay_seconds: float = 0.0  # Slack-clock seconds, event -> root shows it
    slack_speed: float = 1.0

    def calls_per_migration(self) -> dict[str, float]:
        count = max(1, len(self.threads))
        return {method: round(n / count, 2) for method, n in self.calls_by_method.items()}

    def as_json(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "calls_by_method": self.calls_by_method,
            "calls_per_migration": self.calls_per_migration(),
            "rate_limited": self.rate_limited,
            "rate_limited_total": sum(self.rate_limited.values()),
            "lost_updates": len(self.lost_updates),
            "lost_update_migrations": self.lost_updates,
            "slowest_event_to_slack_seconds": round(self.slowest_delay_seconds, 1),
            "slack_clock_speed": self.slack_speed,
        }


def slack_report(
    slack: SlackStandIn, table_name: str, migration_ids: Iterable[str], *, settle_seconds: float
) -> SlackReport:
    """Wait up to ``settle_seconds`` for every final state to reach its root, then report."""
    table = boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(table_name)
    threads, migrations = ThreadStore(table), MigrationStore(table)
    wanted = list(migration_ids)
    deadline = time.monotonic() + settle_seconds
    while True:
        lost = [m for m in wanted if not _delivered(slack, threads, migrations, m)]
        if not lost or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    report = SlackReport(
        calls_by_method=dict(sorted(slack.calls_by_method().items())),
        rate_limited=dict(sorted(slack.rate_limited().items())),
        lost_updates=lost,
        slack_speed=slack.clock.speed,
    )
    for migration_id in wanted:
        stored = threads.get(migration_id)
        if stored is None or not stored.ts:  # no ts: its root is still owed
            report.threads.append({"migrationId": migration_id, "thread": None})
            continue
        thread = slack.thread(stored.channel, stored.ts)
        report.threads.append(_thread_json(migration_id, thread))
        report.slowest_delay_seconds = max(report.slowest_delay_seconds, _slowest(slack, thread))
    return report


def _delivered(
    slack: SlackStandIn, threads: ThreadStore, migrations: MigrationStore, migration_id: str
) -> bool:
    record = migrations.get(migration_id)
    expected = FINAL_OUTCOMES.get(record.status) if record is not None else None
    stored: SlackThread | None = threads.get(migration_id)
    if expected is None or stored is None or not stored.ts:
        return False
    shown = slack.thread(stored.channel, stored.ts).root.metadata or {}
    return bool(shown.get("event_payload", {}).get("outcome") == expected)


def _slowest(slack: SlackStandIn, thread: Thread) -> float:
    """The longest wait, in Slack seconds, between an event and the root version showing it."""
    slowest = 0.0
    for version in thread.root.versions:
        payload = (version.metadata or {}).get("event_payload") or {}
        if payload.get("event_time"):
            happened = slack.clock.at(datetime.fromisoformat(payload["event_time"]))
            slowest = max(slowest, version.time - happened)
    return slowest


def _thread_json(migration_id: str, thread: Thread) -> dict[str, Any]:
    return {
        "migrationId": migration_id,
        "channel": thread.channel,
        "ts": thread.ts,
        "root": thread.root.text,
        "rootEdits": len(thread.root.edits),
        "shows": ((thread.root.metadata or {}).get("event_payload") or {}).get("outcome"),
        "replies": [reply.text for reply in thread.replies],
    }


def thread_text(thread: dict[str, Any]) -> str:
    """A thread as plain text, the way a reader scrolls it."""
    lines = [f"[{thread['channel']}] {thread['root']}  (root edited {thread['rootEdits']} times)"]
    lines += [f"    └ {reply}" for reply in thread["replies"]]
    return "\n".join(lines)
