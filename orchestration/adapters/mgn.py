"""AWS MGN through the plain boto3 ``mgn`` client: paginated reads, typed errors.

MGN has no waiters: the pipeline polls ``describe_source_servers`` and ``describe_jobs``.
boto3's standard retry mode already retries ``ThrottlingException`` with jittered backoff;
what is left (quota pressure, conflicts) surfaces as the typed errors below, whose class
names the state machine's ``Retry`` and ``Catch`` match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from botocore.exceptions import ClientError

from orchestration.post_launch_actions import (
    ACTIONS_TAG,
    ActionExecution,
    PostLaunchActionSpec,
    PostLaunchStatus,
    SourceServerAction,
)

if TYPE_CHECKING:
    from mypy_boto3_mgn.client import MgnClient
    from mypy_boto3_mgn.type_defs import (
        DescribeJobsRequestFiltersTypeDef,
        DescribeSourceServersRequestFiltersTypeDef,
    )

P = ParamSpec("P")
R = TypeVar("R")

# describe_source_servers accepts up to 200 IDs in its filter, describe_jobs up to 1,000.
MAX_IDS_PER_FILTER = 200
# describe_source_servers' largest page (maxResults).
SOURCE_SERVERS_PER_PAGE = 1000
MAX_JOB_IDS_PER_FILTER = 1000


def iso8601(moment: datetime) -> str:
    """MGN's ISO8601DatetimeString (``2026-12-12T22:00:00.000Z``: UTC, a ``Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class MgnError(Exception):
    """Any MGN failure; the subclasses say which."""


class MgnThrottledError(MgnError):
    """Throttled even after boto3's retries: retry later with backoff."""


class MgnQuotaExceededError(MgnError):
    """A quota (20 concurrent jobs, 200 servers in active jobs) is full: retry later."""


