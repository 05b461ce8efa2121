"""A group decision on DynamoDB (moto): many VMs decided together, each exactly once, each
announced with a sequence number its migration's record allocated in the same write; a VM
decided meanwhile by another click makes its chunk fall back to one decision at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestration.adapters import aws
from orchestration.adapters.event_bus import EventBus
from orchestration.adapters.state_store import MigrationStore, migration_key
from orchestration.gitops.requests import request_for
from orchestration.local.synthetic import wave_yaml
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.pipeline.approvals import ApprovalService
from orchestration.pipeline.reporter import StatusReporter
from orchestration.pipeline.spec import MigrationSpec
from orchestration.settings import settings
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.support.fakes import FakeStepFunctions, FixedClock

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest

CAROL = "U07CAROL001"  # an approver the synthetic waves name
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(emulated_aws: EmulatedAws) -> MigrationStore:
    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


@pytest.fixture
def calls(store: MigrationStore) -> Iterator[Counter[str]]:
    """Every DynamoDB operation made from here on, by name."""
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    client = store._table.meta.client
    client.meta.events.register("before-call.dynamodb", count)
    yield counted
    client.meta.events.unregister("before-call.dynamodb", count)


def _sequence(store: MigrationStore, migration_id: str) -> int:
    """The last sequence number the migration's record allocated."""
    item = store._table.get_item(Key=migration_key(migration_id), ConsistentRead=True)["Item"]
    return int(item["seq"])  # type: ignore[arg-type]


def _waiting_group(
    store: MigrationStore, vms: int
) -> tuple[ApprovalService, FakeStepFunctions, str, list[str]]:
    """GIVEN ``vms`` VMs of one application recorded, each waiting at its approval gate."""
    clock = FixedClock(START)
    window = ((START + timedelta(days=2)).isoformat(), (START + timedelta(days=3)).isoformat())
    text = wave_yaml(0, vms, window=window)
    result = validate_files([ManifestFile("wave-000.yaml", text)], now=START)
    assert result.valid, result.findings
    gate = FakeStepFunctions()
    reporter = StatusReporter(store, EventBus(aws.events(), settings().event_bus_name), clock)
    service = ApprovalService(store, gate, reporter, clock)
    approvals = []
    for vm in result.vms:
        request = request_for(vm, commit="c" * 40, author="Dana <dana@contoso.com>")
        store.accept_request(request, "r1", f"{request.migration_id}/r1", START)
        spec = MigrationSpec.from_request(
            request, "r1", f"{request.migration_id}/r1", default_approvers=[CAROL]
        ).model_copy(update={"approval_scope": "wave"})
        approvals.append(service.request(spec, f"token-{spec.target_vm_name}", 3600).approval_id)
    [group] = {a.group for a in (store.approval(i) for i in approvals) if a is not None}
    return service, gate, group, approvals


def test_a_group_of_sixty_is_decided_in_two_writes_each_vm_once_its_event_numbered_by_its_record(
    store: MigrationStore, emulated_aws: EmulatedAws, calls: Counter[str]
) -> None:
    service, gate, group, approvals = _waiting_group(store, 60)
    emulated_aws.captured()  # the requests' events: not this decision's
    calls.clear()

    outcome = service.decide_group(group, "APPROVED", user=CAROL)

    # THEN every VM is decided, its own token answered once
    assert (len(outcome.decided), outcome.refused) == (60, ())
    assert len({answer.token for answer in gate.answers}) == 60
    assert all(store.approval(a).status == "APPROVED" for a in approvals)  # type: ignore[union-attr]
    # AND in a few calls: the group's read, per 50 VMs one read and one transaction, the
    # audit entries 25 to a batch (not two writes and a sequence per VM)
    assert calls["TransactWriteItems"] == 2, calls
    assert calls["BatchGetItem"] == 2, calls
    assert calls["BatchWriteItem"] == 3, calls
    assert calls["UpdateItem"] + calls["PutItem"] == 0, calls
    # AND each VM's ApprovalDecided carries the number its record holds, after its request's
    decided = [e for e in emulated_aws.captured() if e["detail-type"] == "ApprovalDecided"]
    assert len(decided) == 60
    for event in decided:
        detail = event["detail"]
        assert detail["sequence"] == _sequence(store, detail["migrationId"]), detail
        assert detail["groupDecisionId"] == outcome.decision.decision_id
    # AND each decision is in its approval's audit trail, naming the group decision
    trail = store.audit_trail(approvals[0])
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        (CAROL, "approve", "decided")
    ]
    assert outcome.decision.decision_id in trail[0]["detail"]


