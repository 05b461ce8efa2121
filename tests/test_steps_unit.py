"""MigrationSteps' decisions, over in-memory fakes of MGN, EC2, the prober and the reporter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestration.adapters.ec2 import Subnet
from orchestration.adapters.mgn import MgnConflictError, MgnThrottledError
from orchestration.adapters.state_store import MigrationRecord
from orchestration.events import (
    MigrationCompleted,
    MigrationFailed,
    RollbackCompleted,
    RollbackStarted,
)
from orchestration.pipeline.errors import (
    CutoverWindowClosedError,
    DependencyFailedError,
    HealthCheckFailedError,
    LaunchFailedError,
    LaunchJobRunningError,
    PrerequisiteError,
    ReplicationStalledError,
    RollbackRefusedError,
)
from orchestration.pipeline.spec import MigrationSpec
from orchestration.pipeline.steps import MigrationSteps
from tests.support.fakes import (
    FakeEc2,
    FakeLanes,
    FakeMgn,
    FakeProbe,
    FakeReporter,
    FakeStore,
    FixedClock,
    job,
    migration_record,
    running_instance,
    source_server,
)

SERVER = "s-0123456789abcdef0"
CONFIG = {
    "pollInitialSeconds": 5,
    "pollMaxSeconds": 60,
    "pollBackoff": 2,
    "replicationTimeoutSeconds": 3600,
    "launchTimeoutSeconds": 600,
}


@dataclass
class Pipeline:
    steps: MigrationSteps
    mgn: FakeMgn
    ec2: FakeEc2
    probe: FakeProbe
    reporter: FakeReporter
    clock: FixedClock
    lanes: FakeLanes

    def state(self, **spec_changes: Any) -> dict[str, Any]:
        """The execution's state after ValidateInput, for a spec with two health checks."""
        record = migration_record()
        spec = MigrationSpec.from_request(
            record.request, record.revision, record.correlation_id, default_approvers=["U1"]
        )
        spec = spec.model_validate(
            {
                **spec.model_dump(by_alias=False),
                "health_checks": [{"type": "tcp", "port": 22}, {"type": "http", "port": 8080}],
                **spec_changes,
            }
        )
        return {
            "spec": spec.model_dump(mode="json", by_alias=True),
            "config": CONFIG,
            "source": {"sourceServerId": SERVER, "launchTemplateId": "lt-0123456789abcdef0"},
        }


@pytest.fixture
def pipeline() -> Pipeline:
    clock = FixedClock()
    mgn, ec2, probe = FakeMgn(source_server(SERVER)), FakeEc2(), FakeProbe()
    reporter = FakeReporter(clock)
    lanes = FakeLanes(mgn, ec2)
    steps = MigrationSteps(lanes=lanes, prober=probe, reporter=reporter, clock=clock)
    return Pipeline(steps, mgn, ec2, probe, reporter, clock, lanes)


# --- launches --------------------------------------------------------------------------------


def test_the_test_launch_starts_one_mgn_job_and_says_so(pipeline: Pipeline) -> None:
    result = pipeline.steps.trigger(pipeline.state(), "test")

    ((kind, ids, tags),) = pipeline.mgn.launched
    assert (kind, ids) == ("START_TEST", [SERVER])
    assert tags["wavepilot:migration-id"] == "mig-12345"
    assert result == {"started": True, "done": True, "jobId": "mgnjob-0001"}
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("StartTestLaunch", "SUCCEEDED")
    ]


def test_a_retried_launch_adopts_the_job_it_already_started(pipeline: Pipeline) -> None:
    # GIVEN the Lambda started the test launch, then failed before returning (and is retried)
    pipeline.mgn.add_job(job("mgnjob-earlier", initiated_by="START_TEST"))

    result = pipeline.steps.trigger(pipeline.state(), "test")

    assert result == {"started": True, "done": True, "jobId": "mgnjob-earlier"}
    assert pipeline.mgn.launched == []  # no second job on the server
    assert pipeline.reporter.steps == []


def test_a_launch_waits_behind_another_job_on_the_server(pipeline: Pipeline) -> None:
    pipeline.mgn.add_job(job("mgnjob-terminate", initiated_by="TERMINATE"))

    result = pipeline.steps.trigger(pipeline.state(), "test")

    assert (result["started"], result["done"], result["blockedBy"]) == (
        False,
        False,
        "mgnjob-terminate",
    )
    assert result["waitSeconds"] == CONFIG["pollInitialSeconds"]
    assert pipeline.mgn.launched == []


def test_a_closed_cutover_window_rolls_the_migration_back(pipeline: Pipeline) -> None:
    now = pipeline.clock.now()
    state = pipeline.state(window_start=now - timedelta(hours=3), window_end=now)

    with pytest.raises(CutoverWindowClosedError, match=r"closed at .*rolled back"):
        pipeline.steps.trigger(state, "cutover")

    assert pipeline.mgn.launched == []


def test_an_approved_cutover_waits_for_its_window_and_says_so_once(pipeline: Pipeline) -> None:
    now = pipeline.clock.now()
    state = pipeline.state(window_start=now + timedelta(seconds=30), window_end=now + timedelta(1))

    first = pipeline.steps.trigger(state, "cutover")
    second = pipeline.steps.trigger({**state, "cutover": first}, "cutover")

    assert (first["started"], first["waitSeconds"]) == (False, 31)
    assert second["started"] is False
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [("StartCutover", "WAITING")]
    assert pipeline.mgn.launched == []

    pipeline.clock.advance(timedelta(seconds=31))
    opened = pipeline.steps.trigger({**state, "cutover": second}, "cutover")
    assert opened["started"] is True
    assert [kind for kind, _, _ in pipeline.mgn.launched] == ["START_CUTOVER"]


