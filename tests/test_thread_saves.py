"""A batch's thread items in one write (``StatusNotifier.saves_deferred``, bot/notifier.py),
on DynamoDB (moto): the Slack notifier folds a batch's events and shows them, then writes the
threads that changed together; a stale item or a failed write leaves nothing lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.notifier import StatusNotifier
from bot.thread_store import ThreadStore
from orchestration.adapters import aws
from orchestration.events import EventDetail
from orchestration.settings import settings
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.test_notifier_unit import CHANNEL, NoMigrations, RecordingSlack, _status

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest


@pytest.fixture
def threads(emulated_aws: EmulatedAws) -> ThreadStore:
    return ThreadStore(aws.state_table(settings().table_name, settings().aws_region))


@pytest.fixture
def calls(threads: ThreadStore) -> Iterator[Counter[str]]:
    """Every DynamoDB operation the thread store makes from here on, by name."""
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    client = threads._table.meta.client
    client.meta.events.register("before-call", count)
    yield counted
    client.meta.events.unregister("before-call", count)


def _of(migration: str, sequence: int, step: str, status: str = "IN_PROGRESS") -> EventDetail:
    return _status(sequence, step, status).model_copy(update={"migration_id": migration})


MIGRATIONS = ("mig-a", "mig-b", "mig-c")


def _started(notifier: StatusNotifier) -> None:
    for migration in MIGRATIONS:
        notifier.apply(_of(migration, 1, "ValidateInput", "STARTED"), edit_root=True)


def test_a_batchs_changed_threads_are_written_in_one_call(
    threads: ThreadStore, calls: Counter[str]
) -> None:
    # GIVEN three threads started (one item each)
    notifier = StatusNotifier(threads, NoMigrations(), RecordingSlack(), CHANNEL)
    _started(notifier)
    calls.clear()

    # WHEN one batch moves each of them to a new stage
    with notifier.saves_deferred() as saves:
        for migration in MIGRATIONS:
            notifier.apply(_of(migration, 2, "StartCutover", "STARTED"), edit_root=True)
        assert calls == Counter()  # nothing written while the batch runs

    # THEN one call wrote the three, and the next event is folded on what was written
    assert calls == Counter({"TransactWriteItems": 1})
    assert saves.unsaved == set()
    for migration in MIGRATIONS:
        stored = threads.get(migration)
        assert stored is not None
        assert (stored.state.sequence, stored.shown_stage) == (2, stored.state.stage)
    calls.clear()
    notifier.apply(_of("mig-a", 3, "VerifyCutover"), edit_root=True)
    assert "GetItem" not in calls


def test_a_thread_another_writer_moved_on_is_left_out_and_its_events_come_again(
    threads: ThreadStore,
) -> None:
    notifier = StatusNotifier(threads, NoMigrations(), RecordingSlack(), CHANNEL)
    _started(notifier)
    # GIVEN another container wrote mig-b's thread meanwhile
    other = threads.get("mig-b")
    assert other is not None
    moved = replace(other, state=replace(other.state, sequence=5))
    threads.save(moved, previous_sequence=1)

    with notifier.saves_deferred() as saves:
        for migration in MIGRATIONS:
            notifier.apply(_of(migration, 2, "StartCutover", "STARTED"), edit_root=True)

    # THEN the other two are written; mig-b is named unsaved (its records are retried) and
    # its item keeps the other writer's state
    assert saves.unsaved == {"mig-b"}
    assert [threads.get(m).state.sequence for m in MIGRATIONS] == [2, 5, 2]  # type: ignore[union-attr]


def test_a_failed_write_is_made_by_the_next_batch_without_showing_anything_twice(
    threads: ThreadStore,
) -> None:
    slack = RecordingSlack()
    notifier = StatusNotifier(threads, NoMigrations(), slack, CHANNEL)
    _started(notifier)
    # GIVEN DynamoDB refuses the batch's write (throttled past the SDK's retries)
    client = threads._table.meta.client
    refused: list[str] = []

    def throttle(model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems" and not refused:
            refused.append(model.name)
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                "TransactWriteItems",
            )

    client.meta.events.register("before-call", throttle)
    try:
        with notifier.saves_deferred() as saves:
            for migration in MIGRATIONS:
                notifier.apply(_of(migration, 2, "StartCutover", "STARTED"), edit_root=True)
    finally:
        client.meta.events.unregister("before-call", throttle)
    assert refused
    assert saves.unsaved == set(MIGRATIONS)  # their records are retried
    shown = len(slack.calls)

    # WHEN the next batch (here: the redelivered events) runs
    with notifier.saves_deferred() as again:
        for migration in MIGRATIONS:
            assert notifier.apply(_of(migration, 2, "StartCutover", "STARTED"), edit_root=True) == (
                "duplicate"
            )

    # THEN the threads are written as shown, and Slack was not called again
    assert again.unsaved == set()
    assert len(slack.calls) == shown
    assert [threads.get(m).state.sequence for m in MIGRATIONS] == [2, 2, 2]  # type: ignore[union-attr]


def test_groups_are_written_in_one_call_and_one_another_writer_moved_on_is_left_out(
    emulated_aws: EmulatedAws,
) -> None:
    from bot.group_approvals import GroupState, GroupStore

    store = GroupStore(aws.state_table(settings().table_name, settings().aws_region))
    names = ("wave-1/billing", "wave-1/crm", "wave-1/hr")
    [*first] = [GroupState(name, "wave-1", name.split("/")[1], size=3) for name in names]
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    store._table.meta.client.meta.events.register("before-call", count)
    # WHEN three new groups are saved together
    saved, moved = store.save_many(first)
    # THEN one call wrote them
    assert (counted, moved) == (Counter({"TransactWriteItems": 1}), set())
    assert [s.version for s in saved] == [1, 1, 1]

    # WHEN another writer saves one of them, and the three are saved again from version 1
    store.save(replace(saved[1], size=4))
    counted.clear()
    again, moved = store.save_many([replace(s, size=5) for s in saved])

    # THEN the two not moved are written (the refused call, then theirs), the third is named
    assert moved == {"wave-1/crm"}
    assert counted == Counter({"TransactWriteItems": 2})
    assert [s.group for s in again] == ["wave-1/billing", "wave-1/hr"]
    assert [(g, store.get(g).size) for g in names] == [  # type: ignore[union-attr]
        ("wave-1/billing", 5),
        ("wave-1/crm", 4),
        ("wave-1/hr", 5),
    ]
