"""In-memory fakes of the pipeline's ports (orchestration/pipeline/ports.py), for unit tests.

Each fake keeps what a test asserts on (what was started, told, audited, reported) and does
what the real adapter does with it, no more: no AWS, no emulator, no mocks of our own code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from orchestration.adapters.ec2 import Subnet
from orchestration.adapters.lanes import Lane, LaneRoleUnavailableError
from orchestration.adapters.mgn import (
    Job,
    JobServer,
    MgnConflictError,
    MgnNotInitializedError,
    SourceServer,
    SourceServerNotFoundError,
)
from orchestration.adapters.state_store import ApprovalRecord, MigrationRecord
from orchestration.adapters.state_store import AuditEntry as StoredAuditEntry
from orchestration.adapters.stepfunctions import Execution, ExecutionAlreadyExistsError
from orchestration.events import EventDetail, MigrationStatusUpdated, Step, StepStatus
from orchestration.health_checks import CheckResult, HealthCheckSpec
from orchestration.launch_records import (
    Instance,
    LaunchIntent,
    LaunchOutcome,
    LaunchRequest,
    LedgerConflictError,
    LedgerSnapshot,
    RequestRecorded,
    WaitingLaunch,
)
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.reporter import MigrationIdentity
from orchestration.pipeline.spec import MigrationSpec
from orchestration.post_launch_actions import (
    ACTIONS_TAG,
    PostLaunchActionSpec,
    SourceServerAction,
)

E = TypeVar("E", bound=EventDetail)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class FixedClock:
    """A clock a test moves by hand (``orchestration.clock.Clock``); sleeping advances it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.current = now
        self._origin = now

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - self._origin).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(seconds, 0)))

    def advance(self, delta: timedelta) -> None:
        self.current += delta


# --- Step Functions ------------------------------------------------------------------------


@dataclass
class TaskAnswer:
    token: str
    outcome: str  # "success" | "failure"
    output: Mapping[str, Any] | None = None
    error: str = ""
    cause: str = ""


class FakeStepFunctions:
    """The approval gate and the executions, as the adapter presents them."""

    def __init__(self) -> None:
        self.answers: list[TaskAnswer] = []
        self.executions: dict[str, Execution] = {}
        self.started: list[tuple[str, str, Mapping[str, Any]]] = []
        self.stopped: list[tuple[str, str, str]] = []
        # The next answer to a task token raises this (a gate that stopped waiting, say).
        self.answer_fails_with: Exception | None = None
        # The next stop raises this (the execution ended meanwhile, say).
        self.stop_fails_with: Exception | None = None

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        self._answer(TaskAnswer(task_token, "success", output=output))

    def send_task_failure(self, task_token: str, *, error: str, cause: str) -> None:
        self._answer(TaskAnswer(task_token, "failure", error=error, cause=cause))

    def _answer(self, answer: TaskAnswer) -> None:
        if self.answer_fails_with is not None:
            error, self.answer_fails_with = self.answer_fails_with, None
            raise error
        self.answers.append(answer)

    def execution(self, execution_arn: str) -> Execution:
        return self.executions[execution_arn]

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        if self.stop_fails_with is not None:
            failure, self.stop_fails_with = self.stop_fails_with, None
            raise failure
        self.stopped.append((execution_arn, error, cause))
        self.executions[execution_arn] = replace(self.executions[execution_arn], status="ABORTED")

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
        if arn in self.executions:
            raise ExecutionAlreadyExistsError(f"ExecutionAlreadyExists: {name}")
        self.executions[arn] = Execution(arn, "RUNNING", dict(payload))
        self.started.append((state_machine_arn, name, payload))
        return arn


# --- the state table -------------------------------------------------------------------------


@dataclass
class AuditEntry:
    subject: str  # "APPROVAL#<id>" or "MIGRATION#<id>"
    actor: str
    action: str
    outcome: str
    detail: str


