"""``ingress_handler`` against emulated SQS, DynamoDB and EventBridge (moto, in-process)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestration import wiring
from orchestration.adapters import aws
from orchestration.adapters.state_store import MigrationStore
from orchestration.gitops.publish import message_body
from orchestration.gitops.requests import request_for
from orchestration.handlers import ingress_handler, start_migration
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from tests.conftest import NOW, REPO_ROOT
from tests.support.aws_fixtures import EmulatedAws, emulated_aws, sqs_event
from tests.support.lambda_context import FakeLambdaContext

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest

SEED_REQUEST = Path(__file__).parent / "events" / "seed_quick_start_request.json"


@pytest.fixture(autouse=True)
def _fresh_handler_dependencies() -> None:
    wiring.reset()


def _published_requests(count: int) -> list[MigrationRequest]:
    path = REPO_ROOT / "manifests" / "waves" / "wave-2.yaml"
    result = validate_files([ManifestFile(str(path), path.read_text())], now=NOW)
    return [request_for(vm, commit="a" * 40, author="Ann") for vm in result.vms[:count]]


def _invoke(env: EmulatedAws, *bodies: str) -> dict[str, Any]:
    event = sqs_event(*bodies, queue_arn=env.resources.request_queue_arn)
    response = ingress_handler.handler(event, FakeLambdaContext(function_name="ingress_handler"))
    return {"response": response, "ids": [r["messageId"] for r in event["Records"]]}


def _store() -> MigrationStore:
    from orchestration.settings import settings

    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


def test_a_published_request_is_recorded_and_announced(emulated_aws: EmulatedAws) -> None:
    [request] = _published_requests(1)

    result = _invoke(emulated_aws, message_body(request))

    assert result["response"] == {"batchItemFailures": []}
    record = _store().get(request.migration_id)
    assert record is not None
    assert (record.revision, record.status, record.wave) == (
        request.revision,
        "REQUESTED",
        "wave-2",
    )
    [event] = emulated_aws.captured()
    assert event["detail-type"] == "MigrationRequested"
    assert event["source"] == "wavepilot.migrations"
    detail = event["detail"]
    assert detail["migrationId"] == request.migration_id
    assert detail["revision"] == request.revision
    assert detail["sequence"] == 1
    assert detail["correlationId"] == f"{request.migration_id}/{request.revision}"
    assert detail["request"]["targetVmName"] == request.target_vm_name


def test_a_repeat_is_announced_again_until_its_migration_starts_then_dropped(
    emulated_aws: EmulatedAws,
) -> None:
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))

    # WHEN the same migration and revision comes again (another message ID) before anything
    # started it: its first announcement may have been lost, so it is announced again
    first = emulated_aws.captured()
    again = _invoke(emulated_aws, message_body(request))
    assert again["response"] == {"batchItemFailures": []}
    assert [e["detail"]["sequence"] for e in first + emulated_aws.captured()] == [1, 2]

    # WHEN it comes twice more once its execution has reported its first step
    store = _store()
    assert store.advance(request.migration_id, step="ValidateInput", status="STARTED", now=NOW)
    republished = _invoke(emulated_aws, message_body(request), message_body(request))

    # THEN both are dropped: nothing announced, nothing retried, the record unchanged
    assert republished["response"] == {"batchItemFailures": []}
    assert emulated_aws.captured() == []
    record = store.get(request.migration_id)
    assert record is not None
    assert (record.step, record.revision) == ("ValidateInput", request.revision)


def test_a_new_revision_of_a_known_migration_is_recorded_and_announced(
    emulated_aws: EmulatedAws,
) -> None:
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    vm = request.effective_vm
    assert vm is not None
    resized = vm.model_copy(update={"instance_type": "m6i.2xlarge"})
    from orchestration.request_identity import vm_revision

    revised = request.model_copy(
        update={
            "effective_vm": resized,
            "instance_type": "m6i.2xlarge",
            "revision": vm_revision(resized),
        }
    )

    _invoke(emulated_aws, message_body(revised))

    events = emulated_aws.captured()
    assert [e["detail"]["revision"] for e in events] == [request.revision, revised.revision]
    assert [e["detail"]["sequence"] for e in events] == [1, 2]
    record = _store().get(request.migration_id)
    assert record is not None
    assert record.revision == revised.revision


def test_the_seed_quick_start_message_is_accepted_as_it_is(emulated_aws: EmulatedAws) -> None:
    body = SEED_REQUEST.read_text()

    result = _invoke(emulated_aws, body)
    # Sent twice by hand before anything started it: one migration, one revision, announced
    # again (Step Functions starts one execution of that name)
    _invoke(emulated_aws, body)

    assert result["response"] == {"batchItemFailures": []}
    events = emulated_aws.captured()
    assert [e["detail"]["sequence"] for e in events] == [1, 2]
    assert {e["detail"]["migrationId"] for e in events} == {"mig-12345"}
    assert len({e["detail"]["revision"] for e in events}) == 1
    assert len(events[0]["detail"]["revision"]) == 16
    assert emulated_aws.dead_letters() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "the body is not JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "the body is JSON but not an object (found list)"),
        (
            json.dumps({"migrationId": "mig-1", "appName": "a"}),
            "not a valid migration request: environment: Field required",
        ),
        (
            json.dumps({**json.loads(SEED_REQUEST.read_text()), "securityGroupIds": []}),
            "securityGroupIds: List should have at least 1 item",
        ),
    ],
)
def test_a_message_that_can_never_succeed_goes_to_the_dlq_at_once_with_its_reason(
    emulated_aws: EmulatedAws, body: str, reason: str
) -> None:
    result = _invoke(emulated_aws, body)

    # Not retried: the batch reports no failure, so SQS deletes it from the request queue.
    assert result["response"] == {"batchItemFailures": []}
    [dead] = emulated_aws.dead_letters()
    assert dead["Body"] == body
    attributes = dead["MessageAttributes"]
    assert reason in attributes["failureReason"]["StringValue"]
    assert attributes["sourceMessageId"]["StringValue"] == result["ids"][0]
    rejection = _store().rejection(result["ids"][0])
    assert rejection is not None
    assert reason in rejection["reason"]
    assert emulated_aws.captured() == []


def test_a_cancel_that_names_no_commit_starts_nothing_and_is_kept_with_its_reason(
    emulated_aws: EmulatedAws,
) -> None:
    # A cancel stops a migration on the authority of the merge that removed the VM: a
    # hand-written one (no provenance) has none, and must never start the migration either
    [request] = _published_requests(1)
    body = json.loads(message_body(request))
    body["action"] = "cancel"
    del body["provenance"]

    _invoke(emulated_aws, json.dumps(body))

    [dead] = emulated_aws.dead_letters()
    reason = dead["MessageAttributes"]["failureReason"]["StringValue"]
    assert "a cancel request names the commit that removed the VM (provenance)" in reason
    assert f"/wavepilot rollback {request.migration_id}" in reason
    assert _store().get(request.migration_id) is None
    assert emulated_aws.captured() == []


def test_a_cancel_of_an_unknown_migration_is_recorded_once_and_starts_nothing(
    emulated_aws: EmulatedAws,
) -> None:
    [request] = _published_requests(1)
    cancel = request.model_copy(update={"action": "cancel"})

    first = _invoke(emulated_aws, message_body(cancel))
    _invoke(emulated_aws, message_body(cancel))  # redelivered: acted on once

    assert first["response"] == {"batchItemFailures": []}
    assert emulated_aws.dead_letters() == []
    assert emulated_aws.captured() == []
    assert _store().get(request.migration_id) is None
    [audit] = _store().migration_audit_trail(request.migration_id)
    assert (audit["actor"], audit["action"], audit["outcome"]) == (
        "Ann",
        "cancel-removed",
        "unknown",
    )
    assert f"removed from the manifests in {'a' * 12}" in audit["detail"]


def test_a_cancel_is_not_taken_for_a_repeat_of_the_migrate_request_it_follows(
    emulated_aws: EmulatedAws,
) -> None:
    # The cancel names the revision the VM had when removed: the migrate request's own
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    emulated_aws.captured()
    record = _store().get(request.migration_id)
    assert record is not None
    # (the migration moved on to another revision meanwhile: the cancel stops nothing)
    _store().record_request(request, "f" * 16, f"{request.migration_id}/{'f' * 16}", NOW)
    assert request.provenance is not None

    _invoke(emulated_aws, message_body(request.model_copy(update={"action": "cancel"})))

    [event] = emulated_aws.captured()
    assert event["detail-type"] == "MigrationStatusUpdated"
    assert event["detail"]["data"] == {
        "removedFromManifests": f"removed from the manifests in {'a' * 12} "
        f"({request.provenance.manifest_path}) by Ann"
    }
    assert "it is not stopped" in event["detail"]["message"]
    [audit] = _store().migration_audit_trail(request.migration_id)
    assert audit["outcome"] == "other-revision"


def test_a_request_altered_after_publishing_is_rejected(emulated_aws: EmulatedAws) -> None:
    [request] = _published_requests(1)
    body = json.loads(message_body(request))
    body["spec"]["instanceType"] = "p5.48xlarge"  # the revision no longer matches the spec

    _invoke(emulated_aws, json.dumps(body))

    [dead] = emulated_aws.dead_letters()
    assert (
        "does not match the spec it carries"
        in dead["MessageAttributes"]["failureReason"]["StringValue"]
    )


def test_a_transient_failure_fails_only_its_record_and_is_retried(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _published_requests(2)
    emulated_aws.events.delete_event_bus(Name=emulated_aws.resources.event_bus_name)
    broken = _invoke(emulated_aws, message_body(first), "{bad", message_body(second))

    # Both good records failed to announce (the bus is gone): both are reported for retry;
    # the malformed one is dead-lettered, not retried.
    failed = {f["itemIdentifier"] for f in broken["response"]["batchItemFailures"]}
    assert failed == {broken["ids"][0], broken["ids"][2]}
    assert len(emulated_aws.dead_letters()) == 1

    # The bus comes back; SQS redelivers the two: both are announced (recorded, not started:
    # a repeat is announced again).
    emulated_aws.events.create_event_bus(Name=emulated_aws.resources.event_bus_name)
    emulated_aws.events.put_rule(
        Name="capture-all",
        EventBusName=emulated_aws.resources.event_bus_name,
        EventPattern=json.dumps({"source": ["wavepilot.migrations"]}),
    )
    arn = emulated_aws.sqs.get_queue_attributes(
        QueueUrl=emulated_aws.captured_events_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    emulated_aws.events.put_targets(
        Rule="capture-all",
        EventBusName=emulated_aws.resources.event_bus_name,
        Targets=[{"Id": "capture", "Arn": arn}],
    )
    retried = _invoke(emulated_aws, message_body(first), message_body(second))

    assert retried["response"] == {"batchItemFailures": []}
    assert {e["detail"]["migrationId"] for e in emulated_aws.captured()} == {
        first.migration_id,
        second.migration_id,
    }


def test_the_ingress_never_moves_a_migration_back_to_intake(emulated_aws: EmulatedAws) -> None:
    """start_migration reports "execution started" after StartExecution returns; by then the
    execution may have reported ValidateInput: the record must stay there (a rollback names the
    step it failed after from it)."""
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    store = _store()
    store.advance(request.migration_id, step="ValidateInput", status="STARTED", now=NOW)

    moved = store.advance(
        request.migration_id, step="Intake", status="SUCCEEDED", now=NOW, only_while_at="Intake"
    )

    assert moved is None
    record = store.get(request.migration_id)
    assert record is not None
    assert record.step == "ValidateInput"
    # Still at Intake: the same call moves it (and allocates the event's sequence).
    [other] = _published_requests(2)[1:]
    _invoke(emulated_aws, message_body(other))
    assert store.advance(
        other.migration_id, step="Intake", status="SUCCEEDED", now=NOW, only_while_at="Intake"
    )


def test_a_cancel_before_the_migration_started_ends_it(emulated_aws: EmulatedAws) -> None:
    # GIVEN a migration recorded, its execution not started yet
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    [requested] = emulated_aws.captured()

    # WHEN its VM's cancel arrives
    result = _invoke(emulated_aws, message_body(request.model_copy(update={"action": "cancel"})))

    # THEN it is ended (start_migration never starts a CANCELLED revision) and the thread told
    # (moto has no MGN: what could not be done in MGN's console is said, not retried forever)
    assert result["response"] == {"batchItemFailures": []}
    record = _store().get(request.migration_id)
    assert record is not None
    assert (record.status, record.step) == ("CANCELLED", "Intake")
    assert record.removed_from_manifests is not None
    message = record.history[-1]["message"]
    assert "it never started: nothing to stop, and it never starts" in message
    assert "in MGN's console" in message
    [event] = emulated_aws.captured()
    assert (event["detail"]["step"], event["detail"]["status"]) == ("Intake", "SKIPPED")
    assert event["detail"]["data"] == {"removedFromManifests": record.removed_from_manifests}
    [audit] = _store().migration_audit_trail(request.migration_id)
    assert audit["outcome"] == "not-started"
    # AND the MigrationRequested event, delivered late, starts nothing
    delivered = {"account": "123456789012", **requested}  # (moto's delivery leaves it out)
    started = start_migration.handler(delivered, FakeLambdaContext(function_name="start_migration"))
    assert started == {"started": False, "reason": "cancelled"}


def test_a_start_whose_record_was_lost_in_a_crash_is_recorded_when_redelivered(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a state machine whose executions wait (only their start matters here)
    machine = _waiting_machine(monkeypatch)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    # AND an execution started by an invocation that died before it recorded it
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    [requested] = emulated_aws.captured()
    delivered = {"account": "123456789012", **requested}  # (moto's delivery leaves it out)

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("the runtime died here")

    with monkeypatch.context() as patched:
        # (the write that reports the start names the execution: it never happens)
        patched.setattr(MigrationStore, "advance", crash)
        with pytest.raises(ConnectionError):
            start_migration.handler(delivered, FakeLambdaContext(function_name="start_migration"))
    record = _store().get(request.migration_id)
    assert record is not None
    assert not record.execution_arn

    # WHEN the event is delivered again
    again = start_migration.handler(delivered, FakeLambdaContext(function_name="start_migration"))

    # THEN nothing starts twice (StartExecution of a running execution's name, with the same
    # input, answers that execution) and the record names it, RUNNING: the migration's status
    # is set where its execution starts (ValidateInput leaves it alone)
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert again == {"started": True, "executionArn": execution["executionArn"]}
    record = _store().get(request.migration_id)
    assert record is not None
    assert record.execution_arn == execution["executionArn"]
    assert record.status == "RUNNING"


def _waiting_machine(monkeypatch: pytest.MonkeyPatch) -> str:
    """A state machine whose executions wait (only their start matters)."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="wait",
        definition=json.dumps(
            {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", machine)
    wiring.reset()
    return str(machine)


def _requested_on_a_waiting_machine(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> tuple[MigrationRequest, dict[str, Any]]:
    """A request accepted by the ingress, and its MigrationRequested event as EventBridge
    delivered it, with start_migration starting executions of a machine that waits."""
    _waiting_machine(monkeypatch)
    [request] = _published_requests(1)
    _invoke(emulated_aws, message_body(request))
    [requested] = emulated_aws.captured()
    return request, requested


def test_a_start_is_reported_and_recorded_in_one_write(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, requested = _requested_on_a_waiting_machine(emulated_aws, monkeypatch)
    writes: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        writes[model.name] += 1

    client = _store()._table.meta.client
    client.meta.events.register("before-call.dynamodb", count)
    try:
        started = start_migration.handler(
            {"account": "123456789012", **requested},
            FakeLambdaContext(function_name="start_migration"),
        )
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)

    # THEN one read of the record and one write: the execution named, RUNNING, Intake reported
    assert started["started"] is True
    assert writes == {"GetItem": 1, "UpdateItem": 1}
    record = _store().get(request.migration_id)
    assert record is not None
    assert (record.execution_arn, record.status) == (started["executionArn"], "RUNNING")
    [reported] = [e for e in emulated_aws.captured() if e["detail"].get("step") == "Intake"]
    assert reported["detail"]["status"] == "SUCCEEDED"
    assert reported["detail"]["data"]["executionArn"] == started["executionArn"]


def test_a_start_reported_after_the_executions_first_step_still_names_the_execution(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, requested = _requested_on_a_waiting_machine(emulated_aws, monkeypatch)
    # GIVEN the execution reported its first step before its start was recorded
    _store().advance(
        request.migration_id,
        step="ValidateInput",
        status="STARTED",
        now=NOW,
        message="checking prerequisites",
    )

    started = start_migration.handler(
        {"account": "123456789012", **requested},
        FakeLambdaContext(function_name="start_migration"),
    )

    # THEN the record names the execution, RUNNING, still at the execution's step, and no
    # Intake report moved it back
    record = _store().get(request.migration_id)
    assert record is not None
    assert (record.execution_arn, record.status) == (started["executionArn"], "RUNNING")
    assert record.step == "ValidateInput"
    assert [e for e in emulated_aws.captured() if e["detail"].get("step") == "Intake"] == []
