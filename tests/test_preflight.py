"""``wavepilot preflight``: each of MGN's known footguns, crafted in the emulator and moto,
produces exactly its finding; a wave prepared as Wavepilot prepares it produces none.

The wave is wave-1 (four VMs, account 111122223333, us-east-1) with its window moved to
tomorrow; its estate is provisioned in that account, MGN is the emulator (its launch
templates in that account's moto EC2), and the checks read through the lane roles as
``--local`` does, or with the caller's own credentials as on AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestration import wiring
from orchestration.adapters import aws
from orchestration.adapters.ec2 import Ec2Adapter, SubnetFacts, TemplateFacts
from orchestration.adapters.mgn import LaunchConfiguration, SourceServer
from orchestration.cli import main
from orchestration.gitops.requests import request_for
from orchestration.local.api_calls import ApiCallCounter
from orchestration.local.estate import assumed_role_sessions, provision_lane_estates
from orchestration.local.mgn import Boto3Ec2LaunchPort, MgnEmulator, SimulatedClock
from orchestration.manifests.model import EffectiveVm
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.pipeline.preflight import (
    CONVERSION_PROFILE,
    LaneFacts,
    PreflightFinding,
    VmFacts,
    check_vm,
)
from orchestration.preflight_cli import preflight, role_lanes
from tests.conftest import REPO_ROOT
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.support.pipeline import spec_of

__all__ = ["emulated_aws"]

ACCOUNT, REGION = "111122223333", "us-east-1"
WINDOW = re.compile(r"(?m)^(  (?:start|end)): .*$")
# The Azure VNet's addresses: not in any AWS subnet of the estate (10.x).
AZURE_IP = "172.16.4.{}"
NEW_KEY = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


@dataclass
class Wave:
    folder: Path
    vms: list[EffectiveVm]
    mgn: MgnEmulator
    ec2: Any
    iam: Any
    mgn_client: Any
    servers: dict[str, str]  # VM -> source server ID
    templates: dict[str, str]  # VM -> launch template ID

    def vm(self, name: str) -> EffectiveVm:
        return next(vm for vm in self.vms if vm.target_vm_name == name)

    def add_server(self, name: str, **seed: Any) -> None:
        """The VM's source server, replicating since two days (CONTINUOUS), and its launch
        template and settings as Wavepilot's prepare step leaves them."""
        index = len(self.servers) + 1
        seed.setdefault("agent_installed_at", self.mgn.clock.now() - timedelta(days=2))
        seed.setdefault("private_ips", [AZURE_IP.format(index)])
        server = self.mgn.add_source_server(hostname=name, user_provided_id=name, **seed)
        self.servers[name] = server.source_server_id
        self.templates[name] = server.ec2_launch_template_id
        vm = self.vm(name)
        Ec2Adapter(self.ec2, self.iam).set_launch_template(
            server.ec2_launch_template_id,
            instance_type=vm.instance_type,
            subnet_id=vm.subnet_id,
            security_group_ids=vm.security_group_ids,
            iam_instance_profile=vm.iam_instance_profile,
            tags=vm.tags,
        )
        self.mgn_client.update_launch_configuration(
            sourceServerID=server.source_server_id,
            targetInstanceTypeRightSizingMethod="NONE",
            copyPrivateIp=False,
        )

    def findings(self) -> list[PreflightFinding]:
        return preflight(self.vms, role_lanes, datetime.now(UTC))


def _wave_1(folder: Path) -> list[EffectiveVm]:
    text = (REPO_ROOT / "manifests" / "waves" / "wave-1.yaml").read_text()
    start = datetime.now(UTC) + timedelta(days=1)
    times = iter([start.isoformat(), (start + timedelta(hours=6)).isoformat()])
    text = WINDOW.sub(lambda m: f"{m.group(1)}: {next(times)}", text)
    folder.mkdir()
    path = folder / "wave-1.yaml"
    path.write_text(text)
    result = validate_files([ManifestFile(str(path), text)], now=datetime.now(UTC))
    assert result.valid, result.findings
    provision_lane_estates(
        [
            spec_of(request_for(vm, commit="c" * 40, author="Dana <d@contoso.com>"))
            for vm in result.vms
        ]
    )
    return [located.effective_vm for located in result.vms]


