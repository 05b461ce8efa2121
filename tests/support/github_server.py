"""A stand-in for the GitHub REST API on loopback: just the endpoints the plan comment uses.

It keeps repositories, pull requests, issue comments and commit statuses in memory, pages
comment listings with ``Link`` headers the way GitHub does, records every request, and can
inject faults: a secondary rate limit on the next writes, a server error on the next request.
"""

from __future__ import annotations

import json
import re
import threading
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
    requests: list[RecordedRequest] = field(default_factory=list)
    rate_limited_writes: int = 0
    failing_requests: list[int] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_pull(self, repo: str, number: int, *, base_sha: str, head_sha: str) -> None:
        with self.lock:
            self.repos.add(repo)
            self.pulls[(repo, number)] = {"base": base_sha, "head": head_sha}

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
    pull = state.pulls.get((repo, number))
    if pull is None:
        return 404, {"message": "Not Found"}, {}
    url = f"{state.base_url}/repos/{repo}"
    return (
        200,
        {
            "number": number,
            "state": "open",
            "url": f"{url}/pulls/{number}",
            "issue_url": f"{url}/issues/{number}",
            "base": {"sha": pull["base"], "ref": "main"},
            "head": {"sha": pull["head"], "ref": "wave-change"},
        },
        {},
    )


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
