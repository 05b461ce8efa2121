"""A stand-in for the GitHub REST API on loopback: just the endpoints Wavepilot uses.

It keeps repositories, pull requests (and the merge commit each was merged as), issue
comments, commit statuses, deployments and their statuses in memory, pages listings with
``Link`` headers the way GitHub does, records every request, and can inject faults: a
secondary rate limit on the next writes, a server error on the next request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# GitHub's documented wording; PyGithub recognises a secondary limit by it.
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
BOT_LOGIN = "github-actions[bot]"
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    authorization: str | None


@dataclass
class GitHubState:
    """Everything the stand-in knows; the handler reads and writes it under ``lock``."""

    base_url: str = ""
    repos: set[str] = field(default_factory=set)
    pulls: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    # Deployments by ID (``repo``, ``sha``, ``environment``, ...) and each one's statuses.
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployment_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    rate_limited_writes: int = 0
    exhausted_requests: int = 0  # answered 403 with x-ratelimit-remaining: 0
    failing_requests: list[int] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_pull(
        self,
        repo: str,
        number: int,
        *,
        base_sha: str,
        head_sha: str,
        merge_commit_sha: str | None = None,
    ) -> None:
        """A pull request; with ``merge_commit_sha`` it was merged as that commit (which then
        lists it at ``GET /repos/{o}/{r}/commits/{sha}/pulls``, as GitHub does)."""
        with self.lock:
            self.repos.add(repo)
            pull = {"base": base_sha, "head": head_sha}
            if merge_commit_sha is not None:
                pull["merge_commit_sha"] = merge_commit_sha
            self.pulls[(repo, number)] = pull

    def deployments_of(self, repo: str) -> list[dict[str, Any]]:
        """The repository's deployments, oldest first, each with its ``statuses`` (oldest
        first, as they were posted)."""
        with self.lock:
            return [
                {**d, "statuses": [dict(s) for s in self.deployment_statuses[d["id"]]]}
                for d in sorted(self.deployments.values(), key=lambda d: int(d["id"]))
                if d["repo"] == repo
            ]

    def add_comment(self, repo: str, number: int, body: str, *, user: str = "octocat") -> int:
        with self.lock:
            return self._new_comment(repo, number, body, user)

    def _new_comment(self, repo: str, number: int, body: str, user: str) -> int:
        self.next_id += 1
        comment_id = self.next_id
        self.comments[comment_id] = {
            "repo": repo,
            "issue": number,
            "id": comment_id,
            "body": body,
            "user": user,
        }
        return comment_id

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            on_issue = (c for c in self.comments.values() if c["repo"] == repo)
            return [dict(c) for c in on_issue if c["issue"] == number]

    def rate_limit_next_writes(self, count: int) -> None:
        """Answer the next ``count`` writes 403 with ``Retry-After: 1``."""
        with self.lock:
            self.rate_limited_writes = count

    def exhaust_rate_limit(self, count: int) -> None:
        """Answer the next ``count`` requests as GitHub does when the hour's budget is spent:
        403, ``x-ratelimit-remaining: 0``, ``x-ratelimit-reset`` one second ahead."""
        with self.lock:
            self.exhausted_requests = count

    def fail_next_request(self, status: int = 502) -> None:
        with self.lock:
            self.failing_requests.append(status)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are the log."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state = self.server.state
        with state.lock:
            status, payload, headers = self._route(state, method, parts.path, query, body)
            state.requests.append(
                RecordedRequest(
                    method, parts.path, query, body, status, self.headers.get("Authorization")
                )
            )
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(
        self,
        state: GitHubState,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        if state.failing_requests:
            return state.failing_requests.pop(0), {"message": "Server Error"}, {}
        if state.exhausted_requests > 0:
            state.exhausted_requests -= 1
            reset = int(time.time()) + 1
            return (
                403,
                {"message": "API rate limit exceeded for installation ID 42."},
                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            )
        if method in _WRITES and state.rate_limited_writes > 0:
            state.rate_limited_writes -= 1
            return (
                403,
                {
                    "message": SECONDARY_RATE_LIMIT_MESSAGE,
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                },
                {"Retry-After": "1"},
            )
        for pattern, allowed, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if match and method == allowed:
                return handler(state, match, query, body)
        return 404, {"message": "Not Found"}, {}


def _repo_json(state: GitHubState, repo: str) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "id": 4242,
        "name": name,
        "full_name": repo,
        "owner": {"login": owner, "type": "Organization"},
        "url": f"{state.base_url}/repos/{repo}",
    }


def _comment_json(state: GitHubState, comment: dict[str, Any]) -> dict[str, Any]:
    repo = comment["repo"]
    return {
        "id": comment["id"],
        "body": comment["body"],
        "user": {"login": comment["user"], "type": "Bot"},
        "url": f"{state.base_url}/repos/{repo}/issues/comments/{comment['id']}",
        "issue_url": f"{state.base_url}/repos/{repo}/issues/{comment['issue']}",
        "html_url": f"https://github.com/{repo}/pull/{comment['issue']}#issuecomment-{comment['id']}",
        "created_at": "2026-11-26T12:00:00Z",
        "updated_at": "2026-11-26T12:00:00Z",
    }


Route = tuple[int, Any, dict[str, str]]


def _get_repo(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    repo = f"{m['owner']}/{m['repo']}"
    if repo not in state.repos:
        return 404, {"message": "Not Found"}, {}
    return 200, _repo_json(state, repo), {}


def _get_pull(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    repo, number = f"{m['owner']}/{m['repo']}", int(m["number"])
    if (repo, number) not in state.pulls:
        return 404, {"message": "Not Found"}, {}
    return 200, _pull_json(state, repo, number), {}


def _list_comments(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    repo, number = f"{m['owner']}/{m['repo']}", int(m["number"])
    per_page = min(int(q.get("per_page", ["30"])[0]), 100)
    page = int(q.get("page", ["1"])[0])
    every = sorted(
        (c for c in state.comments.values() if c["repo"] == repo and c["issue"] == number),
        key=lambda c: int(c["id"]),
    )
    chunk = every[(page - 1) * per_page : page * per_page]
    last = max(1, -(-len(every) // per_page))
    base = f"{state.base_url}/repos/{repo}/issues/{number}/comments?per_page={per_page}"
    links = []
    if page < last:
        links.append(f'<{base}&page={page + 1}>; rel="next"')
        links.append(f'<{base}&page={last}>; rel="last"')
    headers = {"Link": ", ".join(links)} if links else {}
    return 200, [_comment_json(state, c) for c in chunk], headers


def _page(
    state: GitHubState, q: dict[str, list[str]], items: list[Any], path: str, params: str = ""
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` and its ``Link`` header, as GitHub pages its listings."""
    per_page = min(int(q.get("per_page", ["30"])[0]), 100)
    page = int(q.get("page", ["1"])[0])
    chunk = items[(page - 1) * per_page : page * per_page]
    last = max(1, -(-len(items) // per_page))
    base = f"{state.base_url}{path}?per_page={per_page}{params}"
    links = []
    if page < last:
        links.append(f'<{base}&page={page + 1}>; rel="next"')
        links.append(f'<{base}&page={last}>; rel="last"')
    return chunk, {"Link": ", ".join(links)} if links else {}


def _create_comment(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    repo, number = f"{m['owner']}/{m['repo']}", int(m["number"])
    if (repo, number) not in state.pulls:
        return 404, {"message": "Not Found"}, {}
    comment_id = state._new_comment(repo, number, str(b["body"]), BOT_LOGIN)
    return 201, _comment_json(state, state.comments[comment_id]), {}


def _edit_comment(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    comment = state.comments.get(int(m["id"]))
    if comment is None:
        return 404, {"message": "Not Found"}, {}
    comment["body"] = str(b["body"])
    return 200, _comment_json(state, comment), {}


def _delete_comment(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    if state.comments.pop(int(m["id"]), None) is None:
        return 404, {"message": "Not Found"}, {}
    return 204, None, {}


def _get_commit(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    repo = f"{m['owner']}/{m['repo']}"
    return 200, {"sha": m["sha"], "url": f"{state.base_url}/repos/{repo}/commits/{m['sha']}"}, {}


def _create_status(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    status = {"sha": m["sha"], **b}
    state.statuses.append(status)
    return 201, {"id": len(state.statuses), **b}, {}


def _pull_json(state: GitHubState, repo: str, number: int) -> dict[str, Any]:
    pull = state.pulls[(repo, number)]
    url = f"{state.base_url}/repos/{repo}"
    merged = "merge_commit_sha" in pull
    return {
        "number": number,
        "state": "closed" if merged else "open",
        "merged_at": "2026-11-26T12:00:00Z" if merged else None,
        "merge_commit_sha": pull.get("merge_commit_sha"),
        "url": f"{url}/pulls/{number}",
        "issue_url": f"{url}/issues/{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
        "base": {"sha": pull["base"], "ref": "main"},
        "head": {"sha": pull["head"], "ref": "wave-change"},
    }


def _commit_pulls(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    """The pull requests a commit belongs to: here, those merged as it, or headed by it."""
    repo, sha = f"{m['owner']}/{m['repo']}", m["sha"]
    if repo not in state.repos:
        return 404, {"message": "Not Found"}, {}
    numbers = sorted(
        number
        for (in_repo, number), pull in state.pulls.items()
        if in_repo == repo and sha in (pull.get("merge_commit_sha"), pull["head"])
    )
    return 200, [_pull_json(state, repo, n) for n in numbers], {}


def _deployment_json(state: GitHubState, deployment: dict[str, Any]) -> dict[str, Any]:
    url = f"{state.base_url}/repos/{deployment['repo']}/deployments/{deployment['id']}"
    fields = ("id", "sha", "ref", "task", "environment", "description", "payload")
    return {
        **{name: deployment[name] for name in fields},
        "url": url,
        "statuses_url": f"{url}/statuses",
        "creator": {"login": BOT_LOGIN, "type": "Bot"},
        "created_at": "2026-11-26T12:00:00Z",
        "updated_at": "2026-11-26T12:00:00Z",
    }


def _list_deployments(
    state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any
) -> Route:
    """Newest first, as GitHub lists them; filtered by ``sha``, ``ref``, ``environment``."""
    repo = f"{m['owner']}/{m['repo']}"
    if repo not in state.repos:
        return 404, {"message": "Not Found"}, {}
    filters = {k: q[k][0] for k in ("sha", "ref", "task", "environment") if k in q}
    listed = sorted(
        (
            d
            for d in state.deployments.values()
            if d["repo"] == repo and all(d[k] == v for k, v in filters.items())
        ),
        key=lambda d: -int(d["id"]),
    )
    params = "".join(f"&{k}={v}" for k, v in filters.items())
    chunk, headers = _page(state, q, listed, f"/repos/{repo}/deployments", params)
    return 200, [_deployment_json(state, d) for d in chunk], headers


def _create_deployment(
    state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any
) -> Route:
    repo = f"{m['owner']}/{m['repo']}"
    if repo not in state.repos:
        return 404, {"message": "Not Found"}, {}
    ref = str(b["ref"])
    if not re.fullmatch(r"[0-9a-f]{40}", ref):
        return 422, {"message": f"No ref found for: {ref}"}, {}
    state.next_id += 1
    deployment = {
        "repo": repo,
        "id": state.next_id,
        "sha": ref,
        "ref": ref,
        "task": b.get("task", "deploy"),
        "environment": b.get("environment", "production"),
        "description": b.get("description"),
        "payload": b.get("payload", {}),
        "required_contexts": b.get("required_contexts"),
        "auto_merge": b.get("auto_merge"),
    }
    state.deployments[deployment["id"]] = deployment
    state.deployment_statuses[deployment["id"]] = []
    return 201, _deployment_json(state, deployment), {}


def _get_deployment(state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any) -> Route:
    deployment = state.deployments.get(int(m["id"]))
    if deployment is None or deployment["repo"] != f"{m['owner']}/{m['repo']}":
        return 404, {"message": "Not Found"}, {}
    return 200, _deployment_json(state, deployment), {}


def _deployment_status_json(
    state: GitHubState, deployment: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    url = f"{state.base_url}/repos/{deployment['repo']}/deployments/{deployment['id']}"
    return {**status, "url": f"{url}/statuses/{status['id']}", "deployment_url": url}


def _list_deployment_statuses(
    state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any
) -> Route:
    """Newest first, as GitHub lists them."""
    deployment = state.deployments.get(int(m["id"]))
    if deployment is None or deployment["repo"] != f"{m['owner']}/{m['repo']}":
        return 404, {"message": "Not Found"}, {}
    listed = list(reversed(state.deployment_statuses[deployment["id"]]))
    path = f"/repos/{deployment['repo']}/deployments/{deployment['id']}/statuses"
    chunk, headers = _page(state, q, listed, path)
    return 200, [_deployment_status_json(state, deployment, s) for s in chunk], headers


_DEPLOYMENT_STATES = frozenset(
    {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
)


def _create_deployment_status(
    state: GitHubState, m: re.Match[str], q: dict[str, list[str]], b: Any
) -> Route:
    deployment = state.deployments.get(int(m["id"]))
    if deployment is None or deployment["repo"] != f"{m['owner']}/{m['repo']}":
        return 404, {"message": "Not Found"}, {}
    if b.get("state") not in _DEPLOYMENT_STATES:
        return 422, {"message": f"state is not one of {sorted(_DEPLOYMENT_STATES)}"}, {}
    if len(str(b.get("description", ""))) > 140:
        return 422, {"message": "description is too long (maximum is 140 characters)"}, {}
    state.next_id += 1
    status = {
        "id": state.next_id,
        "state": b["state"],
        "description": b.get("description", ""),
        "environment": b.get("environment", deployment["environment"]),
        "target_url": b.get("target_url", ""),
        "log_url": b.get("log_url", b.get("target_url", "")),
        "environment_url": b.get("environment_url", ""),
        "creator": {"login": BOT_LOGIN, "type": "Bot"},
    }
    state.deployment_statuses[deployment["id"]].append(status)
    return 201, _deployment_status_json(state, deployment, status), {}


_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_ROUTES = [
    (re.compile(_REPO), "GET", _get_repo),
    (re.compile(_REPO + r"/pulls/(?P<number>\d+)"), "GET", _get_pull),
    (re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), "GET", _list_comments),
    (re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), "POST", _create_comment),
    (re.compile(_REPO + r"/issues/comments/(?P<id>\d+)"), "PATCH", _edit_comment),
    (re.compile(_REPO + r"/issues/comments/(?P<id>\d+)"), "DELETE", _delete_comment),
    (re.compile(_REPO + r"/commits/(?P<sha>[0-9a-f]+)"), "GET", _get_commit),
    (re.compile(_REPO + r"/statuses/(?P<sha>[0-9a-f]+)"), "POST", _create_status),
    (re.compile(_REPO + r"/commits/(?P<sha>[0-9a-f]+)/pulls"), "GET", _commit_pulls),
    (re.compile(_REPO + r"/deployments"), "GET", _list_deployments),
    (re.compile(_REPO + r"/deployments"), "POST", _create_deployment),
    (re.compile(_REPO + r"/deployments/(?P<id>\d+)"), "GET", _get_deployment),
    (re.compile(_REPO + r"/deployments/(?P<id>\d+)/statuses"), "GET", _list_deployment_statuses),
    (re.compile(_REPO + r"/deployments/(?P<id>\d+)/statuses"), "POST", _create_deployment_status),
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: GitHubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def github_stand_in() -> Iterator[GitHubState]:
    """Serve a fresh :class:`GitHubState` on 127.0.0.1; its ``base_url`` is the API URL."""
    state = GitHubState()
    server = _Server(state)
    host, port = server.server_address[:2]
    state.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="github-stand-in", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
