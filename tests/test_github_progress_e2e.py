"""Progress on GitHub end to end on the embedded system: the status events' rule, the FIFO
queue, the real ``report_github_progress`` handler, and the GitHub stand-in over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestration import wiring
from orchestration.events import MigrationCompleted
from orchestration.local.driver import MigrationDriver
from orchestration.local.mgn import LaunchType
from orchestration.local.system import EmbeddedSystem, LocalGitHub, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.github_server import GitHubState, github_stand_in
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
REPO = "contoso/waves"
PULL = 31
COMMIT = "c" * 40  # the commit tests.support.pipeline publishes the example requests from


@pytest.fixture
def github() -> Iterator[GitHubState]:
    with github_stand_in() as state:
        state.add_pull(REPO, PULL, base_sha="a" * 40, head_sha="b" * 40, merge_commit_sha=COMMIT)
        yield state


@pytest.fixture
def system(github: GitHubState) -> Iterator[EmbeddedSystem]:
    options = SystemOptions(timings=FAST, github=LocalGitHub(github.base_url, REPO))
    with EmbeddedSystem(options) as running:
        yield running


def _eventually(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """The reports are asynchronous (EventBridge -> SQS -> Lambda): wait for them to land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _statuses(github: GitHubState) -> list[tuple[str, str]]:
    [deployment] = github.deployments_of(REPO)
    return [(s["state"], s["description"]) for s in deployment["statuses"]]


def _run(system: EmbeddedSystem, requests: list[MigrationRequest], failing: str | None) -> None:
    servers = system.seed([spec_of(r) for r in requests])
    if failing is not None:
        system.mgn_of_server(servers[failing]).faults.fail_next_launch(
            servers[failing], launch_type=LaunchType.TEST
        )
    driver = MigrationDriver(system)
    driver.send(requests)
    outcomes = driver.wait([r.migration_id for r in requests])
    expected = {
        r.migration_id: "FAILED" if r.migration_id == failing else "SUCCEEDED" for r in requests
    }
    assert {m: o.status for m, o in outcomes.items()} == expected


def test_a_wave_with_a_rollback_shows_one_deployment_failing_with_counts_and_one_comment(
    system: EmbeddedSystem, github: GitHubState
) -> None:
    # GIVEN three VMs of wave-1, published by one merge commit, one whose test launch fails
    requests = example_requests("wave-1")[:3]
    failing = requests[1]

    # WHEN the wave runs: two migrate, one is rolled back
    _run(system, requests, failing.migration_id)

    # THEN GitHub has one deployment of the wave, for the merge commit
    final = ("failure", "2/3 migrated, 1 rolled back")
    _eventually("the final status", lambda: final in _statuses(github))
    [deployment] = github.deployments_of(REPO)
    assert (deployment["environment"], deployment["sha"]) == ("migration/wave-1", COMMIT)
    # AND its statuses followed the wave in order: in progress from its first event (counting
    # the VMs recorded by then) while it ran, the failure last
    statuses = _statuses(github)
    assert statuses[0][0] == "in_progress"
    assert statuses[0][1].startswith("0/")
    assert statuses[-1] == final
    assert {state for state, _ in statuses[:-1]} == {"in_progress"}
    assert len(set(statuses)) == len(statuses), "a status posted twice"
    # AND the merged pull request has one result comment, listing the rolled back VM
    [comment] = _eventually("the comment", lambda: github.comments_on(REPO, PULL))
    assert comment["body"].startswith("<!-- wavepilot:wave-result:wave-1 -->")
    rolled_back = comment["body"].split("**Rolled back** (1)")[1]
    assert f"`{failing.target_vm_name}`" in rolled_back
    assert "**Migrated** (2)" in comment["body"]


def test_a_wave_that_migrates_whole_succeeds_and_a_redelivery_posts_nothing_twice(
    system: EmbeddedSystem, github: GitHubState
) -> None:
    # GIVEN two VMs of wave-1 that migrate
    requests = example_requests("wave-1")[:2]
    _run(system, requests, None)
    _eventually("success", lambda: ("success", "2/2 migrated") in _statuses(github))
    _eventually("the comment", lambda: github.comments_on(REPO, PULL))
    assert _statuses(github)[0][0] == "in_progress"
    assert _statuses(github)[-1] == ("success", "2/2 migrated")

    # WHEN the last migration's end is delivered again (EventBridge and SQS deliver at least
    # once): the same event put on the bus once more
    writes = [r for r in github.requests if r.method != "GET"]
    record = wiring.store().get(requests[-1].migration_id)
    assert record is not None
    event = MigrationCompleted(
        migration_id=record.migration_id,
        wave=record.wave,
        app_name=record.app_name,
        target_vm_name=record.target_vm_name,
        correlation_id=record.correlation_id,
        sequence=99,
        timestamp=datetime.now(UTC),
        target_instance_id="i-0123456789abcdef0",
        duration_seconds=1.0,
    )
    assert system.resources is not None
    system.client("events").put_events(Entries=[event.to_entry(system.resources.event_bus_name)])
    _eventually("the queue drained", lambda: _drained(system))

    # THEN still one deployment, no new status, one comment
    assert len(github.deployments_of(REPO)) == 1
    assert [r for r in github.requests if r.method != "GET"] == writes
    assert len(github.comments_on(REPO, PULL)) == 1


def _drained(system: EmbeddedSystem) -> bool:
    assert system.resources is not None
    attributes = system.client("sqs").get_queue_attributes(
        QueueUrl=system.resources.github_progress_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())
