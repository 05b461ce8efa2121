"""The pipeline end to end on the embedded system: real handlers, real ASL, MGN emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestration import wiring
from orchestration.adapters.lanes import Lane
from orchestration.adapters.mgn import SourceServer
from orchestration.local.driver import MigrationDriver
from orchestration.local.mgn import SOURCE_SERVER_ID_TAG
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.request_identity import vm_revision
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

SEED_REQUEST = Path(__file__).parent / "events" / "seed_quick_start_request.json"
FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


@pytest.fixture
def driver(system: EmbeddedSystem) -> MigrationDriver:
    return MigrationDriver(system)


def _seeded(system: EmbeddedSystem, requests: list[MigrationRequest]) -> dict[str, str]:
    return system.seed([spec_of(r) for r in requests])


def _running_instances(system: EmbeddedSystem, source_server_id: str) -> list[str]:
    """In the server's lane (its wave's target account and Region)."""
    ec2 = system.lane_ec2(system.lane_of_server[source_server_id])
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{SOURCE_SERVER_ID_TAG}", "Values": [source_server_id]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def _events(system: EmbeddedSystem, migration_id: str) -> list[dict[str, Any]]:
    """Status events as recorded in the migration's history (every step reports one)."""
    return wiring.store().history(migration_id)


def test_a_vm_migrates_through_every_state(system: EmbeddedSystem, driver: MigrationDriver) -> None:
    [request] = example_requests()[:1]
    servers = _seeded(system, [request])

    driver.send([request])
    outcome = driver.wait([request.migration_id])[request.migration_id]

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert outcome.record_status == "COMPLETED"
    steps = [(s["step"], s["status"]) for s in outcome.steps]
    # start_migration reports Intake SUCCEEDED ("execution ... started") only while the
    # migration is still at Intake: an execution that reported its first step already is
    # never moved back (a race start_migration loses when Step Functions is quick). The
    # execution it started is on the record either way.
    record = wiring.store().get(request.migration_id)
    assert record is not None
    assert record.execution_arn is not None
    assert record.execution_arn.endswith(f":{request.migration_id}-{request.revision}")
    assert steps[0] in {("Intake", "SUCCEEDED"), ("ValidateInput", "STARTED")}
    for expected in [
        ("ValidateInput", "SUCCEEDED"),
        ("PrepareSource", "SUCCEEDED"),
        ("WaitForReplication", "SUCCEEDED"),
        ("StartTestLaunch", "SUCCEEDED"),
        ("VerifyTestLaunch", "SUCCEEDED"),
        ("AwaitApproval", "WAITING"),
        ("PrepareCutover", "SUCCEEDED"),
        ("StartCutover", "SUCCEEDED"),
        ("VerifyCutover", "SUCCEEDED"),
        ("FinalizeCutover", "SUCCEEDED"),
    ]:
        assert expected in steps
    server_id = servers[request.migration_id]
    server = _server(system, server_id)
    assert (server.lifecycle_state, server.replication_state) == ("CUTOVER", "DISCONNECTED")
    assert _running_instances(system, server_id) == [server.launched_instance_id]
    approval_id = wiring.store().pending_approval_id(request.migration_id)
    assert approval_id is not None
    trail = wiring.store().audit_trail(approval_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        ("U07ALICE001", "approve", "decided")
    ]


@pytest.mark.parametrize(
    "failing",
    [
        "prerequisites",
        "replication stall",
        "test launch",
        "health checks",
        "rejection",
        "cutover launch",
    ],
)
def test_a_failure_at_any_point_rolls_back_and_leaves_nothing_running(
    system: EmbeddedSystem, driver: MigrationDriver, failing: str
) -> None:
    [request] = example_requests()[:1]
    server_id = _seeded(system, [request])[request.migration_id]
    mgn = system.mgn_of_server(server_id)
    assert system.standins is not None
    approver = None
    if failing == "prerequisites":  # the test subnet is deleted after the estate was built
        system.lane_ec2(system.lane_of_server[server_id]).delete_subnet(
            SubnetId=spec_of(request).test_subnet_id
        )
    elif failing == "replication stall":
        mgn.faults.stall_replication(server_id)
    elif failing == "test launch":
        mgn.faults.fail_next_launch(server_id, launch_type=_launch_type("TEST"))
    elif failing == "health checks":
        system.standins.mark_unhealthy(server_id)
    elif failing == "rejection":
        approver = lambda record, approvers: ("REJECTED", "U07ALICE001")  # noqa: E731
    elif failing == "cutover launch":
        mgn.faults.fail_next_launch(server_id, launch_type=_launch_type("CUTOVER"))

    driver.send([request])
    kwargs: dict[str, Any] = {"approver": approver} if approver else {}
    outcome = driver.wait([request.migration_id], **kwargs)[request.migration_id]

    assert outcome.status == "FAILED"
    assert outcome.error == "MigrationRolledBack"
    assert outcome.record_status == "ROLLED_BACK"
    assert ("Rollback", "SUCCEEDED") in [(s["step"], s["status"]) for s in outcome.steps]
    if failing == "rejection":  # the approver's reason reaches the rollback's story
        rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
        assert (
            "rejected by <@U07ALICE001>: rejected by the simulated approver" in rollback["message"]
        )
    assert _running_instances(system, server_id) == []
    server = _server(system, server_id)
    assert server.lifecycle_state in {"NOT_READY", "READY_FOR_TEST", "READY_FOR_CUTOVER"}


