"""The step history on the migration's record (DynamoDB on moto): a step report is one write
and one event, the history reads back in sequence order, stays bounded, and steps kept as
items by older versions (``STEP#<seq>``) are still read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from orchestration.adapters import aws
from orchestration.adapters.event_bus import EventBus, _chunks, events_deferred
from orchestration.adapters.state_store import (
    HISTORY_LIMIT,
    HISTORY_MESSAGE_BYTES,
    HISTORY_TRIM,
    MigrationStore,
    RecordOutcome,
    clip_utf8,
    migration_key,
    migration_pk,
)
from orchestration.events import MigrationRequested, Step
from orchestration.migration_request import MigrationRequest
from orchestration.operators.queries import migration_status, wave_status
from orchestration.pipeline.reporter import StatusReporter, reports_deferred
from orchestration.pipeline.spec import MigrationSpec
from orchestration.settings import settings
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.support.fakes import FixedClock
from tests.support.pipeline import example_requests, spec_of

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest


@pytest.fixture
def store(emulated_aws: EmulatedAws) -> MigrationStore:
    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def reporter(store: MigrationStore, clock: FixedClock) -> StatusReporter:
    return StatusReporter(store, EventBus(aws.events(), settings().event_bus_name), clock)


@pytest.fixture
def calls(store: MigrationStore) -> Iterator[Counter[str]]:
    """Every DynamoDB and EventBridge operation made from here on, by name."""
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    clients = (store._table.meta.client, aws.events())
    for client in clients:
        client.meta.events.register("before-call", count)
    yield counted
    for client in clients:
        client.meta.events.unregister("before-call", count)


def _recorded(store: MigrationStore, clock: FixedClock) -> MigrationRequest:
    [request] = example_requests()[:1]
    store.record_request(request, request.revision or "", "corr-1", clock.now())
    return request


def _table(store: MigrationStore) -> Any:
    return store._table


def test_a_step_report_is_one_write_and_one_event(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    calls: Counter[str],
    emulated_aws: EmulatedAws,
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)
    calls.clear()

    event = reporter.step(spec, Step.VALIDATE_INPUT, "SUCCEEDED", "inputs valid")

    assert event is not None
    assert calls == Counter({"UpdateItem": 1, "PutEvents": 1})
    [put] = emulated_aws.captured()
    assert put["detail"]["sequence"] == event.sequence == 1
    assert store.history(request.migration_id) == [
        {
            "step": "ValidateInput",
            "status": "SUCCEEDED",
            "message": "inputs valid",
            "at": clock.now().isoformat(),
        }
    ]
    # Nothing kept beside the record: the step lives on it.
    items = _table(store).query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": migration_pk(request.migration_id)},
    )["Items"]
    assert [item["sk"] for item in items] == ["META"]


def test_accepting_a_request_allocates_its_events_sequence_in_the_write_that_records_it(
    store: MigrationStore, clock: FixedClock, calls: Counter[str]
) -> None:
    [request] = example_requests()[:1]

    # A new migration: one write, sequence 1
    assert store.accept_request(request, "r1", "corr-1", clock.now()) == (RecordOutcome.NEW, 1)
    assert calls == Counter({"PutItem": 1})
    # A repeat of the same revision changes nothing but is announced again (its own write)
    calls.clear()
    assert store.accept_request(request, "r1", "corr-1", clock.now()) == (RecordOutcome.SAME, 2)
    assert calls == Counter({"PutItem": 1, "UpdateItem": 2})
    # A new revision: its record and its sequence in one update
    calls.clear()
    assert store.accept_request(request, "r2", "corr-2", clock.now()) == (
        RecordOutcome.REVISED,
        3,
    )
    assert calls == Counter({"PutItem": 1, "UpdateItem": 1})
    record = store.get(request.migration_id)
    assert record is not None
    assert (record.revision, record.correlation_id) == ("r2", "corr-2")


def test_a_steps_reports_in_one_invocation_are_one_record_write_and_one_put(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    calls: Counter[str],
    emulated_aws: EmulatedAws,
) -> None:
    # GIVEN a step that reports STARTED, its outcome and an event, in one invocation
    request = _recorded(store, clock)
    spec = spec_of(request)
    calls.clear()
    with reports_deferred():
        reporter.step(spec, Step.VALIDATE_INPUT, "STARTED", "validating")
        clock.advance(timedelta(seconds=2))
        reporter.step(
            spec, Step.VALIDATE_INPUT, "SUCCEEDED", "inputs valid", migration_status="PARKED"
        )
        reporter.emit(spec, MigrationRequested, revision=request.revision, request=request)
        assert calls == Counter()  # nothing written yet

    # THEN one write and one PutEvents: the three events numbered in the order reported
    assert calls == Counter({"UpdateItem": 1, "PutEvents": 1})
    puts = emulated_aws.captured()
    assert [(p["detail"]["sequence"], p["detail-type"]) for p in puts] == [
        (1, "MigrationStatusUpdated"),
        (2, "MigrationStatusUpdated"),
        (3, "MigrationRequested"),
    ]
    assert [p["detail"].get("status") for p in puts[:2]] == ["STARTED", "SUCCEEDED"]
    record = store.get(request.migration_id)
    assert record is not None
    assert (record.step, record.status) == ("ValidateInput", "PARKED")
    assert (
        _table(store).get_item(Key=migration_key(request.migration_id))["Item"]["stepStatus"]
        == "SUCCEEDED"
    )
    assert [(s["status"], s["message"]) for s in record.history] == [
        ("STARTED", "validating"),
        ("SUCCEEDED", "inputs valid"),
    ]
    # and the next report goes on from the sequence the write allocated
    later = reporter.step(spec, Step.PREPARE_SOURCE, "STARTED", "preparing")
    assert later is not None
    assert later.sequence == 4


def _recorded_all(store: MigrationStore, clock: FixedClock) -> list[MigrationRequest]:
    requests = example_requests()
    for request in requests:
        store.record_request(request, request.revision or "", "corr-1", clock.now())
    return requests


def test_many_migrations_reports_in_one_invocation_are_written_together(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    calls: Counter[str],
    emulated_aws: EmulatedAws,
) -> None:
    # GIVEN an invocation that reports of four migrations (the coordinator's batches), one
    # of them already further along
    requests = _recorded_all(store, clock)
    ahead = requests[2].migration_id
    reporter.step(spec_of(requests[2]), Step.VALIDATE_INPUT, "SUCCEEDED", "inputs valid")
    emulated_aws.captured()
    calls.clear()
    with reports_deferred():
        for request in requests:
            spec = spec_of(request)
            reporter.step(spec, Step.WAIT_FOR_REPLICATION, "SUCCEEDED", "replication ready")
            reporter.step(spec, Step.START_TEST_LAUNCH, "SUCCEEDED", "test launch started")

    # THEN their sequences are read in one call and their records written in one transaction
    assert calls == Counter({"BatchGetItem": 1, "TransactWriteItems": 1, "PutEvents": 1})
    puts = emulated_aws.captured()
    by_migration: dict[str, list[int]] = {}
    for put in puts:
        by_migration.setdefault(put["detail"]["migrationId"], []).append(put["detail"]["sequence"])
    for request in requests:
        first = 2 if request.migration_id == ahead else 1
        assert by_migration[request.migration_id] == [first, first + 1]
        record = store.get(request.migration_id)
        assert record is not None
        assert record.step == "StartTestLaunch"
        assert [s["message"] for s in record.history][-2:] == [
            "replication ready",
            "test launch started",
        ]
    # AND the next report goes on from there
    later = reporter.step(spec_of(requests[0]), Step.VERIFY_TEST_LAUNCH, "STARTED", "verifying")
    assert later is not None
    assert later.sequence == 3


def test_a_record_another_writer_moved_meanwhile_is_written_alone_and_numbered_after_it(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    calls: Counter[str],
    emulated_aws: EmulatedAws,
) -> None:
    # GIVEN four migrations' reports, and another writer that takes a sequence number of
    # one of them between their read and their transaction
    requests = _recorded_all(store, clock)
    moved = requests[1]
    client = store._table.meta.client

    def another_writer(**_: Any) -> None:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", another_writer)
        store.next_sequence(moved.migration_id)

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", another_writer)
    emulated_aws.captured()
    calls.clear()
    with reports_deferred():
        for request in requests:
            reporter.step(spec_of(request), Step.START_TEST_LAUNCH, "SUCCEEDED", "started")

    # THEN the transaction wrote nothing and each record was written alone, after the other
    # writer's number: no sequence number given twice, none of the reports lost
    assert calls["TransactWriteItems"] == 1
    assert calls["UpdateItem"] == 1 + len(requests)  # the other writer's, then each alone
    sequences = {
        put["detail"]["migrationId"]: put["detail"]["sequence"] for put in emulated_aws.captured()
    }
    assert sequences == {request.migration_id: 2 if request is moved else 1 for request in requests}
    for request in requests:
        record = store.get(request.migration_id)
        assert record is not None
        assert [s["message"] for s in record.history][-1:] == ["started"]


def test_a_step_that_raises_still_writes_what_it_reported_and_raises_its_own_error(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock, emulated_aws: EmulatedAws
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)
    with pytest.raises(LookupError, match="the step's own"):
        _a_step_that_reports_then_fails(reporter, spec)
    assert [(s["step"], s["status"]) for s in store.history(request.migration_id)] == [
        ("ValidateInput", "STARTED")
    ]
    assert [p["detail"]["sequence"] for p in emulated_aws.captured()] == [1]
    # A write refused after the error (no such migration) is logged; the step's error wins.
    ghost = spec.model_copy(update={"migration_id": "mig-not-recorded"})
    with pytest.raises(LookupError, match="the step's own"):
        _a_step_that_reports_then_fails(reporter, ghost)


def _a_step_that_reports_then_fails(reporter: StatusReporter, spec: MigrationSpec) -> None:
    with reports_deferred():
        reporter.step(spec, Step.VALIDATE_INPUT, "STARTED", "validating")
        raise LookupError("the step's own error")


def test_a_step_that_marks_the_migration_running_does_not_undo_a_rollback_that_ended_meanwhile(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock
) -> None:
    # GIVEN a step of an execution an operator stops while it runs (its Lambda goes on)
    request = _recorded(store, clock)
    spec = spec_of(request)
    with reports_deferred():
        reporter.step(
            spec, Step.VALIDATE_INPUT, "STARTED", "validating", migration_status="RUNNING"
        )
        # WHEN the rollback's own execution ends before the stopped step does
        clock.advance(timedelta(seconds=5))
        store.advance(
            request.migration_id,
            step=Step.ROLLBACK,
            status="SUCCEEDED",
            now=clock.now(),
            message="rolled back",
            migration_status="ROLLED_BACK",
        )
        reporter.step(spec, Step.VALIDATE_INPUT, "SUCCEEDED", "inputs valid")

    # THEN the migration stays rolled back (RUNNING was written when reported, before it)
    record = store.get(request.migration_id)
    assert record is not None
    assert record.status == "ROLLED_BACK"
    assert [(s["step"], s["status"]) for s in record.history] == [
        ("ValidateInput", "STARTED"),
        ("Rollback", "SUCCEEDED"),
        ("ValidateInput", "SUCCEEDED"),
    ]


def test_an_only_while_at_report_in_a_deferred_invocation_follows_what_was_kept_before_it(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock, emulated_aws: EmulatedAws
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)
    with reports_deferred():
        reporter.step(spec, Step.INTAKE, "WAITING", "waiting")
        reporter.step(spec, Step.INTAKE, "SUCCEEDED", "started", only_while_at=Step.INTAKE)
    assert [(s["status"], s["message"]) for s in store.history(request.migration_id)] == [
        ("WAITING", "waiting"),
        ("SUCCEEDED", "started"),
    ]
    assert [p["detail"]["sequence"] for p in emulated_aws.captured()] == [1, 2]


def test_the_history_is_in_sequence_order_and_only_while_at_writes_nothing(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)

    first = reporter.emit(spec, MigrationRequested, revision=request.revision, request=request)
    clock.advance(timedelta(seconds=1))
    second = reporter.step(spec, Step.VALIDATE_INPUT, "STARTED", "validating")
    clock.advance(timedelta(seconds=1))
    # The ingress's late "execution started": the migration has moved on, nothing is said.
    late = reporter.step(
        spec, Step.INTAKE, "SUCCEEDED", "execution started", only_while_at=Step.INTAKE
    )
    third = reporter.step(spec, Step.VALIDATE_INPUT, "SUCCEEDED", "inputs valid")

    assert late is None
    assert first is not None
    assert second is not None
    assert third is not None
    # Sequences are the migration's, shared by every event: 1, 2, 3 (the refused one took none).
    assert [first.sequence, second.sequence, third.sequence] == [1, 2, 3]
    assert [(s["step"], s["status"]) for s in store.history(request.migration_id)] == [
        ("ValidateInput", "STARTED"),
        ("ValidateInput", "SUCCEEDED"),
    ]
    record = store.get(request.migration_id)
    assert record is not None
    assert record.step == "ValidateInput"
    assert [s["message"] for s in record.history] == ["validating", "inputs valid"]


def test_only_while_at_on_a_missing_migration_still_fails(store: MigrationStore) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        store.advance(
            "mig-0000000000000000",
            step="Intake",
            status="SUCCEEDED",
            now=FixedClock().now(),
            message="execution started",
            only_while_at="Intake",
        )


def test_a_full_history_drops_its_oldest_steps_and_counts_them(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock, calls: Counter[str]
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)
    for n in range(HISTORY_LIMIT):
        reporter.step(spec, Step.WAIT_FOR_REPLICATION, "IN_PROGRESS", f"poll {n}")
        clock.advance(timedelta(seconds=1))
    calls.clear()

    event = reporter.step(spec, Step.WAIT_FOR_REPLICATION, "SUCCEEDED", "replication ready")

    assert event is not None
    assert event.sequence == HISTORY_LIMIT + 1
    # The refused append, the trim, the append again; then the event.
    assert calls == Counter({"UpdateItem": 3, "PutEvents": 1})
    history = store.history(request.migration_id)
    assert len(history) == HISTORY_LIMIT - HISTORY_TRIM + 1
    assert history[0]["message"] == f"poll {HISTORY_TRIM}"
    assert history[-1]["message"] == "replication ready"
    record = store.get(request.migration_id)
    assert record is not None
    assert record.history_trimmed == HISTORY_TRIM
    calls.clear()
    reporter.step(spec, Step.START_TEST_LAUNCH, "SUCCEEDED", "started")
    assert calls == Counter({"UpdateItem": 1, "PutEvents": 1})


def test_a_long_message_is_cut_to_its_bytes_without_breaking_a_character(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock
) -> None:
    request = _recorded(store, clock)
    message = "rollback: " + "é" * 1_000  # two bytes each

    event = reporter.step(spec_of(request), Step.ROLLBACK, "FAILED", message)

    assert event is not None
    assert event.message == message
    [kept] = store.history(request.migration_id)
    assert len(kept["message"].encode("utf-8")) <= HISTORY_MESSAGE_BYTES
    assert kept["message"].endswith("…")
    assert message.startswith(kept["message"][:-1])
    assert clip_utf8("short", HISTORY_MESSAGE_BYTES) == "short"
    assert clip_utf8("aé€𝄞", 6) == "aé…"  # 1 + 2 + 3 (the ellipsis)
    assert clip_utf8("aé€𝄞", 5) == "a…"  # half an é is left out


def test_steps_kept_as_items_by_an_older_version_are_read_first(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock
) -> None:
    """A migration in flight across the deployment: its first steps are ``STEP#`` items."""
    request = _recorded(store, clock)
    table = _table(store)
    for sequence, step in ((1, "ValidateInput"), (2, "PrepareSource")):
        table.put_item(
            Item={
                "pk": migration_pk(request.migration_id),
                "sk": f"STEP#{sequence:08d}",
                "step": step,
                "status": "SUCCEEDED",
                "message": f"{step} done",
                "at": clock.now().isoformat(),
            }
        )
        clock.advance(timedelta(seconds=1))
    table.update_item(
        Key=migration_key(request.migration_id),
        UpdateExpression="SET seq = :two",
        ExpressionAttributeValues={":two": 2},
    )

    event = reporter.step(spec_of(request), Step.WAIT_FOR_REPLICATION, "SUCCEEDED", "ready")

    assert event is not None
    assert event.sequence == 3
    assert [s["step"] for s in store.history(request.migration_id)] == [
        "ValidateInput",
        "PrepareSource",
        "WaitForReplication",
    ]
    status = migration_status(store, request.migration_id)
    assert [entry.step for entry in status.history][-1] == "WaitForReplication"


