"""Batched launches end to end on the embedded system: real handlers, both state machines.

A wave of twelve VMs in one lane, on ``SystemOptions(launch_design="batched")``: executions
hand their servers to the lane's launch coordinator (``.waitForTaskToken``), which starts
MGN jobs of many servers and answers each execution with its own server's outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestration import wiring
from orchestration.adapters import aws
from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.gitops.requests import request_for
from orchestration.local.driver import MigrationDriver
from orchestration.local.mgn import LaunchType
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.mgn_grouping import mgn_application_name
from orchestration.rehearsal.profile import RehearsalProfile
from orchestration.rehearsal.run import rehearse, synthetic_input
from orchestration.settings import settings
from orchestration.statemachine import LaunchSettings, Timings
from tests.support.pipeline import spec_of, states_entered
from tests.support.waves import with_dependent_application

pytestmark = pytest.mark.timeout(600)

VMS = 12
LAUNCH = LaunchSettings.aws("batched")
# The system runs on the simulated clock with AWS's timings (the rehearsal's): its time does
# not stretch with the CPU, and waits of hours cost no wall time.
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
# The window opens once every VM has passed its test launch and waits, approved (a day of
# replication and tests): the wave's cutovers are requested together when it opens.
OPENS_IN = timedelta(days=2)


def _wave(
    vms: int, opens_in: timedelta, settings: str = "", *, http_checks: bool = False
) -> list[MigrationRequest]:
    """A synthetic wave of ``vms`` VMs in one lane, its cutover window opening later;
    ``settings``: wave-level manifest lines (YAML) added before its defaults; ``http_checks``:
    each VM's health check an HTTP one (a stand-in marked unhealthy fails it)."""
    now = START
    window = ((now + opens_in).isoformat(), (now + opens_in + timedelta(hours=2)).isoformat())
    text = wave_yaml(0, vms, window=window).replace("\ndefaults:", f"\n{settings}defaults:", 1)
    if http_checks:
        text = re.sub(r"\{type: tcp, port: \d+\}", "{type: http, port: 8080, path: /healthz}", text)
    result = validate_files([ManifestFile("wave-000.yaml", text)], now=now)
    assert result.valid, result.findings
    return [
        request_for(vm, commit="c" * 40, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    options = SystemOptions(
        timings=Timings.aws(),
        clock="simulated",
        clock_start=START,
        launch_design="batched",
        launch=LAUNCH,
    )
    with EmbeddedSystem(options) as running:
        yield running


def _seeded_and_migrated(
    system: EmbeddedSystem, requests: list[MigrationRequest]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The requests' VMs seeded (their source servers, by migration), then sent and waited
    for, up to five simulated days: their outcomes, by migration."""
    servers = system.seed([spec_of(r) for r in requests])
    return servers, _migrated(system, requests)


def _migrated(system: EmbeddedSystem, requests: list[MigrationRequest]) -> dict[str, Any]:
    """The requests sent, then waited for up to five simulated days: outcomes by migration."""
    driver = MigrationDriver(system)
    driver.send(requests)
    return driver.wait(
        {r.migration_id for r in requests},
        timeout=timedelta(days=5).total_seconds(),
        poll_seconds=600,
    )


def _jobs(system: EmbeddedSystem, server_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every launch job of the lane, by job ID: its type and servers."""
    client = wiring.lanes().clients(_lane(system, server_ids[0])).mgn
    jobs = client.jobs_since(START - timedelta(days=1))
    return {
        job.job_id: {
            "initiatedBy": job.initiated_by,
            "servers": sorted(s.source_server_id for s in job.servers),
        }
        for job in jobs
        if job.initiated_by in {"START_TEST", "START_CUTOVER"}
    }


def _lane(system: EmbeddedSystem, server_id: str) -> Any:
    from orchestration.adapters.lanes import Lane

    return Lane(*system.lane_of_server[server_id])


def test_a_wave_migrates_in_fewer_jobs_than_vms_and_a_failed_test_rolls_back_alone(
    system: EmbeddedSystem,
) -> None:
    requests = _wave(VMS, OPENS_IN)
    servers = system.seed([spec_of(r) for r in requests])
    failing = requests[3]
    failing_server = servers[failing.migration_id]
    mgn = system.mgn_of_server(failing_server)
    mgn.faults.fail_next_launch(failing_server, launch_type=LaunchType.TEST)

    outcomes = _migrated(system, requests)

    # THEN every VM but the failing one migrated; the failing one rolled back alone
    for request in requests:
        outcome = outcomes[request.migration_id]
        if request is failing:
            assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
            rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
            assert "FAILED" in rollback["message"], rollback
        else:
            assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), (
                request.migration_id,
                outcome.cause,
            )
        # AND each thread's story is its own: the launch steps are reported per VM
        steps = [(s["step"], s["status"]) for s in outcome.steps]
        assert ("StartTestLaunch", "SUCCEEDED") in steps, steps
        started = next(s for s in outcome.steps if s["step"] == "StartTestLaunch")
        assert "MGN job" in started["message"]
        assert "server" in started["message"]
        if request is not failing:
            for expected in [
                ("VerifyTestLaunch", "SUCCEEDED"),
                ("StartCutover", "SUCCEEDED"),
                ("VerifyCutover", "SUCCEEDED"),
                ("FinalizeCutover", "SUCCEEDED"),
            ]:
                assert expected in steps, (request.migration_id, steps)
            # AND the gate verified the test launch in its own invocation (the coordinator
            # saw the instance up): no VerifyTestLaunch state of its own
            assert outcome.execution_arn is not None
            entered = states_entered(outcome.execution_arn)
            assert "VerifyTestAndAwaitApproval" in entered, entered
            assert "VerifyTestLaunch" not in entered, entered

    # AND the launches went in batches: fewer jobs than VMs, the cutovers in one job
    jobs = _jobs(system, list(servers.values()))
    tests = [j for j in jobs.values() if j["initiatedBy"] == "START_TEST"]
    cutovers = [j for j in jobs.values() if j["initiatedBy"] == "START_CUTOVER"]
    assert len(tests) < VMS, tests
    assert sum(len(j["servers"]) for j in tests) == VMS
    assert len(cutovers) == 1, cutovers
    assert len(cutovers[0]["servers"]) == VMS - 1
    assert failing_server not in cutovers[0]["servers"]
    # AND MGN was asked to start each job once, not once per VM
    calls = mgn.metrics().calls_by_operation
    starts = calls.get("StartTest", 0) + calls.get("StartCutover", 0)
    assert starts <= 2 * len(jobs), calls
    assert starts < VMS, calls
    # AND the test instances, verified at the gate (no $.testCheck: the instance the test
    # launched), were retired by the coordinator before the cutover, in one TERMINATE job
    assert calls.get("TerminateTargetInstances", 0) == 1, calls
    # AND each server is in its application in MGN's console, associated in bulk by the
    # coordinator (the first of each application by its own preparation)
    lane_mgn = wiring.lanes().clients(_lane(system, failing_server)).mgn
    grouping = lane_mgn.grouping()
    placed = {
        s.source_server_id: s.application_id
        for s in lane_mgn.source_servers(list(servers.values()))
    }
    for request in requests:
        application = grouping.application(placed[servers[request.migration_id]])
        assert application is not None, request.migration_id
        assert application.name == mgn_application_name(request.wave, request.app_name)
    applications = {r.app_name for r in requests}
    assert calls.get("AssociateSourceServers", 0) <= 2 * len(applications), calls
    assert calls.get("AssociateSourceServers", 0) < VMS, calls

    # AND the lane's ledger holds nothing open, and its loop has ended
    table = aws.state_table(settings().table_name, settings().aws_region)
    ledger = DynamoLaunchLedger(table, "/".join(system.lane_of_server[failing_server]))
    snapshot = ledger.snapshot()
    assert (snapshot.waiting, snapshot.intents, ledger.undelivered()) == ((), (), [])


def test_a_test_the_gate_cannot_verify_is_handed_back_and_verified_in_its_own_state(
    system: EmbeddedSystem,
) -> None:
    # GIVEN two VMs of one batch, one of which never answers its health checks
    requests = _wave(2, OPENS_IN, http_checks=True)
    servers = system.seed([spec_of(r) for r in requests])
    unhealthy, healthy = requests
    assert system.standins is not None
    system.standins.mark_unhealthy(servers[unhealthy.migration_id])

    # WHEN they migrate
    outcomes = _migrated(system, requests)

    # THEN the healthy one was verified at the gate and migrated
    assert outcomes[healthy.migration_id].record_status == "COMPLETED"
    healthy_arn = outcomes[healthy.migration_id].execution_arn
    assert healthy_arn is not None
    assert "VerifyTestLaunch" not in states_entered(healthy_arn)
    # AND the gate's first look at the unhealthy one (checks failing, not yet timed out) was
    # handed back with its result, so VerifyTestLaunch's waits counted from it until the
    # launch timeout failed it: rolled back, nobody asked to approve
    outcome = outcomes[unhealthy.migration_id]
    assert outcome.record_status == "ROLLED_BACK"
    assert outcome.execution_arn is not None
    entered = states_entered(outcome.execution_arn)
    after_gate = entered[entered.index("VerifyTestAndAwaitApproval") :]
    assert after_gate[:5] == [
        "VerifyTestAndAwaitApproval",
        "TestVerifiedAtGate",
        "KeepTestCheck",
        "TestLaunchVerified",
        "WaitForTestLaunch",
    ], entered
    assert "VerifyTestLaunch" in after_gate, entered
    assert "AwaitApproval" not in entered, entered
    rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
    assert "health" in rollback["message"].lower(), rollback


def test_parked_test_failures_in_a_batch_retry_or_roll_back_after_park_for(
    system: EmbeddedSystem,
) -> None:
    # GIVEN a wave that parks failures (for two hours), two of whose servers fail their test
    requests = _wave(4, OPENS_IN, settings="onFailure: park\nparkFor: 2h\n")
    servers = system.seed([spec_of(r) for r in requests])
    retried, abandoned = requests[1], requests[2]
    for request in (retried, abandoned):
        server = servers[request.migration_id]
        system.mgn_of_server(server).faults.fail_next_launch(server, launch_type=LaunchType.TEST)
    driver = MigrationDriver(system)
    parked_at: dict[str, datetime] = {}

    def operator(_statuses: dict[str, str], records: dict[str, Any]) -> None:
        for request in (retried, abandoned):
            record = records.get(request.migration_id)
            if record is not None and record.status == "PARKED":
                parked_at.setdefault(request.migration_id, wiring.clock().now())
        record = records.get(retried.migration_id)
        if record is not None and record.status == "PARKED" and record.step == "Park":
            # WHEN an operator retries one (the other is left alone)
            wiring.parks().decide(retried.migration_id, "retry", user="U07BOBOPS01")

    driver.send(requests)
    outcomes = driver.wait(
        {r.migration_id for r in requests},
        timeout=timedelta(days=5).total_seconds(),
        poll_seconds=300,
        on_tick=operator,
    )

    # THEN the retried one migrated after a second test launch, in a batch of its own
    assert set(parked_at) == {retried.migration_id, abandoned.migration_id}
    for request in requests:
        outcome = outcomes[request.migration_id]
        if request is abandoned:
            assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
            rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
            assert "ParkExpired" in rollback["message"], rollback
            # ... rolled back on its own once parkFor (2h) had passed, not before
            rolled_back = datetime.fromisoformat(rollback["at"])
            assert rolled_back - parked_at[request.migration_id] >= timedelta(hours=1, minutes=55)
        else:
            assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), (
                request.migration_id,
                outcome.cause,
            )
    steps = [(s["step"], s["status"]) for s in outcomes[retried.migration_id].steps]
    assert ("Park", "SUCCEEDED") in steps
    jobs = _jobs(system, list(servers.values()))
    tested = [
        job
        for job in jobs.values()
        if job["initiatedBy"] == "START_TEST" and servers[retried.migration_id] in job["servers"]
    ]
    assert len(tested) == 2, tested


def test_the_per_vm_design_is_the_default() -> None:
    assert SystemOptions().launch_settings.design == "per-vm"
    assert replace(LAUNCH, design="per-vm").design == "per-vm"


def test_one_rehearsal_input_runs_with_either_design_and_batched_starts_a_job_per_launch() -> None:
    """The rehearsal (simulated clock, AWS timings) on one input with each design: the same
    VMs migrate; per-vm starts a job per VM and launch, batched one per launch of the wave."""
    profile = RehearsalProfile.model_validate({})
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    observed = {
        design: rehearse(
            synthetic_input(5, start=start, profile=profile),
            profile,
            launch=LaunchSettings.aws(design),
        )
        for design in ("per-vm", "batched")
    }
    for observation in observed.values():
        assert {vm.final_status for vm in observation.vms} == {"SUCCEEDED"}
    starts = {
        design: (
            observation.mgn_calls_by_operation.get("StartTest", 0),
            observation.mgn_calls_by_operation.get("StartCutover", 0),
        )
        for design, observation in observed.items()
    }
    assert starts == {"per-vm": (5, 5), "batched": (1, 1)}


def test_servers_wait_for_their_shared_job_before_their_next_step() -> None:
    """A test job of Linux and Windows servers completes when its slowest server's launch
    ends; a Linux VM approved before then must wait for it (MGN allows one job per server) to
    prepare its cutover, and a cutover job's first servers to finalize. Rehearsed (AWS
    timings by OS, approvers answering in minutes): every VM migrates."""
    profile = RehearsalProfile.model_validate({})
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    observation = rehearse(
        synthetic_input(20, start=start, profile=profile),
        profile,
        launch=LaunchSettings.aws("batched"),
    )
    assert {vm.os_family for vm in observation.vms} == {"linux", "windows"}
    assert {vm.migration_id: vm.final_status for vm in observation.vms} == {
        vm.migration_id: "SUCCEEDED" for vm in observation.vms
    }
    assert observation.mgn_calls_by_operation.get("StartTest", 0) < 20


# --- dependsOn: a wave's cutovers in order -----------------------------------------------------


def _ordered_wave() -> tuple[list[MigrationRequest], list[MigrationRequest]]:
    """A wave of four VMs in two applications: ``app-000-00`` (two VMs) and ``app-b`` (the
    other two), which goes after it (``dependsOn``). Its window opens once all have passed
    their tests: every cutover is requested together when it opens."""
    window = (START + OPENS_IN, START + OPENS_IN + timedelta(hours=4))
    text = with_dependent_application(
        wave_yaml(0, 4, window=(window[0].isoformat(), window[1].isoformat())),
        keep=2,
        name="app-b",
        depends_on="app-000-00",
    )
    result = validate_files([ManifestFile("wave-000.yaml", text)], now=START)
    assert result.valid, result.findings
    requests = [
        request_for(vm, commit="c" * 40, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]
    first_app = [r for r in requests if r.app_name == "app-000-00"]
    dependents = [r for r in requests if r.app_name == "app-b"]
    assert (len(first_app), len(dependents)) == (2, 2)
    return first_app, dependents


def _step_at(outcome: Any, step: str, status: str) -> datetime:
    return datetime.fromisoformat(
        next(s["at"] for s in outcome.steps if (s["step"], s["status"]) == (step, status))
    )


def test_a_dependent_applications_cutover_job_starts_after_its_dependency_cut_over(
    system: EmbeddedSystem,
) -> None:
    first_app, dependents = _ordered_wave()
    requests = [*first_app, *dependents]
    servers, outcomes = _seeded_and_migrated(system, requests)

    # THEN every VM migrated
    for request in requests:
        outcome = outcomes[request.migration_id]
        assert (outcome.status, outcome.record_status) == ("SUCCEEDED", "COMPLETED"), (
            request.migration_id,
            outcome.cause,
        )
    # AND the cutovers went in two jobs: the dependency's servers first, app-b's after
    mgn = system.mgn_of_server(servers[requests[0].migration_id])
    cutovers = sorted(
        (job for job in mgn.jobs() if job.initiated_by == "START_CUTOVER"),
        key=lambda job: job.created_at,
    )
    composition = [{p.source_server_id for p in job.participants} for job in cutovers]
    assert composition == [
        {servers[r.migration_id] for r in first_app},
        {servers[r.migration_id] for r in dependents},
    ]
    # AND app-b's job started only once every VM of app-000-00 had cut over (verified)
    verified = max(
        _step_at(outcomes[r.migration_id], "VerifyCutover", "SUCCEEDED") for r in first_app
    )
    assert cutovers[1].created_at >= verified
    for request in dependents:
        started = _step_at(outcomes[request.migration_id], "StartCutover", "SUCCEEDED")
        assert started >= verified
        # AND its thread said once what it waited for
        waiting = [
            s["message"]
            for s in outcomes[request.migration_id].steps
            if (s["step"], s["status"]) == ("StartCutover", "WAITING")
            and "dependsOn" in s["message"]
        ]
        assert waiting == [
            "the cutover waits for app-000-00 to cut over first (dependsOn): its MGN job "
            "starts once every VM of it has"
        ]


def test_a_dependency_that_fails_its_cutover_rolls_its_dependents_back_with_the_reason(
    system: EmbeddedSystem,
) -> None:
    first_app, dependents = _ordered_wave()
    requests = [*first_app, *dependents]
    servers = system.seed([spec_of(r) for r in requests])
    failing = first_app[1]
    failing_server = servers[failing.migration_id]
    mgn = system.mgn_of_server(failing_server)
    mgn.faults.fail_next_launch(failing_server, launch_type=LaunchType.CUTOVER)

    outcomes = _migrated(system, requests)

    # THEN the dependency that failed rolled back, the other VM of its application migrated
    assert outcomes[failing.migration_id].record_status == "ROLLED_BACK"
    assert outcomes[first_app[0].migration_id].record_status == "COMPLETED"
    # AND app-b's VMs rolled back without a cutover job, the dependency named as the reason
    for request in dependents:
        outcome = outcomes[request.migration_id]
        assert (outcome.status, outcome.record_status) == ("FAILED", "ROLLED_BACK")
        rollback = next(s for s in outcome.steps if s["step"] == "Rollback")
        assert (
            f"this cutover goes after app-000-00 (dependsOn), but {failing.target_vm_name} "
            "(app-000-00, ROLLED_BACK) did not cut over" in rollback["message"]
        ), rollback
        assert "DependencyFailedError" in rollback["message"], rollback
    cutover_servers = {
        p.source_server_id
        for job in mgn.jobs()
        if job.initiated_by == "START_CUTOVER"
        for p in job.participants
    }
    assert cutover_servers == {servers[r.migration_id] for r in first_app}


def test_a_status_queue_with_a_batching_window_shows_every_thread_on_the_simulated_clock() -> None:
    from bot.thread_store import ThreadStore

    # GIVEN the Slack status queue's mapping waits up to a minute (simulated) to fill its
    # batches, as var.slack_status_batching_window_seconds can make it on AWS
    options = SystemOptions(
        timings=Timings.aws(),
        clock="simulated",
        clock_start=START,
        launch_design="batched",
        launch=LAUNCH,
        slack_status_batching_window_seconds=60,
    )
    with EmbeddedSystem(options) as system:
        assert system.resources is not None
        # WHEN a wave migrates
        requests = _wave(4, OPENS_IN)
        _, outcomes = _seeded_and_migrated(system, requests)
        assert {o.record_status for o in outcomes.values()} == {"COMPLETED"}
        # THEN every thread shows its migration's end (the windows took no wall time, and the
        # batch the window filled waited for the notifier's slot without holding it)
        table = aws.state_table(settings().table_name, settings().aws_region)
        threads = ThreadStore(table)
        clock = system.clock
        assert clock is not None
        for request in requests:
            deadline = clock.monotonic() + 3600
            while (thread := threads.get(request.migration_id)) is None or (
                thread.state.outcome != "migrated" or thread.root_owed or thread.owed_replies
            ):
                assert clock.monotonic() < deadline, thread
                clock.sleep(30)
        # AND the window filled its batches (5.6 events a batch in this run, 2.8 without one)
        [status_mapping] = [
            m["UUID"]
            for m in system.client("lambda").list_event_source_mappings()["EventSourceMappings"]
            if m["EventSourceArn"] == system.resources.slack_status_queue_arn
        ]
        stats = system.counters().event_source_batches[status_mapping]
        assert stats.messages_received >= 4 * stats.batches, stats  # about 3 per batch without