def _server(system: EmbeddedSystem, server_id: str) -> SourceServer:
    """The source server as the pipeline sees it, through its lane's role session."""
    lane = system.lane_of_server[server_id]
    return wiring.lanes().clients(Lane(*lane)).mgn.source_server(server_id)


def _launch_type(name: str) -> Any:
    from orchestration.local.mgn import LaunchType

    return LaunchType[name]


def test_a_duplicate_delivery_starts_one_execution(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    [request] = example_requests()[:1]
    _seeded(system, [request])

    driver.send([request, request, request])
    outcome = driver.wait([request.migration_id])[request.migration_id]

    assert outcome.status == "SUCCEEDED"
    assert len(driver.executions()) == 1


def test_a_malformed_message_lands_in_the_dlq_with_its_reason(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    assert system.resources is not None
    driver.send(["{this is not json"])
    sqs = system.client("sqs")

    messages: list[dict[str, Any]] = []
    for _ in range(40):
        messages = sqs.receive_message(
            QueueUrl=system.resources.dead_letter_queue_url,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if messages:
            break
        import time

        time.sleep(0.25)

    [message] = messages
    assert message["Body"] == "{this is not json"
    assert message["MessageAttributes"]["failureReason"]["StringValue"].startswith(
        "the body is not JSON"
    )
    assert driver.executions() == []


def test_mgn_throttling_and_quota_pressure_are_retried_and_the_migration_completes(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    requests = example_requests()[:2]
    servers = _seeded(system, requests)
    mgn = system.mgn_of_server(servers[requests[0].migration_id])  # both in wave-1's lane
    mgn.faults.throttle_next_requests(6)
    mgn.faults.apply_quota_pressure(active_jobs=20)

    driver.send(requests)

    def release_quota_once_refused() -> None:
        # Another tenant's jobs finish only after ours have been refused at least once.
        if mgn.metrics().quota_errors >= 1:
            mgn.faults.apply_quota_pressure(active_jobs=0)

    outcomes = driver.wait(
        [r.migration_id for r in requests],
        timeout=120,
        on_tick=lambda _statuses, _records: release_quota_once_refused(),
    )

    assert {o.status for o in outcomes.values()} == {"SUCCEEDED"}
    metrics = mgn.metrics()
    assert metrics.throttling_errors >= 6
    assert metrics.quota_errors >= 1


def test_an_approval_nobody_answers_times_out_and_rolls_back() -> None:
    timings = replace(FAST, approval_timeout_seconds=2)
    with EmbeddedSystem(SystemOptions(timings=timings)) as system:
        driver = MigrationDriver(system)
        [request] = example_requests()[:1]
        server_id = _seeded(system, [request])[request.migration_id]

        driver.send([request])
        outcome = driver.wait([request.migration_id], approver=None)[request.migration_id]

        assert outcome.status == "FAILED"
        assert outcome.record_status == "ROLLED_BACK"
        approval_id = wiring.store().pending_approval_id(request.migration_id)
        assert approval_id is not None
        approval = wiring.store().approval(approval_id)
        assert approval is not None
        assert approval.status == "EXPIRED"
        assert _running_instances(system, server_id) == []


def test_the_seed_quick_start_message_migrates_a_vm(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    body = SEED_REQUEST.read_text()
    seed = MigrationRequest.model_validate_json(body)
    from orchestration.pipeline.intake import parse_request

    _, revision = parse_request(body)
    system.seed([spec_of(seed.model_copy(update={"revision": revision}))])

    driver.send([body])
    outcome = driver.wait(["mig-12345"])["mig-12345"]

    assert outcome.status == "SUCCEEDED", outcome.cause
    assert json.loads(body)["targetVmName"] == outcome.target_vm_name


def test_a_new_revision_waits_while_the_earlier_execution_runs(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    # GIVEN a VM whose execution is running (nobody approves it)
    [request] = example_requests()[:1]
    _seeded(system, [request])
    driver.send([request])
    first = _when(lambda: wiring.store().get(request.migration_id), lambda r: r.execution_arn)

    # WHEN the manifest changes the VM (a new revision) while that execution runs
    assert request.effective_vm is not None
    changed_vm = request.effective_vm.model_copy(update={"instance_type": "m5.2xlarge"})
    revised = request.model_copy(
        update={"effective_vm": changed_vm, "revision": vm_revision(changed_vm)}
    )
    assert revised.revision != request.revision
    driver.send([revised])

    # THEN the new revision is recorded and waits for the running execution: none started
    waiting = _when(
        lambda: [
            step
            for step in _events(system, request.migration_id)
            if (step["step"], step["status"]) == ("Intake", "WAITING")
        ],
        bool,
    )
    assert f"revision {revised.revision} waits" in waiting[0]["message"]
    assert first.execution_arn is not None
    assert first.execution_arn.rsplit(":", 1)[-1] in waiting[0]["message"]
    assert [e["name"] for e in driver.executions()] == [first.execution_arn.rsplit(":", 1)[-1]]
    record = wiring.store().get(request.migration_id)
    assert record is not None
    assert (record.revision, record.last_execution_arn) == (revised.revision, first.execution_arn)


def _when(read: Callable[[], Any], ready: Callable[[Any], Any], timeout: float = 60) -> Any:
    """``read()`` once ``ready`` says it is (real time: the system runs on the wall clock)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value is not None and ready(value):
            return value
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {value!r}"
        time.sleep(0.2)


# --- dependsOn: reporting's cutover goes after intranet's --------------------------------------


def _reporting_after_intranet(
    system: EmbeddedSystem, intranet_decision: str
) -> tuple[MigrationRequest, MigrationRequest, Callable[..., tuple[str, str] | None]]:
    """intranet-db-01 and rpt-ssrs-01 (reporting dependsOn intranet). The approver decides
    reporting at once and intranet only once reporting is at its cutover, so that reporting
    is the one that has to wait."""
    requests = example_requests(approval_scope="vm", depends_on={"reporting": ["intranet"]})
    by_name = {r.target_vm_name: r for r in requests}
    db, report = by_name["intranet-db-01"], by_name["rpt-ssrs-01"]
    _seeded(system, [db, report])

    def approver(record: Any, approvers: tuple[str, ...]) -> tuple[str, str] | None:
        if record.migration_id == report.migration_id:
            return "APPROVED", "U07ALICE001"
        reporting = wiring.store().get(report.migration_id)
        at_cutover = reporting is not None and (
            reporting.step in {"StartCutover", "VerifyCutover", "FinalizeCutover", "Rollback"}
        )
        return (intranet_decision, "U07ALICE001") if at_cutover else None

    return db, report, approver


def test_a_cutover_waits_for_the_application_it_depends_on(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    db, report, approver = _reporting_after_intranet(system, "APPROVED")

    driver.send([db, report])
    outcomes = driver.wait([db.migration_id, report.migration_id], approver=approver)

    assert [outcomes[m].record_status for m in (db.migration_id, report.migration_id)] == [
        "COMPLETED",
        "COMPLETED",
    ], [outcomes[m].cause for m in outcomes]
    reporting = outcomes[report.migration_id].steps
    waiting = [s for s in reporting if (s["step"], s["status"]) == ("StartCutover", "WAITING")]
    assert [s["message"] for s in waiting] == [
        "the cutover waits for intranet to cut over first (dependsOn): intranet: intranet-db-01"
    ]
    db_verified = next(
        s["at"]
        for s in outcomes[db.migration_id].steps
        if (s["step"], s["status"]) == ("VerifyCutover", "SUCCEEDED")
    )
    reporting_started = next(
        s["at"] for s in reporting if (s["step"], s["status"]) == ("StartCutover", "SUCCEEDED")
    )
    assert reporting_started >= db_verified


def test_a_cutover_whose_dependency_rolled_back_rolls_back_too(
    system: EmbeddedSystem, driver: MigrationDriver
) -> None:
    db, report, approver = _reporting_after_intranet(system, "REJECTED")

    driver.send([db, report])
    outcomes = driver.wait([db.migration_id, report.migration_id], approver=approver)

    assert outcomes[db.migration_id].record_status == "ROLLED_BACK"
    reporting = outcomes[report.migration_id]
    assert (reporting.status, reporting.record_status) == ("FAILED", "ROLLED_BACK")
    assert ("StartCutover", "SUCCEEDED") not in [(s["step"], s["status"]) for s in reporting.steps]
    rollback = next(s for s in reporting.steps if s["step"] == "Rollback")
    assert "but intranet-db-01 (intranet, ROLLED_BACK) did not cut over" in rollback["message"]
