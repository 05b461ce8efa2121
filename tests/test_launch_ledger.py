"""The launch ledger's DynamoDB adapter on moto (orchestration/adapters/launch_ledger.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.launch_records import (
    Instance,
    LaunchIntent,
    LaunchOutcome,
    LaunchRequest,
    LedgerConflictError,
)
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames

NOW = datetime(2026, 12, 12, 22, 0, tzinfo=UTC)
REQUEST = LaunchRequest(
    "mig-1",
    "s-00000000000000001",
    "cutover",
    "wave-1",
    NOW,
    NOW,
    NOW.replace(hour=23),
    execution="exec-1",
)


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


def outcome(token: str) -> LaunchOutcome:
    return LaunchOutcome(
        "mig-1",
        token,
        "cutover",
        "mgnjob-1",
        REQUEST.source_server_id,
        "LAUNCHED",
        "i-1",
        execution="exec-1",
    )


def test_a_request_is_kept_once_and_its_latest_token_waits(ledger: DynamoLaunchLedger) -> None:
    assert ledger.record_request(REQUEST, "token-1") == "new"
    assert ledger.record_request(REQUEST, "token-2") == "open"
    (waiting,) = ledger.snapshot().waiting
    assert waiting.request == REQUEST
    assert waiting.task_token == "token-2"


def test_an_answered_request_leaves_the_lane_and_a_repeat_of_it_is_ignored(
    ledger: DynamoLaunchLedger,
) -> None:
    ledger.record_request(REQUEST, "token-2")
    ledger.complete([outcome("token-2")])

    assert ledger.snapshot().waiting == ()
    answered = ledger.answered("mig-1", "cutover")
    assert answered is not None
    assert (answered["launchStatus"], answered["launchedEc2InstanceId"]) == ("LAUNCHED", "i-1")
    assert ledger.record_request(REQUEST, "token-2") == "answered"
    assert ledger.snapshot().waiting == ()
    # a new execution asks anew
    assert ledger.record_request(replace(REQUEST, execution="exec-2"), "token-3") == "new"


def test_intents_are_written_only_on_the_version_they_were_planned_from(
    ledger: DynamoLaunchLedger,
) -> None:
    first = LaunchIntent("intent-1", "cutover", {REQUEST.source_server_id: "mig-1"}, NOW)
    ledger.add_intent(first, seen_version=0)
    with pytest.raises(LedgerConflictError):
        ledger.add_intent(LaunchIntent("intent-2", "test", {}, NOW), seen_version=0)
    with pytest.raises(LedgerConflictError):  # the same intent twice
        ledger.add_intent(first, seen_version=1)

    ledger.record_job("intent-1", "mgnjob-1")
    ledger.record_job("intent-1", "mgnjob-1")  # a repeat is harmless

    snapshot = ledger.snapshot()
    assert snapshot.version == 1
    assert snapshot.intents == (
        LaunchIntent("intent-1", "cutover", first.members, NOW, "mgnjob-1"),
    )
    ledger.remove_intent("intent-1")
    assert ledger.snapshot().intents == ()


def test_an_answered_outcome_waits_in_the_outbox_until_delivered(
    ledger: DynamoLaunchLedger,
) -> None:
    ledger.record_request(REQUEST, "token-1")
    ledger.complete([outcome("token-1")])

    (pending,) = ledger.undelivered()
    assert pending == outcome("token-1")
    ledger.delivered([outcome("token-0")])  # another token's: kept
    assert ledger.undelivered() == [outcome("token-1")]
    ledger.delivered([outcome("token-1")])
    assert ledger.undelivered() == []
    assert ledger.snapshot().waiting == ()


def test_an_outcome_keeps_the_instance_the_coordinator_saw_for_its_task_only(
    ledger: DynamoLaunchLedger,
) -> None:
    seen = Instance("i-1", "running", "10.0.1.15", "t3.large", "ok", "initializing")
    ledger.record_request(REQUEST, "token-1")
    ledger.complete([replace(outcome("token-1"), instance=seen)])

    (pending,) = ledger.undelivered()
    assert pending.instance == seen
    # a retried task of the same execution gets the outcome again, not that old sighting
    ledger.delivered([pending])
    assert ledger.record_request(REQUEST, "token-2") == "reanswered"
    (again,) = ledger.undelivered()
    assert (again.task_token, again.instance) == ("token-2", None)


def test_one_loop_holds_the_lease_and_gives_it_up_only_if_no_request_came(
    ledger: DynamoLaunchLedger,
) -> None:
    assert ledger.claim_loop("loop-1", NOW, stale_after=300) == "loop-1"
    assert ledger.claim_loop("loop-2", NOW, stale_after=300) is None  # counted, not started
    seen = ledger.beat("loop-1", NOW, 300)
    assert seen == 2
    assert ledger.beat("loop-2", NOW, 300) is None
    ledger.claim_loop("loop-3", NOW, stale_after=300)  # a request after the loop looked
    assert ledger.release_loop("loop-1", seen) is False
    seen = ledger.beat("loop-1", NOW, 300)
    assert seen is not None
    assert ledger.release_loop("loop-1", seen) is True
    assert ledger.claim_loop("loop-4", NOW, stale_after=300) == "loop-4"


def test_a_new_request_to_a_live_loop_is_recorded_and_counted_in_one_write(
    ledger: DynamoLaunchLedger,
) -> None:
    # GIVEN no loop: nothing is written, the request goes the usual way (record and claim)
    assert ledger.record_new_for_live_loop(REQUEST, "token-1", NOW) is False
    assert ledger.snapshot().waiting == ()
    # GIVEN a live loop that has seen the lane's requests
    assert ledger.claim_loop("loop-1", NOW, stale_after=300) == "loop-1"
    seen = ledger.beat("loop-1", NOW, 300)
    assert seen is not None
    writes: list[str] = []
    client = ledger._table.meta.client

    def count(model: Any, **_: Any) -> None:
        writes.append(model.name)

    client.meta.events.register("before-call", count)
    try:
        recorded = ledger.record_new_for_live_loop(REQUEST, "token-1", NOW + timedelta(minutes=4))
    finally:
        client.meta.events.unregister("before-call", count)

    # THEN it is open, and counted: the loop cannot give the lane up without seeing it
    assert recorded is True
    assert writes == ["TransactWriteItems"]
    (waiting,) = ledger.snapshot().waiting
    assert (waiting.request, waiting.task_token) == (REQUEST, "token-1")
    assert ledger.release_loop("loop-1", seen) is False
    # AND a repeat, or a loop whose lease expired, writes nothing here
    assert ledger.record_new_for_live_loop(REQUEST, "token-2", NOW) is False
    other = replace(REQUEST, migration_id="mig-2", source_server_id="s-2")
    assert ledger.record_new_for_live_loop(other, "token-3", NOW + timedelta(minutes=6)) is False
    assert [w.request.migration_id for w in ledger.snapshot().waiting] == ["mig-1"]


def test_a_new_request_is_counted_as_it_is_recorded_and_its_claim_costs_one_write(
    ledger: DynamoLaunchLedger,
) -> None:
    # GIVEN a loop that holds the lane and has seen its requests
    assert ledger.claim_loop("loop-1", NOW, stale_after=300) == "loop-1"
    seen = ledger.beat("loop-1", NOW, 300)
    assert seen is not None
    writes: list[str] = []
    client = ledger._table.meta.client

    def count(model: Any, **_: Any) -> None:
        writes.append(model.name)

    client.meta.events.register("before-call", count)
    try:
        # WHEN a new request is recorded and claims the loop, which runs
        assert ledger.record_request(REQUEST, "token-1") == "new"
        assert ledger.claim_loop("loop-2", NOW, stale_after=300, counted=True) is None
    finally:
        client.meta.events.unregister("before-call", count)

    # THEN two calls, and the loop cannot give the lease up without seeing the request
    assert writes == ["TransactWriteItems", "UpdateItem"]
    assert ledger.release_loop("loop-1", seen) is False
    assert ledger.beat("loop-1", NOW, 300) == seen + 1


def test_a_loop_that_stopped_beating_is_replaced(ledger: DynamoLaunchLedger) -> None:
    from datetime import timedelta

    assert ledger.claim_loop("loop-1", NOW, stale_after=300) == "loop-1"
    # A beat extends the lease by the loop's own measure (its linger may be long).
    assert ledger.beat("loop-1", NOW + timedelta(seconds=200), 600) == 1
    assert ledger.claim_loop("loop-2", NOW + timedelta(seconds=700), stale_after=300) is None
    later = NOW + timedelta(seconds=801)
    assert ledger.claim_loop("loop-2", later, stale_after=300) == "loop-2"
    assert ledger.beat("loop-1", later, 300) is None


def test_a_loop_hands_its_lease_over_only_while_it_holds_it(ledger: DynamoLaunchLedger) -> None:
    from datetime import timedelta

    assert ledger.claim_loop("loop-1", NOW, stale_after=300) == "loop-1"
    assert ledger.beat("loop-1", NOW, 300) == 1
    later = NOW + timedelta(seconds=250)
    assert ledger.hand_over_loop("loop-1", "loop-1b", later, 300) is True
    # The new loop holds it, for stale_after from the handover; the old one no longer does.
    assert ledger.beat("loop-1", later, 300) is None
    assert ledger.claim_loop("loop-2", later + timedelta(seconds=299), stale_after=300) is None
    # The same handover again (a retried run) is a success, and changes nothing else.
    assert ledger.hand_over_loop("loop-1", "loop-1b", later, 300) is True
    # The request count went along: the new loop sees the requests counted meanwhile.
    assert ledger.beat("loop-1b", later, 300) == 2
    # Handing back (the new execution could not start) works the same way.
    assert ledger.hand_over_loop("loop-1b", "loop-1", later, 300) is True
    assert ledger.beat("loop-1b", later, 300) is None
    assert ledger.beat("loop-1", later, 300) is not None
    # A loop that no longer holds the lease cannot hand it over, nor take it.
    assert ledger.hand_over_loop("loop-1b", "loop-1c", later, 300) is False
    assert ledger.beat("loop-1", later, 300) is not None
    seen = ledger.beat("loop-1", later, 300)
    assert seen is not None
    assert ledger.release_loop("loop-1", seen) is True
    assert ledger.hand_over_loop("loop-1", "loop-1d", later, 300) is False  # nobody holds it
    assert ledger.claim_loop("loop-3", later, stale_after=300) == "loop-3"


def test_a_cutovers_test_instance_to_retire_and_its_retirement_are_kept(
    ledger: DynamoLaunchLedger,
) -> None:
    request = replace(REQUEST, test_instance_id="i-0123456789abcdef0")
    ledger.record_request(request, "token-1")
    ledger.record_request(replace(REQUEST, migration_id="mig-2"), "token-2")
    retire = LaunchIntent("intent-1", "retire", {request.source_server_id: "mig-1"}, NOW)
    ledger.add_intent(retire, seen_version=0)

    snapshot = ledger.snapshot()
    waiting = {launch.request.migration_id: launch for launch in snapshot.waiting}
    assert waiting["mig-1"].request.test_instance_id == "i-0123456789abcdef0"
    assert waiting["mig-1"].to_retire
    assert waiting["mig-2"].request.test_instance_id is None
    assert not waiting["mig-2"].to_retire
    assert snapshot.intents == (retire,)

    # WHEN its TERMINATE job completed THEN the request is retired, its token kept
    ledger.mark_test_instance_retired([waiting["mig-1"]])
    ledger.record_request(request, "token-3")  # a repeat keeps the mark
    (retired,) = [w for w in ledger.snapshot().waiting if w.request.migration_id == "mig-1"]
    assert retired.test_instance_retired
    assert not retired.to_retire
    assert retired.task_token == "token-3"

    # a request answered meanwhile is not brought back by the mark
    ledger.complete([outcome("token-3")])
    ledger.mark_test_instance_retired([retired])
    assert [w.request.migration_id for w in ledger.snapshot().waiting] == ["mig-2"]


def test_a_requests_application_and_the_applications_it_goes_after_are_kept(
    ledger: DynamoLaunchLedger,
) -> None:
    ordered = replace(REQUEST, application="web", cutover_after=("db", "cache"))
    ledger.record_request(ordered, "token-1")
    ledger.record_request(
        replace(REQUEST, migration_id="mig-2", application="db", mgn_application_id="app-1"),
        "token-2",
    )

    waiting = {w.request.migration_id: w.request for w in ledger.snapshot().waiting}
    # (and the MGN application a test request's server is to join)
    assert (waiting["mig-1"].mgn_application_id, waiting["mig-2"].mgn_application_id) == (
        "",
        "app-1",
    )

    assert (waiting["mig-1"].application, waiting["mig-1"].cutover_after) == (
        "web",
        ("db", "cache"),
    )
    assert (waiting["mig-2"].application, waiting["mig-2"].cutover_after) == ("db", ())
    # AND that it was reported waiting for them is kept with it
    (first,) = [w for w in ledger.snapshot().waiting if w.request.migration_id == "mig-1"]
    assert not first.dependencies_reported
    ledger.mark_dependencies_reported([first])
    marked = {w.request.migration_id: w for w in ledger.snapshot().waiting}
    assert (marked["mig-1"].dependencies_reported, marked["mig-2"].dependencies_reported) == (
        True,
        False,
    )
    # AND a dependency's failure is an answer the ledger keeps like any other
    ledger.complete([replace(outcome("token-1"), launch_status="DEPENDENCY_FAILED")])
    answered = ledger.answered("mig-1", "cutover")
    assert answered is not None
    assert answered["launchStatus"] == "DEPENDENCY_FAILED"
    (sent,) = ledger.undelivered()
    assert sent.launch_status == "DEPENDENCY_FAILED"


def test_a_request_recorded_before_its_application_was_kept_reads_it_from_its_payload(
    ledger: DynamoLaunchLedger,
) -> None:
    # GIVEN a cutover request as an older version recorded it: the spec in its payload only
    # (no application given, so none is written: the item has the older shape)
    payload = json.dumps({"appName": "web", "cutoverAfter": ["db"]})
    ledger.record_request(replace(REQUEST, payload=payload), "token-1")

    (waiting,) = ledger.snapshot().waiting

    assert (waiting.request.application, waiting.request.cutover_after) == ("web", ("db",))


def _many(n: int) -> list[LaunchRequest]:
    return [
        replace(
            REQUEST,
            migration_id=f"mig-{i}",
            source_server_id=f"s-{i:017d}",
            execution=f"exec-{i}",
        )
        for i in range(n)
    ]


def _outcome_of(request: LaunchRequest, token: str) -> LaunchOutcome:
    return replace(outcome(token), migration_id=request.migration_id, execution=request.execution)


@pytest.fixture
def transactions(ledger: DynamoLaunchLedger) -> Iterator[list[int]]:
    """The number of items of each TransactWriteItems call made from here on."""
    sizes: list[int] = []

    def count(model: object, params: dict[str, object], **_: object) -> None:
        if getattr(model, "name", "") == "TransactWriteItems":
            sizes.append(len(params["TransactItems"]))  # type: ignore[arg-type]

    events = ledger._table.meta.client.meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", count)
    yield sizes
    events.unregister("provide-client-params.dynamodb.TransactWriteItems", count)


def test_answers_share_transactions_and_one_retried_request_is_answered_on_its_new_token(
    ledger: DynamoLaunchLedger, transactions: list[int]
) -> None:
    # GIVEN 70 open requests, one of them (the 50th) asked again on a new task token
    requests = _many(70)
    for request in requests:
        ledger.record_request(request, f"token-{request.migration_id}")
    ledger.record_request(requests[50], "token-retried")
    transactions.clear()

    # WHEN all 70 are answered on the tokens the coordinator read before the retry
    ledger.complete([_outcome_of(r, f"token-{r.migration_id}") for r in requests])

    # THEN 33 answers go to a transaction (99 items); the one holding the retried request is
    # cancelled and its answers are written alone; every request is answered, the retried
    # one on its new token
    # (the retried one alone: refused on the old token, then answered on the new one; the
    # last 4 answers together)
    assert transactions == [99, 99] + [3] * 34 + [12]
    assert ledger.snapshot().waiting == ()
    by_migration = {o.migration_id: o.task_token for o in ledger.undelivered()}
    assert len(by_migration) == 70
    assert by_migration["mig-50"] == "token-retried"

    # AND delivering them empties the outbox in one transaction per 100, keeping an answer
    # whose token is not the one delivered
    transactions.clear()
    delivered = [_outcome_of(r, f"token-{r.migration_id}") for r in requests]
    ledger.delivered(delivered)
    assert [o.migration_id for o in ledger.undelivered()] == ["mig-50"]
    assert transactions == [70]  # cancelled by mig-50's, then one conditional delete each

    transactions.clear()
    ledger.delivered([_outcome_of(requests[50], "token-retried")])
    assert ledger.undelivered() == []


def test_marks_share_a_transaction_and_skip_a_request_answered_meanwhile(
    ledger: DynamoLaunchLedger, transactions: list[int]
) -> None:
    requests = _many(5)
    for request in requests:
        ledger.record_request(request, f"token-{request.migration_id}")
    waiting = ledger.snapshot().waiting
    ledger.complete([_outcome_of(requests[2], "token-mig-2")])  # answered meanwhile
    transactions.clear()

    ledger.mark_replication_ready(waiting)

    assert transactions[0] == 5  # tried together, cancelled by the answered one
    marked = {w.request.migration_id: w.replication_ready for w in ledger.snapshot().waiting}
    assert marked == {"mig-0": True, "mig-1": True, "mig-3": True, "mig-4": True}

    transactions.clear()
    ledger.mark_test_instance_retired(ledger.snapshot().waiting)
    assert transactions == [4]  # nothing answered meanwhile: one call