class MgnConflictError(MgnError):
    """The server's state forbids the call (wrong lifecycle state, a job already running).

    ``refused`` names each refused source server and MGN's reason code (``errors[]`` of the
    ConflictException: a batch call lists every server it refused, e.g. ``JOB_IN_PROGRESS``).
    """

    def __init__(self, message: str, refused: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.refused: Mapping[str, str] = dict(refused or {})


class SourceServerNotFoundError(MgnError):
    """No such source server, or it cannot be resolved from the manifest's hints."""


class MgnRequestError(MgnError):
    """MGN refused the request as invalid: a bug or a bad manifest value."""


class MgnNotInitializedError(MgnError):
    """MGN has not been initialised in this account and Region."""


class GroupingNotFoundError(MgnError):
    """No such MGN wave or application (archived and gone, or never created)."""


_ERRORS: dict[str, type[MgnError]] = {
    "ThrottlingException": MgnThrottledError,
    "ServiceQuotaExceededException": MgnQuotaExceededError,
    "ConflictException": MgnConflictError,
    "ResourceNotFoundException": SourceServerNotFoundError,
    "ValidationException": MgnRequestError,
    "UninitializedAccountException": MgnNotInitializedError,
}


_GROUPING_RESOURCES = frozenset({"WAVE", "APPLICATION"})

# MGN's batch association calls take at most 50 IDs each.
MAX_IDS_PER_ASSOCIATION = 50
# The tag on the waves and applications Wavepilot creates (and so may archive).
MANAGED_TAG = "wavepilot:managed"


def _translated(func: Callable[P, R]) -> Callable[P, R]:
    """Turn botocore ClientErrors into the typed errors above (one place, never by message)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", str(exc))
            if code == "ConflictException":
                raise MgnConflictError(f"{code}: {message}", _refused(exc.response)) from exc
            resource_type = cast(Mapping[str, Any], exc.response).get("resourceType")
            if code == "ResourceNotFoundException" and resource_type in _GROUPING_RESOURCES:
                raise GroupingNotFoundError(f"{code}: {message}") from exc
            error_class = _ERRORS.get(code, MgnError)
            raise error_class(f"{code}: {message}") from exc

    return wrapper


def _refused(response: Any) -> dict[str, str]:
    """Source server ID -> reason code, from a ConflictException's ``errors[]`` (or, for a
    single-resource conflict, its ``resourceId`` / ``code``)."""
    details = response.get("errors") or []
    if not details and response.get("resourceId"):
        details = [response]
    return {
        str(detail["resourceId"]): str(detail.get("code", ""))
        for detail in details
        if detail.get("resourceId")
    }


@dataclass(frozen=True, slots=True)
class SourceServer:
    """What the pipeline needs to know about one MGN source server."""

    source_server_id: str
    is_archived: bool
    lifecycle_state: str
    replication_state: str
    lag_duration: str | None
    hostname: str | None
    fqdn: str | None
    user_provided_id: str | None
    launched_instance_id: str | None
    replicated_bytes: int
    total_bytes: int
    replication_error: str | None
    # The jobs MGN remembers for the server: its last test, last cutover, launched instance.
    recent_job_ids: tuple[str, ...] = ()
    # The source's NICs as the agent reports them (``sourceProperties.networkInterfaces``):
    # each one's first private IP, the primary first ("" for a NIC that reported none).
    private_ips: tuple[str, ...] = ()
    # When MGN expects the initial sync to end (``etaDateTime``), while it has not.
    replication_eta: str | None = None
    # The MGN application the server is in (MGN's console grouping), if any.
    application_id: str | None = None
    arn: str = ""
    # Tagged ``ACTIONS_TAG``: it may hold Wavepilot's post-launch actions (else it holds none).
    actions_tagged: bool = False

    @classmethod
    def from_api(cls, item: Any) -> SourceServer:
        replication = item.get("dataReplicationInfo", {})
        disks = replication.get("replicatedDisks", [])
        hints = item.get("sourceProperties", {}).get("identificationHints", {})
        error = replication.get("dataReplicationError")
        lifecycle = item.get("lifeCycle", {})
        recent = (
            lifecycle.get("lastTest", {}).get("initiated", {}).get("jobID"),
            lifecycle.get("lastCutover", {}).get("initiated", {}).get("jobID"),
            item.get("launchedInstance", {}).get("jobID"),
        )
        return cls(
            source_server_id=item["sourceServerID"],
            is_archived=bool(item.get("isArchived", False)),
            lifecycle_state=item.get("lifeCycle", {}).get("state", "UNKNOWN"),
            replication_state=replication.get("dataReplicationState", "UNKNOWN"),
            lag_duration=replication.get("lagDuration"),
            hostname=hints.get("hostname"),
            fqdn=hints.get("fqdn"),
            user_provided_id=item.get("userProvidedID"),
            launched_instance_id=item.get("launchedInstance", {}).get("ec2InstanceID"),
            replicated_bytes=sum(d.get("replicatedStorageBytes", 0) for d in disks),
            total_bytes=sum(d.get("totalStorageBytes", 0) for d in disks),
            replication_error=(
                f"{error.get('error', '')}: {error.get('rawError', '')}".strip(": ")
                if error
                else None
            ),
            recent_job_ids=tuple(dict.fromkeys(job for job in recent if job)),
            private_ips=tuple(
                next(iter(nic.get("ips") or []), "")
                for nic in sorted(
                    item.get("sourceProperties", {}).get("networkInterfaces", []),
                    key=lambda nic: not nic.get("isPrimary", False),
                )
            ),
            replication_eta=replication.get("etaDateTime"),
            application_id=item.get("applicationID"),
            arn=item.get("arn", ""),
            actions_tagged=ACTIONS_TAG in (item.get("tags") or {}),
        )


@dataclass(frozen=True, slots=True)
class MgnWave:
    wave_id: str
    name: str
    is_archived: bool = False
    managed: bool = False


@dataclass(frozen=True, slots=True)
class MgnApplication:
    application_id: str
    name: str
    wave_id: str | None = None
    is_archived: bool = False
    managed: bool = False


@dataclass(frozen=True, slots=True)
class Grouping:
    """MGN's waves and applications in one account and Region, archived ones included."""

    waves: tuple[MgnWave, ...] = ()
    applications: tuple[MgnApplication, ...] = ()

    def wave_named(self, name: str) -> MgnWave | None:
        return next((wave for wave in self.waves if wave.name == name), None)

    def wave(self, wave_id: str | None) -> MgnWave | None:
        return next((wave for wave in self.waves if wave.wave_id == wave_id), None)

    def application_named(self, name: str) -> MgnApplication | None:
        return next((app for app in self.applications if app.name == name), None)

    def application(self, application_id: str | None) -> MgnApplication | None:
        return next(
            (app for app in self.applications if app.application_id == application_id), None
        )


