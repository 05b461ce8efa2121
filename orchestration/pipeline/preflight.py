"""Preflight: MGN's known footguns, checked per VM before migration day. Pure logic.

Each check reads the facts gathered for one VM (:class:`VmFacts`, see
:mod:`orchestration.pipeline.preflight_facts`) or for its lane (:class:`LaneFacts`) and
returns findings that name the VM and say what to do. Nothing here calls AWS, so a crafted
fact produces exactly its finding.

Severity follows what Wavepilot does anyway: its prepare step writes a new default launch
template version (subnet, type, groups) before each launch and sets right-sizing off and
``copyPrivateIp`` off before the test launch. A drift that step will overwrite is a warning
(a launch started from MGN's console before it would suffer it); one it will not fix (a
setting changed after the test launch, too many NICs, an IP outside its subnet, no
conversion role) is an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestration.adapters.ec2 import SubnetFacts, TemplateFacts
from orchestration.adapters.mgn import LaunchConfiguration, SourceServer
from orchestration.pipeline.monitoring import duration_seconds

Severity = Literal["error", "warning"]

# MGN launches an instance with at most two network interfaces (reference/mgn.md).
MAX_NETWORK_INTERFACES = 2
# A healthy CONTINUOUS replica is seconds behind; minutes mean the link or the disk cannot
# keep up, and a cutover launched then loses (or waits for) that much of the source's writes.
LAG_WARNING = timedelta(minutes=15)
# The instance profile MGN's conversion server runs with (MGN creates it at InitializeService,
# with the managed policy AWSApplicationMigrationConversionServerPolicy).
CONVERSION_PROFILE = "AWSApplicationMigrationConversionServerRole"
# Lifecycle states after Wavepilot's test launch: its launch settings are not applied again.
TESTED = frozenset({"TESTING", "READY_FOR_CUTOVER"})
STUCK_REPLICATION = frozenset({"STALLED", "DISCONNECTED", "PAUSED", "STOPPED"})
# How many VM names a lane-wide finding lists before "and N more".
NAMES_LISTED = 5


@dataclass(frozen=True, slots=True)
class PreflightFinding:
    severity: Severity
    vm: str
    check: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "vm": self.vm,
            "check": self.check,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class VmFacts:
    """What preflight knows about one VM: the manifest's wishes and what AWS says.

    A fact that could not be gathered is None (the server was not found, the subnet does not
    exist): the checks that need it are skipped and the reason is its own finding.
    """

    vm: str
    instance_type: str
    subnet_id: str
    window_start: datetime
    window_end: datetime
    server: SourceServer | None
    server_problem: str | None = None
    launch: LaunchConfiguration | None = None
    template: TemplateFacts | None = None
    subnet: SubnetFacts | None = None
    replication_key: str | None = None


@dataclass(frozen=True, slots=True)
class LaneFacts:
    """What preflight knows about a lane (target account and Region) as a whole."""

    label: str
    has_default_vpc: bool
    template_keys: frozenset[str] = field(default_factory=frozenset)
    # The conversion server's instance profile's roles; None if the profile does not exist.
    conversion_roles: tuple[str, ...] | None = ()


def check_vm(facts: VmFacts, lane: LaneFacts, now: datetime) -> list[PreflightFinding]:
    """Every finding for one VM."""
    if facts.server is None:
        return [
            PreflightFinding(
                "error", facts.vm, "source-server", facts.server_problem or "no source server"
            )
        ]
    return [
        *network_interface_findings(facts.vm, facts.server, facts.template),
        *replication_findings(facts.vm, facts.server, facts.window_start, facts.window_end, now),
        *_template_findings(facts),
        *_right_sizing_findings(facts),
        *_subnet_findings(facts, lane),
        *_private_ip_findings(facts),
        *_kms_findings(facts, lane),
    ]


def check_wave(
    vms: Sequence[VmFacts], lanes: dict[str, LaneFacts], lane_of: dict[str, str], now: datetime
) -> list[PreflightFinding]:
    """Every finding of a wave: each VM's, then each lane's (naming the VMs it affects)."""
    findings = [
        finding for facts in vms for finding in check_vm(facts, lanes[lane_of[facts.vm]], now)
    ]
    for label, lane in sorted(lanes.items()):
        names = [facts.vm for facts in vms if lane_of[facts.vm] == label]
        findings.extend(conversion_findings(lane, names))
    return findings


def network_interface_findings(
    vm: str, server: SourceServer, template: TemplateFacts | None = None
) -> list[PreflightFinding]:
    """More NICs than MGN launches: the source's (as its agent reports them) or the launch
    template's."""
    source = len(server.private_ips)
    templated = template.network_interfaces if template is not None else 0
    if max(source, templated) <= MAX_NETWORK_INTERFACES:
        return []
    where = (
        f"the source VM reports {source} network interfaces"
        if source > MAX_NETWORK_INTERFACES
        else f"launch template {template.launch_template_id if template else ''} names "
        f"{templated} network interfaces"
    )
    return [
        PreflightFinding(
            "error",
            vm,
            "network-interfaces",
            f"{where}; MGN launches at most {MAX_NETWORK_INTERFACES}: consolidate the "
            "source's NICs (or attach the others after launch) before migration day",
        )
    ]


