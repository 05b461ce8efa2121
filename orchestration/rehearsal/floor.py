"""The quota floor: the best makespan MGN's quotas allow for an input, people and pipeline aside.

A rehearsal's makespan mixes what MGN cannot do faster (replicate the disks over the link,
convert and boot within its job quotas, wait for the cutover window) with what the team and
the pipeline add (approvals, polls, verification). The floor is the first part alone, so
``observed / floor`` says how much of migration day the pipeline's design costs.

Per lane (account + Region: MGN's quotas are per lane), in seconds from the rehearsal start:

1. **Replication**: servers are admitted FIFO (the input's order) to at most
   ``replicating_servers`` staging slots; each spends ``initiation`` seconds, then syncs its
   disks over its wave's link, which is processor-shared among the wave's servers syncing at
   that moment. A slot frees when its server is ready (MGN counts continuously replicating
   servers against the quota too, so freeing it earlier than MGN does keeps this a floor).
2. **Launches**: a greedy batch schedule. Whenever a job slot is free (``concurrent_jobs``)
   and servers are waiting, a job starts with as many of the earliest-waiting servers of one
   kind (test or cutover) as ``servers_per_job`` and the room left under
   ``servers_in_active_jobs`` allow; it lasts the longest launch duration of its servers' OS.
   Test and cutover jobs share the quotas, as in MGN. A server's test launch may start when
   it is ready; its cutover when its test job ended and its wave's window opened.
   ``servers_per_job=1`` is today's per-VM design (one job per server); the lane's quota is
   the batched design's best ("jobs as large as the quotas allow").

The floor ends at the last cutover job's end. It includes replication, test and cutover jobs
and the window's opening; it excludes approvals, verification, finalize, polling and Lambda
time, the window's end (a floor may overrun a window) and failures. The greedy schedule is
not proven optimal for every input; for servers ready together on one OS its test launches
take exactly the least the quotas allow: N servers, one per job, J concurrent jobs of
duration D take ceil(N/J) x D.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from orchestration.rehearsal.observation import LaneQuotas

JobKind = Literal["test", "cutover"]


@dataclass(frozen=True, slots=True)
class FloorServer:
    """One source server as the floor sees it: what it must move and where it launches."""

    name: str
    wave: str
    os_family: str
    disk_bytes: int


@dataclass(frozen=True, slots=True)
class FloorWave:
    name: str
    bytes_per_second: float  # the wave's link; <= 0 or inf: replication costs initiation only
    window_start_seconds: float  # from the rehearsal start: no cutover job before it


@dataclass(frozen=True, slots=True)
class FloorTimings:
    """The profile's durations, simulated seconds."""

    replication_initiation_seconds: float
    test_launch_seconds: Mapping[str, float]  # os family -> test job duration
    cutover_launch_seconds: Mapping[str, float]  # os family -> cutover job duration


@dataclass(frozen=True, slots=True)
class LaneFloor:
    servers: int
    servers_per_job: int
    replication_done_seconds: float
    test_launches_done_seconds: float
    cutovers_done_seconds: float
    test_jobs: int
    cutover_jobs: int

    @property
    def makespan_seconds(self) -> float:
        return self.cutovers_done_seconds


@dataclass(frozen=True, slots=True)
class _Waiting:
    eligible_seconds: float
    order: int
    name: str
    duration_seconds: float


def replication_ready_seconds(
    servers: Sequence[FloorServer],
    waves: Mapping[str, FloorWave],
    *,
    initiation_seconds: float,
    replicating_servers: int,
) -> dict[str, float]:
    """When each server could be ready (first CONTINUOUS), seconds from the start.

    An event simulation: the next event is an initiation ending or a sync finishing at the
    current shares of each wave's link; at each, shares are recomputed and freed slots are
    given to the next servers in line.
    """
    slots = max(1, replicating_servers)
    queue = list(servers)
    queue.reverse()  # pop() from the end takes the input's first server first
    initiating: dict[str, tuple[FloorServer, float]] = {}  # name -> (server, ends at)
    syncing: dict[str, tuple[FloorServer, float]] = {}  # name -> (server, bytes left)
    ready: dict[str, float] = {}
    now = 0.0

    def admit() -> None:
        while queue and len(initiating) + len(syncing) < slots:
            server = queue.pop()
            initiating[server.name] = (server, now + max(0.0, initiation_seconds))

    admit()
    while initiating or syncing:
        rates = _sync_rates(syncing, waves)
        finishes = {name: now + left / rates[name] for name, (_s, left) in syncing.items()}
        next_event = min([ends for _server, ends in initiating.values()] + list(finishes.values()))
        elapsed = next_event - now
        now = next_event
        for name, (server, left) in list(syncing.items()):
            if finishes[name] <= now:  # the same float as the minimum: no crumbs left behind
                del syncing[name]
                ready[name] = now
            else:
                syncing[name] = (server, left - rates[name] * elapsed)
        for name, (server, ends) in list(initiating.items()):
            if ends <= now:
                del initiating[name]
                if server.disk_bytes <= 0:
                    ready[name] = now
                else:
                    syncing[name] = (server, float(server.disk_bytes))
        admit()
    return ready


