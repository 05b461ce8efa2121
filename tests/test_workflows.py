"""The GitHub workflows keep to least privilege and pinned actions (zizmor checks more)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestration.packaging import Target
from tests.conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$")
# The pinned releases: the full commit SHA of each release tag, as read from its repository.
RELEASES = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "hashicorp/setup-terraform": ("dfe3c3f87815947d99a8997f908cb6525fc44e9e", "v4.0.1"),
}
# Jobs allowed each elevated permission, as (workflow file, job id).
MAY_WRITE_PULL_REQUESTS = {("manifests.yml", "plan"), ("manifests.yml", "plan-mgn-drift")}
MAY_MINT_ID_TOKENS = {
    ("publish.yml", "publish"),
    ("deploy.yml", "plan"),
    ("deploy.yml", "apply"),
    # Only when WAVEPILOT_MANIFEST_PLAN_ROLE_ARN is set (the job's condition), for a role that
    # may only assume the lanes' read-only grouping readers (terraform/github_oidc.tf).
    ("manifests.yml", "plan-mgn-drift"),
}


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, job)
        for path in WORKFLOWS
        for job_id, job in _load(path)["jobs"].items()
    ]


def _job_ids() -> list[str]:
    return [f"{name}:{job_id}" for name, job_id, _ in _jobs()]


def test_the_expected_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "deploy.yml", "manifests.yml", "publish.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_grants_nothing_by_default(path: Path) -> None:
    assert _load(path)["permissions"] == {}


@pytest.mark.parametrize(("workflow", "job_id", "job"), _jobs(), ids=_job_ids())
def test_every_job_declares_permissions_and_a_timeout(
    workflow: str, job_id: str, job: dict[str, Any]
) -> None:
    permissions = job["permissions"]
    assert permissions["contents"] == "read"
    assert isinstance(job["timeout-minutes"], int)
    assert 0 < job["timeout-minutes"] <= 60
    allowed_pr_write = (workflow, job_id) in MAY_WRITE_PULL_REQUESTS
    assert (permissions.get("pull-requests") == "write") is allowed_pr_write
    assert (permissions.get("id-token") == "write") is ((workflow, job_id) in MAY_MINT_ID_TOKENS)
    assert "write-all" not in str(permissions)


@pytest.mark.parametrize(("workflow", "job_id", "job"), _jobs(), ids=_job_ids())
def test_checkout_never_persists_the_token(workflow: str, job_id: str, job: dict[str, Any]) -> None:
    checkouts = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    text = path.read_text(encoding="utf-8").splitlines()
    lines = [line for line in text if USES_LINE.match(line)]
    assert lines
    for line in lines:
        assert PINNED_USES.match(line), line
        action, _, rest = line.split("uses:", 1)[1].strip().partition("@")
        sha, _, version = rest.partition(" # ")
        assert RELEASES[action] == (sha, version), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_run_scripts_never_expand_event_values_inline(path: Path) -> None:
    for _, _, job in ((path.name, i, j) for i, j in _load(path)["jobs"].items()):
        for step in job["steps"]:
            assert "${{" not in str(step.get("run", "")), step


def test_publish_sends_exactly_the_pushed_range_one_run_at_a_time() -> None:
    workflow = _load(REPO_ROOT / ".github" / "workflows" / "publish.yml")
    assert workflow["concurrency"]["cancel-in-progress"] is False
    job = workflow["jobs"]["publish"]
    assert job["environment"] == "production"
    [publish] = [s for s in job["steps"] if "wavepilot publish" in str(s.get("run", ""))]
    assert publish["env"]["BEFORE"] == "${{ github.event.before }}"
    assert publish["env"]["AFTER"] == "${{ github.sha }}"
    assert publish["run"] == '.venv/bin/wavepilot publish --base "$BEFORE" --head "$AFTER"'


def test_pull_request_job_validates_and_comments_the_plan_in_one_step() -> None:
    workflow = _load(REPO_ROOT / ".github" / "workflows" / "manifests.yml")
    # PyYAML reads the `on` key as the boolean True.
    assert workflow[True]["pull_request"]["paths"] == ["manifests/**"]
    job = workflow["jobs"]["plan"]
    # Today's job, exactly, unless the repository asks for MGN drift in the plan.
    assert job["if"] == "${{ vars.WAVEPILOT_MANIFEST_PLAN_ROLE_ARN == '' }}"
    assert job["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "statuses": "write",
    }
    runs = [s["run"] for s in job["steps"] if "run" in s]
    # plan validates the head itself: a separate `validate` step would annotate every
    # error a second time.
    assert runs == ["make venv", ".venv/bin/wavepilot plan --comment"]
    [checkout] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0


def test_with_the_manifest_plan_role_the_same_job_also_reads_mgn_drift_read_only() -> None:
    workflow = _load(REPO_ROOT / ".github" / "workflows" / "manifests.yml")
    plain, drift = workflow["jobs"]["plan"], workflow["jobs"]["plan-mgn-drift"]
    # GIVEN the repository variable: exactly one of the two jobs runs
    assert drift["if"] == "${{ vars.WAVEPILOT_MANIFEST_PLAN_ROLE_ARN != '' }}"
    assert plain["if"].replace("==", "!=") == drift["if"]
    # THEN the drift job may do what the plain one may, and mint an OIDC token: nothing else
    assert drift["permissions"] == {**plain["permissions"], "id-token": "write"}
    assert drift["timeout-minutes"] == plain["timeout-minutes"]
    # AND it assumes the manifest plan role, briefly, before the plan and without failing the
    # job when it cannot (the plan then warns that MGN was not read)
    names = [s.get("uses", s.get("run")) for s in drift["steps"]]
    [credentials] = [
        s
        for s in drift["steps"]
        if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
    ]
    sha, _ = RELEASES["aws-actions/configure-aws-credentials"]
    assert credentials["uses"] == f"aws-actions/configure-aws-credentials@{sha}"
    assert credentials["continue-on-error"] is True
    assert credentials["with"] == {
        "role-to-assume": "${{ vars.WAVEPILOT_MANIFEST_PLAN_ROLE_ARN }}",
        "aws-region": "${{ vars.AWS_REGION }}",
        "role-duration-seconds": 900,
    }
    [plan] = [s for s in drift["steps"] if "wavepilot plan" in str(s.get("run", ""))]
    assert names.index(credentials["uses"]) < names.index(plan["run"])
    assert plan["run"] == ".venv/bin/wavepilot plan --comment --mgn-drift"
    # AND in the lanes it assumes the read-only grouping reader, never the steps' target role
    assert plan["env"]["TARGET_ROLE_NAME"].startswith(
        "${{ vars.WAVEPILOT_GROUPING_READER_ROLE_NAME || "
    )
    assert "-target" not in plan["env"]["TARGET_ROLE_NAME"]
    assert plan["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    # AND otherwise the two jobs are the same: checkout, Python, install
    same = [s for s in drift["steps"] if s is not credentials and s is not plan]
    assert same == [s for s in plain["steps"] if "wavepilot plan" not in str(s.get("run", ""))]


def test_ci_has_the_lambda_runtimes_python_for_the_package_import_check() -> None:
    # GIVEN the CI job's Python setup
    job = _load(REPO_ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]
    [setup] = [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")
    ]
    versions = str(setup["with"]["python-version"]).split()
    # THEN the runtime's version is there for tests/test_package.py, the project's is python3
    assert Target().python_version in versions
    assert versions[-1] == "3.11"


def test_make_lint_checks_the_workflows_against_githubs_schema_offline() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert (
        "$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml"
        in lint
    )
    assert "$(BIN)/zizmor --offline" in lint
