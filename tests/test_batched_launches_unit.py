"""BatchedLaunches: outcomes reach their executions exactly once, whatever fails in between;
a lane's loop hands over to a fresh execution of itself, never leaving the lane without one."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters.lanes import Lane
from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.adapters.stepfunctions import (
    ExecutionAlreadyExistsError,
    StepFunctionsRefusedError,
    TaskDoesNotExistError,
)
from orchestration.adapters.wave_control import WaveControl
from orchestration.launch_records import LaunchOutcome, LaunchRequest
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames
from orchestration.pipeline.batched_launches import (
    REQUEST_CONTROL_MAX_AGE_SECONDS,
    BatchedLaunches,
    LoopConfig,
    identity_of,
    loop_name,
    outcome_output,
    successor_name,
)
from orchestration.pipeline.errors import WaveCancelledError
from orchestration.pipeline.reporter import Identity
from orchestration.pipeline.spec import MigrationSpec
from tests.support.fakes import FakeReporter, FixedClock, migration_record

NOW = datetime(2026, 12, 12, 22, 0, tzinfo=UTC)
REQUEST = LaunchRequest("mig-1", "s-0123456789abcdef0", "test", "wave-1", NOW)
LANE = "123456789012/eu-west-1"
# The loop's config (its definition's Configure state); it hands over after its third run.
CONFIG = {
    "concurrentJobs": 20,
    "serversPerJob": 200,
    "serversInActiveJobs": 200,
    "lingerSeconds": 60,
    "handOverAfterRuns": 3,
}


class Tasks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Mapping[str, Any]]] = []
        self.fail_with: Exception | None = None
        self.started: list[tuple[str, str, Mapping[str, Any]]] = []
        self.start_fails_with: Exception | None = None

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((task_token, output))

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        if self.start_fails_with is not None:
            raise self.start_fails_with
        if any(started == name for _, started, _ in self.started):
            raise ExecutionAlreadyExistsError(f"ExecutionAlreadyExists: {name}")
        self.started.append((state_machine_arn, name, payload))
        return f"{state_machine_arn}:{name}"


class StillReplicating:
    """A lane's MGN whose servers all still replicate: test requests keep waiting, so a run
    starts and observes nothing; it counts the servers it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def source_servers(self, ids: Sequence[str]) -> list[Any]:
        self.asked.extend(ids)
        return []


class NoMgn:
    """The lane's sessions, for runs that have nothing to start or observe."""

    def __init__(self) -> None:
        self.mgn = StillReplicating()

    def clients(self, lane: Lane) -> SimpleNamespace:
        return SimpleNamespace(mgn=self.mgn, ec2=SimpleNamespace(instances=self.no_instances))

    @staticmethod
    def no_instances(ids: Sequence[str]) -> dict[str, Any]:
        raise AssertionError(f"no launch completes in these runs: {list(ids)} read")