def _sync_rates(
    syncing: Mapping[str, tuple[FloorServer, float]], waves: Mapping[str, FloorWave]
) -> dict[str, float]:
    """Bytes per second each syncing server gets: its wave's link over the wave's syncers."""
    sharing: dict[str, int] = {}
    for server, _left in syncing.values():
        sharing[server.wave] = sharing.get(server.wave, 0) + 1
    rates: dict[str, float] = {}
    for name, (server, _left) in syncing.items():
        wave = waves.get(server.wave)
        link = wave.bytes_per_second if wave is not None else math.inf
        rates[name] = math.inf if link <= 0 or math.isinf(link) else link / sharing[server.wave]
    return rates


def launch_schedule(
    ready_seconds: Mapping[str, float],
    servers: Sequence[FloorServer],
    waves: Mapping[str, FloorWave],
    timings: FloorTimings,
    quotas: LaneQuotas,
    *,
    servers_per_job: int | None = None,
) -> tuple[dict[str, float], dict[str, float], int, int]:
    """The greedy batch schedule of test then cutover jobs under one lane's job quotas.

    Returns (test job end per server, cutover job end per server, test jobs, cutover jobs).
    """
    per_job = max(1, servers_per_job if servers_per_job is not None else quotas.servers_per_job)
    job_slots = max(1, quotas.concurrent_jobs)
    server_room = max(1, quotas.servers_in_active_jobs)
    by_name = {server.name: server for server in servers}
    order_of = {server.name: order for order, server in enumerate(servers)}  # ties go by it
    waiting: dict[JobKind, list[tuple[float, int, _Waiting]]] = {"test": [], "cutover": []}
    for order, server in enumerate(servers):
        item = _Waiting(
            ready_seconds[server.name],
            order,
            server.name,
            timings.test_launch_seconds.get(server.os_family, 0.0),
        )
        heapq.heappush(waiting["test"], (item.eligible_seconds, order, item))
    running: list[tuple[float, int, JobKind, tuple[str, ...]]] = []  # (ends, seq, kind, names)
    ended: dict[JobKind, dict[str, float]] = {"test": {}, "cutover": {}}
    jobs = {"test": 0, "cutover": 0}
    servers_active = 0
    now = 0.0
    sequence = 0
    while running or waiting["test"] or waiting["cutover"]:
        while running and running[0][0] <= now:
            ends, _seq, kind, names = heapq.heappop(running)
            servers_active -= len(names)
            for name in names:
                ended[kind][name] = ends
                if kind == "test":
                    server = by_name[name]
                    wave = waves.get(server.wave)
                    opens = wave.window_start_seconds if wave is not None else 0.0
                    cutover = _Waiting(
                        max(ends, opens),
                        order_of[name],
                        name,
                        timings.cutover_launch_seconds.get(server.os_family, 0.0),
                    )
                    heapq.heappush(
                        waiting["cutover"], (cutover.eligible_seconds, cutover.order, cutover)
                    )
        while len(running) < job_slots and servers_active < server_room:
            launching = _earliest_kind(waiting, now)
            if launching is None:
                break
            room = min(per_job, server_room - servers_active)
            batch: list[_Waiting] = []
            queue = waiting[launching]
            while queue and queue[0][0] <= now and len(batch) < room:
                batch.append(heapq.heappop(queue)[2])
            duration = max(item.duration_seconds for item in batch)
            sequence += 1
            heapq.heappush(
                running, (now + duration, sequence, launching, tuple(item.name for item in batch))
            )
            jobs[launching] += 1
            servers_active += len(batch)
        upcoming = [running[0][0]] if running else []
        upcoming += [held[0][0] for held in waiting.values() if held and held[0][0] > now]
        if not upcoming:
            break
        now = min(upcoming)
    return ended["test"], ended["cutover"], jobs["test"], jobs["cutover"]


def _earliest_kind(
    waiting: Mapping[JobKind, list[tuple[float, int, _Waiting]]], now: float
) -> JobKind | None:
    """The kind whose longest-waiting eligible server waited longest (cutovers win ties)."""
    eligible = [
        (queue[0][0], 0 if kind == "cutover" else 1, kind)
        for kind, queue in waiting.items()
        if queue and queue[0][0] <= now
    ]
    return min(eligible)[2] if eligible else None


def lane_floor(
    servers: Sequence[FloorServer],
    waves: Mapping[str, FloorWave],
    quotas: LaneQuotas,
    timings: FloorTimings,
    *,
    servers_per_job: int | None = None,
) -> LaneFloor:
    """One lane's floor: replication, then test and cutover jobs (see the module docstring)."""
    per_job = servers_per_job if servers_per_job is not None else quotas.servers_per_job
    if not servers:
        return LaneFloor(0, per_job, 0.0, 0.0, 0.0, 0, 0)
    ready = replication_ready_seconds(
        servers,
        waves,
        initiation_seconds=timings.replication_initiation_seconds,
        replicating_servers=quotas.replicating_servers,
    )
    tests, cutovers, test_jobs, cutover_jobs = launch_schedule(
        ready, servers, waves, timings, quotas, servers_per_job=servers_per_job
    )
    return LaneFloor(
        servers=len(servers),
        servers_per_job=per_job,
        replication_done_seconds=max(ready.values()),
        test_launches_done_seconds=max(tests.values()),
        cutovers_done_seconds=max(cutovers.values()),
        test_jobs=test_jobs,
        cutover_jobs=cutover_jobs,
    )
