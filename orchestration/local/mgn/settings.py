"""Tunables of the emulator: timing model, quotas, request rate, identity.

Defaults follow AWS where AWS publishes a figure (quotas) and are plausible, documented guesses
where it does not (durations, request rate). All are simulated-time durations except the request
rate, which limits real requests per real second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


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
class QuotaLimits:
    """MGN's per-account, per-Region quotas (AWS General Reference; none is adjustable)."""

    concurrent_jobs: int = 20
    servers_per_job: int = 200
    servers_in_active_jobs: int = 200
    non_archived_servers: int = 4000


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
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    request_rate: RequestRateLimit = field(default_factory=RequestRateLimit)
