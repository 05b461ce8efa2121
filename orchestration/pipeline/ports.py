"""What the pipeline's services need from the world, as small interfaces (ports).

The adapters in :mod:`orchestration.adapters` implement them (structurally: no adapter
imports this module); unit tests pass in-memory fakes of the same interfaces. Each port holds
only the calls its services make, so a fake stays small and a new call is a visible change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from orchestration.adapters.ec2 import Subnet
    from orchestration.adapters.mgn import Grouping, Job, SourceServer
    from orchestration.adapters.parks import ParkRecord, ParkStatus
    from orchestration.adapters.state_store import ApprovalRecord, AuditEntry, MigrationRecord
    from orchestration.adapters.stepfunctions import Execution
    from orchestration.adapters.wave_control import WaveControl
    from orchestration.events import EventDetail, MigrationStatusUpdated, Step, StepStatus
    from orchestration.health_checks import CheckResult, HealthCheckSpec
    from orchestration.launch_records import (
        Instance,
        LaunchIntent,
        LaunchOutcome,
        LaunchRequest,
        LedgerSnapshot,
        RequestRecorded,
        WaitingLaunch,
    )
    from orchestration.pipeline.reporter import MigrationIdentity
    from orchestration.pipeline.spec import MigrationSpec
    from orchestration.post_launch_actions import PostLaunchActionSpec, SourceServerAction

E = TypeVar("E", bound="EventDetail")


# --- A wave's pause or cancel (orchestration.adapters.wave_control.WaveControlStore) ------


class WaveControls(Protocol):
    def get(self, wave: str) -> WaveControl | None: ...


class WaveMigrations(Protocol):
    """The migrations of a wave (orchestration.adapters.state_store.MigrationStore)."""

    def wave_migrations(self, wave: str) -> list[MigrationRecord]: ...


class FinalizeRequests(Protocol):
    """An operator's "finalize now" of a held cutover (MigrationStore)."""

    def finalize_request(self, migration_id: str) -> tuple[str, datetime] | None:
        """(who, when) asked the migration to finalize now; None if nobody did."""
        ...


class AuditedWaveMigrations(WaveMigrations, Protocol):
    """A wave's migrations and each one's audit trail (a wave's pause, resume or cancel)."""

    def audit_migration(
        self,
        migration_id: str,
        *,
        actor: str,
        action: str,
        outcome: str,
        detail: str,
        now: datetime,
    ) -> None: ...


# --- Step Functions (orchestration.adapters.stepfunctions.StepFunctionsAdapter) ------------


class ApprovalGate(Protocol):
    """The approval gate's waiting task, answered by its token.

    Both calls raise ``TaskNotWaitingError`` when the task no longer waits (timed out,
    ended, invalid token), ``StepFunctionsRefusedError`` when Step Functions refused the
    call for another reason (the gate was not told)."""

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None: ...

    def send_task_failure(self, task_token: str, *, error: str, cause: str) -> None: ...


class Executions(Protocol):
    """Executions of the migration state machine (an operator's rollback)."""

    def execution(self, execution_arn: str) -> Execution: ...

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        """Raises ``ExecutionDoesNotExistError`` if it is gone."""
        ...

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        """The new execution's ARN; ``ExecutionAlreadyExistsError`` if the name is taken."""
        ...


# --- the state table (orchestration.adapters.state_store.MigrationStore) -----------------


class ApprovalRecords(Protocol):
    """Approvals, their decisions and audit trail, and the migration they gate."""

    def create_approval(self, approval: ApprovalRecord, task_token: str) -> None: ...

    def approval(self, approval_id: str) -> ApprovalRecord | None: ...

    def pending_approval_id(self, migration_id: str) -> str | None: ...

    def pending_group_approvals(self, group: str) -> list[ApprovalRecord]:
        """A group's approvals still PENDING (``<wave>/``: every group of the wave)."""
        ...

    def decide_approval(
        self, approval_id: str, *, decision: str, user: str, reason: str, now: datetime
    ) -> str | None:
        """The task token if this call decided the approval; None if it was decided before."""
        ...

    def decide_approvals(
        self,
        decisions: Sequence[tuple[str, str]],
        *,
        decision: str,
        user: str,
        reason: str,
        now: datetime,
    ) -> dict[str, tuple[str, int]]:
        """Many (approval ID, migration ID) decided together, each with its
        ``ApprovalDecided`` sequence allocated: approval ID -> (task token, sequence) for
        those decided; the others (decided before, or their write cancelled) are left out."""
        ...

    def revert_decision(self, approval_id: str, *, user: str) -> None: ...

    def audit(
        self, approval_id: str, *, actor: str, action: str, outcome: str, detail: str, now: datetime
    ) -> None: ...

    def audit_many(self, entries: Sequence[AuditEntry]) -> None: ...

    def get(self, migration_id: str) -> MigrationRecord | None: ...


