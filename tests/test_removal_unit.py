"""What a VM's removal from the manifests does to its migration: the pure decision, and the
rollback it asks for (``RollbackService.request_for_removal``) over in-memory fakes.

The end-to-end test (tests/test_cancel_removed_e2e.py) publishes a removal from git and
watches the embedded system act on it.
"""

from __future__ import annotations

import pytest

from orchestration.adapters.stepfunctions import Execution
from orchestration.events import Step
from orchestration.pipeline.errors import ROLLBACK_REQUESTED
from orchestration.pipeline.manual_rollback import RollbackRequestError, RollbackService
from orchestration.pipeline.removal import (
    BEFORE_CUTOVER,
    CancelOutcome,
    decide_cancel,
    removal_actor,
    removal_reason,
)
from orchestration.request_identity import vm_revision
from tests.support.fakes import FakeStepFunctions, FakeStore, FixedClock, migration_record
from tests.support.pipeline import example_requests

MACHINE = "arn:aws:states:us-east-1:111122223333:stateMachine:wavepilot"
RUNNING = "arn:aws:states:us-east-1:111122223333:execution:wavepilot:mig-12345-r1"


def _decide(status: str | None, step: str, *, started: bool = True, same: bool = True) -> str:
    return decide_cancel(status, step, has_execution=started, same_revision=same).outcome.value


@pytest.mark.parametrize(
    "step",
    [
        "ValidateInput",
        "PrepareSource",
        "WaitForReplication",
        "StartTestLaunch",
        "VerifyTestLaunch",
        "AwaitApproval",
        "PrepareCutover",
    ],
)
def test_a_migration_running_before_its_cutover_is_rolled_back(step: str) -> None:
    assert _decide("RUNNING", step) == "rollback-started"


def test_a_parked_migration_is_rolled_back() -> None:
    assert _decide("PARKED", "Park") == "rollback-started"


@pytest.mark.parametrize("step", ["StartCutover", "VerifyCutover", "FinalizeCutover"])
def test_a_migration_whose_cutover_started_is_left_as_it_is(step: str) -> None:
    decision = decide_cancel("RUNNING", step, has_execution=True, same_revision=True)

    assert decision.outcome is CancelOutcome.LEFT_CUT_OVER
    assert not decision.ungroups_now
    assert f"its cutover has started ({step})" in decision.why
    assert "/wavepilot rollback" in decision.why


def test_a_step_this_version_does_not_know_is_never_rolled_back_on_a_guess() -> None:
    assert _decide("RUNNING", "SomeLaterStep") == "left-cut-over"


def test_every_step_before_the_cutover_is_listed_and_none_after() -> None:
    after = {Step.START_CUTOVER, Step.VERIFY_CUTOVER, Step.FINALIZE_CUTOVER, Step.ROLLBACK}
    assert set(Step) - after == BEFORE_CUTOVER


@pytest.mark.parametrize(
    ("status", "step", "started", "expected"),
    [
        ("COMPLETED", "FinalizeCutover", True, "finalized"),
        ("ROLLED_BACK", "Rollback", True, "ended"),
        ("CANCELLED", "Intake", False, "ended"),
        ("REQUESTED", "Intake", False, "not-started"),
    ],
)
def test_nothing_runs_nothing_is_stopped_and_mgn_is_cleaned_up_at_once(
    status: str, step: str, started: bool, expected: str
) -> None:
    decision = decide_cancel(status, step, has_execution=started, same_revision=True)

    assert decision.outcome.value == expected
    assert decision.ungroups_now
    assert decision.kept_on_record


def test_a_migration_rolling_back_already_is_cleaned_up_by_its_rollbacks_end() -> None:
    decision = decide_cancel("RUNNING", "Rollback", has_execution=True, same_revision=True)

    assert decision.outcome is CancelOutcome.ROLLING_BACK
    assert not decision.ungroups_now
    assert decision.kept_on_record


def test_an_unknown_migration_is_only_recorded() -> None:
    decision = decide_cancel(None, "", has_execution=False, same_revision=False)

    assert decision.outcome is CancelOutcome.UNKNOWN
    assert not decision.ungroups_now
    assert not decision.kept_on_record


def test_a_cancel_of_another_revision_than_the_recorded_one_stops_nothing() -> None:
    decision = decide_cancel("RUNNING", "AwaitApproval", has_execution=True, same_revision=False)

    assert decision.outcome is CancelOutcome.OTHER_REVISION
    assert not decision.ungroups_now
    assert not decision.kept_on_record
    assert "not stopped" in decision.why


def test_the_reason_names_the_commit_the_file_and_the_author() -> None:
    request = example_requests()[0].model_copy(update={"action": "cancel"})
    assert request.provenance is not None

    assert removal_reason(request) == (
        f"removed from the manifests in {'c' * 12} ({request.provenance.manifest_path}) "
        "by Dana Migration"
    )
    assert removal_actor(request) == "Dana Migration <dana@contoso.com>"
    anonymous = request.model_copy(
        update={"provenance": request.provenance.model_copy(update={"author": ""})}
    )
    assert removal_actor(anonymous) == f"commit {'c' * 12}"
    assert request.effective_vm is not None
    assert request.revision == vm_revision(request.effective_vm)


def test_a_removal_rolls_back_without_an_operator_check_and_shows_its_reason() -> None:
    # GIVEN a migration at its approval gate, and a rollback service whose operators the
    # commit's author is not one of
    store = FakeStore(migrations={"mig-12345": migration_record(execution_arn=RUNNING)})
    sfn = FakeStepFunctions()
    sfn.executions[RUNNING] = Execution(RUNNING, "RUNNING", {"spec": {"migrationId": "mig-12345"}})
    service = RollbackService(store, sfn, MACHINE, FixedClock(), ["U07ALICE001"])
    reason = "removed from the manifests in cccccccccccc (manifests/waves/wave-1.yaml) by Ann"

    # WHEN the removal asks for its rollback
    started = service.request_for_removal(
        store.migrations["mig-12345"], actor="Ann <ann@contoso.com>", reason=reason
    )

    # THEN the execution is stopped and the rollback started with the reason as it is (no
    # Slack mention of a user who is none)
    ((stopped, error, _),) = sfn.stopped
    assert (stopped, error) == (RUNNING, ROLLBACK_REQUESTED)
    ((_, _, payload),) = sfn.started
    assert payload["rollbackRequest"] == {"requestedBy": "Ann <ann@contoso.com>", "reason": reason}
    assert started.stopped_execution_arn == RUNNING
    assert [(a.actor, a.action, a.outcome) for a in store.audits] == [
        ("Ann <ann@contoso.com>", "rollback", "started")
    ]


def test_a_removal_never_rolls_back_a_finalized_migration() -> None:
    record = migration_record(status="COMPLETED", step="FinalizeCutover", execution_arn=RUNNING)
    store = FakeStore(migrations={"mig-12345": record})
    sfn = FakeStepFunctions()
    service = RollbackService(store, sfn, MACHINE, FixedClock(), [])

    with pytest.raises(RollbackRequestError, match="finalized"):
        service.request_for_removal(record, actor="Ann", reason="removed")

    assert sfn.started == []
    assert [(a.action, a.outcome) for a in store.audits] == [("rollback", "refused")]
