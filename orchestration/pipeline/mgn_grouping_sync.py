"""Put one source server in MGN's wave and application as the manifests say (prepare_source).

Runs ``mgn_grouping.plan_placement`` against MGN's listed waves and applications, makes the
planned calls, then archives what the move left empty (``plan_cleanup``). Each VM's
execution does this for itself, so many run at once for one wave: two may both create the
wave, and one gets MGN's ConflictException (the name is taken). Any conflict (or a wave or
application gone meanwhile) is answered by listing again and re-planning, at most
``ATTEMPTS`` times; every planned call is harmless to repeat.

MGN calls per VM: a wave's VMs share a wave and an application, so once one VM of a warm
container has placed its server, the pair's IDs are kept for ``PLACEMENT_MAX_AGE`` on the
clock (as ``LaneFacts`` keeps lane facts) and the next VM of that application needs at most
one call (``AssociateSourceServers``), none if MGN already has it there; in the batched
design none: the lane's coordinator associates the servers it launches, up to 50 per call
(``defer``). The cutover's
preparation makes none when the server is still where the test launch's put it. Otherwise:
ListWaves, ListApplications (paged: one call each up to 1,000), the planned calls, and for a
move one DescribeSourceServers (who is left in the old application) plus the archive calls.

``remove`` undoes a placement for a VM removed from the manifests (``pipeline.removal``):
ListWaves, ListApplications, DisassociateSourceServers, DescribeSourceServers (who is left)
and the archive calls; nothing but the listing when the server is not in the removed VM's
application.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestration.adapters.mgn import (
    Grouping,
    GroupingNotFoundError,
    MgnConflictError,
    SourceServer,
)
from orchestration.clock import Clock
from orchestration.pipeline.mgn_grouping import (
    MANAGED_TAGS,
    ArchiveApplication,
    ArchiveWave,
    AssociateApplication,
    AssociateSourceServer,
    CreateApplication,
    CreateWave,
    DisassociateApplication,
    DisassociateSourceServer,
    GroupingCall,
    Placement,
    UnarchiveApplication,
    UnarchiveWave,
    plan_cleanup,
    plan_placement,
    plan_removal,
)
from orchestration.pipeline.ports import GroupingLanes, MgnGroupings
from orchestration.pipeline.spec import MigrationSpec

ATTEMPTS = 3
# How long a placed wave's and application's IDs are trusted without listing again. A stale
# pair costs one refused call (the application archived meanwhile) and then a fresh look; an
# application moved to another wave in the console is noticed this much later at most.
PLACEMENT_MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PlacementOutcome:
    """Where the server is now, what differed (for the thread), what was archived."""

    wave_id: str
    application_id: str
    drift: tuple[str, ...] = ()
    archived: tuple[str, ...] = ()
    # The server is not in the application yet: the caller has it associated in bulk (the
    # lane's launch coordinator, with the servers of other requests: ``place(defer=True)``).
    associate_later: bool = False

    def summary(self) -> str:
        """One clause for the step's status message: empty when nothing moved."""
        parts = list(self.drift)
        if self.archived:
            parts.append(f"archived in MGN, now empty: {', '.join(self.archived)}")
        return "; ".join(parts)


