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

Replication is measured **per lane** (a target account + Region): the lanes configured in
``TARGET_LANES`` (Terraform's ``target_lanes``, the same list its alarms are made from; the
hub's own lane when none is configured), each through its target role. The totals above are
over every lane; each lane's figures go out with a ``Lane`` dimension (``account/region``),
and ``LaneUnreachable`` is 1 for a lane whose role cannot be assumed or where MGN is not
initialized (so a target account losing its role raises an alarm before a wave fails).
A configured list rather than the lanes of migrations in flight: the alarms need their
dimensions when Terraform creates them, and a lane without migrations is still worth watching
(replicating servers waiting for a wave).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from orchestration.adapters.lanes import LaneError
from orchestration.adapters.mgn import MgnNotInitializedError, SourceServer
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


class LaneSources(Protocol):
    """The MGN of each watched lane (``orchestration.adapters.lanes.LaneSessions``)."""

    def source_servers_in(self, account_id: str, region: str) -> list[SourceServer]:
        """Raises ``LaneError`` or ``MgnNotInitializedError`` for an unusable lane."""
        ...


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
class LaneFigures:
    """One lane's replication, or why it could not be read."""

    lane: str  # account/region
    replication: ReplicationFigures | None
    unreachable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        replication = self.replication
        return {
            "lane": self.lane,
            "reachable": replication is not None,
            "problem": self.unreachable,
            "ReplicationLagSeconds": replication.lag_seconds if replication else None,
            "ReplicationStalledServers": replication.stalled_servers if replication else None,
            "ReplicatingServers": replication.replicating_servers if replication else None,
        }


@dataclass(frozen=True, slots=True)
class MonitorFigures:
    replication: ReplicationFigures
    approvals: ApprovalFigures
    lanes: tuple[LaneFigures, ...] = ()

    def as_dict(self) -> dict[str, Any]:
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
            "Lanes": [lane.as_dict() for lane in self.lanes],
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


def combined(figures: Iterable[ReplicationFigures]) -> ReplicationFigures:
    """Every lane's replication as one: the largest lag, the sums of the counts."""
    lag, lag_server, replicating, stalled, unreadable = 0.0, None, 0, 0, 0
    for one in figures:
        if one.lag_server_id is not None and (lag_server is None or one.lag_seconds > lag):
            lag, lag_server = one.lag_seconds, one.lag_server_id
        replicating += one.replicating_servers
        stalled += one.stalled_servers
        unreadable += one.unreadable_lags
    return ReplicationFigures(lag, lag_server, replicating, stalled, unreadable)


class MigrationMonitor:
    """Args: lanes: the MGN of each lane; watched: the lanes (account, Region) to measure."""

    def __init__(
        self,
        lanes: LaneSources,
        watched: Sequence[tuple[str, str]],
        store: Approvals,
        clock: Clock,
    ) -> None:
        self._lanes = lanes
        self._watched = list(watched)
        self._store = store
        self._clock = clock

    def _lane(self, account_id: str, region: str) -> LaneFigures:
        label = f"{account_id}/{region}"
        try:
            servers = self._lanes.source_servers_in(account_id, region)
        except (LaneError, MgnNotInitializedError) as exc:
            return LaneFigures(label, None, str(exc))
        return LaneFigures(label, replication_figures(servers))

    def measure(self) -> MonitorFigures:
        lanes = tuple(self._lane(account, region) for account, region in self._watched)
        replication = combined(lane.replication for lane in lanes if lane.replication)
        pending = self._store.pending_approvals()
        ends: dict[str, datetime | None] = {}

        def window_end(migration_id: str) -> datetime | None:
            if migration_id not in ends:
                record = self._store.get(migration_id)
                vm = record.request.effective_vm if record is not None else None
                ends[migration_id] = vm.cutover_window.end if vm is not None else None
            return ends[migration_id]

        return MonitorFigures(
            replication, approval_figures(pending, window_end, self._clock.now()), lanes
        )
