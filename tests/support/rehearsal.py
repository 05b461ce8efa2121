"""Hand-built rehearsal observations: step histories as the pipeline reports them.

Instants are minutes from ``T0`` (the rehearsal's start), so a test's expected figures can
be worked out by hand from the numbers in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from orchestration.rehearsal.observation import (
    JobRecord,
    LaneQuotas,
    LaunchKind,
    RehearsalObservation,
    StepRecord,
    VmObservation,
    WaveObservation,
)

T0 = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
REGION = "eu-west-1"
LANE = f"{ACCOUNT}/{REGION}"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Timeline:
    """A migrated VM's milestones, minutes from T0 (None: the VM never got there)."""

    prepared: float = 2  # PrepareSource SUCCEEDED
    replication_started: float = 10
    replication_ready: float = 130
    replication_seen: float = 131  # WaitForReplication SUCCEEDED (the next poll)
    test_job: tuple[float, float] = (146, 176)
    test_verified: float = 180  # VerifyTestLaunch SUCCEEDED; AwaitApproval WAITING
    approved: float = 192  # PrepareCutover SUCCEEDED
    window_waiting: float | None = 193  # StartCutover WAITING
    cutover_job: tuple[float, float] = (241, 266)
    cutover_verified: float = 270
    finalized: float = 271
    quota_rejections: tuple[float, ...] = (131, 136, 141)


@dataclass(frozen=True)
class Slack:
    calls: int = 9
    delays_seconds: tuple[float, ...] = (2.0, 4.0)
    final_shown: bool = True
    # The thread's calls by method (they add up to ``calls``).
    calls_by_method: tuple[tuple[str, int], ...] = (("chat.postMessage", 2), ("chat.update", 7))
    # Seconds from the approval's request (VerifyTestLaunch's minute) to its message in Slack;
    # None: the message never appeared.
    approval_shown_after: float | None = 3.0
    approval_status: str = "APPROVED"
    # Seconds from the final result (FinalizeCutover's minute) to the wave summary counting
    # it; None: never counted.
    final_in_summary_after: float | None = 10.0


def step(name: str, status: str, minutes: float) -> StepRecord:
    return StepRecord(step=name, status=status, at=at(minutes))


def migrated_vm(
    migration_id: str,
    timeline: Timeline = Timeline(),
    *,
    wave: str = "wave-1",
    app: str = "billing",
    os_family: str = "linux",
    disk_bytes: int = 100 * 10**9,
    slack: Slack = Slack(),
) -> VmObservation:
    t = timeline
    steps = [
        step("Intake", "SUCCEEDED", 0),
        step("ValidateInput", "STARTED", 0.5),
        step("ValidateInput", "SUCCEEDED", 1),
        step("PrepareSource", "SUCCEEDED", t.prepared),
        step("WaitForReplication", "IN_PROGRESS", t.prepared + 1),
        step("WaitForReplication", "SUCCEEDED", t.replication_seen),
        step("StartTestLaunch", "SUCCEEDED", t.test_job[0]),
        step("VerifyTestLaunch", "SUCCEEDED", t.test_verified),
        step("AwaitApproval", "WAITING", t.test_verified),
        step("PrepareCutover", "SUCCEEDED", t.approved),
    ]
    if t.window_waiting is not None:
        steps.append(step("StartCutover", "WAITING", t.window_waiting))
    steps += [
        step("StartCutover", "SUCCEEDED", t.cutover_job[0]),
        step("VerifyCutover", "SUCCEEDED", t.cutover_verified),
        step("FinalizeCutover", "SUCCEEDED", t.finalized),
    ]
    return VmObservation(
        migration_id=migration_id,
        wave=wave,
        app_name=app,
        target_vm_name=f"{migration_id}-vm",
        account_id=ACCOUNT,
        region=REGION,
        os_family=os_family,
        disk_bytes=disk_bytes,
        source_server_id=f"s-{migration_id}",
        final_status="SUCCEEDED",
        record_status="COMPLETED",
        steps=tuple(sorted(steps, key=lambda record: record.at)),
        jobs=(
            job(f"mgnjob-t-{migration_id}", "test", *t.test_job),
            job(f"mgnjob-c-{migration_id}", "cutover", *t.cutover_job),
        ),
        quota_rejections=tuple(at(m) for m in t.quota_rejections),
        replication_started_at=at(t.replication_started),
        replication_ready_at=at(t.replication_ready),
        slack_calls=slack.calls,
        slack_calls_by_method=dict(slack.calls_by_method),
        slack_delays_seconds=slack.delays_seconds,
        slack_final_shown=slack.final_shown,
        approval_requested_at=at(t.test_verified),
        approval_shown_at=(
            at(t.test_verified) + timedelta(seconds=slack.approval_shown_after)
            if slack.approval_shown_after is not None
            else None
        ),
        approval_status=slack.approval_status,
        final_event_at=at(t.finalized),
        final_in_summary_at=(
            at(t.finalized) + timedelta(seconds=slack.final_in_summary_after)
            if slack.final_in_summary_after is not None
            else None
        ),
    )


def rolled_back_vm(
    migration_id: str,
    *,
    wave: str = "wave-1",
    app: str = "billing",
    approval_requested: float = 180,
    terminate_job_at: float = 290,
    rolled_back: float = 300,
    slack_final_shown: bool = True,
) -> VmObservation:
    """Tested, then nobody approved: the approval expired and the rollback terminated the
    test instance (a terminate job) before reporting Rollback SUCCEEDED."""
    base = migrated_vm(migration_id, wave=wave, app=app)
    steps = [r for r in base.steps if r.at <= at(approval_requested)]
    steps.append(step("Rollback", "SUCCEEDED", rolled_back))
    return replace(
        base,
        record_status="ROLLED_BACK",
        steps=tuple(steps),
        jobs=(
            base.jobs[0],
            job(f"mgnjob-x-{migration_id}", "terminate", terminate_job_at, rolled_back - 5),
        ),
        slack_final_shown=slack_final_shown,
        approval_status="EXPIRED",
    )