def test_a_window_days_away_is_waited_for_in_one_wait(pipeline: Pipeline) -> None:
    now = pipeline.clock.now()
    opens = now + timedelta(days=40)
    state = pipeline.state(window_start=opens, window_end=opens + timedelta(hours=8))

    waiting = pipeline.steps.trigger(state, "cutover")

    assert waiting["started"] is False
    assert waiting["waitSeconds"] == 40 * 24 * 3600 + 1  # not the poll cap: no wake-ups


# --- verification and health checks ---------------------------------------------------------


def _launched(pipeline: Pipeline) -> dict[str, Any]:
    """State after a test launch whose instance is up and running."""
    pipeline.mgn.add_job(
        job(
            "mgnjob-test",
            status="COMPLETED",
            launch_status="LAUNCHED",
            instance_id="i-0123456789abcdef0",
        )
    )
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    return {**pipeline.state(), "test": {"jobId": "mgnjob-test"}}


def test_a_healthy_test_instance_is_verified_with_what_the_approver_sees(
    pipeline: Pipeline,
) -> None:
    result = pipeline.steps.verify_launch(_launched(pipeline), "test")

    assert result["done"] is True
    assert (result["instanceId"], result["privateIp"]) == ("i-0123456789abcdef0", "10.0.1.15")
    assert [(c["target"], c["passed"]) for c in result["healthChecks"]] == [
        ("10.0.1.15:22", True),
        ("10.0.1.15:8080", True),
    ]
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("VerifyTestLaunch", "SUCCEEDED")
    ]


def test_a_failing_health_check_is_polled_until_the_launch_timeout(pipeline: Pipeline) -> None:
    pipeline.probe.failing = {8080}
    state = _launched(pipeline)

    polled = pipeline.steps.verify_launch(state, "test")

    assert (polled["done"], polled["stage"]) == (False, "health checks")
    assert pipeline.reporter.steps == []

    # GIVEN the check still fails once the launch timeout has passed since the first poll
    late = {**state, "testCheck": {**polled, "startedAt": 1.0}}
    with pytest.raises(HealthCheckFailedError, match="http 8080: ConnectionRefusedError"):
        pipeline.steps.verify_launch(late, "test")


# --- ValidateInput ---------------------------------------------------------------------------


def test_missing_prerequisites_are_reported_together(pipeline: Pipeline) -> None:
    # GIVEN the subnet exists but the security group is in another VPC, and no source server
    pipeline.ec2.subnets["subnet-12345"] = Subnet("subnet-12345", "vpc-aaaa", "us-east-1a")
    pipeline.ec2.groups["sg-12345"] = "vpc-bbbb"
    pipeline.mgn.servers.clear()

    with pytest.raises(PrerequisiteError) as raised:
        pipeline.steps.validate_input(pipeline.state())

    message = str(raised.value)
    assert (
        "security group sg-12345 is in vpc-bbbb but subnet subnet-12345 is in vpc-aaaa" in message
    )
    assert f"source server {SERVER} does not exist in MGN" in message


def _network_in_place(pipeline: Pipeline, state: dict[str, Any]) -> None:
    """The manifest's subnets and security groups, all in one VPC."""
    spec = MigrationSpec.model_validate(state["spec"])
    for subnet in {spec.subnet_id, spec.test_subnet_id}:
        pipeline.ec2.subnets[subnet] = Subnet(subnet, "vpc-aaaa", "us-east-1a")
    for group in {*spec.security_group_ids, *spec.test_security_group_ids}:
        pipeline.ec2.groups[group] = "vpc-aaaa"


def test_a_validated_migrations_test_launch_is_prepared_in_the_same_invocation(
    pipeline: Pipeline,
) -> None:
    state = pipeline.state()
    _network_in_place(pipeline, state)

    source = pipeline.steps.validate_and_prepare(state)

    assert source["sourceServerId"] == SERVER
    assert source["preparedForTest"] is True
    assert source["prepared"]["launchTemplateVersion"] == 1
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("ValidateInput", "STARTED"),
        ("ValidateInput", "SUCCEEDED"),
        ("PrepareSource", "SUCCEEDED"),
    ]


def test_the_launch_template_is_known_from_mgns_answer_to_the_launch_settings(
    pipeline: Pipeline,
) -> None:
    # GIVEN a migration that has just started (nothing validated yet)
    state = pipeline.state()
    del state["source"]
    _network_in_place(pipeline, state)

    source = pipeline.steps.validate_and_prepare(state)

    # THEN validation reads no launch configuration: the test launch's preparation has the
    # template from MGN's answer to the launch settings it applies, and keeps it
    assert "launchTemplateId" not in source
    assert source["prepared"]["launchTemplateId"] == "lt-0123456789abcdef0"
    assert pipeline.mgn.calls["update_launch_configuration"] == 1
    # AND the cutover is prepared on that template, with no look at MGN's settings
    pipeline.mgn.servers[SERVER] = source_server(SERVER, lifecycle_state="TESTING")
    after_test = {**state, "source": source, "prepared": source["prepared"]}
    pipeline.steps.prepare_source(batched(after_test), "cutover")
    assert pipeline.ec2.templates_set == ["lt-0123456789abcdef0"] * 2
    assert pipeline.mgn.calls["update_launch_configuration"] == 1


