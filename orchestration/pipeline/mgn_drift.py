"""Drift in the plan: where MGN's console groups the plan's VMs otherwise than the manifests.

``prepare_source`` puts each migration's source server in MGN's wave ``<wave>`` and
application ``<wave>/<app>`` and reports what it had to move (``mgn_grouping``). The plan
runs before that, usually in GitHub Actions without AWS; where it can reach the waves'
target accounts (``wavepilot plan --mgn-drift``: an operator's credentials, or the embedded
default with ``--local``), it reads each lane's grouping once and the lane's source servers
once, and says per VM what MGN has instead (a server moved in the console, an application in
another wave) as a warning at the VM's line: publishing puts it back. A VM whose server is
not in MGN yet, or not in any application, is no drift (``preflight`` says what is missing).

Drift is advice, never a reason to fail the plan: a lane that cannot be read (its role
missing or not trusting the caller, no credentials, MGN not initialized, throttled) is a
warning too, once per manifest file at the first of its VMs there, saying what was not
checked and why; the other lanes are still checked and the plan is still posted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestration.adapters.errors import TransientError
from orchestration.adapters.lanes import LaneError, LaneRoleUnavailableError
from orchestration.adapters.mgn import MgnError, SourceServer, SourceServerNotFoundError
from orchestration.manifests.findings import Finding, Severity
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.mgn_grouping import Placement, plan_placement
from orchestration.pipeline.ports import GroupingReadLanes
from orchestration.pipeline.resolution import match_source_server
from orchestration.pipeline.spec import MigrationSpec, SourceHints

# What a lane's reads raise when the lane cannot be read, as the adapters type it. The CLI
# adds botocore's own (no credentials, no endpoint), which the pipeline never imports.
UNREADABLE_LANE_ERRORS: tuple[type[Exception], ...] = (LaneError, MgnError, TransientError)


@dataclass(frozen=True, slots=True)
class Drift:
    request: MigrationRequest
    what: str  # one sentence, as the thread would say it


@dataclass(frozen=True, slots=True)
class UnreadLane:
    """A lane whose grouping could not be read: its VMs were not checked for drift."""

    account_id: str  # empty: the hub's account
    region: str  # empty: the default Region
    requests: tuple[MigrationRequest, ...]
    reason: str

    @property
    def where(self) -> str:
        account = f"target account {self.account_id}" if self.account_id else "the hub's account"
        return f"{account} (Region {self.region or 'default'})"


@dataclass(frozen=True, slots=True)
class DriftCheck:
    """What the plan learnt of MGN: the drift found, and the lanes it could not read."""

    drifts: tuple[Drift, ...]
    unread: tuple[UnreadLane, ...] = ()


def grouping_drift(
    requests: Iterable[MigrationRequest],
    lanes: GroupingReadLanes,
    *,
    unreadable: tuple[type[Exception], ...] = UNREADABLE_LANE_ERRORS,
) -> DriftCheck:
    """What MGN groups otherwise than the manifests, per VM: two reads per lane. A lane
    whose role or reads fail with one of ``unreadable`` is reported, not raised."""
    by_lane: dict[tuple[str, str], list[tuple[MigrationRequest, MigrationSpec]]] = {}
    for request in requests:
        if request.effective_vm is None:
            continue  # a hand-written request names no application of a manifest
        spec = MigrationSpec.from_request(request, request.revision or "", "plan")
        by_lane.setdefault((spec.target_account_id, spec.target_region), []).append((request, spec))
    found: list[Drift] = []
    unread: list[UnreadLane] = []
    for (account_id, region), members in by_lane.items():
        try:
            mgn = lanes.for_spec(members[0][1]).mgn
            grouping = mgn.grouping()
            servers = mgn.source_servers()
        except unreadable as exc:
            requests_here = tuple(request for request, _ in members)
            unread.append(UnreadLane(account_id, region, requests_here, _reason(exc)))
            continue
        for request, spec in members:
            try:
                server = _server_of(servers, spec.source)
            except SourceServerNotFoundError:
                continue
            if server.application_id is None:
                continue  # not grouped yet: its first run groups it, nothing to undo
            plan = plan_placement(
                Placement.of(spec.wave, spec.app_name),
                grouping,
                server.source_server_id,
                server.application_id,
            )
            found.extend(Drift(request, what) for what in plan.drift)
    return DriftCheck(tuple(found), tuple(unread))


def _server_of(servers: list[SourceServer], hints: SourceHints) -> SourceServer:
    """The VM's live server among the lane's listing: by the ID the manifest gives (no call
    more), else as ``prepare_source`` matches it."""
    if hints.source_server_id:
        for server in servers:
            if server.source_server_id == hints.source_server_id:
                return server
        raise SourceServerNotFoundError(f"no live source server {hints.source_server_id}")
    return match_source_server(servers, hints)


def _reason(exc: Exception) -> str:
    if isinstance(exc, LaneRoleUnavailableError):
        # Its own message advises the step functions' role; the plan reads with another.
        return f"cannot assume role {exc.role_arn} ({exc.detail})"
    return str(exc) or type(exc).__name__


def drift_findings(check: DriftCheck) -> list[Finding]:
    """Warnings at each VM's line in its manifest (the plan's annotations and comment), and
    one per manifest file of each lane that could not be read."""
    return [*_drift_warnings(check.drifts), *_unread_warnings(check.unread)]


def _drift_warnings(drifts: Sequence[Drift]) -> list[Finding]:
    findings = []
    for drift in drifts:
        provenance = drift.request.provenance
        if provenance is None:
            continue
        findings.append(
            Finding(
                provenance.manifest_path,
                provenance.line,
                1,
                f"{drift.request.target_vm_name}: MGN's grouping differs from the manifests: "
                f"{_as_found(drift.what)}; publishing puts it back",
                Severity.WARNING,
            )
        )
    return findings


def _unread_warnings(unread: Sequence[UnreadLane]) -> list[Finding]:
    findings = []
    for lane in unread:
        by_file: dict[str, list[tuple[int, str]]] = {}
        for request in lane.requests:
            if request.provenance is not None:
                by_file.setdefault(request.provenance.manifest_path, []).append(
                    (request.provenance.line, request.target_vm_name)
                )
        for path, vms in by_file.items():
            vms.sort()
            names = ", ".join(name for _, name in vms[:5]) + (", ..." if len(vms) > 5 else "")
            findings.append(
                Finding(
                    path,
                    vms[0][0],
                    1,
                    f"MGN drift not checked for {len(vms)} VM{'s' if len(vms) != 1 else ''} "
                    f"of this file ({names}): {lane.where} could not be read: {lane.reason}. "
                    "The rest of the plan stands; docs/DEPLOY.md says how the plan reads MGN",
                    Severity.WARNING,
                )
            )
    return findings


def _as_found(sentence: str) -> str:
    """The sync's sentence says what it did ("moved to ... as the manifests say"); the plan
    only says what MGN has."""
    return sentence.split("; moved", 1)[0]
