"""``report_github_progress`` in process: the real handler, the state table in moto, and
PyGithub over HTTP against the GitHub stand-in (deployments, their statuses, the comment)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from orchestration import wiring
from orchestration.adapters.github_rest import RestOptions
from orchestration.adapters.wave_deployments import wave_deployment_key
from orchestration.events import MigrationRequested, MigrationStatusUpdated
from orchestration.gitops.wave_progress import comment_marker
from orchestration.handlers import report_github_progress
from orchestration.migration_request import MigrationRequest
from tests.support.aws_fixtures import EmulatedAws, emulated_aws, sqs_event
from tests.support.github_server import GitHubState, github_stand_in
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import example_requests

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest

REPO = "contoso/waves"
PULL = 17
COMMIT = "c" * 40  # the commit tests.support.pipeline publishes the example requests from
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:wavepilot-test-status-to-github.fifo"
FAST = RestOptions(
    retries=2,
    backoff_factor=0,
    secondary_rate_wait=0,
    max_rate_limit_wait=5,
    seconds_between_writes=0,
    timeout=10,
)
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def github() -> Iterator[GitHubState]:
    with github_stand_in() as state:
        state.add_pull(REPO, PULL, base_sha="a" * 40, head_sha="b" * 40, merge_commit_sha=COMMIT)
        yield state


@pytest.fixture
def configured(
    emulated_aws: EmulatedAws, github: GitHubState, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatedAws]:
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_local")
    monkeypatch.setenv("GITHUB_API_URL", github.base_url)
    monkeypatch.delenv("GITHUB_TOKEN_SECRET_ARN", raising=False)
    monkeypatch.setenv(
        "GITHUB_PROGRESS_DLQ_URL", emulated_aws.resources.github_progress_dead_letter_queue_url
    )
    wiring.use_github_options(FAST)
    wiring.reset()
    yield emulated_aws
    wiring.use_github_options(None)
    wiring.reset()


def _wave_of_three() -> list[MigrationRequest]:
    requests = example_requests("wave-1")[:3]
    for request in requests:
        assert request.revision is not None
        wiring.store().record_request(request, request.revision, "corr-1", NOW)
    return requests


def _body(request: MigrationRequest, detail_type: str = "MigrationStatusUpdated") -> str:
    common: dict[str, Any] = {
        "migration_id": request.migration_id,
        "wave": request.wave,
        "app_name": request.app_name,
        "target_vm_name": request.target_vm_name,
        "correlation_id": "corr-1",
        "sequence": 1,
        "timestamp": NOW,
    }
    if detail_type == "MigrationRequested":
        assert request.revision is not None
        detail: Any = MigrationRequested(**common, revision=request.revision, request=request)
    else:
        detail = MigrationStatusUpdated(
            **common, step="ValidateInput", status="SUCCEEDED", message="ok"
        )
    return json.dumps(
        {
            "source": "wavepilot.migrations",
            "detail-type": detail_type,
            "detail": json.loads(detail.model_dump_json(by_alias=True)),
        }
    )


def _deliver(*bodies: str) -> list[str]:
    event = sqs_event(*bodies, queue_arn=QUEUE_ARN)
    response = report_github_progress.handler(event, cast(Any, FakeLambdaContext()))
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    return ["failed" if r["messageId"] in failed else "done" for r in event["Records"]]


def _end(request: MigrationRequest, status: str) -> str:
    step = "FinalizeCutover" if status == "COMPLETED" else "Rollback"
    wiring.store().advance(
        request.migration_id, step=step, status="SUCCEEDED", now=NOW, migration_status=status
    )
    return _body(request)


def _statuses(github: GitHubState) -> list[tuple[str, str]]:
    [deployment] = github.deployments_of(REPO)
    return [(s["state"], s["description"]) for s in deployment["statuses"]]


def _writes(github: GitHubState) -> list[str]:
    return [f"{r.method} {r.path}" for r in github.requests if r.method != "GET"]


def test_a_wave_gets_one_deployment_whose_statuses_follow_it_and_one_comment(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN three VMs of wave-1 published by one merge commit
    first, second, third = _wave_of_three()

    # WHEN their requests arrive: one deployment, in progress
    assert (
        _deliver(*(_body(r, "MigrationRequested") for r in (first, second, third))) == ["done"] * 3
    )
    [deployment] = github.deployments_of(REPO)
    assert (deployment["environment"], deployment["sha"]) == ("migration/wave-1", COMMIT)
    assert deployment["auto_merge"] is False
    assert deployment["required_contexts"] == []
    assert _statuses(github) == [("in_progress", "0/3 migrated")]

    # WHEN steps move on without anything ending: nothing more is posted
    _deliver(_body(first), _body(second))
    assert _statuses(github) == [("in_progress", "0/3 migrated")]

    # WHEN one migrates and one rolls back, then the last migrates
    _deliver(_end(first, "COMPLETED"))
    _deliver(_end(second, "ROLLED_BACK"))
    assert github.comments_on(REPO, PULL) == []
    _deliver(_end(third, "COMPLETED"))

    # THEN the statuses followed the wave in order, ending in failure with the counts
    assert _statuses(github) == [
        ("in_progress", "0/3 migrated"),
        ("in_progress", "1/3 migrated"),
        ("in_progress", "1/3 migrated, 1 rolled back"),
        ("failure", "2/3 migrated, 1 rolled back"),
    ]
    # AND the merged pull request has one result comment listing each outcome
    [comment] = github.comments_on(REPO, PULL)
    assert comment["body"].startswith(comment_marker("wave-1"))
    assert "**Migrated** (2)" in comment["body"]
    assert f"`{second.target_vm_name}`" in comment["body"].split("**Rolled back** (1)")[1]

    # WHEN the last events are delivered again (SQS delivers at least once)
    before = _writes(github)
    _deliver(_end(third, "COMPLETED"), _body(second))

    # THEN nothing is posted twice
    assert _writes(github) == before
    assert len(github.deployments_of(REPO)) == 1
    assert len(github.comments_on(REPO, PULL)) == 1


def test_each_publishing_commit_has_its_deployment_counting_the_vms_it_published(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN wave-1's first two VMs published by one merge, the third by a later merge
    later = "d" * 40
    github.add_pull(REPO, PULL + 1, base_sha="a" * 40, head_sha="e" * 40, merge_commit_sha=later)
    first, second, third = example_requests("wave-1")[:3]
    assert third.provenance is not None
    third = third.model_copy(
        update={"provenance": third.provenance.model_copy(update={"commit": later})}
    )
    for request in (first, second, third):
        assert request.revision is not None
        wiring.store().record_request(request, request.revision, "corr-1", NOW)

    # WHEN all three are requested, and the later merge's VM migrates
    _deliver(*(_body(r, "MigrationRequested") for r in (first, second, third)))
    _deliver(_end(third, "COMPLETED"))

    # THEN each merge commit has its own deployment of the wave, counting its own VMs
    by_commit = {d["sha"]: d for d in github.deployments_of(REPO)}
    assert set(by_commit) == {COMMIT, later}
    assert {d["environment"] for d in by_commit.values()} == {"migration/wave-1"}
    assert [s["description"] for s in by_commit[COMMIT]["statuses"]] == ["0/2 migrated"]
    assert [(s["state"], s["description"]) for s in by_commit[later]["statuses"]] == [
        ("in_progress", "0/1 migrated"),
        ("success", "1/1 migrated"),
    ]
    # AND the later merge's pull request has the comment, the first one's none yet
    assert github.comments_on(REPO, PULL) == []
    assert len(github.comments_on(REPO, PULL + 1)) == 1


def test_a_deployment_github_has_is_found_again_never_created_twice(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN a wave reported once, whose record of what GitHub shows was then lost (a failure
    # between creating the deployment and remembering it)
    requests = _wave_of_three()
    _deliver(_body(requests[0], "MigrationRequested"))
    configured.dynamodb.delete_item(
        TableName=configured.resources.table_name,
        Key={k: {"S": v} for k, v in wave_deployment_key("wave-1", COMMIT).items()},
    )

    # WHEN the wave's next event comes
    _deliver(_end(requests[0], "COMPLETED"))

    # THEN the same deployment carries the new status
    [deployment] = github.deployments_of(REPO)
    assert [s["description"] for s in deployment["statuses"]] == ["0/3 migrated", "1/3 migrated"]


def test_when_github_fails_the_batch_comes_back_and_is_reported_later(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN GitHub failing every request for longer than the client retries
    requests = _wave_of_three()
    for _ in range(3):
        github.fail_next_request(502)

    # WHEN the wave's events arrive: every record comes back (FIFO: none after a failure)
    bodies = [_body(r, "MigrationRequested") for r in requests]
    assert _deliver(*bodies) == ["failed"] * 3
    assert github.deployments_of(REPO) == []

    # AND delivered again once GitHub answers: reported
    assert _deliver(*bodies) == ["done"] * 3
    assert _statuses(github) == [("in_progress", "0/3 migrated")]


def test_a_wave_published_without_a_merged_pull_request_gets_no_comment(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN a commit no merged pull request has (pushed to main directly)
    github.pulls.clear()
    github.repos.add(REPO)
    requests = _wave_of_three()

    # WHEN the first VM migrates and the others roll back
    _deliver(_end(requests[0], "COMPLETED"), _end(requests[1], "ROLLED_BACK"))
    _deliver(_end(requests[2], "ROLLED_BACK"))

    # THEN the deployment ends in failure, with no comment anywhere, and asked once
    assert _statuses(github)[-1] == ("failure", "1/3 migrated, 2 rolled back")
    assert github.comments == {}
    pulls_asked = [r for r in github.requests if r.path.endswith(f"/commits/{COMMIT}/pulls")]
    _deliver(_body(requests[0]))
    assert [r for r in github.requests if r.path.endswith(f"/commits/{COMMIT}/pulls")] == (
        pulls_asked
    )


def test_without_a_repository_and_token_nothing_is_reported(
    emulated_aws: EmulatedAws,
    github: GitHubState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN no GitHub settings
    for name in ("GITHUB_REPOSITORY", "GITHUB_TOKEN", "GITHUB_TOKEN_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    requests = _wave_of_three()

    # WHEN events arrive: taken (not retried), nothing on GitHub, one line says why
    assert _deliver(*(_body(r, "MigrationRequested") for r in requests)) == ["done"] * 3
    assert github.requests == []
    said = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert len(said) == 1
    wiring.reset()


def test_a_body_that_is_no_status_event_goes_to_the_dlq_with_its_reason(
    configured: EmulatedAws, github: GitHubState
) -> None:
    # GIVEN an event of a wave between two bodies that are no status events
    [request] = _wave_of_three()[:1]
    bodies = ["{not json", _body(request, "MigrationRequested"), '{"detail-type": "Nope"}']

    # WHEN they are delivered: none comes back, the event is reported
    assert _deliver(*bodies) == ["done"] * 3
    assert len(github.deployments_of(REPO)) == 1

    # AND the two others are in the DLQ, each with its reason
    dead = configured.sqs.receive_message(
        QueueUrl=configured.resources.github_progress_dead_letter_queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )["Messages"]
    assert sorted(m["Body"] for m in dead) == sorted([bodies[0], bodies[2]])
    reasons = [m["MessageAttributes"]["failureReason"]["StringValue"] for m in dead]
    assert all(r.startswith("not a status event") for r in reasons), reasons
