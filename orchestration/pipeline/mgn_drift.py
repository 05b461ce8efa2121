"""Drift in the plan: where MGN's console groups the plan's VMs otherwise than the manifests.

``prepare_source`` puts each migration's source server in MGN's wave ``<wave>`` and
application ``<wave>/<app>`` and reports what it had to move (``mgn_grouping``). The plan
runs before that, usually in GitHub Actions without AWS; where it can reach the waves'
target accounts (``wavepilot plan --mgn-drift``: an operator's credentials, or the embedded
default with ``--local``), it reads each lane's grouping once and the lane's source servers
once, and says per VM what MGN has instead (a server moved in the console, an application in
another wave) as a warning at the VM's line: publishing puts it back. A VM whose server is
not in MGN yet, or not in any application, is no drift (``preflight`` says what is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestration.adapters.mgn import SourceServerNotFoundError
from orchestration.manifests.findings import Finding, Severity
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.mgn_grouping import Placement, plan_placement
from orchestration.pipeline.ports import GroupingReadLanes
from orchestration.pipeline.resolution import match_source_server
from orchestration.pipeline.spec import MigrationSpec


@dataclass(frozen=True, slots=True)
class Drift:
    request: MigrationRequest
    what: str  # one sentence, as the thread would say it


def grouping_drift(requests: Iterable[MigrationRequest], lanes: GroupingReadLanes) -> list[Drift]:
    """What MGN groups otherwise than the manifests, per VM: two reads per lane."""
    by_lane: dict[tuple[str, str], list[tuple[MigrationRequest, MigrationSpec]]] = {}
    for request in requests:
        if request.effective_vm is None:
            continue  # a hand-written request names no application of a manifest
        spec = MigrationSpec.from_request(request, request.revision or "", "plan")
        by_lane.setdefault((spec.target_account_id, spec.target_region), []).append((request, spec))
    found: list[Drift] = []
    for members in by_lane.values():
        mgn = lanes.for_spec(members[0][1]).mgn
        grouping = mgn.grouping()
        servers = mgn.source_servers()
        for request, spec in members:
            try:
                server = match_source_server(servers, spec.source)
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
    return found


def drift_findings(drifts: Sequence[Drift]) -> list[Finding]:
    """Warnings at each VM's line in its manifest (the plan's annotations and comment)."""
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


def _as_found(sentence: str) -> str:
    """The sync's sentence says what it did ("moved to ... as the manifests say"); the plan
    only says what MGN has."""
    return sentence.split("; moved", 1)[0]
