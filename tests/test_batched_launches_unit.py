"""BatchedLaunches: outcomes reach their executions exactly once, whatever fails in between."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters.lanes import Lane
from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.adapters.stepfunctions import TaskDoesNotExistError
from orchestration.launch_records import LaunchOutcome, LaunchRequest
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames
from orchestration.pipeline.batched_launches import BatchedLaunches, loop_name, outcome_output
from tests.support.fakes import FixedClock

NOW = datetime(2026, 12, 12, 22, 0, tzinfo=UTC)
REQUEST = LaunchRequest("mig-1", "s-0123456789abcdef0", "test", "wave-1", NOW)


class Tasks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Mapping[str, Any]]] = []
        self.fail_with: Exception | None = None

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((task_token, output))

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        return f"{state_machine_arn}:{name}"


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
        yield DynamoLaunchLedger(table, "123456789012/eu-west-1")


@pytest.fixture
def launches(ledger: DynamoLaunchLedger) -> tuple[BatchedLaunches, Any, Tasks]:
    tasks = Tasks()
    service = BatchedLaunches(
        lanes=None,  # type: ignore[arg-type]  # delivery touches no lane
        ledger_for=lambda _lane: ledger,
        tasks=tasks,
        coordinator_arn="arn:coordinator",
        reporter=None,  # type: ignore[arg-type]
        clock=FixedClock(),
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
