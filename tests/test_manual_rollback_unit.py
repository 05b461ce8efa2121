"""RollbackService over in-memory fakes: who may ask, what is stopped, what is started."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestration.adapters.stepfunctions import Execution, ExecutionDoesNotExistError
from orchestration.pipeline.errors import ROLLBACK_REQUESTED
from orchestration.pipeline.manual_rollback import (
    NotAnOperatorError,
    RollbackRequestError,
    RollbackService,
)
from tests.support.fakes import FakeStepFunctions, FakeStore, FixedClock, migration_record

MACHINE = "arn:aws:states:us-east-1:111122223333:stateMachine:wavepilot"
RUNNING = "arn:aws:states:us-east-1:111122223333:execution:wavepilot:mig-12345-r1"
OPERATOR = "U07ALICE001"


@dataclass
class Rollbacks:
    service: RollbackService
    store: FakeStore
    sfn: FakeStepFunctions


@pytest.fixture
def rollbacks() -> Rollbacks:
    """GIVEN mig-12345 waits at its approval gate in execution RUNNING."""
    store = FakeStore(migrations={"mig-12345": migration_record(execution_arn=RUNNING)})
    sfn = FakeStepFunctions()
    sfn.executions[RUNNING] = Execution(RUNNING, "RUNNING", {"spec": {"migrationId": "mig-12345"}})
    service = RollbackService(store, sfn, MACHINE, FixedClock(), [OPERATOR])
    return Rollbacks(service, store, sfn)


def test_a_rollback_stops_the_execution_and_starts_one_that_rolls_back(
    rollbacks: Rollbacks,
) -> None:
    started = rollbacks.service.request("mig-12345", user=OPERATOR, reason="app broken")

    ((stopped, error, cause),) = rollbacks.sfn.stopped
    assert (stopped, error) == (RUNNING, ROLLBACK_REQUESTED)
    assert cause == f"rollback requested by {OPERATOR}: app broken"
    ((_, name, payload),) = rollbacks.sfn.started
    assert name.startswith("mig-12345-0123456789abcdef-rollback-")
    assert payload == {
        "spec": {"migrationId": "mig-12345"},
        "rollbackRequest": {
            "requestedBy": OPERATOR,
            "reason": f"requested by <@{OPERATOR}>: app broken",
        },
    }
    assert started.stopped_execution_arn == RUNNING
    assert rollbacks.store.executions["mig-12345"][1] == started.execution_arn
    assert [(a.action, a.outcome) for a in rollbacks.store.audits] == [("rollback", "started")]


def test_an_execution_that_ended_meanwhile_is_still_rolled_back(rollbacks: Rollbacks) -> None:
    rollbacks.sfn.stop_fails_with = ExecutionDoesNotExistError("ExecutionDoesNotExist")

    started = rollbacks.service.request("mig-12345", user=OPERATOR, reason="app broken")

    assert started.stopped_execution_arn is None
    assert len(rollbacks.sfn.started) == 1


def test_only_the_waves_operators_may_roll_back(rollbacks: Rollbacks) -> None:
    with pytest.raises(NotAnOperatorError, match="is not an operator of wave-3"):
        rollbacks.service.request("mig-12345", user="U07MALLORY9", reason="why not")

    assert rollbacks.sfn.stopped == []
    assert rollbacks.sfn.started == []
    assert [(a.action, a.outcome) for a in rollbacks.store.audits] == [("rollback", "refused")]


def test_a_finalized_migration_is_refused(rollbacks: Rollbacks) -> None:
    rollbacks.store.migrations["mig-12345"] = migration_record(
        status="COMPLETED", execution_arn=RUNNING
    )

    with pytest.raises(RollbackRequestError, match="is finalized"):
        rollbacks.service.request("mig-12345", user=OPERATOR, reason="too late")

    assert rollbacks.sfn.stopped == []
