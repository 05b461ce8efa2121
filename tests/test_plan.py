"""Plans between real git revisions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestration import cli
from orchestration.gitops import plan as plan_module
from orchestration.gitops.git import EMPTY_TREE, GitError, GitRepository
from orchestration.gitops.plan import build_plan
from orchestration.gitops.render import render_markdown
from orchestration.request_identity import migration_id
from tests.conftest import NOW
from tests.support.gitrepo import GitRepo
from tests.support.waves import VmText, azure_id, wave_text

WAVE = "manifests/waves/wave-1.yaml"


def _plan(repo: GitRepo, base: str, head: str = "HEAD"):  # type: ignore[no-untyped-def]
    git = GitRepository(repo.root)
    return build_plan(git, git.resolve(base), git.resolve(head), now=NOW)


def test_first_commit_plans_every_vm_as_added_against_the_empty_tree(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))
    git_repo.commit("first wave")

    plan = _plan(git_repo, EMPTY_TREE)

    assert plan.valid
    assert plan.base.is_empty
    [wave] = plan.waves
    assert [p.vm.effective_vm.target_vm_name for p in wave.added] == ["web-01", "web-02"]
    assert [r.migration_id for r in plan.requests] == [
        migration_id("wave-1", azure_id("web-01")),
        migration_id("wave-1", azure_id("web-02")),
    ]


def test_all_zero_sha_from_a_new_branch_push_means_empty(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("first wave")

    plan = _plan(git_repo, "0" * 40)

    assert plan.totals["added"] == 1


def test_change_is_reported_field_by_field_and_unchanged_vms_are_counted(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02"), VmText("db-01")]))
    base = git_repo.commit("base")
    git_repo.write(
        WAVE,
        wave_text(
            "wave-1",
            [
                VmText("web-01", instance_type="m6i.large", extra=["tags: {Tier: web}"]),
                VmText("web-02"),
                VmText("app-01"),
            ],
        ),
    )
    git_repo.commit("resize web-01, replace db-01 with app-01")

    plan = _plan(git_repo, base)

    [wave] = plan.waves
    assert [p.vm.effective_vm.target_vm_name for p in wave.added] == ["app-01"]
    assert [p.vm.effective_vm.target_vm_name for p in wave.removed] == ["db-01"]
    assert wave.unchanged_count == 1
    [changed] = wave.changed
    assert [(c.field, c.old, c.new) for c in changed.changes] == [
        ("instanceType", "t3.large", "m6i.large"),
        ("tags.Tier", None, "web"),
    ]
    # What publish would send: added and changed, not removed.
    assert sorted(r.target_vm_name for r in plan.requests) == ["app-01", "web-01"]
    assert [r.action for r in plan.cancellations] == ["cancel"]


def test_nested_changes_use_dotted_fields(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01", extra=["tags: {Tier: web}"])]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01", extra=["tags: {Tier: app}"])]))
    git_repo.commit("retag")

    [changed] = _plan(git_repo, base).waves[0].changed

    assert [(c.field, c.old, c.new) for c in changed.changes] == [("tags.Tier", "web", "app")]


def test_a_vm_moved_to_another_wave_is_removed_there_and_added_here(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))
    git_repo.write("manifests/waves/wave-2.yaml", wave_text("wave-2", [VmText("db-01")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.write(
        "manifests/waves/wave-2.yaml", wave_text("wave-2", [VmText("db-01"), VmText("web-02")])
    )
    git_repo.commit("move web-02")

    plan = _plan(git_repo, base)

    by_name = {w.name: w for w in plan.waves}
    assert [p.vm.effective_vm.target_vm_name for p in by_name["wave-1"].removed] == ["web-02"]
    assert [p.vm.effective_vm.target_vm_name for p in by_name["wave-2"].added] == ["web-02"]
    [request] = plan.requests
    assert request.migration_id == migration_id("wave-2", azure_id("web-02"))


def test_invalid_head_reports_findings_and_publishes_nothing(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01", instance_type="t3.huge")]))
    git_repo.commit("typo")

    plan = _plan(git_repo, base)

    assert not plan.valid
    [finding] = plan.findings
    assert (finding.path, finding.line) == (WAVE, 23)
    assert plan.as_json()["publish"] == {"messages": [], "cancellations": []}
    markdown = render_markdown(plan)
    assert "❌ 1 error in the manifests" in markdown
    assert f"`{WAVE}:23:23`" in markdown


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        ("name: wave-1\napplications: [unclosed\n", "not valid YAML"),
        (None, "no value for instanceType"),
    ],
    ids=["unparseable", "one-vm-incomplete"],
)
def test_a_typo_in_head_is_never_planned_as_a_removal(
    git_repo: GitRepo, broken: str | None, why: str
) -> None:
    # GIVEN a published wave of three VMs
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02"), VmText("db-01")]))
    base = git_repo.commit("base")
    # WHEN the pull request breaks its file (a YAML error, or one VM without an instance type)
    if broken is None:
        broken = wave_text("wave-1", [VmText("web-01"), VmText("web-02"), VmText("db-01")])
        broken = broken.replace("        instanceType: t3.large\n", "", 1)
    git_repo.write(WAVE, broken)
    git_repo.commit("typo")

    plan = _plan(git_repo, base)

    # THEN the wave is not planned: nothing added, changed or removed, its findings shown
    assert not plan.valid
    assert why in plan.findings[0].message
    [wave] = plan.waves
    assert (wave.name, wave.path, wave.plannable) == ("wave-1", WAVE, False)
    assert (wave.added, wave.changed, wave.removed) == ([], [], [])
    assert plan.totals == {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    assert plan.cancellations == []
    data = plan.as_json()
    assert data["waves"][0]["valid"] is False
    assert data["waves"][0]["errors"] == len(plan.findings)
    markdown = render_markdown(plan)
    assert "| `wave-1` ❌ not planned | - | - | - | - |" in markdown
    assert f"**Not planned until it validates:** `{WAVE}`" in markdown
    assert "**Removed**" not in markdown


def test_an_invalid_wave_does_not_hide_the_plan_of_the_others(git_repo: GitRepo) -> None:
    wave_2 = "manifests/waves/wave-2.yaml"
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.write(wave_2, wave_text("wave-2", [VmText("db-01")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01", instance_type="t3.huge")]))
    git_repo.write(wave_2, wave_text("wave-2", [VmText("db-01"), VmText("db-02")]))
    # A new wave file that is broken from the start is shown under its file name.
    git_repo.write("manifests/waves/wave-3.yaml", "name: [wave-3\n")
    git_repo.commit("one typo, one addition, one broken new file")

    plan = _plan(git_repo, base)

    by_name = {w.name: w for w in plan.waves}
    assert sorted(by_name) == ["wave-1", "wave-2", "wave-3"]
    assert [w.name for w in plan.not_planned] == ["wave-1", "wave-3"]
    assert [p.vm.effective_vm.target_vm_name for p in by_name["wave-2"].added] == ["db-02"]
    assert by_name["wave-2"].unchanged_count == 1
    assert plan.totals == {"added": 1, "changed": 0, "removed": 0, "unchanged": 1}
    # The head is invalid, so publish still sends nothing.
    assert plan.as_json()["publish"] == {"messages": [], "cancellations": []}


def test_a_deleted_wave_file_is_still_a_removal(git_repo: GitRepo) -> None:
    wave_2 = "manifests/waves/wave-2.yaml"
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.write(wave_2, wave_text("wave-2", [VmText("db-01")]))
    base = git_repo.commit("base")
    git_repo.remove(wave_2)
    git_repo.commit("drop wave-2")

    plan = _plan(git_repo, base)

    assert plan.valid
    assert plan.totals["removed"] == 1


def test_files_outside_the_waves_folder_are_ignored(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.write("manifests/wave.schema.json", "{}")
    git_repo.write("docs/notes.yaml", "not: [a wave")
    git_repo.commit("base")

    assert _plan(git_repo, EMPTY_TREE).valid


def test_plan_json_is_stable_and_documented_shape(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01", instance_type="t3.xlarge")]))
    head = git_repo.commit("resize", author="Bo Reviewer <bo@contoso.com>")
    monkeypatch.chdir(git_repo.root)

    assert cli.main(["plan", "--base", base, "--format", "json"]) == cli.EXIT_OK
    first = capsys.readouterr().out
    assert cli.main(["plan", "--base", base, "--head", head, "--format", "json"]) == cli.EXIT_OK
    assert capsys.readouterr().out == first

    data = json.loads(first)
    assert list(data) == [
        "schemaVersion", "base", "head", "valid", "totals", "findings", "waves", "publish"
    ]  # fmt: skip
    assert data["totals"] == {"added": 0, "changed": 1, "removed": 0, "unchanged": 0}
    [message] = data["publish"]["messages"]
    assert message["provenance"] == {
        "commit": head,
        "manifestPath": WAVE,
        "line": 19,
        "author": "Bo Reviewer <bo@contoso.com>",
    }
    assert data["waves"][0]["changed"][0]["changes"] == [
        {"field": "instanceType", "old": "t3.large", "new": "t3.xlarge"}
    ]


def test_unknown_revision_is_a_usage_error(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("base")
    monkeypatch.chdir(git_repo.root)

    assert cli.main(["plan", "--base", "no-such-branch"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith(
        "wavepilot plan: unknown revision 'no-such-branch': no branch, tag or commit of that name"
    )
    with pytest.raises(GitError):
        GitRepository(git_repo.root).resolve("no-such-branch")


def test_large_plans_are_summarised_under_the_comment_limit(git_repo: GitRepo) -> None:
    vms = [VmText(f"web-{index:03d}") for index in range(400)]
    git_repo.write(WAVE, wave_text("wave-1", vms))
    git_repo.commit("big")
    plan = _plan(git_repo, EMPTY_TREE)

    full = render_markdown(plan, budget=10**9)
    short = render_markdown(plan, budget=20_000)

    assert len(full) > 20_000
    assert len(short) <= 20_000
    assert "over GitHub's comment limit" in short
    assert "| `wave-1` | 400 | 0 | 0 | 0 |" in short


def test_a_base_rewritten_by_a_force_push_is_refused_with_what_to_do(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("base")

    with pytest.raises(GitError, match="force push") as raised:
        GitRepository(git_repo.root).resolve("f" * 40)

    assert "wavepilot publish --base <that commit>" in str(raised.value)


def test_a_base_validated_in_a_second_process_plans_the_same(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a base and a head that differ in every file (changed, added, removed VMs)
    for wave in ("wave-1", "wave-2"):
        vms = [VmText(f"{wave}-vm-{index}") for index in range(3)]
        git_repo.write(f"manifests/waves/{wave}.yaml", wave_text(wave, vms))
    base = git_repo.commit("base")
    for wave in ("wave-1", "wave-2"):
        vms = [VmText(f"{wave}-vm-0", instance_type="m6i.large"), VmText(f"{wave}-vm-2")]
        git_repo.write(
            f"manifests/waves/{wave}.yaml", wave_text(wave, [*vms, VmText(f"{wave}-new")])
        )
    git_repo.commit("head")
    git = GitRepository(git_repo.root)
    pids = tmp_path / "pids"
    validated = plan_module.ValidatedBase.of

    def recording(*args: Any) -> Any:
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return validated(*args)

    monkeypatch.setattr(plan_module.ValidatedBase, "of", recording)

    # WHEN it is planned with the base validated here, then in a forked process
    here = build_plan(git, git.resolve(base), git.resolve("HEAD"), now=NOW, parallel=False)
    forked = build_plan(git, git.resolve(base), git.resolve("HEAD"), now=NOW, parallel=True)

    # THEN the plans are identical, and the second really came from another process
    assert forked.as_json() == here.as_json()
    assert forked.totals == {"added": 2, "changed": 2, "removed": 2, "unchanged": 2}
    assert render_markdown(forked) == render_markdown(here)
    # ValidatedBase.of runs for the shared files and the base's own, here; then in a child.
    here_pids, forked_pids = pids.read_text().split()[:2], pids.read_text().split()[2:]
    assert set(map(int, here_pids)) == {os.getpid()}
    assert sorted(int(pid) != os.getpid() for pid in forked_pids) == [False, True]


def _app_text(name: str, depends_on: list[str], *vms: VmText) -> str:
    head = f"  - name: {name}\n    dependsOn: [{', '.join(depends_on)}]\n    vms:\n"
    return head + "".join(vm.render() for vm in vms)


def test_the_plan_shows_each_waves_cutover_order_in_markdown_and_json(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("db-01")], app="db"))
    git_repo.write("manifests/waves/wave-2.yaml", wave_text("wave-2", [VmText("solo-01")]))
    base = git_repo.commit("base")
    git_repo.write(
        WAVE,
        wave_text("wave-1", [VmText("db-01")], app="db")
        + _app_text("cache", [], VmText("cache-01"))
        + _app_text("api", ["db", "cache"], VmText("api-01"))
        + _app_text("web", ["api"], VmText("web-01")),
    )
    git_repo.commit("api and web after db and cache")

    plan = _plan(git_repo, base)

    assert plan.valid, plan.findings
    waves = {w["name"]: w for w in plan.as_json()["waves"]}
    assert waves["wave-1"]["cutoverOrder"] == [["db", "cache"], ["api"], ["web"]]
    assert waves["wave-2"]["cutoverOrder"] == []
    markdown = render_markdown(plan)
    assert "- `wave-1`: 1. `db`, `cache` → 2. `api` → 3. `web`\n" in markdown
    assert "`wave-2`:" not in markdown
    api = next(p for p in plan.waves[0].added if p.vm.effective_vm.app_name == "api")
    assert api.vm.effective_vm.cutover_after == ["db", "cache"]


def test_a_plan_without_dependencies_shows_no_cutover_order(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("first wave")

    plan = _plan(git_repo, EMPTY_TREE)

    assert plan.as_json()["waves"][0]["cutoverOrder"] == []
    assert "Cutover order" not in render_markdown(plan)


def test_a_dependency_cycle_is_an_error_in_the_plan_and_no_order_is_shown(
    git_repo: GitRepo,
) -> None:
    git_repo.write(
        WAVE,
        wave_text("wave-1", [VmText("db-01")], app="db")
        + _app_text("api", ["web"], VmText("api-01"))
        + _app_text("web", ["api"], VmText("web-01")),
    )
    git_repo.commit("a cycle")

    plan = _plan(git_repo, EMPTY_TREE)

    assert not plan.valid
    [finding] = plan.findings
    assert finding.path == WAVE
    assert "dependsOn makes a cycle, api -> web -> api" in finding.message
    assert plan.as_json()["waves"][0]["cutoverOrder"] == []
    markdown = render_markdown(plan)
    assert "Cutover order" not in markdown
    assert f"`{WAVE}:{finding.line}:{finding.col}`" in markdown
