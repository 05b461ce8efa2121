"""The emulator's mutable state: source servers, jobs and their log, in creation order.

Records are plain dataclasses mutated only under the emulator's lock by `operations` and
`jobs`; what leaves the lock is either wire JSON (`rendering`) or the frozen snapshots at the
bottom of this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestration.local.mgn.errors import SOURCE_SERVER_RESOURCE, ResourceNotFoundError
from orchestration.local.mgn.post_launch import PostLaunchRun, ServerActionRecord
from orchestration.local.mgn.replication import ReplicationPlan, ReplicationStall
from orchestration.local.mgn.settings import QuotaLimits
from orchestration.local.mgn.slots import ReplicationSlots
from orchestration.local.mgn.states import (
    FirstBoot,
    InitiatedBy,
    JobLogEvent,
    JobStatus,
    JobType,
    LaunchStatus,
    LaunchType,
    LifeCycleState,
    OsFamily,
)

# The launch kind of a job, by what started it (a TERMINATE job has none).
LAUNCH_TYPE_OF: Mapping[InitiatedBy, LaunchType] = {
    InitiatedBy.START_TEST: LaunchType.TEST,
    InitiatedBy.START_CUTOVER: LaunchType.CUTOVER,
}


@dataclass(slots=True)
class LaunchMilestones:
    """`lifeCycle.lastTest` / `lifeCycle.lastCutover`."""

    initiated_at: datetime | None = None
    job_id: str | None = None
    reverted_at: datetime | None = None
    finalized_at: datetime | None = None

    def initiate(self, at: datetime, job_id: str) -> None:
        self.initiated_at, self.job_id = at, job_id
        self.reverted_at = self.finalized_at = None


@dataclass(slots=True)
class LaunchedInstanceRecord:
    ec2_instance_id: str
    job_id: str
    launch_type: LaunchType
    first_boot: FirstBoot = FirstBoot.WAITING


@dataclass(slots=True)
class LaunchConfigurationRecord:
    """MGN's launch settings; subnet, security groups, type and profile live in the template."""

    name: str
    ec2_launch_template_id: str
    launch_disposition: str = "STARTED"
    right_sizing: str = "BASIC"
    copy_private_ip: bool = False
    copy_tags: bool = False
    os_byol: bool = False
    boot_mode: str = "USE_SOURCE"
    post_launch_actions: dict[str, object] | None = None
    enable_map_auto_tagging: bool = False
    map_auto_tagging_mpe_id: str | None = None
    map_auto_tagging_key: str | None = None


@dataclass(slots=True)
class SourceServerRecord:
    source_server_id: str
    arn: str
    sequence: int
    hostname: str | None
    fqdn: str | None
    user_provided_id: str | None
    application_id: str | None
    os_family: OsFamily
    os_full_string: str
    cpu_cores: int
    ram_bytes: int
    recommended_instance_type: str
    tags: dict[str, str]
    added_at: datetime
    replication: ReplicationPlan
    launch_configuration: LaunchConfigurationRecord
    lifecycle_state: LifeCycleState
    is_archived: bool = False
    stalls: list[ReplicationStall] = field(default_factory=list)
    replication_disconnected_at: datetime | None = None
    last_test: LaunchMilestones = field(default_factory=LaunchMilestones)
    last_cutover: LaunchMilestones = field(default_factory=LaunchMilestones)
    launched_instance: LaunchedInstanceRecord | None = None
    active_job_id: str | None = None
    # Launches of each kind so far (what `launch_failure_rate` draws on, with the ID).
    launch_attempts: dict[LaunchType, int] = field(default_factory=dict)
    # The source's NICs as the agent reports them: each one's private IPv4 address, the
    # primary first (`sourceProperties.networkInterfaces`).
    private_ips: tuple[str, ...] = ()
    # The replication settings' EBS key (`ebsEncryptionKeyArn`; None: EBS's default key),
    # copied from the replication template when the agent was installed, as MGN does.
    ebs_encryption_key_arn: str | None = None
    # Post-launch actions (PutSourceServerAction) by action ID, in the order first put.
    actions: dict[str, ServerActionRecord] = field(default_factory=dict)

    def count_launch_attempt(self, launch_type: LaunchType) -> int:
        """Count one more launch of `launch_type`; returns its number (1 for the first)."""
        self.launch_attempts[launch_type] = self.launch_attempts.get(launch_type, 0) + 1
        return self.launch_attempts[launch_type]

    @property
    def disk_device_names(self) -> tuple[str, ...]:
        if self.os_family is OsFamily.WINDOWS:
            return tuple(f"\\\\.\\PHYSICALDRIVE{index}" for index in range(self.disk_count))
        return tuple(f"/dev/sd{chr(ord('a') + index)}" for index in range(self.disk_count))

    @property
    def disk_count(self) -> int:
        return len(self.replication.disk_bytes)

    def open_stall(self) -> ReplicationStall | None:
        return next((stall for stall in self.stalls if stall.ended_at is None), None)


