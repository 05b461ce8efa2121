"""MGN's operations over the emulator's state: the rules, quotas and transitions live here.

Every operation runs under the emulator lock after `JobEngine.settle(now)`, so it sees the
state as of one simulated instant, and concurrent callers (the pipeline's many threads) are
serialised exactly as quota checks need. Input has already passed the model's validation; the
output is checked against the model by `protocol`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.errors import (
    JOB_RESOURCE,
    SOURCE_SERVER_RESOURCE,
    ConflictDetail,
    ConflictError,
    InvalidField,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    UninitializedAccountError,
    ValidationError,
)
from orchestration.local.mgn.faults import FaultState, end_stall
from orchestration.local.mgn.grouping import GroupingOperations
from orchestration.local.mgn.identifiers import ArnFactory, IdFactory
from orchestration.local.mgn.jobs import JobEngine
from orchestration.local.mgn.lifecycle import (
    ARCHIVABLE_IN,
    LAUNCH_ALLOWED_FROM,
    STATE_DURING_LAUNCH,
    TERMINATE_REFUSED_IN,
    USER_SETTABLE_FROM,
)
from orchestration.local.mgn.model import (
    JobRecord,
    MgnState,
    QuotaRejection,
    SourceServerRecord,
)
from orchestration.local.mgn.post_launch import ServerActionRecord, render_action
from orchestration.local.mgn.rendering import (
    JsonObject,
    render_job,
    render_job_log_entry,
    render_launch_configuration,
    render_replication_configuration,
    render_replication_template,
    render_source_server,
    replication_view_of,
)
from orchestration.local.mgn.settings import EmulatorSettings
from orchestration.local.mgn.states import (
    DataReplicationState,
    FirstBoot,
    InitiatedBy,
    LaunchType,
    LifeCycleState,
)
from orchestration.local.mgn.wire_format import (
    PageCursor,
    decode_page_token,
    encode_page_token,
    filters_digest,
    parse_timestamp,
)

# The emulator's names for the quotas it enforces (AWS's own quota codes are not published
# with the General Reference table these limits come from).
CONCURRENT_JOBS_QUOTA = "ConcurrentJobsInProgress"
SERVERS_IN_ACTIVE_JOBS_QUOTA = "SourceServersInAllActiveJobs"
NON_ARCHIVED_SERVERS_QUOTA = "NonArchivedSourceServers"

# `ConflictException.errors[].code` values, one per reason a server is refused.
# AWS's limit on tags per resource (MGN's TagResource is refused beyond it).
MAX_TAGS = 50
REFUSED_ARCHIVED = "SOURCE_SERVER_ARCHIVED"
REFUSED_JOB_IN_PROGRESS = "JOB_IN_PROGRESS"
REFUSED_LIFECYCLE_STATE = "INVALID_LIFECYCLE_STATE"
REFUSED_REPLICATION_NOT_CONTINUOUS = "REPLICATION_NOT_CONTINUOUS"
REFUSED_NO_CUTOVER_INSTANCE = "NO_SUCCESSFUL_CUTOVER_LAUNCH"

Handler = Callable[[JsonObject, datetime], JsonObject]


def replication_template_id(account_id: str) -> str:
    """The emulated Region's one replication template: `rct-` + 17 characters, stable."""
    return f"rct-{account_id[-12:]:0>12}00000"


_Item = TypeVar("_Item")


