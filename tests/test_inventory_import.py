"""`wavepilot import`: inventories (CMF, MGN import CSV, Azure JSON) to wave manifests.

Each format is imported, its placeholders are filled the way a team would, and the result
must pass the project's own validator. Nothing here touches the network.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from orchestration import cli
from orchestration.cli_errors import UsageError
from orchestration.inventory.command import plan_import, read_inventory_text
from orchestration.inventory.emit import scalar
from orchestration.inventory.sources import MAX_INVENTORY_BYTES, looks_like_formula
from orchestration.manifests.validation import ManifestFile, ManifestSet, validate_files
from tests.support.waves import azure_id

DATA = Path(__file__).parent / "data" / "inventory"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

MGN_HEADER = (
    "mgn:account-id,mgn:region,mgn:wave:name,mgn:app:name,mgn:app:description,"
    "mgn:server:user-provided-id,mgn:server:platform,mgn:server:fqdn-for-action-framework,"
    "mgn:launch:instance-type,mgn:launch:iam-instance-profile:name,mgn:launch:nic:0:subnet-id,"
    "mgn:launch:nic:0:security-group-id:1,mgn:launch:nic:0:security-group-id:0,"
    "mgn:launch:nic:0:private-ip:0,mgn:launch:tag:instance:Name,mgn:launch:tag:instance:Owner"
)
MGN_ROWS = (
    "444455556666,eu-west-1,Wave 7,crm,Customer CRM,crm-web-01,WINDOWS,crm-web-01.corp.example,"
    "m6i.large,crm-profile,subnet-0e31f42a,sg-0e31f42b,sg-0e31f42a,,CRM-Web-01,crm-team",
    "444455556666,eu-west-1,Wave 7,crm,Customer CRM,crm-db-01,WINDOWS,crm-db-01.corp.example,"
    "r6i.large,crm-profile,subnet-0e31f42a,,sg-0e31f42a,10.0.0.5,,crm-team",
)


def _azure_vm(
    name: str, group: str, os_type: str, size: str, disks: list[int]
) -> dict[str, object]:
    return {
        "id": azure_id(name, group),
        "name": name,
        "location": "westeurope",
        "resourceGroup": group,
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {
            "osDisk": {"osType": os_type, "diskSizeGb": disks[0]},
            "dataDisks": [{"lun": i, "diskSizeGb": size_gb} for i, size_gb in enumerate(disks[1:])],
        },
        "privateIps": "10.1.0.4",
        "tags": {"CostCenter": "4410", "Tier": "web" if "web" in name.lower() else "db"},
    }


AZURE_VMS = [
    _azure_vm("Shop-Web-01", "rg-shop-prod", "Linux", "Standard_D2s_v3", [64]),
    _azure_vm("shop-db-01", "rg-shop-prod", "Linux", "Standard_E4s_v5", [128, 512]),
    _azure_vm("ledger-01", "RG-Ledger", "Windows", "Standard_D4s_v5", [128]),
]

_RESOURCE_IDS = (azure_id(f"filled-{n:03d}", "rg-filled") for n in itertools.count())
_FILLS = {
    "start": "2027-01-09T21:00:00+01:00",
    "end": "2027-01-10T05:00:00+01:00",
    "slackChannel": "C07WAVE0007",
    "approvers": "[S07MIGLEADS]",
    "operators": "[U07BOBOPS01]",
    "environment": "prod",
    "accountId": '"444455556666"',
    "region": "eu-west-1",
    "instanceType": "m6i.large",
    "subnetId": "subnet-0a11b22c",
    "testSubnetId": "subnet-0a11b99f",
    "securityGroupIds": "[sg-0a11b22c]",
    "testSecurityGroupIds": "[sg-0a11b99f]",
}
_PLACEHOLDER_LINE = re.compile(r"^(\s*)([A-Za-z]+): \[?CHANGE-ME\]?(?:  #.*)?$", re.MULTILINE)


def fill(text: str) -> str:
    """What a team does with an imported wave: replace every CHANGE-ME with a real value."""

    def real(match: re.Match[str]) -> str:
        indent, key = match.group(1), match.group(2)
        value = next(_RESOURCE_IDS) if key == "azureResourceId" else _FILLS[key]
        return f"{indent}{key}: {value}"

    filled = _PLACEHOLDER_LINE.sub(real, text)
    assert "CHANGE-ME" not in filled.split("\n", 3)[3]  # only the header's advice names it
    return filled


def _validate(files: dict[Path, str]) -> ManifestSet:
    return validate_files([ManifestFile(str(path), text) for path, text in files.items()], now=NOW)


def _effective(result: ManifestSet) -> dict[str, dict[str, object]]:
    return {vm.effective_vm.target_vm_name: vm.effective_vm_json for vm in result.vms}


def test_cmf_server_list_gives_one_wave_per_wave_that_validates_once_filled(
    tmp_path: Path,
) -> None:
    text = read_inventory_text(DATA / "cmf-server-list.csv")
    result = plan_import("cmf-server-list.csv", text, tmp_path)

    assert [path.name for path in result.files] == ["wave-1.yaml", "wave-2.yaml", "wave-3.yaml"]
    assert result.problems == ()
    wave_1 = result.files[tmp_path / "wave-1.yaml"]
    assert wave_1.startswith("# yaml-language-server: $schema=../wave.schema.json\n")
    assert "name: wave-1\ndescription: Wave 1\nenvironment: dev\n" in wave_1
    assert '  accountId: "111122223333"\n  region: us-east-1\n' in wave_1
    # Shared by both VMs: lifted to the wave's defaults, tags key by key, numbers quoted.
    assert "defaults:\n  osFamily: windows\n  instanceType: m4.large\n" in wave_1
    assert '  tags:\n    BU: IT\n    CostCenter: "123"\n    Location: US\n' in wave_1
    # The sample's placeholder IDs are not copied, nor replaced by made-up ones.
    assert "  subnetId: CHANGE-ME  # inventory: 'subnet-1111'\n" in wave_1
    assert "sg-1111" not in wave_1.replace("# inventory: 'sg-1111", "")
    assert (
        "      - source:  # from cmf-server-list.csv row 3\n"
        "          azureResourceId: CHANGE-ME  # CHANGE-ME: the Azure VM's resource ID"
    ) in wave_1
    assert "          hostname: server2.example.local\n        targetVmName: server2\n" in wave_1

    messages = [str(value) for value in result.drafts[tmp_path / "wave-1.yaml"][0].to_fill]
    assert (
        "cmf-server-list.csv:2: subnet_IDs: 'subnet-1111' will not validate: 'subnet-1111' is "
        "not a subnet ID ('subnet-' and 8 or 17 hex digits) (for example 'subnet-0a1b2c3d')"
    ) in messages
    assert "cmf-server-list.csv:2: slackChannel: (not in the inventory) will not validate: " in (
        "\n".join(messages)
    )
    wave_3 = result.drafts[tmp_path / "wave-3.yaml"][0]
    assert [str(c) for c in wave_3.warnings] == [
        "cmf-server-list.csv:9: warning: server_fqdn: 'server6.example.local' is also row 7's: "
        "MGN finds a server by hostname only when exactly one matches"
    ]

    as_is = _validate(result.files)
    assert not as_is.valid
    assert any("slackChannel" in finding.message for finding in as_is.errors)

    filled = _validate({path: fill(text) for path, text in result.files.items()})
    assert filled.errors == []
    vms = _effective(filled)
    assert sorted(vms) == [f"server{n}" for n in range(1, 9)]
    assert vms["server7"]["osFamily"] == "linux"
    assert vms["server6"]["osFamily"] == "windows"
    assert vms["server1"]["instanceType"] == "m4.large"
    assert vms["server1"]["tags"] == {"BU": "IT", "CostCenter": "123", "Location": "US"}
    assert vms["server3"]["source"]["hostname"] == "server3.example.local"  # type: ignore[index]
    assert vms["server3"]["appName"] == "app02-sales"
    assert vms["server3"]["targetRegion"] == "us-west-2"


def test_cmf_intake_with_a_byte_order_mark_and_a_trailing_tag_separator(tmp_path: Path) -> None:
    raw = (DATA / "cmf-intake-minimal.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # as spreadsheets export it
    result = plan_import(
        "intake.csv", read_inventory_text(DATA / "cmf-intake-minimal.csv"), tmp_path
    )

    assert list(result.files) == [tmp_path / "unittest-wave-1.yaml"]
    text = result.files[tmp_path / "unittest-wave-1.yaml"]
    assert "name: unittest-wave-1\ndescription: Unittest Wave 1\n" in text
    assert "  - name: unit-testing-app-1\n    description: Unit testing App 1\n" in text
    assert "          hostname: unittest1.testdomain.local\n" in text
    assert "        osFamily: linux\n" in text or "  osFamily: linux\n" in text
    assert "testkey: testvalue" in text
    columns = {
        value.column for value in result.drafts[tmp_path / "unittest-wave-1.yaml"][0].to_fill
    }
    assert {"instanceType", "subnetId", "securityGroupIds", "environment"} <= columns
    filled = _validate({path: fill(t) for path, t in result.files.items()})
    assert filled.errors == []
    assert _effective(filled)["unittest1"]["tags"] == {"testkey": "testvalue"}


def test_crlf_quoted_lists_and_tags(tmp_path: Path) -> None:
    text = (
        "wave_name,app_name,aws_region,aws_accountid,server_name,server_os_family,server_fqdn,"
        "server_environment,r_type,subnet_IDs,securitygroup_IDs,instanceType,tags\r\n"
        "Pilot,Web Shop,eu-west-1,444455556666,WEB_01,Linux,web-01.corp.example,Prod,Rehost,"
        'subnet-0e31f42a,"sg-0e31f42a; sg-0e31f42b","t3.large","Owner=shop team;Tier=web;"\r\n'
        "Pilot,Web Shop,eu-west-1,444455556666,web 02,linux,web-02.corp.example,prod,Rehost,"
        'subnet-0e31f42a,sg-0e31f42a,t3.large,"Owner=shop team;Tier=web"\r\n'
    )
    result = plan_import("sheet.csv", text, tmp_path)
    wave = result.files[tmp_path / "pilot.yaml"]
    assert "\r" not in wave
    assert "environment: prod\n" in wave
    assert (
        "        targetVmName: web_01\n        securityGroupIds: [sg-0e31f42a, sg-0e31f42b]\n"
        in (wave)
    )
    assert "        targetVmName: web-02\n        securityGroupIds: [sg-0e31f42a]\n" in wave
    assert "    Owner: shop team\n    Tier: web\n" in wave
    placeholders = {v.key for v in result.drafts[tmp_path / "pilot.yaml"][0].to_fill}
    assert placeholders == {
        "cutoverWindow.start",
        "cutoverWindow.end",
        "slackChannel",
        "approvers",
        "operators",
        "source.azureResourceId",
    }
    filled = _validate({path: fill(t) for path, t in result.files.items()})
    assert filled.errors == []
    assert _effective(filled)["web_01"]["securityGroupIds"] == ["sg-0e31f42a", "sg-0e31f42b"]


def test_mgn_import_csv(tmp_path: Path) -> None:
    text = "\n".join([MGN_HEADER, *MGN_ROWS]) + "\n"
    result = plan_import("mgn-import.csv", text, tmp_path)
    wave = result.files[tmp_path / "wave-7.yaml"]
    assert "  iamInstanceProfile: crm-profile\n" in wave
    assert "    description: Customer CRM\n" in wave
    # The instance Name tag names the VM; security groups follow their index, not the column.
    assert "          userProvidedId: crm-web-01\n" in wave
    assert "        targetVmName: CRM-Web-01\n" in wave  # EC2's Name tag itself: as written
    assert "securityGroupIds: [sg-0e31f42a, sg-0e31f42b]" in wave
    draft = result.drafts[tmp_path / "wave-7.yaml"][0]
    assert [str(c) for c in draft.warnings] == [
        "mgn-import.csv:3: warning: mgn:launch:nic:0:private-ip:0: '10.0.0.5' is not carried: "
        "a wave manifest has no such setting"
    ]
    filled = _validate({path: fill(t) for path, t in result.files.items()})
    assert filled.errors == []
    vms = _effective(filled)
    assert vms["CRM-Web-01"]["osFamily"] == "windows"
    assert vms["crm-db-01"]["instanceType"] == "r6i.large"
    assert vms["crm-db-01"]["tags"] == {"Owner": "crm-team"}
    assert vms["crm-db-01"]["iamInstanceProfile"] == "crm-profile"


def test_azure_json_keeps_resource_ids_and_never_maps_a_vm_size(tmp_path: Path) -> None:
    text = json.dumps(AZURE_VMS, indent=2)
    with pytest.raises(UsageError, match="--wave"):
        plan_import("vms.json", text, tmp_path)
    result = plan_import("vms.json", text, tmp_path, wave="wave-8")
    wave = result.files[tmp_path / "wave-8.yaml"]
    assert [app.name for app in result.drafts[tmp_path / "wave-8.yaml"][0].applications] == [
        "rg-shop-prod",
        "rg-ledger",
    ]
    assert f"          azureResourceId: {azure_id('Shop-Web-01', 'rg-shop-prod')}\n" in wave
    assert "          userProvidedId: Shop-Web-01\n" in wave
    assert "          disksGiB: [128, 512]\n" in wave
    assert "        targetVmName: shop-web-01\n" in wave
    assert "        instanceType: CHANGE-ME  # inventory: 'Standard_E4s_v5'\n" in wave
    assert "      - source:  # from vms.json item 3\n" in wave
    messages = [str(v) for v in result.drafts[tmp_path / "wave-8.yaml"][0].to_fill]
    assert (
        "vms.json:item 2: hardwareProfile.vmSize: 'Standard_E4s_v5' will not validate: an Azure "
        "size is not an EC2 instance type: choose one"
    ) in messages
    filled = _validate({path: fill(t) for path, t in result.files.items()})
    assert filled.errors == []
    vms = _effective(filled)
    assert vms["ledger-01"]["osFamily"] == "windows"
    assert vms["shop-db-01"]["tags"] == {"CostCenter": "4410", "Tier": "db"}
    assert vms["shop-web-01"]["source"]["azureResourceId"] == azure_id(  # type: ignore[index]
        "Shop-Web-01", "rg-shop-prod"
    )


@pytest.mark.parametrize(
    "cell",
    ["=cmd|'/c calc'!A0", "+cmd|' /C notepad'!'B1'", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|x"],
)
def test_formula_cells_refuse_their_row(tmp_path: Path, cell: str) -> None:
    text = (
        "wave_name,app_name,server_name,server_fqdn,server_os_family,tags\n"
        "Wave 1,shop,web-01,web-01.corp.example,linux,Owner=shop\n"
        f'Wave 1,shop,web-02,web-02.corp.example,linux,"Owner={cell}"\n'
        f'Wave 1,"{cell}",web-03,web-03.corp.example,linux,\n'
    )
    result = plan_import("sheet.csv", text, tmp_path)
    assert [str(p) for p in result.problems] == [
        f"sheet.csv:3: tags: {cell!r} looks like a spreadsheet formula (formula injection): "
        "row not imported; write the value itself",
        f"sheet.csv:4: app_name: {cell!r} looks like a spreadsheet formula (formula injection): "
        "row not imported; write the value itself",
    ]
    assert "web-01" in result.files[tmp_path / "wave-1.yaml"]
    assert cell not in result.files[tmp_path / "wave-1.yaml"]


def test_values_that_only_look_like_formulas_are_kept() -> None:
    assert not looks_like_formula("-")
    assert not looks_like_formula("+44 20 7946 0000")
    assert not looks_like_formula("-12")
    assert looks_like_formula("=1+1")
    assert looks_like_formula("\t=1")


def test_oversize_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.truncate(MAX_INVENTORY_BYTES + 1)
    with pytest.raises(UsageError, match=r"big\.csv: 20,971,521 bytes is over the 20 MiB limit"):
        read_inventory_text(big)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("wave_name,app_name,server_name\nVague 1,café,srv1\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"latin\.csv: not UTF-8 text .*save it as UTF-8"):
        read_inventory_text(latin)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["import", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_reimport_is_byte_identical_and_a_changed_row_changes_only_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "server-list.csv"
    shutil.copy(DATA / "cmf-server-list.csv", sheet)
    out = tmp_path / "waves"
    assert _run(capsys, str(sheet), "--output", str(out))[0] == 1
    first = {path.name: path.read_bytes() for path in sorted(out.iterdir())}
    assert _run(capsys, str(sheet), "--output", str(out))[0] == 1
    assert {path.name: path.read_bytes() for path in sorted(out.iterdir())} == first

    sheet.write_text(sheet.read_text().replace("server7.example.local", "server7b.example.local"))
    assert _run(capsys, str(sheet), "--output", str(out))[0] == 1
    before = first["wave-3.yaml"].decode().splitlines()
    after = (out / "wave-3.yaml").read_text().splitlines()
    assert len(before) == len(after)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed == [
        ("          hostname: server7.example.local", "          hostname: server7b.example.local")
    ]
    assert (out / "wave-1.yaml").read_bytes() == first["wave-1.yaml"]


def test_values_filled_by_the_team_survive_a_reimport_and_then_it_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sheet = tmp_path / "server-list.csv"
    shutil.copy(DATA / "cmf-server-list.csv", sheet)
    code, out, _ = _run(capsys, str(sheet), "--output", "waves")
    assert code == 1
    assert (
        "server-list.csv:2: slackChannel: (not in the inventory) will not validate: the wave's "
        "Slack channel ID (C...) -> fill in waves/wave-1.yaml:13"
    ) in out.splitlines()
    assert "validation errors in the written waves" in out
    for path in (tmp_path / "waves").iterdir():
        filled = fill(path.read_text()).replace("C07WAVE0007", f"C07WAVE000{path.stem[-1]}")
        path.write_text(filled)
    code, out, _ = _run(capsys, str(sheet), "--output", "waves")
    assert code == 0, out
    assert "will not validate" not in out
    assert out.splitlines()[-1] == "ok: the written waves validate as they are"
    wave_2 = (tmp_path / "waves" / "wave-2.yaml").read_text()
    assert "slackChannel: C07WAVE0002\n" in wave_2
    assert "  start: 2027-01-09T21:00:00+01:00\n" in wave_2
    assert "CHANGE-ME" not in wave_2
    # And importing once more changes nothing.
    assert _run(capsys, str(sheet), "--output", "waves")[0] == 0
    assert (tmp_path / "waves" / "wave-2.yaml").read_text() == wave_2


def test_cli_exit_codes_when_nothing_can_be_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = tmp_path / "refused.csv"
    refused.write_text("wave_name,app_name,server_name,r_type\n=1+1,app,srv,Rehost\nW,a,s,Retire\n")
    code, out, _ = _run(capsys, str(refused), "--output", str(tmp_path / "w"))
    assert code == 2
    assert out.splitlines() == [
        "refused.csv:2: wave_name: '=1+1' looks like a spreadsheet formula (formula injection): "
        "row not imported; write the value itself",
        "refused.csv:3: r_type: 'Retire': only rehosted servers migrate with MGN: row not imported",
        "nothing imported from refused.csv: no row could be imported",
    ]
    assert not (tmp_path / "w").exists()

    unknown = tmp_path / "other.csv"
    unknown.write_text("host,ip\na,10.0.0.1\n")
    code, _, err = _run(capsys, str(unknown))
    assert code == 2
    assert "not an inventory this command reads" in err
    assert "--format cmf|mgn|azure" in err


@pytest.mark.parametrize(
    "value",
    [
        *("yes", "Off", "0755", "0x1F", "1_000", "1e3", ".inf", "12:30", "2024-01-01", "123"),
        *("null", "~", "=", "<<", "", "a: b", "#x", "- x", "@x", "café", "a\u2028b", "a=b"),
    ],
)
def test_every_value_reads_back_as_the_string_it_was(value: str) -> None:
    assert yaml.safe_load(f"key: {scalar(value)}") == {"key": value}
    assert yaml.safe_load(f"key: [{scalar(value)}]") == {"key": [value]}


def test_a_wave_lands_in_one_account_region_and_environment(tmp_path: Path) -> None:
    text = (
        "wave_name,app_name,aws_region,aws_accountid,server_name,server_environment\n"
        "Wave 1,shop,eu-west-1,444455556666,web-01,dev\n"
        "Wave 1,shop,eu-west-1,444455556666,web-02,prod\n"
        "Wave 1,shop,us-east-1,444455556666,web-03,prod\n"
    )
    result = plan_import("sheet.csv", text, tmp_path)
    assert [str(p) for p in result.problems] == [
        "sheet.csv:4: aws_region: 'us-east-1' differs from 'eu-west-1' in row 2: a wave lands in "
        "one account and Region, so give this server its own wave: row not imported"
    ]
    draft, _ = result.drafts[tmp_path / "wave-1.yaml"]
    assert [vm.target_vm_name for app in draft.applications for vm in app.vms] == [
        "web-01",
        "web-02",
    ]
    assert (
        "sheet.csv:2: server_environment: 'dev;prod' will not validate: a wave has one "
        "environment: split the wave or pick one"
    ) in [str(v) for v in draft.to_fill]
    assert (
        "environment: CHANGE-ME  # inventory: 'dev;prod'\n"
        in result.files[tmp_path / "wave-1.yaml"]
    )


ROUND_TRIP_WAVE = f"""\
# yaml-language-server: $schema=../wave.schema.json
name: wave-9
description: "CRM, production: web and database"
environment: prod
target:
  accountId: "444455556666"
  region: eu-west-1
