"""The migration's steps, as the state machine runs them. Pure logic over small ports.

Each step takes the execution state (a dict: ``spec``, ``config`` and the results of the
steps before it), does its work, reports a status event and returns its own result, which
the state machine stores at the step's ``ResultPath``. Steps are idempotent: a retried
Lambda finds the MGN job it already started instead of starting a second one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from orchestration.adapters.lanes import LaneError
from orchestration.adapters.mgn import (
    Job,
    JobServer,
    MgnConflictError,
    MgnError,
    MgnNotInitializedError,
    MgnThrottledError,
    SourceServer,
    SourceServerNotFoundError,
)
from orchestration.adapters.wave_control import RecentWaveControls, WaveControl
from orchestration.clock import Clock
from orchestration.events import (
    MigrationCompleted,
    MigrationFailed,
    RollbackCompleted,
    RollbackStarted,
    Step,
)
from orchestration.launch_records import Instance
from orchestration.observability import logger
from orchestration.pipeline.cutover_order import check_dependencies, dependency_failed
from orchestration.pipeline.errors import (
    ROLLBACK_REQUESTED,
    CutoverWindowClosedError,
    DependencyFailedError,
    HealthCheckFailedError,
    LaunchFailedError,
    LaunchJobRunningError,
    LaunchTimeoutError,
    PrerequisiteError,
    ReplicationStalledError,
    ReplicationTimeoutError,
    RollbackRefusedError,
    WaveCancelledError,
)
from orchestration.pipeline.lane_facts import LaneFacts
from orchestration.pipeline.mgn_grouping_sync import MgnGroupingSync, PlacementOutcome
from orchestration.pipeline.ports import (
    Ec2,
    FinalizeRequests,
    HealthProbe,
    Lanes,
    LaneServices,
    Mgn,
    StatusReports,
    WaveControls,
    WaveMigrations,
)
from orchestration.pipeline.post_launch import (
    PostLaunchVerdict,
    action_changes,
    judge,
    wait_budget_seconds,
)
from orchestration.pipeline.preflight import (
    PreflightFinding,
    network_interface_findings,
    replication_findings,
)
from orchestration.pipeline.resolution import SourceServerDirectory, resolve_source_server
from orchestration.pipeline.spec import MigrationSpec
from orchestration.post_launch_actions import ACTIONS_TAG

if TYPE_CHECKING:
    from orchestration.adapters.state_store import MigrationRecord

# Which of MGN's two launches a step works on (the ASL passes it as ``phase``).
Launch = Literal["test", "cutover"]
State = dict[str, Any]

# Replication states that will not become ready without someone acting.
STUCK_REPLICATION = {"STALLED", "DISCONNECTED", "PAUSED", "STOPPED"}
# Lifecycle states a server is launchable in once its replication is ready.
LAUNCHABLE_LIFECYCLE = frozenset({"READY_FOR_TEST", "TESTING", "READY_FOR_CUTOVER"})
# Where prepare_source put the server in MGN's grouping, kept in its result (``$.prepared``)
# so the cutover's preparation can tell it is still there without asking MGN.
_PLACEMENT_KEYS = ("mgnWaveId", "mgnApplicationId", "mgnAssociateLater")
# Lifecycle states from which a launch's instances can be terminated after a state change.
REVERT_TO = {"TESTING": "READY_FOR_TEST", "CUTTING_OVER": "READY_FOR_CUTOVER"}


@dataclass(frozen=True, slots=True)
class PollConfig:
    """Polling and time limits, from the state machine's ``config`` (rendered placeholders)."""

    initial_seconds: int
    max_seconds: int
    backoff: float
    replication_timeout_seconds: int
    launch_timeout_seconds: int

    @classmethod
    def from_state(cls, state: State) -> PollConfig:
        config = state["config"]
        return cls(
            initial_seconds=int(config["pollInitialSeconds"]),
            max_seconds=int(config["pollMaxSeconds"]),
            backoff=float(config["pollBackoff"]),
            replication_timeout_seconds=int(config["replicationTimeoutSeconds"]),
            launch_timeout_seconds=int(config["launchTimeoutSeconds"]),
        )

    def next_wait(self, previous: Any) -> int:
        if not previous:
            return self.initial_seconds
        return min(self.max_seconds, max(1, round(int(previous) * self.backoff)))


def replication_ready(server: SourceServer) -> bool:
    """Whether the server can be launched: replication CONTINUOUS, in a launchable lifecycle
    state. (MGN sets ``lagDuration`` from the first CONTINUOUS on, and launches only then.)"""
    return (
        server.replication_state == "CONTINUOUS"
        and server.lag_duration is not None
        and server.lifecycle_state in LAUNCHABLE_LIFECYCLE
    )


def _poll(state: State, key: str, config: PollConfig, now: float, **result: Any) -> dict[str, Any]:
    """A polling step's result; ``now`` is epoch seconds (from the injected clock)."""
    previous = state.get(key) or {}
    return {
        **result,
        "done": False,
        "waitSeconds": config.next_wait(previous.get("waitSeconds")),
        "startedAt": previous.get("startedAt") or now,
        "polls": int(previous.get("polls", 0)) + 1,
    }


def _elapsed(state: State, key: str, now: float) -> float:
    started = (state.get(key) or {}).get("startedAt")
    return now - float(started) if started else 0.0