def test_a_cutover_of_an_execution_validated_before_is_prepared_on_the_template_it_read(
    pipeline: Pipeline,
) -> None:
    # GIVEN an execution whose validation kept the template (before the preparation did)
    state = {**pipeline.state(), "prepared": {"launchTemplateVersion": 1}}
    state["source"]["launchTemplateId"] = "lt-0fedcba9876543210"
    pipeline.mgn.servers[SERVER] = source_server(SERVER, lifecycle_state="TESTING")

    pipeline.steps.prepare_source(batched(state), "cutover")

    assert pipeline.ec2.templates_set == ["lt-0fedcba9876543210"]


def test_a_preparation_stopped_in_validation_is_left_to_its_own_step(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = pipeline.state()
    _network_in_place(pipeline, state)

    def throttled(*_args: Any, **_kwargs: Any) -> None:
        raise MgnThrottledError("ThrottlingException: rate exceeded")

    monkeypatch.setattr(pipeline.mgn, "update_launch_configuration", throttled)

    source = pipeline.steps.validate_and_prepare(state)

    # THEN validated; PrepareSource (with its retries) prepares it next
    assert source["sourceServerId"] == SERVER
    assert source["preparedForTest"] is False
    assert "prepared" not in source
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("ValidateInput", "STARTED"),
        ("ValidateInput", "SUCCEEDED"),
    ]


def test_a_lane_whose_role_cannot_be_assumed_fails_first_and_touches_nothing(
    pipeline: Pipeline,
) -> None:
    # GIVEN the target account has no Wavepilot role (or it does not trust this hub)
    role = "arn:aws:iam::999988887777:role/wavepilot-local-target"
    pipeline.lanes.refuse(role)
    state = pipeline.state(target_account_id="999988887777", target_region="eu-west-1")

    # WHEN the migration is validated
    with pytest.raises(PrerequisiteError) as raised:
        pipeline.steps.validate_input(state)

    # THEN the failure names the account, Region and role and what to do; nothing else ran
    message = str(raised.value)
    assert "target account 999988887777 (Region eu-west-1)" in message
    assert role in message
    assert "Apply terraform/modules/target-account in account 999988887777" in message
    assert pipeline.mgn.launched == []
    assert pipeline.ec2.template_versions == 0


def test_a_region_where_mgn_is_not_initialized_says_what_to_run(pipeline: Pipeline) -> None:
    pipeline.mgn.is_initialized = False
    state = pipeline.state(target_account_id="444455556666", target_region="eu-west-1")

    with pytest.raises(PrerequisiteError) as raised:
        pipeline.steps.validate_input(state)

    message = str(raised.value)
    assert "MGN is not initialized in account 444455556666, Region eu-west-1" in message
    assert "`aws mgn initialize-service --region eu-west-1` in account 444455556666" in message


def test_every_step_asks_for_the_migrations_own_lane(pipeline: Pipeline) -> None:
    state = pipeline.state(target_account_id="444455556666", target_region="eu-west-1")
    pipeline.steps.trigger(state, "test")
    assert set(pipeline.lanes.asked) == {("444455556666", "eu-west-1")}


def test_a_rollback_after_an_unusable_lane_has_nothing_to_undo(pipeline: Pipeline) -> None:
    # GIVEN validate_input failed on the lane (no sourceServerId in the state), or an
    # operator's rollback of a migration whose lane cannot be assumed
    pipeline.lanes.refuse("arn:aws:iam::999988887777:role/wavepilot-local-target")
    base = pipeline.state(target_account_id="999988887777", target_region="eu-west-1")
    for error in ("PrerequisiteError", "RollbackRequested"):
        state = {k: v for k, v in base.items() if k != "source"}
        state["error"] = {"Error": error, "Cause": "lane"}

        done = pipeline.steps.rollback(state)

        assert done["done"] is True
        assert done["terminated"] == []
    assert pipeline.mgn.terminated == []
    assert pipeline.mgn.lifecycle_changes == []


# --- Rollback --------------------------------------------------------------------------------


def _failed(pipeline: Pipeline) -> dict[str, Any]:
    return {
        **pipeline.state(),
        "error": {"Error": "HealthCheckFailedError", "Cause": '{"errorMessage": "tcp 22 failed"}'},
    }


def test_a_cutover_is_prepared_only_once_the_servers_shared_test_job_has_completed(
    pipeline: Pipeline,
) -> None:
    # GIVEN the test instance passed and was approved while its batch (a test job of many
    # servers) is still launching others: MGN allows one job per server
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER, lifecycle_state="TESTING", launched_instance_id="i-0123456789abcdef0"
    )
    pipeline.mgn.add_job(job("mgnjob-batch", initiated_by="START_TEST"))
    state = pipeline.state()

    # THEN preparing the cutover waits (retried by the state machine), touching nothing
    with pytest.raises(LaunchJobRunningError, match="mgnjob-batch"):
        pipeline.steps.prepare_source(state, "cutover")
    assert (pipeline.mgn.terminated, pipeline.mgn.lifecycle_changes) == ([], [])

    # AND once the batch completed, the test instance is retired and the server made ready
    pipeline.mgn.add_job(job("mgnjob-batch", status="COMPLETED", launch_status="LAUNCHED"))
    prepared = pipeline.steps.prepare_source(state, "cutover")
    assert pipeline.mgn.terminated == [[SERVER]]
    assert pipeline.mgn.lifecycle_changes == [(SERVER, "READY_FOR_CUTOVER")]
    assert prepared["terminateJobId"]