cutoverWindow:
  start: 2027-02-06T20:00:00Z
  end: 2027-02-07T04:00:00Z
slackChannel: C07WAVE0009
approvers: [S07MIGLEADS]
operators: [U07BOBOPS01]
defaults:
  osFamily: linux
  subnetId: subnet-0e31f42a
  securityGroupIds: [sg-0e31f42a]
  iamInstanceProfile: wavepilot-ssm-instance
  tags: {{CostCenter: "6300", Backup: "yes"}}
applications:
  - name: crm
    description: CRM web tier
    defaults:
      instanceType: m6i.large
      tags: {{Application: crm}}
    vms:
      - source:
          azureResourceId: {azure_id("crm-web-01", "rg-crm")}
          userProvidedId: crm-web-01
          hostname: crm-web-01.corp.example
        targetVmName: CRM-Web-Prod-01
        securityGroupIds: [sg-0e31f42a, sg-0e31f42b]
      - source:
          azureResourceId: {azure_id("crm-web-02", "rg-crm")}
          userProvidedId: crm-web-02
        targetVmName: crm-web-prod-02
        tags: {{Tier: web}}
  - name: crm-db
    vms:
      - source:
          azureResourceId: {azure_id("crm-db-01", "rg-crm")}
          userProvidedId: crm-db-01
        targetVmName: crm-db-prod-01
        osFamily: windows
        instanceType: r6i.xlarge
