"""MGN's own waves and applications, kept equal to the manifests: pure planning.

A migration team works in MGN's console beside Wavepilot; the console groups source servers
into applications and applications into waves. Wavepilot's wave ``<wave>`` is MGN's wave of
that name, and its application ``<app>`` of that wave is MGN's application
``<wave>/<app>`` (MGN's names are unique per account and an application is in at most one
wave, while the same application name may appear in two of Wavepilot's waves). What
Wavepilot creates is tagged ``wavepilot:managed``; only such waves and applications are ever
archived, so a team's own grouping in the console is never touched.

``plan_placement`` compares where one source server should be with what MGN has and returns
the calls that close the gap, in order, plus what moved (drift: the server, or its
application, was somewhere else, e.g. moved in the console). ``plan_cleanup`` decides what a
move left empty. ``plan_removal`` takes the server of a VM removed from the manifests out of
its application (``publish --cancel-removed``), after which ``plan_cleanup`` archives what
that left empty. Both are pure; ``MgnGroupingSync`` (in ``mgn_grouping_sync``) runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestration.adapters.mgn import MANAGED_TAG, Grouping, MgnApplication

MANAGED_TAGS: Mapping[str, str] = {MANAGED_TAG: "true"}


def mgn_application_name(wave: str, app_name: str) -> str:
    """MGN's name of a Wavepilot application: ``<wave>/<app>`` (unique per account)."""
    return f"{wave}/{app_name}"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the manifests put a source server: MGN's wave and application names."""

    wave: str
    application: str

    @classmethod
    def of(cls, wave: str, app_name: str) -> Placement:
        return cls(wave=wave, application=mgn_application_name(wave, app_name))


# --- The calls, in the order a plan lists them. A wave or application Wavepilot has yet to
# create is named by its name (``*_name``); the runner knows its ID once created.


@dataclass(frozen=True, slots=True)
class CreateWave:
    name: str


@dataclass(frozen=True, slots=True)
class UnarchiveWave:
    wave_id: str


@dataclass(frozen=True, slots=True)
class CreateApplication:
    name: str


@dataclass(frozen=True, slots=True)
class UnarchiveApplication:
    application_id: str


@dataclass(frozen=True, slots=True)
class DisassociateApplication:
    wave_id: str
    application_id: str


@dataclass(frozen=True, slots=True)
class AssociateApplication:
    wave_name: str
    application_name: str


@dataclass(frozen=True, slots=True)
class DisassociateSourceServer:
    application_id: str
    source_server_id: str


@dataclass(frozen=True, slots=True)
class AssociateSourceServer:
    application_name: str
    source_server_id: str


@dataclass(frozen=True, slots=True)
class ArchiveApplication:
    application_id: str


@dataclass(frozen=True, slots=True)
class ArchiveWave:
    wave_id: str


GroupingCall = (
    CreateWave
    | UnarchiveWave
    | CreateApplication
    | UnarchiveApplication
    | DisassociateApplication
    | AssociateApplication
    | DisassociateSourceServer
    | AssociateSourceServer
    | ArchiveApplication
    | ArchiveWave
)


@dataclass(frozen=True, slots=True)
class PlacementPlan:
    """The calls that put one server where the manifests say, and what MGN had instead.

    Attributes:
        calls: in order; empty when MGN already agrees.
        left_application: the application the server leaves (a move), to clean up after.
        drift: one sentence per difference found, for the migration's thread.
    """

    calls: tuple[GroupingCall, ...]
    left_application: MgnApplication | None
    drift: tuple[str, ...]


def plan_placement(
    desired: Placement, current: Grouping, source_server_id: str, server_application_id: str | None
) -> PlacementPlan:
    """The calls that make MGN group ``source_server_id`` as ``desired`` says."""
    calls: list[GroupingCall] = []
    drift: list[str] = []
    wave = current.wave_named(desired.wave)
    if wave is None:
        calls.append(CreateWave(desired.wave))
    elif wave.is_archived:
        calls.append(UnarchiveWave(wave.wave_id))
    application = current.application_named(desired.application)
    if application is None:
        calls.append(CreateApplication(desired.application))
    elif application.is_archived:
        calls.append(UnarchiveApplication(application.application_id))
    in_wave = application is not None and wave is not None and application.wave_id == wave.wave_id
    if not in_wave:
        if application is not None and application.wave_id is not None:
            elsewhere = current.wave(application.wave_id)
            drift.append(
                f"MGN had application {desired.application} in wave "
                f"{elsewhere.name if elsewhere else application.wave_id}; moved to wave "
                f"{desired.wave} as the manifests say"
            )
            calls.append(DisassociateApplication(application.wave_id, application.application_id))
        calls.append(AssociateApplication(desired.wave, desired.application))
    left: MgnApplication | None = None
    if application is None or server_application_id != application.application_id:
        if server_application_id is not None:
            left = current.application(server_application_id) or MgnApplication(
                server_application_id, server_application_id
            )
            calls.append(DisassociateSourceServer(server_application_id, source_server_id))
            drift.append(_server_moved(current, left, desired))
        calls.append(AssociateSourceServer(desired.application, source_server_id))
    return PlacementPlan(calls=tuple(calls), left_application=left, drift=tuple(drift))


def _server_moved(current: Grouping, left: MgnApplication, desired: Placement) -> str:
    old_wave = current.wave(left.wave_id)
    where = f" (wave {old_wave.name})" if old_wave is not None else ""
    whose = "" if left.managed else ", an application Wavepilot does not manage (console?)"
    return (
        f"MGN had the server in application {left.name}{where}{whose}; moved to "
        f"{desired.application} (wave {desired.wave}) as the manifests say"
    )


def plan_cleanup(
    left: MgnApplication,
    servers_left: Sequence[str],
    current: Grouping,
    desired: Placement | None,
) -> tuple[GroupingCall, ...]:
    """What to archive after a server left ``left`` for ``desired`` (None: the VM was removed
    from the manifests, it goes nowhere): the application if Wavepilot manages it and no
    server is left in it, then its wave if that wave is Wavepilot's, is not the server's new
    wave, and has no other active application. ``current`` is the grouping as listed before
    the move."""
    if left.is_archived or not left.managed or servers_left:
        return ()
    calls: list[GroupingCall] = [ArchiveApplication(left.application_id)]
    wave = current.wave(left.wave_id)
    others = [
        app
        for app in current.applications
        if app.wave_id == left.wave_id
        and app.application_id != left.application_id
        and not app.is_archived
    ]
    if (
        wave is not None
        and wave.managed
        and not wave.is_archived
        and (desired is None or wave.name != desired.wave)
        and not others
    ):
        calls.append(ArchiveWave(wave.wave_id))
    return tuple(calls)


def plan_removal(
    removed: Placement, current: Grouping, source_server_id: str, server_application_id: str | None
) -> DisassociateSourceServer | None:
    """Take a server out of the application of a VM removed from the manifests, only if it is
    still there: a VM that moved to another wave has the same server, which the new wave's
    migration may have placed already (its application is not the removed one's)."""
    application = current.application_named(removed.application)
    if application is None or server_application_id != application.application_id:
        return None
    return DisassociateSourceServer(application.application_id, source_server_id)
