"""Which MGN launch jobs to start now in one lane: pure planning, no I/O.

MGN's quotas (reference/mgn.md) are the physical limit of a lane's throughput: at most
``concurrent_jobs`` jobs in progress, ``servers_per_job`` servers in one job,
``servers_in_active_jobs`` servers across the active jobs, and one job per server. A job
launches all its servers in parallel, so a wave moves fastest in as few, as full jobs as the
quotas allow. The rules, in the order they decide:

1. One job per server: a server in an active job is not planned; a server is planned once
   (of two requests naming one server, the older goes first, the other waits).
2. Cutovers before tests (migration day: the window is the deadline, tests can wait).
3. A wave's cutovers start only inside its window (``window_start <= now < window_end``),
   all its pending cutovers together, in as few jobs as the quotas allow; waves whose
   windows opened earlier go first.
4. Test launches batch as they become ready: they start once the oldest has waited
   ``linger``, or, before that, in jobs of exactly ``servers_per_job`` (a full job gains
   nothing by waiting).
5. Where the quotas force a choice, first requested first served.

A cutover whose server still runs its test instance is not planned as a cutover: its test
instance is *retired* first, in TERMINATE jobs (``retire``) that count against the same
quotas, planned after the cutovers and before the tests, packed like cutovers (as soon as
the cutover is requested, in as few jobs as fit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestration.launch_records import JobKind, LaunchRequest

__all__ = [
    "ActiveJob",
    "LaneQuotas",
    "LaunchRequest",
    "PlannedJob",
    "cutover_window_closed",
    "cutover_window_open",
    "plan_launches",
]


@dataclass(frozen=True, slots=True)
class LaneQuotas:
    """MGN's job quotas in one lane (account + Region). AWS's defaults; accounts have them
    raised, so the values come from configuration."""

    concurrent_jobs: int = 20
    servers_per_job: int = 200
    servers_in_active_jobs: int = 200

    def __post_init__(self) -> None:
        if min(self.concurrent_jobs, self.servers_per_job, self.servers_in_active_jobs) < 1:
            raise ValueError("every MGN job quota must be at least 1")


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """A job the lane's quotas already count: started, or about to be (an intent)."""

    job_id: str | None
    kind: JobKind
    server_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job to start: one kind, its requests in the order they were made (a ``retire``
    job's are the cutover requests whose test instances it terminates)."""

    kind: JobKind
    requests: tuple[LaunchRequest, ...]

    @property
    def server_ids(self) -> tuple[str, ...]:
        return tuple(request.source_server_id for request in self.requests)


def plan_launches(
    pending: Iterable[LaunchRequest],
    active_jobs: Sequence[ActiveJob],
    quotas: LaneQuotas,
    *,
    now: datetime,
    linger: timedelta,
    retire: Iterable[LaunchRequest] = (),
) -> list[PlannedJob]:
    """The jobs to start now, cutovers first, then the retirement of the test instances of
    the cutovers in ``retire`` (cutover requests not yet launchable: their servers' test
    instances run), then tests; what is not planned waits for a later call."""
    busy = {server_id for job in active_jobs for server_id in job.server_ids}
    room = _Room(
        jobs=quotas.concurrent_jobs - len(active_jobs),
        servers=quotas.servers_in_active_jobs - len(busy),
        per_job=quotas.servers_per_job,
    )
    candidates = _one_request_per_server(pending, busy)
    cutovers = [r for r in candidates if r.kind == "cutover" and cutover_window_open(r, now)]
    tests = [r for r in candidates if r.kind == "test"]
    planned: list[PlannedJob] = []
    for wave in _waves_in_order(cutovers):
        planned.extend(room.pack("cutover", wave))
    taken = busy | {server_id for job in planned for server_id in job.server_ids}
    retiring = [
        r for r in _one_request_per_server(retire, taken) if not cutover_window_closed(r, now)
    ]
    planned.extend(room.pack("retire", retiring))
    taken |= {request.source_server_id for request in retiring}
    planned.extend(
        _plan_tests(
            [r for r in tests if r.source_server_id not in taken], room, now=now, linger=linger
        )
    )
    return planned


def cutover_window_closed(request: LaunchRequest, now: datetime) -> bool:
    """A cutover whose window has closed: it will never be planned (the migration rolls back
    rather than cut over outside the window the manifest set)."""
    end = request.window_end
    return request.kind == "cutover" and end is not None and now >= end


class _Room:
    """What the quotas leave for new jobs, taken as jobs are planned."""

    def __init__(self, *, jobs: int, servers: int, per_job: int) -> None:
        self.jobs = jobs
        self.servers = servers
        self.per_job = per_job

    def job_size(self) -> int:
        """The most servers one new job may hold now (0: no job fits)."""
        return min(self.per_job, self.servers) if self.jobs > 0 else 0

    def pack(
        self, kind: JobKind, requests: Sequence[LaunchRequest], *, full_jobs_only: bool = False
    ) -> list[PlannedJob]:
        """``requests`` (in order) in as few jobs as fit; with ``full_jobs_only``, only jobs
        of ``per_job`` servers."""
        planned: list[PlannedJob] = []
        start = 0
        while start < len(requests) and (size := self.job_size()) > 0:
            chunk = tuple(requests[start : start + size])
            if full_jobs_only and len(chunk) < self.per_job:
                break
            planned.append(PlannedJob(kind, chunk))
            self.jobs -= 1
            self.servers -= len(chunk)
            start += len(chunk)
        return planned


def _one_request_per_server(
    pending: Iterable[LaunchRequest], busy: set[str]
) -> list[LaunchRequest]:
    """Pending requests oldest first, without servers in active jobs, each server once."""
    seen: set[str] = set()
    chosen: list[LaunchRequest] = []
    for request in sorted(pending, key=_fifo):
        if request.source_server_id in busy or request.source_server_id in seen:
            continue
        seen.add(request.source_server_id)
        chosen.append(request)
    return chosen


def cutover_window_open(request: LaunchRequest, now: datetime) -> bool:
    """A cutover whose window is open now (a test launch has none: always open)."""
    opened = request.window_start is None or now >= request.window_start
    return opened and not cutover_window_closed(request, now)


def _waves_in_order(cutovers: Sequence[LaunchRequest]) -> list[list[LaunchRequest]]:
    """Each wave's cutovers (oldest first); waves by when their window opened, then by
    their oldest request."""
    waves: dict[str, list[LaunchRequest]] = {}
    for request in cutovers:  # already oldest first
        waves.setdefault(request.wave, []).append(request)

    def opened(wave: list[LaunchRequest]) -> tuple[datetime, datetime, str]:
        starts = [r.window_start for r in wave if r.window_start is not None]
        first = wave[0]
        return (min(starts, default=first.requested_at), first.requested_at, first.wave)

    return sorted(waves.values(), key=opened)


def _plan_tests(
    tests: Sequence[LaunchRequest], room: _Room, *, now: datetime, linger: timedelta
) -> list[PlannedJob]:
    if not tests:
        return []
    lingered = now - tests[0].requested_at >= linger
    return room.pack("test", tests, full_jobs_only=not lingered)


def _fifo(request: LaunchRequest) -> tuple[datetime, str, str]:
    return (request.requested_at, request.migration_id, request.kind)
