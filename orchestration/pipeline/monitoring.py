"""What the scheduled monitor measures: replication lag and approvals left waiting.

MGN publishes no CloudWatch metric for replication lag, and nothing else tells how long an
approval has been waiting before it expires; ``monitor_migrations`` reads both every few
minutes and puts them as metrics (``terraform/monitoring.tf`` alarms on them):

- ``ReplicationLagSeconds``: the largest ``dataReplicationInfo.lagDuration`` over the source
  servers still replicating (not archived, not cut over or disconnected); 0 when none has one.
- ``ReplicationStalledServers``: those servers whose replication is ``STALLED``.
- ``OldestPendingApprovalSeconds``: the age of the oldest PENDING approval; 0 when none waits.
- ``PendingApprovals``: how many wait.
- ``ApprovalsPastWindow``: pending approvals whose migration's cutover window has closed or
  closes within ``WINDOW_WARNING`` (an approval then can no longer lead to a cutover in time).

Pending approvals come from the table's sparse ``gsi1`` partition (a Query, never a Scan).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from orchestration.adapters.mgn import SourceServer
from orchestration.adapters.state_store import ApprovalRecord, MigrationRecord
from orchestration.clock import Clock

# Lifecycle states after which a server no longer replicates for a migration.
FINISHED_LIFECYCLE_STATES = frozenset({"CUTOVER", "DISCONNECTED"})
STALLED = "STALLED"
WINDOW_WARNING = timedelta(hours=1)

# ISO 8601 durations as MGN writes them (PT5M30S, P1DT2H, PT0.5S), plus weeks and the
# calendar units (a year as 365 days, a month as 30: lag is never that long in practice).
_DURATION = re.compile(
    r"(?P<sign>[-+])?P(?!$)"
    r"(?:(?P<years>\d+(?:[.,]\d+)?)Y)?"
    r"(?:(?P<months>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)"
    r"(?:(?P<hours>\d+(?:[.,]\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?"
    r")?",
    re.IGNORECASE,
)
_UNIT_SECONDS = {
    "years": 365 * 86_400,
    "months": 30 * 86_400,
    "weeks": 7 * 86_400,
    "days": 86_400,
    "hours": 3_600,
    "minutes": 60,
    "seconds": 1,
}


def duration_seconds(text: str) -> float:
    """``PT5M30S`` -> 330.0. Raises ``ValueError`` for anything that is not an ISO 8601
    duration (``P`` alone, ``PT`` with nothing after it, a unit out of order, junk)."""
    candidate = text.strip()
    match = _DURATION.fullmatch(candidate)
    if match is None or not any(match[unit] for unit in _UNIT_SECONDS):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    total = sum(
        float(match[unit].replace(",", ".")) * factor
        for unit, factor in _UNIT_SECONDS.items()
        if match[unit]
    )
    return -total if match["sign"] == "-" else total


class SourceServers(Protocol):
    def source_servers(self) -> list[SourceServer]: ...


class Approvals(Protocol):
    def pending_approvals(self) -> list[ApprovalRecord]: ...

    def get(self, migration_id: str) -> MigrationRecord | None: ...


@dataclass(frozen=True, slots=True)
class ReplicationFigures:
    lag_seconds: float
    lag_server_id: str | None
    replicating_servers: int
    stalled_servers: int
    unreadable_lags: int


@dataclass(frozen=True, slots=True)
class ApprovalFigures:
    pending: int
    oldest_age_seconds: float
    oldest_approval_id: str | None
    past_window: int


@dataclass(frozen=True, slots=True)
class MonitorFigures:
    replication: ReplicationFigures
    approvals: ApprovalFigures

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "ReplicationLagSeconds": self.replication.lag_seconds,
            "ReplicationStalledServers": self.replication.stalled_servers,
            "ReplicatingServers": self.replication.replicating_servers,
            "LaggiestServerId": self.replication.lag_server_id,
            "UnreadableLagDurations": self.replication.unreadable_lags,
            "OldestPendingApprovalSeconds": self.approvals.oldest_age_seconds,
            "OldestPendingApprovalId": self.approvals.oldest_approval_id,
            "PendingApprovals": self.approvals.pending,
            "ApprovalsPastWindow": self.approvals.past_window,
        }


def replication_figures(servers: Iterable[SourceServer]) -> ReplicationFigures:
    lag, lag_server, replicating, stalled, unreadable = 0.0, None, 0, 0, 0
    for server in servers:
        if server.is_archived or server.lifecycle_state in FINISHED_LIFECYCLE_STATES:
            continue
        replicating += 1
        if server.replication_state == STALLED:
            stalled += 1
        if not server.lag_duration:
            continue  # no lag yet: MGN sets it from the first continuous replication on
        try:
            seconds = duration_seconds(server.lag_duration)
        except ValueError:
            unreadable += 1
            continue
        if lag_server is None or seconds > lag:
            lag, lag_server = max(seconds, 0.0), server.source_server_id
    return ReplicationFigures(lag, lag_server, replicating, stalled, unreadable)


def approval_figures(
    pending: Iterable[ApprovalRecord],
    window_end: Callable[[str], datetime | None],
    now: datetime,
) -> ApprovalFigures:
    """``window_end(migration_id)``: when the migration's cutover window closes (None: no
    window, or no such migration)."""
    count, oldest, oldest_id, past_window = 0, 0.0, None, 0
    for approval in pending:
        count += 1
        requested = approval.requested_at
        if requested is not None:
            age = max((now - requested).total_seconds(), 0.0)
            if oldest_id is None or age > oldest:
                oldest, oldest_id = age, approval.approval_id
        end = window_end(approval.migration_id)
        if end is not None and end <= now + WINDOW_WARNING:
            past_window += 1
    return ApprovalFigures(count, oldest, oldest_id, past_window)


class MigrationMonitor:
    def __init__(self, mgn: SourceServers, store: Approvals, clock: Clock) -> None:
        self._mgn = mgn
        self._store = store
        self._clock = clock

    def measure(self) -> MonitorFigures:
        replication = replication_figures(self._mgn.source_servers())
        pending = self._store.pending_approvals()
        ends: dict[str, datetime | None] = {}

        def window_end(migration_id: str) -> datetime | None:
            if migration_id not in ends:
                record = self._store.get(migration_id)
                vm = record.request.effective_vm if record is not None else None
                ends[migration_id] = vm.cutover_window.end if vm is not None else None
            return ends[migration_id]

        return MonitorFigures(replication, approval_figures(pending, window_end, self._clock.now()))