@pytest.fixture
def wave(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Wave]:
    vms = _wave_1(tmp_path / "waves")
    session = assumed_role_sessions()(ACCOUNT, REGION)
    ec2, iam = session.client("ec2"), session.client("iam")
    emulator = MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=SimulatedClock(speed=0))
    with emulator.serve() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_MGN", endpoint)
        wiring.reset()
        mgn_client = session.client("mgn", endpoint_url=endpoint)
        yield Wave(tmp_path / "waves", vms, emulator, ec2, iam, mgn_client, {}, {})
    wiring.reset()


def _prepared(wave: Wave, skip: str = "") -> Wave:
    """Every VM's server added and prepared (the estate holds the conversion server's
    instance profile, as MGN's InitializeService leaves it)."""
    for vm in wave.vms:
        if vm.target_vm_name != skip:
            wave.add_server(vm.target_vm_name)
    return wave


WEB, APP = "intranet-web-01", "intranet-app-01"


def _only(findings: list[PreflightFinding]) -> PreflightFinding:
    assert len(findings) == 1, [f.as_json() for f in findings]
    return findings[0]


def test_a_wave_prepared_as_wavepilot_prepares_it_has_no_findings(wave: Wave) -> None:
    assert _prepared(wave).findings() == []


def test_a_launch_template_whose_latest_version_is_not_the_default(wave: Wave) -> None:
    _prepared(wave)
    wave.ec2.create_launch_template_version(
        LaunchTemplateId=wave.templates[WEB], LaunchTemplateData={"InstanceType": "m5.large"}
    )

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (
        WEB,
        "launch-template-default",
        "warning",
    )
    assert "default version 2, not its latest 3" in finding.message


def test_right_sizing_would_override_the_manifests_instance_type(wave: Wave) -> None:
    _prepared(wave)
    wave.mgn_client.update_launch_configuration(
        sourceServerID=wave.servers[APP], targetInstanceTypeRightSizingMethod="BASIC"
    )

    finding = _only(wave.findings())

    assert (finding.vm, finding.check) == (APP, "right-sizing")
    assert "instead of the manifest's instanceType t3.large" in finding.message


def test_a_default_version_without_a_subnet_in_a_non_default_vpc(wave: Wave) -> None:
    _prepared(wave)
    version = wave.ec2.create_launch_template_version(
        LaunchTemplateId=wave.templates[WEB], LaunchTemplateData={"InstanceType": "t3.medium"}
    )["LaunchTemplateVersion"]["VersionNumber"]
    wave.ec2.modify_launch_template(
        LaunchTemplateId=wave.templates[WEB], DefaultVersion=str(version)
    )

    finding = _only(wave.findings())

    assert (finding.vm, finding.check) == (WEB, "subnet-explicit")
    assert f"names no subnet and {wave.vm(WEB).subnet_id} is not in a default VPC" in (
        finding.message
    )


def test_a_copied_private_ip_outside_the_subnets_cidr(wave: Wave) -> None:
    _prepared(wave)
    wave.mgn_client.update_launch_configuration(
        sourceServerID=wave.servers[APP], copyPrivateIp=True
    )
    cidr = wave.ec2.describe_subnets(SubnetIds=[wave.vm(APP).subnet_id])["Subnets"][0]["CidrBlock"]

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (APP, "private-ip", "error")
    assert f"private IP {AZURE_IP.format(2)}, outside subnet" in finding.message
    assert cidr in finding.message


def test_more_network_interfaces_than_mgn_launches(wave: Wave) -> None:
    wave.add_server(WEB, private_ips=[AZURE_IP.format(n) for n in (1, 2, 3)])
    _prepared(wave, skip=WEB)

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (WEB, "network-interfaces", "error")
    assert "reports 3 network interfaces; MGN launches at most 2" in finding.message


def test_a_replication_template_key_that_would_force_a_full_resync(wave: Wave) -> None:
    wave.add_server(WEB)  # replicates with EBS's default key
    wave.mgn.set_replication_template_key(NEW_KEY)  # the team's new key, after it
    _prepared(wave, skip=WEB)

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (WEB, "kms-resync", "warning")
    assert f"replicates with EBS key DEFAULT but {ACCOUNT}/{REGION}'s replication" in (
        finding.message
    )
    assert "forces a full resync" in finding.message