class MigrationSteps:
    def __init__(
        self,
        *,
        lanes: Lanes,
        prober: HealthProbe,
        reporter: StatusReports,
        clock: Clock,
        wave_controls: WaveControls | None = None,
        migrations: WaveMigrations | None = None,
        finalize_requests: FinalizeRequests | None = None,
        grouping: MgnGroupingSync | None = None,
    ) -> None:
        # MGN and EC2 are per lane (the spec's target account and Region), asked per call.
        self._lanes = lanes
        self._wave_controls = wave_controls
        self._recent_controls = (
            RecentWaveControls(wave_controls, clock) if wave_controls is not None else None
        )
        # The wave's migrations, for a cutover that waits for other applications
        # (``dependsOn``); without them (unit tests of other steps) nothing waits.
        self._migrations = migrations
        # An operator's "finalize now" during a finalizeAfter hold; without it (unit tests of
        # other steps) a hold lasts its full time.
        self._finalize_requests = finalize_requests
        # MGN's own waves and applications, kept as the manifests say (prepare_source); without
        # it (unit tests of other steps) MGN's grouping is not touched.
        self._grouping = grouping
        self._prober = prober
        self._report = reporter
        self._clock = clock
        self._source_servers = SourceServerDirectory(clock)
        self._facts = LaneFacts(clock)

    def _epoch(self) -> float:
        """Now in epoch seconds (what polling steps keep in ``startedAt``)."""
        return self._clock.now().timestamp()

    # --- ValidateInput -------------------------------------------------------------------

    def validate_and_prepare(self, state: State) -> dict[str, Any]:
        """ValidateInput, then the test launch's PrepareSource in the same invocation (one
        Lambda run and one record write fewer): the source as validated, with what the
        preparation returned (``prepared``) if it could be done here. Whatever stops the
        preparation here leaves it to the PrepareSource state, with that state's retries;
        a validation that fails fails the step as ever."""
        source = self.validate_input(state)
        prepared = _at_once(
            "PrepareSource", state, lambda: self.prepare_source({**state, "source": source}, "test")
        )
        if prepared is None:
            return {**source, "preparedForTest": False}
        return {**source, "preparedForTest": True, "prepared": prepared}

    def validate_input(self, state: State) -> dict[str, Any]:
        """Live prerequisites, all checked and reported at once."""
        spec = MigrationSpec.model_validate(state["spec"])
        self._unless_cancelled(spec.wave)
        # The migration is RUNNING already: start_migration says so as it starts the
        # execution (and a redelivery, if the start was not recorded). Written with the
        # step's outcome, this report marks no status: a late one cannot undo a rollback.
        self._report.step(spec, Step.VALIDATE_INPUT, "STARTED", "checking prerequisites")
        lane = self._lane_checked(spec)
        mgn, ec2 = lane.mgn, lane.ec2
        # The source server first: its lookup also says whether MGN is initialized in the
        # lane (MGN answers UninitializedAccountException until then), one call for both.
        server: SourceServer | None = None
        server_problem: str | None = None
        try:
            server = self._source_servers.resolve(_lane_of(spec), mgn, spec.source)
        except MgnNotInitializedError as exc:
            raise _not_initialized(spec, _where(spec)) from exc
        except SourceServerNotFoundError as exc:
            server_problem = str(exc)
        problems: list[str] = []
        for label, subnet_id, groups in (
            ("", spec.subnet_id, spec.security_group_ids),
            ("test ", spec.test_subnet_id, spec.test_security_group_ids),
        ):
            if label and (subnet_id, groups) == (spec.subnet_id, spec.security_group_ids):
                continue
            problems.extend(self._network_problems(ec2, spec, label, subnet_id, groups))
        profile = spec.iam_instance_profile
        if profile and not self._facts.get(
            (_lane_of(spec), "instance profile", profile),
            lambda: ec2.instance_profile_exists(profile),
            good=bool,
        ):
            problems.append(
                f"IAM instance profile {spec.iam_instance_profile!r} does not exist: create it "
                "or fix iamInstanceProfile"
            )
        if not spec.approvers:
            problems.append(
                "nobody may approve this migration: list approvers in the wave manifest "
                "(or set DEFAULT_APPROVERS for hand-written requests)"
            )
        if server_problem is not None:
            problems.append(server_problem)
        preflight = self._preflight(spec, server) if server is not None else []
        problems.extend(f.message for f in preflight if f.severity == "error")
        if problems or server is None:
            raise PrerequisiteError("; ".join(problems))
        warnings = "".join(f"; warning: {f.message}" for f in preflight)
        self._report.step(
            spec,
            Step.VALIDATE_INPUT,
            "SUCCEEDED",
            f"prerequisites met; MGN source server {server.source_server_id}{warnings}",
            sourceServerId=server.source_server_id,
        )
        return {
            "sourceServerId": server.source_server_id,
            # For PrepareSource: whether the server may hold Wavepilot's post-launch actions
            # (a VM with none in its manifest then needs no look at them) and its ARN.
            "sourceServerArn": server.arn,
            "actionsTagged": server.actions_tagged,
        }

    def _preflight(self, spec: MigrationSpec, server: SourceServer) -> list[PreflightFinding]:
        """Preflight's checks that need nothing but the source server already read (no call
        of their own): too many NICs fails validation (no launch could carry them); the
        replication against the window is only reported (the pipeline waits for replication
        and rolls back a closed window itself). ``wavepilot preflight`` runs them all."""
        findings = network_interface_findings(spec.target_vm_name, server)
        if spec.window_start is not None and spec.window_end is not None:
            findings += [
                replace(finding, severity="warning")
                for finding in replication_findings(
                    spec.target_vm_name,
                    server,
                    spec.window_start,
                    spec.window_end,
                    self._clock.now(),
                )
            ]
        return findings

    def _lane_checked(self, spec: MigrationSpec) -> LaneServices:
        """The migration's lane, if its role can be assumed. Checked before anything else,
        so such a wave touches nothing (MGN's initialization is known from the first MGN
        call, the source server's lookup)."""
        try:
            return self._lanes.for_spec(spec)
        except LaneError as exc:
            raise PrerequisiteError(str(exc)) from exc

    def _network_problems(
        self, ec2: Ec2, spec: MigrationSpec, label: str, subnet_id: str, group_ids: list[str]
    ) -> list[str]:
        lane = _lane_of(spec)
        subnet = self._facts.get(
            (lane, "subnet", subnet_id), lambda: ec2.subnet(subnet_id), good=lambda s: s is not None
        )
        if subnet is None:
            return [f"{label}subnet {subnet_id} does not exist in {_where(spec)}"]
        problems = []
        vpcs = self._facts.get(
            (lane, "security groups", tuple(sorted(group_ids))),
            lambda: ec2.security_group_vpcs(group_ids),
            good=lambda found: set(group_ids) <= set(found),
        )
        for group_id in group_ids:
            if group_id not in vpcs:
                problems.append(f"{label}security group {group_id} does not exist")
            elif vpcs[group_id] != subnet.vpc_id:
                problems.append(
                    f"{label}security group {group_id} is in {vpcs[group_id]} but {label}subnet "
                    f"{subnet_id} is in {subnet.vpc_id}: they must share a VPC"
                )
        zone = subnet.availability_zone
        if not self._facts.get(
            (lane, "instance type", spec.instance_type, zone),
            lambda: ec2.instance_type_offered(spec.instance_type, zone),
            good=bool,
        ):
            problems.append(
                f"instance type {spec.instance_type} is not offered in {subnet.availability_zone} "
                f"({label}subnet {subnet_id}): choose another type or subnet"
            )
        return problems

    # --- PrepareSource -------------------------------------------------------------------

    def prepare_source(self, state: State, launch: Launch) -> dict[str, Any]:
        """Apply the launch's settings; for cutover, mark the server ready for it and retire
        the test instance first (batched: the lane's coordinator retires it, in batches)."""
        spec = MigrationSpec.model_validate(state["spec"])
        server_id = state["source"]["sourceServerId"]
        step = Step.PREPARE_SOURCE if launch == "test" else Step.PREPARE_CUTOVER
        lane = self._lanes.for_spec(spec)
        terminate_job: str | None = None
        server: SourceServer | None = None
        if state["config"].get("launchDesign") == "batched":
            # Batched, the lane's coordinator watches replication in bulk (a stalled one is
            # answered REPLICATION_STALLED) and retires the test instance before the cutover
            # starts (its request names it): the server is not looked at here.
            if launch == "cutover":
                server = _stalled_or_fine(_ready_for_cutover(lane.mgn, server_id, state))
        else:
            terminate_job, server = self._prepare_per_vm(lane, server_id, state, launch)
        grouping_note, grouping_data = self._place_in_mgn_grouping(
            spec,
            server_id,
            server,
            state.get("prepared") if launch == "cutover" else None,
            # Batched, the test launch's coordinator associates the servers in bulk.
            defer=launch == "test" and state["config"].get("launchDesign") == "batched",
        )
        subnet, groups = (
            (spec.test_subnet_id, spec.test_security_group_ids)
            if launch == "test"
            else (spec.subnet_id, spec.security_group_ids)
        )
        tags = {
            **spec.tags,
            "Name": spec.target_vm_name if launch == "cutover" else f"{spec.target_vm_name}-test",
            "wavepilot:migration-id": spec.migration_id,
            "wavepilot:phase": launch,  # the tag's name predates Launch: instances carry it
        }
        if launch == "test":  # the same for the cutover: applied once
            # MGN answers with the launch configuration: its launch template is known from
            # here on (the cutover's preparation reads it from the test's).
            template_id = lane.mgn.update_launch_configuration(
                server_id, boot_mode=spec.boot_mode, os_byol=spec.os_byol
            )
        else:
            template_id = _launch_template_of(state)
        version = lane.ec2.set_launch_template(
            template_id,
            instance_type=spec.instance_type,
            subnet_id=subnet,
            security_group_ids=groups,
            iam_instance_profile=spec.iam_instance_profile,
            tags=tags,
        )
        actions = ""
        if launch == "test":
            actions = _set_post_launch_actions(
                lane.mgn, server_id, spec, _actions_mark(server, state["source"])
            )
        self._report.step(
            spec,
            step,
            "SUCCEEDED",
            f"{launch} launch settings applied: {spec.instance_type} in {subnet} "
            f"(launch template version {version}){actions}{grouping_note}",
            launchTemplateVersion=version,
            **grouping_data,
        )
        prepared: dict[str, Any] = {
            "launchTemplateId": template_id,
            "launchTemplateVersion": version,
            "terminateJobId": terminate_job,
            **{key: grouping_data[key] for key in _PLACEMENT_KEYS if key in grouping_data},
        }
        if launch == "cutover" and state["config"].get("launchDesign") == "batched":
            # Batched, the cutover is requested from the coordinator once its window has
            # opened: whether to wait (one Wait, however far) is said here, in the same
            # invocation, and a window closed already rolls back.
            waiting = self._window_wait(state, spec, PollConfig.from_state(state), "window")
            prepared["window"] = {**waiting, "open": False} if waiting else {"open": True}
        return prepared

    def _place_in_mgn_grouping(
        self,
        spec: MigrationSpec,
        server_id: str,
        server: SourceServer | None,
        prepared_for_test: dict[str, Any] | None,
        *,
        defer: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """Put the server in MGN's wave and application as the manifests say; what MGN had
        instead (drift) becomes part of the step's message, for the thread. MGN's grouping is
        for people in its console: a refusal there is reported, and the migration goes on
        (throttling is retried as every MGN call's)."""
        if self._grouping is None:
            return "", {}
        before = prepared_for_test or {}
        placed_before = (
            PlacementOutcome(before["mgnWaveId"], before["mgnApplicationId"])
            if before.get("mgnWaveId") and before.get("mgnApplicationId")
            else None
        )
        try:
            placed = self._grouping.place(spec, server_id, server, placed_before, defer=defer)
        except MgnThrottledError:
            raise
        except MgnError as exc:
            return f"; MGN's waves and applications not updated: {exc}", {}
        summary = placed.summary()
        data: dict[str, Any] = {
            "mgnWaveId": placed.wave_id,
            "mgnApplicationId": placed.application_id,
        }
        if placed.drift:
            data["mgnDrift"] = list(placed.drift)
        if placed.associate_later:
            data["mgnAssociateLater"] = True
        return (f"; {summary}" if summary else ""), data

    def _prepare_per_vm(
        self, lane: LaneServices, server_id: str, state: State, launch: Launch
    ) -> tuple[str | None, SourceServer]:
        """Per-VM: the server's replication must not be stuck; for the cutover, the server
        is marked ready for it and its test instance terminated (the TERMINATE job's ID).
        Also returns the server as looked at (MGN's grouping needs its application)."""
        server = _stalled_or_fine(lane.mgn.source_server(server_id))
        if launch == "test" or not (
            server.lifecycle_state == "TESTING" or server.launched_instance_id
        ):
            return None, server
        active = _unless_launching(lane.mgn.active_job_for(server, _known_jobs(state)), server)
        if server.lifecycle_state == "TESTING":
            server = lane.mgn.change_life_cycle_state(server_id, "READY_FOR_CUTOVER")
        if not server.launched_instance_id:
            return None, server
        if active is not None:  # a TERMINATE job: a retry of this step started it
            return active.job_id, server
        return lane.mgn.terminate_target_instances([server_id]).job_id, server

    # --- replication ---------------------------------------------------------------------

    def check_replication(self, state: State) -> dict[str, Any]:
        spec = MigrationSpec.model_validate(state["spec"])
        config = PollConfig.from_state(state)
        server = self._lanes.for_spec(spec).mgn.source_server(state["source"]["sourceServerId"])
        progress = (
            round(100 * server.replicated_bytes / server.total_bytes) if server.total_bytes else 0
        )
        if server.replication_state in STUCK_REPLICATION:
            raise ReplicationStalledError(
                f"replication of {server.source_server_id} is {server.replication_state}"
                f"{': ' + server.replication_error if server.replication_error else ''}"
            )
        if replication_ready(server):
            self._report.step(
                spec, Step.WAIT_FOR_REPLICATION, "SUCCEEDED", "replication ready (continuous)"
            )
            return {"done": True, "progress": 100, "replicationState": server.replication_state}
        if _elapsed(state, "replication", self._epoch()) > config.replication_timeout_seconds:
            raise ReplicationTimeoutError(
                f"replication of {server.source_server_id} is still {server.replication_state} "
                f"({progress}%) after {config.replication_timeout_seconds} s"
            )
        previous = state.get("replication") or {}
        if (
            previous.get("replicationState") != server.replication_state
            or previous.get("progress", -1) // 25 != progress // 25
        ):
            self._report.step(
                spec,
                Step.WAIT_FOR_REPLICATION,
                "IN_PROGRESS",
                f"replication {server.replication_state.lower()}, {progress}%",
                progress=progress,
            )
        return _poll(
            state,
            "replication",
            config,
            self._epoch(),
            progress=progress,
            replicationState=server.replication_state,
        )

    # --- launches ------------------------------------------------------------------------

    def trigger(self, state: State, launch: Launch) -> dict[str, Any]:
        """Start the test or cutover launch (once), inside the cutover window for cutover."""
        spec = MigrationSpec.model_validate(state["spec"])
        config = PollConfig.from_state(state)
        server_id = state["source"]["sourceServerId"]
        step = Step.START_TEST_LAUNCH if launch == "test" else Step.START_CUTOVER
        key = "test" if launch == "test" else "cutover"
        if launch == "cutover":
            waiting = self._window_wait(state, spec, config, key)
            if waiting is not None:
                return {**waiting, "started": False}
        mgn = self._lanes.for_spec(spec).mgn
        active = mgn.active_job_for(mgn.source_server(server_id), _known_jobs(state))
        wanted = "START_TEST" if launch == "test" else "START_CUTOVER"
        if active is not None and active.initiated_by == wanted:
            return {"started": True, "done": True, "jobId": active.job_id}  # a retry: adopt it
        if active is not None:
            return {
                **_poll(state, key, config, self._epoch()),
                "started": False,
                "blockedBy": active.job_id,
            }
        held = self._held(spec.wave)
        if held is not None and held.state == "CANCELLED":
            raise WaveCancelledError(_cancelled(held))
        if held is not None:
            # An operator paused the wave: nothing new starts until it is resumed.
            if not (state.get(key) or {}).get("held"):
                self._report.step(
                    spec,
                    step,
                    "WAITING",
                    f"wave {spec.wave} {held.state.lower()} by <@{held.by}>"
                    + (f" ({held.reason})" if held.reason else "")
                    + f": the {launch} launch starts when the wave is resumed",
                    held=True,  # the thread shows the migration paused
                )
            return {
                **_poll(state, key, config, self._epoch()),
                "started": False,
                "held": True,
                "waitSeconds": config.initial_seconds,
            }
        if launch == "cutover" and spec.cutover_after:
            waiting = self._dependencies_wait(state, spec, config, key)
            if waiting is not None:
                return {**waiting, "started": False}
        tags = {"wavepilot:migration-id": spec.migration_id, "wavepilot:revision": spec.revision}
        try:
            job = (
                mgn.start_test([server_id], tags)
                if launch == "test"
                else mgn.start_cutover([server_id], tags)
            )
        except MgnConflictError as exc:
            raise LaunchFailedError(
                f"MGN refused the {launch} launch of {server_id}: {exc}"
            ) from exc
        self._report.step(
            spec,
            step,
            "SUCCEEDED",
            f"{launch} launch started (MGN job {job.job_id})",
            jobId=job.job_id,
        )
        return {"started": True, "done": True, "jobId": job.job_id}

    def _dependencies_wait(
        self, state: State, spec: MigrationSpec, config: PollConfig, key: str
    ) -> dict[str, Any] | None:
        """A polling result while a VM of an application this cutover goes after
        (``cutoverAfter``) has not cut over, or None once all have; raises if one of them
        rolled back or failed. An application with no migration recorded yet is waited
        for too: the cutover window bounds the wait (a closed window rolls back)."""
        if self._migrations is None:
            return None
        check = check_dependencies(
            spec.migration_id, spec.cutover_after, self._migrations.wave_migrations(spec.wave)
        )
        if check.failed:
            raise DependencyFailedError(dependency_failed(spec.cutover_after, check.failed))
        pending, pending_vms = list(check.pending), list(check.pending_vms)
        if not pending:
            return None
        if not (state.get(key) or {}).get("dependsOn"):
            self._report.step(
                spec,
                Step.START_CUTOVER,
                "WAITING",
                f"the cutover waits for {', '.join(pending)} to cut over first (dependsOn): "
                f"{_not_yet(pending, pending_vms)}",
            )
        waiting = _poll(state, key, config, self._epoch())
        # Capped lower than the other waits: on migration day the dependent cutover should
        # follow within minutes, not pollMaxSeconds (15 minutes as deployed).
        waiting["waitSeconds"] = min(waiting["waitSeconds"], DEPENDENCY_POLL_MAX_SECONDS)
        return {**waiting, "dependsOn": pending}

    def _unless_cancelled(self, wave: str) -> None:
        """Validation's early refusal of a cancelled wave, from its control as read in the
        last half minute (a wave's migrations validate together; the cancel rolls back those
        that started)."""
        control = self._recent_controls.get(wave) if self._recent_controls else None
        if control is not None and control.state == "CANCELLED":
            raise WaveCancelledError(_cancelled(control))

    def _held(self, wave: str) -> WaveControl | None:
        """The wave's pause or cancel, if an operator holds its launches now."""
        if self._wave_controls is None:
            return None
        control = self._wave_controls.get(wave)
        return control if control is not None and control.holds_launches else None

    def await_window(self, state: State) -> dict[str, Any]:
        """Batched launches: the cutover is requested from the coordinator only once its
        window has opened (one Wait until then, however far); a closed window rolls back.
        PrepareCutover says so itself now; this step serves executions started on a
        definition that still has the ``AwaitCutoverWindow`` state."""
        spec = MigrationSpec.model_validate(state["spec"])
        waiting = self._window_wait(state, spec, PollConfig.from_state(state), "window")
        return {**waiting, "open": False} if waiting is not None else {"open": True}

    def _window_wait(
        self, state: State, spec: MigrationSpec, config: PollConfig, key: str
    ) -> dict[str, Any] | None:
        """A polling result that waits for the cutover window to open, or None if it is
        open; raises if it has closed."""
        window = spec.in_window(self._clock.now())
        if window == "closed":
            raise CutoverWindowClosedError(
                f"the cutover window closed at {_iso(spec.window_end)}"
                ": the migration is rolled back; set a new window in the manifest and merge"
            )
        if window == "before" and spec.window_start is not None:
            until = (spec.window_start - self._clock.now()).total_seconds()
            if not (state.get(key) or {}).get("announced"):
                self._report.step(
                    spec,
                    Step.START_CUTOVER,
                    "WAITING",
                    f"approved; the cutover waits for the window: {_iso(spec.window_start)}",
                )
            # One Wait until the window opens, however far: polling every few minutes
            # for days would only cost invocations and state transitions (the spec, and
            # so the window, cannot change under a running execution).
            return {
                **_poll(state, key, config, self._epoch()),
                "announced": True,
                "waitSeconds": max(1, int(until) + 1),
            }
        return None

    def verify_test_at_once(self, state: State) -> dict[str, Any] | None:
        """VerifyTestLaunch run by the approval gate's own invocation (batched: the
        coordinator's outcome usually shows the test instance up): its result, or None if
        anything stopped it. A result not ``done`` (booting, post-launch actions, health
        checks to look at again) or None leaves the verification to the VerifyTestLaunch
        state, with its waits, retries and catch; only a verified test goes to the gate."""
        return _at_once("VerifyTestLaunch", state, lambda: self.verify_launch(state, "test"))

    def verify_launch(
        self,
        state: State,
        launch: Launch,
        *,
        finalize: bool = False,
        started_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Job result, then EC2 status checks, then the post-launch actions MGN runs on the
        instance (``postLaunchActions``), then the VM's own health checks. A verified cutover
        says whether it was ``finalized`` too: asked to ``finalize`` (``started_at``: the
        execution's start, for the migration's duration) and with no hold, it is finalized
        at once if it can be."""
        spec = MigrationSpec.model_validate(state["spec"])
        config = PollConfig.from_state(state)
        server_id = state["source"]["sourceServerId"]
        key = "testCheck" if launch == "test" else "cutoverCheck"
        step = Step.VERIFY_TEST_LAUNCH if launch == "test" else Step.VERIFY_CUTOVER
        lane = self._lanes.for_spec(spec)
        started = state["test" if launch == "test" else "cutover"]
        # The launch timeout does not count the time the post-launch actions may take.
        allowed = config.launch_timeout_seconds + (
            wait_budget_seconds(spec.post_launch_actions) if spec.post_launch_actions else 0
        )
        timed_out = _elapsed(state, key, self._epoch()) > allowed
        entry: JobServer | None = None
        if "launchStatus" in started:
            # Batched: the coordinator's outcome for this server; MGN is asked again only
            # for the post-launch actions' results, which come after the job's launches end.
            instance_id = _coordinated_launch(started, launch, server_id)
        else:
            job = lane.mgn.job(started["jobId"])
            entry = job.server(server_id)
            if (
                entry is None
                or entry.launch_status == "FAILED"
                or (job.status == "COMPLETED" and entry.launch_status != "LAUNCHED")
            ):
                raise LaunchFailedError(
                    f"MGN {launch} launch job {job.job_id} reports "
                    f"{entry.launch_status if entry else 'no entry'} "
                    f"for {server_id}: see the job log in the MGN console"
                )
            if entry.launch_status != "LAUNCHED" or not entry.launched_instance_id:
                if timed_out:
                    raise LaunchTimeoutError(
                        f"{launch} launch job {job.job_id} still {entry.launch_status}"
                    )
                return _poll(
                    state,
                    key,
                    config,
                    self._epoch(),
                    stage="launching",
                    launchStatus=entry.launch_status,
                )
            instance_id = entry.launched_instance_id
        # Batched, the coordinator read the job's instances in bulk as it completed: the
        # first look starts from what it saw, if that was the instance up; a later look (or
        # an instance not yet up then) asks EC2.
        seen = _seen_up(started, instance_id) if key not in state else None
        instance = seen or lane.ec2.instance(instance_id)
        if instance is None or not instance.up:
            if timed_out:
                raise LaunchTimeoutError(
                    f"instance {instance_id} is "
                    f"{instance.state if instance else 'missing'} "
                    f"after {allowed} s"
                )
            return _poll(
                state,
                key,
                config,
                self._epoch(),
                stage="booting",
                instanceId=instance_id,
            )
        actions = self._post_launch_verdict(
            state, key, spec, mgn=lane.mgn, server_id=server_id, started=started, entry=entry
        )
        if actions.waiting:
            return _poll(
                state,
                key,
                config,
                self._epoch(),
                stage="post-launch actions",
                instanceId=instance.instance_id,
                postLaunchSince=(state.get(key) or {}).get("postLaunchSince") or self._epoch(),
                postLaunchActions=[r.as_data() for r in actions.results],
            )
        _unless_blocking(actions, launch, instance.instance_id)
        results = [
            self._prober.run(instance.private_ip or "", check) for check in spec.health_checks
        ]
        failed = [r for r in results if not r.passed]
        if failed:
            if timed_out:
                raise HealthCheckFailedError(
                    f"instance {instance.instance_id} failed "
                    + "; ".join(f"{r.check}: {r.detail}" for r in failed)
                )
            return _poll(
                state,
                key,
                config,
                self._epoch(),
                stage="health checks",
                instanceId=instance.instance_id,
            )
        summary = ", ".join(r.check for r in results) or "no health checks defined"
        ran = f"; post-launch actions: {actions.summary()}" if actions.results else ""
        data: dict[str, Any] = {"instanceId": instance.instance_id}
        if actions.results:
            data["postLaunchActions"] = [r.as_data() for r in actions.results]
        self._report.step(
            spec,
            step,
            "SUCCEEDED",
            f"{launch} instance {instance.instance_id} running, status checks ok, "
            f"{summary} passed{ran}",
            **data,
        )
        hold_seconds = spec.finalize_after_minutes * 60 if launch == "cutover" else 0
        # What the approver decides on: the approval gate reads it from the state.
        verified: dict[str, Any] = {
            "done": True,
            "holdSeconds": hold_seconds,
            "instanceId": instance.instance_id,
            "privateIp": instance.private_ip or "",
            "checks": [r.check for r in results],
            "healthChecks": [
                {"type": r.type, "target": r.target, "passed": r.passed, "detail": r.detail}
                for r in results
            ],
            "postLaunchActions": [r.as_data() for r in actions.results],
        }
        if launch == "cutover":
            verified["finalized"] = self._hold_or_finalize(
                spec, {**state, key: verified}, finalize=finalize, started_at=started_at
            )
        return verified

    def _hold_or_finalize(
        self, spec: MigrationSpec, state: State, *, finalize: bool, started_at: datetime | None
    ) -> bool:
        """After a verified cutover: the hold the manifest asks for is reported; with none, the
        cutover is finalized in the same invocation if asked (one Lambda run and one record
        write fewer). Whatever stops that (the cutover job still running, MGN throttling)
        leaves it to the FinalizeCutover state, with that state's retries. Finalized?"""
        if spec.finalize_after_minutes:
            self._report_finalize_hold(spec, spec.finalize_after_minutes * 60)
            return False
        if not finalize:
            return False
        return (
            _at_once("FinalizeCutover", state, lambda: self.finalize(state, started_at)) is not None
        )

    def _post_launch_verdict(
        self,
        state: State,
        key: str,
        spec: MigrationSpec,
        *,
        mgn: Mgn,
        server_id: str,
        started: dict[str, Any],
        entry: JobServer | None,
    ) -> PostLaunchVerdict:
        """The post-launch actions' verdict, from the launch job's participating server.

        Per VM, the job was just read; batched, the coordinator's outcome carries no action
        results (its job ended with the launches, before the actions), so the job is read
        here, only for a VM whose manifest names actions."""
        if entry is None and spec.post_launch_actions:
            entry = mgn.job(str(started["jobId"])).server(server_id)
        since = (state.get(key) or {}).get("postLaunchSince") or self._epoch()
        return judge(
            spec.post_launch_actions,
            entry.post_launch if entry is not None else None,
            waited_seconds=self._epoch() - float(since),
        )

    def _report_finalize_hold(self, spec: MigrationSpec, hold_seconds: int) -> None:
        """The cutover passed its checks and waits before FinalizeCutover (the manifest's
        ``finalizeAfter``): say until when, and how to go back meanwhile."""
        until = self._clock.now() + timedelta(seconds=hold_seconds)
        self._report.step(
            spec,
            Step.FINALIZE_CUTOVER,
            "WAITING",
            f"held until {until:%Y-%m-%d %H:%M} UTC (finalizeAfter): the source keeps "
            f"replicating; `/wavepilot rollback {spec.migration_id}` returns to it until then",
            finalizeAt=until.isoformat(),
        )

    def finalize_hold(self, state: State) -> dict[str, Any]:
        """The hold before FinalizeCutover (``finalizeAfter``, result at ``$.hold``): done
        once the hold has passed or an operator asked to finalize now (``/wavepilot
        finalize``, the thread's button) during it; else how long to wait before looking
        again (at most ``HOLD_POLL_MAX_SECONDS``, so a request is acted on within minutes)."""
        spec = MigrationSpec.model_validate(state["spec"])
        # Never longer than the deployment's own polling (seconds in the embedded default).
        poll_max = min(HOLD_POLL_MAX_SECONDS, PollConfig.from_state(state).max_seconds)
        previous = state.get("hold") or {}
        now = self._epoch()
        held_since = float(previous.get("heldSince") or now)
        until = held_since + float(state["cutoverCheck"]["holdSeconds"])
        asked = (
            self._finalize_requests.finalize_request(spec.migration_id)
            if self._finalize_requests is not None
            else None
        )
        if asked is not None and asked[1].timestamp() >= held_since - 1:
            user, at = asked
            self._report.step(
                spec,
                Step.FINALIZE_CUTOVER,
                "IN_PROGRESS",
                f"finalize now, asked by <@{user}> at {at:%Y-%m-%d %H:%M} UTC: the hold ends early",
                finalizeRequestedBy=user,
            )
            return {"done": True, "heldSince": held_since, "finalizeRequestedBy": user}
        if now >= until:
            return {"done": True, "heldSince": held_since}
        return {
            "done": False,
            "heldSince": held_since,
            "waitSeconds": max(1, min(int(until - now) + 1, poll_max)),
        }

    # --- FinalizeCutover -----------------------------------------------------------------

    def finalize(self, state: State, started_at: datetime | None) -> dict[str, Any]:
        spec = MigrationSpec.model_validate(state["spec"])
        server_id = state["source"]["sourceServerId"]
        mgn = self._lanes.for_spec(spec).mgn
        try:
            server = mgn.finalize_cutover(server_id)
        except MgnConflictError:
            # Finalized already (a retry), or still in its cutover job (a batch completes
            # with its last server: wait for it)? Only then is the server looked at.
            server = mgn.source_server(server_id)
            if server.lifecycle_state != "CUTOVER":
                _unless_launching(mgn.active_job_for(server, _known_jobs(state)), server)
                raise
        instance_id = state["cutoverCheck"]["instanceId"]
        duration = (self._clock.now() - started_at).total_seconds() if started_at else 0.0
        self._report.step(
            spec,
            Step.FINALIZE_CUTOVER,
            "SUCCEEDED",
            f"cutover finalized; {spec.target_vm_name} runs as {instance_id}",
            migration_status="COMPLETED",
        )
        self._report.emit(
            spec,
            MigrationCompleted,
            target_instance_id=instance_id,
            duration_seconds=max(0.0, duration),
        )
        return {"instanceId": instance_id, "lifecycleState": server.lifecycle_state}

    # --- Rollback ------------------------------------------------------------------------

    def rollback(  # noqa: PLR0912 - one clean-up, two endings (rolled back, or parked)
        self, state: State, failed_step: str | None = None, *, park: bool = False
    ) -> dict[str, Any]:
        """Terminate what was launched and return the source server to a launchable state.

        A polling step (result at ``$.rollback``): while an MGN job for the server is still
        running, or an instance it launched is still alive, it returns ``done: false`` and
        the state machine waits and calls it again. It ends only when nothing is left.

        ``park``: the same clean-up for ``onFailure: park`` (result at ``$.park``), but the
        migration is kept: no rollback events; once nothing is left it answers how long the
        park may wait for a decision (``parkSeconds``) and which step failed.
        """
        spec = MigrationSpec.model_validate(state["spec"])
        config = PollConfig.from_state(state)
        error = state.get("error") or {}
        key = "park" if park else "rollback"
        previous = state.get(key) or {}
        failed_step = (
            previous.get("failedStep") or failed_step or str(error.get("Error", "Unknown"))
        )
        reason = failure_reason(error)
        if not previous:
            if park:
                self._report.step(
                    spec,
                    Step.PARK,
                    "IN_PROGRESS",
                    f"{failed_step} failed ({error.get('Error', 'error')}): {reason}; parking "
                    "it (onFailure: park): cleaning up what the test launch left",
                )
            else:
                self._report.emit(spec, RollbackStarted, step=failed_step, reason=reason)
        terminated: list[str] = list(previous.get("terminated", []))
        server_id = (state.get("source") or {}).get("sourceServerId")
        server_state = "not resolved"
        lane: LaneServices | None = None
        if not server_id and error.get("Error") == ROLLBACK_REQUESTED:
            # An operator's rollback runs in a new execution that never validated: find the
            # server the stopped execution was working on. A lane that cannot be reached
            # (no role, MGN not initialized) had nothing launched in it by this migration.
            try:
                lane = self._lanes.for_spec(spec)
                server_id = resolve_source_server(lane.mgn, spec.source).source_server_id
            except SourceServerNotFoundError:
                server_id = None
            except (LaneError, MgnNotInitializedError) as exc:
                server_id, server_state = None, f"lane unavailable: {exc}"
        # Without a server (validate_input failed, e.g. on a lane it could not use) nothing
        # was touched in the lane, and the rollback makes no call there.
        if server_id:
            lane = lane or self._lanes.for_spec(spec)
            mgn = lane.mgn
            server = mgn.source_server(server_id)
            if server.lifecycle_state == "CUTOVER":
                raise RollbackRefusedError(
                    f"{server_id} is finalized (CUTOVER): the new instance is production now; "
                    "roll back by hand if you must"
                )
            active: Job | None = mgn.active_job_for(server, _known_jobs(state))
            if active is not None:
                return {
                    **_poll(state, key, config, self._epoch()),
                    "terminated": terminated,
                    "waitingFor": active.job_id,
                    "failedStep": failed_step,
                }
            if server.lifecycle_state in REVERT_TO:
                server = mgn.change_life_cycle_state(server_id, REVERT_TO[server.lifecycle_state])
            if server.launched_instance_id:
                instance = lane.ec2.instance(server.launched_instance_id)
                if instance is not None and instance.state not in {"terminated", "shutting-down"}:
                    waiting_for = _terminate_unless_retiring(mgn, server_id)
                    if server.launched_instance_id not in terminated:
                        terminated.append(server.launched_instance_id)
                    return {
                        **_poll(state, key, config, self._epoch()),
                        "terminated": terminated,
                        "waitingFor": waiting_for,
                        "failedStep": failed_step,
                    }
            server_state = server.lifecycle_state
        if park:
            return {
                "done": True,
                "terminated": terminated,
                "sourceServerState": server_state,
                "failedStep": failed_step,
                "parkSeconds": max(60, spec.park_for_minutes * 60),
            }
        self._report.emit(
            spec,
            RollbackCompleted,
            reason=reason,
            terminated_instance_ids=terminated,
            source_server_state=server_state,
        )
        self._report.step(
            spec,
            Step.ROLLBACK,
            "SUCCEEDED",
            f"rolled back after {failed_step} ({error.get('Error', 'error')}): {reason}",
            migration_status="ROLLED_BACK",
        )
        self._report.emit(spec, MigrationFailed, step=failed_step, error=failed_step, cause=reason)
        return {"done": True, "terminated": terminated, "sourceServerState": server_state}


def _unless_blocking(actions: PostLaunchVerdict, launch: Launch, instance_id: str) -> None:
    """An action that must succeed for cutover and did not fails the verification (the
    failure path rolls the migration back), its output in the error."""
    if actions.blocking:
        raise HealthCheckFailedError(
            f"post-launch actions that must succeed for cutover did not on {launch} "
            f"instance {instance_id}: "
            + "; ".join(r.line() for r in actions.blocking)
            + ". Fix the SSM document or the instance, then republish"
        )


@dataclass(frozen=True, slots=True)
class _ActionsMark:
    """What is known of the server's ``ACTIONS_TAG``: ``tagged`` None when nothing is (an
    execution that began before validation said), and its ARN ("" if not known)."""

    tagged: bool | None
    arn: str


def _actions_mark(server: SourceServer | None, source: Mapping[str, Any]) -> _ActionsMark:
    """The freshest word on the tag: the server as just described, else validation's."""
    if server is not None and server.arn:
        return _ActionsMark(server.actions_tagged, server.arn)
    tagged = source.get("actionsTagged")
    return _ActionsMark(
        tagged if isinstance(tagged, bool) else None, str(source.get("sourceServerArn") or "")
    )


def _set_post_launch_actions(
    mgn: Mgn, server_id: str, spec: MigrationSpec, mark: _ActionsMark
) -> str:
    """Make the server's post-launch actions in MGN the manifest's (MGN runs them on every
    instance launched after): one list, then only what differs; says what runs, if any.

    A server without ``ACTIONS_TAG`` holds none of Wavepilot's actions: for a VM with none
    in its manifest (most), no call at all. The tag goes on before the first action (a crash
    in between leaves a tag and no action: the next look lists, and finds nothing), and
    comes off once Wavepilot's last action is removed."""
    wanted = spec.post_launch_actions
    if not wanted and mark.tagged is False:
        return ""
    changes = action_changes(mgn.source_server_actions(server_id), wanted)
    if wanted and not mark.tagged:
        arn = mark.arn or mgn.source_server(server_id).arn
        mgn.tag_resource(arn, {ACTIONS_TAG: "managed"})
    for action in changes.put:
        mgn.put_source_server_action(server_id, action)
    for action_id in changes.remove:
        mgn.remove_source_server_action(server_id, action_id)
    if not wanted:
        if mark.tagged and mark.arn:
            mgn.untag_resource(mark.arn, [ACTIONS_TAG])
        return ""
    names = ", ".join(a.name for a in sorted(spec.post_launch_actions, key=lambda a: a.order))
    return f"; post-launch actions: {names}"


def _launch_template_of(state: State) -> str:
    """The server's launch template for the cutover: as the test launch's preparation had it
    from MGN (``$.prepared``; the cutover is always prepared after it), or as validation
    read it (executions started before the preparation kept it)."""
    prepared = (state.get("prepared") or {}).get("launchTemplateId")
    return str(prepared or state["source"]["launchTemplateId"])


def _at_once(step: str, state: State, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """A step's next step run in the same invocation: its result, or None if anything stopped
    it. The state machine then runs that step (``step``) in its own state, with its retries,
    so the shortcut never turns a retryable error into a rollback."""
    try:
        return run()
    except Exception:
        logger.info(
            f"{step} is left to its own state",
            extra={"migration_id": state["spec"].get("migrationId")},
            exc_info=True,
        )
        return None


def _seen_up(outcome: dict[str, Any], instance_id: str) -> Instance | None:
    """The launched instance as the coordinator saw it, if it was up (running, no status
    check impaired)."""
    seen = outcome.get("instance")
    if not isinstance(seen, dict) or seen.get("instanceId") != instance_id:
        return None
    instance = Instance.from_data(seen)
    return instance if instance.up else None


def _coordinated_launch(outcome: dict[str, Any], launch: Launch, server_id: str) -> str:
    """The instance the coordinator reports launched for this server; a launch that did not
    end LAUNCHED fails the step with the coordinator's reason (the rollback reports it)."""
    status = str(outcome.get("launchStatus"))
    detail = str(outcome.get("detail") or "")
    if status == "WINDOW_CLOSED":
        raise CutoverWindowClosedError(
            f"{detail or 'the cutover window closed'} before the cutover of {server_id} could "
            "start: the migration is rolled back; set a new window in the manifest and merge"
        )
    if status == "DEPENDENCY_FAILED":
        raise DependencyFailedError(
            detail or f"an application the cutover of {server_id} goes after did not cut over"
        )
    if status == "REPLICATION_STALLED":
        raise ReplicationStalledError(
            f"{detail or f'replication of {server_id} stalled'}; fix the agent or the "
            "network, then republish"
        )
    job = outcome.get("jobId") or "none"
    if status != "LAUNCHED" or not outcome.get("instanceId"):
        raise LaunchFailedError(
            f"MGN {launch} launch of {server_id} ended {status} (job {job})"
            + (f": {detail}" if detail else "")
        )
    return str(outcome["instanceId"])


# The longest wait between two looks at a finalizeAfter hold: an operator's "finalize now"
# is acted on within this (one GetItem per look, a day's hold of 300 s looks is 288 of them).
HOLD_POLL_MAX_SECONDS = 300
# The longest wait between two looks at the wave's migrations while a cutover waits for its
# dependencies (each look is one Query of the wave, per waiting VM).
DEPENDENCY_POLL_MAX_SECONDS = 300


def _not_yet(apps: list[str], pending: list[MigrationRecord]) -> str:
    """Which of the applications' VMs have not cut over (or that none is requested yet)."""
    parts = []
    for app in apps:
        vms = sorted(r.target_vm_name for r in pending if r.app_name == app)
        parts.append(f"{app}: {', '.join(vms)}" if vms else f"{app}: no migration requested yet")
    return "; ".join(parts)


def _cancelled(control: WaveControl) -> str:
    why = f": {control.reason}" if control.reason else ""
    return (
        f"wave {control.wave} was cancelled by <@{control.by}> at "
        f"{control.at:%Y-%m-%d %H:%M} UTC{why}; publish its VMs again to start over"
    )


def _not_initialized(spec: MigrationSpec, where: str) -> PrerequisiteError:
    return PrerequisiteError(
        f"MGN is not initialized in {where}: run `aws mgn initialize-service --region "
        f"{spec.target_region or '<region>'}` in account "
        f"{spec.target_account_id or '<hub account>'} (or open the Application Migration "
        "Service console there once), install the replication agents, then publish "
        "the wave again"
    )


def _terminate_unless_retiring(mgn: Mgn, server_id: str) -> str | None:
    """Terminate the server's launched instance: the TERMINATE job's ID, or None if a job
    this execution did not start holds the server (the lane's launch coordinator retiring
    its test instance, batched): the rollback waits for it."""
    try:
        return mgn.terminate_target_instances([server_id]).job_id
    except MgnConflictError as conflict:
        if conflict.refused.get(server_id) != "JOB_IN_PROGRESS":
            raise
        return None


def _stalled_or_fine(server: SourceServer) -> SourceServer:
    """The server, unless its replication is stuck (then the migration rolls back)."""
    if server.replication_state in STUCK_REPLICATION:
        raise ReplicationStalledError(
            f"replication of {server.source_server_id} is {server.replication_state}"
            f"{': ' + server.replication_error if server.replication_error else ''}; "
            "fix the agent or the network, then republish"
        )
    return server


def _ready_for_cutover(mgn: Mgn, server_id: str, state: State) -> SourceServer:
    """Mark the server ready for its cutover with one ChangeServerLifeCycleState (its answer
    is the server): the server is looked at only if MGN answers a conflict, as a retry of
    this step that changed it already may meet, or a server still in its test batch's job
    (then the step waits and is retried: ``LaunchJobRunningError``)."""
    try:
        return mgn.change_life_cycle_state(server_id, "READY_FOR_CUTOVER")
    except MgnConflictError:
        server = _stalled_or_fine(mgn.source_server(server_id))
        if server.lifecycle_state != "READY_FOR_CUTOVER":
            _unless_launching(mgn.active_job_for(server, _known_jobs(state)), server)
            raise
        return server


def _unless_launching(active: Job | None, server: SourceServer) -> Job | None:
    """The server's active job, unless it is a launch job still running (its batch has not
    completed: MGN allows one job per server, so the step waits and is retried)."""
    if active is not None and active.type != "TERMINATE":
        raise LaunchJobRunningError(
            f"{server.source_server_id} is still in MGN job {active.job_id} "
            f"({active.initiated_by}, {active.status}): its batch has not completed; retrying"
        )
    return active


def _where(spec: MigrationSpec) -> str:
    """``account 111122223333, Region eu-west-1``: the migration's lane, as messages say it."""
    if not spec.target_account_id and not spec.target_region:
        return "the hub's account and Region"
    return f"account {spec.target_account_id or '(hub)'}, Region {spec.target_region or '(hub)'}"


def failure_reason(error: Mapping[str, Any]) -> str:
    """The human reason inside a Catch's ``Cause`` (a Lambda error's JSON, or plain text)."""
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            return str(parsed["errorMessage"])
    except ValueError:
        pass
    return cause or str(error.get("Error", "unknown failure"))


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "?"


def _known_jobs(state: State) -> list[str]:
    """The MGN jobs this execution started, as recorded in its state."""
    found = [
        (state.get("test") or {}).get("jobId"),
        (state.get("cutover") or {}).get("jobId"),
        (state.get("preparedCutover") or {}).get("terminateJobId"),
        (state.get("rollback") or {}).get("waitingFor"),
        (state.get("park") or {}).get("waitingFor"),
    ]
    return [job for job in found if job]


def _lane_of(spec: MigrationSpec) -> tuple[str, str]:
    """The key of the migration's lane (its target account and Region; empty: the hub's)."""
    return (spec.target_account_id, spec.target_region)