class MgnGroupingSync:
    def __init__(
        self, lanes: GroupingLanes, clock: Clock, max_age: timedelta = PLACEMENT_MAX_AGE
    ) -> None:
        self._lanes = lanes
        self._clock = clock
        self._max_age = max_age
        self._placed: dict[Hashable, tuple[datetime, str, str]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def place(
        self,
        spec: MigrationSpec,
        source_server_id: str,
        server: SourceServer | None,
        placed_before: PlacementOutcome | None = None,
        *,
        defer: bool = False,
    ) -> PlacementOutcome:
        """Put the server in ``<wave>`` / ``<wave>/<app>``; ``server`` is its description if
        the caller has a fresh one (None: it is looked up only if needed); ``placed_before``
        where this migration put it earlier (the test launch's preparation, for the cutover's):
        if the fresh description shows it still there, no call is made.

        ``defer``: when the wave and application are known and the server is not looked at,
        it is not associated here but left to the caller (``associate_later``): the batched
        design's coordinator associates the servers it launches together, up to 50 per call,
        and the cutover's preparation finds one that was elsewhere (drift) and moves it."""
        if (
            placed_before is not None
            and server is not None
            and server.application_id == placed_before.application_id
        ):
            return PlacementOutcome(placed_before.wave_id, placed_before.application_id)
        mgn = self._lanes.for_spec(spec).mgn
        desired = Placement.of(spec.wave, spec.app_name)
        key = (spec.target_account_id, spec.target_region, desired)
        known = self._known(key)
        if known is None:
            # One thread of a container looks at a time; the others then find its answer.
            with self._lock_for(key):
                known = self._known(key)
                if known is None:
                    return self._place_fully(mgn, key, desired, source_server_id, server)
        wave_id, application_id = known
        current_app = server.application_id if server is not None else None
        if server is not None and current_app == application_id:
            return PlacementOutcome(wave_id, application_id)
        if current_app is None and defer:
            return PlacementOutcome(wave_id, application_id, associate_later=True)
        if current_app is None:  # not in any application, or not looked at
            try:  # associating again where it already is changes nothing
                mgn.associate_source_servers(application_id, [source_server_id])
                return PlacementOutcome(wave_id, application_id)
            except (MgnConflictError, GroupingNotFoundError):
                self._forget(key)  # moved, archived meanwhile: look properly
                server = None
        return self._place_fully(mgn, key, desired, source_server_id, server)

    def _place_fully(
        self,
        mgn: MgnGroupings,
        key: Hashable,
        desired: Placement,
        source_server_id: str,
        server: SourceServer | None,
    ) -> PlacementOutcome:
        """List, plan, run, clean up; again from a fresh look when MGN refuses a call."""
        for attempt in range(1, ATTEMPTS + 1):
            if server is None:
                server = mgn.source_server(source_server_id)
            grouping = mgn.grouping()
            plan = plan_placement(desired, grouping, source_server_id, server.application_id)
            try:
                wave_id, application_id = _run(mgn, plan.calls, grouping, desired)
            except (MgnConflictError, GroupingNotFoundError):
                if attempt == ATTEMPTS:
                    raise
                server = None  # someone else changed MGN meanwhile: look again
                continue
            archived: list[str] = []
            if plan.left_application is not None:
                left = plan.left_application
                cleanup = plan_cleanup(
                    left, mgn.servers_in_application(left.application_id), grouping, desired
                )
                archived = _archive(mgn, cleanup, grouping)
            self._remember(key, wave_id, application_id)
            return PlacementOutcome(wave_id, application_id, plan.drift, tuple(archived))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def remove(self, spec: MigrationSpec, server: SourceServer) -> tuple[str, ...]:
        """Take the server of a VM removed from the manifests out of ``<wave>/<app>``, then
        archive the application and wave if that left them empty (``plan_cleanup``, with no
        new place to keep). Says what was done: empty if the server was not there (never
        placed, or already in another wave's application: the VM moved). A disassociation
        MGN refuses (the application archived or gone meanwhile) is looked at once more."""
        mgn = self._lanes.for_spec(spec).mgn
        removed = Placement.of(spec.wave, spec.app_name)
        self._forget((spec.target_account_id, spec.target_region, removed))
        application_id = server.application_id
        for attempt in range(1, ATTEMPTS + 1):
            grouping = mgn.grouping()
            call = plan_removal(removed, grouping, server.source_server_id, application_id)
            if call is None:
                return ()
            try:
                mgn.disassociate_source_servers(call.application_id, [call.source_server_id])
            except (MgnConflictError, GroupingNotFoundError):
                if attempt == ATTEMPTS:
                    raise
                application_id = mgn.source_server(server.source_server_id).application_id
                continue
            left = grouping.application(call.application_id)
            assert left is not None  # plan_removal found it by name in this grouping
            cleanup = plan_cleanup(
                left, mgn.servers_in_application(left.application_id), grouping, None
            )
            archived = _archive(mgn, cleanup, grouping)
            return (f"out of application {left.name}", *(f"archived {a}" for a in archived))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _known(self, key: Hashable) -> tuple[str, str] | None:
        with self._guard:
            kept = self._placed.get(key)
        if kept is None or self._clock.now() - kept[0] > self._max_age:
            return None
        return kept[1], kept[2]

    def _remember(self, key: Hashable, wave_id: str, application_id: str) -> None:
        with self._guard:
            self._placed[key] = (self._clock.now(), wave_id, application_id)

    def _forget(self, key: Hashable) -> None:
        with self._guard:
            self._placed.pop(key, None)


def _run(
    mgn: MgnGroupings, calls: tuple[GroupingCall, ...], grouping: Grouping, desired: Placement
) -> tuple[str, str]:
    """Make the planned calls in order; returns the desired wave's and application's IDs."""
    wave_ids = {wave.name: wave.wave_id for wave in grouping.waves}
    application_ids = {app.name: app.application_id for app in grouping.applications}
    for call in calls:
        match call:
            case CreateWave(name=name):
                wave_ids[name] = mgn.create_wave(
                    name, description="Wavepilot wave (manifests/waves)", tags=MANAGED_TAGS
                )
            case UnarchiveWave(wave_id=wave_id):
                mgn.unarchive_wave(wave_id)
            case CreateApplication(name=name):
                application_ids[name] = mgn.create_application(
                    name, description="Wavepilot application (manifests/waves)", tags=MANAGED_TAGS
                )
            case UnarchiveApplication(application_id=application_id):
                mgn.unarchive_application(application_id)
            case DisassociateApplication(wave_id=wave_id, application_id=application_id):
                mgn.disassociate_applications(wave_id, [application_id])
            case AssociateApplication(wave_name=wave_name, application_name=application_name):
                mgn.associate_applications(wave_ids[wave_name], [application_ids[application_name]])
            case DisassociateSourceServer(application_id=application_id, source_server_id=sid):
                mgn.disassociate_source_servers(application_id, [sid])
            case AssociateSourceServer(application_name=application_name, source_server_id=sid):
                mgn.associate_source_servers(application_ids[application_name], [sid])
            case ArchiveApplication() | ArchiveWave():
                raise ValueError(f"{call} belongs to a cleanup, not a placement")
    return wave_ids[desired.wave], application_ids[desired.application]


def _archive(mgn: MgnGroupings, calls: tuple[GroupingCall, ...], grouping: Grouping) -> list[str]:
    """Archive what the cleanup planned; a wave or application that someone joined meanwhile
    (MGN refuses: not empty) is left as it is, and so is a wave after its application was."""
    archived: list[str] = []
    for call in calls:
        try:
            match call:
                case ArchiveApplication(application_id=application_id):
                    mgn.archive_application(application_id)
                    found = grouping.application(application_id)
                    archived.append(f"application {found.name if found else application_id}")
                case ArchiveWave(wave_id=wave_id):
                    mgn.archive_wave(wave_id)
                    wave = grouping.wave(wave_id)
                    archived.append(f"wave {wave.name if wave else wave_id}")
        except (MgnConflictError, GroupingNotFoundError):
            break
    return archived
