"""The GitHub REST client of the hub's functions over real HTTP against the GitHub stand-in:
paging, GitHub's rate limits, server errors (retried, but never a POST), refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from orchestration.adapters.github_rest import GitHubApiError, GitHubRest, RestOptions
from tests.support.github_server import GitHubState, github_stand_in

REPO = "contoso/waves"
PULL = 5
FAST = RestOptions(
    retries=2,
    backoff_factor=0,
    secondary_rate_wait=0,
    max_rate_limit_wait=5,
    seconds_between_writes=0,
    timeout=10,
)
COMMENTS = f"/repos/{REPO}/issues/{PULL}/comments"


@pytest.fixture
def github() -> Iterator[GitHubState]:
    with github_stand_in() as state:
        state.add_pull(REPO, PULL, base_sha="a" * 40, head_sha="b" * 40)
        yield state


@pytest.fixture
def rest(github: GitHubState) -> Iterator[GitHubRest]:
    client = GitHubRest("ghs_test", github.base_url, FAST)
    yield client
    client.close()


def test_a_listing_is_read_across_its_pages_with_the_token(
    github: GitHubState, rest: GitHubRest
) -> None:
    # GIVEN 230 comments: three pages of 100
    for n in range(230):
        github.add_comment(REPO, PULL, f"comment {n}")

    # WHEN they are listed
    bodies = [c["body"] for c in rest.get_all(COMMENTS)]

    # THEN every one comes, in order, in three requests, each with the token
    assert bodies == [f"comment {n}" for n in range(230)]
    assert len(github.requests) == 3
    assert {r.authorization for r in github.requests} == {"Bearer ghs_test"}


def test_a_secondary_rate_limit_waits_what_github_asks_and_succeeds(
    github: GitHubState, rest: GitHubRest
) -> None:
    # GIVEN GitHub answering the next write 403 "secondary rate limit", Retry-After: 1
    github.rate_limit_next_writes(1)

    # WHEN a comment is posted
    started = time.monotonic()
    rest.post(COMMENTS, {"body": "hello"})

    # THEN it waited the second GitHub asked for, tried again, and the comment exists once
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in github.requests] == [403, 201]
    assert [c["body"] for c in github.comments_on(REPO, PULL)] == ["hello"]


def test_a_spent_hourly_budget_waits_for_its_reset_and_succeeds(
    github: GitHubState, rest: GitHubRest
) -> None:
    # GIVEN the token's hourly budget spent (403, x-ratelimit-remaining: 0, reset in 1 s)
    github.exhaust_rate_limit(1)

    # WHEN the comments are listed: answered once the budget was reset
    assert rest.get_all(COMMENTS) == []
    assert [r.status for r in github.requests] == [403, 200]


def test_a_rate_limit_longer_than_allowed_fails_without_waiting(github: GitHubState) -> None:
    github.rate_limit_next_writes(1)
    client = GitHubRest("ghs_test", github.base_url, RestOptions(max_rate_limit_wait=0.5))
    started = time.monotonic()
    with pytest.raises(GitHubApiError, match="rate limited") as raised:
        client.post(COMMENTS, {"body": "hello"})
    assert raised.value.status == 403
    assert time.monotonic() - started < 1.0
    assert github.comments_on(REPO, PULL) == []


def test_a_server_error_is_retried_on_a_read(github: GitHubState, rest: GitHubRest) -> None:
    github.fail_next_request(502)
    github.fail_next_request(503)
    assert rest.get_all(COMMENTS) == []
    assert [r.status for r in github.requests] == [502, 503, 200]


def test_a_server_error_on_a_post_is_not_retried(github: GitHubState, rest: GitHubRest) -> None:
    # GIVEN a server error on the next request (it may have been done: GitHub does not say)
    github.fail_next_request(502)

    # WHEN a comment is posted: the error comes out, with no second POST
    with pytest.raises(GitHubApiError, match="HTTP 502") as raised:
        rest.post(COMMENTS, {"body": "hello"})
    assert raised.value.status == 502
    assert [r.method for r in github.requests] == ["POST"]


def test_a_refusal_is_not_retried(github: GitHubState, rest: GitHubRest) -> None:
    with pytest.raises(GitHubApiError, match="HTTP 404: Not Found") as raised:
        rest.post(f"/repos/{REPO}/issues/999/comments", {"body": "hello"})
    assert raised.value.status == 404
    assert len(github.requests) == 1


def test_no_answer_is_an_api_error() -> None:
    client = GitHubRest("ghs_test", "http://127.0.0.1:9", RestOptions(retries=0, timeout=1))
    with pytest.raises(GitHubApiError, match="no answer"):
        client.get_all(COMMENTS)
