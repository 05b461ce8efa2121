"""Gather preflight's facts for a wave's VMs: few calls, whatever the wave's size.

Per lane (target account and Region): one paginated listing of its live source servers (every
VM is resolved from it, as ``resolution.match_source_server`` does), EC2's subnets and launch
templates 200 IDs per call, the Region's default VPC, MGN's replication templates and the
conversion server's instance profile once. MGN has no batch read of launch or replication
settings and EC2 describes one template's versions at a time, so those are one call per VM
each: about three calls per VM, plus a handful per lane.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orchestration.adapters.ec2 import SubnetFacts, TemplateFacts
from orchestration.adapters.mgn import (
    LaunchConfiguration,
    SourceServer,
    SourceServerNotFoundError,
)
from orchestration.manifests.model import EffectiveVm
from orchestration.pipeline.preflight import CONVERSION_PROFILE, LaneFacts, VmFacts
from orchestration.pipeline.resolution import match_source_server
from orchestration.pipeline.spec import SourceHints


class PreflightMgn(Protocol):
    def source_servers(self) -> list[SourceServer]: ...

    def launch_configuration(self, source_server_id: str) -> LaunchConfiguration: ...

    def replication_key(self, source_server_id: str) -> str: ...

    def template_replication_keys(self) -> set[str]: ...


class PreflightEc2(Protocol):
    def subnets(self, subnet_ids: list[str]) -> dict[str, SubnetFacts]: ...

    def has_default_vpc(self) -> bool: ...

    def launch_templates(self, template_ids: list[str]) -> dict[str, TemplateFacts]: ...

    def instance_profile_roles(self, name: str) -> list[str] | None: ...


class PreflightLane(Protocol):
    """A lane's adapters (``orchestration.adapters.lanes.LaneClients``)."""

    @property
    def mgn(self) -> PreflightMgn: ...

    @property
    def ec2(self) -> PreflightEc2: ...


def lane_label(vm: EffectiveVm) -> str:
    return f"{vm.target_account_id}/{vm.target_region}"


def _resolve(vm: EffectiveVm, servers: list[SourceServer]) -> SourceServer:
    wanted = vm.source.source_server_id
    if wanted:
        found = next((s for s in servers if s.source_server_id == wanted), None)
        if found is None:
            raise SourceServerNotFoundError(
                f"no live source server {wanted} in MGN in this account and Region: check "
                "source.sourceServerId (MGN console, Source servers)"
            )
        return found
    hints = SourceHints(
        source_vm_id=vm.source.azure_resource_id,
        user_provided_id=vm.source.user_provided_id,
        hostname=vm.source.hostname,
    )
    return match_source_server(servers, hints)


def gather_lane(
    label: str, lane: PreflightLane, vms: Sequence[EffectiveVm]
) -> tuple[LaneFacts, list[VmFacts]]:
    """The facts of one lane and of its VMs (all of ``vms`` are in this lane)."""
    servers = lane.mgn.source_servers()
    resolved: dict[str, SourceServer] = {}
    problems: dict[str, str] = {}
    for vm in vms:
        try:
            resolved[vm.target_vm_name] = _resolve(vm, servers)
        except SourceServerNotFoundError as exc:
            problems[vm.target_vm_name] = str(exc)
    launches = {
        name: lane.mgn.launch_configuration(server.source_server_id)
        for name, server in resolved.items()
    }
    keys = {
        name: lane.mgn.replication_key(server.source_server_id) for name, server in resolved.items()
    }
    templates = lane.ec2.launch_templates(
        [launch.launch_template_id for launch in launches.values()]
    )
    subnets = lane.ec2.subnets([vm.subnet_id for vm in vms])
    roles = lane.ec2.instance_profile_roles(CONVERSION_PROFILE)
    lane_facts = LaneFacts(
        label=label,
        has_default_vpc=lane.ec2.has_default_vpc(),
        template_keys=frozenset(lane.mgn.template_replication_keys()),
        conversion_roles=tuple(roles) if roles is not None else None,
    )
    facts = []
    for vm in vms:
        name = vm.target_vm_name
        launch = launches.get(name)
        facts.append(
            VmFacts(
                vm=name,
                instance_type=vm.instance_type,
                subnet_id=vm.subnet_id,
                window_start=vm.cutover_window.start,
                window_end=vm.cutover_window.end,
                server=resolved.get(name),
                server_problem=problems.get(name),
                launch=launch,
                template=templates.get(launch.launch_template_id) if launch else None,
                subnet=subnets.get(vm.subnet_id),
                replication_key=keys.get(name),
            )
        )
    return lane_facts, facts


__all__ = ["PreflightLane", "gather_lane", "lane_label"]