@dataclass
class FakeStore:
    """Migrations, approvals (with their task tokens) and the audit trail, in dicts."""

    migrations: dict[str, MigrationRecord] = field(default_factory=dict)
    approvals: dict[str, ApprovalRecord] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    audits: list[AuditEntry] = field(default_factory=list)
    executions: dict[str, tuple[str, str]] = field(default_factory=dict)
    # (decision, user) that another click writes just before the next decision's write.
    decided_meanwhile: tuple[str, str] | None = None
    # The last sequence number a group decision's write gave each migration's event.
    sequences: dict[str, int] = field(default_factory=dict)
    audit_batches: int = 0  # audit_many calls

    def get(self, migration_id: str) -> MigrationRecord | None:
        return self.migrations.get(migration_id)

    def wave_migrations(self, wave: str) -> list[MigrationRecord]:
        return [record for record in self.migrations.values() if record.wave == wave]

    def set_execution(
        self, migration_id: str, revision: str, execution_arn: str, now: datetime
    ) -> None:
        self.executions[migration_id] = (revision, execution_arn)
        record = self.migrations[migration_id]
        self.migrations[migration_id] = replace(record, execution_arn=execution_arn)

    def create_approval(self, approval: ApprovalRecord, task_token: str) -> None:
        assert approval.approval_id not in self.approvals
        self.approvals[approval.approval_id] = approval
        self.tokens[approval.approval_id] = task_token
        record = self.migrations.get(approval.migration_id)
        if record is not None:
            self.migrations[approval.migration_id] = replace(
                record, approval_id=approval.approval_id
            )

    def approval(self, approval_id: str) -> ApprovalRecord | None:
        return self.approvals.get(approval_id)

    def pending_approval_id(self, migration_id: str) -> str | None:
        record = self.migrations.get(migration_id)
        return record.approval_id if record is not None else None

    def pending_group_approvals(self, group: str) -> list[ApprovalRecord]:
        in_wave = group.endswith("/")
        return sorted(
            (
                a
                for a in self.approvals.values()
                if a.status == "PENDING"
                and a.group
                and (a.group.startswith(group) if in_wave else a.group == group)
            ),
            key=lambda a: a.expires_at,
        )

    def decide_approval(
        self, approval_id: str, *, decision: str, user: str, reason: str, now: datetime
    ) -> str | None:
        if self.decided_meanwhile is not None:
            (other, by), self.decided_meanwhile = self.decided_meanwhile, None
            self.decide_approval(approval_id, decision=other, user=by, reason="", now=now)
        approval = self.approvals[approval_id]
        if approval.status != "PENDING":  # the conditional write loses
            return None
        self.approvals[approval_id] = replace(
            approval, status=decision, decided_by=user, decided_at=now.isoformat(), reason=reason
        )
        return self.tokens[approval_id]

    def decide_approvals(
        self,
        decisions: Sequence[tuple[str, str]],
        *,
        decision: str,
        user: str,
        reason: str,
        now: datetime,
    ) -> dict[str, tuple[str, int]]:
        """Each pending one decided, its event numbered after the last number this store
        gave the migration (``sequences``; the fake reporter numbers after it)."""
        decided: dict[str, tuple[str, int]] = {}
        for approval_id, migration_id in decisions:
            token = self.decide_approval(
                approval_id, decision=decision, user=user, reason=reason, now=now
            )
            if token is not None:
                self.sequences[migration_id] = self.sequences.get(migration_id, 0) + 1
                decided[approval_id] = (token, self.sequences[migration_id])
        return decided

    def revert_decision(self, approval_id: str, *, user: str) -> None:
        approval = self.approvals[approval_id]
        assert approval.decided_by == user
        self.approvals[approval_id] = replace(
            approval, status="PENDING", decided_by="", decided_at="", reason=""
        )

    def audit(
        self, approval_id: str, *, actor: str, action: str, outcome: str, detail: str, now: datetime
    ) -> None:
        self.audits.append(AuditEntry(f"APPROVAL#{approval_id}", actor, action, outcome, detail))

    def audit_migration(
        self,
        migration_id: str,
        *,
        actor: str,
        action: str,
        outcome: str,
        detail: str,
        now: datetime,
    ) -> None:
        self.audits.append(AuditEntry(f"MIGRATION#{migration_id}", actor, action, outcome, detail))

    def audit_many(self, entries: Sequence[StoredAuditEntry]) -> None:
        self.audit_batches += 1
        for entry in entries:
            self.audit(
                entry.approval_id,
                actor=entry.actor,
                action=entry.action,
                outcome=entry.outcome,
                detail=entry.detail,
                now=entry.at,
            )


# --- status events ---------------------------------------------------------------------------


@dataclass
class ReportedStep:
    step: str
    status: str
    message: str
    migration_status: str | None
    data: dict[str, Any]


