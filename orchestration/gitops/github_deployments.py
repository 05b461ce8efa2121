"""GitHub's side of a wave's progress: its deployment, the deployment's statuses, the comment.

Calls GitHub's REST API through :class:`~orchestration.adapters.github_rest.GitHubRest`
(retries and rate limits there); every failure comes out as ``GitHubApiError``.

A deployment is created with ``auto_merge`` off (GitHub would otherwise merge the default
branch into the commit) and no required contexts (the merge commit's own checks do not gate
reporting on a migration that has already started). It is found again by environment and SHA
(and its task, ``wavepilot:migrate``), so a report that failed after creating it never creates
a second.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from orchestration.gitops.wave_progress import DeploymentStatus, comment_marker, environment_of

DEPLOYMENT_TASK = "wavepilot:migrate"


class GitHubApi(Protocol):
    """The REST calls made here (``GitHubRest``)."""

    def get_all(self, path: str, **params: str) -> list[Any]: ...

    def post(self, path: str, body: dict[str, Any]) -> Any: ...

    def patch(self, path: str, body: dict[str, Any]) -> Any: ...

    def delete(self, path: str) -> None: ...


class WaveDeployments:
    """One repository's wave deployments and wave result comments."""

    def __init__(self, api: GitHubApi, repository: str) -> None:
        self._api = api
        owner, _, name = repository.partition("/")
        self._repo = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def find_or_create(self, wave: str, commit: str) -> int:
        """The ID of the wave's deployment of ``commit``: the one GitHub has, else a new one."""
        environment = environment_of(wave)
        listed = self._api.get_all(f"{self._repo}/deployments", sha=commit, environment=environment)
        ours = [d for d in listed if d.get("task") == DEPLOYMENT_TASK]
        if ours:
            return min(int(d["id"]) for d in ours)  # the first, should two ever exist
        created = self._api.post(
            f"{self._repo}/deployments",
            {
                "ref": commit,
                "task": DEPLOYMENT_TASK,
                "auto_merge": False,
                "required_contexts": [],
                "payload": {"wave": wave},
                "environment": environment,
                "description": f"Wavepilot migrates wave {wave}"[:140],
                "transient_environment": False,
                "production_environment": False,
            },
        )
        return int(created["id"])

    def post_status(self, deployment_id: int, status: DeploymentStatus) -> None:
        body: dict[str, Any] = {
            "state": status.state,
            "description": status.description,
            "auto_inactive": True,  # the environment's older deployments become inactive
        }
        if status.log_url:
            body["log_url"] = status.log_url
        if status.environment_url:
            body["environment_url"] = status.environment_url
        self._api.post(f"{self._repo}/deployments/{deployment_id}/statuses", body)

    def comment_on_merged_pull(self, wave: str, commit: str, body: str) -> int | None:
        """Edit the wave's result comment on the pull request merged as ``commit``, else
        create it; the pull request's number, or None when no merged pull request has the
        commit (pushed to the branch directly: nowhere to comment)."""
        marker = comment_marker(wave)
        if not body.startswith(marker):
            raise ValueError("a wave result comment must start with its marker")
        number = self._merged_pull(commit)
        if number is None:
            return None
        comments = f"{self._repo}/issues/{number}/comments"
        # Only comments that *start* with the marker: a reply quoting ours starts with ">".
        ours = [c for c in self._api.get_all(comments) if str(c.get("body", "")).startswith(marker)]
        if not ours:
            self._api.post(comments, {"body": body})
            return number
        keep, *extra = sorted(ours, key=lambda c: int(c["id"]), reverse=True)
        if keep["body"] != body:
            self._api.patch(f"{self._repo}/issues/comments/{keep['id']}", {"body": body})
        for duplicate in extra:  # a POST that landed although its answer was lost: keep one
            self._api.delete(f"{self._repo}/issues/comments/{duplicate['id']}")
        return number

    def _merged_pull(self, commit: str) -> int | None:
        """The merged pull request whose merge commit is ``commit`` (the publishing merge),
        else any merged one that contains it (a rebase or fast-forward merge)."""
        pulls = self._api.get_all(f"{self._repo}/commits/{commit}/pulls")
        merged = [p for p in pulls if p.get("merged_at")]
        exact = [p for p in merged if p.get("merge_commit_sha") == commit]
        found = exact or merged
        return int(found[0]["number"]) if found else None
