"""ParkService (onFailure: park) over the real ParkStore on moto: who may decide, exactly once,
what the waiting execution is told, and what is audited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters.parks import ParkStore
from orchestration.adapters.stepfunctions import StepFunctionsRefusedError, TaskNotWaitingError
from orchestration.events import MigrationParked, Step
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames
from orchestration.pipeline.parking import ParkError, ParkService
from orchestration.pipeline.spec import MigrationSpec
from tests.support.fakes import (
    FakeReporter,
    FakeStepFunctions,
    FakeStore,
    FixedClock,
    migration_record,
)

OPERATOR = "U07ALICE001"
TOKEN = "token-of-the-park"
FAILED_TEST = {
    "error": {
        "Error": "LaunchFailedError",
        "Cause": '{"errorMessage": "MGN test launch job mgnjob-1 reports FAILED"}',
    },
    "park": {"done": True, "failedStep": "VerifyTestLaunch", "parkSeconds": 7200},
}


@dataclass
class Parking:
    service: ParkService
    parks: ParkStore
    store: FakeStore
    sfn: FakeStepFunctions
    reporter: FakeReporter
    clock: FixedClock
    spec: MigrationSpec


@pytest.fixture
def parking(aws_env: None) -> Iterator[Parking]:
    """GIVEN mig-12345's test launch failed and it was parked (for two hours)."""
    with mock_aws():
        resources = provision(
            ResourceNames(environment="test"),
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(resources.table_name)
        parks = ParkStore(table)
        record = migration_record(status="PARKED", step="Park")
        store = FakeStore(migrations={record.migration_id: record})
        sfn = FakeStepFunctions()
        clock = FixedClock()
        reporter = FakeReporter(clock)
        service = ParkService(parks, store, sfn, reporter, clock, [OPERATOR])
        spec = MigrationSpec.from_request(
            record.request, record.revision, record.correlation_id, default_approvers=[OPERATOR]
        )
        service.park(spec, TOKEN, FAILED_TEST)
        yield Parking(service, parks, store, sfn, reporter, clock, spec)


def _audits(parking: Parking) -> list[tuple[str, str, str]]:
    return [(a.actor, a.action, a.outcome) for a in parking.store.audits]


def test_parking_says_what_failed_who_decides_and_when_it_rolls_back(parking: Parking) -> None:
    [event] = [e for e in parking.reporter.events if isinstance(e, MigrationParked)]
    assert (event.step, event.error) == ("VerifyTestLaunch", "LaunchFailedError")
    assert event.cause == "MGN test launch job mgnjob-1 reports FAILED"
    assert (event.rollback_at - event.timestamp).total_seconds() == 7200
    [step] = parking.reporter.steps
    assert (step.step, step.status, step.migration_status) == (Step.PARK, "WAITING", "PARKED")
    park = parking.parks.park(parking.spec.migration_id)
    assert park is not None
    assert park.status == "PENDING"
    assert park.park_id == event.park_id


def test_an_operators_retry_resumes_the_execution_once(parking: Parking) -> None:
    park = parking.parks.park(parking.spec.migration_id)
    assert park is not None

    done = parking.service.decide(
        parking.spec.migration_id, "retry", user=OPERATOR, park_id=park.park_id
    )

    assert done.decision == "retry"
    [answer] = parking.sfn.answers
    assert answer.token == TOKEN
    assert answer.output is not None
    assert answer.output["decision"] == "retry"
    assert answer.output["parkId"] == park.park_id  # the retried test launch's attempt
    assert [(s.step, s.status, s.migration_status) for s in parking.reporter.steps][-1] == (
        Step.PARK,
        "SUCCEEDED",
        "RUNNING",
    )
    # A second click (or a late Roll back) decides nothing and says who did
    with pytest.raises(ParkError, match=f"already retried by <@{OPERATOR}>"):
        parking.service.decide(parking.spec.migration_id, "rollback", user=OPERATOR)
    assert len(parking.sfn.answers) == 1
    assert _audits(parking) == [
        (OPERATOR, "park-retry", "decided"),
        (OPERATOR, "park-rollback", "refused"),
    ]


def test_roll_back_tells_the_execution_who_and_why(parking: Parking) -> None:
    parking.service.decide(
        parking.spec.migration_id, "rollback", user=OPERATOR, reason="the app team gave up"
    )

    [answer] = parking.sfn.answers
    output: dict[str, Any] = dict(answer.output or {})
    assert output["decision"] == "rollback"
    assert output["reason"] == f"rolled back by <@{OPERATOR}> while parked: the app team gave up"


def test_only_the_waves_operators_decide(parking: Parking) -> None:
    with pytest.raises(ParkError, match="is not an operator"):
        parking.service.decide(parking.spec.migration_id, "retry", user="U07MALLORY9")

    assert parking.sfn.answers == []
    assert _audits(parking) == [("U07MALLORY9", "park-retry", "refused")]
    park = parking.parks.park(parking.spec.migration_id)
    assert park is not None
    assert park.status == "PENDING"


def test_a_button_from_an_earlier_park_decides_nothing(parking: Parking) -> None:
    with pytest.raises(ParkError, match="earlier park"):
        parking.service.decide(
            parking.spec.migration_id, "retry", user=OPERATOR, park_id="prk-0000000000000000"
        )
    assert parking.sfn.answers == []


def test_a_park_that_expired_is_closed_and_says_so(parking: Parking) -> None:
    parking.service.expire(parking.spec.migration_id, reason="parkFor ran out")

    with pytest.raises(ParkError, match="no longer parked: parkFor ran out"):
        parking.service.decide(parking.spec.migration_id, "retry", user=OPERATOR)
    assert parking.sfn.answers == []


def test_an_execution_that_stopped_waiting_is_refused(parking: Parking) -> None:
    parking.sfn.answer_fails_with = TaskNotWaitingError("TaskTimedOut")  # parkFor passed

    with pytest.raises(ParkError, match="no longer parked"):
        parking.service.decide(parking.spec.migration_id, "retry", user=OPERATOR)


def test_a_decision_step_functions_refused_can_be_taken_again(parking: Parking) -> None:
    parking.sfn.answer_fails_with = StepFunctionsRefusedError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}, "SendTaskSuccess"
    )
    with pytest.raises(StepFunctionsRefusedError):
        parking.service.decide(parking.spec.migration_id, "retry", user=OPERATOR)
    park = parking.parks.park(parking.spec.migration_id)
    assert park is not None
    assert park.status == "PENDING"

    parking.service.decide(parking.spec.migration_id, "retry", user=OPERATOR)

    assert len(parking.sfn.answers) == 1
    assert _audits(parking) == [
        (OPERATOR, "park-retry", "failed"),
        (OPERATOR, "park-retry", "decided"),
    ]