class FakeReporter:
    """Numbers and validates events as the real reporter does, and keeps them."""

    def __init__(self, clock: FixedClock) -> None:
        self._clock = clock
        self._sequence: dict[str, int] = {}
        self.events: list[EventDetail] = []
        self.steps: list[ReportedStep] = []

    def _next(self, migration_id: str) -> int:
        self._sequence[migration_id] = self._sequence.get(migration_id, 0) + 1
        return self._sequence[migration_id]

    def emit(self, migration: MigrationIdentity, event_type: type[E], **fields: Any) -> E:
        event = event_type.model_validate(
            {
                "migration_id": migration.migration_id,
                "wave": migration.wave,
                "app_name": migration.app_name,
                "target_vm_name": migration.target_vm_name,
                "target_account_id": migration.target_account_id,
                "target_region": migration.target_region,
                "correlation_id": migration.correlation_id,
                "sequence": self._next(migration.migration_id),
                "timestamp": self._clock.now(),
                **fields,
            }
        )
        self.events.append(event)
        return event

    def put_numbered(
        self, migration: MigrationIdentity, event_type: type[E], sequence: int, **fields: Any
    ) -> E:
        """An event its writer numbered: later ones are numbered after it."""
        self._sequence[migration.migration_id] = max(
            self._sequence.get(migration.migration_id, 0), sequence
        )
        event = event_type.model_validate(
            {
                "migration_id": migration.migration_id,
                "wave": migration.wave,
                "app_name": migration.app_name,
                "target_vm_name": migration.target_vm_name,
                "target_account_id": migration.target_account_id,
                "target_region": migration.target_region,
                "correlation_id": migration.correlation_id,
                "sequence": sequence,
                "timestamp": self._clock.now(),
                **fields,
            }
        )
        self.events.append(event)
        return event

    def step(
        self,
        migration: MigrationIdentity,
        step: Step,
        status: StepStatus,
        message: str,
        *,
        migration_status: str | None = None,
        **data: Any,
    ) -> MigrationStatusUpdated:
        self.steps.append(ReportedStep(step, status, message, migration_status, data))
        event = MigrationStatusUpdated(
            migration_id=migration.migration_id,
            wave=migration.wave,
            app_name=migration.app_name,
            target_vm_name=migration.target_vm_name,
            target_account_id=migration.target_account_id,
            target_region=migration.target_region,
            correlation_id=migration.correlation_id,
            sequence=self._next(migration.migration_id),
            timestamp=self._clock.now(),
            step=step,
            status=status,
            message=message,
            data=data,
        )
        self.events.append(event)
        return event

    def of_type(self, event_type: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, event_type)]


# --- MGN, EC2, health probes -----------------------------------------------------------------


def source_server(server_id: str = "s-0123456789abcdef0", **changes: Any) -> SourceServer:
    """A replicated source server, ready for its test launch, unless ``changes`` say not."""
    server = SourceServer(
        source_server_id=server_id,
        is_archived=False,
        lifecycle_state="READY_FOR_TEST",
        replication_state="CONTINUOUS",
        lag_duration="PT1S",
        hostname="billing-01",
        fqdn="billing-01.contoso.local",
        user_provided_id=None,
        launched_instance_id=None,
        replicated_bytes=100,
        total_bytes=100,
        replication_error=None,
        arn=f"arn:aws:mgn:us-east-1:111122223333:source-server/{server_id}",
    )
    return replace(server, **changes)


def job(
    job_id: str,
    *,
    server_id: str = "s-0123456789abcdef0",
    initiated_by: str = "START_TEST",
    status: str = "STARTED",
    launch_status: str = "PENDING",
    instance_id: str | None = None,
) -> Job:
    return Job(
        job_id=job_id,
        type="LAUNCH" if initiated_by.startswith("START") else "TERMINATE",
        initiated_by=initiated_by,
        status=status,
        servers=(JobServer(server_id, launch_status, instance_id),),
    )