def test_a_wave_row_reads_its_last_step_from_the_record_or_the_older_items(
    store: MigrationStore, reporter: StatusReporter, clock: FixedClock
) -> None:
    first, second = example_requests()[:2]
    assert first.wave == second.wave
    for request in (first, second):
        store.record_request(request, request.revision or "", "corr-1", clock.now())
    reporter.step(spec_of(first), Step.PREPARE_SOURCE, "SUCCEEDED", "prepared")
    # The second's only step was kept by an older version.
    _table(store).put_item(
        Item={
            "pk": migration_pk(second.migration_id),
            "sk": "STEP#00000001",
            "step": "ValidateInput",
            "status": "FAILED",
            "message": "no such subnet",
            "at": clock.now().isoformat(),
        }
    )

    rows = {row.migration_id: row for row in wave_status(store, first.wave).rows}

    assert (rows[first.migration_id].step_status, rows[first.migration_id].step) == (
        "SUCCEEDED",
        "PrepareSource",
    )
    assert rows[second.migration_id].step_status == "FAILED"


def test_reports_of_one_invocation_are_put_together_ten_to_a_call(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    calls: Counter[str],
    emulated_aws: EmulatedAws,
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)
    calls.clear()

    with events_deferred():
        for n in range(23):
            reporter.step(spec, Step.VALIDATE_INPUT, "WAITING", f"report {n}")
        assert calls["PutEvents"] == 0  # kept until the invocation ends
        assert emulated_aws.captured() == []

    assert calls == Counter({"UpdateItem": 23, "PutEvents": 3})
    put = emulated_aws.captured()
    assert sorted(event["detail"]["sequence"] for event in put) == list(range(1, 24))


def test_reports_kept_are_put_when_the_invocation_raises(
    store: MigrationStore,
    reporter: StatusReporter,
    clock: FixedClock,
    emulated_aws: EmulatedAws,
) -> None:
    request = _recorded(store, clock)
    spec = spec_of(request)

    def failing_step() -> None:
        with events_deferred():
            reporter.step(spec, Step.PREPARE_SOURCE, "STARTED", "preparing")
            raise RuntimeError("the step failed after its first report")

    with pytest.raises(RuntimeError):
        failing_step()

    [put] = emulated_aws.captured()
    assert put["detail"]["message"] == "preparing"


def test_a_put_is_cut_at_ten_entries_and_at_256_kib() -> None:
    def entry(detail_bytes: int) -> dict[str, Any]:
        return {"Source": "s", "DetailType": "t", "Detail": "x" * detail_bytes}

    assert [len(c) for c in _chunks([entry(10)] * 21)] == [10, 10, 1]
    # Three of 100 KiB do not fit in one request of 256 KiB: two and one.
    assert [len(c) for c in _chunks([entry(100 * 1024)] * 3)] == [2, 1]
    assert list(_chunks([])) == []