def batched(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "config": {**state["config"], "launchDesign": "batched"}}


def test_a_batched_cutover_is_prepared_with_one_mgn_call_and_the_test_instance_left_running(
    pipeline: Pipeline,
) -> None:
    # GIVEN an approved test instance (the batched design: the lane's coordinator retires it)
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER, lifecycle_state="TESTING", launched_instance_id="i-0123456789abcdef0"
    )
    pipeline.mgn.add_job(job("mgnjob-batch", status="COMPLETED", launch_status="LAUNCHED"))

    prepared = pipeline.steps.prepare_source(batched(pipeline.state()), "cutover")

    # THEN MGN is asked one thing: the lifecycle change (its answer is the server)
    assert pipeline.mgn.calls == {"change_life_cycle_state": 1}
    assert pipeline.mgn.lifecycle_changes == [(SERVER, "READY_FOR_CUTOVER")]
    assert pipeline.mgn.terminated == []
    assert prepared["terminateJobId"] is None


def test_a_batched_cutover_prepared_while_its_batch_still_runs_waits_for_it(
    pipeline: Pipeline,
) -> None:
    # The safety net: MGN refuses the lifecycle change while the batch's job holds the server
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER, lifecycle_state="TESTING", launched_instance_id="i-0123456789abcdef0"
    )
    pipeline.mgn.add_job(job("mgnjob-batch", initiated_by="START_TEST"))

    with pytest.raises(LaunchJobRunningError, match="mgnjob-batch"):
        pipeline.steps.prepare_source(batched(pipeline.state()), "cutover")
    assert pipeline.mgn.lifecycle_changes == []


def test_a_batched_cutover_prepared_again_finds_the_server_ready_already(
    pipeline: Pipeline,
) -> None:
    # GIVEN a retry of the step after it changed the state (an MGN that refuses the change
    # to the state the server is in already)
    pipeline.mgn.servers[SERVER] = source_server(SERVER, lifecycle_state="READY_FOR_CUTOVER")

    def refuse(source_server_id: str, state: str) -> Any:
        raise MgnConflictError("ConflictException: already", {SERVER: "INVALID_LIFECYCLE_STATE"})

    pipeline.mgn.change_life_cycle_state = refuse  # type: ignore[method-assign]

    prepared = pipeline.steps.prepare_source(batched(pipeline.state()), "cutover")

    assert prepared["launchTemplateVersion"]
    assert pipeline.mgn.calls == {"source_server": 1}


def test_a_batched_cutover_whose_replication_stalled_rolls_back(pipeline: Pipeline) -> None:
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER,
        lifecycle_state="TESTING",
        replication_state="STALLED",
        replication_error="AGENT_NOT_SEEN",
    )
    with pytest.raises(ReplicationStalledError, match="STALLED: AGENT_NOT_SEEN"):
        pipeline.steps.prepare_source(batched(pipeline.state()), "cutover")


def test_a_batched_test_launch_is_prepared_without_looking_at_the_server(
    pipeline: Pipeline,
) -> None:
    # the coordinator watches replication in bulk (REPLICATION_STALLED), not this step
    state = batched(pipeline.state())
    state["source"]["actionsTagged"] = False  # validation saw no Wavepilot actions tag
    prepared = pipeline.steps.prepare_source(state, "test")

    assert prepared["launchTemplateVersion"]
    # only the server's settings are written: no actions in the manifest, none on the server
    assert pipeline.mgn.calls == {"update_launch_configuration": 1}

    # AND an execution that began before validation said so looks at the actions
    pipeline.mgn.calls.clear()
    state["source"].pop("actionsTagged")
    pipeline.steps.prepare_source(state, "test")
    assert pipeline.mgn.calls == {"update_launch_configuration": 1, "source_server_actions": 1}


def test_a_rollback_waits_while_the_coordinator_retires_the_test_instance(
    pipeline: Pipeline,
) -> None:
    # GIVEN a TERMINATE job this execution did not start (its lane's coordinator's) holds
    # the server, which the server's record does not name
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER, lifecycle_state="READY_FOR_CUTOVER", launched_instance_id="i-0123456789abcdef0"
    )
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    pipeline.mgn.active_job_for = lambda server, known=(): None  # type: ignore[method-assign,assignment]
    pipeline.mgn.add_job(job("mgnjob-retire", initiated_by="TERMINATE"))
    state = _failed(pipeline)

    waiting = pipeline.steps.rollback(state)

    assert (waiting["done"], waiting["waitingFor"]) == (False, None)
    assert pipeline.mgn.terminated == []


