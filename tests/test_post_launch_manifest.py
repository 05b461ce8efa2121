"""``postLaunchActions`` in wave manifests: inherited like the other launch settings (the
nearest list wins), carried to the pipeline's spec, and bad values reported at their line."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.gitops.requests import request_for
from tests.support.pipeline import spec_of
from tests.test_manifest_model import a_vm, a_wave, effective, validate

JOIN = {
    "name": "join-domain",
    "ssmDocument": "Contoso-JoinDomain",
    "order": 1001,
    "timeoutSeconds": 900,
    "parameters": {"DomainName": ["contoso.domain-name"]},
}
SMOKE = {"name": "smoke", "ssmDocument": "Contoso-Smoke", "order": 1002}


def test_a_vm_inherits_the_nearest_list_and_the_defaults_fill_in() -> None:
    # GIVEN wave defaults with two actions, and a VM with a list of its own
    wave = a_wave("wave-x", a_vm("vm-01"), a_vm("vm-02", postLaunchActions=[SMOKE]))
    wave["defaults"]["postLaunchActions"] = [JOIN, {**SMOKE, "mustSucceedForCutover": False}]

    vm_01, vm_02 = effective(wave)

    # THEN the VM's own list replaces the inherited one (as healthChecks do)
    assert [(a.name, a.must_succeed_for_cutover) for a in vm_01.post_launch_actions] == [
        ("join-domain", True),
        ("smoke", False),
    ]
    assert [
        (a.name, a.must_succeed_for_cutover, a.timeout_seconds) for a in vm_02.post_launch_actions
    ] == [("smoke", True, 3600)]


def test_the_actions_reach_the_pipelines_spec_and_none_change_no_revision() -> None:
    wave = a_wave()
    (plain,) = effective(wave)
    wave["defaults"]["postLaunchActions"] = [JOIN]

    # WHEN the VM is published (the request ``wavepilot publish`` sends) and run
    (located,) = validate(wave).vms
    spec = spec_of(request_for(located, commit="c" * 40, author="Dana <dana@contoso.com>"))

    # THEN the spec carries the action with MGN's action ID and the defaults filled in
    [action] = spec.post_launch_actions
    assert (action.action_id, action.ssm_document, action.order, action.timeout_seconds) == (
        "wavepilot-join-domain",
        "Contoso-JoinDomain",
        1001,
        900,
    )
    assert action.parameters == {"DomainName": ["contoso.domain-name"]}
    assert action.must_succeed_for_cutover is True
    # A VM without actions reads as before the field existed (its revision is unchanged)
    assert "postLaunchActions" not in plain.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ([JOIN, {**SMOKE, "name": "join-domain"}], "repeats the name 'join-domain'"),
        ([JOIN, {**SMOKE, "order": 1001}], "repeats the order 1001"),
        ([{**JOIN, "order": 1000}], "greater than or equal to 1001"),
        ([{**JOIN, "order": 10001}], "less than or equal to 10000"),
        ([{**JOIN, "timeoutSeconds": 0}], "greater than or equal to 1"),
        ([{**JOIN, "timeoutSeconds": 172801}], "less than or equal to 172800"),
        ([{**JOIN, "name": "Join Domain"}], "String should match pattern"),
        ([{**JOIN, "parameters": {"DomainName": []}}], "must not be empty"),
        ([{**JOIN, "ssmDocument": "a b"}], "String should match pattern"),
    ],
)
def test_bad_actions_are_reported_at_their_line(actions: list[Any], expected: str) -> None:
    wave = a_wave()
    wave["applications"][0]["vms"][0]["postLaunchActions"] = actions

    result = validate(wave)

    assert result.vms == []
    [finding] = result.findings
    assert "postLaunchActions" in finding.message
    assert expected in finding.message, finding.message
    assert finding.line > 1