def test_an_initial_sync_that_ends_after_the_window_opens(wave: Wave) -> None:
    # 500 GiB at 1 MB/s: about six days, the window opens tomorrow.
    wave.add_server(
        WEB,
        agent_installed_at=wave.mgn.clock.now(),
        disk_gib=[500],
        replication_bytes_per_second=1_000_000,
    )
    _prepared(wave, skip=WEB)

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (WEB, "replication-lag", "error")
    assert "after the window opens" in finding.message


@pytest.mark.parametrize(
    ("stalled_for", "severity", "text"),
    [
        (timedelta(hours=8), "error", "longer than the 6 h left of its window"),
        (timedelta(minutes=40), "warning", "(more than 15 min)"),
    ],
)
def test_a_replication_lag_against_the_window(
    wave: Wave, stalled_for: timedelta, severity: str, text: str
) -> None:
    """A stall lets the source's writes pile up; once it ends, MGN reports the lag while
    the backlog drains (``lagDuration``)."""
    _prepared(wave)
    wave.mgn.faults.stall_replication(wave.servers[APP])
    wave.mgn.clock.advance(stalled_for)
    wave.mgn.faults.clear_replication_stall(wave.servers[APP])

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (APP, "replication-lag", severity)
    assert text in finding.message


def test_a_stalled_replication(wave: Wave) -> None:
    _prepared(wave)
    wave.mgn.faults.stall_replication(wave.servers[APP])

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (APP, "replication-lag", "error")
    assert "replication is STALLED" in finding.message


@pytest.mark.parametrize(
    ("removed", "problem"), [("role", "has no role"), ("profile", "does not exist")]
)
def test_no_conversion_server_profile_is_one_finding_naming_the_vms(
    wave: Wave, removed: str, problem: str
) -> None:
    _prepared(wave)
    wave.iam.remove_role_from_instance_profile(
        InstanceProfileName=CONVERSION_PROFILE, RoleName=CONVERSION_PROFILE
    )
    if removed == "profile":
        wave.iam.delete_instance_profile(InstanceProfileName=CONVERSION_PROFILE)

    finding = _only(wave.findings())

    assert (finding.check, finding.severity) == ("conversion-iam", "error")
    assert finding.vm == ", ".join(vm.target_vm_name for vm in wave.vms)
    assert f"instance profile {CONVERSION_PROFILE} {problem} in {ACCOUNT}/{REGION}" in (
        finding.message
    )


def test_a_vm_without_a_source_server(wave: Wave) -> None:
    _prepared(wave, skip=APP)

    finding = _only(wave.findings())

    assert (finding.vm, finding.check, finding.severity) == (APP, "source-server", "error")
    assert "is the replication agent installed" in finding.message


# --- the command ----------------------------------------------------------------------


