"""Batched launches, wired: executions ask their lane's coordinator, a loop per lane answers.

``request`` (the ``request_launch`` handler, invoked with ``.waitForTaskToken`` by the
RequestTestLaunch / RequestCutover states) records the execution's request in its lane's
ledger and makes sure the lane's coordinator loop runs: the first request since the last
loop ended claims the lane's lease (a conditional write) and starts the loop, a second
state machine; later requests are only counted, so the running loop sees them.

``coordinate`` (the ``coordinate_launches`` handler, the loop's one Task) runs the lane's
:class:`LaunchCoordinator` once (test requests wait there for their servers' replication,
looked at in bulk), reports WaitForReplication as servers become launchable and
StartTestLaunch / StartCutover for every server of
each job it started (so each migration's thread tells its own story), and sends every
answered outcome to its waiting execution with ``SendTaskSuccess``. An outcome leaves the
lane's outbox only once sent (or once its execution turned out to have moved on: a
``TaskDoesNotExist``, ``InvalidToken`` or ``TaskTimedOut`` answer), so a loop that dies in
between re-sends it on its next run. The loop ends when nothing waits, no job runs and no
request was counted since it looked; otherwise it waits and runs again.

A loop also ends after ``hand_over_after_runs`` runs (its execution's history would
otherwise reach Step Functions' 25,000 events while a wave keeps its lane busy for days): it
moves the lease to a successor's name (one conditional write, while it still holds it),
starts an execution of that name and ends; the successor lingers, then runs as any loop. If
the start fails, the loop takes the lease back and keeps running (it tries again next run):
the lane is never without a loop, and never has two. The successor's name follows from the
loop's own and its run count, so a retried run that handed over already finds the lease
with its successor and makes sure it started (a name that exists is a success).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestration.adapters.lanes import Lane, LaneSessions
from orchestration.adapters.stepfunctions import ExecutionAlreadyExistsError, TaskNotWaitingError
from orchestration.adapters.wave_control import RecentWaveControls
from orchestration.clock import Clock
from orchestration.events import Step
from orchestration.launch_records import (
    LaunchIntent,
    LaunchOutcome,
    LaunchRequest,
    WaitingLaunch,
)
from orchestration.observability import logger
from orchestration.pipeline.errors import WaveCancelledError
from orchestration.pipeline.launch_batches import LaneQuotas
from orchestration.pipeline.launch_coordinator import LaunchCoordinator
from orchestration.pipeline.ports import (
    LaneLaunchLedger,
    StatusReports,
    TaskTokens,
    WaveControls,
    WaveMigrations,
)
from orchestration.pipeline.reporter import Identity, reports_deferred
from orchestration.pipeline.spec import MigrationSpec
from orchestration.pipeline.steps import Launch, State

# A loop's lease expires this long after its last run (or its claim) unless it runs again:
# taken for dead (its Lambda failed past its retries), the next request starts a new loop.
# Runs are a linger apart (60 s on AWS), so a loop's lease outlasts several lingers.
STALE_AFTER_SECONDS = 300.0
STALE_AFTER_LINGERS = 5
# A loop started on a definition that counts no runs (running when handovers were deployed)
# hands over after its next run, to a loop that counts.
UNCOUNTED_HAND_OVER_AFTER_RUNS = 1
ANOTHER_LOOP = "another loop holds the lane"
# Servers still replicating are looked at every this many lingers (5 minutes on AWS), and
# new requests' servers at once: one DescribeSourceServers per 200 servers per look.
READINESS_POLL_LINGERS = 5
# A loop with nothing to start or watch runs every this many lingers (a new request waits that
# long at most; the lane's whole ledger is read once per run).
QUIET_LINGERS = READINESS_POLL_LINGERS


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """The coordinator loop's ``config`` (rendered into its definition's Configure state)."""

    quotas: LaneQuotas
    linger_seconds: int
    hand_over_after_runs: int

    @classmethod
    def from_event(cls, config: Mapping[str, Any], lane: str = "") -> LoopConfig:
        """The loop's configuration for ``lane``: its own quotas where configured for it
        (``quotasByLane``: accounts have them raised), MGN's defaults otherwise."""
        quotas = {**config, **(config.get("quotasByLane") or {}).get(lane, {})}
        return cls(
            quotas=LaneQuotas(
                concurrent_jobs=int(quotas["concurrentJobs"]),
                servers_per_job=int(quotas["serversPerJob"]),
                servers_in_active_jobs=int(quotas["serversInActiveJobs"]),
            ),
            linger_seconds=int(config["lingerSeconds"]),
            hand_over_after_runs=int(
                config.get("handOverAfterRuns", UNCOUNTED_HAND_OVER_AFTER_RUNS)
            ),
        )


