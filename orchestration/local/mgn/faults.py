"""Fault injection: what can go wrong in MGN, on demand, for the pipeline's failure paths.

emulator.faults.stall_replication(server_id)        STALLED + dataReplicationError, lag grows
emulator.faults.clear_replication_stall(server_id)  BACKLOG drains, then CONTINUOUS
emulator.faults.fail_next_launch(server_id)         next launch: FAILED + LAUNCH_FAILED, no instance
emulator.faults.fail_launch_jobs(0.1, seed=7)       a share of launch jobs fail as a whole
emulator.faults.throttle_next_requests(5)           the next 5 requests get ThrottlingException
emulator.faults.throttle_for(timedelta(minutes=5))  every request for 5 simulated minutes
emulator.faults.apply_quota_pressure(active_jobs=19) as if 19 jobs were already running
emulator.faults.fail_post_launch_action(server_id, "join-domain", reason="...")
                                                    that action FAILS on every launch
                                                    (times_out=True: runs to its timeout)
emulator.faults.clear()                             everything back to normal

Besides these one-off faults, `EmulatorSettings.launch_failure_rate` fails a share of all
launches by chance: each server's launch fails with that probability, drawn from the seed, the
server's ID, the launch kind and the server's attempt number (`launch_fails_by_chance`), so a
rerun of the same input fails the same launches. Both take the same failed-launch path.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.errors import (
    SOURCE_SERVER_RESOURCE,
    ConflictError,
)
from orchestration.local.mgn.model import MgnState, SourceServerRecord
from orchestration.local.mgn.post_launch import ActionFault
from orchestration.local.mgn.replication import ReplicationStall
from orchestration.local.mgn.states import LaunchType, ReplicationError
from orchestration.local.mgn.throttling import RequestGate


@dataclass(frozen=True, slots=True)
class LaunchFailure:
    """Fail this server's next launch of `launch_type` (any type if None)."""

    launch_type: LaunchType | None
    raw_error: str


RANDOM_LAUNCH_FAILURE_ERROR = (
    "Failed to launch target instance: conversion failed (emulated launch_failure_rate)"
)
WHOLE_JOB_FAILURE_ERROR = (
    "Failed to launch target instances: the job's conversion failed (emulated whole-job failure)"
)


def job_fails_by_chance(*, rate: float, seed: int, ordinal: int) -> bool:
    """Whether the `ordinal`-th launch job (counted as each reaches its first conversion)
    fails as a whole: a draw from a hash of the seed and the ordinal, so a rerun fails the
    same jobs of its sequence whatever their (random) IDs."""
    if rate <= 0.0:
        return False
    key = f"{seed}:job:{ordinal}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64 < rate


def launch_fails_by_chance(
    *, rate: float, seed: int, source_server_id: str, launch_type: LaunchType, attempt: int
) -> bool:
    """Whether this launch fails under a failure rate: a uniform draw from a hash of exactly
    these inputs (not Python's `hash`, which varies per process), so reruns agree."""
    if rate <= 0.0:
        return False
    key = f"{seed}:{source_server_id}:{launch_type.value}:{attempt}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return draw < rate


@dataclass(slots=True)
class FaultState:
    """Faults the job engine and quota checks consult (mutated under the emulator lock).

    Attributes:
        launch_failures: one-off failures queued by `FaultInjector.fail_next_launch`.
        post_launch_faults: post-launch actions set to fail
            (`FaultInjector.fail_post_launch_action`).
        launch_failure_rate: `EmulatorSettings.launch_failure_rate` (not reset by `clear`).
        launch_failure_seed: the seed of its draws (`EmulatorSettings.seed`, or 0).
    """

    launch_failures: dict[str, list[LaunchFailure]] = field(default_factory=dict)
    phantom_active_jobs: int = 0
    phantom_servers_in_active_jobs: int = 0
    launch_failure_rate: float = 0.0
    launch_failure_seed: int = 0
    # `FaultInjector.fail_launch_jobs`: the share of launch jobs that fail as a whole.
    job_failure_rate: float = 0.0
    job_failure_seed: int = 0
    # Launch job ID -> whether it fails as a whole (drawn once, at its first conversion).
    job_failure_verdicts: dict[str, bool] = field(default_factory=dict)
    # Source server ID -> post-launch action name -> how it fails on every launch.
    post_launch_faults: dict[str, dict[str, ActionFault]] = field(default_factory=dict)

    def _job_fails(self, job_id: str) -> bool:
        if self.job_failure_rate <= 0.0:
            return False
        verdict = self.job_failure_verdicts.get(job_id)
        if verdict is None:
            verdict = job_fails_by_chance(
                rate=self.job_failure_rate,
                seed=self.job_failure_seed,
                ordinal=len(self.job_failure_verdicts) + 1,
            )
            self.job_failure_verdicts[job_id] = verdict
        return verdict

    def take_launch_failure(
        self, source_server_id: str, launch_type: LaunchType, *, attempt: int, job_id: str = ""
    ) -> LaunchFailure | None:
        """How this launch (the server's `attempt`-th of its kind, in job `job_id`) fails, if
        it does: its whole job's failure first, then a queued one-off failure, else a failure
        by chance under the failure rate."""
        if job_id and self._job_fails(job_id):
            return LaunchFailure(launch_type, WHOLE_JOB_FAILURE_ERROR)
        pending = self.launch_failures.get(source_server_id, [])
        for index, failure in enumerate(pending):
            if failure.launch_type in (None, launch_type):
                return pending.pop(index)
        if launch_fails_by_chance(
            rate=self.launch_failure_rate,
            seed=self.launch_failure_seed,
            source_server_id=source_server_id,
            launch_type=launch_type,
            attempt=attempt,
        ):
            return LaunchFailure(launch_type, RANDOM_LAUNCH_FAILURE_ERROR)
        return None


