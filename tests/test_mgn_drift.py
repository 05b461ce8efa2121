"""Drift in the plan (``wavepilot plan --mgn-drift``): MGN's console grouping read through the
lanes' real boto3 clients (the emulator), compared with the manifests per VM, reported as
warnings at each VM's line; a lane that cannot be read is a warning too, never a failed plan.
The pull request job (``plan --comment --mgn-drift``, the GitHub stand-in) shows both in its
comment, reading MGN through the target-account module's read-only role and nothing more."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestration import cli, wiring
from orchestration.gitops import github_comment
from orchestration.gitops.git import GitRepository
from orchestration.gitops.plan import build_plan
from orchestration.local.api_recorder import ApiCallRecorder, running_function
from orchestration.local.estate import HUB_LANE, assumed_role_sessions, ensure_role
from orchestration.local.mgn import LaneId
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.findings import Severity
from orchestration.migration_request import MigrationRequest
from orchestration.naming import ResourceNames
from orchestration.pipeline.mgn_drift import drift_findings, grouping_drift
from tests.conftest import NOW
from tests.support.github_server import GitHubState, github_stand_in
from tests.support.gitrepo import GitRepo
from tests.support.pipeline import example_requests, spec_of
from tests.support.waves import VmText, wave_text
from tests.test_github_comment import FAST
from tests.test_iam_calls import module_policy_actions

REPO = "contoso/waves"
PR = 7
WAVE = "manifests/waves/wave-1.yaml"
READER = ResourceNames().grouping_reader_role


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions()) as running:
        yield running


def test_a_server_moved_in_the_console_is_a_warning_at_its_vms_line(
    system: EmbeddedSystem,
) -> None:
    # GIVEN three VMs of wave-1: one MGN groups as the manifests say, one a person moved into
    # an application of their own in the console, one not grouped yet (never run)
    placed, moved, new = example_requests()[:3]
    servers = system.seed([spec_of(r) for r in (placed, moved, new)])
    mgn = system.mgn_of_server(servers[placed.migration_id])
    wave_id = mgn.add_wave("wave-1", tags={"wavepilot:managed": "true"})
    ours = mgn.add_application(
        f"wave-1/{placed.app_name}", wave_id=wave_id, tags={"wavepilot:managed": "true"}
    )
    theirs = mgn.add_application("Payroll servers")
    mgn.move_source_server(servers[placed.migration_id], ours)
    mgn.move_source_server(servers[moved.migration_id], theirs)

    # WHEN the plan looks for drift
    check = grouping_drift([placed, moved, new], wiring.lanes())
    findings = drift_findings(check)

    # THEN only the moved one is reported, at its line, as a warning that says what MGN has
    assert check.unread == ()
    assert [d.request.migration_id for d in check.drifts] == [moved.migration_id]
    [finding] = findings
    assert moved.provenance is not None
    assert (finding.path, finding.line, finding.severity) == (
        moved.provenance.manifest_path,
        moved.provenance.line,
        Severity.WARNING,
    )
    assert finding.message.startswith(f"{moved.target_vm_name}: MGN's grouping differs")
    assert "application Payroll servers" in finding.message
    assert "publishing puts it back" in finding.message


def test_a_lane_that_cannot_be_read_is_a_warning_and_the_other_lanes_are_still_checked(
    system: EmbeddedSystem,
) -> None:
    # GIVEN three lanes: wave-1's account has no role for the plan, MGN was never initialized
    # in wave-3's Region, and in wave-2's lane a person moved the VM's server (which its
    # manifest names by source.sourceServerId) in the console
    no_role = LaneId("111122223333", "us-east-1")
    assert system.mgn_fleet is not None
    system.mgn_fleet.add_lane("444455556666", "eu-west-1", initialized=False)
    wave_1, wave_2, wave_3 = (example_requests(wave)[0] for wave in ("wave-1", "wave-2", "wave-3"))
    servers = system.seed(
        [spec_of(r) for r in (wave_1, wave_2, wave_3)], accounts_without_role={no_role.account_id}
    )
    mgn = system.mgn_of_server(servers[wave_2.migration_id])
    mgn.move_source_server(servers[wave_2.migration_id], mgn.add_application("Payroll servers"))

    # WHEN the plan looks for drift
    check = grouping_drift([wave_1, wave_2, wave_3], wiring.lanes())
    findings = drift_findings(check)

    # THEN wave-2's drift is found, and each unreadable lane is a warning saying why
    assert [d.request.migration_id for d in check.drifts] == [wave_2.migration_id]
    assert all(f.severity is Severity.WARNING for f in findings)
    by_request = {f.path: f for f in findings if "not checked" in f.message}
    assert wave_1.provenance is not None
    assert wave_3.provenance is not None
    role = f"arn:aws:iam::111122223333:role/{ResourceNames().target_role}"
    unread_1 = by_request[wave_1.provenance.manifest_path]
    assert unread_1.line == wave_1.provenance.line
    assert unread_1.message.startswith(
        f"MGN drift not checked for 1 VM of this file ({wave_1.target_vm_name}): target "
        f"account 111122223333 (Region us-east-1) could not be read: cannot assume role {role} "
        "(AccessDenied: "
    )
    unread_3 = by_request[wave_3.provenance.manifest_path]
    assert "target account 444455556666 (Region eu-west-1) could not be read" in unread_3.message
    assert "UninitializedAccountException" in unread_3.message


# --- the pull request job: plan --comment --mgn-drift --------------------------------------


@pytest.fixture
def github() -> Iterator[GitHubState]:
    with github_stand_in() as state:
        yield state


def _pull_request(
    git_repo: GitRepo, github: GitHubState, monkeypatch: pytest.MonkeyPatch
) -> list[MigrationRequest]:
    """A pull request adding wave-1 (web-01, web-02: the hub's lane), its event and GITHUB_*
    as the workflow has them; returns the requests merging it publishes."""
    git_repo.write("README.md", "waves\n")
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))
    head = git_repo.commit("wave-1")
    github.add_pull(REPO, PR, base_sha=base, head_sha=head)
    event = git_repo.root.parent / "event.json"
    pull = {"number": PR, "base": {"sha": base}, "head": {"sha": head}}
    event.write_text(json.dumps({"number": PR, "pull_request": pull}), encoding="utf-8")
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": "ghs_job",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github.base_url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "9002",
        "GITHUB_EVENT_PATH": str(event),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(github_comment, "DEFAULT_CLIENT_OPTIONS", FAST)
    monkeypatch.chdir(git_repo.root)
    repo = GitRepository.discover(None)
    plan = build_plan(repo, repo.resolve(base), repo.resolve(head), now=NOW)
    assert [r.target_vm_name for r in plan.requests] == ["web-01", "web-02"]
    return plan.requests


def _comment(github: GitHubState) -> str:
    [comment] = github.comments_on(REPO, PR)
    return str(comment["body"])


def _create_reader_role(system: EmbeddedSystem, account_id: str) -> None:
    """What terraform/modules/target-account creates given the hub's manifest plan role."""
    iam = assumed_role_sessions()(account_id, HUB_LANE.region).client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{HUB_LANE.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    ensure_role(iam, READER, trust, description="Wavepilot grouping reader")


def test_the_pull_request_comment_shows_drift_through_the_read_only_role(
    system: EmbeddedSystem,
    git_repo: GitRepo,
    github: GitHubState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a pull request adding web-01 and web-02, whose servers MGN already has, web-02's
    # moved by a person into an application of their own in the console
    web_01, web_02 = _pull_request(git_repo, github, monkeypatch)
    servers = system.seed([spec_of(web_01), spec_of(web_02)])
    mgn = system.mgn_of_server(servers[web_02.migration_id])
    mgn.move_source_server(servers[web_02.migration_id], mgn.add_application("Payroll servers"))
    # AND the job reads MGN with the read-only role's name, as manifests.yml sets it
    monkeypatch.setenv("TARGET_ROLE_NAME", READER)
    wiring.reset()

    # WHEN the job runs before the target account has that role
    assert cli.main(["plan", "--comment", "--mgn-drift"]) == cli.EXIT_OK

    # THEN the plan is still posted, valid, with a warning at the first VM saying what was
    # not checked and why, and the status is a success
    body = _comment(github)
    assert web_01.provenance is not None
    assert web_02.provenance is not None
    assert "✅ Valid. Merging publishes 2 migration requests" in body
    assert (
        f"| `{WAVE}:{web_01.provenance.line}:1` | MGN drift not checked for 2 VMs of this file "
        f"(web-01, web-02): target account {HUB_LANE.account_id} (Region us-east-1) could not be "
        f"read: cannot assume role arn:aws:iam::{HUB_LANE.account_id}:role/{READER}"
    ) in body
    assert github.statuses[-1]["state"] == "success"
    assert f"::warning file={WAVE},line={web_01.provenance.line}" in capsys.readouterr().out

    # WHEN the account's administrator applies the module with the hub's plan role, and the
    # job runs again (recording what it calls, and with which credentials)
    _create_reader_role(system, HUB_LANE.account_id)
    wiring.reset()
    with ApiCallRecorder() as recorder, running_function("manifests-plan"):
        assert cli.main(["plan", "--comment", "--mgn-drift"]) == cli.EXIT_OK

    # THEN the same comment now shows web-02's drift at its line, and nothing is unchecked
    body = _comment(github)
    assert (
        f"| `{WAVE}:{web_02.provenance.line}:1` | web-02: MGN's grouping differs from the "
        "manifests: "
    ) in body
    assert "application Payroll servers" in body
    assert "not checked" not in body
    assert "web-01: MGN" not in body
    assert github.statuses[-1]["state"] == "success"
    # AND the job itself only assumed the role; with it, it made exactly the reader's calls
    by_role = recorder.by_role()
    assert set(by_role) == {READER}, by_role
    assert set(by_role[READER]) == module_policy_actions("grouping_reader")
    hub_calls = set(recorder.by_function()["manifests-plan"])
    assert hub_calls == {"sts:AssumeRole"}, hub_calls
