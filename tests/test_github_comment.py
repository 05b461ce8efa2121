"""The plan on its pull request: PyGithub over real HTTP against a GitHub stand-in."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
import yaml

from orchestration import cli, wiring
from orchestration.gitops import github_comment
from orchestration.gitops.git import EMPTY_TREE, GitRepository
from orchestration.gitops.github_comment import (
    COMMENT_MARKER,
    STATUS_CONTEXT,
    ActionsContext,
    ActionsContextError,
    ClientOptions,
    GitHubReportError,
    PlanCommenter,
    comment_body,
    github_client,
)
from orchestration.gitops.plan import Plan, build_plan
from orchestration.gitops.render import GITHUB_COMMENT_LIMIT
from tests.conftest import NOW
from tests.support.github_server import GitHubState, github_stand_in
from tests.support.gitrepo import GitRepo
from tests.support.waves import VmText, wave_text

REPO = "contoso/waves"
PR = 42
WAVE = "manifests/waves/wave-1.yaml"
BASE_SHA = "a" * 40
HEAD_SHA = "b" * 40
# No waiting anywhere, except what the stand-in's Retry-After: 1 asks for.
FAST = ClientOptions(
    seconds_between_requests=0,
    seconds_between_writes=0,
    retries=4,
    backoff_factor=0,
    secondary_rate_wait=0,
    max_rate_limit_wait=5,
    timeout=10,
)


@pytest.fixture
def github() -> Iterator[GitHubState]:
    with github_stand_in() as state:
        state.add_pull(REPO, PR, base_sha=BASE_SHA, head_sha=HEAD_SHA)
        yield state


@pytest.fixture
def commenter(github: GitHubState) -> Iterator[PlanCommenter]:
    client = github_client("ghs_test", github.base_url, FAST)
    yield PlanCommenter(client, REPO)
    client.close()


def _ours(github: GitHubState) -> list[str]:
    return [c["body"] for c in github.comments_on(REPO, PR) if c["body"].startswith(COMMENT_MARKER)]


def _writes(github: GitHubState) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in github.requests if r.method != "GET"]


def test_first_run_creates_one_comment_with_the_token(
    github: GitHubState, commenter: PlanCommenter
) -> None:
    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nfirst plan")

    assert _ours(github) == [f"{COMMENT_MARKER}\nfirst plan"]
    assert _writes(github) == [("POST", f"/repos/{REPO}/issues/{PR}/comments", 201)]
    assert {r.authorization for r in github.requests} == {"token ghs_test"}


def test_second_run_edits_the_comment_found_across_pages(
    github: GitHubState, commenter: PlanCommenter
) -> None:
    # GIVEN our comment, then 130 others after it, so it is not on the first page
    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nfirst plan")
    for index in range(130):
        github.add_comment(REPO, PR, f"review comment {index}")
    github.add_comment(REPO, PR, f"> {COMMENT_MARKER}\n> quoting the plan is not ours")
    github.requests.clear()

    # WHEN the next push reports again
    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nsecond plan")

    # THEN the one comment is edited in place, found by following the Link header
    assert _ours(github) == [f"{COMMENT_MARKER}\nsecond plan"]
    assert len(github.comments_on(REPO, PR)) == 132
    listings = [r for r in github.requests if r.path.endswith(f"/issues/{PR}/comments")]
    assert [r.query.get("page", ["1"])[0] for r in listings] == ["1", "2"]
    assert [r.query["per_page"] for r in listings] == [["100"], ["100"]]
    [(method, path, status)] = _writes(github)
    assert (method, status) == ("PATCH", 200)
    assert path.startswith(f"/repos/{REPO}/issues/comments/")


def test_an_unchanged_plan_is_not_rewritten(github: GitHubState, commenter: PlanCommenter) -> None:
    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nsame")
    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nsame")

    assert len(_writes(github)) == 1


def test_duplicates_left_by_a_retried_post_are_folded_into_one(
    github: GitHubState, commenter: PlanCommenter
) -> None:
    older = github.add_comment(REPO, PR, f"{COMMENT_MARKER}\nold", user="github-actions[bot]")
    github.add_comment(REPO, PR, f"{COMMENT_MARKER}\nold", user="github-actions[bot]")

    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nnew")

    assert _ours(github) == [f"{COMMENT_MARKER}\nnew"]
    assert ("DELETE", f"/repos/{REPO}/issues/comments/{older}", 204) in _writes(github)


def test_secondary_rate_limit_and_502_are_retried_and_comment_once(
    github: GitHubState, commenter: PlanCommenter
) -> None:
    # GIVEN GitHub answers the first request 502 and the first two writes 403 Retry-After: 1
    github.fail_next_request(502)
    github.rate_limit_next_writes(2)
    started = time.monotonic()

    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nplan")

    # THEN both were retried, Retry-After was honoured, and there is still one comment
    assert time.monotonic() - started >= 2
    assert github.requests[0].status == 502
    post = f"/repos/{REPO}/issues/{PR}/comments"
    assert _writes(github) == [("POST", post, 403), ("POST", post, 403), ("POST", post, 201)]
    assert _ours(github) == [f"{COMMENT_MARKER}\nplan"]


def test_a_429_with_retry_after_is_retried(github: GitHubState, commenter: PlanCommenter) -> None:
    github.fail_next_request(429)

    commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nplan")

    assert [r.status for r in github.requests][:2] == [429, 200]
    assert len(_ours(github)) == 1


def test_persistent_failure_becomes_a_report_error(
    github: GitHubState, commenter: PlanCommenter
) -> None:
    for _ in range(FAST.retries + 1):
        github.fail_next_request(500)

    with pytest.raises(GitHubReportError, match="cannot comment on #42"):
        commenter.post_plan_comment(PR, f"{COMMENT_MARKER}\nplan")


def test_a_rate_limit_that_outlasts_the_retries_becomes_a_report_error(
    github: GitHubState,
) -> None:
    client = github_client("ghs_test", github.base_url, replace(FAST, retries=1))
    github.rate_limit_next_writes(5)

    with pytest.raises(GitHubReportError, match="cannot comment on #42"):
        PlanCommenter(client, REPO).post_plan_comment(PR, f"{COMMENT_MARKER}\nplan")
    assert _ours(github) == []


def test_commit_status_has_the_plan_context(github: GitHubState, commenter: PlanCommenter) -> None:
    github.rate_limit_next_writes(1)

    commenter.set_commit_status(HEAD_SHA, "failure", "2 errors", "https://ci.example/run/1")

    assert github.statuses == [
        {
            "sha": HEAD_SHA,
            "state": "failure",
            "description": "2 errors",
            "target_url": "https://ci.example/run/1",
            "context": STATUS_CONTEXT,
        }
    ]


def _plan(repo: GitRepo, base: str, head: str = "HEAD") -> Plan:
    git = GitRepository(repo.root)
    return build_plan(git, git.resolve(base), git.resolve(head), now=NOW)


def test_oversized_plan_is_summarised_and_points_at_the_job_summary(git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText(f"web-{i:04d}") for i in range(600)]))
    git_repo.commit("a very big wave")

    body = comment_body(_plan(git_repo, EMPTY_TREE), run_url="https://ci.example/run/7")

    assert len(body) <= GITHUB_COMMENT_LIMIT
    assert body.startswith(COMMENT_MARKER)
    assert "| `wave-1` | 600 | 0 | 0 | 0 |" in body
    assert body.rstrip().endswith(
        "The full plan is in the [job summary](https://ci.example/run/7)."
    )


# The pull request job, run the way the workflow runs it.


@pytest.fixture
def pull_request(
    git_repo: GitRepo,
    github: GitHubState,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A base and head commit, the pull_request event, GITHUB_* and the stand-in; returns
    the job summary file."""
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("base")
    git_repo.commit("the head, amended by each push")
    event = tmp_path / "event.json"
    summary = tmp_path / "step_summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": "ghs_job",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github.base_url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "9001",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(github_comment, "DEFAULT_CLIENT_OPTIONS", FAST)
    monkeypatch.chdir(git_repo.root)
    return summary