def test_a_rollback_waits_for_mgns_job_then_terminates_what_was_launched(
    pipeline: Pipeline,
) -> None:
    # GIVEN a test instance is running and MGN's launch job is still finishing
    pipeline.mgn.servers[SERVER] = source_server(
        SERVER, lifecycle_state="TESTING", launched_instance_id="i-0123456789abcdef0"
    )
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    pipeline.mgn.add_job(job("mgnjob-test", initiated_by="START_TEST"))
    state = _failed(pipeline)

    waiting = pipeline.steps.rollback(state)
    assert (waiting["done"], waiting["waitingFor"]) == (False, "mgnjob-test")
    assert pipeline.mgn.terminated == []

    pipeline.mgn.add_job(job("mgnjob-test", status="COMPLETED", launch_status="LAUNCHED"))
    terminating = pipeline.steps.rollback({**state, "rollback": waiting})

    assert terminating["terminated"] == ["i-0123456789abcdef0"]
    assert pipeline.mgn.terminated == [[SERVER]]
    assert pipeline.mgn.lifecycle_changes == [(SERVER, "READY_FOR_TEST")]
    (started,) = pipeline.reporter.of_type(RollbackStarted)  # announced once, not per poll
    assert (started.step, started.reason) == ("HealthCheckFailedError", "tcp 22 failed")


def test_a_rollback_ends_when_nothing_is_left_and_the_migration_fails(pipeline: Pipeline) -> None:
    result = pipeline.steps.rollback(_failed(pipeline))

    assert result == {"done": True, "terminated": [], "sourceServerState": "READY_FOR_TEST"}
    assert [type(e).__name__ for e in pipeline.reporter.events] == [
        "RollbackStarted",
        "RollbackCompleted",
        "MigrationStatusUpdated",
        "MigrationFailed",
    ]
    assert pipeline.reporter.steps[-1].migration_status == "ROLLED_BACK"
    (completed,) = pipeline.reporter.of_type(RollbackCompleted)
    assert completed.source_server_state == "READY_FOR_TEST"
    (failed,) = pipeline.reporter.of_type(MigrationFailed)
    assert failed.cause == "tcp 22 failed"


def test_a_finalized_cutover_is_never_rolled_back_automatically(pipeline: Pipeline) -> None:
    pipeline.mgn.servers[SERVER] = source_server(SERVER, lifecycle_state="CUTOVER")

    with pytest.raises(RollbackRefusedError, match="finalized"):
        pipeline.steps.rollback(_failed(pipeline))

    assert pipeline.mgn.terminated == []


# --- batched launches: the coordinator's outcome ---------------------------------------------


def test_a_batched_launch_is_verified_from_the_coordinators_outcome_without_asking_for_the_job(
    pipeline: Pipeline,
) -> None:
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    outcome = {
        "started": True,
        "jobId": "mgnjob-batch",  # MGN's job of many servers: never looked up here
        "instanceId": "i-0123456789abcdef0",
        "launchStatus": "LAUNCHED",
        "detail": "",
    }

    result = pipeline.steps.verify_launch({**pipeline.state(), "test": outcome}, "test")

    assert result["done"] is True
    assert result["instanceId"] == "i-0123456789abcdef0"


def coordinator_saw(instance_id: str, state: str, system_status: str = "ok") -> dict[str, Any]:
    """A batched launch's outcome with the instance as the coordinator read it in bulk."""
    return {
        "started": True,
        "jobId": "mgnjob-batch",
        "instanceId": instance_id,
        "launchStatus": "LAUNCHED",
        "detail": "",
        "instance": {
            "instanceId": instance_id,
            "state": state,
            "privateIp": "10.0.9.9",
            "instanceType": "t3.large",
            "systemStatus": system_status,
            "instanceStatus": "initializing",
        },
    }


def test_a_batched_launch_seen_up_by_the_coordinator_is_verified_without_asking_ec2(
    pipeline: Pipeline,
) -> None:
    outcome = coordinator_saw("i-0000000000000000a", "running")

    result = pipeline.steps.verify_launch({**pipeline.state(), "test": outcome}, "test")

    assert result["done"] is True
    assert result["instanceId"] == "i-0000000000000000a"
    assert pipeline.ec2.looked_at == []
    assert {address for address, _port in pipeline.probe.probed} == {"10.0.9.9"}


@pytest.mark.parametrize(
    ("state", "system_status"), [("pending", "initializing"), ("running", "impaired")]
)
def test_an_instance_the_coordinator_did_not_see_up_is_looked_at_again(
    pipeline: Pipeline, state: str, system_status: str
) -> None:
    instance_id = "i-0000000000000000b"
    pipeline.ec2.instances[instance_id] = running_instance(instance_id)
    outcome = coordinator_saw(instance_id, state, system_status)

    result = pipeline.steps.verify_launch({**pipeline.state(), "cutover": outcome}, "cutover")

    assert result["done"] is True
    assert pipeline.ec2.looked_at == [instance_id]


def test_a_later_look_at_a_batched_launch_asks_ec2_not_the_coordinators_old_sighting(
    pipeline: Pipeline,
) -> None:
    instance_id = "i-0000000000000000c"
    outcome = coordinator_saw(instance_id, "running")
    since = pipeline.clock.now().timestamp()
    polled = {"done": False, "stage": "health checks", "startedAt": since}

    waiting = pipeline.steps.verify_launch(
        {**pipeline.state(), "test": outcome, "testCheck": polled}, "test"
    )

    assert waiting["done"] is False  # EC2 no longer knows it: booting, looked at again later
    assert pipeline.ec2.looked_at == [instance_id]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("FAILED", LaunchFailedError),
        ("REFUSED", LaunchFailedError),
        ("TERMINATED", LaunchFailedError),
        ("WINDOW_CLOSED", CutoverWindowClosedError),
    ],
)
def test_a_batched_launch_that_did_not_launch_fails_with_the_coordinators_reason(
    pipeline: Pipeline, status: str, error: type[Exception]
) -> None:
    outcome = {"jobId": None, "launchStatus": status, "detail": "the reason it gave"}

    with pytest.raises(error, match="the reason it gave"):
        pipeline.steps.verify_launch({**pipeline.state(), "cutover": outcome}, "cutover")


