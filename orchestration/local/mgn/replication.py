"""Agent-based replication as a pure function of simulated time.

Nothing here runs in the background: given when replication started, the disks, the timing
settings and the stall intervals (faults), `view_replication` says what MGN would report at any
instant. The emulator can therefore answer from any thread at any clock speed, and a test that
advances the clock by an hour sees exactly what an hour of replication would have produced.

Model:
  - Replication starts at agent install, or, when every replication slot was taken then
    (`QuotaLimits.replicating_servers`, see `slots`), at the instant a slot freed. Until then
    the plan has no start: INITIATING with the first step (WAIT) IN_PROGRESS, nothing moves.
  - INITIATING for `initiation` (the initiation steps advance evenly), then INITIAL_SYNC at
    `bandwidth`, then CONTINUOUS. A stall pauses this progress; nothing is lost.
  - While continuous, a stall stops replication while the source keeps writing at
    `change_rate`: the backlog grows, `lagDuration` = backlog / change rate. After the stall the
    backlog drains at (bandwidth - change rate) in BACKLOG, then CONTINUOUS again.
  - `lagDuration` is absent until the first CONTINUOUS (MGN: a server is launchable exactly
    when lagDuration is set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from orchestration.local.mgn.settings import ReplicationTiming
from orchestration.local.mgn.states import DataReplicationState, ReplicationError

INITIATION_STEPS: tuple[str, ...] = (
    "WAIT",
    "CREATE_SECURITY_GROUP",
    "LAUNCH_REPLICATION_SERVER",
    "BOOT_REPLICATION_SERVER",
    "AUTHENTICATE_WITH_SERVICE",
    "DOWNLOAD_REPLICATION_SOFTWARE",
    "CREATE_STAGING_DISKS",
    "ATTACH_STAGING_DISKS",
    "PAIR_REPLICATION_SERVER_WITH_AGENT",
    "CONNECT_AGENT_TO_REPLICATION_SERVER",
    "START_DATA_TRANSFER",
)


@dataclass(frozen=True, slots=True)
class ReplicationStall:
    """An interval in which replication made no progress (an injected fault)."""

    started_at: datetime
    ended_at: datetime | None
    error: ReplicationError
    raw_error: str
    ends_on_retry: bool = True

    def covers(self, moment: datetime) -> bool:
        return self.started_at <= moment and (self.ended_at is None or moment < self.ended_at)

    def ended(self, at: datetime) -> ReplicationStall:
        return ReplicationStall(self.started_at, at, self.error, self.raw_error, self.ends_on_retry)


@dataclass(frozen=True, slots=True)
class ReplicationPlan:
    """The fixed inputs of one server's replication.

    Attributes:
        agent_installed_at: when the agent was installed (the server was added).
        disk_bytes: the disks replication copies.
        timing: this server's timing (its own bandwidth, if it was given one).
        started_at: when replication started: the agent install, or the instant a replication
            slot freed for a server that had to wait; None while it waits.
    """

    agent_installed_at: datetime
    disk_bytes: tuple[int, ...]
    timing: ReplicationTiming
    started_at: datetime | None = None

    def starting_at(self, moment: datetime) -> ReplicationPlan:
        return replace(self, started_at=moment)

    @property
    def total_bytes(self) -> int:
        return sum(self.disk_bytes)

    @property
    def initial_sync(self) -> timedelta:
        return timedelta(seconds=self.total_bytes / self.timing.bandwidth_bytes_per_second)

    @property
    def effort(self) -> timedelta:
        """Progress (stall-free time) needed from agent install to the first CONTINUOUS."""
        return self.timing.initiation + self.initial_sync


@dataclass(frozen=True, slots=True)
class InitiationStep:
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class ReplicationView:
    """What `dataReplicationInfo` (and the replication parts of `lifeCycle`) show at an instant."""

    state: DataReplicationState
    replicated_bytes: tuple[int, ...]
    backlogged_bytes: tuple[int, ...]
    lag: timedelta | None
    eta: datetime | None
    steps: tuple[InitiationStep, ...]
    stall: ReplicationStall | None
    first_byte_at: datetime | None
    continuous_since: datetime | None
    last_snapshot_at: datetime | None


def time_progress_reaches(
    plan: ReplicationPlan, stalls: Sequence[ReplicationStall], target: timedelta
) -> datetime | None:
    """When stall-free progress first reaches `target`; None if replication has not started or
    an open stall prevents it."""
    if plan.started_at is None:
        return None
    remaining = target
    cursor = plan.started_at
    for stall in sorted(stalls, key=lambda stall: stall.started_at):
        available = stall.started_at - cursor
        if available >= remaining:
            break
        remaining -= max(available, timedelta())
        if stall.ended_at is None:
            return None
        cursor = max(cursor, stall.ended_at)
    return cursor + remaining


def initial_sync_completed_at(
    plan: ReplicationPlan, stalls: Sequence[ReplicationStall]
) -> datetime | None:
    """When replication first becomes CONTINUOUS (None while an open stall blocks it)."""
    return time_progress_reaches(plan, stalls, plan.effort)


def view_replication(
    plan: ReplicationPlan, stalls: Sequence[ReplicationStall], now: datetime
) -> ReplicationView:
    if plan.started_at is None:
        return waiting_for_slot_view(plan)
    synced_at = initial_sync_completed_at(plan, stalls)
    if synced_at is None or now < synced_at:
        return _view_before_continuous(plan, plan.started_at, stalls, now)
    return _view_after_continuous(plan, stalls, now, synced_at)


def waiting_for_slot_view(plan: ReplicationPlan) -> ReplicationView:
    """Replication queued for a slot: INITIATING at its first step (WAIT), nothing copied yet."""
    nothing = tuple(0 for _ in plan.disk_bytes)
    return ReplicationView(
        state=DataReplicationState.INITIATING,
        replicated_bytes=nothing,
        backlogged_bytes=nothing,
        lag=None,
        eta=None,
        steps=_initiation_steps(timedelta(), plan.timing.initiation, stalled=False),
        stall=None,
        first_byte_at=None,
        continuous_since=None,
        last_snapshot_at=None,
    )


def disconnected_view(plan: ReplicationPlan, stalls: Sequence[ReplicationStall]) -> ReplicationView:
    """Replication after FinalizeCutover or DisconnectFromService: nothing moves any more."""
    first_byte_at = time_progress_reaches(plan, stalls, plan.timing.initiation)
    return ReplicationView(
        state=DataReplicationState.DISCONNECTED,
        replicated_bytes=plan.disk_bytes,
        backlogged_bytes=tuple(0 for _ in plan.disk_bytes),
        lag=None,
        eta=None,
        steps=_initiation_steps(plan.timing.initiation, plan.timing.initiation, stalled=False),
        stall=None,
        first_byte_at=first_byte_at,
        continuous_since=None,
        last_snapshot_at=None,
    )


def _progress(
    started_at: datetime, stalls: Sequence[ReplicationStall], moment: datetime
) -> timedelta:
    """Stall-free time between the start of replication and `moment`."""
    elapsed = max(moment - started_at, timedelta())
    for stall in stalls:
        stall_end = stall.ended_at if stall.ended_at is not None else moment
        overlap = min(stall_end, moment) - max(stall.started_at, started_at)
        elapsed -= max(overlap, timedelta())
    return max(elapsed, timedelta())


def _view_before_continuous(
    plan: ReplicationPlan,
    started_at: datetime,
    stalls: Sequence[ReplicationStall],
    now: datetime,
) -> ReplicationView:
    current_stall = next((stall for stall in stalls if stall.covers(now)), None)
    progress_until = current_stall.started_at if current_stall else now
    progress = _progress(started_at, stalls, progress_until)
    initiation = plan.timing.initiation
    synced_seconds = max((progress - initiation).total_seconds(), 0.0)
    fraction = min(synced_seconds * plan.timing.bandwidth_bytes_per_second / plan.total_bytes, 1.0)
    if current_stall is not None:
        state = DataReplicationState.STALLED
    elif progress < initiation:
        state = DataReplicationState.INITIATING
    else:
        state = DataReplicationState.INITIAL_SYNC
    first_byte_at = (
        time_progress_reaches(plan, stalls, initiation) if progress >= initiation else None
    )
    return ReplicationView(
        state=state,
        replicated_bytes=tuple(int(size * fraction) for size in plan.disk_bytes),
        backlogged_bytes=tuple(0 for _ in plan.disk_bytes),
        lag=None,
        eta=None if current_stall else now + (plan.effort - progress),
        steps=_initiation_steps(progress, initiation, stalled=current_stall is not None),
        stall=current_stall,
        first_byte_at=first_byte_at,
        continuous_since=None,
        last_snapshot_at=None,
    )


def _view_after_continuous(
    plan: ReplicationPlan, stalls: Sequence[ReplicationStall], now: datetime, synced_at: datetime
) -> ReplicationView:
    timing = plan.timing
    change_rate = timing.change_rate_bytes_per_second
    drain_rate = timing.bandwidth_bytes_per_second - change_rate
    backlog = 0.0
    cursor = synced_at
    current_stall: ReplicationStall | None = None
    for stall in sorted(stalls, key=lambda stall: stall.started_at):
        if stall.started_at < synced_at or stall.started_at > now:
            continue
        backlog = max(backlog - (stall.started_at - cursor).total_seconds() * drain_rate, 0.0)
        if stall.covers(now):
            backlog += (now - stall.started_at).total_seconds() * change_rate
            current_stall = stall
            cursor = now
            break
        assert stall.ended_at is not None  # only an open stall can cover now
        backlog += (stall.ended_at - stall.started_at).total_seconds() * change_rate
        cursor = stall.ended_at
    if current_stall is None:
        backlog = max(backlog - (now - cursor).total_seconds() * drain_rate, 0.0)
    if current_stall is not None:
        state, eta = DataReplicationState.STALLED, None
    elif backlog > 0:
        state, eta = DataReplicationState.BACKLOG, now + timedelta(seconds=backlog / drain_rate)
    else:
        state, eta = DataReplicationState.CONTINUOUS, None
    snapshots_taken = (now - synced_at) // timing.snapshot_interval
    return ReplicationView(
        state=state,
        replicated_bytes=plan.disk_bytes,
        backlogged_bytes=_spread(int(backlog), plan.disk_bytes),
        lag=timedelta(seconds=int(backlog / change_rate)),
        eta=eta,
        steps=_initiation_steps(timing.initiation, timing.initiation, stalled=False),
        stall=current_stall,
        first_byte_at=time_progress_reaches(plan, stalls, timing.initiation),
        continuous_since=synced_at,
        last_snapshot_at=synced_at + snapshots_taken * timing.snapshot_interval,
    )


def _spread(total: int, disk_bytes: tuple[int, ...]) -> tuple[int, ...]:
    """Share `total` across disks in proportion to their size."""
    capacity = sum(disk_bytes)
    return tuple(total * size // capacity for size in disk_bytes)


def _initiation_steps(
    progress: timedelta, initiation: timedelta, *, stalled: bool
) -> tuple[InitiationStep, ...]:
    if progress >= initiation:
        return tuple(InitiationStep(name, "SUCCEEDED") for name in INITIATION_STEPS)
    current = int(progress / (initiation / len(INITIATION_STEPS)))

    def status(index: int) -> str:
        if index < current:
            return "SUCCEEDED"
        if index > current:
            return "NOT_STARTED"
        return "FAILED" if stalled else "IN_PROGRESS"

    return tuple(InitiationStep(name, status(index)) for index, name in enumerate(INITIATION_STEPS))