def _push(git_repo: GitRepo, github: GitHubState, text: str) -> str:
    """Amend the PR head to carry ``text`` and write the event GitHub would send."""
    git_repo.write(WAVE, text)
    git_repo.git("commit", "--quiet", "--amend", "--allow-empty", "-a", "-m", "change the wave")
    head = git_repo.git("rev-parse", "HEAD")
    base = git_repo.git("rev-parse", "HEAD~1")
    github.pulls[(REPO, PR)] = {"base": base, "head": head}
    event = {"action": "synchronize", "number": PR}
    event["pull_request"] = {"number": PR, "base": {"sha": base}, "head": {"sha": head}}
    Path(os.environ["GITHUB_EVENT_PATH"]).write_text(json.dumps(event), encoding="utf-8")
    return head


def test_pr_job_with_valid_manifests_comments_sets_success_and_exits_0(
    git_repo: GitRepo,
    github: GitHubState,
    pull_request: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    head = _push(git_repo, github, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))

    status = cli.main(["plan", "--comment"])

    assert status == cli.EXIT_OK
    assert "::error" not in capsys.readouterr().out
    [body] = _ours(github)
    assert "Merging publishes 1 migration request" in body
    assert f"**Verdict:** ✅ `{head[:7]}` is ready to merge as planned." in body
    assert "`web-02`" in body
    summary = pull_request.read_text(encoding="utf-8")
    assert summary.startswith(f"### Wavepilot plan `{git_repo.git('rev-parse', 'HEAD~1')[:7]}`")
    assert "`web-02`" in summary
    assert github.statuses == [
        {
            "sha": head,
            "state": "success",
            "description": "valid: merging publishes 1 request",
            "target_url": f"https://github.com/{REPO}/actions/runs/9001",
            "context": STATUS_CONTEXT,
        }
    ]


