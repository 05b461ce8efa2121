"""MGN's waves and applications: the grouping a migration team sees in MGN's console.

A source server belongs to at most one application, an application to at most one wave;
names are unique per account and Region (archived ones included: a name comes back by
unarchiving, not by creating again). Archived waves and applications take no associations.
Quotas: 200 active waves, 200 active applications, 200 source servers per application.
Batch calls (`Associate*`, `Disassociate*`) take 1-50 IDs; the model's `max` makes a longer
list a ValidationException before any handler runs (`protocol._check_request`). A batch call
is all or nothing: any refused ID refuses the whole call, each named in `errors[]`.

Handlers run under the emulator lock, as `operations.MgnOperations` dispatches them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestration.local.mgn.errors import (
    APPLICATION_RESOURCE,
    WAVE_RESOURCE,
    ConflictDetail,
    ConflictError,
    InvalidField,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ValidationError,
)
from orchestration.local.mgn.identifiers import ArnFactory, IdFactory
from orchestration.local.mgn.model import ApplicationRecord, MgnState, WaveRecord
from orchestration.local.mgn.rendering import JsonObject
from orchestration.local.mgn.settings import QuotaLimits
from orchestration.local.mgn.wire_format import format_timestamp

ACTIVE_WAVES_QUOTA = "ActiveWaves"
ACTIVE_APPLICATIONS_QUOTA = "ActiveApplications"
SERVERS_PER_APPLICATION_QUOTA = "SourceServersPerApplication"

# `ConflictException.errors[].code` values of the grouping calls.
NAME_IN_USE = "NAME_IN_USE"
ARCHIVED = "RESOURCE_ARCHIVED"
IN_OTHER_WAVE = "APPLICATION_IN_OTHER_WAVE"
NOT_IN_WAVE = "APPLICATION_NOT_IN_WAVE"
IN_OTHER_APPLICATION = "SOURCE_SERVER_IN_OTHER_APPLICATION"
NOT_IN_APPLICATION = "SOURCE_SERVER_NOT_IN_APPLICATION"
NOT_EMPTY = "RESOURCE_NOT_EMPTY"

Pager = Callable[[list[Any], Callable[[Any], int], JsonObject, Any], JsonObject]


class GroupingOperations:
    """The wave and application operations, by wire operation name (`handlers`)."""

    def __init__(
        self,
        *,
        state: MgnState,
        quotas: QuotaLimits,
        ids: IdFactory,
        arns: ArnFactory,
        page: Pager,
    ) -> None:
        self._state = state
        self._quotas = quotas
        self._ids = ids
        self._arns = arns
        self._page = page

    @property
    def handlers(self) -> Mapping[str, Callable[[JsonObject, datetime], JsonObject]]:
        return {
            "CreateWave": self._create_wave,
            "UpdateWave": self._update_wave,
            "ArchiveWave": self._archive_wave,
            "UnarchiveWave": self._unarchive_wave,
            "ListWaves": self._list_waves,
            "CreateApplication": self._create_application,
            "UpdateApplication": self._update_application,
            "ArchiveApplication": self._archive_application,
            "UnarchiveApplication": self._unarchive_application,
            "ListApplications": self._list_applications,
            "AssociateApplications": self._associate_applications,
            "DisassociateApplications": self._disassociate_applications,
            "AssociateSourceServers": self._associate_source_servers,
            "DisassociateSourceServers": self._disassociate_source_servers,
        }

    # --- Waves ----------------------------------------------------------------------------

    def _create_wave(self, params: JsonObject, now: datetime) -> JsonObject:
        name = params["name"]
        self._refuse_taken_name(name, self._state.waves.values(), WAVE_RESOURCE)
        self._check_active_waves(1)
        wave_id = self._ids.wave_id()
        wave = WaveRecord(
            wave_id=wave_id,
            arn=self._arns.wave(wave_id),
            sequence=self._state.take_sequence(),
            name=name,
            description=params.get("description", ""),
            tags=dict(params.get("tags") or {}),
            created_at=now,
            modified_at=now,
        )
        self._state.waves[wave_id] = wave
        return self._render_wave(wave)

    def _update_wave(self, params: JsonObject, now: datetime) -> JsonObject:
        wave = self._active_wave(params["waveID"])
        if "name" in params and params["name"] != wave.name:
            self._refuse_taken_name(params["name"], self._state.waves.values(), WAVE_RESOURCE)
            wave.name = params["name"]
        if "description" in params:
            wave.description = params["description"]
        wave.modified_at = now
        return self._render_wave(wave)

    def _archive_wave(self, params: JsonObject, now: datetime) -> JsonObject:
        wave = self._wave(params["waveID"])
        if wave.is_archived:
            return self._render_wave(wave)
        members = [app.application_id for app in self._active_applications_of(wave.wave_id)]
        if members:
            message = (
                f"Wave {wave.wave_id} still has {len(members)} active applications "
                f"({', '.join(members)}); disassociate or archive them first"
            )
            raise ConflictError(
                message,
                resource_id=wave.wave_id,
                resource_type=WAVE_RESOURCE,
                errors=(ConflictDetail(message, NOT_EMPTY, wave.wave_id, WAVE_RESOURCE),),
            )
        wave.is_archived, wave.modified_at = True, now
        return self._render_wave(wave)

    def _unarchive_wave(self, params: JsonObject, now: datetime) -> JsonObject:
        wave = self._wave(params["waveID"])
        if wave.is_archived:
            self._check_active_waves(1)
            wave.is_archived, wave.modified_at = False, now
        return self._render_wave(wave)

    def _list_waves(self, params: JsonObject, now: datetime) -> JsonObject:
        filters: JsonObject = params.get("filters") or {}
        wanted = set(filters.get("waveIDs") or ())
        archived = filters.get("isArchived")
        selected = [
            wave
            for wave in self._state.waves.values()
            if (not wanted or wave.wave_id in wanted)
            and (archived is None or wave.is_archived == archived)
        ]
        return self._page(
            [self._render_wave(wave) for wave in selected],
            lambda item: self._state.waves[item["waveID"]].sequence,
            params,
            filters,
        )

    # --- Applications ---------------------------------------------------------------------

    def _create_application(self, params: JsonObject, now: datetime) -> JsonObject:
        name = params["name"]
        self._refuse_taken_name(name, self._state.applications.values(), APPLICATION_RESOURCE)
        self._check_active_applications(1)
        application_id = self._ids.application_id()
        application = ApplicationRecord(
            application_id=application_id,
            arn=self._arns.application(application_id),
            sequence=self._state.take_sequence(),
            name=name,
            description=params.get("description", ""),
            tags=dict(params.get("tags") or {}),
            created_at=now,
            modified_at=now,
        )
        self._state.applications[application_id] = application
        return self._render_application(application)

    def _update_application(self, params: JsonObject, now: datetime) -> JsonObject:
        application = self._active_application(params["applicationID"])
        if "name" in params and params["name"] != application.name:
            self._refuse_taken_name(
                params["name"], self._state.applications.values(), APPLICATION_RESOURCE
            )
            application.name = params["name"]
        if "description" in params:
            application.description = params["description"]
        application.modified_at = now
        return self._render_application(application)

    def _archive_application(self, params: JsonObject, now: datetime) -> JsonObject:
        application = self._application(params["applicationID"])
        if application.is_archived:
            return self._render_application(application)
        members = self._servers_of(application.application_id)
        if members:
            message = (
                f"Application {application.application_id} still has {len(members)} source "
                f"servers ({', '.join(members)}); disassociate them first"
            )
            raise ConflictError(
                message,
                resource_id=application.application_id,
                resource_type=APPLICATION_RESOURCE,
                errors=(
                    ConflictDetail(
                        message, NOT_EMPTY, application.application_id, APPLICATION_RESOURCE
                    ),
                ),
            )
        application.is_archived, application.modified_at = True, now
        return self._render_application(application)

    def _unarchive_application(self, params: JsonObject, now: datetime) -> JsonObject:
        application = self._application(params["applicationID"])
        if application.is_archived:
            self._check_active_applications(1)
            application.is_archived, application.modified_at = False, now
        return self._render_application(application)

    def _list_applications(self, params: JsonObject, now: datetime) -> JsonObject:
        filters: JsonObject = params.get("filters") or {}
        wanted = set(filters.get("applicationIDs") or ())
        wanted_waves = set(filters.get("waveIDs") or ())
        archived = filters.get("isArchived")
        selected = [
            app
            for app in self._state.applications.values()
            if (not wanted or app.application_id in wanted)
            and (not wanted_waves or app.wave_id in wanted_waves)
            and (archived is None or app.is_archived == archived)
        ]
        return self._page(
            [self._render_application(app) for app in selected],
            lambda item: self._state.applications[item["applicationID"]].sequence,
            params,
            filters,
        )

    # --- Associations ---------------------------------------------------------------------

    def _associate_applications(self, params: JsonObject, now: datetime) -> JsonObject:
        wave = self._active_wave(params["waveID"])
        applications = self._applications_named(params["applicationIDs"])
        refusals = []
        for app in applications:
            if app.is_archived:
                refusals.append(self._refusal(app, f"{app.application_id} is archived", ARCHIVED))
            elif app.wave_id not in (None, wave.wave_id):
                refusals.append(
                    self._refusal(
                        app,
                        f"{app.application_id} belongs to wave {app.wave_id}; an application is "
                        "in at most one wave (disassociate it first)",
                        IN_OTHER_WAVE,
                    )
                )
        self._refuse_all("Cannot associate applications", refusals)
        for app in applications:
            app.wave_id, app.modified_at = wave.wave_id, now
        wave.modified_at = now
        return {}

    def _disassociate_applications(self, params: JsonObject, now: datetime) -> JsonObject:
        wave = self._wave(params["waveID"])
        applications = self._applications_named(params["applicationIDs"])
        refusals = [
            self._refusal(app, f"{app.application_id} is not in wave {wave.wave_id}", NOT_IN_WAVE)
            for app in applications
            if app.wave_id != wave.wave_id
        ]
        self._refuse_all("Cannot disassociate applications", refusals)
        for app in applications:
            app.wave_id, app.modified_at = None, now
        wave.modified_at = now
        return {}

    def _associate_source_servers(self, params: JsonObject, now: datetime) -> JsonObject:
        application = self._active_application(params["applicationID"])
        server_ids = self._unique(params["sourceServerIDs"], "sourceServerIDs")
        servers = [self._state.server(server_id) for server_id in server_ids]
        refusals = []
        for server in servers:
            server_id = server.source_server_id
            if server.is_archived:
                refusals.append(ConflictDetail(f"{server_id} is archived", ARCHIVED, server_id))
            elif server.application_id not in (None, application.application_id):
                refusals.append(
                    ConflictDetail(
                        f"{server_id} belongs to application {server.application_id}; a source "
                        "server is in at most one application (disassociate it first)",
                        IN_OTHER_APPLICATION,
                        server_id,
                    )
                )
        self._refuse_all("Cannot associate source servers", refusals)
        joining = [s for s in servers if s.application_id != application.application_id]
        members = len(self._servers_of(application.application_id))
        limit = self._quotas.servers_per_application
        if members + len(joining) > limit:
            raise ServiceQuotaExceededError(
                f"Application {application.application_id} has {members} source servers; "
                f"adding {len(joining)} would exceed the limit of {limit}",
                quota_code=SERVERS_PER_APPLICATION_QUOTA,
                quota_value=limit,
                resource_type=APPLICATION_RESOURCE,
            )
        for server in joining:
            server.application_id = application.application_id
        application.modified_at = now
        return {}

    def _disassociate_source_servers(self, params: JsonObject, now: datetime) -> JsonObject:
        application = self._application(params["applicationID"])
        server_ids = self._unique(params["sourceServerIDs"], "sourceServerIDs")
        servers = [self._state.server(server_id) for server_id in server_ids]
        refusals = [
            ConflictDetail(
                f"{server.source_server_id} is not in application {application.application_id}",
                NOT_IN_APPLICATION,
                server.source_server_id,
            )
            for server in servers
            if server.application_id != application.application_id
        ]
        self._refuse_all("Cannot disassociate source servers", refusals)
        for server in servers:
            server.application_id = None
        application.modified_at = now
        return {}

    # --- Rules ----------------------------------------------------------------------------

    def _wave(self, wave_id: str) -> WaveRecord:
        wave = self._state.waves.get(wave_id)
        if wave is None:
            raise ResourceNotFoundError(
                f"Wave {wave_id} not found", resource_id=wave_id, resource_type=WAVE_RESOURCE
            )
        return wave

    def _active_wave(self, wave_id: str) -> WaveRecord:
        wave = self._wave(wave_id)
        if wave.is_archived:
            message = f"Wave {wave_id} is archived; unarchive it first"
            raise ConflictError(
                message,
                resource_id=wave_id,
                resource_type=WAVE_RESOURCE,
                errors=(ConflictDetail(message, ARCHIVED, wave_id, WAVE_RESOURCE),),
            )
        return wave

    def _application(self, application_id: str) -> ApplicationRecord:
        application = self._state.applications.get(application_id)
        if application is None:
            raise ResourceNotFoundError(
                f"Application {application_id} not found",
                resource_id=application_id,
                resource_type=APPLICATION_RESOURCE,
            )
        return application

    def _active_application(self, application_id: str) -> ApplicationRecord:
        application = self._application(application_id)
        if application.is_archived:
            message = f"Application {application_id} is archived; unarchive it first"
            raise ConflictError(
                message,
                resource_id=application_id,
                resource_type=APPLICATION_RESOURCE,
                errors=(ConflictDetail(message, ARCHIVED, application_id, APPLICATION_RESOURCE),),
            )
        return application

    def _applications_named(self, application_ids: Sequence[str]) -> list[ApplicationRecord]:
        return [
            self._application(app_id) for app_id in self._unique(application_ids, "applicationIDs")
        ]

    @staticmethod
    def _unique(ids: Sequence[str], field_name: str) -> Sequence[str]:
        if len(set(ids)) != len(ids):
            raise ValidationError(
                f"{field_name} contains duplicates",
                fields=(InvalidField(field_name, "each ID at most once"),),
            )
        return ids

    @staticmethod
    def _refusal(app: ApplicationRecord, message: str, code: str) -> ConflictDetail:
        return ConflictDetail(message, code, app.application_id, APPLICATION_RESOURCE)

    @staticmethod
    def _refuse_all(what: str, refusals: Sequence[ConflictDetail]) -> None:
        if refusals:
            raise ConflictError(
                f"{what}: " + "; ".join(refusal.message for refusal in refusals),
                errors=tuple(refusals),
            )

    @staticmethod
    def _refuse_taken_name(name: str, records: Any, resource_type: str) -> None:
        taken = next((record for record in records if record.name == name), None)
        if taken is not None:
            record_id = taken.wave_id if resource_type == WAVE_RESOURCE else taken.application_id
            state = " (archived: unarchive it instead)" if taken.is_archived else ""
            message = f"{resource_type.title()} name {name!r} is in use by {record_id}{state}"
            raise ConflictError(
                message,
                resource_id=record_id,
                resource_type=resource_type,
                errors=(ConflictDetail(message, NAME_IN_USE, record_id, resource_type),),
            )

    def _check_active_waves(self, adding: int) -> None:
        active = sum(not wave.is_archived for wave in self._state.waves.values())
        if active + adding > self._quotas.active_waves:
            raise ServiceQuotaExceededError(
                f"{active} waves are active; at most {self._quotas.active_waves} are allowed "
                "(archive finished waves)",
                quota_code=ACTIVE_WAVES_QUOTA,
                quota_value=self._quotas.active_waves,
                resource_type=WAVE_RESOURCE,
            )

    def _check_active_applications(self, adding: int) -> None:
        active = sum(not app.is_archived for app in self._state.applications.values())
        if active + adding > self._quotas.active_applications:
            raise ServiceQuotaExceededError(
                f"{active} applications are active; at most "
                f"{self._quotas.active_applications} are allowed (archive finished ones)",
                quota_code=ACTIVE_APPLICATIONS_QUOTA,
                quota_value=self._quotas.active_applications,
                resource_type=APPLICATION_RESOURCE,
            )

    def _active_applications_of(self, wave_id: str) -> list[ApplicationRecord]:
        return [
            app
            for app in self._state.applications.values()
            if app.wave_id == wave_id and not app.is_archived
        ]

    def _servers_of(self, application_id: str) -> list[str]:
        return [
            server.source_server_id
            for server in self._state.servers.values()
            if server.application_id == application_id
        ]

    # --- Rendering ------------------------------------------------------------------------

    def _render_wave(self, wave: WaveRecord) -> JsonObject:
        return {
            "waveID": wave.wave_id,
            "arn": wave.arn,
            "name": wave.name,
            "description": wave.description,
            "isArchived": wave.is_archived,
            "tags": dict(wave.tags),
            "creationDateTime": format_timestamp(wave.created_at),
            "lastModifiedDateTime": format_timestamp(wave.modified_at),
            "waveAggregatedStatus": {
                "lastUpdateDateTime": format_timestamp(wave.modified_at),
                "totalApplications": len(self._active_applications_of(wave.wave_id)),
            },
        }

    def _render_application(self, application: ApplicationRecord) -> JsonObject:
        rendered: JsonObject = {
            "applicationID": application.application_id,
            "arn": application.arn,
            "name": application.name,
            "description": application.description,
            "isArchived": application.is_archived,
            "tags": dict(application.tags),
            "creationDateTime": format_timestamp(application.created_at),
            "lastModifiedDateTime": format_timestamp(application.modified_at),
            "applicationAggregatedStatus": {
                "lastUpdateDateTime": format_timestamp(application.modified_at),
                "totalSourceServers": len(self._servers_of(application.application_id)),
            },
        }
        if application.wave_id is not None:
            rendered["waveID"] = application.wave_id
        return rendered
