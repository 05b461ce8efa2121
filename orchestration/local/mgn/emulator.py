"""`MgnEmulator`: the emulated MGN account the local runtime starts and seeds.

Typical use by the runtime:

    emulator = MgnEmulator(Boto3Ec2LaunchPort(ec2_client), clock=SimulatedClock(speed=600))
    emulator.add_source_server(hostname="web01", fqdn="web01.corp.example", disk_gib=[128])
    with emulator.serve() as endpoint_url:  # or set AWS_ENDPOINT_URL_MGN=endpoint_url
        boto3.client("mgn", endpoint_url=endpoint_url).describe_source_servers()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from botocore.model import Shape

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.conformance import shape_problems
from orchestration.local.mgn.ec2_port import Ec2LaunchPort
from orchestration.local.mgn.errors import (
    ServiceQuotaExceededError,
)
from orchestration.local.mgn.faults import FaultInjector, FaultState
from orchestration.local.mgn.identifiers import ArnFactory, IdFactory
from orchestration.local.mgn.jobs import SOURCE_SERVER_ID_TAG, JobEngine
from orchestration.local.mgn.metrics import EmulatorMetrics, MetricsRecorder
from orchestration.local.mgn.model import (
    JobSummary,
    LaunchConfigurationRecord,
    MgnState,
    QuotaRejection,
    ReplicationTimeline,
    SourceServer,
    SourceServerRecord,
    summarize_job,
)
from orchestration.local.mgn.operations import NON_ARCHIVED_SERVERS_QUOTA, MgnOperations
from orchestration.local.mgn.protocol import RestJsonEndpoint, mgn_service_model
from orchestration.local.mgn.rendering import render_source_server
from orchestration.local.mgn.replication import ReplicationPlan, initial_sync_completed_at
from orchestration.local.mgn.server import LoopbackServer
from orchestration.local.mgn.settings import EmulatorSettings, ReplicationTiming
from orchestration.local.mgn.sizing import recommended_instance_type
from orchestration.local.mgn.slots import ReplicationSlots
from orchestration.local.mgn.states import LifeCycleState, OsFamily
from orchestration.local.mgn.throttling import RequestGate, TokenBucket
from orchestration.local.runtime.in_process_transport import Reply

logger = logging.getLogger(__name__)

ENDPOINT_ENVIRONMENT_VARIABLE = "AWS_ENDPOINT_URL_MGN"

_GIB = 1024**3
_DEFAULT_OS_NAMES = {
    OsFamily.WINDOWS: "Microsoft Windows Server 2019 Datacenter",
    OsFamily.LINUX: "Ubuntu 22.04.4 LTS",
}
_MAX_LAUNCH_CONFIGURATION_NAME = 128  # SmallBoundedString


def _source_server_shape() -> Shape:
    return mgn_service_model().shape_for("SourceServer")


class MgnEmulator:
    """One emulated MGN account and Region (a lane), served over MGN's real wire protocol.

    Serves on loopback by itself (`start()`), answering every request whatever account or
    Region signed it, or as one lane of an `MgnFleet`, which serves several lanes on one
    endpoint and routes each request to its account and Region.

    Thread-safe: the HTTP server answers each connection on its own thread, and every
    operation, seeding call and fault runs under one lock at one simulated instant.

    Args:
        ec2: where launches create, and terminations end, real (moto) EC2 instances.
        clock: simulated time; defaults to 600x real time.
        settings: timing, quotas, request rate, account and Region.
    """

    def __init__(
        self,
        ec2: Ec2LaunchPort,
        *,
        clock: SimulatedClock | None = None,
        settings: EmulatorSettings | None = None,
    ) -> None:
        self._settings = settings or EmulatorSettings()
        self._clock = clock or SimulatedClock()
        self._ec2 = ec2
        self._lock = threading.RLock()
        self._state = MgnState(
            replication_slots=ReplicationSlots(self._settings.quotas.replicating_servers)
        )
        self._fault_state = FaultState(
            launch_failure_rate=self._settings.launch_failure_rate,
            launch_failure_seed=self._settings.seed or 0,
        )
        self._ids = IdFactory(self._settings.seed)
        self._arns = ArnFactory(self._settings.account_id, self._settings.region)
        self._engine = JobEngine(
            state=self._state,
            ec2=ec2,
            faults=self._fault_state,
            settings=self._settings,
            ids=self._ids,
            arns=self._arns,
        )
        self._metrics = MetricsRecorder()
        gate = RequestGate(TokenBucket(self._settings.request_rate), self._clock)
        self._operations = operations = MgnOperations(
            state=self._state,
            engine=self._engine,
            faults=self._fault_state,
            settings=self._settings,
            clock=self._clock,
            lock=self._lock,
            ids=self._ids,
            arns=self._arns,
        )
        self._endpoint = RestJsonEndpoint(
            operations=operations,
            gate=gate,
            metrics=self._metrics,
            check_responses=self._settings.check_responses,
        )
        self._serving = SettledEndpoint(self.answer, self.settle)
        # Set when an `MgnFleet` hosts this lane: its server, not this one, is the endpoint.
        self._host_url: Callable[[], str | None] | None = None
        self._faults = FaultInjector(
            state=self._state,
            faults=self._fault_state,
            gate=gate,
            clock=self._clock,
            lock=self._lock,
            settle=self._engine.settle,
        )

    @property
    def clock(self) -> SimulatedClock:
        return self._clock

    @property
    def settings(self) -> EmulatorSettings:
        return self._settings

    @property
    def faults(self) -> FaultInjector:
        """Fault injection (replication stalls, launch failures, throttling, quota pressure)."""
        return self._faults

    # --- Seeding ------------------------------------------------------------------------------

    def add_source_server(
        self,
        *,
        hostname: str | None,
        fqdn: str | None = None,
        user_provided_id: str | None = None,
        os_family: OsFamily | str = OsFamily.LINUX,
        disk_gib: Sequence[int] = (100,),
        cpu_cores: int = 2,
        ram_gib: int = 8,
        tags: Mapping[str, str] | None = None,
        application_id: str | None = None,
        os_full_string: str | None = None,
        agent_installed_at: datetime | None = None,
        archived: bool = False,
        source_server_id: str | None = None,
        replication_bytes_per_second: float | None = None,
        private_ips: Sequence[str] = (),
    ) -> SourceServer:
        """Register a source server as if its replication agent had just been installed.

        Replication then runs INITIATING -> INITIAL_SYNC -> CONTINUOUS on the clock and the
        lifecycle goes NOT_READY -> READY_FOR_TEST at the first CONTINUOUS. The server gets a
        real EC2 launch template (its `ec2LaunchTemplateID`). If every replication slot is
        taken (`QuotaLimits.replicating_servers`), replication waits at INITIATING/WAIT for
        one and starts when it frees (see `slots`).

        Args:
            hostname: the agent's hostname hint; with `fqdn` None too, the server has no
                identificationHints at all (an agent that reported none).
            fqdn: the agent's FQDN hint.
            user_provided_id: the ID given at agent install (stable; best for matching).
            os_family: "windows" or "linux" (disk device names, OS string).
            disk_gib: disk sizes; replication time follows their total at the set bandwidth.
            cpu_cores: source vCPUs (drives BASIC right-sizing).
            ram_gib: source memory in GiB (drives BASIC right-sizing).
            tags: the source server's tags.
            application_id: an MGN application ID (`app-` + 17 characters) for filtering.
            os_full_string: overrides the OS description.
            agent_installed_at: when replication started (simulated time, not in the future);
                an old instant seeds a server that is already CONTINUOUS.
            archived: seed an archived, disconnected server (e.g. a previous install of the
                same host), which filters on isArchived must tell apart.
            source_server_id: the server's ID, for manifests that name it explicitly
                (`s-` + 17 characters); a fresh one by default.
            replication_bytes_per_second: this server's initial sync (and backlog drain) rate,
                e.g. its share of its wave's link; `settings.replication`'s bandwidth by
                default. A share at or below the change rate clamps this server's change rate
                (`ReplicationTiming.with_bandwidth`).

        Raises:
            ValueError: an argument MGN would never report (checked against the model: ID
                patterns, lengths, tag counts), or a bandwidth that is not positive.
            Ec2LaunchError: EC2 refused to create the launch template.
            ServiceQuotaExceededError: 4,000 non-archived source servers already exist.
        """
        family = OsFamily(os_family)
        disk_bytes = tuple(size * _GIB for size in disk_gib)
        timing = self._replication_timing(replication_bytes_per_second)
        self._check_seed_arguments(
            disk_bytes=disk_bytes,
            cpu_cores=cpu_cores,
            ram_gib=ram_gib,
            agent_installed_at=agent_installed_at,
        )
        with self._lock:
            now = self._clock.now()
            self._engine.settle(now)
            limit = self._settings.quotas.non_archived_servers
            if not archived and self._state.non_archived_count() >= limit:
                raise ServiceQuotaExceededError(
                    f"At most {limit} non-archived source servers per account and Region",
                    quota_code=NON_ARCHIVED_SERVERS_QUOTA,
                    quota_value=limit,
                )
            server_id = source_server_id or self._ids.source_server_id()
            if server_id in self._state.servers:
                raise ValueError(f"source server {server_id} already exists")
            recommended = recommended_instance_type(cpu_cores, ram_gib * _GIB)
            initial_state = LifeCycleState.DISCONNECTED if archived else LifeCycleState.NOT_READY
            record = SourceServerRecord(
                source_server_id=server_id,
                arn=self._arns.source_server(server_id),
                sequence=self._state.take_sequence(),
                hostname=hostname,
                fqdn=fqdn,
                user_provided_id=user_provided_id,
                application_id=application_id,
                os_family=family,
                os_full_string=os_full_string or _DEFAULT_OS_NAMES[family],
                cpu_cores=cpu_cores,
                ram_bytes=ram_gib * _GIB,
                recommended_instance_type=recommended,
                tags=dict(tags or {}),
                added_at=now,
                replication=ReplicationPlan(
                    agent_installed_at=agent_installed_at or now,
                    disk_bytes=disk_bytes,
                    timing=timing,
                    # An archived seed replicated once, before it was archived: no slot now.
                    started_at=(agent_installed_at or now) if archived else None,
                ),
                launch_configuration=LaunchConfigurationRecord(
                    name=(hostname or server_id)[:_MAX_LAUNCH_CONFIGURATION_NAME],
                    ec2_launch_template_id="",  # created below, once the server is valid
                ),
                lifecycle_state=initial_state,
                is_archived=archived,
                replication_disconnected_at=now if archived else None,
                private_ips=tuple(private_ips),
                ebs_encryption_key_arn=self._state.template_ebs_encryption_key_arn,
            )
            problems = shape_problems(render_source_server(record, now), _source_server_shape())
            if problems:
                raise ValueError(f"MGN would never report this source server: {problems}")
            template_id = self._ec2.create_launch_template(
                f"mgn-{server_id}", recommended, {SOURCE_SERVER_ID_TAG: server_id}
            )
            record.launch_configuration.ec2_launch_template_id = template_id
            self._state.servers[server_id] = record
            if not archived:
                self._state.replication_slots.admit(record)
                self._state.awaiting_first_sync.add(server_id)
                self._engine.settle(now)
            return SourceServer(
                source_server_id=server_id,
                arn=record.arn,
                hostname=hostname,
                fqdn=fqdn,
                user_provided_id=user_provided_id,
                os_family=family,
                ec2_launch_template_id=template_id,
                disk_bytes=disk_bytes,
                is_archived=archived,
            )

    def set_replication_template_key(self, key_arn: str | None) -> None:
        """Point the Region's replication template at a KMS key (None: EBS's default key), as
        a team does in MGN's console. Servers already added keep the key they replicate with;
        servers added from now on get this one."""
        with self._lock:
            self._state.template_ebs_encryption_key_arn = key_arn

    def _replication_timing(self, bytes_per_second: float | None) -> ReplicationTiming:
        if bytes_per_second is None:
            return self._settings.replication
        return self._settings.replication.with_bandwidth(bytes_per_second)

    def _check_seed_arguments(
        self,
        *,
        disk_bytes: tuple[int, ...],
        cpu_cores: int,
        ram_gib: int,
        agent_installed_at: datetime | None,
    ) -> None:
        if not disk_bytes or min(disk_bytes) <= 0:
            raise ValueError("a source server needs at least one disk, each larger than 0 GiB")
        if cpu_cores < 1 or ram_gib < 1:
            raise ValueError("cpu_cores and ram_gib must be at least 1")
        if agent_installed_at is not None and agent_installed_at > self._clock.now():
            raise ValueError("agent_installed_at cannot be in the (simulated) future")

    def add_source_server_action(
        self,
        source_server_id: str,
        *,
        action_id: str,
        action_name: str,
        document_identifier: str,
        order: int,
        must_succeed_for_cutover: bool = False,
    ) -> None:
        """Seed a post-launch action on a server, as if someone had put it earlier (in MGN's
        console, or an earlier revision of a manifest); PutSourceServerAction's rules apply.

        Raises:
            ResourceNotFoundError: no such server.
        """
        self._operations.invoke(
            "PutSourceServerAction",
            {
                "sourceServerID": source_server_id,
                "actionID": action_id,
                "actionName": action_name,
                "documentIdentifier": document_identifier,
                "order": order,
                "mustSucceedForCutover": must_succeed_for_cutover,
            },
        )

    def tag_source_server(self, source_server_id: str, tags: Mapping[str, str]) -> None:
        """Tag a server as if TagResource had been called earlier (e.g. by an earlier
        revision's preparation, with ``ACTIONS_TAG``)."""
        with self._lock:
            self._state.server(source_server_id).tags.update(tags)

    # --- MGN's console: waves and applications made by people, not by Wavepilot ------------

    def add_wave(
        self, name: str, *, tags: Mapping[str, str] | None = None, archived: bool = False
    ) -> str:
        """A wave as someone made it in MGN's console (CreateWave, ArchiveWave); its ID."""
        wave_id = str(
            self._operations.invoke("CreateWave", {"name": name, "tags": dict(tags or {})})[
                "waveID"
            ]
        )
        if archived:
            self._operations.invoke("ArchiveWave", {"waveID": wave_id})
        return wave_id

    def add_application(
        self,
        name: str,
        *,
        wave_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        archived: bool = False,
    ) -> str:
        """An application as made in the console, in `wave_id` if given; its ID."""
        application_id = str(
            self._operations.invoke("CreateApplication", {"name": name, "tags": dict(tags or {})})[
                "applicationID"
            ]
        )
        if wave_id is not None:
            self._operations.invoke(
                "AssociateApplications", {"waveID": wave_id, "applicationIDs": [application_id]}
            )
        if archived:
            self._operations.invoke("ArchiveApplication", {"applicationID": application_id})
        return application_id

    def move_source_server(self, source_server_id: str, application_id: str | None) -> None:
        """Move a server to another application (None: out of any) as a console user does:
        drift the pipeline must notice."""
        current = self.describe_source_server(source_server_id).get("applicationID")
        if current is not None:
            self._operations.invoke(
                "DisassociateSourceServers",
                {"applicationID": current, "sourceServerIDs": [source_server_id]},
            )
        if application_id is not None:
            self._operations.invoke(
                "AssociateSourceServers",
                {"applicationID": application_id, "sourceServerIDs": [source_server_id]},
            )

    # --- Observation --------------------------------------------------------------------------

    def describe_source_server(self, source_server_id: str) -> dict[str, Any]:
        """The server exactly as DescribeSourceServers would return it now (wire JSON).

        Raises:
            ResourceNotFoundError: no such server.
        """
        with self._lock:
            now = self._clock.now()
            self._engine.settle(now)
            return render_source_server(self._server(source_server_id), now)

    def replication_timeline(self, source_server_id: str) -> ReplicationTimeline:
        """When the server's agent was installed, its replication started (it got a slot) and
        it is (or will be, as things stand) first CONTINUOUS.

        Raises:
            ResourceNotFoundError: no such server.
        """
        with self._lock:
            self._engine.settle(self._clock.now())
            server = self._server(source_server_id)
            plan = server.replication
            ready_at = initial_sync_completed_at(plan, server.stalls)
            ended_at = server.replication_disconnected_at
            if ready_at is not None and ended_at is not None and ready_at > ended_at:
                ready_at = None  # replication ended before it ever got there
            return ReplicationTimeline(plan.agent_installed_at, plan.started_at, ready_at)

    def quota_rejections(self) -> list[QuotaRejection]:
        """Every ServiceQuotaExceededException answered to StartTest, StartCutover or
        TerminateTargetInstances, oldest first."""
        with self._lock:
            return list(self._state.quota_rejections)

    def _server(self, source_server_id: str) -> SourceServerRecord:
        return self._state.server(source_server_id)

    def settle(self) -> None:
        """Apply every job phase due by now (EC2 launches and terminations) without a request.

        Requests do this themselves; call it after `clock.advance()` when the next thing
        looked at is EC2 rather than MGN.
        """
        with self._lock:
            self._engine.settle(self._clock.now())

    def jobs(self) -> list[JobSummary]:
        """Every job so far, oldest first, as of now."""
        with self._lock:
            self._engine.settle(self._clock.now())
            return [summarize_job(job) for job in self._state.jobs.values()]

    def metrics(self) -> EmulatorMetrics:
        """Calls per operation, errors by code, quota/throttling errors, response checks."""
        return self._metrics.snapshot()

    def reset_metrics(self) -> None:
        self._metrics.reset()

    # --- Serving ------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request as this lane (what the loopback server or a fleet calls)."""
        return self._endpoint.handle(method, path, body)

    def host_in(self, host_url: Callable[[], str | None]) -> None:
        """Hand serving over to a fleet: `endpoint_url` becomes the fleet's, `start()` refuses.

        Called by `MgnFleet` when it creates the lane.
        """
        self._host_url = host_url

    @property
    def endpoint_url(self) -> str | None:
        """`http://127.0.0.1:<port>` while serving (this lane's fleet's, if it has one)."""
        if self._host_url is not None:
            return self._host_url()
        return self._serving.url

    def environment(self) -> dict[str, str]:
        """The variables that route an unmodified `boto3.client("mgn")` here."""
        url = self.endpoint_url
        if url is None:
            raise RuntimeError("the MGN emulator is not serving; call start() first")
        return {ENDPOINT_ENVIRONMENT_VARIABLE: url}

    def start(self) -> str:
        """Serve on an ephemeral 127.0.0.1 port; returns the endpoint URL.

        On a running clock, also starts the background settle (see
        `EmulatorSettings.background_settle_seconds`).
        """
        if self._host_url is not None:
            raise RuntimeError("this lane is served by its MgnFleet; start the fleet instead")
        running = self._clock.speed > 0
        return self._serving.start(self._settings.background_settle_seconds if running else None)

    def stop(self) -> None:
        self._serving.stop()

    @contextmanager
    def serve(self) -> Iterator[str]:
        """`with emulator.serve() as endpoint_url:` serves for the block's duration."""
        url = self.start()
        try:
            yield url
        finally:
            self.stop()


class SettledEndpoint:
    """A loopback endpoint answering MGN requests and, while it serves, the background settle
    beside it (a lane's or a whole fleet's: both serve the same way)."""

    def __init__(self, answer: Callable[..., Any], settle: Callable[[], None]) -> None:
        self._server = LoopbackServer(answer)
        self._settle = settle
        self._ticker: SettleTicker | None = None

    @property
    def url(self) -> str | None:
        return self._server.url

    def start(self, settle_every: float | None) -> str:
        """Serve on an ephemeral 127.0.0.1 port; settle every ``settle_every`` real seconds
        (``None``: never in the background)."""
        url = self._server.start()
        if settle_every is not None:
            self._ticker = SettleTicker(settle_every, self._settle)
        return url

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self._server.stop()


class SettleTicker:
    """Calls `settle` every `interval` real seconds on a daemon thread until stopped.

    Why a thread at all: state is computed lazily, but EC2 side effects (instances launched,
    terminated) only happen when something settles. Without a request they would wait, and a
    pipeline watching EC2 rather than MGN would wait with them.
    """

    def __init__(self, interval: float, settle: Callable[[], None]) -> None:
        self._interval = interval
        self._settle = settle
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mgn-emulator-settle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._settle()
            except Exception:  # keep ticking: the next request would hit the same bug loudly
                logger.exception("MGN emulator background settle failed")

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