"""


def test_export_to_mgn_csv_then_import_gives_the_same_effective_vms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    waves = tmp_path / "waves"
    waves.mkdir()
    (waves / "wave-9.yaml").write_text(ROUND_TRIP_WAVE)
    original = _validate({waves / "wave-9.yaml": ROUND_TRIP_WAVE})
    assert original.errors == []

    exported = tmp_path / "mgn-import.csv"
    assert cli.main(["export", "--format", "mgn-csv", str(waves), "--output", str(exported)]) == 0
    _, err = capsys.readouterr()
    assert "3 VMs exported" in err
    rows = exported.read_text().splitlines()
    assert rows[0].startswith("mgn:account-id,mgn:region,mgn:wave:name,mgn:wave:description,")
    assert rows[1] == (
        '444455556666,eu-west-1,wave-9,"CRM, production: web and database",crm,CRM web tier,'
        "crm-web-01,LINUX,crm-web-01.corp.example,m6i.large,wavepilot-ssm-instance,"
        "subnet-0e31f42a,sg-0e31f42a,sg-0e31f42b,CRM-Web-Prod-01,crm,yes,6300,"
    )

    # Imported next to the same manifests: what MGN's file lacks (the Azure resource IDs,
    # the window, Slack) is kept from them; everything else comes from the CSV.
    code, out, _ = _run(capsys, str(exported), "--output", str(waves))
    assert code == 0, out
    reimported = (waves / "wave-9.yaml").read_text()
    assert reimported != ROUND_TRIP_WAVE
    result = _validate({waves / "wave-9.yaml": reimported})
    assert result.errors == []
    assert _effective(result) == _effective(original)
    assert len(_effective(result)) == 3


def test_a_broken_csv_is_refused_with_a_message(tmp_path: Path) -> None:
    text = "wave_name,app_name,server_name\nWave 1,app," + "s" * 200_000 + "\n"
    with pytest.raises(UsageError, match=r"sheet\.csv: not a CSV file .*field larger than"):
        plan_import("sheet.csv", text, tmp_path)


def test_a_description_that_would_not_validate_is_left_out_and_said(tmp_path: Path) -> None:
    long = "x" * 501
    text = "\n".join([MGN_HEADER, MGN_ROWS[0].replace("Customer CRM", long)]) + "\n"
    result = plan_import("mgn.csv", text, tmp_path)
    draft, _ = result.drafts[tmp_path / "wave-7.yaml"]
    assert long not in result.files[tmp_path / "wave-7.yaml"]
    assert any("application description:" in str(c) for c in draft.warnings)


def test_wave_settings_given_on_the_command_line_fill_what_azure_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vms = tmp_path / "vms.json"
    vms.write_text(json.dumps(AZURE_VMS))
    argv = [str(vms), "--wave", "Wave 8", "--output", str(tmp_path / "w"), "--region", "eu-west-1"]
    code, out, _ = _run(capsys, *argv, "--account-id", "444455556666", "--environment", "prod")
    assert code == 1
    wave = (tmp_path / "w" / "wave-8.yaml").read_text()
    assert 'environment: prod\ntarget:\n  accountId: "444455556666"\n  region: eu-west-1\n' in wave
    assert "target." not in out
    # Into another folder: next to the first wave, its account ID would be kept.
    argv[argv.index(str(tmp_path / "w"))] = str(tmp_path / "w2")
    code, out, _ = _run(capsys, *argv, "--account-id", "4444")
    assert (
        "vms.json:item 1: --account-id: '4444' will not validate: '4444' is not an AWS account "
        "ID of 12 digits"
    ) in out


def test_an_inventory_name_with_control_characters_cannot_break_the_wave_file(
    tmp_path: Path,
) -> None:
    text = "wave_name,app_name,server_name\nWave 1,app,srv-01\n"
    result = plan_import("evil\nname: x\x1b.csv", text, tmp_path)
    wave = result.files[tmp_path / "wave-1.yaml"]
    assert "# from evil?name: x?.csv row 2" in wave
    assert "\x1b" not in wave
    assert wave.count("\nname: ") == 1


def test_a_semicolon_separated_sheet_as_some_excel_locales_save_it(tmp_path: Path) -> None:
    text = (
        "wave_name;app_name;server_name;server_fqdn;securitygroup_IDs;tags\r\n"
        'Wave 1;shop;web-01;web-01.corp.example;"sg-0e31f42a;sg-0e31f42b";"Owner=shop;Tier=web"\r\n'
    )
    result = plan_import("sheet.csv", text, tmp_path)
    wave = result.files[tmp_path / "wave-1.yaml"]
    assert "securityGroupIds: [sg-0e31f42a, sg-0e31f42b]" in wave
    assert "    Owner: shop\n    Tier: web\n" in wave


def test_validation_errors_the_placeholders_do_not_explain_are_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "waves"
    out.mkdir()
    shutil.copy(Path(__file__).parents[1] / "manifests" / "waves" / "wave-3.yaml", out)
    sheet = tmp_path / "mgn.csv"
    sheet.write_text("\n".join([MGN_HEADER, MGN_ROWS[0].replace("CRM-Web-01", "hr-portal-web-01")]))
    argv = [str(sheet), "--output", str(out), "--environment", "prod"]
    assert _run(capsys, *argv)[0] == 1
    (out / "wave-7.yaml").write_text(fill((out / "wave-7.yaml").read_text()))

    code, printed, _ = _run(capsys, *argv)
    assert code == 1
    assert "will not validate" not in printed
    [clash] = [line for line in printed.splitlines() if "already used" in line]
    assert clash.startswith(f"{out / 'wave-7.yaml'}:")
    assert "targetVmName in account 444455556666: 'hr-portal-web-01' is already used" in clash
    assert printed.splitlines()[-1].startswith("1 validation error in the written waves (0 values")


def test_export_leaves_out_what_mgn_cannot_take_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wave_1 = Path(__file__).parents[1] / "manifests" / "waves" / "wave-1.yaml"
    exported = tmp_path / "mgn.csv"
    assert cli.main(["export", "--format", "mgn-csv", str(wave_1), "--output", str(exported)]) == 1
    _, err = capsys.readouterr()
    assert (
        "wave-1.yaml:67: rpt-ssrs-01: no source.userProvidedId: MGN's import identifies servers by "
        "it: not exported"
    ) in err
    assert (
        "wave-1.yaml:32: intranet-web-01: not in MGN's import file: testSubnetId, healthChecks"
        in err
    )
    assert len(exported.read_text().splitlines()) == 1 + 3

    broken = tmp_path / "wave-x.yaml"
    broken.write_text("name: wave-x\n")
    assert cli.main(["export", "--format", "mgn-csv", str(broken)]) == 1
    assert "the manifests must validate before they are exported" in capsys.readouterr().err