class FakeMgn:
    """Source servers and jobs in dicts; launches record what they started. As MGN, a
    lifecycle change or a termination of a server an unfinished job holds is refused
    (``JOB_IN_PROGRESS``). ``calls`` counts what was asked, by method."""

    def __init__(self, *servers: SourceServer) -> None:
        self.calls: Counter[str] = Counter()
        self.servers = {server.source_server_id: server for server in servers}
        self.jobs: dict[str, Job] = {}
        self.launched: list[tuple[str, list[str], dict[str, str]]] = []
        self.terminated: list[list[str]] = []
        self.lifecycle_changes: list[tuple[str, str]] = []
        self.is_initialized = True
        # Post-launch actions by server, then action ID (as ListSourceServerActions lists them).
        self.actions: dict[str, dict[str, SourceServerAction]] = {}

    def initialized(self) -> bool:
        return self.is_initialized

    def add_job(self, added: Job) -> None:
        self.jobs[added.job_id] = added

    def source_servers(
        self, ids: Sequence[str] | None = None, *, include_archived: bool = False
    ) -> list[SourceServer]:
        self.calls["source_servers"] += 1
        self._answer_only_if_initialized()
        return [
            server
            for server in self.servers.values()
            if (ids is None or server.source_server_id in ids)
            and (include_archived or not server.is_archived)
        ]

    def _answer_only_if_initialized(self) -> None:
        if not self.is_initialized:  # MGN answers every call so until InitializeService
            raise MgnNotInitializedError("UninitializedAccountException: not initialized")

    def source_server(self, source_server_id: str) -> SourceServer:
        self.calls["source_server"] += 1
        self._answer_only_if_initialized()
        if source_server_id not in self.servers:
            raise SourceServerNotFoundError(f"source server {source_server_id} does not exist")
        return self.servers[source_server_id]

    def update_launch_configuration(
        self, source_server_id: str, *, boot_mode: str, os_byol: bool
    ) -> str:
        self.calls["update_launch_configuration"] += 1
        return "lt-" + source_server_id.removeprefix("s-")  # MGN answers with the configuration

    def source_server_actions(self, source_server_id: str) -> list[SourceServerAction]:
        self.calls["source_server_actions"] += 1
        return list(self.actions.get(source_server_id, {}).values())

    def put_source_server_action(self, source_server_id: str, action: PostLaunchActionSpec) -> None:
        self.calls["put_source_server_action"] += 1
        self.actions.setdefault(source_server_id, {})[action.action_id] = SourceServerAction(
            action_id=action.action_id,
            action_name=action.name,
            document_identifier=action.ssm_document,
            order=action.order,
            must_succeed_for_cutover=action.must_succeed_for_cutover,
            timeout_seconds=action.timeout_seconds,
            parameters=dict(action.parameters),
        )

    def remove_source_server_action(self, source_server_id: str, action_id: str) -> None:
        self.calls["remove_source_server_action"] += 1
        self.actions.get(source_server_id, {}).pop(action_id, None)

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        """Only ``ACTIONS_TAG`` is modelled: the server whose ARN it is says it is tagged."""
        self.calls["tag_resource"] += 1
        self._retag(arn, ACTIONS_TAG in tags)

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        self.calls["untag_resource"] += 1
        if ACTIONS_TAG in keys:
            self._retag(arn, False)

    def _retag(self, arn: str, tagged: bool) -> None:
        for server_id, server in self.servers.items():
            if server.arn == arn:
                self.servers[server_id] = replace(server, actions_tagged=tagged)

    def change_life_cycle_state(self, source_server_id: str, state: str) -> SourceServer:
        self.calls["change_life_cycle_state"] += 1
        self._refuse_if_busy([source_server_id])
        self.lifecycle_changes.append((source_server_id, state))
        self.servers[source_server_id] = replace(
            self.servers[source_server_id], lifecycle_state=state
        )
        return self.servers[source_server_id]

    def _refuse_if_busy(self, source_server_ids: Sequence[str]) -> None:
        busy = {
            server_id: "JOB_IN_PROGRESS"
            for server_id in source_server_ids
            for candidate in self.jobs.values()
            if candidate.status != "COMPLETED" and candidate.server(server_id)
        }
        if busy:
            raise MgnConflictError(f"ConflictException: in a job: {sorted(busy)}", busy)

    def active_job_for(self, server: SourceServer, known_job_ids: Sequence[str] = ()) -> Job | None:
        self.calls["active_job_for"] += 1
        for candidate in self.jobs.values():
            if candidate.status != "COMPLETED" and candidate.server(server.source_server_id):
                return candidate
        return None

    def _launch(self, kind: str, ids: Sequence[str], tags: dict[str, str]) -> Job:
        started = job(f"mgnjob-{len(self.jobs) + 1:04d}", server_id=ids[0], initiated_by=kind)
        self.add_job(started)
        self.launched.append((kind, list(ids), tags))
        return started

    def start_test(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job:
        return self._launch("START_TEST", source_server_ids, tags)

    def start_cutover(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job:
        return self._launch("START_CUTOVER", source_server_ids, tags)

    def terminate_target_instances(
        self, source_server_ids: Sequence[str], tags: dict[str, str] | None = None
    ) -> Job:
        self.calls["terminate_target_instances"] += 1
        self._refuse_if_busy(source_server_ids)
        self.terminated.append(list(source_server_ids))
        started = job(
            f"mgnjob-{len(self.jobs) + 1:04d}",
            server_id=source_server_ids[0],
            initiated_by="TERMINATE",
        )
        self.add_job(started)
        return started

    def job(self, job_id: str) -> Job:
        return self.jobs[job_id]

    def finalize_cutover(self, source_server_id: str) -> SourceServer:
        self.calls["finalize_cutover"] += 1
        self._refuse_if_busy([source_server_id])
        self.lifecycle_changes.append((source_server_id, "CUTOVER"))
        self.servers[source_server_id] = replace(
            self.servers[source_server_id], lifecycle_state="CUTOVER"
        )
        return self.servers[source_server_id]


class FakeEc2:
    """One VPC's subnets and security groups, and the instances MGN launched."""

    def __init__(self) -> None:
        self.subnets: dict[str, Subnet] = {}
        self.groups: dict[str, str] = {}
        self.instances: dict[str, Instance] = {}
        self.looked_at: list[str] = []  # the instances asked for, in order
        self.template_versions = 0
        self.templates_set: list[str] = []  # the launch templates given a version, in order

    def subnet(self, subnet_id: str) -> Subnet | None:
        return self.subnets.get(subnet_id)

    def security_group_vpcs(self, group_ids: list[str]) -> dict[str, str]:
        return {group: self.groups[group] for group in group_ids if group in self.groups}

    def instance_type_offered(self, instance_type: str, availability_zone: str) -> bool:
        return True

    def instance_profile_exists(self, name: str) -> bool:
        return True

    def set_launch_template(
        self,
        launch_template_id: str,
        *,
        instance_type: str,
        subnet_id: str,
        security_group_ids: list[str],
        iam_instance_profile: str | None,
        tags: dict[str, str],
    ) -> int:
        self.template_versions += 1
        self.templates_set.append(launch_template_id)
        return self.template_versions

    def instance(self, instance_id: str) -> Instance | None:
        self.looked_at.append(instance_id)
        return self.instances.get(instance_id)


def running_instance(instance_id: str, private_ip: str = "10.0.1.15") -> Instance:
    return Instance(instance_id, "running", private_ip, "t3.large", "ok", "ok")


class FakeProbe:
    """Health checks that pass, or fail for the ports listed in ``failing``."""

    def __init__(self) -> None:
        self.failing: set[int] = set()
        self.probed: list[tuple[str, int]] = []

    def run(self, address: str, check: HealthCheckSpec) -> CheckResult:
        port = check.effective_port
        self.probed.append((address, port))
        passed = port not in self.failing
        return CheckResult(
            f"{check.type} {port}",
            passed,
            "connected" if passed else "ConnectionRefusedError: refused",
            check.type,
            f"{address}:{port}",
        )


# --- requests and records --------------------------------------------------------------------

SEED_REQUEST = {
    "migrationId": "mig-12345",
    "appName": "billing-app",
    "environment": "prod",
    "wave": "wave-3",
    "sourceVmId": "s-0123456789abcdef0",
    "targetVmName": "billing-app-prod-01",
    "instanceType": "t3.large",
    "subnetId": "subnet-12345",
    "securityGroupIds": ["sg-12345"],
}


def migration_record(
    *,
    status: str = "RUNNING",
    step: str = "AwaitApproval",
    execution_arn: str | None = "arn:aws:states:us-east-1:111122223333:execution:wp:mig-12345-r1",
    **request: Any,
) -> MigrationRecord:
    parsed = MigrationRequest.model_validate({**SEED_REQUEST, **request})
    return MigrationRecord(
        migration_id=parsed.migration_id,
        wave=parsed.wave,
        app_name=parsed.app_name,
        target_vm_name=parsed.target_vm_name,
        revision="0123456789abcdef",
        status=status,
        step=step,
        correlation_id="corr-1",
        execution_arn=execution_arn,
        request=parsed,
    )


class FakeLanes:
    """One lane for every migration (its MGN and EC2 fakes); ``refuse`` makes its role
    unassumable, as a target account without the Wavepilot role."""

    def __init__(self, mgn: FakeMgn, ec2: FakeEc2) -> None:
        self.mgn = mgn
        self.ec2 = ec2
        self.refused: str | None = None
        self.asked: list[tuple[str, str]] = []

    def refuse(self, role_arn: str) -> None:
        self.refused = role_arn

    def for_spec(self, spec: MigrationSpec) -> FakeLanes:
        lane = Lane(spec.target_account_id, spec.target_region)
        self.asked.append((lane.account_id, lane.region))
        if self.refused is not None:
            raise LaneRoleUnavailableError(lane, self.refused, "AccessDenied: not authorized")
        return self


# --- the launch ledger -----------------------------------------------------------------------


class FakeLaunchLedger:
    """One lane's launch ledger in dicts (``orchestration.pipeline.ports.LaunchLedger``), with
    the DynamoDB adapter's rules: requests idempotent per migration and kind, intents written
    only on the version they were planned from, answered requests kept with their outcome."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, str], WaitingLaunch] = {}
        self.intents: dict[str, LaunchIntent] = {}
        self.answered: dict[tuple[str, str], LaunchOutcome] = {}
        self.outbox: dict[tuple[str, str], LaunchOutcome] = {}
        self.version = 0
        # The next record_job raises this (a coordinator dying after MGN started the job).
        self.record_job_fails_with: Exception | None = None
        # Another coordinator writes an intent just before the next add_intent.
        self.written_meanwhile = False

    def record_request(self, request: LaunchRequest, task_token: str) -> RequestRecorded:
        answered = self.answered.get(request.key)
        if answered is not None and answered.task_token == task_token:
            return "answered"
        if answered is not None and request.execution and answered.execution == request.execution:
            again = replace(answered, task_token=task_token)
            self.answered[request.key] = self.outbox[request.key] = again
            return "reanswered"
        if request.key in self.waiting:
            self.waiting[request.key] = replace(self.waiting[request.key], task_token=task_token)
            return "open"
        self.waiting[request.key] = WaitingLaunch(request, task_token)
        return "new"

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(
            tuple(self.waiting.values()),
            tuple(self.intents.values()),
            self.version,
            len(self.outbox),
        )

    def add_intent(self, intent: LaunchIntent, *, seen_version: int) -> None:
        if self.written_meanwhile:
            self.written_meanwhile = False
            self.version += 1
        if seen_version != self.version or intent.intent_id in self.intents:
            raise LedgerConflictError(f"the ledger is at version {self.version}")
        self.intents[intent.intent_id] = intent
        self.version += 1

    def record_job(self, intent_id: str, job_id: str) -> None:
        if self.record_job_fails_with is not None:
            failure, self.record_job_fails_with = self.record_job_fails_with, None
            raise failure
        self.intents[intent_id] = replace(self.intents[intent_id], job_id=job_id)

    def mark_replication_ready(self, launches: Sequence[WaitingLaunch]) -> None:
        for launch in launches:
            key = launch.request.key
            if key in self.waiting:
                self.waiting[key] = replace(self.waiting[key], replication_ready=True)

    def mark_test_instance_retired(self, launches: Sequence[WaitingLaunch]) -> None:
        for launch in launches:
            key = launch.request.key
            if key in self.waiting:
                self.waiting[key] = replace(self.waiting[key], test_instance_retired=True)

    def mark_held_reported(self, launches: Sequence[WaitingLaunch], hold: str) -> None:
        for launch in launches:
            key = launch.request.key
            if key in self.waiting:
                self.waiting[key] = replace(self.waiting[key], held_reported=hold)

    def mark_dependencies_reported(self, launches: Sequence[WaitingLaunch]) -> None:
        for launch in launches:
            key = launch.request.key
            if key in self.waiting:
                self.waiting[key] = replace(self.waiting[key], dependencies_reported=True)

    def remove_intent(self, intent_id: str) -> None:
        self.intents.pop(intent_id, None)

    def complete(self, outcomes: Sequence[LaunchOutcome]) -> None:
        for outcome in outcomes:
            key = (outcome.migration_id, outcome.kind)
            launch = self.waiting.get(key)
            if launch is None or launch.request.execution != outcome.execution:
                continue
            answer = replace(outcome, task_token=launch.task_token)
            del self.waiting[key]
            self.answered[key] = self.outbox[key] = answer

    def undelivered(self) -> list[LaunchOutcome]:
        return list(self.outbox.values())

    def delivered(self, outcomes: Sequence[LaunchOutcome]) -> None:
        for outcome in outcomes:
            key = (outcome.migration_id, outcome.kind)
            if key in self.outbox and self.outbox[key].task_token == outcome.task_token:
                del self.outbox[key]
