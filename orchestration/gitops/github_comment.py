"""Report a plan on its pull request: a sticky comment, a commit status, the job summary.

`wavepilot plan --comment` runs this inside the pull request workflow. The comment is found
again on every push by a hidden marker and edited in place, so a pull request carries one
plan comment however often it is pushed. Rate limits (403/429 with ``Retry-After``) and
server errors (5xx) are retried by PyGithub's :class:`~github.GithubRetry`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.IssueComment import IssueComment
from github.Repository import Repository

from orchestration.gitops.plan import Plan
from orchestration.gitops.render import (
    GITHUB_COMMENT_LIMIT,
    PLAN_MARKDOWN_BUDGET,
    render_full_markdown,
    render_markdown,
)
from orchestration.manifests.findings import Severity

COMMENT_MARKER = "<!-- wavepilot:plan -->"
STATUS_CONTEXT = "wavepilot/plan"
DEFAULT_API_URL = "https://api.github.com"
# A commit status description is cut by GitHub at 140 characters.
_STATUS_DESCRIPTION_LIMIT = 140

StatusState = Literal["error", "failure", "pending", "success"]


class ActionsContextError(Exception):
    """The GitHub Actions environment lacks what ``plan --comment`` needs."""


class GitHubReportError(Exception):
    """GitHub refused a request even after retries."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How patient the client is. Tests shrink every wait to (nearly) nothing.

    Attributes:
        seconds_between_requests: spacing of all requests (PyGithub's default).
        seconds_between_writes: spacing of POST/PATCH/DELETE requests, which keeps the
            client under GitHub's secondary limit of 80 content-creating requests a minute.
        retries: attempts after the first for rate limits and 5xx responses.
        backoff_factor: exponential backoff between retries without ``Retry-After``.
        secondary_rate_wait: wait after a secondary rate limit that names no ``Retry-After``.
        max_rate_limit_wait: give up rather than wait longer than this for a limit to reset.
        timeout: seconds per HTTP request.
    """

    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    retries: int = 6
    backoff_factor: float = 1.0
    secondary_rate_wait: float = 60.0
    max_rate_limit_wait: float = 300.0
    timeout: int = 30


DEFAULT_CLIENT_OPTIONS = ClientOptions()


@dataclass(frozen=True, slots=True)
class ActionsContext:
    """What the pull request workflow tells a step through its environment."""

    token: str
    repository: str
    api_url: str
    pr_number: int
    base_sha: str
    head_sha: str
    run_url: str | None
    step_summary: Path | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ActionsContext:
        """Read GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL and the event payload."""
        token = environ.get("GITHUB_TOKEN", "")
        repository = environ.get("GITHUB_REPOSITORY", "")
        event_path = environ.get("GITHUB_EVENT_PATH", "")
        missing = [
            name
            for name, value in (
                ("GITHUB_TOKEN", token),
                ("GITHUB_REPOSITORY", repository),
                ("GITHUB_EVENT_PATH", event_path),
            )
            if not value
        ]
        if missing:
            raise ActionsContextError(f"--comment needs {', '.join(missing)} in the environment")
        try:
            event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ActionsContextError(f"cannot read the event {event_path}: {exc}") from None
        pull = event.get("pull_request") if isinstance(event, dict) else None
        if not isinstance(pull, dict):
            raise ActionsContextError(
                f"{event_path} is not a pull_request event: --comment runs on pull requests"
            )
        try:
            number = int(pull["number"])
            base_sha = str(pull["base"]["sha"])
            head_sha = str(pull["head"]["sha"])
        except (KeyError, TypeError, ValueError):
            raise ActionsContextError(
                f"{event_path} lacks pull_request.number, base.sha or head.sha"
            ) from None
        server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        run_id = environ.get("GITHUB_RUN_ID")
        summary = environ.get("GITHUB_STEP_SUMMARY")
        return cls(
            token=token,
            repository=repository,
            api_url=environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
            pr_number=number,
            base_sha=base_sha,
            head_sha=head_sha,
            run_url=f"{server}/{repository}/actions/runs/{run_id}" if run_id else None,
            step_summary=Path(summary) if summary else None,
        )


def github_client(
    token: str, api_url: str = DEFAULT_API_URL, options: ClientOptions = DEFAULT_CLIENT_OPTIONS
) -> Github:
    """A PyGithub client that retries rate limits and server errors, and spaces its writes."""
    retry = GithubRetry(
        total=options.retries,
        backoff_factor=options.backoff_factor,
        secondary_rate_wait=options.secondary_rate_wait,
        max_rate_limit_wait=options.max_rate_limit_wait,
        # GithubRetry retries 403 (when it is a rate limit) and 5xx; add 429, which GitHub
        # also sends for secondary limits, and PATCH, since editing a comment is idempotent.
        status_forcelist=[*range(500, 600), 429],
        allowed_methods=frozenset({"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    return Github(
        auth=Auth.Token(token),
        base_url=api_url.rstrip("/"),
        retry=retry,
        seconds_between_requests=options.seconds_between_requests,
        seconds_between_writes=options.seconds_between_writes,
        per_page=100,
        timeout=options.timeout,
    )


class PlanCommenter:
    """Sticky plan comments and commit statuses on one repository."""

    def __init__(self, client: Github, repo_full_name: str) -> None:
        self._client = client
        self._repo_full_name = repo_full_name
        self._repo: Repository | None = None

    def _repository(self) -> Repository:
        if self._repo is None:
            self._repo = self._client.get_repo(self._repo_full_name)
        return self._repo

    def post_plan_comment(self, pr_number: int, body: str) -> IssueComment:
        """Edit this tool's earlier comment on the pull request, else create one.

        ``body`` must start with :data:`COMMENT_MARKER`. Should a retried POST ever have
        left two marked comments, the newest is kept and the others are deleted.
        """
        if not body.startswith(COMMENT_MARKER):
            raise ValueError("a plan comment body must start with the marker")
        try:
            pull = self._repository().get_pull(pr_number)
            # Only comments that *start* with the marker: a reply quoting ours starts with ">".
            ours = [c for c in pull.get_issue_comments() if c.body.startswith(COMMENT_MARKER)]
            if not ours:
                return pull.create_issue_comment(body)
            keep, *extra = sorted(ours, key=lambda c: c.id, reverse=True)
            if keep.body != body:
                keep.edit(body)
            for duplicate in extra:
                duplicate.delete()
            return keep
        except (GithubException, requests.RequestException) as exc:
            raise GitHubReportError(f"cannot comment on #{pr_number}: {_explain(exc)}") from exc

    def set_commit_status(
        self, sha: str, state: StatusState, description: str, target_url: str | None = None
    ) -> None:
        """Set the ``wavepilot/plan`` status that branch protection can require."""
        description = description[:_STATUS_DESCRIPTION_LIMIT]
        try:
            commit = self._repository().get_commit(sha)
            if target_url:
                commit.create_status(
                    state, target_url=target_url, description=description, context=STATUS_CONTEXT
                )
            else:
                commit.create_status(state, description=description, context=STATUS_CONTEXT)
        except (GithubException, requests.RequestException) as exc:
            raise GitHubReportError(f"cannot set the status of {sha[:7]}: {_explain(exc)}") from exc


def _explain(exc: GithubException | requests.RequestException) -> str:
    if isinstance(exc, requests.RequestException):
        # Retries ran out (urllib3 gives up on a rate limit with a RetryError) or no connection.
        return f"{type(exc).__name__}: {exc}"
    message = exc.data.get("message") if isinstance(exc.data, dict) else None
    return f"HTTP {exc.status}: {message or exc.data}"


def comment_body(plan: Plan, *, run_url: str | None = None) -> str:
    """Marker, the plan (summarised when too long for a comment) and a one-line verdict."""
    markdown = render_markdown(plan)
    summarised = len(render_full_markdown(plan)) > PLAN_MARKDOWN_BUDGET
    where = f"the [job summary]({run_url})" if run_url else "the job summary"
    verdict = (
        f"**Verdict:** ✅ `{plan.head.short}` is ready to merge as planned."
        if plan.valid
        else f"**Verdict:** ❌ `{plan.head.short}` cannot be merged: fix the errors above."
    )
    if summarised:
        verdict += f" The full plan is in {where}."
    body = f"{COMMENT_MARKER}\n{markdown.rstrip()}\n\n{verdict}\n"
    if len(body) > GITHUB_COMMENT_LIMIT:  # pragma: no cover - render_markdown keeps a margin
        body = body[: GITHUB_COMMENT_LIMIT - 1] + "…"
    return body


def status_for(plan: Plan) -> tuple[StatusState, str]:
    """The commit status state and its short description."""
    if not plan.valid:
        errors = sum(1 for f in plan.findings if f.severity is Severity.ERROR)
        return "failure", f"{errors} error{'s' if errors != 1 else ''} in the wave manifests"
    count = len(plan.requests)
    return "success", f"valid: merging publishes {count} request{'s' if count != 1 else ''}"


def append_job_summary(plan: Plan, summary_path: Path) -> None:
    """Append the whole plan to the file named by $GITHUB_STEP_SUMMARY."""
    with summary_path.open("a", encoding="utf-8") as summary:
        summary.write(render_full_markdown(plan).rstrip() + "\n")


def report_plan(
    plan: Plan,
    context: ActionsContext,
    *,
    options: ClientOptions | None = None,
) -> bool:
    """Job summary, commit status and sticky comment; False (and why, on stderr) on failure."""
    if context.step_summary is not None:
        append_job_summary(plan, context.step_summary)
    client = github_client(context.token, context.api_url, options or DEFAULT_CLIENT_OPTIONS)
    commenter = PlanCommenter(client, context.repository)
    state, description = status_for(plan)
    try:
        commenter.post_plan_comment(context.pr_number, comment_body(plan, run_url=context.run_url))
        commenter.set_commit_status(context.head_sha, state, description, context.run_url)
    except GitHubReportError as exc:
        print(f"wavepilot plan --comment: {exc}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::error title=wavepilot plan::{exc}")
        return False
    finally:
        client.close()
    return True
