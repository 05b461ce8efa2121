"""The malformed-manifest corpus: each case is a wave file (or a folder of them) with one mistake.

Every case under ``tests/corpus/invalid/`` is a copy of ``tests/corpus/valid/minimal.yaml``
with one change, described in the case's first-line comment. A case named ``x`` is either the
file ``x.yaml`` or the folder ``x/`` (for rules across files). Findings are reported under
paths relative to the case (``x.yaml``, ``east/wave-a.yaml``), and each expectation below is
the complete list of findings: file, line, column, message and severity, exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.manifests.findings import Finding, Severity
from orchestration.manifests.validation import ManifestFile, ManifestSet, validate_files

CORPUS = Path(__file__).parent / "corpus"
INVALID = CORPUS / "invalid"
MINIMAL = CORPUS / "valid" / "minimal.yaml"

# Fixed, so that "the window is already in the past" does not depend on the day the suite runs.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

VM = "applications[0].vms[0]"
WARNING = Severity.WARNING


def _error(path: str, line: int, col: int, message: str) -> Finding:
    return Finding(path, line, col, message)


EXPECTED: dict[str, list[Finding]] = {
    # --- files that are not a single YAML mapping ------------------------------------------
    "unclosed-flow-sequence": [
        _error(
            "unclosed-flow-sequence.yaml",
            17,
            21,
            "not valid YAML: while parsing a flow sequence, did not find expected ',' or ']'",
        )
    ],
    "tab-indent": [
        _error(
            "tab-indent.yaml", 6, 1, "a tab character is used for indentation: YAML needs spaces"
        )
    ],
    "empty": [_error("empty.yaml", 1, 1, "the file is empty: a wave manifest is a mapping")],
    "comments-only": [
        _error(
            "comments-only.yaml",
            1,
            1,
            "the file has no YAML document: a wave manifest is a mapping",
        )
    ],
    "top-level-list": [
        _error("top-level-list.yaml", 2, 1, "a wave manifest is a mapping, not a list")
    ],
    "two-documents": [
        _error(
            "two-documents.yaml",
            25,
            1,
            "the file holds more than one YAML document: one wave per file",
        )
    ],
    "duplicate-key": [
        _error(
            "duplicate-key.yaml", 17, 3, "duplicate key 'instanceType' (first defined on line 15)"
        )
    ],
    "merge-key": [
        _error(
            "merge-key.yaml",
            25,
            9,
            "YAML merge keys ('<<') are not supported: put shared settings in 'defaults'",
        )
    ],
    # --- types ---------------------------------------------------------------------------
    "account-id-number": [
        _error(
            "account-id-number.yaml",
            5,
            14,
            "target.accountId: expected a string, got number 111122223333 "
            "(YAML reads 111122223333 as a number: write it in quotes, '111122223333')",
        )
    ],
    "port-string": [
        _error(
            "port-string.yaml",
            26,
            31,
            f"{VM}.healthChecks[0].port: should be a valid integer, got '22'",
        )
    ],
    "tag-value-number": [
        _error(
            "tag-value-number.yaml",
            25,
            28,
            f"{VM}.tags.CostCenter: expected a string, got number 4410 "
            "(YAML reads 4410 as a number: write it in quotes, '4410')",
        )
    ],
    # --- unknown and missing keys --------------------------------------------------------
    "unknown-key": [
        _error(
            "unknown-key.yaml",
            25,
            9,
            f"{VM}.instanceTyp: unknown key 'instanceTyp' (did you mean 'instanceType'?)",
        )
    ],
    "missing-target-vm-name": [
        _error(
            "missing-target-vm-name.yaml",
            21,
            9,
            f"{VM}: missing required key 'targetVmName'",
        )
    ],
    "missing-instance-type": [
        _error(
            "missing-instance-type.yaml",
            20,
            9,
            f"{VM}: no value for instanceType: set it on the VM, in its application's defaults "
            "or in the wave's defaults",
        )
    ],
    # --- identifiers ---------------------------------------------------------------------
    "bad-subnet-id": [
        _error(
            "bad-subnet-id.yaml",
            16,
            13,
            "defaults.subnetId: 'subnet-0a11b2' is not a subnet ID "
            "('subnet-' and 8 or 17 hex digits) (for example 'subnet-0a1b2c3d')",
        )
    ],
    "bad-security-group-id": [
        _error(
            "bad-security-group-id.yaml",
            17,
            22,
            "defaults.securityGroupIds[0]: 'sg-0a11b22z' is not a security group ID "
            "('sg-' and 8 or 17 hex digits) (for example 'sg-0a1b2c3d')",
        )
    ],
    "bad-source-server-id": [
        _error(
            "bad-source-server-id.yaml",
            23,
            27,
            f"{VM}.source.sourceServerId: 's-1234567890' is not an MGN source server ID "
            "('s-' and 17 characters) (for example 's-1234567890abcdef0')",
        )
    ],
    "bad-azure-resource-id": [
        _error(
            "bad-azure-resource-id.yaml",
            22,
            28,
            f"{VM}.source.azureResourceId: '/subscriptions/my-subscription/resourceGroups/rg-app"
            "/providers/Microsoft.Compute/virtualMachines/vm-01' is not an Azure VM resource ID "
            "(for example '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute"
            "/virtualMachines/<name>')",
        )
    ],
    "bad-slack-channel": [
        _error(
            "bad-slack-channel.yaml",
            10,
            15,
            "slackChannel: '#migrations' is not a Slack channel ID "
            "(C... or G..., from the channel's details) (for example 'C0123456789')",
        )
    ],
    "bad-approver": [
        _error(
            "bad-approver.yaml",
            11,
            26,
            "approvers[1]: 'alice' is not a Slack user ID (U... or W...) or user-group ID (S...) "
            "(for example 'U0123456789')",
        )
    ],
    # --- tags and lists ------------------------------------------------------------------
    "tag-aws-prefix": [
        _error(
            "tag-aws-prefix.yaml",
            19,
            5,
            "defaults.tags: tag key 'aws:owner' uses the reserved 'aws:' prefix",
        )
    ],
    "tag-key-too-long": [
        _error(
            "tag-key-too-long.yaml",
            26,
            11,
            f"{VM}.tags: tag key {'k' * 129!r} must be 1 to 128 characters",
        )
    ],
    "tag-value-too-long": [
        _error(
            "tag-value-too-long.yaml",
            26,
            11,
            f"{VM}.tags: the value of tag 'Notes' is longer than 256 characters",
        )
    ],
    # Each layer alone is within the limit; only the merged set of 51 is not.
    "too-many-tags": [
        _error(
            "too-many-tags.yaml",
            24,
            9,
            f"{VM}: tags (wave, application and VM merged): "
            "51 tags: AWS allows at most 50 per resource",
        )
    ],
    "too-many-security-groups": [
        _error(
            "too-many-security-groups.yaml",
            17,
            21,
            "defaults.securityGroupIds: has 6 items, at most 5 allowed",
        )
    ],
    "http-callback-url": [
        _error(
            "http-callback-url.yaml",
            25,
            24,
            f"{VM}.callbackUrls[0]: 'http://hooks.example.com/wavepilot' is not an https URL: "
            "callbacks are sent over https only",
        )
    ],
    "unknown-health-check-type": [
        _error(
            "unknown-health-check-type.yaml",
            26,
            20,
            f"{VM}.healthChecks[0].type: unknown type 'ping': expected one of 'tcp', 'http'",
        )
    ],
    # --- the cutover window and the wave's name ------------------------------------------
    "reversed-window": [
        _error(
            "reversed-window.yaml",
            8,
            3,
            "cutoverWindow: the window must end after it starts "
            "(start 2026-12-06T02:00:00+00:00, end 2026-12-05T20:00:00+00:00)",
        )
    ],
    "naive-window": [
        _error(
            "naive-window.yaml",
            8,
            10,
            "cutoverWindow.start: '2026-12-05T20:00:00' has no time zone: write a full timestamp "
            "with one, such as 2026-12-05T22:00:00Z or 2026-12-05T22:00:00+01:00",
        )
    ],
    "past-window": [
        Finding(
            "past-window.yaml",
            9,
            8,
            "cutoverWindow.end: the window closed at 2026-11-21T02:00:00+00:00, "
            "it is already in the past",
            WARNING,
        )
    ],
    "name-mismatch": [
        _error(
            "name-mismatch.yaml",
            2,
            7,
            "name: the wave is called 'wave-9' but its file is 'name-mismatch': "
            "rename one so they match",
        )
    ],
    # --- across files --------------------------------------------------------------------
    "same-azure-vm": [
        _error(
            "wave-b.yaml",
            22,
            28,
            "source VM '/subscriptions/6f1c2a90-3b7e-4d5a-9c11-2f8e7a4b9d10/resourcegroups/RG-APP"
            "/providers/Microsoft.Compute/virtualMachines/VM-01' is already used by 'vm-01' "
            "in wave 'wave-a' (wave-a.yaml:21)",
        ),
        # The copy kept the agent's userProvidedId too: MGN could not tell the two apart.
        _error(
            "wave-b.yaml",
            23,
            27,
            "MGN userProvidedId 'vm-01' is already used by 'vm-01' in wave 'wave-a' "
            "(wave-a.yaml:21)",
        ),
    ],
    "same-target-name": [
        _error(
            "wave-b.yaml",
            24,
            23,
            "targetVmName in account 111122223333: 'vm-01' is already used by 'vm-01' "
            "in wave 'wave-a' (wave-a.yaml:21)",
        )
    ],
    "same-source-server": [
        _error(
            "wave-b.yaml",
            23,
            27,
            "MGN source server 's-1234567890abcdef0' is already used by 'vm-01' "
            "in wave 'wave-a' (wave-a.yaml:21)",
        )
    ],
    "same-wave-name": [
        _error(
            "west/wave-a.yaml",
            2,
            7,
            "name: wave 'wave-a' is already defined in east/wave-a.yaml",
        )
    ],
}


def _case_files(case: str) -> list[ManifestFile]:
    """The case's files, named relative to the case, in a stable order."""
    single = INVALID / f"{case}.yaml"
    if single.is_file():
        return [ManifestFile(single.name, single.read_text(encoding="utf-8"))]
    folder = INVALID / case
    return [
        ManifestFile(path.relative_to(folder).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(folder.rglob("*.yaml"))
    ]


def _validate_case(case: str) -> ManifestSet:
    return validate_files(_case_files(case), now=NOW)


def test_the_minimal_wave_is_valid() -> None:
    result = validate_files(
        [ManifestFile("minimal.yaml", MINIMAL.read_text(encoding="utf-8"))], now=NOW
    )

    assert result.findings == []
    assert [vm.effective_vm.target_vm_name for vm in result.vms] == ["vm-01"]


def test_every_case_on_disk_has_expectations_and_every_expectation_a_case() -> None:
    on_disk = {path.stem if path.is_file() else path.name for path in INVALID.iterdir()}

    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case_reports_exactly_the_expected_findings(case: str) -> None:
    result = _validate_case(case)

    assert result.findings == sorted(EXPECTED[case])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case_is_invalid_unless_it_only_has_warnings(case: str) -> None:
    result = _validate_case(case)

    only_warnings = all(f.severity is WARNING for f in EXPECTED[case])
    assert result.valid is only_warnings
    assert len(result.errors) + len(result.warnings) == len(result.findings)


def test_a_past_window_is_a_warning_and_the_wave_still_validates() -> None:
    result = _validate_case("past-window")

    assert result.valid
    assert result.errors == []
    assert [w.severity for w in result.warnings] == [WARNING]
    assert [vm.effective_vm.wave for vm in result.vms] == ["past-window"]


def test_the_same_window_is_not_past_a_week_earlier() -> None:
    result = validate_files(_case_files("past-window"), now=datetime(2026, 11, 14, tzinfo=UTC))

    assert result.findings == []


def test_a_file_that_fails_to_parse_does_not_hide_the_other_files() -> None:
    files = [*_case_files("unclosed-flow-sequence"), *_case_files("name-mismatch")]

    result = validate_files(files, now=NOW)

    assert {f.path for f in result.findings} == {
        "unclosed-flow-sequence.yaml",
        "name-mismatch.yaml",
    }


def test_findings_print_as_path_line_col_message() -> None:
    (finding,) = _validate_case("bad-subnet-id").findings
    (warning,) = _validate_case("past-window").findings

    assert str(finding).startswith("bad-subnet-id.yaml:16:13: defaults.subnetId: ")
    assert str(warning).startswith("past-window.yaml:9:8: warning: cutoverWindow.end: ")


def test_every_case_file_says_what_is_wrong_in_its_first_line() -> None:
    # Guards the corpus itself: a reader of a failing case sees what the case meant to break.
    for path in sorted(INVALID.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "empty.yaml":
            assert text == ""
            continue
        assert text.startswith("# "), path.name