def test_pr_job_with_invalid_manifests_annotates_comments_failure_and_exits_1(
    git_repo: GitRepo,
    github: GitHubState,
    pull_request: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a first, valid push already commented on
    _push(git_repo, github, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))
    assert cli.main(["plan", "--comment"]) == cli.EXIT_OK
    capsys.readouterr()

    # WHEN the next push has a typo in an instance type
    head = _push(git_repo, github, wave_text("wave-1", [VmText("web-01", instance_type="t3.huge")]))
    status = cli.main(["plan", "--comment"])

    # THEN: an annotation on the line, the same comment now failing, a failure status, exit 1
    assert status == cli.EXIT_INVALID
    out = capsys.readouterr().out
    [annotation] = [line for line in out.splitlines() if line.startswith("::error")]
    assert annotation.startswith(f"::error file={WAVE},line=23,col=23,title=wavepilot validate::")
    [body] = _ours(github)
    assert "❌ 1 error in the manifests" in body
    assert f"`{WAVE}:23:23`" in body
    assert f"**Verdict:** ❌ `{head[:7]}` cannot be merged: fix the errors above." in body
    assert "❌ 1 error in the manifests" in pull_request.read_text(encoding="utf-8")
    assert [(s["sha"], s["state"]) for s in github.statuses][-1] == (head, "failure")
    assert github.statuses[-1]["description"] == "1 error in the wave manifests"