@dataclass(frozen=True, slots=True)
class LaunchConfiguration:
    """MGN's launch settings of one server that decide what EC2 launches."""

    launch_template_id: str
    right_sizing: str
    copy_private_ip: bool


def ebs_key(item: Any) -> str:
    """A replication configuration's (or template's) EBS key: its ARN, or ``DEFAULT``."""
    if item.get("ebsEncryption") == "CUSTOM" and item.get("ebsEncryptionKeyArn"):
        return str(item["ebsEncryptionKeyArn"])
    return "DEFAULT"


@dataclass(frozen=True, slots=True)
class JobServer:
    source_server_id: str
    launch_status: str
    launched_instance_id: str | None
    # The post-launch actions run on the launched instance so far (None: MGN reports none).
    post_launch: PostLaunchStatus | None = None


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    type: str
    initiated_by: str
    status: str
    servers: tuple[JobServer, ...]
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_api(cls, item: Any) -> Job:
        return cls(
            job_id=item["jobID"],
            type=item.get("type", ""),
            initiated_by=item.get("initiatedBy", ""),
            status=item.get("status", ""),
            tags=dict(item.get("tags") or {}),
            servers=tuple(
                JobServer(
                    source_server_id=server["sourceServerID"],
                    launch_status=server.get("launchStatus", "PENDING"),
                    launched_instance_id=server.get("launchedEc2InstanceID"),
                    post_launch=_post_launch_status(server.get("postLaunchActionsStatus")),
                )
                for server in item.get("participatingServers", [])
            ),
        )

    def server(self, source_server_id: str) -> JobServer | None:
        return next((s for s in self.servers if s.source_server_id == source_server_id), None)


def _post_launch_status(item: Any) -> PostLaunchStatus | None:
    """A participating server's ``postLaunchActionsStatus``, or None if it has none."""
    if not item:
        return None
    return PostLaunchStatus(
        ssm_agent_discovered=bool(item.get("ssmAgentDiscoveryDatetime")),
        executions=tuple(
            ActionExecution(
                action_name=str(entry.get("ssmDocument", {}).get("actionName", "")),
                ssm_document=str(entry.get("ssmDocument", {}).get("ssmDocumentName", "")),
                status=entry.get("executionStatus", "IN_PROGRESS"),
                must_succeed_for_cutover=bool(
                    entry.get("ssmDocument", {}).get("mustSucceedForCutover", False)
                ),
                failure_reason=str(entry.get("failureReason", "")),
                execution_id=str(entry.get("executionID", "")),
            )
            for entry in item.get("postLaunchActionsLaunchStatusList", [])
        ),
    )


def _server_action(item: Any) -> SourceServerAction:
    return SourceServerAction(
        action_id=item["actionID"],
        action_name=item.get("actionName", ""),
        document_identifier=item.get("documentIdentifier", ""),
        order=int(item.get("order", 0)),
        must_succeed_for_cutover=bool(item.get("mustSucceedForCutover", False)),
        timeout_seconds=item.get("timeoutSeconds"),
        parameters={
            name: [str(p.get("parameterName", "")) for p in values]
            for name, values in (item.get("parameters") or {}).items()
        },
        active=bool(item.get("active", True)),
    )