def test_a_batched_cutovers_preparation_says_whether_its_window_is_open(
    pipeline: Pipeline,
) -> None:
    now = pipeline.clock.now()
    state = pipeline.state(window_start=now + timedelta(seconds=30), window_end=now + timedelta(1))
    batched = {**state, "config": {**state["config"], "launchDesign": "batched"}}

    prepared = pipeline.steps.prepare_source(batched, "cutover")

    assert prepared["window"]["open"] is False
    assert prepared["window"]["waitSeconds"] == 31
    # prepared first, then waiting for the window: the thread shows the wait last
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("PrepareCutover", "SUCCEEDED"),
        ("StartCutover", "WAITING"),
    ]
    opened = pipeline.state(window_start=now - timedelta(seconds=1), window_end=now + timedelta(1))
    opened["config"] = {**opened["config"], "launchDesign": "batched"}
    assert pipeline.steps.prepare_source(opened, "cutover")["window"] == {"open": True}
    closed = pipeline.state(window_start=now - timedelta(hours=3), window_end=now)
    with pytest.raises(CutoverWindowClosedError):
        pipeline.steps.prepare_source(
            {**closed, "config": {**closed["config"], "launchDesign": "batched"}}, "cutover"
        )
    # the per-VM design waits for the window where it starts the cutover, not here
    assert "window" not in pipeline.steps.prepare_source(state, "cutover")


def test_a_batched_cutover_waits_for_its_window_before_it_is_requested(
    pipeline: Pipeline,
) -> None:
    now = pipeline.clock.now()
    state = pipeline.state(window_start=now + timedelta(seconds=30), window_end=now + timedelta(1))

    waiting = pipeline.steps.await_window(state)
    assert (waiting["open"], waiting["waitSeconds"]) == (False, 31)
    pipeline.clock.advance(timedelta(seconds=31))
    assert pipeline.steps.await_window({**state, "window": waiting}) == {"open": True}
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [("StartCutover", "WAITING")]
    assert pipeline.mgn.launched == []
    closed = pipeline.state(window_start=now - timedelta(hours=3), window_end=now)
    with pytest.raises(CutoverWindowClosedError):
        pipeline.steps.await_window(closed)


def test_a_verified_cutover_is_held_before_finalize_as_the_manifest_says(
    pipeline: Pipeline,
) -> None:
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    outcome: dict[str, Any] = {"jobId": "mgnjob-batch", "instanceId": "i-0123456789abcdef0"}
    outcome |= {"launchStatus": "LAUNCHED", "detail": "", "started": True}
    held = pipeline.state(finalize_after_minutes=24 * 60)

    result = pipeline.steps.verify_launch(
        {**held, "cutover": outcome}, "cutover", finalize=True, started_at=None
    )

    # The state machine waits holdSeconds (HoldBeforeFinalize) before FinalizeCutover
    assert (result["done"], result["holdSeconds"], result["finalized"]) == (True, 24 * 3600, False)
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("VerifyCutover", "SUCCEEDED"),
        ("FinalizeCutover", "WAITING"),
    ]
    until = pipeline.clock.now() + timedelta(hours=24)
    message = pipeline.reporter.steps[-1].message
    assert f"held until {until:%Y-%m-%d %H:%M} UTC" in message
    assert "/wavepilot rollback mig-12345" in message
    assert pipeline.mgn.calls["finalize_cutover"] == 0


def test_without_a_hold_a_verified_cutover_goes_straight_to_finalize(pipeline: Pipeline) -> None:
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    outcome: dict[str, Any] = {"jobId": "mgnjob-batch", "instanceId": "i-0123456789abcdef0"}
    outcome |= {"launchStatus": "LAUNCHED", "detail": "", "started": True}

    result = pipeline.steps.verify_launch({**pipeline.state(), "cutover": outcome}, "cutover")

    assert (result["done"], result["holdSeconds"]) == (True, 0)
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [("VerifyCutover", "SUCCEEDED")]


def test_a_verified_cutover_without_a_hold_is_finalized_in_the_same_invocation(
    pipeline: Pipeline,
) -> None:
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    outcome: dict[str, Any] = {"jobId": "mgnjob-batch", "instanceId": "i-0123456789abcdef0"}
    outcome |= {"launchStatus": "LAUNCHED", "detail": "", "started": True}
    started_at = pipeline.clock.now() - timedelta(hours=3)

    result = pipeline.steps.verify_launch(
        {**pipeline.state(), "cutover": outcome}, "cutover", finalize=True, started_at=started_at
    )

    assert (result["done"], result["finalized"]) == (True, True)
    assert pipeline.mgn.calls["finalize_cutover"] == 1
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [
        ("VerifyCutover", "SUCCEEDED"),
        ("FinalizeCutover", "SUCCEEDED"),
    ]
    [completed] = [e for e in pipeline.reporter.events if isinstance(e, MigrationCompleted)]
    assert completed.target_instance_id == "i-0123456789abcdef0"
    assert completed.duration_seconds == 3 * 3600