@pytest.fixture
def lane_credentials(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Run the command with credentials of an account (as an operator's profile would)."""

    def use(account: str) -> None:
        issued = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/operator", RoleSessionName="operator"
        )["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", issued["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", issued["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", issued["SessionToken"])
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the first credentials
        aws.reset()

    return use


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_exits_0_on_a_clean_wave(
    wave: Wave, lane_credentials: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    _prepared(wave)
    lane_credentials(ACCOUNT)

    code, out, _ = _run(capsys, "preflight", "wave-1", "--manifests", str(wave.folder))

    assert code == 0, (out, _)
    assert "wave-1: 4 VMs checked, 0 errors, 0 warnings" in out


def test_the_command_exits_1_on_errors_and_reports_json(
    wave: Wave, lane_credentials: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    _prepared(wave)
    wave.mgn_client.update_launch_configuration(
        sourceServerID=wave.servers[APP], copyPrivateIp=True
    )
    lane_credentials(ACCOUNT)

    code, out, _ = _run(
        capsys, "preflight", "wave-1", "--manifests", str(wave.folder), "--format", "json"
    )

    assert code == 1
    document = json.loads(out)
    assert (document["vms"], document["errors"], document["warnings"]) == (4, 1, 0)
    assert [(f["vm"], f["check"]) for f in document["findings"]] == [(APP, "private-ip")]


def test_the_command_refuses_credentials_of_another_account(
    wave: Wave, lane_credentials: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    _prepared(wave)
    lane_credentials("444455556666")

    code, _, err = _run(capsys, "preflight", "wave-1", "--manifests", str(wave.folder))

    assert code == 2
    assert "target is account 111122223333 but these credentials are account 444455556666" in err


def test_the_command_exits_2_for_an_unknown_wave(
    wave: Wave, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "preflight", "wave-9", "--manifests", str(wave.folder))

    assert code == 2
    assert "no valid wave 'wave-9'" in err


def test_reads_are_batched_per_lane_and_at_most_three_calls_per_vm(wave: Wave) -> None:
    _prepared(wave)
    wiring.reset()  # lane clients built from here are counted
    counter = ApiCallCounter().start()
    try:
        assert wave.findings() == []
    finally:
        counter.stop()

    calls = {k: v for k, v in counter.by_operation().items() if not k.startswith("sts.")}
    assert calls == {
        # once per lane (200 IDs per call, pages of 1,000 servers)
        "mgn.DescribeSourceServers": 1,
        "mgn.DescribeReplicationConfigurationTemplates": 1,
        "ec2.DescribeSubnets": 1,
        "ec2.DescribeVpcs": 2,
        "ec2.DescribeLaunchTemplates": 1,
        "iam.GetInstanceProfile": 1,
        # once per VM: MGN and EC2 have no batch read of these
        "mgn.GetLaunchConfiguration": 4,
        "mgn.GetReplicationConfiguration": 4,
        "ec2.DescribeLaunchTemplateVersions": 4,
    }


# --- the pure checks, on facts AWS cannot easily be made to report -------------------------


def _facts(**changes: Any) -> VmFacts:
    start = datetime(2027, 1, 9, 20, tzinfo=UTC)
    server = SourceServer.from_api(
        {
            "sourceServerID": "s-0123456789abcdef0",
            "lifeCycle": {"state": "READY_FOR_TEST"},
            "dataReplicationInfo": {"dataReplicationState": "CONTINUOUS", "lagDuration": "PT5S"},
        }
    )
    values: dict[str, Any] = {
        "vm": "db-01",
        "instance_type": "r6i.large",
        "subnet_id": "subnet-0a1b2c3d",
        "window_start": start,
        "window_end": start + timedelta(hours=6),
        "server": server,
        "launch": LaunchConfiguration("lt-0123", "NONE", copy_private_ip=False),
        "template": TemplateFacts("lt-0123", 2, 2, subnet_id="subnet-0a1b2c3d"),
        "subnet": SubnetFacts("subnet-0a1b2c3d", "vpc-1", "10.20.1.0/24", default_vpc=False),
        "replication_key": "DEFAULT",
    }
    return VmFacts(**{**values, **changes})


LANE = LaneFacts(
    "111122223333/us-east-1", has_default_vpc=False, template_keys=frozenset({"DEFAULT"})
)
BEFORE = datetime(2027, 1, 8, tzinfo=UTC)


def test_pure_checks_find_nothing_in_good_facts() -> None:
    assert check_vm(_facts(), LANE, BEFORE) == []


def test_a_templates_own_private_ip_outside_the_subnet() -> None:
    template = TemplateFacts("lt-0123", 2, 2, subnet_id="subnet-0a1b2c3d", private_ip="10.20.9.4")

    [finding] = check_vm(_facts(template=template), LANE, BEFORE)

    assert finding.check == "private-ip"
    assert "launch template lt-0123 sets private IP 10.20.9.4" in finding.message


def test_no_subnet_in_the_template_and_no_default_vpc_would_fail_the_launch() -> None:
    [finding] = check_vm(_facts(template=TemplateFacts("lt-0123", 2, 2)), LANE, BEFORE)

    assert finding.check == "subnet-explicit"
    assert "has no default VPC, so a launch would fail" in finding.message


def test_right_sizing_after_the_test_launch_is_an_error() -> None:
    server = _facts().server
    assert server is not None
    server = replace(server, lifecycle_state="READY_FOR_CUTOVER")
    launch = LaunchConfiguration("lt-0123", "BASIC", copy_private_ip=False)

    [finding] = check_vm(_facts(server=server, launch=launch), LANE, BEFORE)

    assert (finding.check, finding.severity) == ("right-sizing", "error")
    assert "does not again" in finding.message