def job(job_id: str, kind: LaunchKind, created: float, ended: float | None) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        kind=kind,
        created_at=at(created),
        ended_at=at(ended) if ended is not None else None,
        servers_in_job=1,
        launch_status="LAUNCHED" if kind != "terminate" else "TERMINATED",
    )


def wave(name: str = "wave-1", *, window: tuple[float, float] = (240, 360)) -> WaveObservation:
    return WaveObservation(
        name=name,
        account_id=ACCOUNT,
        region=REGION,
        window_start=at(window[0]),
        window_end=at(window[1]),
        slack_channel=f"#{name}",
    )


@dataclass(frozen=True)
class Counters:
    api_calls_by_service: dict[str, int] = field(default_factory=dict)
    mgn_calls_by_operation: dict[str, int] = field(default_factory=dict)
    slack_calls_by_method: dict[str, int] = field(default_factory=dict)
    slack_rate_limited: int = 0
    slack_rate_limited_by_channel: dict[str, int] = field(default_factory=dict)
    lambda_invocations: int = 0
    state_transitions: int = 0
    approvals_expired: int = 0


def observation(
    vms: list[VmObservation],
    waves: list[WaveObservation],
    *,
    ended: float | None = None,
    design: str = "per-vm",
    quotas: LaneQuotas = LaneQuotas(),  # noqa: B008 - frozen
    counters: Counters = Counters(),
    bytes_per_second: float = 100 * 10**6 / 8,  # 100 Mbit/s
) -> RehearsalObservation:
    last = max(record.at for vm in vms for record in vm.steps)
    return RehearsalObservation(
        started_at=T0,
        ended_at=at(ended) if ended is not None else last,
        wall_seconds=12.5,
        design=design,
        waves=tuple(waves),
        vms=tuple(vms),
        quotas={LANE: quotas},
        test_launch_seconds={"linux": 1800.0, "windows": 2700.0},
        cutover_launch_seconds={"linux": 1500.0, "windows": 2400.0},
        replication_initiation_seconds=600.0,
        replication_bytes_per_second={w.name: bytes_per_second for w in waves},
        api_calls_by_service=counters.api_calls_by_service,
        mgn_calls_by_operation=counters.mgn_calls_by_operation,
        slack_calls_by_method=counters.slack_calls_by_method,
        slack_rate_limited=counters.slack_rate_limited,
        slack_rate_limited_by_channel=counters.slack_rate_limited_by_channel,
        lambda_invocations=counters.lambda_invocations,
        state_transitions=counters.state_transitions,
        approvals_expired=counters.approvals_expired,
    )


HOSTILE_NAME = '</script><script>alert("x")</script><b>&'


def two_wave_observation() -> RehearsalObservation:
    """Two waves, three applications, 12 VMs: staggered replication, quota waits, one
    rolled back (its approval expired), one with a name that tries to break the page."""
    vms: list[VmObservation] = []
    apps = ("billing", "crm", "reporting")
    for index in range(12):
        wave_name = "wave-1" if index < 7 else "wave-2"
        shift = 0 if wave_name == "wave-1" else 300  # wave 2's window opens 5 h later
        stagger = 9 * (index % 7)
        queued = 10 * (index % 3)  # the third of each three waited longest for a job slot
        timeline = Timeline(
            replication_started=10 + index,
            replication_ready=100 + stagger + shift,
            replication_seen=101 + stagger + shift,
            test_job=(101 + stagger + shift + queued, 131 + stagger + shift + queued),
            test_verified=135 + stagger + shift + queued,
            approved=150 + stagger + shift + queued + 3 * index,
            window_waiting=151 + stagger + shift + queued + 3 * index,
            cutover_job=(241 + shift + 2 * index, 266 + shift + 2 * index),
            cutover_verified=270 + shift + 2 * index,
            finalized=271 + shift + 2 * index,
            quota_rejections=tuple(101 + stagger + shift + m for m in range(0, queued, 5)),
        )
        migration_id = f"{wave_name}-{apps[index % 3]}-{index:02d}"
        vm = migrated_vm(migration_id, timeline, wave=wave_name, app=apps[index % 3])
        if index == 4:
            vm = rolled_back_vm(
                migration_id,
                wave=wave_name,
                app=apps[index % 3],
                terminate_job_at=330,
                rolled_back=334,
                slack_final_shown=False,
            )
        if index == 5:
            vm = replace(vm, target_vm_name=HOSTILE_NAME)
        vms.append(vm)
    waves = [wave("wave-1", window=(240, 330)), wave("wave-2", window=(540, 580))]
    return observation(
        vms,
        waves,
        bytes_per_second=10**9 / 8,  # 1 Gbit/s per wave
        counters=Counters(
            api_calls_by_service={"dynamodb": 972, "mgn": 300, "states": 240, "events": 180},
            mgn_calls_by_operation={"DescribeJobs": 120, "StartTest": 11, "StartCutover": 11},
            slack_calls_by_method={"chat.postMessage": 24, "chat.update": 84},
            slack_rate_limited=2,
            lambda_invocations=180,
            state_transitions=600,
            approvals_expired=1,
        ),
    )