class MigrationRecords(Protocol):
    """Migrations as operators act on them (a rollback request)."""

    def get(self, migration_id: str) -> MigrationRecord | None: ...

    def set_execution(
        self, migration_id: str, revision: str, execution_arn: str, now: datetime
    ) -> None: ...

    def audit_migration(
        self,
        migration_id: str,
        *,
        actor: str,
        action: str,
        outcome: str,
        detail: str,
        now: datetime,
    ) -> None: ...


class ParkRecords(Protocol):
    """Parked migrations and their task tokens (orchestration.adapters.parks.ParkStore)."""

    def create_park(self, park: ParkRecord, task_token: str) -> None: ...

    def park(self, migration_id: str) -> ParkRecord | None: ...

    def decide_park(
        self,
        migration_id: str,
        park_id: str,
        *,
        decision: ParkStatus,
        user: str,
        reason: str,
        now: datetime,
    ) -> str | None:
        """The task token if this call decided the park; None if it was decided before."""
        ...

    def revert_park_decision(self, migration_id: str, park_id: str, *, user: str) -> None: ...


# --- the launch ledger (orchestration.adapters.launch_ledger.DynamoLaunchLedger) ---------


class LaunchLedger(Protocol):
    """One lane's launch coordinator's durable records: the open requests (with the task
    tokens waiting for them) and the intents (jobs decided, started or about to be)."""

    def record_request(self, request: LaunchRequest, task_token: str) -> RequestRecorded:
        """Keep a request (see ``RequestRecorded``). A repeat (same migration and kind)
        while it is open only replaces its task token; a repeat by the execution whose
        launch was answered is answered again from the recorded outcome (into the outbox,
        with the new token), never launched twice."""
        ...

    def snapshot(self) -> LedgerSnapshot:
        """The open requests and intents, read consistently."""
        ...

    def add_intent(self, intent: LaunchIntent, *, seen_version: int) -> None:
        """Record an intent, only if the ledger is still at ``seen_version`` (and then one
        past it); ``LedgerConflictError`` otherwise (another coordinator wrote meanwhile)."""
        ...

    def record_job(self, intent_id: str, job_id: str) -> None:
        """The job MGN started for the intent."""
        ...

    def mark_replication_ready(self, launches: Sequence[WaitingLaunch]) -> None:
        """These open requests' servers are launchable (seen so once: never asked again)."""
        ...

    def mark_test_instance_retired(self, launches: Sequence[WaitingLaunch]) -> None:
        """These open cutover requests' test instances were retired: they may be planned."""
        ...

    def mark_held_reported(self, launches: Sequence[WaitingLaunch], hold: str) -> None:
        """The requests were reported held by the wave's pause ``hold`` (its mark)."""
        ...

    def mark_dependencies_reported(self, launches: Sequence[WaitingLaunch]) -> None:
        """These open cutover requests were reported waiting for the applications they go
        after (``dependsOn``): said once, not at every run."""
        ...

    def remove_intent(self, intent_id: str) -> None:
        """The intent's job has ended, or was never started (its servers are pending again)."""
        ...

    def complete(self, outcomes: Sequence[LaunchOutcome]) -> None:
        """These requests are answered: no longer open, their outcomes kept, and each in the
        lane's outbox until ``delivered``. An outcome whose request's task token changed
        meanwhile (the same execution asked again) is answered on the request's new token;
        one whose request is gone, or is another execution's, is dropped."""
        ...

    def undelivered(self) -> list[LaunchOutcome]:
        """Answered requests whose outcome has not reached its execution yet."""
        ...

    def delivered(self, outcomes: Sequence[LaunchOutcome]) -> None:
        """These outcomes reached their executions (or the executions no longer wait)."""
        ...