# How old a wave's control a launch request may go by (RecentWaveControls).
REQUEST_CONTROL_MAX_AGE_SECONDS = 30.0


class BatchedLaunches:
    """Args:
    lanes: the lane sessions (MGN of each lane, through its target role).
    ledger_for: the ledger of a lane, by its label (``account/region``).
    tasks: Step Functions (task tokens, starting the loop).
    coordinator_arn: the launch coordinator state machine.
    reporter, clock: as for the steps.
    migrations: the wave's migrations, read by the coordinator for cutovers that go after
        other applications (``dependsOn``).
    stale_after_seconds: when a loop that stopped beating is replaced.
    """

    def __init__(
        self,
        *,
        lanes: LaneSessions,
        ledger_for: Callable[[str], LaneLaunchLedger],
        tasks: TaskTokens,
        coordinator_arn: str,
        reporter: StatusReports,
        clock: Clock,
        stale_after_seconds: float = STALE_AFTER_SECONDS,
        wave_controls: WaveControls | None = None,
        migrations: WaveMigrations | None = None,
    ) -> None:
        self._lanes = lanes
        self._migrations = migrations
        self._wave_controls = wave_controls
        self._ledger_for = ledger_for
        self._tasks = tasks
        self._coordinator_arn = coordinator_arn
        self._report = reporter
        self._clock = clock
        self._stale_after = stale_after_seconds
        # Read by a launch request for its early refusal of a cancelled wave: the wave's
        # launches are requested together (200 servers ready in one job); the coordinator
        # reads every wave's control afresh at each run before it starts anything.
        self._recent_controls = (
            RecentWaveControls(wave_controls, clock, REQUEST_CONTROL_MAX_AGE_SECONDS)
            if wave_controls is not None
            else None
        )

    # --- request_launch --------------------------------------------------------------------

    def request(
        self, state: State, launch: Launch, task_token: str, execution: str = ""
    ) -> dict[str, Any]:
        spec = MigrationSpec.model_validate(state["spec"])
        control = self._recent_controls.get(spec.wave) if self._recent_controls else None
        if control is not None and control.state == "CANCELLED":
            raise WaveCancelledError(
                f"wave {spec.wave} was cancelled by <@{control.by}>: nothing is launched; "
                "publish its VMs again to start over"
            )
        lane = self._lanes.lane_of(spec)
        ledger = self._ledger_for(lane.label)
        now = self._clock.now()
        attempt = state.get("testAttempt")
        if launch == "test" and attempt:
            # A parked test launch retried (onFailure: park): a new request of the same
            # execution, not a repeat of the one already answered.
            execution = f"{execution}#{attempt}"
        request = LaunchRequest(
            migration_id=spec.migration_id,
            source_server_id=state["source"]["sourceServerId"],
            kind=launch,
            wave=spec.wave,
            requested_at=now,
            window_start=spec.window_start if launch == "cutover" else None,
            window_end=spec.window_end if launch == "cutover" else None,
            execution=execution,
            test_instance_id=_test_instance_to_retire(state) if launch == "cutover" else None,
            payload=identity_payload(spec),
            application=spec.app_name,
            cutover_after=tuple(spec.cutover_after) if launch == "cutover" else (),
            mgn_application_id=_to_associate(state) if launch == "test" else "",
        )
        if ledger.record_new_for_live_loop(request, task_token, now):
            # Recorded and counted while a live loop holds the lane: it sees it (one write).
            return {"requested": "new", "lane": lane.label, "startedLoop": None}
        recorded = ledger.record_request(request, task_token)
        name = loop_name(lane, now.timestamp())
        claimed = ledger.claim_loop(name, now, self._stale_after, counted=recorded == "new")
        if claimed is not None:
            try:
                self._tasks.start(self._coordinator_arn, claimed, {"lane": lane.label})
            except Exception:
                ledger.abandon_loop(claimed)  # the next request (or this one retried) starts it
                raise
        return {"requested": recorded, "lane": lane.label, "startedLoop": claimed}

    # --- coordinate_launches ---------------------------------------------------------------

    def coordinate(
        self,
        lane_label: str,
        execution: str,
        config: Mapping[str, Any],
        runs: int = 0,
        waited_seconds: float = 0,
    ) -> dict[str, Any]:
        """One run of the lane's loop ``execution``, which has run ``runs`` times before and
        waited ``waited_seconds`` since its last run (a linger if less, as at its start): the
        result says whether the loop ends (``done``), else how long to wait, and carries its
        runs, this one counted. The loop waits a linger while it has something to start or
        watch, and up to ``QUIET_LINGERS`` of them (never past a window's opening) while the
        lane only waits: for replication (looked at that often anyway), approvals, a window."""
        loop = LoopConfig.from_event(config, lane_label)
        ledger = self._ledger_for(lane_label)
        now = self._clock.now()
        stale_after = max(self._stale_after, STALE_AFTER_LINGERS * loop.linger_seconds)
        runs += 1
        hand_over = runs >= loop.hand_over_after_runs

        def hand_over_now() -> dict[str, Any]:
            return self._hand_over(
                ledger,
                lane_label,
                execution,
                runs,
                now=now,
                stale_after=stale_after,
                linger_seconds=loop.linger_seconds,
            )

        seen = ledger.beat(execution, now, stale_after)
        if seen is None:
            # Another loop holds the lane (this one was taken for dead), or this run, retried,
            # handed it over already: then make sure its successor started.
            if hand_over:
                return {"runs": runs, **hand_over_now()}
            return {"runs": runs, "done": True, "reason": ANOTHER_LOOP}
        account_id, _, region = lane_label.partition("/")
        clients = self._lanes.clients(Lane(account_id, region))
        coordinator = LaunchCoordinator(
            mgn=clients.mgn,
            ledger=ledger,
            quotas=loop.quotas,
            linger=timedelta(seconds=loop.linger_seconds),
            on_started=self._report_started,
            readiness_poll=timedelta(seconds=READINESS_POLL_LINGERS * loop.linger_seconds),
            on_replicated=self._report_replicated,
            wave_held=self._held_waves(),
            on_held=self._report_held,
            wave_migrations=self._migrations.wave_migrations if self._migrations else None,
            on_dependencies=self._report_dependencies,
            instances=clients.ec2.instances,
        )
        # The run's reports (replicated, started, held, waiting for dependencies), of many
        # migrations, are written together when it ends, before any outcome is sent.
        with reports_deferred():
            answered = coordinator.run_once(now, waited=timedelta(seconds=waited_seconds))
        left = coordinator.last_run
        assert left is not None  # run_once sets it
        # The outbox is read only if the run answered something or its read saw outcomes not
        # delivered: most runs of a waiting lane answer nothing (one Query each, otherwise).
        sent, moved_on = self.deliver(ledger) if answered or left.undelivered else (0, 0)
        idle = left.idle and not ledger.undelivered()
        result: dict[str, Any] = {
            "answered": len(answered),
            "sent": sent,
            "movedOn": moved_on,
            "waiting": max(left.waiting, 0),
            "jobs": left.jobs,
            "runs": runs,
        }
        if idle and ledger.release_loop(execution, seen):
            return {**result, "done": True}
        if hand_over:
            return {
                **result,
                **hand_over_now(),
            }
        quiet = left.quiet_for(now, timedelta(seconds=QUIET_LINGERS * loop.linger_seconds))
        wait = loop.linger_seconds if quiet is None else max(quiet.total_seconds(), 1)
        return {**result, "done": False, "waitSeconds": max(int(wait), loop.linger_seconds)}

    def _held_waves(self) -> Callable[[str], str]:
        """A wave's hold (paused or cancelled) as a mark, "" while it runs; each wave read
        once a run. The mark names the pause (who, when): a later pause is told anew."""
        controls = self._wave_controls
        seen: dict[str, str] = {}

        def held(wave: str) -> str:
            if controls is None:
                return ""
            if wave not in seen:
                control = controls.get(wave)
                seen[wave] = (
                    f"{control.state}:{control.by}:{control.at.isoformat()}"
                    if control is not None and control.holds_launches
                    else ""
                )
            return seen[wave]

        return held

    def _report_held(self, launches: Sequence[WaitingLaunch], hold: str) -> None:
        """Each held launch's thread shows its migration paused (as the per-VM design's
        held StartTestLaunch / StartCutover reports it)."""
        state, by, _ = hold.split(":", 2)
        for launch in launches:
            if not launch.request.payload:
                continue
            migration = identity_of(launch.request.payload)
            kind = launch.request.kind
            self._report.step(
                migration,
                Step.START_TEST_LAUNCH if kind == "test" else Step.START_CUTOVER,
                "WAITING",
                f"wave {migration.wave} {state.lower()} by <@{by}>: the {kind} launch starts "
                "when the wave is resumed",
                held=True,
            )

    def _hand_over(
        self,
        ledger: LaneLaunchLedger,
        lane_label: str,
        execution: str,
        runs: int,
        *,
        now: datetime,
        stale_after: float,
        linger_seconds: int,
    ) -> dict[str, Any]:
        """Move the lane's lease to this loop's successor and start it ("continue as new"):
        the end of the run's result (``done`` unless the start failed and the loop kept it)."""
        successor = successor_name(execution, runs)
        if not ledger.hand_over_loop(execution, successor, now, stale_after):
            return {"done": True, "reason": ANOTHER_LOOP}
        try:
            self._tasks.start(self._coordinator_arn, successor, {"lane": lane_label})
        except ExecutionAlreadyExistsError:
            pass  # this run, retried, had started it already
        except Exception as exc:
            # Not started (or not known to be): take the lease back and keep running, so the
            # lane always has a loop. A successor that did start finds the lease not its own.
            if not ledger.hand_over_loop(successor, execution, now, stale_after):
                return {"done": True, "reason": ANOTHER_LOOP}
            logger.warning(
                "handing the lane over failed: the loop keeps it and tries again next run",
                extra={"successor": successor},
                exc_info=True,
            )
            return {
                "done": False,
                "waitSeconds": linger_seconds,
                "handOverFailed": type(exc).__name__,
            }
        return {"done": True, "handedOverTo": successor}

    def deliver(self, ledger: LaneLaunchLedger) -> tuple[int, int]:
        """Send every outcome of the outbox; each leaves it once sent (or no longer awaited)."""
        sent = moved_on = 0
        done: list[LaunchOutcome] = []
        try:
            for outcome in ledger.undelivered():
                try:
                    self._tasks.send_task_success(outcome.task_token, outcome_output(outcome))
                    sent += 1
                except TaskNotWaitingError:
                    moved_on += 1  # the execution timed out, was stopped or retried
                done.append(outcome)
        finally:
            # Those sent leave the outbox together (one sent twice after a crash here is
            # answered TaskNotWaiting: harmless).
            ledger.delivered(done)
        return sent, moved_on

    def _report_replicated(self, launches: Sequence[WaitingLaunch]) -> None:
        for launch in launches:
            if launch.request.payload:
                migration = identity_of(launch.request.payload)
                self._report.step(
                    migration,
                    Step.WAIT_FOR_REPLICATION,
                    "SUCCEEDED",
                    "replication ready (continuous)",
                )

    def _report_dependencies(
        self, waiting: Sequence[tuple[WaitingLaunch, tuple[str, ...]]]
    ) -> None:
        for launch, apps in waiting:
            if launch.request.payload:
                migration = identity_of(launch.request.payload)
                self._report.step(
                    migration,
                    Step.START_CUTOVER,
                    "WAITING",
                    f"the cutover waits for {', '.join(apps)} to cut over first (dependsOn): "
                    "its MGN job starts once every VM of "
                    f"{'them' if len(apps) > 1 else 'it'} has",
                )

    def _report_started(
        self, intent: LaunchIntent, job_id: str, members: Sequence[WaitingLaunch]
    ) -> None:
        step = Step.START_TEST_LAUNCH if intent.kind == "test" else Step.START_CUTOVER
        servers = len(intent.members)
        for launch in members:
            if not launch.request.payload:
                continue
            migration = identity_of(launch.request.payload)
            self._report.step(
                migration,
                step,
                "SUCCEEDED",
                f"{intent.kind} launch started (MGN job {job_id}, "
                f"{servers} server{'s' if servers != 1 else ''})",
                jobId=job_id,
                servers=servers,
            )


