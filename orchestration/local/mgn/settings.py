"""Tunables of the emulator: timing model, quotas, request rate, identity.

Defaults follow AWS where AWS publishes a figure (quotas) and are plausible, documented guesses
where it does not (durations, request rate). All are simulated-time durations except the request
rate, which limits real requests per real second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

# When a server's share of the link is no faster than the source writes, its change rate is
# clamped to this share of the bandwidth (see `ReplicationTiming.with_bandwidth`).
CLAMPED_CHANGE_RATE_SHARE = 0.5

LAUNCH_KINDS = frozenset({"test", "cutover"})
OS_FAMILIES = frozenset({"linux", "windows"})


@dataclass(frozen=True, slots=True)
class ReplicationTiming:
    """How fast agent-based replication progresses (simulated time).

    Attributes:
        initiation: agent install to first byte (security group, replication server, pairing).
        bandwidth_bytes_per_second: initial sync and backlog drain rate (100 MB/s by default).
        change_rate_bytes_per_second: how fast the source writes; sets backlog growth during a
            stall in continuous replication, and so the lag reported afterwards.
        snapshot_interval: how often `lastSnapshotDateTime` moves while continuous.
    """

    initiation: timedelta = timedelta(minutes=10)
    bandwidth_bytes_per_second: float = 100e6
    change_rate_bytes_per_second: float = 1e6
    snapshot_interval: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.bandwidth_bytes_per_second <= 0:
            raise ValueError("bandwidth_bytes_per_second must be positive")
        if not 0 < self.change_rate_bytes_per_second < self.bandwidth_bytes_per_second:
            raise ValueError("change_rate_bytes_per_second must be positive and below bandwidth")
        if self.initiation <= timedelta() or self.snapshot_interval <= timedelta():
            raise ValueError("initiation and snapshot_interval must be positive")

    def with_bandwidth(self, bytes_per_second: float) -> ReplicationTiming:
        """This timing at another bandwidth: one server's share of its wave's link.

        The change rate must stay below the bandwidth, or the backlog of a stall would never
        drain. A share that small (the source writes as fast as its share carries) is a server
        MGN would report NOT_CONVERGING; the emulator keeps it converging instead by clamping
        that server's change rate to `CLAMPED_CHANGE_RATE_SHARE` of its bandwidth.

        Raises:
            ValueError: `bytes_per_second` is not positive.
        """
        if bytes_per_second <= 0:
            raise ValueError("replication_bytes_per_second must be positive")
        change_rate = self.change_rate_bytes_per_second
        if change_rate >= bytes_per_second:
            change_rate = bytes_per_second * CLAMPED_CHANGE_RATE_SHARE
        return replace(
            self,
            bandwidth_bytes_per_second=bytes_per_second,
            change_rate_bytes_per_second=change_rate,
        )


@dataclass(frozen=True, slots=True)
class JobTiming:
    """How long each part of a job takes (simulated time), between its transitions.

    A launch job is PENDING for `pending`, then STARTED through snapshot, conversion and boot,
    then COMPLETED; a terminate job is PENDING for `pending`, then STARTED for `terminate`.
    """

    pending: timedelta = timedelta(seconds=30)
    snapshot: timedelta = timedelta(minutes=2)
    conversion: timedelta = timedelta(minutes=5)
    boot: timedelta = timedelta(minutes=3)
    terminate: timedelta = timedelta(minutes=1)

    @property
    def launch_total(self) -> timedelta:
        return self.pending + self.snapshot + self.conversion + self.boot

    @property
    def terminate_total(self) -> timedelta:
        return self.pending + self.terminate


@dataclass(frozen=True, slots=True)
class PostLaunchTiming:
    """How long post-launch actions take on a launched instance (simulated time).

    Attributes:
        ssm_agent_discovery: instance booted to its SSM agent seen by MGN (the first action
            starts then).
        action: how long each action runs when it succeeds or fails; an action whose
            ``timeoutSeconds`` is shorter (or a fault's timing-out action) runs until its
            timeout and fails with SSM's timeout reason.
    """

    ssm_agent_discovery: timedelta = timedelta(minutes=1)
    action: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        if self.ssm_agent_discovery < timedelta() or self.action <= timedelta():
            raise ValueError("ssm_agent_discovery cannot be negative and action must be positive")


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """MGN's per-account, per-Region quotas (AWS General Reference).

    Attributes:
        concurrent_jobs: jobs PENDING or STARTED at once (not adjustable).
        servers_per_job: source servers in one job (not adjustable).
        servers_in_active_jobs: source servers across all active jobs (not adjustable).
        non_archived_servers: source servers not archived (adjustable in AWS).
        replicating_servers: "Actively replicating source servers" (adjustable in AWS). A
            non-archived server holds a slot from agent install until its replication ends
            (FinalizeCutover, DisconnectFromService, MarkAsArchived); a server added while
            every slot is taken waits, in the order added, INITIATING at the WAIT step with no
            progress, and starts replicating at the instant a slot frees (see `slots`).
        active_waves: waves not archived (not adjustable).
        active_applications: applications not archived (not adjustable).
        servers_per_application: source servers in one application (not adjustable).
    """

    concurrent_jobs: int = 20
    servers_per_job: int = 200
    servers_in_active_jobs: int = 200
    non_archived_servers: int = 4000
    replicating_servers: int = 150
    active_waves: int = 200
    active_applications: int = 200
    servers_per_application: int = 200

    def __post_init__(self) -> None:
        if self.replicating_servers < 1:
            raise ValueError("replicating_servers must be at least 1")


@dataclass(frozen=True, slots=True)
class RequestRateLimit:
    """A token bucket over real time: `requests_per_second` sustained, `burst` at once.

    AWS publishes no request rate for MGN; the default is generous so only a deliberate setting
    or a fault throttles.
    """

    requests_per_second: float = 500.0
    burst: int = 1000

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0 or self.burst < 1:
            raise ValueError("requests_per_second must be positive and burst at least 1")


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """Everything configurable about one emulated MGN account and Region.

    Attributes:
        account_id: the account in ARNs (moto's default account by default).
        region: the Region in ARNs.
        seed: seeds source server and job IDs; None draws fresh IDs per emulator, so two
            emulators sharing one moto never collide on launch template names.
        default_page_size: page size when a request gives no `maxResults`.
        initialized: False makes every call but InitializeService raise
            UninitializedAccountException, as in an account that never opened MGN.
        check_responses: check every successful response against the model (a mismatch is
            answered with a 500). Costs about 0.2 ms per source server described; turn it off
            only for load benchmarks with thousands of servers.
        background_settle_seconds: while serving on a running clock (speed > 0), apply due
            job transitions every this many real seconds even if no MGN request arrives, so EC2
            instances appear and disappear in moto on time; None leaves it all to requests.
        replication: replication timing; `add_source_server(replication_bytes_per_second=)`
            gives one server a bandwidth of its own.
        jobs: job timing: every terminate job, and every launch `launch_timings` does not name.
        launch_timings: job timing of a launch by (launch kind, OS family), e.g.
            `{("cutover", "windows"): JobTiming(conversion=timedelta(minutes=20))}`; kinds are
            "test" and "cutover", families "linux" and "windows". In a job with several
            servers each server moves on its own timing; the job ends with the last of them.
        launch_failure_rate: the probability (0..1) that one server's launch fails (FAILED,
            LAUNCH_FAILED, no instance), drawn from `seed` (0 when None), the server's ID, the
            launch kind and the server's attempt number of that kind: the same input fails the
            same launches on every run.
        post_launch: how long post-launch actions take (see `post_launch`).
        quotas: MGN's quotas in this account and Region.
        request_rate: the token bucket over real requests.
    """

    account_id: str = "123456789012"
    region: str = "us-east-1"
    seed: int | None = None
    default_page_size: int = 1000
    initialized: bool = True
    check_responses: bool = True
    background_settle_seconds: float | None = 0.5
    replication: ReplicationTiming = field(default_factory=ReplicationTiming)
    jobs: JobTiming = field(default_factory=JobTiming)
    launch_timings: Mapping[tuple[str, str], JobTiming] = field(default_factory=dict)
    launch_failure_rate: float = 0.0
    post_launch: PostLaunchTiming = field(default_factory=PostLaunchTiming)
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    request_rate: RequestRateLimit = field(default_factory=RequestRateLimit)

    def __post_init__(self) -> None:
        unknown = [
            key
            for key in self.launch_timings
            if len(key) != 2 or key[0] not in LAUNCH_KINDS or key[1] not in OS_FAMILIES
        ]
        if unknown:
            raise ValueError(
                f"launch_timings keys are (test|cutover, linux|windows); got {sorted(unknown)}"
            )
        if not 0.0 <= self.launch_failure_rate <= 1.0:
            raise ValueError("launch_failure_rate must be between 0 and 1")

    def launch_timing(self, launch_kind: str, os_family: str) -> JobTiming:
        """The timing of one server's launch of `launch_kind` ("test" or "cutover") on
        `os_family` ("linux" or "windows"): `launch_timings`' entry, else `jobs`."""
        return self.launch_timings.get((launch_kind, os_family), self.jobs)