class MgnOperations:
    """The operation handlers, by wire operation name."""

    def __init__(
        self,
        *,
        state: MgnState,
        engine: JobEngine,
        faults: FaultState,
        settings: EmulatorSettings,
        clock: SimulatedClock,
        lock: threading.RLock,
        ids: IdFactory,
        arns: ArnFactory,
    ) -> None:
        self._state = state
        self._engine = engine
        self._faults = faults
        self._settings = settings
        self._clock = clock
        self._lock = lock
        self._initialized = settings.initialized
        self._handlers: Mapping[str, Handler] = {
            "ChangeServerLifeCycleState": self._change_server_life_cycle_state,
            "DescribeJobLogItems": self._describe_job_log_items,
            "DescribeJobs": self._describe_jobs,
            "DescribeReplicationConfigurationTemplates": (
                self._describe_replication_configuration_templates
            ),
            "DescribeSourceServers": self._describe_source_servers,
            "DisconnectFromService": self._disconnect_from_service,
            "FinalizeCutover": self._finalize_cutover,
            "GetLaunchConfiguration": self._get_launch_configuration,
            "GetReplicationConfiguration": self._get_replication_configuration,
            "InitializeService": self._initialize_service,
            "ListSourceServerActions": self._list_source_server_actions,
            "MarkAsArchived": self._mark_as_archived,
            "PutSourceServerAction": self._put_source_server_action,
            "RemoveSourceServerAction": self._remove_source_server_action,
            "RetryDataReplication": self._retry_data_replication,
            "StartCutover": self._start_cutover,
            "StartTest": self._start_test,
            "TerminateTargetInstances": self._terminate_target_instances,
            "UpdateLaunchConfiguration": self._update_launch_configuration,
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
            "ListTagsForResource": self._list_tags_for_resource,
            **GroupingOperations(
                state=state, quotas=settings.quotas, ids=ids, arns=arns, page=self._paged_items
            ).handlers,
        }

    @property
    def supported(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def invoke(self, operation: str, params: JsonObject) -> JsonObject:
        """Run one operation at the current simulated instant; raises `MgnError`s."""
        handler = self._handlers[operation]
        with self._lock:
            now = self._clock.now()
            self._engine.settle(now)
            if not self._initialized and operation != "InitializeService":
                raise UninitializedAccountError(
                    "Account is not initialized for Application Migration Service; "
                    "call InitializeService first"
                )
            account_id = params.get("accountID")
            if account_id is not None and account_id != self._settings.account_id:
                raise ValidationError(
                    f"accountID {account_id} is not this emulator's account "
                    f"({self._settings.account_id}); multi-account access is not emulated",
                    fields=(InvalidField("accountID", "unknown account"),),
                )
            return handler(params, now)

    # --- Source servers -------------------------------------------------------------------

    def _describe_source_servers(self, params: JsonObject, now: datetime) -> JsonObject:
        filters: JsonObject = params.get("filters") or {}
        wanted_ids = set(filters.get("sourceServerIDs") or ())
        wanted_states = set(filters.get("lifeCycleStates") or ())
        wanted_types = set(filters.get("replicationTypes") or ())
        wanted_apps = set(filters.get("applicationIDs") or ())
        archived = filters.get("isArchived")

        def matches(server: SourceServerRecord) -> bool:
            return (
                (not wanted_ids or server.source_server_id in wanted_ids)
                and (archived is None or server.is_archived == archived)
                and (not wanted_states or server.lifecycle_state.value in wanted_states)
                and (not wanted_types or "AGENT_BASED" in wanted_types)
                and (not wanted_apps or server.application_id in wanted_apps)
            )

        selected = [server for server in self._state.servers.values() if matches(server)]
        page, token = self._page(selected, lambda server: server.sequence, params, filters)
        return self._with_token(
            {"items": [render_source_server(server, now) for server in page]}, token
        )

    def _change_server_life_cycle_state(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        target = LifeCycleState(params["lifeCycle"]["state"])
        self._refuse_if_busy_or_archived(server)
        current = server.lifecycle_state
        if current is target:
            return render_source_server(server, now)
        if current not in USER_SETTABLE_FROM[target]:
            allowed = ", ".join(sorted(USER_SETTABLE_FROM[target]))
            raise self._conflict(
                server,
                f"Cannot change {server.source_server_id} from {current} to {target}; "
                f"{target} can be set only from {allowed}",
                REFUSED_LIFECYCLE_STATE,
            )
        if target is LifeCycleState.CUTOVER:
            self._require_cutover_instance(server)
            server.last_cutover.finalized_at = now
        elif target is LifeCycleState.READY_FOR_TEST:
            server.last_test.reverted_at = now
        elif current is LifeCycleState.TESTING:
            server.last_test.finalized_at = now
        else:
            server.last_cutover.reverted_at = now
        server.lifecycle_state = target
        return render_source_server(server, now)

    def _finalize_cutover(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        self._refuse_if_busy_or_archived(server)
        already_final = server.lifecycle_state is LifeCycleState.CUTOVER
        if already_final and server.replication_disconnected_at is not None:
            return render_source_server(server, now)
        if server.lifecycle_state not in {LifeCycleState.CUTTING_OVER, LifeCycleState.CUTOVER}:
            raise self._conflict(
                server,
                f"Cannot finalize cutover of {server.source_server_id} in state "
                f"{server.lifecycle_state}; launch a cutover instance first",
                REFUSED_LIFECYCLE_STATE,
            )
        self._require_cutover_instance(server)
        server.lifecycle_state = LifeCycleState.CUTOVER
        server.last_cutover.finalized_at = server.last_cutover.finalized_at or now
        self._disconnect_replication(server, now)
        return render_source_server(server, now)

    def _mark_as_archived(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        if server.active_job_id is not None:
            raise self._busy(server)
        if server.lifecycle_state not in ARCHIVABLE_IN:
            raise self._conflict(
                server,
                f"Cannot archive {server.source_server_id} in state {server.lifecycle_state}; "
                "only DISCONNECTED or CUTOVER servers can be archived",
                REFUSED_LIFECYCLE_STATE,
            )
        server.is_archived = True
        self._disconnect_replication(server, now)  # an archived server replicates no more
        return render_source_server(server, now)

    def _disconnect_from_service(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        if server.active_job_id is not None:
            raise self._busy(server)
        if server.lifecycle_state is not LifeCycleState.CUTOVER:
            server.lifecycle_state = LifeCycleState.DISCONNECTED
        self._disconnect_replication(server, now)
        return render_source_server(server, now)

    def _retry_data_replication(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        if server.replication_disconnected_at is not None or server.is_archived:
            raise ValidationError(
                f"{server.source_server_id} is disconnected; there is no replication to retry",
                reason="other",
            )
        stall = server.open_stall()
        if stall is not None and stall.ends_on_retry:
            end_stall(server, now)
        return render_source_server(server, now)

    # --- Post-launch actions --------------------------------------------------------------

    def _put_source_server_action(self, params: JsonObject, now: datetime) -> JsonObject:
        """Create or replace (same actionID) one action; it runs on instances launched after."""
        server = self._server(params["sourceServerID"])
        action_id = params["actionID"]
        previous = server.actions.get(action_id)
        server.actions[action_id] = ServerActionRecord(
            action_id=action_id,
            action_name=params["actionName"],
            document_identifier=params["documentIdentifier"],
            order=params["order"],
            # Replacing keeps the action's place among those of the same order.
            sequence=previous.sequence if previous else self._state.take_sequence(),
            document_version=params.get("documentVersion"),
            active=params.get("active", True),
            timeout_seconds=params.get("timeoutSeconds"),
            must_succeed_for_cutover=params.get("mustSucceedForCutover", False),
            parameters=dict(params.get("parameters") or {}),
            external_parameters=params.get("externalParameters"),
            description=params.get("description"),
            category=params.get("category"),
        )
        return render_action(server.actions[action_id])

    def _list_source_server_actions(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        filters: JsonObject = params.get("filters") or {}
        wanted = set(filters.get("actionIDs") or ())
        selected = [
            action for action in server.actions.values() if not wanted or action.action_id in wanted
        ]
        page, token = self._page(
            selected,
            lambda action: action.sequence,
            params,
            {"sourceServerID": server.source_server_id, **filters},
        )
        return self._with_token({"items": [render_action(action) for action in page]}, token)

    def _remove_source_server_action(self, params: JsonObject, now: datetime) -> JsonObject:
        """Removing an action that is not there succeeds: a retried removal is safe."""
        server = self._server(params["sourceServerID"])
        server.actions.pop(params["actionID"], None)
        return {}

    def _initialize_service(self, params: JsonObject, now: datetime) -> JsonObject:
        self._initialized = True
        return {}

    # --- Launch configuration -------------------------------------------------------------

    def _get_launch_configuration(self, params: JsonObject, now: datetime) -> JsonObject:
        server = self._server(params["sourceServerID"])
        return render_launch_configuration(server.source_server_id, server.launch_configuration)

    def _update_launch_configuration(self, params: JsonObject, now: datetime) -> JsonObject:
        # Allowed during a job too: nothing published says MGN refuses it, and a stricter
        # emulator would only teach the pipeline workarounds AWS does not need.
        server = self._server(params["sourceServerID"])
        configuration = server.launch_configuration
        for wire_name, attribute in _LAUNCH_CONFIGURATION_FIELDS.items():
            if wire_name in params:
                setattr(configuration, attribute, params[wire_name])
        if "licensing" in params and "osByol" in params["licensing"]:
            configuration.os_byol = params["licensing"]["osByol"]
        return render_launch_configuration(server.source_server_id, configuration)

    # --- Replication configuration --------------------------------------------------------

    def _get_replication_configuration(self, params: JsonObject, now: datetime) -> JsonObject:
        return render_replication_configuration(self._server(params["sourceServerID"]))

    def _describe_replication_configuration_templates(
        self, params: JsonObject, now: datetime
    ) -> JsonObject:
        """The Region's one template (MGN creates it at InitializeService); no paging needed."""
        template_id = replication_template_id(self._settings.account_id)
        wanted = params.get("replicationConfigurationTemplateIDs") or [template_id]
        if template_id not in wanted:
            return {"items": []}
        arn = (
            f"arn:aws:mgn:{self._settings.region}:{self._settings.account_id}:"
            f"replication-configuration-template/{template_id}"
        )
        key = self._state.template_ebs_encryption_key_arn
        return {"items": [render_replication_template(template_id, arn, key)]}

    # --- Jobs -----------------------------------------------------------------------------

    def _start_test(self, params: JsonObject, now: datetime) -> JsonObject:
        return self._start_launch(params, now, LaunchType.TEST)

    def _start_cutover(self, params: JsonObject, now: datetime) -> JsonObject:
        return self._start_launch(params, now, LaunchType.CUTOVER)

    def _start_launch(
        self, params: JsonObject, now: datetime, launch_type: LaunchType
    ) -> JsonObject:
        servers = self._servers_for_job(params["sourceServerIDs"])
        refusals = [
            refusal
            for server in servers
            if (refusal := self._launch_refusal(server, launch_type, now)) is not None
        ]
        if refusals:
            raise ConflictError(
                f"Cannot start {launch_type.value} launch: "
                + "; ".join(refusal.message for refusal in refusals),
                errors=tuple(refusals),
            )
        operation = "StartTest" if launch_type is LaunchType.TEST else "StartCutover"
        self._check_job_quotas(operation, servers, now)
        initiated_by = (
            InitiatedBy.START_TEST if launch_type is LaunchType.TEST else InitiatedBy.START_CUTOVER
        )
        job = self._engine.open_job(
            initiated_by=initiated_by, servers=servers, tags=dict(params.get("tags") or {}), now=now
        )
        for server in servers:
            server.lifecycle_state = STATE_DURING_LAUNCH[launch_type]
            milestones = server.last_test if launch_type is LaunchType.TEST else server.last_cutover
            milestones.initiate(now, job.job_id)
        return {"job": render_job(job, now)}

    def _terminate_target_instances(self, params: JsonObject, now: datetime) -> JsonObject:
        servers = self._servers_for_job(params["sourceServerIDs"])
        refusals: list[ConflictDetail] = []
        for server in servers:
            refusal = self._busy_or_archived_refusal(server)
            if refusal is None and server.lifecycle_state in TERMINATE_REFUSED_IN:
                refusal = ConflictDetail(
                    f"{server.source_server_id} is {server.lifecycle_state}; target instances "
                    "cannot be terminated in TESTING, CUTTING_OVER or CUTOVER (mark the server "
                    "ready for testing or cutover first)",
                    REFUSED_LIFECYCLE_STATE,
                    server.source_server_id,
                )
            if refusal is not None:
                refusals.append(refusal)
        if refusals:
            raise ConflictError(
                "Cannot terminate target instances: "
                + "; ".join(refusal.message for refusal in refusals),
                errors=tuple(refusals),
            )
        self._check_job_quotas("TerminateTargetInstances", servers, now)
        job = self._engine.open_job(
            initiated_by=InitiatedBy.TERMINATE,
            servers=servers,
            tags=dict(params.get("tags") or {}),
            now=now,
        )
        return {"job": render_job(job, now)}

    def _describe_jobs(self, params: JsonObject, now: datetime) -> JsonObject:
        filters: JsonObject = params.get("filters") or {}
        wanted_ids = set(filters.get("jobIDs") or ())
        from_date = (
            parse_timestamp(filters["fromDate"], field_name="filters.fromDate")
            if "fromDate" in filters
            else None
        )
        to_date = (
            parse_timestamp(filters["toDate"], field_name="filters.toDate")
            if "toDate" in filters
            else None
        )

        def matches(job: JobRecord) -> bool:
            return (
                (not wanted_ids or job.job_id in wanted_ids)
                and (from_date is None or job.created_at >= from_date)
                and (to_date is None or job.created_at <= to_date)
            )

        newest_first = sorted(
            (job for job in self._state.jobs.values() if matches(job)),
            key=lambda job: job.sequence,
            reverse=True,
        )
        page, token = self._page(
            newest_first, lambda job: job.sequence, params, filters, descending=True
        )
        return self._with_token({"items": [render_job(job, now) for job in page]}, token)

    def _describe_job_log_items(self, params: JsonObject, now: datetime) -> JsonObject:
        job_id = params["jobID"]
        job = self._state.jobs.get(job_id)
        if job is None:
            raise ResourceNotFoundError(
                f"Job {job_id} not found", resource_id=job_id, resource_type=JOB_RESOURCE
            )
        numbered = list(enumerate(job.log, start=1))
        page, token = self._page(numbered, lambda item: item[0], params, {"jobID": job_id})
        return self._with_token({"items": [render_job_log_entry(item) for _, item in page]}, token)

    # --- Rules shared by operations ---------------------------------------------------------

    def _servers_for_job(self, server_ids: Sequence[str]) -> list[SourceServerRecord]:
        limit = self._settings.quotas.servers_per_job
        if len(server_ids) > limit:
            raise ValidationError(
                f"A job can include at most {limit} source servers; got {len(server_ids)}",
                fields=(InvalidField("sourceServerIDs", f"at most {limit} items"),),
            )
        if len(set(server_ids)) != len(server_ids):
            raise ValidationError(
                "sourceServerIDs contains duplicates",
                fields=(InvalidField("sourceServerIDs", "each ID at most once"),),
            )
        unknown = [server_id for server_id in server_ids if server_id not in self._state.servers]
        if unknown:
            raise ValidationError(
                f"Unknown source servers: {', '.join(unknown)}",
                fields=tuple(
                    InvalidField("sourceServerIDs", f"{server_id} does not exist")
                    for server_id in unknown
                ),
            )
        return [self._state.servers[server_id] for server_id in server_ids]

    def _launch_refusal(
        self, server: SourceServerRecord, launch_type: LaunchType, now: datetime
    ) -> ConflictDetail | None:
        server_id = server.source_server_id
        refusal = self._busy_or_archived_refusal(server)
        if refusal is not None:
            return refusal
        allowed = LAUNCH_ALLOWED_FROM[launch_type]
        if server.lifecycle_state not in allowed:
            return ConflictDetail(
                f"{server_id} is {server.lifecycle_state}; a {launch_type.value} launch needs "
                f"{' or '.join(sorted(allowed))}",
                REFUSED_LIFECYCLE_STATE,
                server_id,
            )
        replication = replication_view_of(server, now).state
        if replication is not DataReplicationState.CONTINUOUS:
            return ConflictDetail(
                f"{server_id} data replication is {replication}; launches need CONTINUOUS",
                REFUSED_REPLICATION_NOT_CONTINUOUS,
                server_id,
            )
        return None

    @staticmethod
    def _busy_or_archived_refusal(server: SourceServerRecord) -> ConflictDetail | None:
        if server.is_archived:
            return ConflictDetail(
                f"{server.source_server_id} is archived", REFUSED_ARCHIVED, server.source_server_id
            )
        if server.active_job_id is not None:
            return ConflictDetail(
                f"{server.source_server_id} already takes part in active job "
                f"{server.active_job_id} (one job per source server at a time)",
                REFUSED_JOB_IN_PROGRESS,
                server.source_server_id,
            )
        return None

    def _refuse_if_busy_or_archived(self, server: SourceServerRecord) -> None:
        refusal = self._busy_or_archived_refusal(server)
        if refusal is not None:
            raise self._conflict(server, refusal.message, refusal.code)

    def _busy(self, server: SourceServerRecord) -> ConflictError:
        return self._conflict(
            server,
            f"{server.source_server_id} takes part in active job {server.active_job_id}",
            REFUSED_JOB_IN_PROGRESS,
        )

    @staticmethod
    def _conflict(server: SourceServerRecord, message: str, code: str) -> ConflictError:
        server_id = server.source_server_id
        return ConflictError(
            message,
            resource_id=server_id,
            resource_type=SOURCE_SERVER_RESOURCE,
            errors=(ConflictDetail(message, code, server_id),),
        )

    def _require_cutover_instance(self, server: SourceServerRecord) -> None:
        instance = server.launched_instance
        if (
            instance is None
            or instance.launch_type is not LaunchType.CUTOVER
            or instance.first_boot is not FirstBoot.SUCCEEDED
        ):
            raise self._conflict(
                server,
                f"{server.source_server_id} has no successfully launched cutover instance",
                REFUSED_NO_CUTOVER_INSTANCE,
            )

    def _check_job_quotas(
        self, operation: str, servers: Sequence[SourceServerRecord], now: datetime
    ) -> None:
        """Refuse a job the quotas have no room for, and record the refusal for the report."""
        try:
            self._check_job_quota_room(len(servers))
        except ServiceQuotaExceededError as refusal:
            self._state.quota_rejections.append(
                QuotaRejection(
                    account_id=self._settings.account_id,
                    region=self._settings.region,
                    operation=operation,
                    source_server_ids=tuple(server.source_server_id for server in servers),
                    quota_code=refusal.quota_code,
                    at=now,
                )
            )
            raise

    def _check_job_quota_room(self, server_count: int) -> None:
        quotas = self._settings.quotas
        active_jobs = len(self._state.active_job_ids) + self._faults.phantom_active_jobs
        if active_jobs >= quotas.concurrent_jobs:
            raise ServiceQuotaExceededError(
                f"{active_jobs} jobs are in progress; at most {quotas.concurrent_jobs} "
                "concurrent jobs are allowed",
                quota_code=CONCURRENT_JOBS_QUOTA,
                quota_value=quotas.concurrent_jobs,
                resource_type=JOB_RESOURCE,
            )
        busy = self._state.servers_in_active_jobs() + self._faults.phantom_servers_in_active_jobs
        if busy + server_count > quotas.servers_in_active_jobs:
            raise ServiceQuotaExceededError(
                f"{busy} source servers are in active jobs; adding {server_count} would exceed "
                f"the limit of {quotas.servers_in_active_jobs}",
                quota_code=SERVERS_IN_ACTIVE_JOBS_QUOTA,
                quota_value=quotas.servers_in_active_jobs,
                resource_type=SOURCE_SERVER_RESOURCE,
            )

    # --- Tags (source servers, jobs, waves, applications: by ARN) --------------------------

    def _tagged(self, arn: str) -> dict[str, str]:
        """The tags of the resource the ARN names (MGN's ResourceNotFoundException if none)."""
        for resources in (
            self._state.servers.values(),
            self._state.jobs.values(),
            self._state.waves.values(),
            self._state.applications.values(),
        ):
            for resource in resources:
                if resource.arn == arn:
                    return resource.tags
        raise ResourceNotFoundError(
            f"Resource {arn} not found", resource_id=arn, resource_type="resource"
        )

    def _tag_resource(self, params: JsonObject, now: datetime) -> JsonObject:
        tags = self._tagged(params["resourceArn"])
        tags.update(params["tags"])
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"A resource may have at most {MAX_TAGS} tags")
        return {}

    def _untag_resource(self, params: JsonObject, now: datetime) -> JsonObject:
        tags = self._tagged(params["resourceArn"])
        for key in params["tagKeys"]:
            tags.pop(key, None)
        return {}

    def _list_tags_for_resource(self, params: JsonObject, now: datetime) -> JsonObject:
        return {"tags": dict(self._tagged(params["resourceArn"]))}

    def _server(self, server_id: str) -> SourceServerRecord:
        return self._state.server(server_id)

    def _disconnect_replication(self, server: SourceServerRecord, now: datetime) -> None:
        """End the server's replication now; its replication slot goes to the next server."""
        if server.replication_disconnected_at is None:
            server.replication_disconnected_at = now
        self._state.awaiting_first_sync.discard(server.source_server_id)
        self._state.replication_slots.release(server, now)

    # --- Pagination -----------------------------------------------------------------------

    def _page(
        self,
        items: list[_Item],
        key: Callable[[_Item], int],
        params: JsonObject,
        filters: Any,
        *,
        descending: bool = False,
    ) -> tuple[list[_Item], str | None]:
        """One page of `items` (already in order) after the request's cursor, and the next token."""
        digest = filters_digest(filters)
        token = params.get("nextToken")
        if token:
            after = decode_page_token(token, expected_digest=digest).after
            items = [
                item for item in items if (key(item) < after if descending else key(item) > after)
            ]
        size = params.get("maxResults") or self._settings.default_page_size
        page = items[:size]
        if len(items) <= size:
            return page, None
        return page, encode_page_token(PageCursor(after=key(page[-1]), filters_digest=digest))

    def _paged_items(
        self, items: list[Any], key: Callable[[Any], int], params: JsonObject, filters: Any
    ) -> JsonObject:
        """`{"items": [...], "nextToken": ...}`: one page of already rendered `items`."""
        page, token = self._page(items, key, params, filters)
        return self._with_token({"items": page}, token)

    @staticmethod
    def _with_token(body: JsonObject, token: str | None) -> JsonObject:
        if token is not None:
            body["nextToken"] = token
        return body


# UpdateLaunchConfiguration's members that map one-to-one onto the stored configuration.
_LAUNCH_CONFIGURATION_FIELDS: dict[str, str] = {
    "name": "name",
    "launchDisposition": "launch_disposition",
    "targetInstanceTypeRightSizingMethod": "right_sizing",
    "copyPrivateIp": "copy_private_ip",
    "copyTags": "copy_tags",
    "bootMode": "boot_mode",
    "postLaunchActions": "post_launch_actions",
    "enableMapAutoTagging": "enable_map_auto_tagging",
    "mapAutoTaggingMpeID": "map_auto_tagging_mpe_id",
    "mapAutoTaggingKey": "map_auto_tagging_key",
}