def replication_findings(
    vm: str, server: SourceServer, window_start: datetime, window_end: datetime, now: datetime
) -> list[PreflightFinding]:
    """The server's replication against its cutover window: stuck, an initial sync that ends
    after the window opens, a lag too large for the window."""
    state = server.replication_state
    if state in STUCK_REPLICATION:
        return [
            PreflightFinding(
                "error",
                vm,
                "replication-lag",
                f"replication is {state}"
                + (f" ({server.replication_error})" if server.replication_error else "")
                + f": fix it in MGN (source server {server.source_server_id}) before the window "
                f"opens at {window_start.isoformat()}",
            )
        ]
    if not server.lag_duration:
        return _initial_sync_findings(vm, server, window_start)
    return _lag_findings(vm, server.lag_duration, window_start, window_end, now)


def _initial_sync_findings(
    vm: str, server: SourceServer, window_start: datetime
) -> list[PreflightFinding]:
    eta = _parse_time(server.replication_eta)
    if eta is None or eta <= window_start:
        return []
    return [
        PreflightFinding(
            "error",
            vm,
            "replication-lag",
            f"initial sync ends about {eta.isoformat()}, after the window opens at "
            f"{window_start.isoformat()}: give replication more bandwidth or move "
            "the VM to a later wave",
        )
    ]


def _lag_findings(
    vm: str, lag_duration: str, window_start: datetime, window_end: datetime, now: datetime
) -> list[PreflightFinding]:
    if window_end <= now:
        return []  # the window is over: `wavepilot validate` says so
    try:
        lag = timedelta(seconds=duration_seconds(lag_duration))
    except ValueError:
        return []
    window = window_end - max(window_start, now)
    if lag >= window:
        return [
            PreflightFinding(
                "error",
                vm,
                "replication-lag",
                f"replication lags {_human(lag)} behind the source, longer than the "
                f"{_human(window)} left of its window: find why (bandwidth, disk churn, a "
                "stalled disk) or move the VM to a later wave",
            )
        ]
    if lag > LAG_WARNING:
        return [
            PreflightFinding(
                "warning",
                vm,
                "replication-lag",
                f"replication lags {_human(lag)} behind the source (more than "
                f"{_human(LAG_WARNING)}): a cutover launches what has arrived; check the "
                "replication bandwidth before the window",
            )
        ]
    return []


def _template_findings(facts: VmFacts) -> list[PreflightFinding]:
    template = facts.template
    if template is None or template.default_version == template.latest_version:
        return []
    return [
        PreflightFinding(
            "warning",
            facts.vm,
            "launch-template-default",
            f"MGN launches from launch template {template.launch_template_id}'s default "
            f"version {template.default_version}, not its latest {template.latest_version}: "
            "a change made in version "
            f"{template.latest_version} is not used (Wavepilot writes its own default version "
            "from the manifest before each launch): put the change in the manifest, or "
            "delete the stray version",
        )
    ]


def _right_sizing_findings(facts: VmFacts) -> list[PreflightFinding]:
    launch, server = facts.launch, facts.server
    if launch is None or server is None or launch.right_sizing == "NONE":
        return []
    tested = server.lifecycle_state in TESTED
    return [
        PreflightFinding(
            "error" if tested else "warning",
            facts.vm,
            "right-sizing",
            f"right-sizing is {launch.right_sizing}: MGN would launch its own recommended "
            f"type instead of the manifest's instanceType {facts.instance_type}. "
            + (
                "Wavepilot set it to NONE for the test launch and does not again: set "
                "targetInstanceTypeRightSizingMethod to NONE in MGN's launch settings"
                if tested
                else "Wavepilot sets it to NONE before the test launch; launch only through "
                "Wavepilot until then"
            ),
        )
    ]


