"""The Slack bot end to end on the embedded system: real Bolt app, real slack_sdk, the Slack
stand-in on loopback, the real pipeline behind them."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.commands import (
    APPROVE_CONFIRM_ACTION,
    ROLLBACK_CONFIRM_ACTION,
    WAVE_CONTROL_CONFIRM_ACTION,
)
from bot.thread_store import SlackThread, ThreadStore
from bot.threads import (
    APPROVE_ACTION,
    FINALIZE_NOW_ACTION,
    PARK_RETRY_ACTION,
    PARK_ROLLBACK_ACTION,
)
from orchestration import observability, wiring
from orchestration.adapters.lanes import Lane
from orchestration.adapters.wave_predictions import WavePrediction, WavePredictionStore
from orchestration.events import PRIORITY_EVENT_TYPES
from orchestration.local.driver import MigrationDriver
from orchestration.local.estate import lane_of_spec
from orchestration.local.mgn import LaunchType
from orchestration.local.provision import REQUEST_MAX_RECEIVE_COUNT
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.runtime.fault_points import RuntimeFaults, use_runtime_faults
from orchestration.local.runtime.sqs_event_sources import sqs_event_record
from orchestration.local.slack import Edit, Thread
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.naming import SLACK_PRIORITY_MESSAGE_GROUP
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
WAVE_1_CHANNEL = "C07WAVE0001"
ALICE = "U07ALICE001"  # a listed approver and operator of wave-1
BOB = "U07BOBOPS01"  # an operator of wave-1, not an approver
MALLORY = "U0MALLORY01"  # in the workspace, in no list


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        assert running.slack is not None
        running.slack.add_user(MALLORY, name="mallory", email="mallory@contoso.com")
        yield running


@pytest.fixture
def driver(system: EmbeddedSystem) -> MigrationDriver:
    return MigrationDriver(system)


def _threads() -> ThreadStore:
    table = boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(wiring.store()._table.name)
    return ThreadStore(table)


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _settled_thread(system: EmbeddedSystem, migration_id: str, outcome: str) -> Thread:
    """The migration's Slack thread once its root shows ``outcome`` and no reply is owed
    (the bot may lag; a reply that can wait is posted after the root's edit)."""
    assert system.slack is not None

    def shown() -> Thread | None:
        stored = _threads().get(migration_id)
        if stored is None or stored.root_owed or stored.state.outcome != outcome:
            return None
        if stored.owed_replies:
            return None
        return system.slack.thread(stored.channel, stored.ts) if system.slack else None

    thread: Thread = _wait_for(f"{migration_id} to show {outcome} in Slack", shown)
    return thread


def _stored(migration_id: str) -> SlackThread:
    thread: SlackThread = _wait_for(
        f"{migration_id}'s approval message", lambda: _approval_posted(migration_id)
    )
    return thread


def _approval_posted(migration_id: str) -> SlackThread | None:
    stored = _threads().get(migration_id)
    return stored if stored is not None and stored.approval_ts else None


def _start(
    system: EmbeddedSystem,
    driver: MigrationDriver,
    count: int = 1,
    *,
    finalize_after: str | None = None,
    on_failure: str | None = None,
) -> list[MigrationRequest]:
    requests = example_requests(
        approval_scope="vm", finalize_after=finalize_after, on_failure=on_failure
    )[:count]
    system.seed([spec_of(r) for r in requests])
    driver.send(requests)
    return requests


def _wait_at_gate(driver: MigrationDriver, migration_id: str) -> None:
    _wait_for(
        "the approval gate",
        lambda: (
            (record := wiring.store().get(migration_id)) is not None
            and record.step == "AwaitApproval"
        ),
        timeout=60,
    )


def test_a_migration_has_one_thread_within_its_slack_budget(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    [request] = _start(system, driver)
    outcome = driver.wait([request.migration_id])[request.migration_id]
    assert outcome.status == "SUCCEEDED", outcome.cause

    thread = _settled_thread(system, request.migration_id, "migrated")
    assert system.slack is not None
    # One root in the wave's channel (beside the wave's summary), edited in place.
    roots = [m for m in system.slack.channel_messages(WAVE_1_CHANNEL) if not _is_summary(m)]
    assert [m.ts for m in roots] == [thread.ts]
    assert thread.channel == WAVE_1_CHANNEL
    assert "migrated" in thread.root.text
    # The root showed only what a person needs: in progress, cutting over, migrated.
    shown = [version.text.rsplit(": ", 1)[-1] for version in thread.root.versions]
    assert shown == ["in progress", "cutting over", "migrated"]
    # Replies: the approval message (decided by a click) and the final result.
    assert [_kind(reply.text) for reply in thread.replies] == ["approved", "finalized"]
    approval = thread.replies[0]
    assert not any(b.get("type") == "actions" for b in approval.blocks)  # buttons gone
    assert f"<@{ALICE}>" in approval.text
    _assert_the_approval_showed_what_was_launched(system, request, approval.versions[0])
    # The notifier's Slack calls for the whole migration: six (P3): post root, post the
    # approval message, update it decided, root to cutting over, root to migrated, the final
    # reply. (The click's own replacement of the approval message goes through the click's
    # response_url, not the Web API; it and the notifier's update may come in either order.)
    in_thread = {thread.ts, *(reply.ts for reply in thread.replies)}
    web_api = [
        request.api_method or ""
        for request in system.slack.requests()
        if (request.api_method or "").startswith("chat.")
        and str(request.params.get("channel") or "") == WAVE_1_CHANNEL
        and (
            str(request.params.get("thread_ts") or request.params.get("ts") or "") in in_thread
            or str(request.response.get("ts") or "") == thread.ts
        )
    ]
    assert sorted(web_api) == ["chat.postMessage"] * 3 + ["chat.update"] * 3
    # The thread's ts is kept with the migration.
    stored = _threads().get(request.migration_id)
    assert stored is not None
    assert stored.ts == thread.ts
    # The root carries which event it shows (metadata), the last one.
    metadata = thread.root.metadata or {}
    assert metadata["event_payload"]["outcome"] == "migrated"
    # Routine detail is on demand: /wavepilot status shows the steps the thread left out.
    system.slack.slash_command(
        user=BOB, channel=WAVE_1_CHANNEL, text=f"status {request.migration_id}"
    )
    answer = _wait_for(
        "the status answer",
        lambda: (
            system.slack is not None
            and next(
                (m for m in system.slack.ephemeral_messages(BOB) if "COMPLETED" in m.text), None
            )
        ),
    )
    for step in ("WaitForReplication SUCCEEDED", "VerifyTestLaunch SUCCEEDED", "VerifyCutover"):
        assert step in answer.text, answer.text


def _is_summary(message: Any) -> bool:
    return bool((message.metadata or {}).get("event_type") == "wavepilot_wave_summary")


def test_the_wave_summary_counts_equal_the_executions_states_at_the_end(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # GIVEN a wave of three VMs whose second fails its test launch (and rolls back)
    requests = example_requests()[:3]
    servers = system.seed([spec_of(r) for r in requests])
    failing = requests[1]
    system.mgn_of_server(servers[failing.migration_id]).faults.fail_next_launch(
        servers[failing.migration_id], launch_type=LaunchType.TEST
    )
    driver.send(requests)
    outcomes = driver.wait([r.migration_id for r in requests], timeout=180)
    statuses = {mid: o.record_status for mid, o in outcomes.items()}
    assert sorted(statuses.values()) == ["COMPLETED", "COMPLETED", "ROLLED_BACK"], outcomes

    # THEN the wave's one summary ends with the executions' states, and links the failure
    def ended_summary() -> Any:
        assert system.slack is not None
        summaries = [m for m in system.slack.channel_messages(WAVE_1_CHANNEL) if _is_summary(m)]
        assert len(summaries) == 1, summaries
        payload = (summaries[0].metadata or {}).get("event_payload") or {}
        return summaries[0] if payload.get("ended") else None

    summary = _wait_for("the wave summary to end", ended_summary)
    counts = summary.metadata["event_payload"]["counts"]
    expected = {
        "migrated": sum(s == "COMPLETED" for s in statuses.values()),
        "rolled_back": sum(s == "ROLLED_BACK" for s in statuses.values()),
    }
    assert {k: n for k, n in counts.items() if n} == expected
    failed_thread = _threads().get(failing.migration_id)
    assert failed_thread is not None
    link = (
        f"https://slack.com/archives/{failed_thread.channel}/p{failed_thread.ts.replace('.', '')}"
    )
    assert f"<{link}|{failing.effective_vm.target_vm_name if failing.effective_vm else ''}>" in (
        json.dumps(summary.blocks)
    )
    assert summary.text == "Wave wave-1: 3 migrations (2 migrated, 1 rolled back) (done)"
    # Edited in place, not reposted: far fewer versions than the wave's events (how many
    # depends on the pace of the run: at most one edit per category change once due).
    steps = sum(len(o.steps) for o in outcomes.values())
    assert 1 <= len(summary.versions) <= steps // 2, (len(summary.versions), steps)


def test_the_wave_summary_shows_the_recorded_prediction_against_the_window(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # GIVEN wave-1's prediction recorded from a rehearsal: its cutovers end 45 min before
    # its window closes
    [request] = example_requests()[:1]
    assert request.effective_vm is not None
    window_end = request.effective_vm.cutover_window.end
    predicted_end = window_end - timedelta(minutes=45)
    table = boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(wiring.store()._table.name)
    WavePredictionStore(table).put_all(
        [WavePrediction("wave-1", predicted_end, datetime.now(UTC), predicted_end, 1, "per-vm")]
    )

    # WHEN the wave migrates
    system.seed([spec_of(request)])
    driver.send([request])
    outcome = driver.wait([request.migration_id])[request.migration_id]
    assert outcome.status == "SUCCEEDED", outcome.cause

    # THEN its summary shows the predicted end, and that it fits with 45 min to spare
    def ended_summary() -> Any:
        assert system.slack is not None
        summaries = [m for m in system.slack.channel_messages(WAVE_1_CHANNEL) if _is_summary(m)]
        payload = (summaries[0].metadata or {}).get("event_payload") or {} if summaries else {}
        return summaries[0] if payload.get("ended") else None

    summary = _wait_for("the wave summary to end", ended_summary)
    assert summary.metadata["event_payload"]["predicted_end"] == predicted_end.isoformat()
    shown = json.dumps(summary.blocks)
    assert f"<!date^{int(predicted_end.timestamp())}^" in shown
    assert "fits, 45 min to spare" in shown


def _assert_the_approval_showed_what_was_launched(
    system: EmbeddedSystem, request: MigrationRequest, posted: Edit
) -> None:
    """The approval message as posted named the test instance the emulated EC2 launched, its
    health check, the requester, the target and the window; Approve asked for confirmation."""
    assert system.slack is not None
    assert request.effective_vm is not None
    [test_instance] = [
        instance
        for reservation in system.lane_ec2(lane_of_spec(spec_of(request))).describe_instances(
            Filters=[{"Name": "tag:wavepilot:phase", "Values": ["test"]}]
        )["Reservations"]
        for instance in reservation["Instances"]
    ]
    instance_id, private_ip = test_instance["InstanceId"], test_instance["PrivateIpAddress"]
    window = (
        request.effective_vm.cutover_window
    )  # the example requests' window opened an hour ago, UTC
    window_text = f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
    shown = json.dumps(posted.blocks)
    assert f"*Test instance*\\n`{instance_id}` at `{private_ip}`" in shown
    assert (
        f":white_check_mark: http `http://{private_ip}:80/healthz` passed: HTTP 200 (expected 200)"
    ) in shown
    assert "*Target account / Region*\\n`111122223333` us-east-1" in shown
    assert "*Requested by*\\nDana Migration &lt;dana@contoso.com&gt;" in shown
    assert f"Test instance {instance_id} ({private_ip}), health checks 1/1 passed" in posted.text
    assert f"window {window_text}" in posted.text
    approve = next(
        element
        for block in posted.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == APPROVE_ACTION
    )
    question = (
        "Approve the cutover of intranet-web-01 (wave wave-1) into AWS account 111122223333 "
        f"in us-east-1, in the window {window_text}?"
    )
    assert approve["confirm"]["text"] == {"type": "plain_text", "text": question}
    # The approver saw that dialog before the click reached the bot.
    [dialog] = system.slack.confirm_dialogs()
    assert (dialog.title, dialog.text, dialog.confirm) == (
        "Cut over intranet-web-01?",
        question,
        "Approve cutover",
    )


def _kind(text: str) -> str:
    for needle, kind in (
        ("Replication ready", "replication ready"),
        ("Test launch started", "test launch"),
        ("Test instance verified", "test verified"),
        ("*Approved*", "approved"),
        ("*Rejected*", "rejected"),
        ("Cut over", "cut over"),
        ("Finalized", "finalized"),
        ("Rolling back", "rolling back"),
        ("Rolled back", "rolled back"),
        ("failed*", "failed"),
        ("*Expired*", "expired"),
        ("Approval needed", "approval needed"),
    ):
        if needle in text:
            return kind
    return text


def _queued_detail_types(queue_arn: str) -> list[str]:
    """The detail-type of every message on a queue of the embedded moto (the ``kind`` of the
    notifier's own owed-roots reminder), read without receiving (a receive would hide a FIFO
    group's messages behind the first ten)."""
    from moto.sqs.models import sqs_backends

    from orchestration.local.runtime.moto_backends import ArnParts

    arn = ArnParts.parse(queue_arn)
    queue = sqs_backends[arn.account_id][arn.region].queues[arn.resource]
    bodies = [json.loads(message.body) for message in list(queue._messages)]
    return [body.get("detail-type") or body["kind"] for body in bodies]


def test_an_approval_reaches_slack_while_the_routine_events_wait_on_their_queue(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    # GIVEN the notifier reads nothing from the status queue (a wave's backlog, at its worst)
    assert system.resources is not None
    assert system.slack is not None
    lambda_client = system.client("lambda")
    mappings = lambda_client.list_event_source_mappings(
        FunctionName=system.function_arns["slack_notifier"]
    )["EventSourceMappings"]
    assert {m["EventSourceArn"] for m in mappings} == {
        system.resources.slack_status_queue_arn,
        system.resources.slack_priority_queue_arn,
    }
    status_mapping = next(
        m["UUID"]
        for m in mappings
        if m["EventSourceArn"] == system.resources.slack_status_queue_arn
    )
    lambda_client.update_event_source_mapping(UUID=status_mapping, Enabled=False)

    # WHEN a migration reaches its approval gate
    [request] = _start(system, driver)
    _wait_at_gate(driver, request.migration_id)

    # THEN its approval message with the Approve button is in Slack all the same
    stored = _stored(request.migration_id)
    thread = system.slack.thread(stored.channel, stored.ts)
    [approval] = [m for m in (thread.root, *thread.replies) if m.ts == stored.approval_ts]
    assert APPROVE_ACTION in json.dumps(approval.blocks)
    # AND every routine event so far waits on the status queue, and only those: each event
    # took exactly one of the two paths
    waiting = _queued_detail_types(system.resources.slack_status_queue_arn)
    assert {"MigrationRequested", "MigrationStatusUpdated"} <= set(waiting)
    assert not set(waiting) & set(PRIORITY_EVENT_TYPES), waiting
    # (the priority queue's message leaves it once the notifier's batch has ended, just
    # after the approval message was posted)
    priority_queue = system.resources.slack_priority_queue_arn
    deadline = time.monotonic() + 30
    while _queued_detail_types(priority_queue) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _queued_detail_types(priority_queue) == []

    # WHEN the status queue is read again and the migration is approved
    lambda_client.update_event_source_mapping(UUID=status_mapping, Enabled=True)
    outcome = driver.wait([request.migration_id])[request.migration_id]

    # THEN it ends as ever: its final state in its thread's root
    assert outcome.status == "SUCCEEDED", outcome.cause
    _settled_thread(system, request.migration_id, "migrated")


def test_a_body_that_is_no_event_goes_to_the_dead_letter_queue_of_the_queue_it_came_from(
    system: EmbeddedSystem,
) -> None:
    # GIVEN a body that is no status event on each of the notifier's queues
    resources = system.resources
    assert resources is not None
    sqs = system.client("sqs")
    sqs.send_message(
        QueueUrl=resources.slack_status_queue_url,
        MessageBody=f"{{not an event from {resources.slack_status_queue_url}",
    )
    sqs.send_message(
        QueueUrl=resources.slack_priority_queue_url,
        MessageBody=f"{{not an event from {resources.slack_priority_queue_url}",
        MessageGroupId=SLACK_PRIORITY_MESSAGE_GROUP,
        MessageDeduplicationId="unreadable-priority",
    )

    # THEN each goes, with its reason, to its own queue's DLQ (the redrive goes back there)
    def dead_lettered(dlq_url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=dlq_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
        ).get("Messages", [])
        return found

    for source_url, dlq_url in (
        (resources.slack_status_queue_url, resources.slack_status_dead_letter_queue_url),
        (resources.slack_priority_queue_url, resources.slack_priority_dead_letter_queue_url),
    ):
        [message] = _wait_for(f"a dead letter in {dlq_url}", partial(dead_lettered, dlq_url))
        assert message["Body"] == f"{{not an event from {source_url}"
        reason = message["MessageAttributes"]["failureReason"]["StringValue"]
        assert reason.startswith("not a status event")


def test_an_event_failing_on_its_last_receive_is_dead_lettered_with_why_not_by_the_redrive(
    system: EmbeddedSystem,
) -> None:
    from bot.handlers import slack_notifier
    from tests.support.lambda_context import FakeLambdaContext

    # GIVEN a Slack outage, and two status events of two migrations: one on its first
    # receive, one on the status queue's last (maxReceiveCount)
    resources = system.resources
    assert resources is not None
    assert system.slack is not None
    system.slack.inject_server_errors(3600)  # Slack seconds: longer than the bot's retries

    first = _sqs_record("m-first", _first_status_event("mig-first"))
    last = _sqs_record("m-last", _first_status_event("mig-last"))
    last["attributes"]["ApproximateReceiveCount"] = str(REQUEST_MAX_RECEIVE_COUNT)
    for record in (first, last):
        record["eventSourceARN"] = resources.slack_status_queue_arn

    # WHEN the notifier takes them
    result = slack_notifier.handler({"Records": [first, last]}, FakeLambdaContext())

    # THEN the first comes back (SQS delivers it again); the last goes to the status queue's
    # DLQ now, with why it failed (SQS's redrive would have moved it with no reason)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-first"}]}
    [message] = system.client("sqs").receive_message(
        QueueUrl=resources.slack_status_dead_letter_queue_url,
        MessageAttributeNames=["All"],
        MaxNumberOfMessages=10,
    )["Messages"]
    assert json.loads(message["Body"])["detail"]["migrationId"] == "mig-last"
    attributes = message["MessageAttributes"]
    assert attributes["sourceMessageId"]["StringValue"] == "m-last"
    reason = attributes["failureReason"]["StringValue"]
    assert reason.startswith(
        f"not shown in Slack after {REQUEST_MAX_RECEIVE_COUNT} receives "
        "(the queue's maxReceiveCount): "
    ), reason
    assert "SlackApiError" in reason  # the outage's answer, as the bot got it


def test_a_migrations_events_out_of_order_in_a_status_batch_are_shown_in_order(
    system: EmbeddedSystem,
) -> None:
    from bot.handlers import slack_notifier
    from tests.support.lambda_context import FakeLambdaContext

    # GIVEN a batch from the status queue (a standard queue: best-effort order) holding a
    # migration's first event, then its third, then its second, each third and second with a
    # reply in the thread
    resources = system.resources
    assert resources is not None
    assert system.slack is not None
    bodies = [
        _first_status_event("mig-unordered"),
        _status_event("mig-unordered", 3, "FinalizeCutover", "IN_PROGRESS", "finalizing now"),
        _status_event("mig-unordered", 2, "StartTestLaunch", "FAILED", "no capacity"),
    ]
    records = [_sqs_record(f"m-{n}", body) for n, body in enumerate(bodies)]
    for record in records:
        record["eventSourceARN"] = resources.slack_status_queue_arn

    # WHEN the notifier takes it
    result = slack_notifier.handler({"Records": records}, FakeLambdaContext())

    # THEN every event is shown, the replies in the order of the events' sequence (not of the
    # batch), and the root shows the newest
    assert result == {"batchItemFailures": []}
    stored = _threads().get("mig-unordered")
    assert stored is not None
    assert stored.state.sequence == 3
    thread = system.slack.thread(stored.channel, stored.ts)
    assert [
        reply.text.split("*")[1] if "*" in reply.text else reply.text for reply in thread.replies
    ] == [
        "StartTestLaunch failed",
        ":fast_forward: Finalizing now",
    ]


def test_a_status_batch_filling_within_its_window_holds_up_no_priority_event() -> None:
    # GIVEN the status queue's mapping waits up to 4 s to fill a batch, and the notifier runs
    # one batch at a time (reserved concurrency 1)
    options = SystemOptions(timings=FAST, slack_status_batching_window_seconds=4)
    with EmbeddedSystem(options) as system:
        resources = system.resources
        assert resources is not None
        sqs = system.client("sqs")
        # WHEN a routine event opens a status batch's window, and a priority event follows
        sqs.send_message(
            QueueUrl=resources.slack_status_queue_url,
            MessageBody=_first_status_event("mig-routine"),
        )
        time.sleep(0.5)
        sqs.send_message(
            QueueUrl=resources.slack_priority_queue_url,
            MessageBody=_first_status_event("mig-priority"),
            MessageGroupId=SLACK_PRIORITY_MESSAGE_GROUP,
            MessageDeduplicationId="window-priority",
        )
        # THEN the priority event is shown while the status batch still fills: Lambda's
        # pollers batch before they invoke, so a window holds none of the function's slots
        _wait_for("the priority event's thread", lambda: _threads().get("mig-priority"))
        assert _threads().get("mig-routine") is None
        # AND the routine event is shown when its window ends
        _wait_for("the routine event's thread", lambda: _threads().get("mig-routine"))


def test_a_notifier_that_dies_after_its_handler_holds_up_no_fifo_group(
    system: EmbeddedSystem,
) -> None:
    # GIVEN the notifier's runtime dies after each handler returned (before the event source
    # mapping could delete the batch: it sees a failed invocation)
    resources = system.resources
    assert resources is not None
    assert system.slack is not None
    sqs = system.client("sqs")
    faults = RuntimeFaults(crash_after_handler={"slack-notifier": 1.0})
    use_runtime_faults(faults)
    try:
        # WHEN a migration's event reaches the priority queue (FIFO, one group; the status
        # queue is a standard queue, where a message in flight holds up no other)
        sqs.send_message(
            QueueUrl=resources.slack_priority_queue_url,
            MessageBody=_first_status_event("mig-crashed-notifier"),
            MessageGroupId=SLACK_PRIORITY_MESSAGE_GROUP,
            MessageDeduplicationId="crashed-notifier-1",
        )
        stored = _wait_for(
            "the thread of the event, its root posted",
            lambda: (
                (found := _threads().get("mig-crashed-notifier")) is not None and found.ts and found
            ),
        )
        _wait_for("the notifier's crash", lambda: faults.crashed)

        # THEN the handler deleted what it showed before the crash: nothing is in flight, so
        # the queue's one FIFO group is not held for its visibility timeout (six minutes),
        # and the event is not shown a second time
        def in_flight() -> int:
            attributes = sqs.get_queue_attributes(
                QueueUrl=resources.slack_priority_queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            return sum(int(value) for value in attributes.values())

        _wait_for("an empty priority queue", lambda: in_flight() == 0, timeout=10)
    finally:
        use_runtime_faults(None)
    roots = [
        request
        for request in system.slack.requests()
        if request.api_method == "chat.postMessage" and "mig-crashed-notifier" in request.body
    ]
    assert len(roots) == 1, roots
    assert stored.ts


def test_a_root_owed_when_the_bot_restarts_is_shown_all_the_same(system: EmbeddedSystem) -> None:
    from bot import wiring as bot_wiring
    from bot.handlers import slack_notifier
    from tests.support.lambda_context import FakeLambdaContext

    # GIVEN the notifier reads its status queue only when handed a batch here
    resources = system.resources
    assert resources is not None
    assert system.slack is not None
    lambda_client = system.client("lambda")
    [status_mapping] = [
        m["UUID"]
        for m in lambda_client.list_event_source_mappings(
            FunctionName=system.function_arns["slack_notifier"]
        )["EventSourceMappings"]
        if m["EventSourceArn"] == resources.slack_status_queue_arn
    ]
    lambda_client.update_event_source_mapping(UUID=status_mapping, Enabled=False)

    def first_event(migration_id: str) -> dict[str, Any]:
        record = _sqs_record(f"m-{migration_id}", _first_status_event(migration_id))
        record["eventSourceARN"] = resources.slack_status_queue_arn
        return record

    # (the wave's summary is in Slack already: the batches below make no post they wait for)
    assert slack_notifier.handler(
        {"Records": [first_event("mig-owed-zero")]}, FakeLambdaContext()
    ) == {"batchItemFailures": []}
    # AND Slack refuses the next posts (429): a new thread's root is owed, not waited for
    system.slack.inject_rate_limits(10, method="chat.postMessage")

    # WHEN two migrations' first events come in two batches (the first batch puts a
    # reminder naming its owed root; the second owes another while that one is on the queue)
    for migration_id in ("mig-owed-first", "mig-owed-second"):
        result = slack_notifier.handler(
            {"Records": [first_event(migration_id)]}, FakeLambdaContext()
        )
        assert result == {"batchItemFailures": []}
        stored = _threads().get(migration_id)
        assert stored is not None
        assert not stored.ts, migration_id  # owed
    # AND the bot restarts (a deployment, Lambda recycling the container): its memory is gone
    bot_wiring.reset()
    # AND its reminders come back from the status queue, as long as the chain goes on (the
    # refused posts left are waited out: Retry-After)
    sqs = system.client("sqs")
    rounds = 0
    while reminders := sqs.receive_message(
        QueueUrl=resources.slack_status_queue_url,
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        records = [
            sqs_event_record(m, queue_arn=resources.slack_status_queue_arn) for m in reminders
        ]
        assert slack_notifier.handler({"Records": records}, FakeLambdaContext()) == {
            "batchItemFailures": []
        }
        # as the event source mapping does after a batch that succeeded
        sqs.delete_message_batch(
            QueueUrl=resources.slack_status_queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(reminders)
            ],
        )
        rounds += 1
        assert rounds < 10, "the reminders never ended"
    assert rounds

    # THEN both roots are in Slack: what was owed was named on the queue, not only in memory
    for migration_id in ("mig-owed-first", "mig-owed-second"):
        stored = _threads().get(migration_id)
        assert stored is not None
        assert stored.ts, f"{migration_id}'s root was lost with the restart"
    lambda_client.update_event_source_mapping(UUID=status_mapping, Enabled=True)


def test_a_rejection_in_the_modal_rolls_the_migration_back(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    [request] = _start(system, driver)
    outcome = driver.wait(
        [request.migration_id], approver=lambda record, approvers: ("REJECTED", ALICE)
    )[request.migration_id]

    assert outcome.record_status == "ROLLED_BACK"
    thread = _settled_thread(system, request.migration_id, "rolled back")
    kinds = [_kind(reply.text) for reply in thread.replies]
    assert kinds == ["rejected", "rolling back", "rolled back"], kinds
    assert "rejected by the simulated approver" in thread.replies[0].text
    assert "rolled back" in thread.root.text


def test_an_approver_who_is_not_listed_and_the_requester_are_refused_and_audited(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # The change's author (dana@contoso.com) is in Slack, and in a listed group.
    system.slack.add_user("U0DANA00001", name="dana", email="dana@contoso.com")
    [request] = _start(system, driver)
    system.slack.add_usergroup("S07MIGLEADS", "migleads", ["U0LOCALLEAD1", "U0DANA00001"])
    _wait_at_gate(driver, request.migration_id)
    stored = _stored(request.migration_id)

    for user in (MALLORY, "U0DANA00001"):
        response = system.slack.click_button(
            user=user,
            channel=stored.channel,
            message_ts=stored.approval_ts,
            action_id=APPROVE_ACTION,
        )
        assert response.status == 200  # acknowledged; the answer is ephemeral

    def refusals() -> list[str]:
        assert system.slack is not None
        return [m.text for m in system.slack.ephemeral_messages() if ":warning:" in m.text]

    texts = _wait_for("two refusals", lambda: len(refusals()) == 2 and refusals())
    assert any(f"<@{MALLORY}> is not an approver of wave-1" in t for t in texts), texts
    assert any("you requested this change" in t for t in texts), texts
    trail = wiring.store().audit_trail(stored.approval_id)
    assert sorted((a["actor"], a["outcome"]) for a in trail) == [
        ("U0DANA00001", "refused"),
        (MALLORY, "refused"),
    ]
    approval = wiring.store().approval(stored.approval_id)
    assert approval is not None
    assert approval.status == "PENDING"
    # The migration still waits; a listed approver then approves it with /wavepilot approve,
    # which asks first, naming the same facts as the button's dialog.
    system.slack.slash_command(
        user=ALICE, channel=WAVE_1_CHANNEL, text=f"approve {request.migration_id}"
    )
    question = _wait_for(
        "the question",
        lambda: (
            system.slack is not None
            and next(
                (m for m in system.slack.ephemeral_messages(ALICE) if "Approve the cut" in m.text),
                None,
            )
        ),
    )
    assert (
        "intranet-web-01 (wave wave-1) into AWS account 111122223333 in us-east-1, in the window "
    ) in question.text
    approval = wiring.store().approval(stored.approval_id)
    assert approval is not None
    assert approval.status == "PENDING"  # asking decided nothing
    system.slack.click_ephemeral_button(
        user=ALICE, message=question, action_id=APPROVE_CONFIRM_ACTION
    )
    outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]
    assert outcome.status == "SUCCEEDED"
    decided = wiring.store().approval(stored.approval_id)
    assert decided is not None
    assert (decided.status, decided.decided_by) == ("APPROVED", ALICE)


def test_a_double_click_decides_once_and_the_second_is_told_who_decided(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    assert system.api_calls is not None
    [request] = _start(system, driver)
    _wait_at_gate(driver, request.migration_id)
    stored = _stored(request.migration_id)
    approve = stored.approval_ts

    for _ in range(2):
        system.slack.click_button(
            user=ALICE,
            channel=stored.channel,
            message_ts=approve,
            action_id=APPROVE_ACTION,
            value=stored.approval_id,  # the second click may come after the buttons went
        )
    outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]

    assert outcome.status == "SUCCEEDED"
    trail = wiring.store().audit_trail(stored.approval_id)
    assert sorted(a["outcome"] for a in trail) == ["decided", "refused"]
    already = [m.text for m in system.slack.ephemeral_messages(ALICE) if "already" in m.text]
    assert already
    assert f"already approved by <@{ALICE}>" in already[0]
    successes = [
        n for op, n in system.api_calls.by_operation().items() if op.endswith(".SendTaskSuccess")
    ]
    assert successes == [1]


def test_forged_and_stale_requests_are_refused(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    forged = system.slack.slash_command(
        user=ALICE, channel=WAVE_1_CHANNEL, text="help", signing_secret="not-the-secret"
    )
    stale = system.slack.slash_command(
        user=ALICE, channel=WAVE_1_CHANNEL, text="help", timestamp=int(time.time()) - 600
    )
    fine = system.slack.slash_command(user=ALICE, channel=WAVE_1_CHANNEL, text="help")

    assert (forged.status, stale.status, fine.status) == (401, 401, 200)


def test_status_commands_answer_ephemerally(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    [request] = _start(system, driver)
    driver.wait([request.migration_id])

    def answer(text: str) -> str:
        assert system.slack is not None
        before = len(system.slack.ephemeral_messages(BOB))
        system.slack.slash_command(user=BOB, channel=WAVE_1_CHANNEL, text=text)
        return str(
            _wait_for(
                f"an answer to {text!r}",
                lambda: (
                    (found := system.slack.ephemeral_messages(BOB) if system.slack else [])
                    and len(found) > before
                    and found[-1].text
                ),
            )
        )

    assert "intranet-web-01" in answer(f"status {request.migration_id}")
    assert "COMPLETED" in answer(f"status {request.migration_id}")
    assert "wave-1" in answer("status wave-1")
    assert "usage: `/wavepilot status" in answer("status")
    assert "unknown command `deploy`" in answer("deploy everything")
    assert "`/wavepilot` commands" in answer("help")
    assert "already" in answer(f"approve {request.migration_id}")
    assert "is finalized" in answer(f"rollback {request.migration_id} too late")


def test_an_operator_rolls_a_migration_back_mid_run_after_confirming(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    [request] = _start(system, driver)
    _wait_at_gate(driver, request.migration_id)

    # Not an operator: refused (and audited), nothing stops.
    system.slack.slash_command(
        user=MALLORY, channel=WAVE_1_CHANNEL, text=f"rollback {request.migration_id} because"
    )
    _wait_for(
        "the refusal",
        lambda: (
            system.slack is not None
            and any("not an operator" in m.text for m in system.slack.ephemeral_messages(MALLORY))
        ),
    )
    # An operator: asked to confirm first.
    system.slack.slash_command(
        user=BOB,
        channel=WAVE_1_CHANNEL,
        text=f'rollback {request.migration_id} "app team found a licence problem"',
    )
    question = _wait_for(
        "the confirmation",
        lambda: (
            system.slack is not None
            and next(
                (m for m in system.slack.ephemeral_messages(BOB) if "Roll back *" in m.text), None
            )
        ),
    )
    system.slack.click_ephemeral_button(
        user=BOB, message=question, action_id=ROLLBACK_CONFIRM_ACTION
    )
    outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]

    assert outcome.record_status == "ROLLED_BACK"
    rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
    assert f"requested by <@{BOB}>: app team found a licence problem" in rollback["message"]
    [server_id] = system.lane_of_server
    lane = system.lane_of_server[server_id]  # nothing runs in the VM's lane
    reservations = system.lane_ec2(lane).describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert [i for r in reservations for i in r["Instances"]] == []
    assert server_id
    trail = wiring.store().migration_audit_trail(request.migration_id)
    assert sorted((a["actor"], a["outcome"]) for a in trail) == [
        (BOB, "started"),
        (MALLORY, "refused"),
    ]
    thread = _settled_thread(system, request.migration_id, "rolled back")
    assert any("licence problem" in reply.text for reply in thread.replies)
    # The gate the stopped execution waited at is closed, and says why.
    stored = _threads().get(request.migration_id)
    assert stored is not None
    approval_message = next(r for r in thread.replies if r.ts == stored.approval_ts)
    assert "*Expired*" in approval_message.text


class _HeldError(Exception):
    """The migration reached its hold before FinalizeCutover."""


def _held_with_its_reply(
    system: EmbeddedSystem, driver: MigrationDriver, request: MigrationRequest
) -> Any:
    """Wait until the migration's verified cutover is held before FinalizeCutover; the
    hold's reply in its thread (until when, how to go back, Finalize now)."""

    def held(_statuses: dict[str, str], records: dict[str, Any]) -> None:
        record = records.get(request.migration_id)
        history = record.history if record is not None else ()
        if ("FinalizeCutover", "WAITING") in [(s.get("step"), s.get("status")) for s in history]:
            raise _HeldError

    with pytest.raises(_HeldError):
        driver.wait([request.migration_id], on_tick=held, timeout=300)

    def hold_reply() -> Any:
        assert system.slack is not None
        stored = _threads().get(request.migration_id)
        if stored is None or not stored.ts:
            return None
        thread = system.slack.thread(stored.channel, stored.ts)
        return next((r for r in thread.replies if "held until" in r.text), None)

    return _wait_for("the hold in the thread", hold_reply)


def test_an_operators_rollback_during_the_finalize_hold_returns_to_the_source(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # GIVEN a wave that holds verified cutovers for a day before FinalizeCutover
    [request] = _start(system, driver, finalize_after="24h")
    # The thread says until when, and how to go back
    hold = _held_with_its_reply(system, driver, request)
    assert f"/wavepilot rollback {request.migration_id}" in hold.text

    # WHEN an operator rolls it back during the hold
    system.slack.slash_command(
        user=BOB, channel=WAVE_1_CHANNEL, text=f'rollback {request.migration_id} "payroll broke"'
    )
    question = _wait_for(
        "the confirmation",
        lambda: (
            system.slack is not None
            and next(
                (m for m in system.slack.ephemeral_messages(BOB) if "Roll back *" in m.text), None
            )
        ),
    )
    system.slack.click_ephemeral_button(
        user=BOB, message=question, action_id=ROLLBACK_CONFIRM_ACTION
    )
    outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]

    # THEN the source is back to ready-for-cutover, the cutover instance is gone, and MGN's
    # FinalizeCutover was never called
    assert outcome.record_status == "ROLLED_BACK"
    [server_id] = system.lane_of_server
    lane = system.lane_of_server[server_id]
    server = wiring.lanes().clients(Lane(*lane)).mgn.source_server(server_id)
    assert server.lifecycle_state == "READY_FOR_CUTOVER"
    reservations = system.lane_ec2(lane).describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert [i for r in reservations for i in r["Instances"]] == []
    assert (
        system.mgn_of_server(server_id).metrics().calls_by_operation.get("FinalizeCutover", 0) == 0
    )
    assert ("FinalizeCutover", "SUCCEEDED") not in [(s["step"], s["status"]) for s in outcome.steps]
    _settled_thread(system, request.migration_id, "rolled back")


def _wait_parked(migration_id: str) -> None:
    _wait_for(
        "the park",
        lambda: (
            (record := wiring.store().get(migration_id)) is not None and record.status == "PARKED"
        ),
        timeout=120,
    )


def _parked_reply(system: EmbeddedSystem, migration_id: str) -> tuple[Thread, Any]:
    """The parked migration's thread and its reply with Retry and Roll back."""
    thread = _settled_thread(system, migration_id, "parked")

    def parked_reply() -> Any:
        assert system.slack is not None
        replies = system.slack.thread(thread.channel, thread.ts).replies
        return next((r for r in replies if "Parked" in r.text), None)

    parked = _wait_for("the parked reply", parked_reply)
    assert PARK_RETRY_ACTION in json.dumps(parked.blocks)
    return thread, parked


def test_a_parked_migration_rolled_back_from_its_thread_says_who_and_why(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    requests = example_requests(approval_scope="vm", on_failure="park")[:1]
    servers = system.seed([spec_of(r) for r in requests])
    [request] = requests
    server_id = servers[request.migration_id]
    system.mgn_of_server(server_id).faults.fail_next_launch(server_id, launch_type=LaunchType.TEST)
    driver.send(requests)
    _wait_parked(request.migration_id)
    thread, parked = _parked_reply(system, request.migration_id)

    # WHEN an operator chooses Roll back (and confirms Slack's dialog)
    system.slack.click_button(
        user=BOB, channel=thread.channel, message_ts=parked.ts, action_id=PARK_ROLLBACK_ACTION
    )
    outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]

    # THEN the same execution rolled back, saying who, and the test launch ran once
    assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
    rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
    assert f"ParkRolledBack): rolled back by <@{BOB}> while parked" in rollback["message"]
    assert "StartTestLaunch" in rollback["message"] or "VerifyTestLaunch" in rollback["message"]
    assert system.mgn_of_server(server_id).metrics().calls_by_operation.get("StartTest") == 1
    done = _settled_thread(system, request.migration_id, "rolled back")
    assert any(f"Roll back* by <@{BOB}>" in r.text for r in done.replies)


def test_a_parked_test_launch_failure_retried_from_its_thread_migrates(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # GIVEN a wave that parks failures before the cutover, and a VM whose test launch fails
    requests = example_requests(approval_scope="vm", on_failure="park")[:1]
    servers = system.seed([spec_of(r) for r in requests])
    [request] = requests
    server_id = servers[request.migration_id]
    mgn = system.mgn_of_server(server_id)
    mgn.faults.fail_next_launch(server_id, launch_type=LaunchType.TEST)
    driver.send(requests)

    # WHEN it is parked
    _wait_parked(request.migration_id)
    # THEN nothing is running: the server is ready for test again, no instance alive
    lane = system.lane_of_server[server_id]
    server = wiring.lanes().clients(Lane(*lane)).mgn.source_server(server_id)
    assert server.lifecycle_state == "READY_FOR_TEST"
    alive = system.lane_ec2(lane).describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert [i for r in alive for i in r["Instances"]] == []
    # AND its thread says why, with Retry and Roll back
    thread, parked = _parked_reply(system, request.migration_id)
    assert "StartTestLaunch" in parked.text or "VerifyTestLaunch" in parked.text, parked.text
    assert "LAUNCH_FAILED" in parked.text or "FAILED" in parked.text, parked.text

    # A non-operator's Retry is refused (and audited); nothing moves
    system.slack.click_button(
        user=MALLORY, channel=thread.channel, message_ts=parked.ts, action_id=PARK_RETRY_ACTION
    )
    _wait_for(
        "the refusal",
        lambda: any(
            "not an operator" in m.text
            for m in (system.slack.ephemeral_messages(MALLORY) if system.slack else [])
        ),
    )
    # WHEN an operator chooses Retry
    system.slack.click_button(
        user=BOB, channel=thread.channel, message_ts=parked.ts, action_id=PARK_RETRY_ACTION
    )
    outcome = driver.wait([request.migration_id], timeout=180)[request.migration_id]

    # THEN the test launch ran again, and the migration went on to its cutover
    assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), outcome.cause
    steps = [(s["step"], s["status"]) for s in outcome.steps]
    assert steps.index(("Park", "WAITING")) < steps.index(("Park", "SUCCEEDED"))
    assert steps.index(("Park", "SUCCEEDED")) < steps.index(("VerifyTestLaunch", "SUCCEEDED"))
    assert ("Rollback", "SUCCEEDED") not in steps
    assert mgn.metrics().calls_by_operation.get("StartTest", 0) == 2
    audit = wiring.store().migration_audit_trail(request.migration_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in audit] == [
        (MALLORY, "park-retry", "refused"),
        (BOB, "park-retry", "decided"),
    ]
    # AND the parked message keeps who retried, without its buttons
    done = _settled_thread(system, request.migration_id, "migrated")
    retried = next(r for r in done.replies if r.ts == parked.ts)
    assert f"Retry* by <@{BOB}>" in retried.text
    assert "actions" not in json.dumps(retried.blocks)


def test_an_operator_finalizes_a_held_cutover_now_from_its_thread(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # GIVEN a wave that holds verified cutovers for a day, one VM held
    [request] = _start(system, driver, finalize_after="24h")
    # The thread says until when, and how to go back
    hold = _held_with_its_reply(system, driver, request)
    stored = _threads().get(request.migration_id)
    assert stored is not None
    # A non-operator is refused (and audited), and nothing is finalized
    system.slack.click_button(
        user=MALLORY, channel=stored.channel, message_ts=hold.ts, action_id=FINALIZE_NOW_ACTION
    )
    _wait_for(
        "the refusal",
        lambda: any(
            "not an operator" in m.text
            for m in (system.slack.ephemeral_messages(MALLORY) if system.slack else [])
        ),
    )
    [server_id] = system.lane_of_server
    mgn = system.mgn_of_server(server_id)
    assert mgn.metrics().calls_by_operation.get("FinalizeCutover", 0) == 0

    # WHEN an operator clicks Finalize now (and confirms Slack's dialog)
    system.slack.click_button(
        user=BOB, channel=stored.channel, message_ts=hold.ts, action_id=FINALIZE_NOW_ACTION
    )
    outcome = driver.wait([request.migration_id], approver=None, timeout=120)[request.migration_id]

    # THEN it is finalized long before its day's hold, saying who asked
    assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), outcome.cause
    assert mgn.metrics().calls_by_operation.get("FinalizeCutover") == 1
    asked = next(
        s for s in outcome.steps if (s["step"], s["status"]) == ("FinalizeCutover", "IN_PROGRESS")
    )
    assert f"asked by <@{BOB}>" in asked["message"]
    trail = wiring.store().migration_audit_trail(request.migration_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        (MALLORY, "finalize-now", "refused"),
        (BOB, "finalize-now", "requested"),
    ]
    done = _settled_thread(system, request.migration_id, "migrated")
    answered = next(r for r in done.replies if r.ts == hold.ts)
    assert f"Finalize now* asked by <@{BOB}>" in answered.text
    assert "actions" not in json.dumps(answered.blocks)


def test_an_operator_pauses_and_resumes_a_wave_from_slack_and_its_channel_is_told(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    [request] = _start(system, driver)
    # At its gate, nobody deciding: no event comes to edit the wave's summary on its own
    _wait_at_gate(driver, request.migration_id)
    _settled_thread(system, request.migration_id, "awaiting approval")

    def ask(user: str, text: str, wanted: str) -> Any:
        assert system.slack is not None
        system.slack.slash_command(user=user, channel=WAVE_1_CHANNEL, text=text)
        return _wait_for(
            wanted,
            lambda: (
                system.slack is not None
                and next(
                    (m for m in system.slack.ephemeral_messages(user) if wanted in m.text), None
                )
            ),
        )

    # A non-operator is refused (and audited); an operator is asked to confirm first
    ask(MALLORY, "pause wave-1 freeze", "not an operator of wave-1")
    question = ask(BOB, 'pause wave-1 "DNS change freeze"', "Pause *wave-1*")
    assert wiring.wave_control().state("wave-1") is None  # nothing changed before confirming
    system.slack.click_ephemeral_button(
        user=BOB, message=question, action_id=WAVE_CONTROL_CONFIRM_ACTION
    )
    told = _wait_for(
        "the channel told of the pause",
        lambda: next(
            (
                m
                for m in (system.slack.channel_messages(WAVE_1_CHANNEL) if system.slack else [])
                if "wave-1 paused" in m.text
            ),
            None,
        ),
    )
    assert f"<@{BOB}>: DNS change freeze" in told.text
    # AND the wave's summary says it is paused, by whom and why
    summary = _wait_for(
        "the summary to show the pause",
        lambda: next(
            (
                m
                for m in (system.slack.channel_messages(WAVE_1_CHANNEL) if system.slack else [])
                if m.text.startswith("Wave wave-1, paused")
            ),
            None,
        ),
    )
    assert f"*Paused* by <@{BOB}>" in json.dumps(summary.blocks)
    control = wiring.wave_control().state("wave-1")
    assert control is not None
    assert (control.state, control.by) == ("PAUSED", BOB)
    # AND once approved, its cutover waits for the resume, and its thread shows it paused
    approval_id = wiring.store().pending_approval_id(request.migration_id)
    assert approval_id is not None
    wiring.approvals().decide(approval_id, "APPROVED", user=ALICE)
    paused = _settled_thread(system, request.migration_id, "paused")
    assert "paused" in paused.root.text

    # Resumed the same way, the migration completes
    question = ask(BOB, "resume wave-1", "Resume *wave-1*")
    system.slack.click_ephemeral_button(
        user=BOB, message=question, action_id=WAVE_CONTROL_CONFIRM_ACTION
    )
    outcome = driver.wait([request.migration_id], timeout=180)[request.migration_id]
    assert outcome.status == "SUCCEEDED", outcome.cause
    trail = wiring.store().migration_audit_trail(request.migration_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        (MALLORY, "wave-pause", "refused"),
        (BOB, "wave-pause", "done"),
        (BOB, "wave-resume", "done"),
    ]


def test_a_storm_of_429s_still_delivers_every_final_state(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    system.slack.inject_rate_limits(25, method="chat.update", retry_after=1)
    system.slack.inject_rate_limits(15, method="chat.postMessage", retry_after=1)
    requests = _start(system, driver, count=3)
    outcomes = driver.wait([r.migration_id for r in requests], timeout=180)

    assert {o.status for o in outcomes.values()} == {"SUCCEEDED"}
    for request in requests:
        thread = _settled_thread(system, request.migration_id, "migrated")
        assert "migrated" in thread.root.text
        assert _kind(thread.replies[-1].text) == "finalized"
    limited = system.slack.rate_limited()
    assert limited.get("chat.update", 0) >= 25
    assert limited.get("chat.postMessage", 0) >= 15


def test_no_task_token_reaches_slack_or_the_logs(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.slack is not None
    # Everything logged at the level Lambda runs at: the Powertools JSON lines exactly as
    # Lambda would ship them (with the keys the handlers append), and every other library.
    logged = io.StringIO()
    powertools_handler = observability.logger.registered_handler
    assert isinstance(powertools_handler, logging.StreamHandler)
    previous = powertools_handler.setStream(logged)
    others = logging.StreamHandler(logged)
    logging.getLogger().addHandler(others)
    try:
        [request] = _start(system, driver)
        outcome = driver.wait([request.migration_id])[request.migration_id]
        assert outcome.status == "SUCCEEDED"
        _settled_thread(system, request.migration_id, "migrated")
    finally:
        logging.getLogger().removeHandler(others)
        powertools_handler.setStream(previous)
    approval_id = wiring.store().pending_approval_id(request.migration_id)
    assert approval_id is not None
    item = wiring.store()._table.get_item(Key={"pk": f"APPROVAL#{approval_id}", "sk": "META"})[
        "Item"
    ]
    token = str(item["taskToken"])
    assert len(token) > 20

    seen_by_slack = [r.body for r in system.slack.requests()]
    assert any(approval_id in body for body in seen_by_slack)  # the scan sees the traffic
    assert not [body for body in seen_by_slack if token in body]
    text = logged.getvalue()
    # The handlers' logs were captured (a line every run logs; which others name the
    # migration depends on timing: the embedded runtime's concurrent invocations share one
    # Powertools logger, whose keys one invocation's start clears for the others).
    assert '"message":"request accepted"' in text
    assert token not in text


def test_duplicate_and_out_of_order_events_are_dropped(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    from bot.handlers import slack_notifier
    from tests.support.lambda_context import FakeLambdaContext

    [request] = _start(system, driver)
    outcome = driver.wait([request.migration_id])[request.migration_id]
    assert outcome.status == "SUCCEEDED"
    thread = _settled_thread(system, request.migration_id, "migrated")
    replies_before = len(thread.replies)
    stale = {
        "detail-type": "MigrationStatusUpdated",
        "detail": {
            "migrationId": request.migration_id,
            "wave": "wave-1",
            "appName": "intranet",
            "targetVmName": "intranet-web-01",
            "correlationId": "x",
            "sequence": 3,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "step": "WaitForReplication",
            "status": "SUCCEEDED",
            "message": "replication ready (continuous)",
        },
    }
    event = {
        "Records": [
            _sqs_record("m-1", json.dumps(stale)),
            _sqs_record("m-2", json.dumps(stale)),
        ]
    }
    result = slack_notifier.handler(event, FakeLambdaContext())

    assert result == {"batchItemFailures": []}
    assert system.slack is not None
    after = system.slack.thread(thread.channel, thread.ts)
    assert len(after.replies) == replies_before
    assert "migrated" in after.root.text


def _first_status_event(migration_id: str) -> str:
    """An EventBridge-to-SQS body: the migration's first status event (its VM ``<id>-vm``)."""
    return _status_event(migration_id, 1, "ValidateInput", "STARTED", "checking prerequisites")


def _status_event(migration_id: str, sequence: int, step: str, status: str, message: str) -> str:
    """An EventBridge-to-SQS body: a status event of the migration (its VM ``<id>-vm``)."""
    return json.dumps(
        {
            "detail-type": "MigrationStatusUpdated",
            "detail": {
                "migrationId": migration_id,
                "wave": "wave-1",
                "appName": "intranet",
                "targetVmName": f"{migration_id}-vm",
                "correlationId": "x",
                "sequence": sequence,
                "timestamp": f"2026-01-01T00:00:{sequence:02d}+00:00",
                "step": step,
                "status": status,
                "message": message,
            },
        }
    )


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": message_id,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "0",
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "0",
            "MessageGroupId": "status-events",
            "SequenceNumber": "1",
            "MessageDeduplicationId": message_id,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
        "awsRegion": "us-east-1",
    }


def test_the_slack_app_answers_as_a_lambda_behind_a_function_url(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    """The Lambda path: a function URL event through SlackRequestHandler; the ack returns at
    once and the lazy listener runs in a second, asynchronous invocation of the function."""
    assert system.slack is not None
    [request] = _start(system, driver)
    driver.wait([request.migration_id])
    response_url = system.slack.workspace.issue_response_url(
        channel=WAVE_1_CHANNEL, user=BOB, message_ts=None, thread_ts=None
    )
    body = urlencode(
        {
            "team_id": system.slack.team_id,
            "channel_id": WAVE_1_CHANNEL,
            "user_id": BOB,
            "command": "/wavepilot",
            "text": f"status {request.migration_id}",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(system.slack.signing_secret).generate_signature(
        timestamp=timestamp, body=body
    )
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }
    event = {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": body,
        "isBase64Encoded": False,
    }

    invoked = system.client("lambda").invoke(
        FunctionName=system.function_arns["slack_app"], Payload=json.dumps(event)
    )

    ack = json.loads(invoked["Payload"].read())
    assert ack["statusCode"] == 200
    answer = _wait_for(
        "the lazy listener's answer",
        lambda: (
            system.slack is not None
            and next(
                (m for m in system.slack.ephemeral_messages(BOB) if "COMPLETED" in m.text), None
            )
        ),
    )
    assert "intranet-web-01" in answer.text
    forged = {**event, "headers": {**headers, "x-slack-signature": "v0=" + "0" * 64}}
    refused = system.client("lambda").invoke(
        FunctionName=system.function_arns["slack_app"], Payload=json.dumps(forged)
    )
    assert json.loads(refused["Payload"].read())["statusCode"] == 401
