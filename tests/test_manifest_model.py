"""Wave manifest rules beyond single mistakes: defaults, identities, the examples and the CLI."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestration import cli
from orchestration.gitops.requests import request_for
from orchestration.manifests.model import EffectiveVm, HttpHealthCheck, TcpHealthCheck, Wave
from orchestration.manifests.validation import (
    LocatedVm,
    ManifestFile,
    ManifestSet,
    cutover_levels,
    validate_files,
)
from orchestration.migration_request import MigrationRequest, canonical_body
from orchestration.pipeline.spec import MigrationSpec
from orchestration.request_identity import migration_id

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "manifests" / "waves"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

AZURE_ID = (
    "/subscriptions/6f1c2a90-3b7e-4d5a-9c11-2f8e7a4b9d10/resourceGroups/rg-app"
    "/providers/Microsoft.Compute/virtualMachines/{name}"
)

Manifest = dict[str, Any]


def a_vm(name: str, **settings: Any) -> Manifest:
    return {
        "source": {"azureResourceId": AZURE_ID.format(name=name), "userProvidedId": name},
        "targetVmName": name,
        **settings,
    }


def a_wave(name: str = "wave-x", *vms: Manifest, account: str = "111122223333") -> Manifest:
    """A valid wave with one application; defaults set only what every VM must have."""
    return {
        "name": name,
        "environment": "test",
        "target": {"accountId": account, "region": "us-east-1"},
        "cutoverWindow": {"start": "2026-12-05T20:00:00+00:00", "end": "2026-12-06T02:00:00+00:00"},
        "slackChannel": "C07WAVE0001",
        "approvers": ["U07ALICE001"],
        "operators": ["U07BOBOPS01"],
        "defaults": {
            "osFamily": "linux",
            "instanceType": "t3.medium",
            "subnetId": "subnet-0a11b22c",
            "securityGroupIds": ["sg-0a11b22c"],
        },
        "applications": [{"name": "app", "vms": list(vms) or [a_vm("vm-01")]}],
    }


def validate(*waves: Manifest) -> ManifestSet:
    files = [ManifestFile(f"{w['name']}.yaml", yaml.safe_dump(w, sort_keys=False)) for w in waves]
    return validate_files(files, now=NOW)


def effective(*waves: Manifest) -> list[EffectiveVm]:
    result = validate(*waves)
    assert result.findings == [], "\n".join(map(str, result.findings))
    return [vm.effective_vm for vm in result.vms]


def only_vm(wave: Manifest) -> LocatedVm:
    result = validate(wave)
    assert result.findings == [], "\n".join(map(str, result.findings))
    (vm,) = result.vms
    return vm


# --- defaults: wave -> application -> VM ---------------------------------------------------


def test_a_vm_without_settings_of_its_own_gets_the_wave_defaults() -> None:
    (vm,) = effective(a_wave())

    assert (vm.os_family, vm.instance_type, vm.subnet_id, vm.security_group_ids) == (
        "linux",
        "t3.medium",
        "subnet-0a11b22c",
        ["sg-0a11b22c"],
    )


def test_the_nearest_layer_wins_for_scalars() -> None:
    wave = a_wave("wave-x", a_vm("vm-01"), a_vm("vm-02", instanceType="m6i.large"))
    wave["applications"][0]["defaults"] = {"instanceType": "t3.large", "osFamily": "windows"}

    vm_01, vm_02 = effective(wave)

    assert (vm_01.instance_type, vm_01.os_family) == ("t3.large", "windows")
    assert (vm_02.instance_type, vm_02.os_family) == ("m6i.large", "windows")


def test_an_application_default_applies_only_to_its_own_vms() -> None:
    wave = a_wave()
    wave["applications"].append(
        {"name": "other", "defaults": {"instanceType": "r6i.large"}, "vms": [a_vm("vm-02")]}
    )

    vm_01, vm_02 = effective(wave)

    assert (vm_01.app_name, vm_01.instance_type) == ("app", "t3.medium")
    assert (vm_02.app_name, vm_02.instance_type) == ("other", "r6i.large")


def test_lists_on_a_nearer_layer_replace_inherited_lists() -> None:
    wave = a_wave(
        "wave-x",
        a_vm(
            "vm-01", securityGroupIds=["sg-0c33d44e"], healthChecks=[{"type": "tcp", "port": 443}]
        ),
    )
    wave["defaults"]["securityGroupIds"] = ["sg-0a11b22c", "sg-0b22c33d"]
    wave["defaults"]["healthChecks"] = [{"type": "tcp", "port": 22}]
    wave["defaults"]["callbackUrls"] = ["https://hooks.example.com/a"]
    wave["applications"][0]["defaults"] = {"callbackUrls": ["https://hooks.example.com/b"]}

    (vm,) = effective(wave)

    assert vm.security_group_ids == ["sg-0c33d44e"]
    assert vm.health_checks == [TcpHealthCheck.model_validate({"type": "tcp", "port": 443})]
    assert vm.callback_urls == ["https://hooks.example.com/b"]


def test_tags_merge_key_by_key_and_the_nearest_value_wins() -> None:
    wave = a_wave("wave-x", a_vm("vm-01", tags={"Owner": "vm-team", "Tier": "web"}))
    wave["defaults"]["tags"] = {"CostCenter": "4410", "Owner": "wave-team"}
    wave["applications"][0]["defaults"] = {"tags": {"Owner": "app-team", "Application": "app"}}

    (vm,) = effective(wave)

    assert vm.tags == {
        "CostCenter": "4410",
        "Owner": "vm-team",
        "Application": "app",
        "Tier": "web",
    }


def test_test_launch_network_defaults_to_the_effective_cutover_network() -> None:
    wave = a_wave(
        "wave-x",
        a_vm("vm-01"),
        a_vm("vm-02", subnetId="subnet-0b22c33d", securityGroupIds=["sg-0b22c33d"]),
    )

    vm_01, vm_02 = effective(wave)

    assert (vm_01.test_subnet_id, vm_01.test_security_group_ids) == (
        "subnet-0a11b22c",
        ["sg-0a11b22c"],
    )
    # The VM's own subnet, not the wave's: the default is taken after merging.
    assert (vm_02.test_subnet_id, vm_02.test_security_group_ids) == (
        "subnet-0b22c33d",
        ["sg-0b22c33d"],
    )


def test_an_explicit_test_network_is_kept_when_the_vm_changes_its_subnet() -> None:
    wave = a_wave("wave-x", a_vm("vm-01", subnetId="subnet-0b22c33d"))
    wave["defaults"]["testSubnetId"] = "subnet-0a11b99f"
    wave["defaults"]["testSecurityGroupIds"] = ["sg-0a11b99f"]

    (vm,) = effective(wave)

    assert (vm.subnet_id, vm.test_subnet_id) == ("subnet-0b22c33d", "subnet-0a11b99f")
    assert (vm.security_group_ids, vm.test_security_group_ids) == (["sg-0a11b22c"], ["sg-0a11b99f"])


def test_optional_settings_have_safe_defaults() -> None:
    (vm,) = effective(a_wave())

    assert vm.boot_mode == "USE_SOURCE"
    assert vm.os_byol is False
    assert vm.iam_instance_profile is None
    assert vm.tags == {}
    assert vm.health_checks == []
    assert vm.callback_urls == []


def test_wave_level_fields_are_copied_into_every_vm() -> None:
    wave = a_wave("wave-x", a_vm("vm-01"), a_vm("vm-02"))

    for vm in effective(wave):
        assert vm.wave == "wave-x"
        assert vm.app_name == "app"
        assert vm.environment == "test"
        assert (vm.target_account_id, vm.target_region) == ("111122223333", "us-east-1")
        assert vm.cutover_window.start == datetime(2026, 12, 5, 20, tzinfo=UTC)
        assert vm.slack_channel == "C07WAVE0001"
        assert (vm.approvers, vm.operators) == (["U07ALICE001"], ["U07BOBOPS01"])


def test_a_setting_missing_everywhere_is_reported_once_per_vm_with_all_names() -> None:
    wave = a_wave("wave-x", a_vm("vm-01"), a_vm("vm-02", osFamily="linux"))
    del wave["defaults"]

    result = validate(wave)

    assert [f.message for f in result.findings] == [
        "applications[0].vms[0]: no value for osFamily, instanceType, subnetId, "
        "securityGroupIds: set it on the VM, in its application's defaults or in the wave's "
        "defaults",
        "applications[0].vms[1]: no value for instanceType, subnetId, securityGroupIds: "
        "set it on the VM, in its application's defaults or in the wave's defaults",
    ]
    assert result.vms == []


def test_a_missing_setting_is_reported_together_with_other_mistakes() -> None:
    wave = a_wave()
    del wave["defaults"]["instanceType"]
    wave["slackChannel"] = "migrations"

    messages = [f.message for f in validate(wave).findings]

    assert len(messages) == 2
    assert messages[0].startswith("slackChannel: 'migrations' is not a Slack channel ID")
    assert messages[1].startswith("applications[0].vms[0]: no value for instanceType:")


def test_the_example_wave_1_vms_are_merged_as_documented() -> None:
    result = _validate_examples()
    vms = {
        vm.effective_vm.target_vm_name: vm.effective_vm
        for vm in result.vms
        if vm.effective_vm.wave == "wave-1"
    }

    web = vms["intranet-web-01"]
    assert web.tags == {
        "CostCenter": "4410",
        "MigrationWave": "wave-1",
        "Environment": "test",
        "Application": "intranet",
        "Tier": "web",
    }
    assert web.security_group_ids == ["sg-0a11b22c", "sg-0c33d44e"]
    assert web.test_subnet_id == "subnet-0a11b99f"  # set on the wave, not derived
    assert web.test_security_group_ids == ["sg-0a11b22c", "sg-0c33d44e"]  # derived from the VM
    assert web.iam_instance_profile == "wavepilot-ssm-instance"
    reporting = vms["rpt-ssrs-01"]
    assert (reporting.os_family, reporting.boot_mode) == ("windows", "UEFI")
    https_check = {"type": "http", "scheme": "https", "port": 443, "path": "/ReportServer"}
    assert reporting.health_checks[1] == HttpHealthCheck.model_validate(
        {**https_check, "expectedStatus": 401}
    )


# --- migration IDs -------------------------------------------------------------------------


def test_migration_id_is_pinned_so_published_requests_stay_idempotent() -> None:
    # A change here re-publishes every VM as new: only change it deliberately.
    result = _validate_examples()
    ids = {vm.effective_vm.target_vm_name: vm.migration_id for vm in result.vms}

    assert ids["intranet-web-01"] == "mig-5d50e40f81009ce3"


def test_migration_id_ignores_the_case_of_the_azure_resource_id() -> None:
    lower = a_wave()
    upper = a_wave()
    upper["applications"][0]["vms"][0]["source"]["azureResourceId"] = AZURE_ID.format(
        name="vm-01"
    ).upper()

    assert only_vm(lower).migration_id == only_vm(upper).migration_id
    assert migration_id("w", "/SUBSCRIPTIONS/X") == migration_id("w", "/subscriptions/x")


def test_migration_id_differs_per_wave_for_the_same_vm() -> None:
    assert only_vm(a_wave("wave-a")).migration_id != only_vm(a_wave("wave-b")).migration_id


def test_migration_id_does_not_change_with_the_vm_settings() -> None:
    changed = a_wave("wave-x", a_vm("vm-01", instanceType="m6i.large", targetVmName="renamed"))

    assert only_vm(changed).migration_id == only_vm(a_wave()).migration_id


def test_every_example_vm_has_its_own_migration_id() -> None:
    result = _validate_examples()

    assert len({vm.migration_id for vm in result.vms}) == len(result.vms) == 25


# --- revisions -----------------------------------------------------------------------------

Edit = Callable[[Manifest], None]


def _vm0(wave: Manifest) -> Manifest:
    vm: Manifest = wave["applications"][0]["vms"][0]
    return vm


def _set_vm(**settings: Any) -> Edit:
    return lambda wave: _vm0(wave).update(settings)


def _set_defaults(**settings: Any) -> Edit:
    return lambda wave: wave["defaults"].update(settings)


def _set_app_defaults(**settings: Any) -> Edit:
    return lambda wave: wave["applications"][0].setdefault("defaults", {}).update(settings)


def _set(*path: str | int, value: Any) -> Edit:
    def edit(wave: Manifest) -> None:
        node: Any = wave
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


CHANGES_EFFECTIVE_SPEC: dict[str, Edit] = {
    "vm instanceType": _set_vm(instanceType="t3.large"),
    "wave default subnet": _set_defaults(subnetId="subnet-0b22c33d"),
    "application default tag": _set_app_defaults(tags={"Owner": "app-team"}),
    "vm tag added": _set_vm(tags={"Owner": "someone-else"}),
    "security group order": _set_defaults(securityGroupIds=["sg-0b22c33d", "sg-0a11b22c"]),
    "health check": _set_vm(healthChecks=[{"type": "tcp", "port": 22}]),
    "boot mode": _set_vm(bootMode="UEFI"),
    "os byol": _set_vm(osByol=True),
    "test subnet": _set_vm(testSubnetId="subnet-0a11b99f"),
    "cutover window end": _set("cutoverWindow", "end", value="2026-12-06T03:00:00+00:00"),
    "approvers": _set("approvers", value=["U07ALICE001", "U07CAROL001"]),
    "target region": _set("target", "region", value="eu-west-1"),
    "environment": _set("environment", value="prod"),
    "application name": _set("applications", 0, "name", value="renamed-app"),
    "source hostname": lambda wave: _vm0(wave)["source"].update(hostname="vm-01.contoso.local"),
}

KEEPS_EFFECTIVE_SPEC: dict[str, Edit] = {
    "wave description": _set("description", value="now with a description"),
    "application description": _set("applications", 0, "description", value="the app"),
    "empty application defaults": _set_app_defaults(),
    "default written explicitly": _set_vm(bootMode="USE_SOURCE", osByol=False),
    "test network written explicitly": _set_vm(
        testSubnetId="subnet-0a11b22c", testSecurityGroupIds=["sg-0a11b22c"]
    ),
    "setting moved from wave to vm": lambda wave: _vm0(wave).update(
        instanceType=wave["defaults"].pop("instanceType")
    ),
    "setting moved from wave to application": lambda wave: _set_app_defaults(
        osFamily=wave["defaults"].pop("osFamily")
    )(wave),
    "another vm added": lambda wave: wave["applications"][0]["vms"].append(a_vm("vm-02")),
}


def _revision_after(edit: Edit) -> str:
    wave = copy.deepcopy(a_wave())
    edit(wave)
    result = validate(wave)
    assert result.errors == [], "\n".join(map(str, result.findings))
    (vm,) = [vm for vm in result.vms if vm.effective_vm.target_vm_name == "vm-01"]
    return vm.revision


@pytest.mark.parametrize("edit", CHANGES_EFFECTIVE_SPEC.values(), ids=CHANGES_EFFECTIVE_SPEC)
def test_revision_changes_when_an_effective_field_changes(edit: Edit) -> None:
    assert _revision_after(edit) != _revision_after(lambda wave: None)


@pytest.mark.parametrize("edit", KEEPS_EFFECTIVE_SPEC.values(), ids=KEEPS_EFFECTIVE_SPEC)
def test_revision_stays_when_the_effective_vm_is_the_same(edit: Edit) -> None:
    assert _revision_after(edit) == _revision_after(lambda wave: None)


def test_revision_ignores_comments_layout_and_tag_order() -> None:
    wave = a_wave()
    wave["defaults"]["tags"] = {"A": "1", "B": "2"}
    reordered = copy.deepcopy(wave)
    reordered["defaults"]["tags"] = {"B": "2", "A": "1"}
    block = yaml.safe_dump(wave, sort_keys=False)
    flow = "# a comment\n" + yaml.safe_dump(reordered, sort_keys=True, default_flow_style=True)

    revisions = {
        vm.revision
        for text in (block, flow)
        for vm in validate_files([ManifestFile("wave-x.yaml", text)], now=NOW).vms
    }

    (revision,) = revisions
    assert re.fullmatch(r"[0-9a-f]{16}", revision)


# --- cross-file rules that must not over-fire ----------------------------------------------


def test_the_same_target_name_in_two_accounts_is_fine() -> None:
    first = a_wave("wave-a", account="111122223333")
    second = a_wave("wave-b", a_vm("vm-02", targetVmName="vm-01"), account="444455556666")

    result = validate(first, second)

    assert result.findings == []


def test_target_names_in_one_account_are_compared_case_insensitively() -> None:
    first = a_wave("wave-a")
    second = a_wave("wave-b", a_vm("vm-02", targetVmName="VM-01"))

    (finding,) = validate(first, second).findings

    assert finding.path == "wave-b.yaml"
    assert finding.message.startswith(
        "targetVmName in account 111122223333: 'VM-01' is already used by 'vm-01' in wave 'wave-a'"
    )


def test_vms_found_by_hostname_or_user_id_do_not_collide_on_source_server_id() -> None:
    hostname_only = a_vm("vm-02")
    hostname_only["source"] = {
        "azureResourceId": AZURE_ID.format(name="vm-02"),
        "hostname": "vm-02.contoso.local",
    }

    assert validate(a_wave("wave-x", a_vm("vm-01"), hostname_only)).findings == []


# --- the example manifests -----------------------------------------------------------------


def _validate_examples() -> ManifestSet:
    files = [
        ManifestFile(path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(EXAMPLES.glob("*.yaml"))
    ]
    return validate_files(files, now=NOW)


def test_the_four_example_manifests_are_valid_with_25_vms() -> None:
    result = _validate_examples()

    assert result.findings == []
    assert sorted(result.waves) == ["wave-1", "wave-2", "wave-3", "wave-4"]
    assert len(result.vms) == 25
    assert {vm.path for vm in result.vms} == {f"manifests/waves/wave-{n}.yaml" for n in range(1, 5)}


def test_each_example_vm_knows_the_line_it_is_written_on() -> None:
    result = _validate_examples()
    web = next(vm for vm in result.vms if vm.effective_vm.target_vm_name == "intranet-web-01")

    lines = (EXAMPLES / "wave-1.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[web.line - 1].strip() == "- source:"
    assert "targetVmName: intranet-web-01" in lines[web.position("targetVmName")[0] - 1]


# --- wavepilot validate --------------------------------------------------------------------
# Files are written from tests/corpus/valid/minimal.yaml, so line numbers can be read there:
# line 2 is the name, line 5 the accountId, line 9 the end of the cutover window.

MINIMAL = REPO / "tests" / "corpus" / "valid" / "minimal.yaml"
PAST_WINDOW = (
    ("start: 2026-12-05T20:00:00+00:00", "start: 2026-11-01T20:00:00Z"),
    ("end: 2026-12-06T02:00:00+00:00", "end: 2026-11-02T02:00:00Z"),
)


def _write(
    folder: Path, stem: str, *, name: str | None = None, edits: tuple[tuple[str, str], ...] = ()
) -> Path:
    """A copy of the minimal wave named ``name`` (default: the stem), its VM named after it."""
    text = MINIMAL.read_text(encoding="utf-8").replace("name: minimal", f"name: {name or stem}")
    text = text.replace("vm-01", f"vm-{stem}")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_now", lambda: NOW)


@pytest.fixture
def no_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.mark.usefixtures("fixed_clock", "no_github")
def test_cli_validates_the_examples_by_default_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)

    status = cli.main(["validate"])

    out, err = capsys.readouterr()
    assert status == 0
    assert out == "ok: 4 files, 4 waves, 25 VMs valid\n"
    assert err == ""


@pytest.mark.usefixtures("fixed_clock", "no_github")
def test_cli_prints_each_finding_as_path_line_col_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "wave-a")
    _write(tmp_path, "wave-b", edits=(('"111122223333"', '"1111"'),))

    status = cli.main(["validate", "."])

    out, err = capsys.readouterr()
    assert status == 1
    assert out.splitlines() == [
        "wave-b.yaml:5:14: target.accountId: '1111' is not an AWS account ID of 12 digits "
        "(for example '123456789012')",
        "1 error, 0 warnings in 2 files",
    ]
    assert err == ""


@pytest.mark.usefixtures("fixed_clock", "no_github")
def test_cli_exits_0_with_warnings_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "wave-a", edits=PAST_WINDOW)

    status = cli.main(["validate", "wave-a.yaml"])

    out, _ = capsys.readouterr()
    assert status == 0
    assert out.splitlines() == [
        "wave-a.yaml:9:8: warning: cutoverWindow.end: the window closed at "
        "2026-11-02T02:00:00+00:00, it is already in the past",
        "ok: 1 file, 1 wave, 1 VM valid (1 warning)",
    ]


@pytest.mark.usefixtures("no_github")
def test_cli_exits_2_for_a_missing_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "wave-a")

    status = cli.main(["validate", "wave-a.yaml", "no-such-folder"])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == "wavepilot validate: no such file or folder: no-such-folder\n"


@pytest.mark.usefixtures("no_github")
def test_cli_exits_2_for_a_folder_without_wave_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "waves").mkdir()
    (tmp_path / "waves" / "README.md").write_text("not a wave\n", encoding="utf-8")

    status = cli.main(["validate", "waves"])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == "wavepilot validate: no wave files (*.yaml, *.yml) in waves\n"


@pytest.mark.usefixtures("fixed_clock", "no_github")
def test_cli_reports_a_file_that_is_not_utf8_and_checks_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    _write(tmp_path, "wave-a", name="wave-z")

    status = cli.main(["validate", "."])

    out, _ = capsys.readouterr()
    assert status == 1
    assert out.splitlines() == [
        "latin1.yaml:1:10: not UTF-8 text (invalid continuation byte at byte 9): "
        "if it is text, save it as UTF-8",
        "wave-a.yaml:2:7: name: the wave is called 'wave-z' but its file is 'wave-a': "
        "rename one so they match",
        "2 errors, 0 warnings in 2 files",
    ]


@pytest.mark.usefixtures("fixed_clock")
def test_cli_in_github_actions_adds_an_annotation_after_each_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "wave-a", edits=PAST_WINDOW)
    _write(tmp_path, "wrong-name", name="wave-b")

    status = cli.main(["validate", "."])

    out, _ = capsys.readouterr()
    assert status == 1
    assert out.splitlines() == [
        "wave-a.yaml:9:8: warning: cutoverWindow.end: the window closed at "
        "2026-11-02T02:00:00+00:00, it is already in the past",
        "::warning file=wave-a.yaml,line=9,col=8,title=wavepilot validate::cutoverWindow.end: "
        "the window closed at 2026-11-02T02:00:00+00:00, it is already in the past",
        "wrong-name.yaml:2:7: name: the wave is called 'wave-b' but its file is 'wrong-name': "
        "rename one so they match",
        "::error file=wrong-name.yaml,line=2,col=7,title=wavepilot validate::name: the wave is "
        "called 'wave-b' but its file is 'wrong-name': rename one so they match",
        "1 error, 1 warning in 2 files",
    ]


@pytest.mark.usefixtures("fixed_clock")
def test_cli_annotations_escape_commas_and_colons_in_the_file_property(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "q1,eu:west"
    folder.mkdir()
    _write(folder, "wave-a", name="wave-b")

    status = cli.main(["validate", "q1,eu:west"])

    out, _ = capsys.readouterr()
    assert status == 1
    assert out.splitlines()[1] == (
        "::error file=q1%2Ceu%3Awest/wave-a.yaml,line=2,col=7,title=wavepilot validate::name: "
        "the wave is called 'wave-b' but its file is 'wave-a': rename one so they match"
    )


@pytest.mark.usefixtures("fixed_clock", "no_github")
def test_cli_without_github_actions_prints_no_annotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "wave-a", name="wave-b")

    status = cli.main(["validate", "wave-a.yaml"])

    out, _ = capsys.readouterr()
    assert status == 1
    assert not any(line.startswith("::") for line in out.splitlines())


def test_application_names_are_unique_within_a_wave() -> None:
    text = (MINIMAL).read_text()
    app_block = text[text.index("  - name:") :]
    doubled = text + app_block.replace("targetVmName: ", "targetVmName: twin-").replace(
        "virtualMachines/", "virtualMachines/twin-"
    ).replace("userProvidedId: ", "userProvidedId: twin-")

    result = validate_files([ManifestFile("minimal.yaml", doubled)], now=NOW)

    assert [f.message for f in result.errors] == [
        "applications[1].name: application 'app' is already defined in this wave: "
        "merge the two or rename one"
    ]


def test_a_key_valid_elsewhere_is_named_as_misplaced_not_misspelt() -> None:
    text = MINIMAL.read_text().replace("environment: test", "environment: test\ntargetVmName: x")

    result = validate_files([ManifestFile("minimal.yaml", text)], now=NOW)

    assert [f.message for f in result.errors] == [
        "targetVmName: key 'targetVmName' is not allowed at this level"
    ]


# --- disk sizes (for the rehearsal only) ---------------------------------------------------

# Revisions computed before `source.disksGiB` existed: a VM's revision must not move with it.
REVISION_OF_VM_01 = "6d8808a288588ea4"  # a_wave()'s vm-01
REVISION_OF_INTRANET_WEB_01 = "b611b137dc509c44"  # manifests/waves/wave-1.yaml
REVISION_OF_INTRANET_DB_01 = "94ddd2113ccb7516"


def test_disk_sizes_reach_the_effective_vm_but_neither_its_revision_nor_its_request() -> None:
    without = only_vm(a_wave())
    with_disks = only_vm(
        a_wave("wave-x", a_vm("vm-01", source={**a_vm("vm-01")["source"], "disksGiB": [64, 2]}))
    )

    assert with_disks.effective_vm.source.disks_gib == [64, 2]
    assert without.effective_vm.source.disks_gib is None
    assert without.revision == with_disks.revision == REVISION_OF_VM_01
    assert "disksGiB" not in json.dumps(with_disks.effective_vm_json)
    published = [
        canonical_body(request_for(vm, commit="3f2a" + "0" * 36, author="someone"))
        for vm in (without, with_disks)
    ]
    assert published[0] == published[1]


def test_the_example_vms_with_disk_sizes_keep_their_revisions() -> None:
    vms = {vm.effective_vm.target_vm_name: vm for vm in _validate_examples().vms}

    assert vms["intranet-web-01"].effective_vm.source.disks_gib == [64]
    assert vms["intranet-db-01"].effective_vm.source.disks_gib == [128, 512]
    assert vms["intranet-web-01"].revision == REVISION_OF_INTRANET_WEB_01
    assert vms["intranet-db-01"].revision == REVISION_OF_INTRANET_DB_01


@pytest.mark.parametrize(
    "disks",
    [[], [0], [65537], [1] * 65, ["64"], [1.5], 64],
    ids=["none", "zero", "too-large", "65-disks", "string", "float", "not-a-list"],
)
def test_disk_sizes_are_1_to_64_disks_of_1_to_65536_gib(disks: Any) -> None:
    vm = a_vm("vm-01")
    vm["source"]["disksGiB"] = disks

    (finding,) = validate(a_wave("wave-x", vm)).findings

    assert "disksGiB" in finding.message


# --- finalizeAfter: the hold before FinalizeCutover ------------------------------------------


def test_finalize_after_is_held_per_application_over_the_wave() -> None:
    wave = a_wave()
    wave["finalizeAfter"] = "24h"
    wave["applications"].append(
        {"name": "db", "finalizeAfter": "90m", "vms": [a_vm("db-01")]},
    )
    wave["applications"].append({"name": "now", "finalizeAfter": "0", "vms": [a_vm("now-01")]})

    held = {vm.app_name: vm.finalize_after_minutes for vm in effective(wave)}

    assert held == {"app": 24 * 60, "db": 90, "now": 0}


def test_without_finalize_after_a_cutover_is_finalized_at_once_and_the_vm_reads_the_same() -> None:
    (vm,) = effective(a_wave())

    assert vm.finalize_after_minutes == 0
    assert "finalizeAfterMinutes" not in vm.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("31d", "finalizeAfter: 31d is longer than 30d"),
        ("24 hours", "finalizeAfter: String should match pattern"),
        ("-1h", "finalizeAfter: String should match pattern"),
    ],
)
def test_a_bad_finalize_after_is_reported_at_its_line(value: str, expected: str) -> None:
    wave = a_wave()
    wave["finalizeAfter"] = value

    result = validate(wave)

    assert result.vms == []
    [finding] = result.findings
    assert expected in finding.message, finding.message
    assert finding.line > 1


# --- onFailure and parkFor: park a failure before the cutover for a person ---------------------


def test_on_failure_park_is_chosen_per_application_over_the_wave_with_its_park_for() -> None:
    wave = a_wave()
    wave["onFailure"] = "park"
    wave["applications"].append(
        {"name": "db", "parkFor": "4h", "vms": [a_vm("db-01")]},
    )
    wave["applications"].append(
        {"name": "web", "onFailure": "rollback", "parkFor": "4h", "vms": [a_vm("web-01")]}
    )

    chosen = {vm.app_name: (vm.on_failure, vm.park_for_minutes) for vm in effective(wave)}

    # parkFor is 24h unless set; a VM that rolls back parks for no time at all
    assert chosen == {"app": ("park", 24 * 60), "db": ("park", 4 * 60), "web": ("rollback", 0)}


def test_without_on_failure_a_failure_rolls_back_and_the_vm_reads_the_same() -> None:
    (vm,) = effective(a_wave())

    assert (vm.on_failure, vm.park_for_minutes) == ("rollback", 0)
    dumped = vm.model_dump(mode="json", by_alias=True)
    assert "onFailure" not in dumped
    assert "parkForMinutes" not in dumped


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("onFailure", "retry", "onFailure: should be 'rollback' or 'park', got 'retry'"),
        ("parkFor", "8d", "parkFor: 8d is longer than 7d"),
        ("parkFor", "0", "parkFor: 0 would roll back at once"),
        ("parkFor", "a day", "parkFor: String should match pattern"),
    ],
)
def test_a_bad_on_failure_or_park_for_is_reported_at_its_line(
    key: str, value: str, expected: str
) -> None:
    wave = a_wave()
    wave[key] = value

    result = validate(wave)

    assert result.vms == []
    [finding] = result.findings
    assert expected in finding.message, finding.message
    assert finding.line > 1


# --- dependsOn: the order of cutovers within a wave -------------------------------------------


def a_wave_of_apps(*apps: tuple[str, list[str] | None]) -> Manifest:
    """A valid wave with one VM per application; ``None`` leaves ``dependsOn`` out."""
    wave = a_wave()
    wave["applications"] = [
        {"name": name, **({"dependsOn": deps} if deps is not None else {}), "vms": [a_vm(name)]}
        for name, deps in apps
    ]
    return wave


def test_depends_on_reaches_the_vms_of_the_application_as_cutover_after() -> None:
    wave = a_wave_of_apps(("db", None), ("cache", []), ("app", ["db", "cache"]))

    vms = {vm.app_name: vm for vm in effective(wave)}

    assert vms["app"].cutover_after == ["db", "cache"]
    assert vms["app"].model_dump(mode="json", by_alias=True)["cutoverAfter"] == ["db", "cache"]
    assert vms["db"].cutover_after == vms["cache"].cutover_after == []


def test_without_depends_on_a_vm_reads_the_same_and_keeps_its_revision() -> None:
    vm = only_vm(a_wave())

    assert "cutoverAfter" not in vm.effective_vm_json
    assert vm.revision == REVISION_OF_VM_01
    empty = a_wave()
    empty["applications"][0]["dependsOn"] = []
    assert only_vm(empty).revision == REVISION_OF_VM_01


def _findings(wave: Manifest) -> list[tuple[int, str]]:
    text = yaml.safe_dump(wave, sort_keys=False)
    result = validate_files([ManifestFile("wave-x.yaml", text)], now=NOW)
    lines = text.splitlines()
    # Each finding's line is the line of the dependsOn entry it names.
    found = []
    for finding in result.findings:
        assert finding.path == "wave-x.yaml"
        found.append((finding.line, finding.message))
        assert lines[finding.line - 1].strip().startswith("- "), lines[finding.line - 1]
    return found


def _line_of(wave: Manifest, app: str, dependency: str) -> int:
    text = yaml.safe_dump(wave, sort_keys=False).splitlines()
    start = text.index(f"- name: {app}")
    return next(
        n for n, line in enumerate(text, 1) if n > start and line.strip() == f"- {dependency}"
    )


def test_an_unknown_application_is_an_error_at_its_line_with_a_hint() -> None:
    wave = a_wave_of_apps(("database", None), ("app", ["databse"]))

    [(line, message)] = _findings(wave)

    assert line == _line_of(wave, "app", "databse")
    assert message == (
        "applications[1].dependsOn[0]: no application 'databse' in wave 'wave-x' "
        "(did you mean 'database'?): dependsOn names applications of the same wave"
    )


def test_an_application_depending_on_itself_or_twice_on_another_is_an_error() -> None:
    wave = a_wave_of_apps(("db", None), ("app", ["app", "db", "db"]))

    findings = _findings(wave)

    assert [message for _, message in findings] == [
        "applications[1].dependsOn[0]: application 'app' cannot depend on itself",
        "applications[1].dependsOn[2]: 'db' is listed twice in dependsOn",
    ]


def test_a_cycle_is_an_error_that_names_it() -> None:
    wave = a_wave_of_apps(("a", ["b"]), ("b", ["c"]), ("c", ["a"]), ("d", ["a"]))

    [(line, message)] = _findings(wave)

    assert line == _line_of(wave, "c", "a")
    assert message == (
        "applications[2].dependsOn[0]: dependsOn makes a cycle, a -> b -> c -> a (each depends "
        "on the next): none of these could ever cut over; remove one dependency"
    )
    assert validate(wave).valid is False


def test_two_applications_depending_on_each_other_make_a_cycle() -> None:
    wave = a_wave_of_apps(("web", ["api"]), ("api", ["web"]))

    [(_, message)] = _findings(wave)

    assert "dependsOn makes a cycle, web -> api -> web" in message


def test_depends_on_names_applications_of_the_same_wave_only() -> None:
    other = a_wave("wave-y", a_vm("db-01"))
    other["applications"][0]["name"] = "db"
    wave = a_wave_of_apps(("app", ["db"]))

    result = validate(other, wave)

    [finding] = result.errors
    assert finding.path == "wave-x.yaml"
    assert "no application 'db' in wave 'wave-x'" in finding.message


def test_cutover_levels_follow_the_dependencies() -> None:
    wave = a_wave_of_apps(
        ("web", ["api"]), ("api", ["db", "cache"]), ("db", None), ("cache", []), ("batch", ["db"])
    )
    assert validate(wave).valid

    assert cutover_levels(Wave.model_validate(wave)) == [["db", "cache"], ["api", "batch"], ["web"]]
    assert cutover_levels(Wave.model_validate(a_wave())) == []


def test_the_pipeline_spec_carries_cutover_after_from_the_published_request() -> None:
    result = validate(a_wave_of_apps(("db", None), ("app", ["db"])))
    specs = {}
    for vm in result.vms:
        request = request_for(vm, commit="3f2a" + "0" * 36, author="someone")
        # As the pipeline receives it: the published JSON body, parsed again.
        received = MigrationRequest.model_validate_json(canonical_body(request))
        specs[vm.effective_vm.app_name] = MigrationSpec.from_request(received, vm.revision, "c")

    assert specs["app"].cutover_after == ["db"]
    assert specs["db"].cutover_after == []