def _subnet_findings(facts: VmFacts, lane: LaneFacts) -> list[PreflightFinding]:
    if facts.subnet is None:
        return [
            PreflightFinding(
                "error",
                facts.vm,
                "subnet",
                f"subnet {facts.subnet_id} does not exist in {lane.label}: fix subnetId",
            )
        ]
    template = facts.template
    if template is None or template.subnet_id or facts.subnet.default_vpc:
        return []
    consequence = (
        "a launch would go to the default VPC"
        if lane.has_default_vpc
        else f"{lane.label} has no default VPC, so a launch would fail"
    )
    return [
        PreflightFinding(
            "warning",
            facts.vm,
            "subnet-explicit",
            f"launch template {template.launch_template_id}'s default version names no "
            f"subnet and {facts.subnet_id} is not in a default VPC: {consequence}. Wavepilot "
            "writes the subnet before its launches: start launches through Wavepilot only",
        )
    ]


def _private_ip_findings(facts: VmFacts) -> list[PreflightFinding]:
    subnet, server, launch, template = facts.subnet, facts.server, facts.launch, facts.template
    if subnet is None or server is None:
        return []
    candidates: list[tuple[str, str]] = []
    if template is not None and template.private_ip:
        candidates.append(
            (template.private_ip, f"launch template {template.launch_template_id} sets")
        )
    elif launch is not None and launch.copy_private_ip and server.private_ips:
        candidates.append((server.private_ips[0], "copyPrivateIp copies the source's"))
    findings = []
    network = ipaddress.ip_network(subnet.cidr_block, strict=False)
    for address, origin in candidates:
        try:
            inside = ipaddress.ip_address(address) in network
        except ValueError:
            inside = False
        if not inside:
            findings.append(
                PreflightFinding(
                    "error",
                    facts.vm,
                    "private-ip",
                    f"{origin} private IP {address}, outside subnet {subnet.subnet_id}'s "
                    f"{subnet.cidr_block}: the launch would fail. Choose a subnet that holds "
                    "it, or turn copyPrivateIp off in MGN's launch settings",
                )
            )
    return findings


def _kms_findings(facts: VmFacts, lane: LaneFacts) -> list[PreflightFinding]:
    key = facts.replication_key
    if key is None or not lane.template_keys or key in lane.template_keys:
        return []
    wanted = ", ".join(sorted(lane.template_keys))
    return [
        PreflightFinding(
            "warning",
            facts.vm,
            "kms-resync",
            f"the server replicates with EBS key {key} but {lane.label}'s replication "
            f"template now says {wanted}: changing this server's key forces a full resync of "
            "every disk. Leave it until after the cutover, or change it only with time for a "
            "whole initial sync before the window",
        )
    ]


def conversion_findings(lane: LaneFacts, vms: Sequence[str]) -> list[PreflightFinding]:
    """MGN's conversion server needs its instance profile (with a role) in the account."""
    if not vms or lane.conversion_roles:
        return []
    problem = (
        f"instance profile {CONVERSION_PROFILE} does not exist"
        if lane.conversion_roles is None
        else f"instance profile {CONVERSION_PROFILE} has no role"
    )
    return [
        PreflightFinding(
            "error",
            _named(vms),
            "conversion-iam",
            f"{problem} in {lane.label}: MGN's conversion server cannot start, so no launch "
            "can. Initialize MGN in that account and Region again (it creates the profile and "
            "role AWSApplicationMigrationConversionServerRole with the managed policy "
            "AWSApplicationMigrationConversionServerPolicy)",
        )
    ]


def summary(findings: Iterable[PreflightFinding]) -> tuple[int, int]:
    """(errors, warnings)."""
    listed = list(findings)
    errors = sum(1 for finding in listed if finding.severity == "error")
    return errors, len(listed) - errors


def _named(vms: Sequence[str]) -> str:
    shown = ", ".join(vms[:NAMES_LISTED])
    more = len(vms) - NAMES_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _human(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = [
    "CONVERSION_PROFILE",
    "LAG_WARNING",
    "MAX_NETWORK_INTERFACES",
    "LaneFacts",
    "PreflightFinding",
    "VmFacts",
    "check_vm",
    "check_wave",
    "conversion_findings",
    "network_interface_findings",
    "replication_findings",
    "summary",
]