@dataclass(slots=True)
class ParticipantRecord:
    source_server_id: str
    launch_status: LaunchStatus | None = LaunchStatus.PENDING
    launched_ec2_instance_id: str | None = None
    attempt: int = 1  # the server's launch of this kind this is (1 = its first)
    # The post-launch actions run on the launched instance (None: none, or not launched yet).
    post_launch: PostLaunchRun | None = None


@dataclass(frozen=True, slots=True)
class JobLogEntry:
    at: datetime
    event: JobLogEvent
    source_server_id: str | None = None
    target_instance_id: str | None = None
    raw_error: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduledTransition:
    """A point on a job's timeline at which `jobs.JobEngine` moves it on: the whole job's
    (`source_server_id` None), or one participating server's."""

    at: datetime
    name: str
    source_server_id: str | None = None


@dataclass(slots=True)
class JobRecord:
    job_id: str
    arn: str
    sequence: int
    job_type: JobType
    initiated_by: InitiatedBy
    created_at: datetime
    tags: dict[str, str]
    participants: dict[str, ParticipantRecord]
    timeline: tuple[ScheduledTransition, ...]
    status: JobStatus = JobStatus.PENDING
    ended_at: datetime | None = None
    log: list[JobLogEntry] = field(default_factory=list)
    next_transition: int = 0

    @property
    def is_active(self) -> bool:
        return self.status is not JobStatus.COMPLETED

    @property
    def launch_type(self) -> LaunchType | None:
        return LAUNCH_TYPE_OF.get(self.initiated_by)

    def due_transition(self, now: datetime) -> ScheduledTransition | None:
        if (
            self.next_transition < len(self.timeline)
            and self.timeline[self.next_transition].at <= now
        ):
            return self.timeline[self.next_transition]
        return None


@dataclass(slots=True)
class WaveRecord:
    """An MGN wave: a named group of applications (`CreateWave`)."""

    wave_id: str
    arn: str
    sequence: int
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    modified_at: datetime
    is_archived: bool = False


@dataclass(slots=True)
class ApplicationRecord:
    """An MGN application: a named group of source servers, in at most one wave."""

    application_id: str
    arn: str
    sequence: int
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    modified_at: datetime
    wave_id: str | None = None
    is_archived: bool = False


