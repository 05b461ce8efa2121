"""Run a rehearsal: the embedded system on the simulated clock, observed from end to end.

Everything is the real thing on loopback (docs/ARCHITECTURE.md): the requests ``wavepilot
publish`` would send go on the request queue; the ingress, EventBridge, one Step Functions
execution per VM (the real ASL file), every step's Lambda, the MGN emulator (one per lane,
with the profile's quotas and timings), the Slack bot against the Slack stand-in (its rate
limits), and the simulated approvers clicking the real buttons. One ``VirtualClock`` drives
every wait (docs/LOCAL_RUNTIME.md, "The simulated clock"), so the predicted timeline does
not depend on how fast this machine runs the code.

``rehearse`` returns a ``RehearsalObservation`` (plain data); ``report`` makes the forecast.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

from bot.group_approvals import GROUP_METADATA_EVENT_TYPE
from bot.thread_store import ThreadStore
from bot.threads import METADATA_EVENT_TYPE as THREAD_METADATA_EVENT_TYPE
from bot.wave_summary import METADATA_EVENT_TYPE as SUMMARY_METADATA_EVENT_TYPE
from orchestration.adapters.state_store import ApprovalRecord, MigrationStore
from orchestration.gitops.requests import request_for
from orchestration.local.driver import TERMINAL, MigrationDriver
from orchestration.local.logs import pipeline_logs_to
from orchestration.local.mgn import EmulatorSettings
from orchestration.local.mgn.settings import QuotaLimits, ReplicationTiming
from orchestration.local.slack_report import FINAL_OUTCOMES
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.findings import Finding, Severity
from orchestration.manifests.validation import LocatedVm, ManifestFile, validate_files
from orchestration.pipeline.callbacks import RetryPolicy
from orchestration.pipeline.spec import MigrationSpec
from orchestration.rehearsal.approvers import SimulatedApprovers, approval_button_value
from orchestration.rehearsal.faults import FaultCampaign, FaultProfile
from orchestration.rehearsal.observation import (
    DeadLetter,
    InjectedFault,
    JobRecord,
    LaneQuotas,
    LostCallback,
    RehearsalObservation,
    StepRecord,
    VmObservation,
    WaveObservation,
)
from orchestration.rehearsal.profile import RehearsalProfile, fair_share_bytes_per_second
from orchestration.statemachine import LaunchSettings, Timings

__all__ = ["Progress", "RehearsalInput", "manifest_input", "rehearse", "synthetic_input"]

DEFAULT_TIMEOUT_DAYS = 400.0  # beyond the executions' own timeout (a year)
_GIB = 1024**3
_WATCH_SECONDS = 300.0  # the runner looks at the executions every 5 simulated minutes,
_WATCH_MAX = 4 * 3600.0  # up to every 4 hours while nothing ends
_SLACK_SETTLE_SECONDS = 3600.0  # after the last execution: Slack gets an hour to catch up
_COMMIT = "0" * 40  # a rehearsal publishes no real commit
_AUTHOR = "Wavepilot rehearsal <rehearsal@wavepilot.invalid>"
_LAUNCH_KINDS = {"START_TEST": "test", "START_CUTOVER": "cutover", "TERMINATE": "terminate"}


@dataclass(frozen=True)
class Progress:
    """What the progress bar shows: migrations ended so far, on which simulated instant."""

    ended: int
    total: int
    simulated_now: datetime
    wall_seconds: float


@dataclass(frozen=True)
class RehearsalInput:
    """The VMs to rehearse (validated manifests) and the instant the rehearsal starts."""

    vms: tuple[LocatedVm, ...]
    start: datetime


def manifest_input(
    files: Sequence[ManifestFile], *, start: datetime, waves: Sequence[str] = ()
) -> tuple[RehearsalInput, list[Finding]]:
    """The wave files' VMs (only ``waves`` if given); findings as ``wavepilot validate``'s,
    judged at ``start`` (a window already closed then is an error)."""
    result = validate_files(list(files), now=start)
    findings = sorted(result.findings)
    vms = [vm for vm in result.vms if not waves or vm.effective_vm.wave in waves]
    if waves:
        known = {vm.effective_vm.wave for vm in result.vms}
        findings += [
            Finding("--wave", 1, 1, f"no wave named {name!r} in the manifests")
            for name in waves
            if name not in known
        ]
    return RehearsalInput(tuple(vms), start), findings


SYNTHETIC_CALLBACK_URL = "https://cmdb.rehearsal.invalid/hooks/wavepilot"


def synthetic_input(
    vm_count: int, *, start: datetime, profile: RehearsalProfile, callbacks: bool = False
) -> RehearsalInput:
    """A synthetic wave of ``vm_count`` VMs (``wave-000``, one lane), its window where the
    profile's ``synthetic`` section puts it relative to ``start``; with ``callbacks``, every
    VM posts its status events to a callback endpoint (the embedded callback receiver)."""
    opens = start + timedelta(hours=profile.synthetic.window_opens_after_hours)
    closes = opens + timedelta(hours=profile.synthetic.window_hours)
    text = wave_yaml(
        0,
        vm_count,
        window=(opens.isoformat(), closes.isoformat()),
        callback_url=SYNTHETIC_CALLBACK_URL if callbacks else None,
    )
    rehearsal, findings = manifest_input([ManifestFile("wave-000.yaml", text)], start=start)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:  # pragma: no cover - the generator writes valid waves
        raise AssertionError(f"the synthetic wave is invalid: {errors[0]}")
    return rehearsal


def rehearse(
    rehearsal: RehearsalInput,
    profile: RehearsalProfile,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    timeout_days: float = DEFAULT_TIMEOUT_DAYS,
    log_file: Path | None = None,
    launch: LaunchSettings | None = None,
    faults: FaultProfile | None = None,
    timings: Timings | None = None,
) -> RehearsalObservation:
    """Run every VM of ``rehearsal`` to a final state on the embedded system; observe it.
    ``launch``: the launch design and its settings (``LaunchSettings.aws()``, per-vm, by
    default), so one input can be rehearsed with each design. ``faults``: the fault
    campaign's profile (faults.py), injected while the rehearsal runs. ``timings``: the
    pipeline's polls and time limits, production's (``Timings.aws()``) by default; tests
    shorten the longest waits (a stalled replication's week) to keep their simulated time
    short."""
    if faults is not None and faults.launch_failures.rate > profile.launches.failure_rate:
        launches = profile.launches.model_copy(update={"failure_rate": faults.launch_failures.rate})
        profile = profile.model_copy(update={"launches": launches})
    requests = [request_for(vm, commit=_COMMIT, author=_AUTHOR) for vm in rehearsal.vms]
    specs = [MigrationSpec.from_request(r, r.revision or "", "rehearsal") for r in requests]
    disks = {vm.migration_id: _disks_gib(vm, profile) for vm in rehearsal.vms}
    log = log_file or Path(tempfile.gettempdir()) / "wavepilot-rehearsal.log"
    launch = _with_profile_quotas(launch or LaunchSettings.aws(), profile)
    options = SystemOptions(
        timings=timings or Timings.aws(),
        launch_design=launch.design,
        launch=launch,
        clock="simulated",
        clock_start=rehearsal.start,
        mgn_settings=_lane_settings(profile, None),
    )
    began = time.monotonic()
    with _fewer_collections(), pipeline_logs_to(log), EmbeddedSystem(options) as system:
        assert system.clock is not None
        assert system.mgn_fleet is not None
        assert system.slack is not None
        for account_id, region in sorted(_lanes(specs)):
            if (account_id, region) != _hub(system):
                system.mgn_fleet.add_lane(
                    account_id, region, settings=_lane_settings(profile, (account_id, region))
                )
        servers = system.seed(
            specs,
            disks_gib=disks,
            replication_bytes_per_second=_replication_rates(specs, disks, profile),
        )
        table = MigrationStore(_table())
        approvers = SimulatedApprovers(
            system.slack,
            table,
            system.clock,
            profile.approvers,
            seed=profile.seed,
            never_answered=faults.silent_approvers.approvals if faults else 0,
        ).start()
        campaign = FaultCampaign(faults, system, servers).start() if faults else None
        try:
            driver = MigrationDriver(system)
            published_at = system.clock.now()
            driver.send(requests)
            ended_at = _watch(driver, system, specs, on_progress, began, timeout_days * 86400.0)
            _let_slack_settle(system, specs)
        finally:
            approvers.stop()
            if campaign is not None:
                campaign.stop()
        wall = time.monotonic() - began
        injected: list[InjectedFault] = []
        if campaign is not None:
            injected = [
                *campaign.injected,
                *(
                    InjectedFault("silentApprovers", published_at, f"approval {a} never clicked")
                    for a in approvers.unanswered
                ),
            ]
        observation = _observe(
            system,
            specs,
            servers,
            disks,
            profile,
            started_at=published_at,
            ended_at=ended_at,
            wall_seconds=wall,
            approvals_expired=0,
        )
        if campaign is None:
            return observation
        return replace(
            observation,
            faults_injected=tuple(sorted(injected, key=lambda f: f.at)),
            dead_letters=tuple(_dead_letters(system)),
            callbacks_lost=tuple(_callbacks_lost(system)),
            longest_wait_seconds=float(_longest_wait(system)),
            watched_until=ended_at,
        )


# The rehearsal holds every emulated service's state in this process (a 1,000-VM wave: over
# a gigabyte of objects), and CPython's default thresholds (700, 10, 10) collect the young
# generation every 700 allocations and walk the whole heap every hundredth time: 13% of a
# 200-VM rehearsal's CPU went to the collector. Fewer, larger young collections leave the old
# objects alone; cycles are still collected (a rehearsal's memory stays bounded).
_REHEARSAL_GC_THRESHOLDS = (50_000, 20, 20)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The collector's thresholds set for a rehearsal, the process's own restored after."""
    before = gc.get_threshold()
    gc.set_threshold(*_REHEARSAL_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _longest_wait(system: EmbeddedSystem) -> int:
    """The longest a migration may legitimately sit without a step: its longest timeout."""
    timings = system.options.timings
    return max(
        timings.replication_timeout_seconds,
        timings.launch_timeout_seconds,
        timings.approval_timeout_seconds,
        system.options.launch_settings.cutover_timeout_seconds,
    )


def _callbacks_lost(system: EmbeddedSystem) -> list[LostCallback]:
    """Status events the callback endpoint was asked to take (it saw an attempt) but never
    accepted in time: the callback handler's retry budget ran out (it logs CALLBACK_FAILED).
    An attempt is accepted when its answer was 2xx and came within the sender's attempt
    timeout (a slow endpoint's late 204 reached nobody)."""
    assert system.callbacks is not None
    # A slow answer is recorded when given, after its sender gave up: wait for the last ones.
    system.callbacks.settle()
    patience = RetryPolicy().attempt_timeout_seconds
    attempts: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for delivery in system.callbacks.received():
        detail = delivery.event.get("detail") or {}
        accepted = 200 <= delivery.answered <= 299 and delivery.answer_seconds < patience
        attempts[(str(detail.get("migrationId", "")), delivery.sequence)].append(accepted)
    return [
        LostCallback(migration_id, sequence, len(accepted))
        for (migration_id, sequence), accepted in sorted(attempts.items())
        if not any(accepted)
    ]


def _dead_letters(system: EmbeddedSystem) -> list[DeadLetter]:
    """Every message on the dead-letter queues at the end, with the reason it carries."""
    assert system.resources is not None
    resources = system.resources
    sqs = system.client("sqs")
    found: list[DeadLetter] = []
    for url in (
        resources.dead_letter_queue_url,
        resources.slack_status_dead_letter_queue_url,
        resources.slack_priority_dead_letter_queue_url,
        resources.github_progress_dead_letter_queue_url,
    ):
        seen: set[str] = set()
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=600,
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                attributes = message.get("MessageAttributes", {})
                found.append(
                    DeadLetter(
                        queue=url.rsplit("/", 1)[-1],
                        message_id=message["MessageId"],
                        reason=attributes.get("failureReason", {}).get("StringValue", ""),
                        rejected_by=attributes.get("rejectedBy", {}).get("StringValue", ""),
                        body=message.get("Body", "")[:200],
                    )
                )
    return found


# --- setting the system up -----------------------------------------------------------------


def _lanes(specs: Sequence[MigrationSpec]) -> set[tuple[str, str]]:
    return {(s.target_account_id, s.target_region) for s in specs}


def _hub(system: EmbeddedSystem) -> tuple[str, str]:
    settings = system.options.mgn_settings
    return settings.account_id, settings.region


def _table() -> Any:
    import boto3

    from orchestration.local.runtime import LOCAL_REGION

    return (
        boto3.Session(region_name=LOCAL_REGION)
        .resource("dynamodb")
        .Table(os.environ["DYNAMODB_TABLE_NAME"])
    )


def _disks_gib(vm: LocatedVm, profile: RehearsalProfile) -> tuple[int, ...]:
    return tuple(vm.effective_vm.source.disks_gib or profile.replication.default_disks_gib)


def _lane_settings(profile: RehearsalProfile, lane: tuple[str, str] | None) -> EmulatorSettings:
    """One lane's MGN: the profile's quotas (with that lane's overrides) and timings."""
    base = EmulatorSettings()
    if lane is not None:
        base = replace(base, account_id=lane[0], region=lane[1])
    quotas = profile.quotas if lane is None else profile.quotas_for(*lane)
    launches = profile.launches
    timings = {
        (kind, os_family): timing.job_timing()
        for kind, by_os in (("test", launches.test), ("cutover", launches.cutover))
        for os_family, timing in by_os.items()
    }
    quota_limits = QuotaLimits(
        concurrent_jobs=quotas.concurrent_jobs,
        servers_per_job=quotas.servers_per_job,
        servers_in_active_jobs=quotas.servers_in_active_jobs,
        replicating_servers=quotas.replicating_servers,
        non_archived_servers=max(base.quotas.non_archived_servers, quotas.replicating_servers),
    )
    # Each lane its own seed (as MgnFleet derives them): lanes seeded alike would issue the
    # same source server IDs, which the embedded system (and MGN) keeps unique.
    seed = (
        profile.seed if lane is None else profile.seed ^ zlib.crc32(f"{lane[0]}/{lane[1]}".encode())
    )
    return replace(
        base,
        seed=seed,
        check_responses=False,  # 0.2 ms per server described: the tests check shapes
        replication=ReplicationTiming(
            initiation=timedelta(minutes=profile.replication.initiation_minutes),
            bandwidth_bytes_per_second=profile.replication.link_bytes_per_second(""),
        ),
        jobs=launches.test["linux"].job_timing(),
        launch_timings=timings,
        launch_failure_rate=launches.failure_rate,
        quotas=quota_limits,
    )


def _replication_rates(
    specs: Sequence[MigrationSpec],
    disks: dict[str, tuple[int, ...]],
    profile: RehearsalProfile,
) -> dict[str, float]:
    """Each server's initial sync rate: its fair share of its wave's link (profile)."""
    groups: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for spec in specs:
        key = (spec.wave, spec.target_account_id, spec.target_region)
        groups[key][spec.migration_id] = sum(disks[spec.migration_id]) * _GIB
    rates: dict[str, float] = {}
    for (wave, account_id, region), sizes in groups.items():
        quota = profile.quotas_for(account_id, region).replicating_servers
        rates.update(
            fair_share_bytes_per_second(
                sizes, profile.replication.link_bytes_per_second(wave), quota
            )
        )
    return rates


# --- watching the run ----------------------------------------------------------------------


def _watch(  # noqa: PLR0917 - a private step of rehearse(), called once
    driver: MigrationDriver,
    system: EmbeddedSystem,
    specs: Sequence[MigrationSpec],
    on_progress: Callable[[Progress], None] | None,
    began: float,
    timeout_seconds: float,
) -> datetime:
    """Sleep on the virtual clock until every migration's execution ended; return when the
    last one did (to the watch's resolution)."""
    clock = system.clock
    assert clock is not None
    wanted = {s.migration_id for s in specs}
    deadline = clock.monotonic() + timeout_seconds
    interval, last_ended = _WATCH_SECONDS, -1
    while True:
        statuses = {m: e["status"] for m, e in driver.latest_executions(wanted).items()}
        ended = sum(1 for s in statuses.values() if s in TERMINAL)
        if on_progress is not None:
            on_progress(Progress(ended, len(wanted), clock.now(), time.monotonic() - began))
        if ended == len(wanted) or clock.monotonic() >= deadline:
            return clock.now()
        # Look again soon after a change, and less often while nothing ends (waves whose
        # windows are weeks away): the makespan comes from the events, not from these looks.
        interval = _WATCH_SECONDS if ended != last_ended else min(interval * 2, _WATCH_MAX)
        last_ended = ended
        clock.sleep(interval)


def _let_slack_settle(system: EmbeddedSystem, specs: Sequence[MigrationSpec]) -> None:
    """The bot may still be posting when the last execution ends: give it simulated time.

    Every execution has ended, so each record's outcome is final: it is read once; only what
    the thread shows is looked at again each simulated minute (reading 1,000 records a minute
    held a 1,000-VM campaign's settle for most of an hour of wall time)."""
    clock, slack = system.clock, system.slack
    assert clock is not None
    assert slack is not None
    threads = ThreadStore(_table())
    migrations = MigrationStore(_table())
    expected = {s.migration_id: _final_outcome(migrations, s.migration_id) for s in specs}
    waiting = [m for m, outcome in expected.items() if outcome is not None]
    deadline = clock.monotonic() + _SLACK_SETTLE_SECONDS
    while waiting and clock.monotonic() < deadline:
        waiting = [m for m in waiting if not _final_shown(slack, threads, m, expected[m])]
        if waiting:
            clock.sleep(60.0)


def _final_outcome(migrations: MigrationStore, mid: str) -> str | None:
    record = migrations.get(mid)
    return FINAL_OUTCOMES.get(record.status) if record is not None else None


def _final_shown(slack: Any, threads: ThreadStore, mid: str, expected: str | None) -> bool:
    stored = threads.get(mid)
    if expected is None or stored is None or not stored.ts:  # no ts: its root is owed
        return False
    shown = slack.thread(stored.channel, stored.ts).root.metadata or {}
    return bool(shown.get("event_payload", {}).get("outcome") == expected)


def _thread_said(threads: ThreadStore, mid: str) -> str:
    """The thread item, as a case's detail: what the notifier folded and what it owes."""
    stored = threads.get(mid)
    if stored is None:
        return ""
    state = stored.state
    root = f"root shows {stored.shown_stage or '?'}" if stored.ts else "root never posted"
    owes = "root owed" if stored.root_owed else "root up to date"
    return (
        f"thread folded event {state.sequence} ({state.outcome}); {root}; "
        f"{owes}; {len(stored.owed_replies)} replies owed"
    )


# --- observing what happened ---------------------------------------------------------------


def _observe(
    system: EmbeddedSystem,
    specs: Sequence[MigrationSpec],
    servers: dict[str, str],
    disks: dict[str, tuple[int, ...]],
    profile: RehearsalProfile,
    *,
    started_at: datetime,
    ended_at: datetime,
    wall_seconds: float,
    approvals_expired: int,
) -> RehearsalObservation:
    assert system.mgn_fleet is not None
    assert system.slack is not None
    driver = MigrationDriver(system)
    wanted = {s.migration_id for s in specs}
    executions = driver.latest_executions(wanted)
    store = MigrationStore(_table())
    threads = ThreadStore(_table())
    jobs = _jobs_by_server(system)
    rejections = _quota_rejections_by_server(system)
    slack = _slack_by_root(system)
    approvals = {
        s.migration_id: store.approval(record.approval_id)
        if (record := store.get(s.migration_id)) and record.approval_id
        else None
        for s in specs
    }
    shown_in_group = _shown_in_group_messages(
        [a for a in approvals.values() if a is not None], slack.group_versions
    )
    roots = {
        s.migration_id: (stored.channel, stored.ts)
        for s in specs
        if (stored := threads.get(s.migration_id)) is not None and stored.ts
    }
    finals = {
        mid: slack.final_results[root] for mid, root in roots.items() if root in slack.final_results
    }
    final_in_summary = _shown_in_summaries(
        [
            (s.migration_id, s.wave, *finals[s.migration_id])
            for s in specs
            if s.migration_id in finals
        ],
        slack.summary_versions,
    )
    vms: list[VmObservation] = []
    for spec in specs:
        mid = spec.migration_id
        server = servers[mid]
        record = store.get(mid)
        root = roots.get(mid)
        replication = _replication_timeline(system, server)
        approval = approvals[mid]
        vms.append(
            VmObservation(
                migration_id=mid,
                wave=spec.wave,
                app_name=spec.app_name,
                target_vm_name=spec.target_vm_name,
                account_id=spec.target_account_id,
                region=spec.target_region,
                os_family=spec.os_family or "linux",
                disk_bytes=sum(disks[mid]) * _GIB,
                source_server_id=server,
                final_status=executions.get(mid, {}).get("status", "NOT_STARTED"),
                record_status=record.status if record is not None else "UNKNOWN",
                steps=tuple(
                    StepRecord(
                        step=str(s["step"]),
                        status=str(s["status"]),
                        at=datetime.fromisoformat(str(s["at"])),
                        message=str(s.get("message") or ""),
                    )
                    for s in store.history(mid)
                ),
                jobs=tuple(jobs.get(server, ())),
                quota_rejections=tuple(rejections.get(server, ())),
                replication_started_at=replication[0],
                replication_ready_at=replication[1],
                slack_calls=sum(slack.calls.get(root, {}).values()) if root else 0,
                slack_calls_by_method=dict(slack.calls.get(root, {})) if root else {},
                slack_delays_seconds=tuple(slack.delays.get(root, ())) if root else (),
                slack_final_shown=_final_shown(
                    system.slack,
                    threads,
                    mid,
                    FINAL_OUTCOMES.get(record.status) if record is not None else None,
                ),
                slack_thread=_thread_said(threads, mid),
                approval_requested_at=approval.requested_at if approval else None,
                approval_shown_at=(
                    slack.approvals_shown.get(approval.approval_id)
                    or shown_in_group.get(approval.approval_id)
                )
                if approval
                else None,
                approval_status=approval.status if approval else "",
                final_event_at=finals[mid][1] if mid in finals else None,
                final_in_summary_at=final_in_summary.get(mid),
            )
        )
    waves = _waves(specs)
    lanes = sorted(_lanes(specs))
    counters = system.counters()
    metrics = system.mgn_fleet.metrics()
    mgn_calls: dict[str, int] = defaultdict(int)
    for lane_metrics in metrics.by_lane.values():
        for operation, count in lane_metrics.calls_by_operation.items():
            mgn_calls[operation] += count
    launches = profile.launches
    # The last status event, not the watcher's last look (it looks every 5 simulated minutes).
    last_event = max((vm.steps[-1].at for vm in vms if vm.steps), default=ended_at)
    return RehearsalObservation(
        started_at=started_at,
        ended_at=last_event,
        wall_seconds=wall_seconds,
        design=system.options.launch_settings.design,
        waves=tuple(waves),
        vms=tuple(vms),
        quotas={
            f"{a}/{r}": LaneQuotas(**profile.quotas_for(a, r).model_dump(by_alias=False))
            for a, r in lanes
        },
        test_launch_seconds={os: t.total_minutes * 60 for os, t in launches.test.items()},
        cutover_launch_seconds={os: t.total_minutes * 60 for os, t in launches.cutover.items()},
        replication_initiation_seconds=profile.replication.initiation_minutes * 60,
        replication_bytes_per_second={
            w.name: profile.replication.link_bytes_per_second(w.name) for w in waves
        },
        api_calls_by_service=dict(system.api_calls.by_service()) if system.api_calls else {},
        mgn_calls_by_operation=dict(sorted(mgn_calls.items())),
        slack_calls_by_method=dict(sorted(system.slack.calls_by_method().items())),
        slack_rate_limited=sum(system.slack.rate_limited().values()),
        slack_rate_limited_by_channel=slack.rate_limited_by_channel,
        lambda_invocations=counters.total_lambda_invocations,
        state_transitions=counters.total_state_transitions,
        approvals_expired=sum(
            1
            for vm in vms
            for step in vm.steps
            if step.step == "AwaitApproval" and "expired" in step.message.lower()
        )
        or approvals_expired,
    )


def _waves(specs: Sequence[MigrationSpec]) -> list[WaveObservation]:
    seen: dict[str, WaveObservation] = {}
    for spec in specs:
        if spec.wave in seen or spec.window_start is None or spec.window_end is None:
            continue
        seen[spec.wave] = WaveObservation(
            name=spec.wave,
            account_id=spec.target_account_id,
            region=spec.target_region,
            window_start=spec.window_start,
            window_end=spec.window_end,
            slack_channel=spec.slack_channel or "",
        )
    return list(seen.values())


def _jobs_by_server(system: EmbeddedSystem) -> dict[str, list[JobRecord]]:
    assert system.mgn_fleet is not None
    found: dict[str, list[JobRecord]] = defaultdict(list)
    for lane in system.mgn_fleet.lanes().values():
        for job in lane.jobs():
            for participant in job.participants:
                found[participant.source_server_id].append(
                    JobRecord(
                        job_id=job.job_id,
                        kind=_LAUNCH_KINDS.get(str(job.initiated_by), "terminate"),  # type: ignore[arg-type]
                        created_at=job.created_at,
                        ended_at=job.ended_at,
                        servers_in_job=len(job.participants),
                        launch_status=str(participant.launch_status),
                    )
                )
    return found


def _quota_rejections_by_server(system: EmbeddedSystem) -> dict[str, list[datetime]]:
    assert system.mgn_fleet is not None
    found: dict[str, list[datetime]] = defaultdict(list)
    for rejection in system.mgn_fleet.quota_rejections():
        if rejection.operation in {"StartTest", "StartCutover"}:
            for server in rejection.source_server_ids:
                found[server].append(rejection.at)
    return found


def _replication_timeline(
    system: EmbeddedSystem, server: str
) -> tuple[datetime | None, datetime | None]:
    assert system.mgn_fleet is not None
    timeline = system.mgn_fleet.replication_timeline(server)
    return timeline.started_at, timeline.ready_at


@dataclass
class _SlackSeen:
    """What the Slack stand-in shows of the run, by thread (a root's channel and ts)."""

    calls: dict[tuple[str, str], dict[str, int]]  # chat.* calls on the thread, by method
    delays: dict[tuple[str, str], list[float]]  # each root version's wait from its event
    approvals_shown: dict[str, datetime]  # approval ID -> its Approve button first posted
    # group -> each version of its approval message: (when, members that reached the gate)
    group_versions: dict[str, list[tuple[datetime, int]]]
    rate_limited_by_channel: dict[str, int]  # 429s by the channel the call named
    # wave -> each version of its summary message: (when, its counts by category key)
    summary_versions: dict[str, list[tuple[datetime, dict[str, int]]]]
    # root -> the final result its root shows (outcome) and that result's event time
    final_results: dict[tuple[str, str], tuple[str, datetime]]


# A final outcome (the root's metadata) -> the wave summary's count of it (its metadata key).
_SUMMARY_COUNT_OF: dict[str, str] = {
    "migrated": "migrated",
    "rolled back": "rolled_back",
    "failed": "failed",
}


def _shown_in_summaries(
    finals: Sequence[tuple[str, str, str, datetime]],
    versions: dict[str, list[tuple[datetime, dict[str, int]]]],
) -> dict[str, datetime]:
    """When each migration's final result was first counted by its wave's summary message:
    the k-th of a wave's migrations to end with an outcome shows in the first version (at or
    after its event) that counts k of that outcome (a final result never changes). ``finals``
    are (migration, wave, outcome, event time). Exact per summary version, not per migration
    within one (results of one moment may be counted in another order)."""
    shown: dict[str, datetime] = {}
    ranked: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    for migration_id, wave, outcome, at in finals:
        if outcome in _SUMMARY_COUNT_OF:
            ranked[(wave, outcome)].append((at, migration_id))
    for (wave, outcome), ended in ranked.items():
        key = _SUMMARY_COUNT_OF[outcome]
        wave_versions = sorted(versions.get(wave, ()), key=lambda v: v[0])
        for rank, (at, migration_id) in enumerate(sorted(ended), start=1):
            when = next(
                (t for t, counts in wave_versions if counts.get(key, 0) >= rank and t >= at),
                None,
            )
            if when is not None:
                shown[migration_id] = when
    return shown


def _shown_in_group_messages(
    approvals: Sequence[ApprovalRecord], versions: dict[str, list[tuple[datetime, int]]]
) -> dict[str, datetime]:
    """When each grouped approval first showed in its group's message: the k-th of a group's
    approvals to be requested shows in the first version that counts k members at the gate
    (ready or decided; a member never leaves the gate once there). Members requested in the
    same moment may be shown in another order than requested: the figure is exact per group
    message version, not per member within one."""
    shown: dict[str, datetime] = {}
    by_group: dict[str, list[ApprovalRecord]] = {}
    for approval in approvals:
        if approval.group and approval.requested_at is not None:
            by_group.setdefault(approval.group, []).append(approval)
    for group, members in by_group.items():
        group_versions = sorted(versions.get(group, ()))
        in_order = sorted(members, key=lambda a: a.requested_at or datetime.min.replace(tzinfo=UTC))
        for rank, approval in enumerate(in_order, start=1):
            at = next((when for when, reached in group_versions if reached >= rank), None)
            if at is not None and approval.requested_at is not None:
                shown[approval.approval_id] = max(at, approval.requested_at)
    return shown


def _slack_by_root(system: EmbeddedSystem) -> _SlackSeen:
    """Web API calls per thread (a call lands on the thread of the message it posts or edits),
    each root version's delay from its event (Slack's clock) per thread, when each approval's
    message (the one with its Approve button) was posted, and the 429s per channel."""
    slack = system.slack
    assert slack is not None
    root_of: dict[tuple[str, str], tuple[str, str]] = {}
    delays: dict[tuple[str, str], list[float]] = {}
    approvals_shown: dict[str, datetime] = {}
    group_versions: dict[str, list[tuple[datetime, int]]] = {}
    summary_versions: dict[str, list[tuple[datetime, dict[str, int]]]] = {}
    final_results: dict[tuple[str, str], tuple[str, datetime]] = {}
    for thread in slack.threads():
        root = (thread.channel, thread.root.ts)
        root_of[root] = root
        for reply in thread.replies:
            root_of[(thread.channel, reply.ts)] = root
        # On the simulated clock, events and Slack share one time: an event's own timestamp
        # is already Slack time (SlackClock.at maps real instants, for the scaled clock).
        delays[root] = [
            version.time - datetime.fromisoformat(payload["event_time"]).timestamp()
            for version in thread.root.versions
            if (payload := (version.metadata or {}).get("event_payload") or {}).get("event_time")
        ]
        for message in (thread.root, *thread.replies):
            approval_id = approval_button_value(message.original_blocks)
            if approval_id is not None and approval_id not in approvals_shown:
                approvals_shown[approval_id] = datetime.fromtimestamp(message.posted_at, UTC)
        final = _final_result(thread.root.versions)
        if final is not None:
            final_results[root] = final
        _message_versions(thread.root.versions, summary_versions, group_versions)
    calls: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rate_limited: dict[str, int] = defaultdict(int)
    for request in slack.requests():
        method = request.api_method or ""
        channel = str(request.params.get("channel") or request.response.get("channel") or "")
        if request.status == HTTPStatus.TOO_MANY_REQUESTS:
            rate_limited[channel] += 1
        if not method.startswith("chat."):
            continue
        ts = str(
            request.params.get("thread_ts")
            or request.params.get("ts")
            or request.response.get("ts")
            or ""
        )
        thread_root = root_of.get((channel, ts))
        if thread_root is not None:
            calls[thread_root][method] += 1
    return _SlackSeen(
        calls={root: dict(by_method) for root, by_method in calls.items()},
        delays=delays,
        approvals_shown=approvals_shown,
        group_versions=group_versions,
        rate_limited_by_channel=dict(sorted(rate_limited.items())),
        summary_versions=summary_versions,
        final_results=final_results,
    )


def _final_result(versions: Sequence[Any]) -> tuple[str, datetime] | None:
    """The final result a migration's root shows last (outcome, its event's time), if any."""
    last = (versions[-1].metadata or {}) if versions else {}
    payload = last.get("event_payload") or {}
    if last.get("event_type") != THREAD_METADATA_EVENT_TYPE:
        return None
    if payload.get("outcome") not in _SUMMARY_COUNT_OF or not payload.get("event_time"):
        return None
    return str(payload["outcome"]), datetime.fromisoformat(str(payload["event_time"]))


def _message_versions(
    versions: Sequence[Any],
    summary_versions: dict[str, list[tuple[datetime, dict[str, int]]]],
    group_versions: dict[str, list[tuple[datetime, int]]],
) -> None:
    """Add a wave summary's or an approval group message's versions (from their metadata)."""
    for version in versions:
        metadata = version.metadata or {}
        payload = metadata.get("event_payload") or {}
        at = datetime.fromtimestamp(version.time, UTC)
        if metadata.get("event_type") == SUMMARY_METADATA_EVENT_TYPE:
            summary_versions.setdefault(str(payload.get("wave", "")), []).append(
                (at, {str(k): int(v) for k, v in (payload.get("counts") or {}).items()})
            )
        elif metadata.get("event_type") == GROUP_METADATA_EVENT_TYPE:
            group_versions.setdefault(str(payload.get("group", "")), []).append(
                (at, int(payload.get("ready", 0)) + int(payload.get("decided", 0)))
            )


def _with_profile_quotas(launch: LaunchSettings, profile: RehearsalProfile) -> LaunchSettings:
    """The launch settings with the profile's MGN quotas, its lanes' own included: the
    coordinator plans with the quotas the emulator enforces, as a deployment's
    ``var.launch`` is set to the account's."""
    quotas = profile.quotas
    return replace(
        launch,
        concurrent_jobs=quotas.concurrent_jobs,
        servers_per_job=quotas.servers_per_job,
        servers_in_active_jobs=quotas.servers_in_active_jobs,
        quotas_by_lane={
            lane: overrides.model_dump(by_alias=False, exclude_none=True)
            for lane, overrides in profile.quotas_by_lane.items()
        },
    )
