"""Just enough of GitHub's REST API for a Lambda function: JSON calls with a token, paged
listings, retries and GitHub's rate limits.

Why not PyGithub, as ``wavepilot plan --comment`` uses: PyGithub (and requests, PyNaCl, PyJWT
with it) is the CLI's extra and never shipped in the Lambda package (``pyproject.toml``,
``tests/test_package.py``); the hub's functions call GitHub through urllib3, which the package
ships already (botocore's HTTP stack) and on whose ``Retry`` PyGithub's ``GithubRetry`` is
built. The same rules as ``GithubRetry`` apply:

- a server error (5xx) or a dropped connection is retried with exponential backoff, except
  for a POST (it may have been done: the caller finds what it created instead);
- a rate limit (429, or 403 with ``Retry-After`` or ``x-ratelimit-remaining: 0``) waits what
  GitHub asks (``Retry-After``, else until ``x-ratelimit-reset``, else
  ``secondary_rate_wait``) and tries again, any method (nothing was done), unless the wait is
  longer than ``max_rate_limit_wait``;
- writes are spaced ``seconds_between_writes`` apart (GitHub's secondary limit: 80
  content-creating requests a minute).

Every failure comes out as :class:`GitHubApiError`.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util.retry import Retry

from orchestration.clock import SYSTEM_CLOCK, Clock

DEFAULT_API_URL = "https://api.github.com"
USER_AGENT = "wavepilot-progress/1"
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class GitHubApiError(Exception):
    """GitHub refused a request (``status``), or did not answer, even after the retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RestOptions:
    """How patient the client is (the embedded default's stand-in needs no patience).

    Attributes:
        retries: attempts after the first, for server errors and for rate limits each.
        backoff_factor: exponential backoff between retries of server errors.
        secondary_rate_wait: wait after a rate limit that names no time.
        max_rate_limit_wait: fail rather than wait longer than this for a limit.
        seconds_between_writes: spacing of POST/PATCH/DELETE requests.
        timeout: seconds per HTTP request.
    """

    retries: int = 6
    backoff_factor: float = 1.0
    secondary_rate_wait: float = 60.0
    max_rate_limit_wait: float = 300.0
    seconds_between_writes: float = 1.0
    timeout: float = 30.0


DEFAULT_REST_OPTIONS = RestOptions()


class GitHubRest:
    """JSON over HTTPS to one GitHub API (``https://api.github.com``, or an Enterprise
    Server's ``https://HOST/api/v3``), authenticated with a token."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        options: RestOptions = DEFAULT_REST_OPTIONS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._options = options
        self._clock = clock
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": USER_AGENT,
        }
        self._http = urllib3.PoolManager(
            retries=Retry(
                total=options.retries,
                backoff_factor=options.backoff_factor,
                status_forcelist=list(range(500, 600)),
                allowed_methods=frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"}),
                raise_on_status=False,
                respect_retry_after_header=True,
                # A redirect (a renamed repository) is an answer to report, not to follow.
                redirect=False,
            ),
            timeout=urllib3.Timeout(total=options.timeout),
        )
        self._last_write = -float("inf")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.clear()

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params)

    def get_all(self, path: str, **params: str) -> list[Any]:
        """Every item of a paged listing (100 a page, following ``Link: rel="next"``)."""
        items: list[Any] = []
        url: str | None = self._url(path, {**params, "per_page": "100"})
        while url is not None:
            page, headers = self._send("GET", url, None)
            if not isinstance(page, list):
                raise GitHubApiError(f"GET {urlsplit(url).path}: not a list")
            items.extend(page)
            match = _NEXT_LINK.search(headers.get("Link", ""))
            url = match.group(1) if match else None
        return items

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        return self._send(method, self._url(path, params or {}), body)[0]

    def _url(self, path: str, params: dict[str, str]) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self._api_url}{path}{query}"

    def _send(
        self, method: str, url: str, body: dict[str, Any] | None
    ) -> tuple[Any, urllib3.HTTPHeaderDict]:
        what = f"{method} {urlsplit(url).path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self._options.retries + 1):
            if method in _WRITES:
                self._space_writes()
            try:
                response = self._http.request(method, url, body=data, headers=headers)
            except HTTPError as exc:  # retries of a dropped connection ran out
                raise GitHubApiError(f"{what}: no answer: {exc}") from exc
            wait = self._rate_limit_wait(response)
            if wait is None:
                return _answer(what, response), response.headers
            if wait > self._options.max_rate_limit_wait or attempt == self._options.retries:
                raise GitHubApiError(
                    f"{what}: rate limited (HTTP {response.status}; would wait {wait:.0f} s)",
                    response.status,
                )
            self._clock.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _rate_limit_wait(self, response: urllib3.BaseHTTPResponse) -> float | None:
        """Seconds to wait before trying again, or None if this is not a rate limit."""
        headers = response.headers
        if response.status not in {403, 429}:
            return None
        retry_after = headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            return float(retry_after.strip())
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            reset = float(headers["x-ratelimit-reset"])
            return max(0.0, reset - self._clock.now().astimezone(UTC).timestamp()) + 1.0
        if response.status == 429 or "rate limit" in _message(response).lower():
            return self._options.secondary_rate_wait
        return None  # a 403 that is no rate limit: refused

    def _space_writes(self) -> None:
        with self._lock:
            due = self._last_write + self._options.seconds_between_writes
            now = self._clock.monotonic()
            if now < due:
                self._clock.sleep(due - now)
            self._last_write = max(now, due)


def _message(response: urllib3.BaseHTTPResponse) -> str:
    try:
        payload = json.loads(response.data or b"{}")
    except ValueError:
        return ""
    return str(payload.get("message", "")) if isinstance(payload, dict) else ""


def _answer(what: str, response: urllib3.BaseHTTPResponse) -> Any:
    if response.status >= 300:
        message = _message(response) or response.data[:200].decode("utf-8", "replace")
        raise GitHubApiError(f"{what}: HTTP {response.status}: {message}", response.status)
    if not response.data:
        return None
    try:
        return json.loads(response.data)
    except ValueError as exc:
        raise GitHubApiError(f"{what}: not JSON: {exc}", response.status) from None