def test_the_workflow_annotates_each_error_once(
    git_repo: GitRepo,
    github: GitHubState,
    pull_request: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a push with two errors, and every wavepilot step of the real workflow file
    workflow = yaml.safe_load(
        (Path(__file__).parent.parent / ".github/workflows/manifests.yml").read_text("utf-8")
    )
    steps = [
        shlex.split(step["run"])[1:]
        for step in workflow["jobs"]["plan"]["steps"]
        if str(step.get("run", "")).startswith(".venv/bin/wavepilot ")
    ]
    _push(
        git_repo,
        github,
        wave_text(
            "wave-1",
            [VmText("web-01", instance_type="t3.huge"), VmText("web-02", extra=["colour: blue"])],
        ),
    )

    # WHEN the job runs them in order
    statuses = [cli.main(argv) for argv in steps]

    # THEN it fails, and each error is annotated exactly once
    assert statuses[-1] == cli.EXIT_INVALID
    annotations = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("::error ")
    ]
    assert len(annotations) == len(set(annotations)) == 2


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AWS credentials anywhere (environment, files, instance metadata): as the MGN drift
    job runs when its role could not be assumed. Nothing is sent: signing fails first."""
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # not one that resolved others
    wiring.reset()
    yield
    wiring.reset()


@pytest.mark.usefixtures("pull_request", "no_aws")
def test_the_drift_job_without_aws_credentials_still_posts_the_plan_with_a_warning(
    git_repo: GitRepo,
    github: GitHubState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the MGN drift job's wavepilot step of the real workflow, its role not assumed
    workflow = yaml.safe_load(
        (Path(__file__).parent.parent / ".github/workflows/manifests.yml").read_text("utf-8")
    )
    [step] = [
        step
        for step in workflow["jobs"]["plan-mgn-drift"]["steps"]
        if str(step.get("run", "")).startswith(".venv/bin/wavepilot ")
    ]
    monkeypatch.setenv("TARGET_ROLE_NAME", "wavepilot-prod-grouping-reader")
    head = _push(git_repo, github, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))

    # WHEN the job runs it
    status = cli.main(shlex.split(step["run"])[1:])

    # THEN the plan is posted and passes; a warning at web-02's line says MGN was not read
    assert status == cli.EXIT_OK
    [body] = _ours(github)
    assert f"**Verdict:** ✅ `{head[:7]}` is ready to merge as planned." in body
    assert (
        f"| `{WAVE}:24:1` | MGN drift not checked for 1 VM of this file (web-02): target "
        "account 123456789012 (Region us-east-1) could not be read: Unable to locate credentials"
    ) in body
    assert github.statuses[-1]["state"] == "success"
    out = capsys.readouterr().out
    assert f"::warning file={WAVE},line=24,col=1,title=wavepilot validate::MGN drift" in out
    assert "::error" not in out


def test_pr_job_fails_when_github_keeps_refusing(
    git_repo: GitRepo,
    github: GitHubState,
    pull_request: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _push(git_repo, github, wave_text("wave-1", [VmText("web-01")]))
    for _ in range(FAST.retries + 1):
        github.fail_next_request(503)

    assert cli.main(["plan", "--comment"]) == cli.EXIT_INVALID
    captured = capsys.readouterr()
    assert "::error title=wavepilot plan::cannot comment on #42: HTTP 503" in captured.out
    assert "cannot comment on #42" in captured.err


def test_plan_without_base_or_comment_is_a_usage_error(
    git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit("empty")
    monkeypatch.chdir(git_repo.root)

    assert cli.main(["plan"]) == cli.EXIT_USAGE
    assert "--base is required" in capsys.readouterr().err


def test_comment_outside_a_pull_request_event_is_a_usage_error(tmp_path: Path) -> None:
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"before": BASE_SHA, "after": HEAD_SHA}), encoding="utf-8")
    environ = {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": REPO, "GITHUB_EVENT_PATH": str(push)}

    with pytest.raises(ActionsContextError, match="not a pull_request event"):
        ActionsContext.from_environ(environ)
    with pytest.raises(ActionsContextError, match="GITHUB_TOKEN"):
        ActionsContext.from_environ({})


def test_context_defaults_to_the_public_api(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    pull = {"number": 3, "base": {"sha": BASE_SHA}, "head": {"sha": HEAD_SHA}}
    event.write_text(json.dumps({"pull_request": pull}), encoding="utf-8")
    environ = {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": REPO, "GITHUB_EVENT_PATH": str(event)}

    context = ActionsContext.from_environ(environ)

    assert (context.api_url, context.pr_number, context.base_sha, context.head_sha) == (
        "https://api.github.com",
        3,
        BASE_SHA,
        HEAD_SHA,
    )
    assert context.run_url is None
    assert context.step_summary is None
