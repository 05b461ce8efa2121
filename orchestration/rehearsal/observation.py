"""What one rehearsal of the embedded system recorded: plain data, no behaviour.

``run`` fills it in from the running system (the state table's step history, the MGN
emulator's jobs and quota rejections, the Slack stand-in, the API call counter); ``report``
turns it into the prediction. Every instant is simulated time (the virtual clock's), every
duration simulated seconds; ``wall_seconds`` is the only real-time figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

LaunchKind = Literal["test", "cutover", "terminate"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One status event of a migration (the state table's history, oldest first)."""

    step: str  # orchestration.events.Step value, e.g. "StartCutover"
    status: str  # STARTED | IN_PROGRESS | WAITING | SUCCEEDED | FAILED | SKIPPED
    at: datetime
    message: str = ""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One MGN job a VM's source server took part in (the emulator's own record)."""

    job_id: str
    kind: LaunchKind
    created_at: datetime
    ended_at: datetime | None
    servers_in_job: int  # participating servers: 1 in the per-VM design
    launch_status: str  # this server's participatingServers[].launchStatus at the end


@dataclass(frozen=True, slots=True)
class VmObservation:
    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str
    account_id: str
    region: str
    os_family: str
    disk_bytes: int  # the source's disks in total (replication reads them all)
    source_server_id: str
    final_status: str  # the execution's: SUCCEEDED | FAILED | TIMED_OUT | ABORTED | RUNNING
    record_status: str  # the state table's: COMPLETED | ROLLED_BACK | ...
    steps: tuple[StepRecord, ...]
    jobs: tuple[JobRecord, ...]
    # MGN answered ServiceQuotaExceededException to a StartTest/StartCutover for this server
    # at these instants (each a retry the state machine waited for).
    quota_rejections: tuple[datetime, ...] = ()
    replication_started_at: datetime | None = None  # first byte (after any staging-slot wait)
    replication_ready_at: datetime | None = None  # first CONTINUOUS: launchable
    slack_calls: int = 0  # Slack Web API calls the bot made for this migration's thread
    # The same calls by method (chat.postMessage, chat.update, ...).
    slack_calls_by_method: Mapping[str, int] = field(default_factory=dict)
    slack_delays_seconds: tuple[float, ...] = ()  # each event -> the root edit that showed it
    slack_final_shown: bool = False  # the thread's root shows the migration's final state
    # What the bot's thread item says at the end (why a final state is not shown: the event
    # never folded, or folded with its root still owed): "" when there is no item.
    slack_thread: str = ""
    # The RollbackStarted event's instant (the history records only Rollback's SUCCEEDED):
    # where the step the migration failed in ends. None: the report infers it (see report).
    rollback_started_at: datetime | None = None
    # The migration's (last) approval: when the pipeline requested it (the ApprovalRequested
    # event's instant), when its message with the Approve button appeared in Slack (None: it
    # never did) and how it ended (PENDING | APPROVED | REJECTED | EXPIRED; "": none requested).
    approval_requested_at: datetime | None = None
    approval_shown_at: datetime | None = None
    # The final result's event (migrated, rolled back, failed), and the first version of the
    # wave's summary message that counted it (None: not both).
    final_event_at: datetime | None = None
    final_in_summary_at: datetime | None = None
    approval_status: str = ""


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault the campaign injected: its kind (the fault profile's section), when, and
    what it hit."""

    kind: str
    at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class LostCallback:
    """A status event the callback endpoint saw attempts of (``attempts``) and never took."""

    migration_id: str
    sequence: int
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message left on a dead-letter queue at the end, and why (its ``failureReason``
    attribute: "" when whatever moved it there said nothing, as SQS's redrive does)."""

    queue: str
    message_id: str
    reason: str
    rejected_by: str
    body: str  # the first 200 characters


@dataclass(frozen=True, slots=True)
class WaveObservation:
    name: str
    account_id: str
    region: str
    window_start: datetime
    window_end: datetime
    slack_channel: str = ""


@dataclass(frozen=True, slots=True)
class LaneQuotas:
    """MGN's quotas in one lane (account + Region), as the profile set them for the run."""

    concurrent_jobs: int = 20
    servers_per_job: int = 200
    servers_in_active_jobs: int = 200
    replicating_servers: int = 150


@dataclass(frozen=True, slots=True)
class RehearsalObservation:
    started_at: datetime  # simulated: when the requests were published
    ended_at: datetime  # simulated: when the last migration reached a final state
    wall_seconds: float  # real seconds the run took (the machine's figure, not the forecast)
    design: str  # "per-vm" (one job per server) or "batched"
    waves: tuple[WaveObservation, ...]
    vms: tuple[VmObservation, ...]
    quotas: dict[str, LaneQuotas]  # "account/region" -> quotas
    # Durations the profile gave the emulator, for the quota floor: simulated seconds.
    test_launch_seconds: dict[str, float]  # os family -> test job duration
    cutover_launch_seconds: dict[str, float]  # os family -> cutover job duration
    replication_initiation_seconds: float
    replication_bytes_per_second: dict[str, float]  # wave -> its link's bandwidth
    api_calls_by_service: dict[str, int] = field(default_factory=dict)  # the pipeline's AWS calls
    mgn_calls_by_operation: dict[str, int] = field(default_factory=dict)
    slack_calls_by_method: dict[str, int] = field(default_factory=dict)
    slack_rate_limited: int = 0  # 429s the bot met
    # The same 429s by the channel the refused call named (a wave's channel: its figure).
    slack_rate_limited_by_channel: dict[str, int] = field(default_factory=dict)
    lambda_invocations: int = 0
    state_transitions: int = 0
    approvals_expired: int = 0
    # The fault campaign (``rehearse --faults``): what it injected and what the DLQs held.
    faults_injected: tuple[InjectedFault, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    callbacks_lost: tuple[LostCallback, ...] = ()
    watched_until: datetime | None = None  # simulated: the runner's last look
    longest_wait_seconds: float = 0.0  # the longest configured wait (stuck = no step for longer)