def test_a_click_that_decides_two_vms_writes_them_together(
    store: MigrationStore, emulated_aws: EmulatedAws, calls: Counter[str]
) -> None:
    # GIVEN two VMs ready (a wave's approvers click as VMs become ready: often two at a time)
    service, gate, group, approvals = _waiting_group(store, 2)
    calls.clear()

    outcome = service.decide_group(group, "APPROVED", user=CAROL)

    # THEN both are decided in one read, one transaction and one batch of audit entries,
    # where each alone was its decision, its event's number and its audit entry
    assert (len(outcome.decided), outcome.refused) == (2, ())
    assert len({answer.token for answer in gate.answers}) == 2
    assert all(store.approval(a).status == "APPROVED" for a in approvals)  # type: ignore[union-attr]
    assert (calls["BatchGetItem"], calls["TransactWriteItems"], calls["BatchWriteItem"]) == (
        1,
        1,
        1,
    ), calls
    assert calls["UpdateItem"] + calls["PutItem"] == 0, calls


def test_a_vm_decided_meanwhile_makes_its_chunk_decide_one_at_a_time(
    store: MigrationStore, emulated_aws: EmulatedAws
) -> None:
    service, gate, group, approvals = _waiting_group(store, 5)
    emulated_aws.captured()
    read = store._tokens_and_sequences
    cancelled: list[dict[str, Any]] = []

    def another_click_after_the_read(pairs: Any) -> dict[str, dict[str, Any]]:
        # Another person rejects the second VM between the group's read and its write.
        found = read(pairs)
        token = store.decide_approval(
            approvals[1], decision="REJECTED", user="U07BOB00002", reason="", now=START
        )
        assert token is not None
        cancelled.append(found)
        return found

    store._tokens_and_sequences = another_click_after_the_read  # type: ignore[method-assign]

    outcome = service.decide_group(group, "APPROVED", user=CAROL)

    # THEN the write was cancelled (nothing written together), the other four were decided
    # one at a time and the second is refused as decided
    assert len(cancelled) == 1
    assert len(outcome.decided) == 4
    [(refused, error)] = outcome.refused
    assert refused.approval_id == approvals[1]
    assert "already rejected" in str(error)
    assert len(gate.answers) == 4
    # AND their events are numbered as their records say (one number each, no gap)
    decided = [e for e in emulated_aws.captured() if e["detail-type"] == "ApprovalDecided"]
    assert len(decided) == 4
    for event in decided:
        assert event["detail"]["sequence"] == _sequence(store, event["detail"]["migrationId"])


def test_an_approval_the_read_found_decided_is_left_out_of_the_write(
    store: MigrationStore,
) -> None:
    _service, _gate, _group, approvals = _waiting_group(store, 3)
    pairs = [(a, store.approval(a).migration_id) for a in approvals]  # type: ignore[union-attr]
    store.decide_approval(approvals[0], decision="APPROVED", user=CAROL, reason="", now=START)

    decided = store.decide_approvals(
        pairs, decision="APPROVED", user=CAROL, reason="", now=START + timedelta(seconds=1)
    )

    assert set(decided) == set(approvals[1:])
    assert (
        {token for token, _ in decided.values()}
        == {
            f"token-{store.approval(a).target_vm_name}"  # type: ignore[union-attr]
            for a in approvals[1:]
        }
    )


def test_two_pending_approvals_of_one_migration_are_not_in_one_transaction(
    store: MigrationStore,
) -> None:
    """A gate asked again (its first approval left pending, its token dead) gives its
    migration two pending approvals: DynamoDB refuses a transaction with two operations on
    the record, so the second is left to be decided alone."""
    _service, _gate, _group, approvals = _waiting_group(store, 3)
    first = store.approval(approvals[0])
    assert first is not None
    again = replace(first, approval_id="apv-asked-again")
    store.create_approval(again, "token-asked-again")
    pairs = [(a, store.approval(a).migration_id) for a in [*approvals, again.approval_id]]  # type: ignore[union-attr]

    decided = store.decide_approvals(pairs, decision="APPROVED", user=CAROL, reason="", now=START)

    assert set(decided) == set(approvals)
    assert store.approval(again.approval_id).status == "PENDING"  # type: ignore[union-attr]