class LaneLaunchLedger(LaunchLedger, Protocol):
    """A lane's ledger with the lease of its coordinator loop (``DynamoLaunchLedger``)."""

    def record_new_for_live_loop(
        self, request: LaunchRequest, task_token: str, now: datetime
    ) -> bool:
        """Record a new request, counted, in one write if a live loop holds the lease;
        False: nothing written (``record_request`` and ``claim_loop`` then)."""
        ...

    def claim_loop(
        self, execution: str, now: datetime, stale_after: float, *, counted: bool = False
    ) -> str | None:
        """Count a request (unless ``counted`` when it was recorded); ``execution`` if it is
        now the lane's loop (start it), else None."""
        ...

    def abandon_loop(self, execution: str) -> None:
        """The loop ``execution`` could not be started: give its lease up."""
        ...

    def beat(self, execution: str, now: datetime, stale_after: float) -> int | None:
        """The loop is alive for ``stale_after`` seconds more: the requests counted so far,
        or None if the lease is not its."""
        ...

    def release_loop(self, execution: str, seen_requests: int) -> bool:
        """End the loop's lease, only if no request was counted since ``seen_requests``."""
        ...

    def hand_over_loop(
        self, from_execution: str, to_execution: str, now: datetime, stale_after: float
    ) -> bool:
        """Move the lease from ``from_execution`` to ``to_execution`` (one conditional write,
        also true if it names ``to_execution`` already); False if another loop holds it."""
        ...


class TaskTokens(Protocol):
    """Answering the executions waiting on a task token, and starting executions."""

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        """Raises ``TaskNotWaitingError`` when the task no longer waits."""
        ...

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str: ...


# --- status events (orchestration.pipeline.reporter.StatusReporter) ----------------------


class StatusReports(Protocol):
    """Every step reports: status events, numbered per migration."""

    def emit(
        self, migration: MigrationIdentity, event_type: type[E], **fields: Any
    ) -> E | None: ...

    def step(
        self,
        migration: MigrationIdentity,
        step: Step,
        status: StepStatus,
        message: str,
        *,
        migration_status: str | None = None,
        only_while_at: Step | None = None,
        started: tuple[str, str] | None = None,
        **data: Any,
    ) -> MigrationStatusUpdated | None: ...

    def put_numbered(
        self, migration: MigrationIdentity, event_type: type[E], sequence: int, **fields: Any
    ) -> E: ...


# --- MGN, EC2 and health probes (orchestration.adapters.mgn, .ec2, .health) ---------------


class SourceServers(Protocol):
    """Finding a VM's MGN source server."""

    def source_servers(
        self, ids: Sequence[str] | None = None, *, include_archived: bool = False
    ) -> list[SourceServer]: ...

    def source_server(self, source_server_id: str) -> SourceServer:
        """Raises ``SourceServerNotFoundError`` if there is none."""
        ...