@dataclass(slots=True)
class MgnState:
    """All servers and jobs of one emulated account and Region."""

    servers: dict[str, SourceServerRecord] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    waves: dict[str, WaveRecord] = field(default_factory=dict)
    applications: dict[str, ApplicationRecord] = field(default_factory=dict)
    active_job_ids: set[str] = field(default_factory=set)
    awaiting_first_sync: set[str] = field(default_factory=set)
    quota_rejections: list[QuotaRejection] = field(default_factory=list)
    replication_slots: ReplicationSlots = field(
        default_factory=lambda: ReplicationSlots(QuotaLimits().replicating_servers)
    )
    # The Region's replication template's EBS key (None: EBS's default key): what a newly
    # installed agent's server gets; changing it changes no existing server.
    template_ebs_encryption_key_arn: str | None = None
    next_sequence: int = 1

    def server(self, source_server_id: str) -> SourceServerRecord:
        """The server, or MGN's ResourceNotFoundException for it."""
        server = self.servers.get(source_server_id)
        if server is None:
            raise ResourceNotFoundError(
                f"Source server {source_server_id} not found",
                resource_id=source_server_id,
                resource_type=SOURCE_SERVER_RESOURCE,
            )
        return server

    def take_sequence(self) -> int:
        sequence = self.next_sequence
        self.next_sequence += 1
        return sequence

    def active_jobs(self) -> list[JobRecord]:
        return [self.jobs[job_id] for job_id in self.active_job_ids]

    def servers_in_active_jobs(self) -> int:
        return sum(len(job.participants) for job in self.active_jobs())

    def non_archived_count(self) -> int:
        return sum(not server.is_archived for server in self.servers.values())


# --- Snapshots handed out through the Python API (immutable, safe outside the lock) ---


@dataclass(frozen=True, slots=True)
class SourceServer:
    """A seeded source server, as the runtime needs to know it."""

    source_server_id: str
    arn: str
    hostname: str | None
    fqdn: str | None
    user_provided_id: str | None
    os_family: OsFamily
    ec2_launch_template_id: str
    disk_bytes: tuple[int, ...]
    is_archived: bool


@dataclass(frozen=True, slots=True)
class QuotaRejection:
    """One ServiceQuotaExceededException answered to StartTest, StartCutover or
    TerminateTargetInstances: a wait the pipeline had to sit out (the rehearsal report's).

    Attributes:
        account_id: the lane's account.
        region: the lane's Region.
        operation: the wire operation refused.
        source_server_ids: the request's servers, in its order.
        quota_code: which quota was full (`CONCURRENT_JOBS_QUOTA`, ...).
        at: the simulated instant of the answer.
    """

    account_id: str
    region: str
    operation: str
    source_server_ids: tuple[str, ...]
    quota_code: str
    at: datetime

    @property
    def lane_label(self) -> str:
        """`account/region`, as `LaneId.label`."""
        return f"{self.account_id}/{self.region}"


@dataclass(frozen=True, slots=True)
class ReplicationTimeline:
    """When one server's replication got going, for the rehearsal report.

    Attributes:
        agent_installed_at: the agent install (the server was added).
        started_at: when it got a replication slot and replication started; later than the
            install only if it waited for one; None while it still waits.
        ready_at: its first CONTINUOUS (launchable) instant as its plan and stalls give it,
            possibly in the simulated future; None while that is unknown (it waits for a
            slot, an open stall blocks it) or if replication ended before it got there.
    """

    agent_installed_at: datetime
    started_at: datetime | None
    ready_at: datetime | None


@dataclass(frozen=True, slots=True)
class ParticipantSummary:
    source_server_id: str
    launch_status: LaunchStatus | None
    launched_ec2_instance_id: str | None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job for reports and benchmarks."""

    job_id: str
    job_type: JobType
    initiated_by: InitiatedBy
    status: JobStatus
    created_at: datetime
    ended_at: datetime | None
    participants: tuple[ParticipantSummary, ...]


def summarize_job(job: JobRecord) -> JobSummary:
    return JobSummary(
        job_id=job.job_id,
        job_type=job.job_type,
        initiated_by=job.initiated_by,
        status=job.status,
        created_at=job.created_at,
        ended_at=job.ended_at,
        participants=tuple(
            ParticipantSummary(p.source_server_id, p.launch_status, p.launched_ec2_instance_id)
            for p in job.participants.values()
        ),
    )