class FaultInjector:
    """The Python API for faults; every method is thread-safe and takes effect at once."""

    def __init__(
        self,
        *,
        state: MgnState,
        faults: FaultState,
        gate: RequestGate,
        clock: SimulatedClock,
        lock: threading.RLock,
        settle: Callable[[datetime], None],
    ) -> None:
        self._state = state
        self._faults = faults
        self._gate = gate
        self._clock = clock
        self._lock = lock
        self._settle = settle

    def stall_replication(
        self,
        source_server_id: str,
        *,
        error: ReplicationError = ReplicationError.UNSTABLE_NETWORK,
        raw_error: str = "Replication server lost its connection to the agent",
        ends_on_retry: bool = True,
    ) -> None:
        """Stall replication from now until `clear_replication_stall` (or, if `ends_on_retry`,
        until the pipeline calls RetryDataReplication). Stalling a stalled server is a no-op.
        """
        with self._lock:
            now = self._clock.now()
            self._settle(now)
            server = self._server(source_server_id)
            if server.replication_disconnected_at is not None:
                raise ConflictError(
                    f"{source_server_id} no longer replicates",
                    resource_id=source_server_id,
                    resource_type=SOURCE_SERVER_RESOURCE,
                )
            if server.open_stall() is None:
                server.stalls.append(ReplicationStall(now, None, error, raw_error, ends_on_retry))

    def clear_replication_stall(self, source_server_id: str) -> None:
        """End the server's stall now; a no-op if it is not stalled."""
        with self._lock:
            now = self._clock.now()
            self._settle(now)
            end_stall(self._server(source_server_id), now)

    def fail_next_launch(
        self,
        source_server_id: str,
        *,
        launch_type: LaunchType | None = None,
        raw_error: str = "Failed to launch target instance: conversion server timed out",
    ) -> None:
        """Make the server's next test or cutover launch (or either, if None) fail; stackable."""
        with self._lock:
            self._server(source_server_id)
            self._faults.launch_failures.setdefault(source_server_id, []).append(
                LaunchFailure(launch_type, raw_error)
            )

    def fail_launch_jobs(self, rate: float, *, seed: int = 0) -> None:
        """Make a share (`rate`, drawn from `seed` and each job's place in the sequence) of
        the launch jobs from now on fail as a whole, as MGN reports such a job: every participating
        server FAILED with a LAUNCH_FAILED log entry and no instance, the job COMPLETED
        (MGN's jobs end COMPLETED; their servers say how). 0 stops it."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("the job failure rate must be between 0 and 1")
        with self._lock:
            self._faults.job_failure_rate = rate
            self._faults.job_failure_seed = seed

    def jobs_failed_whole(self) -> list[str]:
        """The launch jobs `fail_launch_jobs` failed as a whole so far, in order."""
        with self._lock:
            return [job for job, fails in self._faults.job_failure_verdicts.items() if fails]

    def fail_post_launch_action(
        self,
        source_server_id: str,
        action_name: str,
        *,
        reason: str = "Command failed: the document exited with status 1",
        times_out: bool = False,
    ) -> None:
        """Make the server's post-launch action named `action_name` fail on every instance
        launched from now on: FAILED with `reason` after it ran, or (`times_out`) IN_PROGRESS
        until its ``timeoutSeconds``, then FAILED with SSM's timeout reason. The action need
        not exist yet (the pipeline puts it later)."""
        with self._lock:
            self._server(source_server_id)
            self._faults.post_launch_faults.setdefault(source_server_id, {})[action_name] = (
                ActionFault(times_out=times_out, reason=reason)
            )

    def throttle_next_requests(self, count: int) -> None:
        """Answer the next `count` requests with ThrottlingException (429, Retry-After: 1)."""
        self._gate.force_next(count)

    def throttle_for(self, duration: timedelta) -> None:
        """Answer every request with ThrottlingException for `duration` of simulated time."""
        self._gate.force_until(self._clock.now() + duration)

    def apply_quota_pressure(
        self, *, active_jobs: int = 0, servers_in_active_jobs: int = 0
    ) -> None:
        """Count phantom jobs and servers against the job quotas, as another tenant would."""
        if active_jobs < 0 or servers_in_active_jobs < 0:
            raise ValueError("quota pressure cannot be negative")
        with self._lock:
            self._faults.phantom_active_jobs = active_jobs
            self._faults.phantom_servers_in_active_jobs = servers_in_active_jobs

    def clear(self) -> None:
        """Remove every fault: stalls end now; launch and post-launch action failures and
        throttling are dropped (actions already running keep their planned outcome)."""
        self._gate.force_next(0)
        self._gate.force_until(None)
        with self._lock:
            now = self._clock.now()
            self._settle(now)
            for server in self._state.servers.values():
                end_stall(server, now)
            self._faults.launch_failures.clear()
            self._faults.job_failure_rate = 0.0
            self._faults.post_launch_faults.clear()
            self._faults.phantom_active_jobs = self._faults.phantom_servers_in_active_jobs = 0

    def _server(self, source_server_id: str) -> SourceServerRecord:
        return self._state.server(source_server_id)


def end_stall(server: SourceServerRecord, now: datetime) -> bool:
    """End the server's open stall at `now`; returns whether there was one."""
    stall = server.open_stall()
    if stall is None:
        return False
    server.stalls[server.stalls.index(stall)] = stall.ended(now)
    return True