class Mgn(SourceServers, Protocol):
    """What the migration's steps ask of MGN (errors: ``orchestration.adapters.mgn``)."""

    def initialized(self) -> bool:
        """Whether MGN was initialized in this account and Region."""
        ...

    def update_launch_configuration(
        self, source_server_id: str, *, boot_mode: str, os_byol: bool
    ) -> str:
        """Apply the MGN-side launch settings; returns the server's EC2 launch template ID
        (MGN answers with the whole launch configuration)."""
        ...

    def source_server_actions(self, source_server_id: str) -> list[SourceServerAction]: ...

    def put_source_server_action(
        self, source_server_id: str, action: PostLaunchActionSpec
    ) -> None: ...

    def remove_source_server_action(self, source_server_id: str, action_id: str) -> None: ...

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None: ...

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None: ...

    def change_life_cycle_state(self, source_server_id: str, state: str) -> SourceServer: ...

    def active_job_for(
        self, server: SourceServer, known_job_ids: Sequence[str] = ()
    ) -> Job | None: ...

    def start_test(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job: ...

    def start_cutover(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job: ...

    def terminate_target_instances(
        self, source_server_ids: Sequence[str], tags: dict[str, str] | None = None
    ) -> Job: ...

    def job(self, job_id: str) -> Job: ...

    def finalize_cutover(self, source_server_id: str) -> SourceServer: ...


class MgnGroupings(Protocol):
    """MGN's waves and applications (its console's grouping) and who is in them.

    Errors: ``MgnConflictError`` (a name taken, an association MGN refuses, an archived or
    non-empty resource), ``GroupingNotFoundError`` (no such wave or application)."""

    def grouping(self) -> Grouping: ...

    def source_server(self, source_server_id: str) -> SourceServer: ...

    def create_wave(self, name: str, *, description: str, tags: Mapping[str, str]) -> str: ...

    def unarchive_wave(self, wave_id: str) -> None: ...

    def archive_wave(self, wave_id: str) -> None: ...

    def create_application(
        self, name: str, *, description: str, tags: Mapping[str, str]
    ) -> str: ...

    def unarchive_application(self, application_id: str) -> None: ...

    def archive_application(self, application_id: str) -> None: ...

    def associate_applications(self, wave_id: str, application_ids: Sequence[str]) -> None: ...

    def disassociate_applications(self, wave_id: str, application_ids: Sequence[str]) -> None: ...

    def associate_source_servers(self, application_id: str, server_ids: Sequence[str]) -> None: ...

    def disassociate_source_servers(
        self, application_id: str, server_ids: Sequence[str]
    ) -> None: ...

    def servers_in_application(self, application_id: str) -> list[str]: ...


class LaunchMgn(Protocol):
    """What a lane's launch coordinator asks of MGN: batched starts, bulk observation.

    ``start_test`` / ``start_cutover`` raise ``MgnQuotaExceededError`` when the lane's job
    quotas are full and ``MgnConflictError`` (with the refused servers) when a server's state
    forbids the launch, e.g. it is in a job already."""

    def source_servers(
        self, ids: Sequence[str] | None = None, *, include_archived: bool = False
    ) -> list[SourceServer]: ...

    def jobs(self, job_ids: Sequence[str]) -> list[Job]: ...

    def jobs_since(self, from_date: datetime) -> list[Job]: ...

    def start_test(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job: ...

    def start_cutover(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job: ...

    def terminate_target_instances(
        self, source_server_ids: Sequence[str], tags: dict[str, str] | None = None
    ) -> Job:
        """A TERMINATE job for the servers' launched instances (the coordinator retires test
        instances in batches, tagged with its intent)."""
        ...

    def associate_source_servers(self, application_id: str, server_ids: Sequence[str]) -> None:
        """Put the servers in the MGN application (up to 50 per call)."""
        ...


class Ec2(Protocol):
    """Live checks of the target network, the launch template, the launched instance."""

    def subnet(self, subnet_id: str) -> Subnet | None: ...

    def security_group_vpcs(self, group_ids: list[str]) -> dict[str, str]: ...

    def instance_type_offered(self, instance_type: str, availability_zone: str) -> bool: ...

    def instance_profile_exists(self, name: str) -> bool: ...

    def set_launch_template(
        self,
        launch_template_id: str,
        *,
        instance_type: str,
        subnet_id: str,
        security_group_ids: list[str],
        iam_instance_profile: str | None,
        tags: dict[str, str],
    ) -> int: ...

    def instance(self, instance_id: str) -> Instance | None: ...


class LaneServices(Protocol):
    """MGN and EC2 (with IAM) in one lane: the migration's target account and Region."""

    @property
    def mgn(self) -> Mgn: ...

    @property
    def ec2(self) -> Ec2: ...


class GroupingLane(Protocol):
    @property
    def mgn(self) -> MgnGroupings: ...


class GroupingLanes(Protocol):
    """The lanes as the MGN grouping sync sees them (``LaneSessions`` too)."""

    def for_spec(self, spec: MigrationSpec) -> GroupingLane: ...


class GroupingReads(Protocol):
    """What the plan reads of a lane's MGN to show drift: its grouping, its servers."""

    def grouping(self) -> Grouping: ...

    def source_servers(self) -> list[SourceServer]: ...


class GroupingReadLane(Protocol):
    @property
    def mgn(self) -> GroupingReads: ...


class GroupingReadLanes(Protocol):
    """The lanes as the plan's drift check sees them (``LaneSessions`` too)."""

    def for_spec(self, spec: MigrationSpec) -> GroupingReadLane: ...


class Lanes(Protocol):
    """The lane of each migration (``orchestration.adapters.lanes.LaneSessions``).

    ``for_spec`` raises ``LaneRoleUnavailableError`` when the lane's role cannot be assumed."""

    def for_spec(self, spec: MigrationSpec) -> LaneServices: ...


class HealthProbe(Protocol):
    """Runs one of the VM's health checks against an address."""

    def run(self, address: str, check: HealthCheckSpec) -> CheckResult: ...