def test_a_cutover_that_cannot_be_finalized_at_once_is_left_to_its_own_step(
    pipeline: Pipeline,
) -> None:
    # GIVEN a cutover job MGN still runs (it holds the server: FinalizeCutover is refused)
    pipeline.mgn.add_job(job("mgnjob-cutover", initiated_by="START_CUTOVER"))
    pipeline.ec2.instances["i-0123456789abcdef0"] = running_instance("i-0123456789abcdef0")
    outcome: dict[str, Any] = {"jobId": "mgnjob-batch", "instanceId": "i-0123456789abcdef0"}
    outcome |= {"launchStatus": "LAUNCHED", "detail": "", "started": True}

    result = pipeline.steps.verify_launch(
        {**pipeline.state(), "cutover": outcome}, "cutover", finalize=True
    )

    # THEN verified, not finalized: FinalizeCutover (with its retries) does it next
    assert (result["done"], result["finalized"]) == (True, False)
    assert pipeline.mgn.calls["finalize_cutover"] == 1
    assert [(s.step, s.status) for s in pipeline.reporter.steps] == [("VerifyCutover", "SUCCEEDED")]


# --- dependsOn: a cutover goes after its application's dependencies --------------------------


def _dependency(
    name: str, *, app: str = "db", wave: str = "wave-3", status: str = "RUNNING", **record: Any
) -> MigrationRecord:
    dependency = migration_record(
        status=status,
        migrationId=f"mig-{name}",
        appName=app,
        wave=wave,
        targetVmName=name,
        sourceVmId=f"/vm/{name}",
    )
    return replace(dependency, **record)


def _verified(at_minute: int) -> dict[str, str]:
    return {"step": "VerifyCutover", "status": "SUCCEEDED", "message": "ok", "at": f"{at_minute}"}


def _entry(step: str, status: str) -> dict[str, str]:
    return {"step": step, "status": status, "message": "", "at": ""}


@pytest.fixture
def ordered(pipeline: Pipeline) -> tuple[Pipeline, FakeStore]:
    """The pipeline with the wave's migrations to look at (as wiring gives it)."""
    store = FakeStore()
    pipeline.steps = MigrationSteps(
        lanes=pipeline.lanes,
        prober=pipeline.probe,
        reporter=pipeline.reporter,
        clock=pipeline.clock,
        migrations=store,
    )
    return pipeline, store


def _add(store: FakeStore, *records: MigrationRecord) -> None:
    for record in records:
        store.migrations[record.migration_id] = record


def test_a_cutover_waits_for_the_applications_it_depends_on_and_says_so_once(
    ordered: tuple[Pipeline, FakeStore],
) -> None:
    pipeline, store = ordered
    _add(
        store,
        _dependency("db-01", status="COMPLETED"),
        _dependency("db-02", step="AwaitApproval"),
        _dependency("cache-01", app="cache", status="COMPLETED"),
        _dependency("web-01", app="web"),  # not a dependency: it does not hold the cutover
        _dependency("db-09", wave="wave-9"),  # another wave's db: neither
    )
    state = pipeline.state(cutover_after=["db", "cache", "queue"])

    first = pipeline.steps.trigger(state, "cutover")
    second = pipeline.steps.trigger({**state, "cutover": first}, "cutover")

    assert pipeline.mgn.launched == []
    assert (first["started"], first["done"], first["dependsOn"]) == (False, False, ["db", "queue"])
    assert first["waitSeconds"] == CONFIG["pollInitialSeconds"]
    assert second["waitSeconds"] == CONFIG["pollInitialSeconds"] * 2
    assert second["polls"] == 2
    assert [(s.step, s.status, s.message) for s in pipeline.reporter.steps] == [
        (
            "StartCutover",
            "WAITING",
            "the cutover waits for db, queue to cut over first (dependsOn): "
            "db: db-02; queue: no migration requested yet",
        )
    ]


def test_a_cutover_starts_once_every_dependency_has_cut_over(
    ordered: tuple[Pipeline, FakeStore],
) -> None:
    pipeline, store = ordered
    _add(
        store,
        _dependency("db-01", status="COMPLETED"),
        # Verified and held before FinalizeCutover (finalizeAfter): it has cut over.
        _dependency(
            "db-02",
            step="VerifyCutover",
            history=(_entry("ValidateInput", "SUCCEEDED"), _verified(5)),
        ),
    )
    state = pipeline.state(cutover_after=["db"])
    waiting = {"done": False, "waitSeconds": 5, "dependsOn": ["db"], "startedAt": 1.0}

    result = pipeline.steps.trigger({**state, "cutover": waiting}, "cutover")

    assert result == {"started": True, "done": True, "jobId": "mgnjob-0001"}
    [(kind, ids, _)] = pipeline.mgn.launched
    assert (kind, ids) == ("START_CUTOVER", [SERVER])


def test_a_cutover_verified_in_an_earlier_run_does_not_count(
    ordered: tuple[Pipeline, FakeStore],
) -> None:
    pipeline, store = ordered
    # db-01 cut over, was rolled back by an operator, and runs again (a new revision).
    history = (_verified(1), _entry("Rollback", "SUCCEEDED"), _entry("ValidateInput", "STARTED"))
    _add(store, _dependency("db-01", step="ValidateInput", history=history))

    result = pipeline.steps.trigger(pipeline.state(cutover_after=["db"]), "cutover")

    assert (result["started"], result["dependsOn"]) == (False, ["db"])
    assert pipeline.mgn.launched == []


