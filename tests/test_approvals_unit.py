"""ApprovalService's decisions, over in-memory fakes of its ports (no AWS, no emulator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from orchestration.adapters.state_store import ApprovalRecord, MigrationRecord
from orchestration.adapters.stepfunctions import (
    InvalidTaskTokenError,
    StepFunctionsRefusedError,
    TaskDoesNotExistError,
    TaskNotWaitingError,
    TaskTimedOutError,
)
from orchestration.events import ApprovalDecided, ApprovalRequested
from orchestration.pipeline.approvals import (
    ApprovalAlreadyDecidedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ApprovalService,
    Decision,
    DecisionOutcome,
    GroupMembership,
    NotAnApproverError,
    SelfApprovalError,
    no_groups,
)
from orchestration.pipeline.errors import APPROVAL_REJECTED
from orchestration.pipeline.spec import MigrationSpec
from tests.support.fakes import (
    FakeReporter,
    FakeStepFunctions,
    FakeStore,
    FixedClock,
    TaskAnswer,
    migration_record,
)

ALICE = "U07ALICE001"
BOB = "U07BOB00002"
DANA = "U07DANA0003"
LEADS = "S07MIGLEADS"
TIMEOUT = 3600


@dataclass
class Gate:
    service: ApprovalService
    store: FakeStore
    sfn: FakeStepFunctions
    reporter: FakeReporter
    clock: FixedClock
    approval_id: str

    def decide(
        self,
        decision: Decision = "APPROVED",
        user: str = ALICE,
        *,
        reason: str = "",
        is_member: GroupMembership = no_groups,
        is_requester: Callable[[str], bool] = lambda _user: False,
    ) -> DecisionOutcome:
        return self.service.decide(
            self.approval_id,
            decision,
            user=user,
            reason=reason,
            is_member=is_member,
            is_requester=is_requester,
        )

    def status(self) -> str:
        approval = self.store.approval(self.approval_id)
        assert approval is not None
        return approval.status

    def audit_outcomes(self) -> list[tuple[str, str, str]]:
        return [(a.actor, a.action, a.outcome) for a in self.store.audits]


def _spec() -> MigrationSpec:
    record = migration_record()
    return MigrationSpec.from_request(
        record.request, record.revision, record.correlation_id, default_approvers=[ALICE, LEADS]
    )


@pytest.fixture
def gate() -> Gate:
    """GIVEN a gate opened for mig-12345, approvers Alice and the leads group, 1 h timeout."""
    clock = FixedClock()
    store = FakeStore(migrations={"mig-12345": migration_record()})
    sfn = FakeStepFunctions()
    reporter = FakeReporter(clock)
    service = ApprovalService(store, sfn, reporter, clock)
    approval = service.request(_spec(), "token-1", TIMEOUT)
    return Gate(service, store, sfn, reporter, clock, approval.approval_id)


def test_opening_the_gate_keeps_the_token_and_announces_who_may_decide(gate: Gate) -> None:
    approval = gate.store.approval(gate.approval_id)
    assert approval is not None
    assert approval.status == "PENDING"
    assert approval.expires_at == gate.clock.now() + timedelta(seconds=TIMEOUT)
    assert gate.store.tokens[gate.approval_id] == "token-1"
    assert [(s.step, s.status) for s in gate.reporter.steps] == [("AwaitApproval", "WAITING")]
    (requested,) = gate.reporter.of_type(ApprovalRequested)
    assert requested.approval_id == gate.approval_id
    assert requested.approvers == [ALICE, LEADS]
    assert "token-1" not in requested.model_dump_json()  # the token never leaves AWS


def test_an_approver_approves_and_the_gate_resumes(gate: Gate) -> None:
    gate.decide("APPROVED", ALICE, reason="go")

    (answer,) = gate.sfn.answers
    assert (answer.token, answer.outcome) == ("token-1", "success")
    assert answer.output == {"decision": "APPROVED", "decidedBy": ALICE}
    assert gate.status() == "APPROVED"
    assert gate.audit_outcomes() == [(ALICE, "approve", "decided")]
    (decided,) = gate.reporter.of_type(ApprovalDecided)
    assert (decided.decision, decided.decided_by, decided.reason) == ("APPROVED", ALICE, "go")


def test_a_rejection_fails_the_gate_with_the_reason(gate: Gate) -> None:
    gate.decide("REJECTED", ALICE, reason="app team not ready")

    (answer,) = gate.sfn.answers
    assert (answer.outcome, answer.error, answer.cause) == (
        "failure",
        APPROVAL_REJECTED,
        "app team not ready",
    )
    assert gate.status() == "REJECTED"


def test_a_double_click_decides_once(gate: Gate) -> None:
    gate.decide("APPROVED", ALICE)

    with pytest.raises(ApprovalAlreadyDecidedError, match="already approved by <@U07ALICE001>"):
        gate.decide("REJECTED", ALICE, reason="changed my mind")

    assert len(gate.sfn.answers) == 1
    assert gate.status() == "APPROVED"
    assert gate.audit_outcomes() == [(ALICE, "approve", "decided"), (ALICE, "reject", "refused")]


def test_a_click_that_loses_the_race_reads_who_won(gate: Gate) -> None:
    # GIVEN another click decides between this one's read and its conditional write
    gate.store.decided_meanwhile = ("REJECTED", BOB)

    with pytest.raises(ApprovalAlreadyDecidedError, match=f"already rejected by <@{BOB}>"):
        gate.decide("APPROVED", ALICE)

    assert gate.sfn.answers == []


def test_after_the_timeout_no_one_can_decide(gate: Gate) -> None:
    gate.clock.advance(timedelta(seconds=TIMEOUT))

    with pytest.raises(ApprovalExpiredError, match="expired at"):
        gate.decide("APPROVED", ALICE)

    assert gate.sfn.answers == []
    assert gate.status() == "PENDING"
    assert gate.audit_outcomes() == [(ALICE, "approve", "refused")]


def test_someone_not_listed_may_not_decide(gate: Gate) -> None:
    with pytest.raises(NotAnApproverError, match=f"<@{BOB}> is not an approver of wave-3"):
        gate.decide("APPROVED", BOB)

    assert gate.sfn.answers == []
    assert gate.audit_outcomes() == [(BOB, "approve", "refused")]


def test_a_member_of_a_listed_user_group_may_decide(gate: Gate) -> None:
    gate.decide("APPROVED", BOB, is_member=lambda user, group: (user, group) == (BOB, LEADS))

    assert gate.status() == "APPROVED"


def test_the_requester_may_not_approve_their_own_change(gate: Gate) -> None:
    with pytest.raises(SelfApprovalError, match="someone else must approve it"):
        gate.decide("APPROVED", ALICE, is_requester=lambda user: user == ALICE)

    assert gate.sfn.answers == []
    assert gate.status() == "PENDING"


def test_an_unknown_approval_is_not_found(gate: Gate) -> None:
    with pytest.raises(ApprovalNotFoundError):
        gate.service.decide("apv-0000000000000000", "APPROVED", user=ALICE)


@pytest.mark.parametrize("error", [TaskTimedOutError, InvalidTaskTokenError, TaskDoesNotExistError])
def test_a_gate_that_stopped_waiting_is_reported_as_expired(
    gate: Gate, error: type[TaskNotWaitingError]
) -> None:
    # GIVEN Step Functions says the task no longer waits (its timeout passed meanwhile)
    gate.sfn.answer_fails_with = error("TaskTimedOut: Task Timed Out")

    with pytest.raises(ApprovalExpiredError, match="is no longer waiting"):
        gate.decide("APPROVED", ALICE)

    assert gate.audit_outcomes() == [(ALICE, "approve", "refused")]
    assert gate.reporter.of_type(ApprovalDecided) == []


def test_a_refused_answer_does_not_let_the_decision_stand(gate: Gate) -> None:
    # GIVEN Step Functions refuses the answer (the role lacks states:SendTaskSuccess)
    refusal = StepFunctionsRefusedError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
        "SendTaskSuccess",
    )
    gate.sfn.answer_fails_with = refusal

    # THEN the refusal reaches the caller as the ClientError the edges explain
    with pytest.raises(ClientError) as raised:
        gate.decide("APPROVED", ALICE)

    assert raised.value.operation_name == "SendTaskSuccess"
    assert gate.status() == "PENDING"  # someone can decide again
    assert gate.audit_outcomes() == [(ALICE, "approve", "failed")]
    assert gate.reporter.of_type(ApprovalDecided) == []
    gate.decide("APPROVED", ALICE)  # and it can be retried
    assert gate.status() == "APPROVED"


def test_a_gate_that_times_out_is_marked_expired_once(gate: Gate) -> None:
    gate.service.expire("mig-12345")
    gate.service.expire("mig-12345")

    assert gate.status() == "EXPIRED"
    assert gate.audit_outcomes() == [("wavepilot", "expire", "expired")]
    (decided,) = gate.reporter.of_type(ApprovalDecided)
    assert (decided.decision, decided.decided_by) == ("EXPIRED", "wavepilot")


def test_a_decided_gate_is_not_expired(gate: Gate) -> None:
    gate.decide("APPROVED", ALICE)

    gate.service.expire("mig-12345", reason="rolled back by an operator")

    assert gate.status() == "APPROVED"
    assert [d.decision for d in gate.reporter.of_type(ApprovalDecided)] == ["APPROVED"]


# --- group decisions (approval.scope application or wave) ---------------------------------


def _group_of(size: int) -> tuple[ApprovalService, FakeStore, FakeStepFunctions, list[str]]:
    """GIVEN ``size`` VMs of the application ``intranet`` waiting at their gates."""
    clock = FixedClock()
    store = FakeStore()
    sfn = FakeStepFunctions()
    service = ApprovalService(store, sfn, FakeReporter(clock), clock)
    ids = []
    for index in range(size):
        record = migration_record(migrationId=f"mig-{index:05d}", targetVmName=f"vm-{index:02d}")
        store.migrations[record.migration_id] = record
        spec = MigrationSpec.from_request(
            record.request, record.revision, "corr", default_approvers=[ALICE]
        ).model_copy(update={"approval_scope": "application"})
        ids.append(service.request(spec, f"token-{index}", TIMEOUT).approval_id)
    return service, store, sfn, ids


def test_a_group_approval_decides_each_selected_vm_with_its_own_token_and_audit_entry() -> None:
    service, store, sfn, ids = _group_of(4)
    [group] = {a.group for a in store.approvals.values()}

    outcome = service.decide_group(group, "APPROVED", user=ALICE, selected=ids[:3])

    assert len(outcome.decided) == 3
    assert outcome.ready == 4
    assert sorted(answer.token for answer in sfn.answers) == ["token-0", "token-1", "token-2"]
    assert store.approval(ids[3]) is not None
    assert store.approvals[ids[3]].status == "PENDING"  # left out: keeps waiting
    details = [a.detail for a in store.audits]
    assert len(details) == 3
    assert all(
        d.startswith(f"group decision {outcome.decision.decision_id} on {group} by {ALICE}")
        and d.endswith("approve selected 3 of 4 ready")
        for d in details
    ), details


def test_a_non_approver_is_refused_for_every_vm_and_each_refusal_is_audited() -> None:
    service, store, sfn, ids = _group_of(3)
    [group] = {a.group for a in store.approvals.values()}

    outcome = service.decide_group(group, "APPROVED", user=BOB)

    assert (len(outcome.decided), len(outcome.refused)) == (0, 3)
    assert sfn.answers == []
    assert sorted((a.actor, a.outcome) for a in store.audits) == [(BOB, "refused")] * 3
    assert all(store.approvals[i].status == "PENDING" for i in ids)


def test_a_second_group_click_finds_nothing_waiting_and_decides_nothing() -> None:
    service, store, sfn, _ids = _group_of(2)
    [group] = {a.group for a in store.approvals.values()}
    service.decide_group(group, "APPROVED", user=ALICE)

    again = service.decide_group(group, "APPROVED", user=ALICE)

    assert (again.ready, again.decided, again.refused) == (0, (), ())
    assert len(sfn.answers) == 2


def test_a_group_decision_reads_no_approval_or_migration_again_and_names_each_vm() -> None:
    # GIVEN a group of 3 whose approvals were just read as the group's pending ones
    service, store, _sfn, _ids = _group_of(3)
    [group] = {a.group for a in store.approvals.values()}
    reads: list[str] = []
    approval, get = store.approval, store.get

    def read_approval(approval_id: str) -> ApprovalRecord | None:
        reads.append(approval_id)
        return approval(approval_id)

    def read_migration(migration_id: str) -> MigrationRecord | None:
        reads.append(migration_id)
        return get(migration_id)

    store.approval = read_approval  # type: ignore[method-assign]
    store.get = read_migration  # type: ignore[method-assign]

    # WHEN the group is approved
    outcome = service.decide_group(group, "APPROVED", user=ALICE)

    # THEN each VM is decided and announced from what the group's read and its approval say
    assert len(outcome.decided) == 3
    assert reads == []
    decided = service._report.of_type(ApprovalDecided)  # type: ignore[attr-defined]
    assert sorted((d.migration_id, d.correlation_id) for d in decided) == [
        (f"mig-{index:05d}", "corr") for index in range(3)
    ]


def test_an_approval_stored_before_it_kept_its_routing_is_announced_from_the_record(
    gate: Gate,
) -> None:
    # GIVEN an approval item written by an earlier version (no correlation ID, no routing)
    stored = gate.store.approvals[gate.approval_id]
    gate.store.approvals[gate.approval_id] = replace(
        stored, correlation_id="", slack_channel=None, callback_urls=()
    )

    gate.decide("APPROVED", ALICE)

    (decided,) = gate.reporter.of_type(ApprovalDecided)
    record = gate.store.get("mig-12345")
    assert record is not None
    assert decided.correlation_id == record.correlation_id


def test_a_group_decided_together_whose_second_answer_is_refused_leaves_the_rest_pending() -> None:
    # GIVEN four VMs of a group decided together, and Step Functions refusing the second answer
    service, store, sfn, ids = _group_of(4)
    [group] = {a.group for a in store.approvals.values()}
    answer = sfn._answer
    refusals: list[str] = []

    def refuse_the_second(given: TaskAnswer) -> None:
        if len(sfn.answers) == 1 and not refusals:
            refusals.append(given.token)
            raise StepFunctionsRefusedError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
                "SendTaskSuccess",
            )
        answer(given)

    sfn._answer = refuse_the_second  # type: ignore[assignment]

    # WHEN the group is approved, THEN the refusal reaches the caller
    with pytest.raises(ClientError):
        service.decide_group(group, "APPROVED", user=ALICE)

    # AND only the VM whose execution was told stays decided: the refused one and the two
    # not told yet are pending again, for a new click
    assert [store.approvals[i].status for i in ids] == ["APPROVED", "PENDING", "PENDING", "PENDING"]
    assert [a.token for a in sfn.answers] == ["token-0"]
    assert [(a.actor, a.outcome) for a in store.audits] == [(ALICE, "failed"), (ALICE, "decided")]
    again = service.decide_group(group, "APPROVED", user=ALICE)
    assert len(again.decided) == 3
    assert sorted(a.token for a in sfn.answers) == [f"token-{i}" for i in range(4)]