# What a launch request keeps of its migration, for the coordinator's reports of it: who it
# is and where its events go (the spec's own names for them). Every run of the lane's loop
# reads every open request: 1,000 requests of a wave fit one Query page this way, where the
# whole spec (about 1.5 KB a request) took two.
_IDENTITY = {
    "migrationId": "migration_id",
    "wave": "wave",
    "appName": "app_name",
    "targetVmName": "target_vm_name",
    "correlationId": "correlation_id",
    "slackChannel": "slack_channel",
    "callbackUrls": "callback_urls",
    "targetAccountId": "target_account_id",
    "targetRegion": "target_region",
}


def identity_payload(spec: MigrationSpec) -> str:
    """The request's payload: the migration's identity and routing, as JSON."""
    return json.dumps(
        {
            name: list(value) if isinstance(value := getattr(spec, field), tuple) else value
            for name, field in _IDENTITY.items()
        },
        separators=(",", ":"),
    )


def identity_of(payload: str) -> Identity:
    """The migration a request's payload names (``identity_payload``'s, or the whole spec a
    request recorded before kept: the same names)."""
    data = json.loads(payload)
    return Identity(
        migration_id=str(data["migrationId"]),
        wave=str(data["wave"]),
        app_name=str(data["appName"]),
        target_vm_name=str(data["targetVmName"]),
        correlation_id=str(data["correlationId"]),
        slack_channel=data.get("slackChannel") or None,
        callback_urls=tuple(data.get("callbackUrls") or ()),
        target_account_id=str(data.get("targetAccountId") or ""),
        target_region=str(data.get("targetRegion") or ""),
    )