class MgnAdapter:
    def __init__(self, client: MgnClient) -> None:
        self._client = client
        # Whether reading the lane's servers page by page found the wanted ones within the
        # pages 200-ID filters would have cost (``_listed``); once it did not (a lane far
        # larger than what is wanted of it), the filters are used.
        self._listing_pays = True

    def initialized(self) -> bool:
        """Whether MGN was initialized in this account and Region (one small read: MGN
        answers every call but InitializeService with UninitializedAccountException until
        then)."""
        try:
            self._call_initialized()
        except MgnNotInitializedError:
            return False
        return True

    @_translated
    def _call_initialized(self) -> None:
        self._client.describe_source_servers(filters={"isArchived": False}, maxResults=1)

    @_translated
    def source_servers(
        self, ids: Sequence[str] | None = None, *, include_archived: bool = False
    ) -> list[SourceServer]:
        """Every matching source server, across pages; the ``ids`` asked for in 200-ID
        filter chunks, or, when they need more than one, by reading the lane's servers page by
        page (1,000 a page) until all are found (``_listed``)."""
        if ids is not None and not ids:
            return []
        filters: DescribeSourceServersRequestFiltersTypeDef = (
            {} if include_archived else {"isArchived": False}
        )
        if ids is None:
            return [SourceServer.from_api(item) for item in self._pages(filters)]
        wanted = list(dict.fromkeys(ids))
        servers: list[SourceServer] = []
        if len(wanted) > MAX_IDS_PER_FILTER and self._listing_pays:
            servers, wanted = self._listed(filters, wanted)
        for start in range(0, len(wanted), MAX_IDS_PER_FILTER):
            chunk: DescribeSourceServersRequestFiltersTypeDef = {
                **filters,
                "sourceServerIDs": wanted[start : start + MAX_IDS_PER_FILTER],
            }
            servers.extend(SourceServer.from_api(item) for item in self._pages(chunk))
        return servers

    def _listed(
        self, filters: DescribeSourceServersRequestFiltersTypeDef, wanted: list[str]
    ) -> tuple[list[SourceServer], list[str]]:
        """The wanted servers read from the lane's pages, at most as many pages as their
        200-ID filters would cost (a coordinator watching a wave's replication wants most of
        its lane: 1,000 servers in one call, not five), and those still to read with filters
        (none if every page was read: the others do not exist)."""
        left = set(wanted)
        found: list[SourceServer] = []
        budget = -(-len(wanted) // MAX_IDS_PER_FILTER)
        paginator = self._client.get_paginator("describe_source_servers")
        pages = paginator.paginate(
            filters=filters, PaginationConfig={"PageSize": SOURCE_SERVERS_PER_PAGE}
        )
        for read, page in enumerate(pages, start=1):
            for item in page.get("items", []):
                if item["sourceServerID"] in left:
                    left.discard(item["sourceServerID"])
                    found.append(SourceServer.from_api(item))
            if not left:
                return found, []
            if read >= budget and page.get("nextToken"):
                self._listing_pays = False
                return found, [server_id for server_id in wanted if server_id in left]
        return found, []

    def _pages(self, filters: DescribeSourceServersRequestFiltersTypeDef) -> Iterator[Any]:
        paginator = self._client.get_paginator("describe_source_servers")
        for page in paginator.paginate(
            filters=filters, PaginationConfig={"PageSize": SOURCE_SERVERS_PER_PAGE}
        ):
            yield from page.get("items", [])

    def source_server(self, source_server_id: str) -> SourceServer:
        found = self.source_servers([source_server_id], include_archived=True)
        if not found:
            raise SourceServerNotFoundError(f"source server {source_server_id} does not exist")
        return found[0]

    @_translated
    def start_test(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job:
        return Job.from_api(
            self._client.start_test(sourceServerIDs=list(source_server_ids), tags=tags)["job"]
        )

    @_translated
    def start_cutover(self, source_server_ids: Sequence[str], tags: dict[str, str]) -> Job:
        return Job.from_api(
            self._client.start_cutover(sourceServerIDs=list(source_server_ids), tags=tags)["job"]
        )

    @_translated
    def terminate_target_instances(
        self, source_server_ids: Sequence[str], tags: dict[str, str] | None = None
    ) -> Job:
        """A TERMINATE job for up to 200 servers' launched instances (tagged as a rollback's
        unless ``tags`` say otherwise)."""
        response = self._client.terminate_target_instances(
            sourceServerIDs=list(source_server_ids),
            tags=tags if tags is not None else {"wavepilot": "rollback"},
        )
        return Job.from_api(response["job"])

    @_translated
    def job(self, job_id: str) -> Job:
        items = self._client.describe_jobs(filters={"jobIDs": [job_id]}).get("items", [])
        if not items:
            raise MgnError(f"job {job_id} does not exist")
        return Job.from_api(items[0])

    @_translated
    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The named jobs: one call per 1,000 IDs (MGN's filter limit), across pages."""
        unique = list(dict.fromkeys(job_ids))
        jobs: list[Job] = []
        for start in range(0, len(unique), MAX_JOB_IDS_PER_FILTER):
            chunk = unique[start : start + MAX_JOB_IDS_PER_FILTER]
            jobs.extend(self._job_pages({"jobIDs": chunk}))
        return jobs

    @_translated
    def jobs_since(self, from_date: datetime) -> list[Job]:
        """Every job created at or after ``from_date`` (newest first, across pages): how a
        restarted caller finds a job it started but could not record."""
        return list(self._job_pages({"fromDate": iso8601(from_date)}))

    def _job_pages(self, filters: DescribeJobsRequestFiltersTypeDef) -> Iterator[Job]:
        paginator = self._client.get_paginator("describe_jobs")
        for page in paginator.paginate(filters=filters, PaginationConfig={"PageSize": 1000}):
            yield from (Job.from_api(item) for item in page.get("items", []))

    def active_job_for(self, server: SourceServer, known_job_ids: Sequence[str] = ()) -> Job | None:
        """The server's job still PENDING or STARTED, if any (MGN allows one per server).

        Looks only at the jobs MGN remembers for the server and those the caller started
        (a TERMINATE job is not in the server's record): one call, however many jobs the
        account has run. Scanning every job would make each check O(jobs in the account).
        """
        for job in self.jobs([*server.recent_job_ids, *known_job_ids]):
            if job.status != "COMPLETED" and job.server(server.source_server_id):
                return job
        return None

    @_translated
    def change_life_cycle_state(self, source_server_id: str, state: str) -> SourceServer:
        response = self._client.change_server_life_cycle_state(
            sourceServerID=source_server_id,
            lifeCycle={"state": state},  # type: ignore[typeddict-item]
        )
        return SourceServer.from_api(response)

    @_translated
    def finalize_cutover(self, source_server_id: str) -> SourceServer:
        return SourceServer.from_api(self._client.finalize_cutover(sourceServerID=source_server_id))

    @_translated
    def launch_configuration(self, source_server_id: str) -> LaunchConfiguration:
        response = self._client.get_launch_configuration(sourceServerID=source_server_id)
        return LaunchConfiguration(
            launch_template_id=response["ec2LaunchTemplateID"],
            right_sizing=response.get("targetInstanceTypeRightSizingMethod", "NONE"),
            copy_private_ip=bool(response.get("copyPrivateIp", False)),
        )

    @_translated
    def replication_key(self, source_server_id: str) -> str:
        """The EBS key the server replicates with (``ebs_key``)."""
        return ebs_key(self._client.get_replication_configuration(sourceServerID=source_server_id))

    @_translated
    def template_replication_keys(self) -> set[str]:
        """The EBS keys of the Region's replication templates (what new servers get)."""
        paginator = self._client.get_paginator("describe_replication_configuration_templates")
        return {
            ebs_key(item)
            for page in paginator.paginate(PaginationConfig={"PageSize": 1000})
            for item in page.get("items", [])
        }

    @_translated
    def source_server_actions(self, source_server_id: str) -> list[SourceServerAction]:
        """The server's post-launch actions (Wavepilot's and any set by hand), across pages."""
        paginator = self._client.get_paginator("list_source_server_actions")
        return [
            _server_action(item)
            for page in paginator.paginate(sourceServerID=source_server_id)
            for item in page.get("items", [])
        ]

    @_translated
    def put_source_server_action(self, source_server_id: str, action: PostLaunchActionSpec) -> None:
        """Create or replace one of Wavepilot's actions (its ID is ``wavepilot-<name>``)."""
        self._client.put_source_server_action(
            sourceServerID=source_server_id,
            actionID=action.action_id,
            actionName=action.name,
            documentIdentifier=action.ssm_document,
            order=action.order,
            active=True,
            mustSucceedForCutover=action.must_succeed_for_cutover,
            timeoutSeconds=action.timeout_seconds,
            parameters={
                name: [{"parameterType": "STRING", "parameterName": value} for value in values]
                for name, values in action.parameters.items()
            },
        )

    @_translated
    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._client.tag_resource(resourceArn=arn, tags=tags)

    @_translated
    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        self._client.untag_resource(resourceArn=arn, tagKeys=list(keys))

    @_translated
    def remove_source_server_action(self, source_server_id: str, action_id: str) -> None:
        self._client.remove_source_server_action(
            sourceServerID=source_server_id, actionID=action_id
        )

    @_translated
    def update_launch_configuration(
        self, source_server_id: str, *, boot_mode: str, os_byol: bool
    ) -> str:
        """MGN-side settings: no right-sizing (the launch template's type wins), copy tags.
        Returns the server's EC2 launch template ID, from MGN's answer (the launch
        configuration as updated): no ``GetLaunchConfiguration`` for it."""
        response = self._client.update_launch_configuration(
            sourceServerID=source_server_id,
            targetInstanceTypeRightSizingMethod="NONE",
            copyTags=True,
            copyPrivateIp=False,
            launchDisposition="STARTED",
            bootMode=boot_mode,  # type: ignore[arg-type]
            licensing={"osByol": os_byol},
        )
        return response["ec2LaunchTemplateID"]

    # --- Waves and applications (MGN's console grouping) ----------------------------------

    @_translated
    def grouping(self) -> Grouping:
        """Every wave and application of the account and Region, archived ones included
        (names stay taken when archived): one ListWaves and one ListApplications, paged."""
        waves = tuple(
            MgnWave(
                wave_id=item["waveID"],
                name=item["name"],
                is_archived=bool(item.get("isArchived")),
                managed=MANAGED_TAG in (item.get("tags") or {}),
            )
            for page in self._client.get_paginator("list_waves").paginate(
                PaginationConfig={"PageSize": 1000}
            )
            for item in page.get("items", [])
        )
        applications = tuple(
            MgnApplication(
                application_id=item["applicationID"],
                name=item["name"],
                wave_id=item.get("waveID"),
                is_archived=bool(item.get("isArchived")),
                managed=MANAGED_TAG in (item.get("tags") or {}),
            )
            for page in self._client.get_paginator("list_applications").paginate(
                PaginationConfig={"PageSize": 1000}
            )
            for item in page.get("items", [])
        )
        return Grouping(waves=waves, applications=applications)

    @_translated
    def create_wave(self, name: str, *, description: str, tags: Mapping[str, str]) -> str:
        return self._client.create_wave(name=name, description=description, tags=dict(tags))[
            "waveID"
        ]

    @_translated
    def unarchive_wave(self, wave_id: str) -> None:
        self._client.unarchive_wave(waveID=wave_id)

    @_translated
    def archive_wave(self, wave_id: str) -> None:
        self._client.archive_wave(waveID=wave_id)

    @_translated
    def create_application(self, name: str, *, description: str, tags: Mapping[str, str]) -> str:
        return self._client.create_application(name=name, description=description, tags=dict(tags))[
            "applicationID"
        ]

    @_translated
    def unarchive_application(self, application_id: str) -> None:
        self._client.unarchive_application(applicationID=application_id)

    @_translated
    def archive_application(self, application_id: str) -> None:
        self._client.archive_application(applicationID=application_id)

    @_translated
    def associate_applications(self, wave_id: str, application_ids: Sequence[str]) -> None:
        for chunk in _chunks(application_ids, MAX_IDS_PER_ASSOCIATION):
            self._client.associate_applications(waveID=wave_id, applicationIDs=chunk)

    @_translated
    def disassociate_applications(self, wave_id: str, application_ids: Sequence[str]) -> None:
        for chunk in _chunks(application_ids, MAX_IDS_PER_ASSOCIATION):
            self._client.disassociate_applications(waveID=wave_id, applicationIDs=chunk)

    @_translated
    def associate_source_servers(self, application_id: str, server_ids: Sequence[str]) -> None:
        for chunk in _chunks(server_ids, MAX_IDS_PER_ASSOCIATION):
            self._client.associate_source_servers(
                applicationID=application_id, sourceServerIDs=chunk
            )

    @_translated
    def disassociate_source_servers(self, application_id: str, server_ids: Sequence[str]) -> None:
        for chunk in _chunks(server_ids, MAX_IDS_PER_ASSOCIATION):
            self._client.disassociate_source_servers(
                applicationID=application_id, sourceServerIDs=chunk
            )

    @_translated
    def servers_in_application(self, application_id: str) -> list[str]:
        """The IDs of the source servers in the application (archived ones included)."""
        return [
            item["sourceServerID"] for item in self._pages({"applicationIDs": [application_id]})
        ]


def _chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    """``ids`` in lists of at most ``size`` (MGN's per-call limit), in order."""
    unique = list(dict.fromkeys(ids))
    return [unique[start : start + size] for start in range(0, len(unique), size)]