@pytest.fixture
def ledger(aws_env: None) -> Iterator[DynamoLaunchLedger]:
    with mock_aws():
        resources = provision(
            ResourceNames(environment="test"),
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(resources.table_name)
        yield DynamoLaunchLedger(table, LANE)


@pytest.fixture
def launches(ledger: DynamoLaunchLedger) -> tuple[BatchedLaunches, Any, Tasks]:
    tasks = Tasks()
    service = BatchedLaunches(
        lanes=NoMgn(),  # type: ignore[arg-type]
        ledger_for=lambda _lane: ledger,
        tasks=tasks,
        coordinator_arn="arn:coordinator",
        reporter=None,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
    )
    return service, ledger, tasks


def _answered(ledger: Any) -> LaunchOutcome:
    ledger.record_request(REQUEST, "token-1")
    outcome = LaunchOutcome(
        "mig-1", "token-1", "test", "mgnjob-1", REQUEST.source_server_id, "LAUNCHED", "i-1"
    )
    ledger.complete([outcome])
    return outcome


def test_an_outcome_not_sent_before_a_crash_is_sent_by_the_next_run(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    outcome = _answered(ledger)
    tasks.fail_with = RuntimeError("the Lambda dies here")
    with pytest.raises(RuntimeError):
        service.deliver(ledger)
    assert ledger.undelivered() == [outcome]  # kept: nothing is lost

    tasks.fail_with = None
    assert service.deliver(ledger) == (1, 0)
    assert tasks.sent == [("token-1", outcome_output(outcome))]
    assert ledger.undelivered() == []
    assert service.deliver(ledger) == (0, 0)  # sent once


def test_a_run_that_answers_nothing_reads_the_outbox_only_when_its_read_saw_one(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    waiting = LaunchRequest("mig-2", "s-0fedcba9876543210", "test", "wave-1", NOW)
    loop = _loop_with(ledger, waiting)  # its server still replicates: nothing is answered
    queries: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        queries.append(params["KeyConditionExpression"])

    events = ledger._table.meta.client.meta.events
    events.register("provide-client-params.dynamodb.Query", count)
    try:
        # WHEN the loop runs with nothing in the outbox: its one read of the lane, no more
        service.coordinate(LANE, loop, CONFIG)
        assert len(queries) == 1, queries

        # AND with an outcome a crashed run left undelivered: the read sees it, it is sent
        outcome = _answered(ledger)
        queries.clear()
        service.coordinate(LANE, loop, CONFIG, 1)
    finally:
        events.unregister("provide-client-params.dynamodb.Query", count)
    assert len(queries) == 2, queries
    assert tasks.sent == [("token-1", outcome_output(outcome))]
    assert ledger.undelivered() == []


def test_an_execution_that_moved_on_is_recorded_and_its_outcome_dropped(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    _answered(ledger)
    tasks.fail_with = TaskDoesNotExistError("TaskDoesNotExist: stopped")
    assert service.deliver(ledger) == (0, 1)
    assert ledger.undelivered() == []


def test_loop_names_are_unique_and_valid_execution_names() -> None:
    lane = Lane("444455556666", "eu-west-1")
    names = {loop_name(lane, NOW.timestamp()) for _ in range(50)}
    assert len(names) == 50
    assert all(len(name) <= 80 and "/" not in name for name in names)


# --- a loop hands over to a fresh execution of itself ("continue as new") ------------------


def _busy_lane(ledger: Any) -> str:
    """A request waits in the lane (its server still replicating), and a loop holds it."""
    ledger.record_request(REQUEST, "token-1")
    name = ledger.claim_loop("launches-123456789012-eu-west-1-1-aaaaaaaa", NOW, 300)
    assert name is not None
    return str(name)


def test_a_busy_loop_hands_its_lane_over_after_its_runs_and_ends(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    loop = _busy_lane(ledger)
    runs = 0
    for _ in range(2):
        run = service.coordinate(LANE, loop, CONFIG, runs)
        # nothing to start or watch (the server replicates): the next run in five lingers
        assert (run["done"], run["waitSeconds"]) == (False, 300)
        runs = run["runs"]
    assert (runs, tasks.started) == (2, [])

    run = service.coordinate(LANE, loop, CONFIG, runs)  # the third

    # THEN the lease went to a new execution of the coordinator, started with the lane
    successor = successor_name(loop, 3)
    assert (run["done"], run["handedOverTo"], run["runs"]) == (True, successor, 3)
    assert tasks.started == [("arn:coordinator", successor, {"lane": LANE})]
    assert successor != loop
    assert len(successor) <= 80
    assert "/" not in successor
    # AND the new loop holds the lane and runs it, counting from its own first run
    after = service.coordinate(LANE, successor, CONFIG, 0)
    assert (after["done"], after["runs"], after["waiting"]) == (False, 1, 1)
    # AND the old one, run again (its Lambda retried), ends without a second start
    again = service.coordinate(LANE, loop, CONFIG, runs)
    assert (again["done"], again["handedOverTo"]) == (True, successor)
    assert len(tasks.started) == 1
    assert ledger.beat(loop, NOW, 300) is None
    assert ledger.beat(successor, NOW, 300) is not None


def test_a_retried_run_starts_the_successor_it_handed_the_lease_to(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    loop = _busy_lane(ledger)
    # The run moved the lease, then its Lambda died before StartExecution.
    successor = successor_name(loop, 3)
    assert ledger.hand_over_loop(loop, successor, NOW, 300) is True

    run = service.coordinate(LANE, loop, CONFIG, 2)  # the retry: the same input

    assert (run["done"], run["handedOverTo"]) == (True, successor)
    assert tasks.started == [("arn:coordinator", successor, {"lane": LANE})]


def test_a_successor_that_cannot_start_leaves_the_lane_with_the_old_loop(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    loop = _busy_lane(ledger)
    tasks.start_fails_with = StepFunctionsRefusedError(
        {"Error": {"Code": "ExecutionLimitExceeded", "Message": "too many"}}, "StartExecution"
    )

    run = service.coordinate(LANE, loop, CONFIG, 2)

    # THEN the old loop keeps the lease and runs on; the successor's name holds nothing
    assert (run["done"], run["waitSeconds"], run["handOverFailed"]) == (
        False,
        60,
        "StepFunctionsRefusedError",
    )
    assert tasks.started == []
    failed = successor_name(loop, 3)
    assert service.coordinate(LANE, failed, CONFIG, 0) == {
        "runs": 1,
        "done": True,
        "reason": "another loop holds the lane",
    }
    # AND its next run hands over, to another name (the failed one may exist after all)
    tasks.start_fails_with = None
    run = service.coordinate(LANE, loop, CONFIG, run["runs"])
    assert (run["done"], run["handedOverTo"]) == (True, successor_name(loop, 4))
    assert successor_name(loop, 4) != failed
    assert [name for _, name, _ in tasks.started] == [successor_name(loop, 4)]


def test_a_loop_that_lost_the_lease_ends_without_handing_over(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    loop = _busy_lane(ledger)
    # Taken for dead: its lease expired and a request started another loop.
    later = NOW + timedelta(seconds=301)
    assert ledger.claim_loop("launches-other", later, 300) == "launches-other"

    run = service.coordinate(LANE, loop, CONFIG, 2)

    assert run == {"runs": 3, "done": True, "reason": "another loop holds the lane"}
    assert tasks.started == []
    assert ledger.beat("launches-other", later, 300) is not None


def test_an_idle_loop_ends_rather_than_hands_over(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, tasks = launches
    loop = ledger.claim_loop("launches-idle", NOW, 300)

    run = service.coordinate(LANE, loop, CONFIG, 2)

    assert (run["done"], "handedOverTo" in run) == (True, False)
    assert tasks.started == []
    assert ledger.claim_loop("launches-next", NOW, 300) == "launches-next"  # released


def test_a_loop_of_a_definition_that_counts_no_runs_hands_over_after_its_next_run(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    """Running when handovers were deployed: no ``handOverAfterRuns``, no ``runs``."""
    service, ledger, tasks = launches
    loop = _busy_lane(ledger)
    uncounted = {k: v for k, v in CONFIG.items() if k != "handOverAfterRuns"}

    run = service.coordinate(LANE, loop, uncounted)

    assert (run["done"], run["handedOverTo"]) == (True, successor_name(loop, 1))
    assert [name for _, name, _ in tasks.started] == [successor_name(loop, 1)]


def test_successor_names_are_the_same_for_a_retry_and_new_for_each_handover() -> None:
    lane = Lane("444455556666", "ap-southeast-2")
    first = loop_name(lane, NOW.timestamp())
    names = [first]
    for _ in range(20):
        names.append(successor_name(names[-1], 1000))
    assert len(set(names)) == len(names)
    assert successor_name(first, 1000) == names[1]
    assert successor_name(first, 1001) != names[1]
    stem = first.rsplit("-", 1)[0]
    assert all(n.startswith(stem + "-") and len(n) == len(first) for n in names)
    assert successor_name("x" * 80, 1) == successor_name("x" * 80, 1)
    assert len(successor_name("x" * 80, 1)) <= 80


def test_a_loop_plans_with_its_own_lanes_quotas() -> None:
    config = {
        "concurrentJobs": 20,
        "serversPerJob": 200,
        "serversInActiveJobs": 200,
        "lingerSeconds": 60,
        "handOverAfterRuns": 1000,
        "quotasByLane": {"444455556666/eu-west-1": {"concurrentJobs": 40}},
    }
    raised = LoopConfig.from_event(config, "444455556666/eu-west-1").quotas
    assert (raised.concurrent_jobs, raised.servers_per_job) == (40, 200)
    assert LoopConfig.from_event(config, "111122223333/eu-west-1").quotas.concurrent_jobs == 20
    assert LoopConfig.from_event({**config, "quotasByLane": {}}, LANE).quotas.concurrent_jobs == 20


class OneLane(NoMgn):
    def lane_of(self, spec: MigrationSpec) -> Lane:
        return Lane("123456789012", "eu-west-1")


def _state(migration_id: str, **results: Any) -> dict[str, Any]:
    record = migration_record()
    spec = MigrationSpec.from_request(
        record.request, record.revision, record.correlation_id, default_approvers=["U1"]
    )
    spec = spec.model_validate({**spec.model_dump(by_alias=False), "migration_id": migration_id})
    return {
        "spec": spec.model_dump(mode="json", by_alias=True),
        "source": {"sourceServerId": f"s-{migration_id[-1] * 17}"},
        **results,
    }


def _requesting(ledger: DynamoLaunchLedger) -> BatchedLaunches:
    """The service as request_launch uses it: the lane's ledger, nothing reported."""
    return BatchedLaunches(
        lanes=OneLane(),  # type: ignore[arg-type]
        ledger_for=lambda _lane: ledger,
        tasks=Tasks(),
        coordinator_arn="arn:coordinator",
        reporter=None,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
    )


def test_a_cutover_request_names_the_test_instance_its_coordinator_retires(
    ledger: DynamoLaunchLedger,
) -> None:
    service = _requesting(ledger)
    verified = {"testCheck": {"done": True, "instanceId": "i-0123456789abcdef0"}}
    service.request(_state("mig-1", **verified), "cutover", "token-1", "exec-1")
    # prepared by a PrepareCutover that terminated the test instance itself: nothing to retire
    terminated = {**verified, "preparedCutover": {"terminateJobId": "mgnjob-1"}}
    service.request(_state("mig-2", **terminated), "cutover", "token-2", "exec-2")
    service.request(_state("mig-3", **verified), "test", "token-3", "exec-3")

    to_retire = {
        launch.request.migration_id: launch.request.test_instance_id
        for launch in ledger.snapshot().waiting
    }
    assert to_retire == {"mig-1": "i-0123456789abcdef0", "mig-2": None, "mig-3": None}


def test_a_request_keeps_only_what_its_migrations_reports_need(
    ledger: DynamoLaunchLedger,
) -> None:
    service = _requesting(ledger)
    state = _state("mig-1")
    state["spec"] |= {"slackChannel": "C07WAVE0001", "callbackUrls": ["https://cmdb.test/w"]}
    spec = MigrationSpec.model_validate(state["spec"])

    service.request(state, "test", "token-1", "exec-1")

    # THEN the lane's open request keeps the migration's identity and routing, not its spec
    # (every run of the loop reads every open request)
    [waiting] = ledger.snapshot().waiting
    assert set(json.loads(waiting.request.payload)) == {
        "migrationId",
        "wave",
        "appName",
        "targetVmName",
        "correlationId",
        "slackChannel",
        "callbackUrls",
        "targetAccountId",
        "targetRegion",
    }
    named = identity_of(waiting.request.payload)
    assert named == Identity(
        spec.migration_id,
        spec.wave,
        spec.app_name,
        spec.target_vm_name,
        spec.correlation_id,
        "C07WAVE0001",
        ("https://cmdb.test/w",),
        spec.target_account_id,
        spec.target_region,
    )
    # AND a request recorded with the whole spec (before) names the migration the same way
    assert identity_of(spec.model_dump_json(by_alias=True)) == named


# --- how long a loop waits between runs ------------------------------------------------------


def _loop_with(ledger: Any, *requests: LaunchRequest) -> str:
    for n, request in enumerate(requests):
        ledger.record_request(request, f"token-{n}")
    name = ledger.claim_loop("launches-123456789012-eu-west-1-1-bbbbbbbb", NOW, 300)
    assert name is not None
    return str(name)


def _cutover(migration_id: str, opens_in: timedelta) -> LaunchRequest:
    return LaunchRequest(
        migration_id,
        f"s-{migration_id[-1] * 17}",
        "cutover",
        "wave-1",
        NOW - timedelta(hours=1),
        window_start=NOW + opens_in,
        window_end=NOW + opens_in + timedelta(hours=8),
    )


@pytest.mark.parametrize(
    ("opens_in", "wait"),
    [
        (timedelta(hours=3), 300),  # a quiet lane looks every five lingers
        (timedelta(seconds=150), 150),  # ... and at the window's opening, not later
        (timedelta(seconds=20), 60),  # never sooner than a linger
    ],
)
def test_a_lane_waiting_for_its_window_runs_at_most_every_five_lingers_and_at_the_opening(
    launches: tuple[BatchedLaunches, Any, Tasks], opens_in: timedelta, wait: int
) -> None:
    service, ledger, _ = launches
    loop = _loop_with(ledger, _cutover("mig-1", opens_in), _cutover("mig-2", opens_in * 2))
    run = service.coordinate(LANE, loop, CONFIG, 0)
    assert (run["done"], run["waiting"], run["jobs"], run["waitSeconds"]) == (False, 2, 0, wait)


def test_a_lane_with_a_launch_to_start_runs_again_after_a_linger(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    service, ledger, _ = launches
    # a test request already replicated, lingering for company (its linger not over)
    ledger.record_request(REQUEST, "token-1")
    ledger.mark_replication_ready(ledger.snapshot().waiting)
    loop = _loop_with(ledger, _cutover("mig-2", timedelta(hours=3)))
    run = service.coordinate(LANE, loop, CONFIG, 0)
    assert (run["done"], run["waiting"], run["waitSeconds"]) == (False, 2, 60)


def test_replication_is_looked_at_when_a_multiple_of_the_poll_passed_during_the_wait(
    launches: tuple[BatchedLaunches, Any, Tasks],
) -> None:
    """The readiness poll (every five lingers, on multiples of it) is due when one passed
    since the previous run, however long the loop waited: the loop says how long."""
    service, ledger, _ = launches
    mgn = service._lanes.mgn  # type: ignore[attr-defined]
    old = LaunchRequest("mig-1", "s-0123456789abcdef0", "test", "wave-1", NOW - timedelta(hours=1))
    loop = _loop_with(ledger, old)
    since_boundary = 200  # seconds since the last multiple of the poll (300 s): NOW is one
    service._clock.current = NOW + timedelta(seconds=since_boundary)  # type: ignore[attr-defined]

    service.coordinate(LANE, loop, CONFIG, 0, waited_seconds=since_boundary - 1)
    asked_after_a_short_wait = list(mgn.asked)
    service.coordinate(LANE, loop, CONFIG, 1, waited_seconds=since_boundary + 1)

    assert asked_after_a_short_wait == []
    assert mgn.asked == [old.source_server_id]


def test_a_paused_waves_launches_are_reported_held_once_per_pause(
    ledger: DynamoLaunchLedger,
) -> None:
    # GIVEN a cutover request of wave-3 (window open) and the wave paused by an operator
    record = migration_record()
    spec = MigrationSpec.from_request(record.request, record.revision, record.correlation_id)
    request = LaunchRequest(
        spec.migration_id,
        "s-0123456789abcdef0",
        "cutover",
        spec.wave,
        NOW,
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=1),
        payload=spec.model_dump_json(by_alias=True),
    )
    ledger.record_request(request, "token-1")
    pause = WaveControl(spec.wave, "PAUSED", "U07BOBOPS01", NOW, "DNS freeze")
    clock = FixedClock(NOW)
    reporter = FakeReporter(clock)
    service = BatchedLaunches(
        lanes=NoMgn(),  # type: ignore[arg-type]
        ledger_for=lambda _lane: ledger,
        tasks=Tasks(),
        coordinator_arn="arn:coordinator",
        reporter=reporter,
        clock=clock,
        wave_controls=SimpleNamespace(get=lambda _wave: pause),
    )

    # WHEN the lane's loop runs twice
    loop = ledger.claim_loop("launches-123456789012-eu-west-1-1-aaaaaaaa", NOW, 300)
    assert loop is not None
    service.coordinate(LANE, loop, CONFIG)
    service.coordinate(LANE, loop, CONFIG, 1)

    # THEN its thread is told once that the cutover waits for the resume (shown paused)
    [held] = reporter.steps
    assert (held.step, held.status, held.data) == ("StartCutover", "WAITING", {"held": True})
    assert "paused by <@U07BOBOPS01>" in held.message


def test_a_waves_requests_read_its_control_once_a_half_minute_and_a_cancel_is_refused_after(
    ledger: DynamoLaunchLedger,
) -> None:
    # GIVEN a wave whose control is read through a counter
    reads: list[str] = []
    control: list[WaveControl | None] = [None]

    def read(wave: str) -> WaveControl | None:
        reads.append(wave)
        return control[0]

    clock = FixedClock(NOW)
    service = BatchedLaunches(
        lanes=OneLane(),  # type: ignore[arg-type]
        ledger_for=lambda _lane: ledger,
        tasks=Tasks(),
        coordinator_arn="arn:coordinator",
        reporter=None,  # type: ignore[arg-type]
        clock=clock,
        wave_controls=SimpleNamespace(get=read),
    )

    # WHEN three of its servers ask for their test launch together: one read
    for n in (1, 2, 3):
        service.request(_state(f"mig-{n}"), "test", f"token-{n}", f"exec-{n}")
    assert len(reads) == 1

    # WHEN the wave is cancelled: a request after the half minute is refused
    control[0] = WaveControl(_state("mig-1")["spec"]["wave"], "CANCELLED", "U07BOBOPS01", NOW, "")
    clock.advance(timedelta(seconds=REQUEST_CONTROL_MAX_AGE_SECONDS))
    with pytest.raises(WaveCancelledError):
        service.request(_state("mig-4"), "test", "token-4", "exec-4")
    assert len(reads) == 2