def _test_instance_to_retire(state: State) -> str | None:
    """The execution's test instance, which the coordinator retires before the cutover;
    None if PrepareCutover terminated it already (as the per-VM design does, and executions
    prepared before the coordinator retired test instances did)."""
    if (state.get("preparedCutover") or {}).get("terminateJobId"):
        return None
    # VerifyTestLaunch's result; verified at the approval gate (VerifyTestAndAwaitApproval)
    # there is none in the state, and the instance verified is the one the test launched.
    instance_id = (state.get("testCheck") or state.get("test") or {}).get("instanceId")
    return str(instance_id) if instance_id else None


def outcome_output(outcome: LaunchOutcome) -> dict[str, Any]:
    """What RequestTestLaunch / RequestCutover put at ``$.test`` / ``$.cutover``: the
    verify step reads it instead of asking MGN for the job again."""
    output: dict[str, Any] = {
        "started": True,
        "done": True,
        "jobId": outcome.job_id,
        "instanceId": outcome.launched_ec2_instance_id,
        "launchStatus": outcome.launch_status,
        "detail": outcome.detail,
    }
    if outcome.instance is not None:
        output["instance"] = outcome.instance.as_data()
    return output


def successor_name(execution: str, runs: int) -> str:
    """The execution the loop ``execution`` hands its lane over to after ``runs`` runs: the
    same for a retried run (a repeated start is refused as existing: a success), another for
    each handover. Shaped as :func:`loop_name`: its last part is replaced by a digest."""
    stem = execution.rsplit("-", 1)[0][:71]
    digest = hashlib.sha256(f"{execution}#{runs}".encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


def loop_name(lane: Lane, epoch: float) -> str:
    """A unique execution name for a lane's loop (<= 80 characters, no ``/``)."""
    return f"launches-{lane.account_id}-{lane.region}-{int(epoch * 1000)}-{uuid.uuid4().hex[:8]}"


def _to_associate(state: State) -> str:
    """The MGN application the test launch's preparation left the server to join (the
    coordinator associates it with the others it launches), else ""."""
    prepared = state.get("prepared") or {}
    if not prepared.get("mgnAssociateLater"):
        return ""
    return str(prepared.get("mgnApplicationId") or "")