@pytest.mark.parametrize("status", ["ROLLED_BACK", "FAILED"])
def test_a_dependency_that_did_not_cut_over_rolls_this_cutover_back(
    ordered: tuple[Pipeline, FakeStore], status: str
) -> None:
    pipeline, store = ordered
    _add(store, _dependency("db-01", status="COMPLETED"), _dependency("db-02", status=status))

    with pytest.raises(
        DependencyFailedError,
        match=rf"goes after db \(dependsOn\), but db-02 \(db, {status}\) did not cut over: "
        "the migration is rolled back",
    ):
        pipeline.steps.trigger(pipeline.state(cutover_after=["db"]), "cutover")

    assert pipeline.mgn.launched == []


@pytest.mark.parametrize(
    ("launch", "cutover_after", "kind"),
    [("test", ["db"], "START_TEST"), ("cutover", [], "START_CUTOVER")],
    ids=["test-launch", "cutover-without-dependencies"],
)
def test_the_test_launch_and_a_cutover_without_dependencies_do_not_wait(
    ordered: tuple[Pipeline, FakeStore], launch: Any, cutover_after: list[str], kind: str
) -> None:
    pipeline, store = ordered
    _add(store, _dependency("db-01"))

    result = pipeline.steps.trigger(pipeline.state(cutover_after=cutover_after), launch)

    assert result["started"]
    assert [launched for launched, _, _ in pipeline.mgn.launched] == [kind]


def test_a_dependency_wait_looks_again_within_five_minutes_whatever_poll_max_seconds(
    ordered: tuple[Pipeline, FakeStore],
) -> None:
    pipeline, store = ordered
    _add(store, _dependency("db-01"))
    state = {
        **pipeline.state(cutover_after=["db"]),
        "config": {**CONFIG, "pollMaxSeconds": 900},
        "cutover": {"done": False, "waitSeconds": 600, "dependsOn": ["db"], "startedAt": 1.0},
    }

    result = pipeline.steps.trigger(state, "cutover")

    assert (result["started"], result["waitSeconds"]) == (False, 300)
    assert pipeline.reporter.steps == []  # said once already


# --- a finalizeAfter hold, and an operator's "finalize now" ----------------------------------


class _FinalizeRequests:
    def __init__(self) -> None:
        self.asked: tuple[str, datetime] | None = None

    def finalize_request(self, migration_id: str) -> tuple[str, datetime] | None:
        return self.asked


def _held(hold_seconds: int) -> tuple[Pipeline, _FinalizeRequests, dict[str, Any]]:
    """A pipeline whose steps see operators' finalize requests, and a state whose cutover
    passed its checks and is held ``hold_seconds`` (finalizeAfter)."""
    clock = FixedClock()
    mgn, ec2, probe = FakeMgn(source_server(SERVER)), FakeEc2(), FakeProbe()
    reporter, lanes, requests = FakeReporter(clock), FakeLanes(mgn, ec2), _FinalizeRequests()
    steps = MigrationSteps(
        lanes=lanes, prober=probe, reporter=reporter, clock=clock, finalize_requests=requests
    )
    pipeline = Pipeline(steps, mgn, ec2, probe, reporter, clock, lanes)
    state = pipeline.state()
    state["config"] = {**CONFIG, "pollMaxSeconds": 900}
    state["cutoverCheck"] = {"done": True, "holdSeconds": hold_seconds, "instanceId": "i-1"}
    return pipeline, requests, state


def test_a_hold_is_looked_at_every_few_minutes_and_ends_when_its_time_has_passed() -> None:
    pipeline, _, state = _held(3600)

    # The first look: not over, wait at most five minutes (an operator may ask meanwhile)
    first = pipeline.steps.finalize_hold(state)
    assert (first["done"], first["waitSeconds"]) == (False, 300)
    # An hour later it is over, counted from the first look (not from each poll)
    pipeline.clock.advance(timedelta(minutes=59, seconds=50))
    state["hold"] = first
    assert pipeline.steps.finalize_hold(state)["waitSeconds"] == 11
    pipeline.clock.advance(timedelta(seconds=11))
    assert pipeline.steps.finalize_hold(state)["done"] is True
    assert pipeline.reporter.steps == []


def test_finalize_now_ends_the_hold_at_the_next_look_and_says_who_asked() -> None:
    pipeline, requests, state = _held(86_400)
    # A request left from an earlier hold of the migration (before this one began) is not it
    requests.asked = ("U07BOBOPS01", pipeline.clock.now() - timedelta(days=3))
    state["hold"] = pipeline.steps.finalize_hold(state)
    assert state["hold"]["done"] is False

    pipeline.clock.advance(timedelta(minutes=10))
    requests.asked = ("U07BOBOPS01", pipeline.clock.now())
    result = pipeline.steps.finalize_hold(state)

    assert (result["done"], result["finalizeRequestedBy"]) == (True, "U07BOBOPS01")
    [step] = pipeline.reporter.steps
    assert (step.step, step.status) == ("FinalizeCutover", "IN_PROGRESS")
    assert "asked by <@U07BOBOPS01>" in step.message
