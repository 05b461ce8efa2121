"""The fault campaign's short version (issue 18): tens of VMs, every implemented fault kind
at least once, on the simulated clock, and goal R1 asserted.

The whole embedded system runs (moto with the real ASL and handlers, the MGN emulator, the
Slack stand-in and the bot): the faults go in through the hooks those parts have, and R1 is
judged from what they recorded (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestration.cli import main
from orchestration.local.runtime.fault_points import RuntimeFaults
from orchestration.pipeline.callbacks import RetryPolicy
from orchestration.rehearsal.faults import FaultProfile
from orchestration.rehearsal.observation import (
    DeadLetter,
    JobRecord,
    RehearsalObservation,
    StepRecord,
    VmObservation,
)
from orchestration.rehearsal.profile import RehearsalProfile
from orchestration.rehearsal.reliability import assess
from orchestration.rehearsal.run import rehearse, synthetic_input
from orchestration.statemachine import LaunchSettings, Timings
from tests.support.isolation import ran_in_a_fresh_process

pytestmark = pytest.mark.timeout(600)

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday morning
REPOSITORY = Path(__file__).resolve().parent.parent

# Every implemented kind at least once, at times a 20-VM wave (two applications of ten, each
# approved by one group message) meets them: replication runs the first ~4 hours, test
# launches and approvals follow, the cutover window opens at +24 h. The silent approver
# leaves one application's message unanswered: its ten approvals expire, the other ten
# migrate.
SHORT_CAMPAIGN = {
    "seed": 3,
    "mgnThrottling": {
        "count": 3,
        "firstAfterMinutes": 10,
        "everyMinutes": 50,
        "requestsPerBurst": 5,
    },
    "quotaPressure": {"count": 10, "firstAfterMinutes": 200, "everyMinutes": 20, "forMinutes": 10},
    "launchFailures": {"rate": 0.15},
    "jobFailures": {"rate": 0.1},  # seed 3: the 6th launch job (one VM's, per VM) fails
    "replicationStalls": {"servers": 1},
    "slackRateLimitStorms": {
        "count": 8,
        "firstAfterMinutes": 30,
        "everyMinutes": 30,
        "callsPerBurst": 40,
    },
    "slackServerErrorStorms": {
        "count": 3,
        "firstAfterMinutes": 45,
        "everyMinutes": 60,
        "forSeconds": 120,
    },
    "botRestarts": {"count": 3, "firstAfterMinutes": 200, "everyMinutes": 30},
    "silentApprovers": {"approvals": 1},
    "lambdaCrashes": {
        "functions": {
            "slack_notifier": 0.1,
            "ingress_handler": 0.3,
            # Step functions: retried by the ASL (Runtime.ExitError), never rolled back for it;
            # trigger_migration crashes after MGN accepted its StartTest/StartCutover.
            "validate_input": 0.1,
            "trigger_migration": 0.1,
        }
    },
    "duplicateDeliveries": {"rate": 0.2, "eventRate": 0.1},
    "dynamodbThrottling": {
        "count": 3,
        "firstAfterMinutes": 5,
        "everyMinutes": 60,
        "requestsPerBurst": 2,
    },
    # Every VM gets a callback URL (synthetic_input(callbacks=True)); two outages.
    "callbackOutages": {"count": 2, "firstAfterMinutes": 120, "everyMinutes": 60, "forMinutes": 10},
    # and one slow minute (each attempt then costs the sender's 5-second timeout, real time)
    "slowCallbacks": {"count": 1, "firstAfterMinutes": 240, "forMinutes": 1},
}


def test_a_bad_fault_profile_is_refused_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "faults.yaml"
    profile.write_text("seed: 1\nlaunchFailures:\n  rate: 2\nbotRestart: {count: 1}\n")
    code = main(["rehearse", "--vms", "2", "--faults", str(profile)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{profile}:3:" in out  # rate above 1
    assert f"{profile}:4:" in out  # a typo of botRestarts is not silently ignored


@pytest.mark.parametrize("name", ["faults.yaml", "faults-1000.yaml"])
def test_the_repository_fault_profiles_are_valid(name: str) -> None:
    from orchestration.rehearsal.faults import load_fault_profile

    faults = load_fault_profile(REPOSITORY / "benchmarks" / "profiles" / name)
    assert faults.mgn_throttling.count > 0
    assert faults.silent_approvers.approvals > 0
    assert faults.coordinator_restarts.count > 0


def test_under_every_implemented_fault_nothing_is_lost_and_every_end_is_visible() -> None:
    faults = FaultProfile.model_validate(SHORT_CAMPAIGN)
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(20, start=START, profile=profile, callbacks=True),
        profile,
        faults=faults,
        timeout_days=30,
        # Production's polls; the stalled replication and the unanswered approval end after
        # a day instead of a week and three days (simulated days of polls cost real seconds).
        timings=replace(
            Timings.aws(), replication_timeout_seconds=86400, approval_timeout_seconds=86400
        ),
    )
    reliability = assess(observation)
    print(json.dumps(reliability.as_json(), indent=1, default=str))
    # Every kind went in, each where it was meant to: the figures below are the system's own.
    assert set(reliability.faults_by_kind) == {
        "mgnThrottling",
        "quotaPressure",
        "replicationStalls",
        "slackRateLimitStorms",
        "slackServerErrorStorms",
        "botRestarts",
        "silentApprovers",
        "lambdaCrashes",
        "duplicateDeliveries",
        "dynamodbThrottling",
        "dynamodbThrottledRequests",
        "jobFailures",
        "callbackOutages",
        "slowCallbacks",
    }
    assert observation.mgn_calls_by_operation  # MGN was called (and throttled, below)
    assert observation.slack_rate_limited >= 8 * 40
    assert any(vm.quota_rejections for vm in observation.vms), "no StartTest was refused"
    failed_launches = [j for vm in observation.vms for j in vm.jobs if j.launch_status == "FAILED"]
    assert failed_launches, "no launch failed inside its job"
    failed_jobs = [
        f.detail.split()[0] for f in observation.faults_injected if f.kind == "jobFailures"
    ]
    for vm in observation.vms:  # a job that failed as a whole failed its VM, visibly
        if any(j.job_id in failed_jobs for j in vm.jobs):
            assert vm.record_status in {"ROLLED_BACK", "FAILED"}, vm.migration_id
            assert vm.slack_final_shown, vm.migration_id
    by_id = {vm.migration_id: vm for vm in observation.vms}
    stalled = [
        f.detail.split()[0] for f in observation.faults_injected if f.kind == "replicationStalls"
    ]
    for migration_id in stalled:  # replication never converged: it ended, visibly
        assert by_id[migration_id].record_status in {"ROLLED_BACK", "FAILED"}
        assert by_id[migration_id].slack_final_shown
    assert sum(vm.approval_status == "EXPIRED" for vm in observation.vms) >= 1
    assert any(vm.record_status == "COMPLETED" for vm in observation.vms)  # cutovers ran too
    crashed = {
        f.detail.split()[0] for f in observation.faults_injected if f.kind == "lambdaCrashes"
    }
    assert any(name.endswith("trigger-migration") for name in crashed), crashed
    # A step's Lambda that crashed after its side effect was retried: no migration rolled
    # back for it (and none launched twice, below: the retry adopted the job it started).
    rolled_back_for_a_crash = [
        vm.migration_id
        for vm in observation.vms
        if any("Runtime.ExitError" in step.message for step in vm.steps)
    ]
    assert rolled_back_for_a_crash == []
    # R1: 0 lost, 0 double launches, 0 stuck, every end in its thread, every dead letter why.
    assert reliability.lost == ()
    assert reliability.launched_twice == ()
    assert reliability.stuck == ()
    assert reliability.not_shown_in_slack == ()
    assert reliability.unexplained_dead_letters == ()
    assert reliability.holds
    assert reliability.failures_visible >= 2  # the stalled server and the silent approval
    # Callbacks lost in the outages, if any, are listed (best effort: not part of R1).
    assert {c.migration_id for c in reliability.callbacks_lost} <= set(by_id)


@pytest.mark.timeout(600)
def test_a_step_that_crashed_after_starting_its_mgn_job_adopts_the_job_on_retry(
    request: pytest.FixtureRequest,
) -> None:
    # In a process of its own: in three clean-clone CI runs, an earlier test of the same
    # worker left something behind that broke this one (twice a clock stopped for good, fixed;
    # once Slack unreachable from the notifier, not yet explained: docs/LOCAL_RUNTIME.md).
    if ran_in_a_fresh_process(request):
        return
    # A seed whose draws crash trigger_migration's first invocation (StartTestLaunch, right
    # after MGN accepted the StartTest); its retry, the same request, does not crash again.
    function = "wavepilot-local-trigger-migration"
    share = 0.3

    def acceptable(seed: int) -> bool:
        probe = RuntimeFaults(seed=seed, crash_after_handler={function: share})
        return probe.crashes_after(function, "StartTestLaunch")

    seed = next(seed for seed in range(10_000) if acceptable(seed))
    faults = FaultProfile.model_validate(
        {"seed": seed, "lambdaCrashes": {"functions": {"trigger_migration": share}}}
    )
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(1, start=START, profile=profile),
        profile,
        faults=faults,
        timeout_days=30,
    )
    crashed = [f for f in observation.faults_injected if f.kind == "lambdaCrashes"]
    assert crashed, "trigger_migration never crashed"
    [vm] = observation.vms
    # It migrated: the crash was retried, not rolled back, and the retry found the job the
    # crashed invocation started instead of starting a second one.
    assert vm.record_status == "COMPLETED", [s.message for s in vm.steps][-3:]
    assert sorted(j.kind for j in vm.jobs if j.kind != "terminate") == ["cutover", "test"]
    assert assess(observation).holds


def test_batched_a_coordinator_restart_loses_nothing_and_a_failed_job_fails_only_its_vms() -> None:
    # Batched launches. The coordinator dies right after MGN accepted its first two launches
    # (armed at once, they strike at the first launch and the next one), before its ledger
    # recorded them: the next run must find each job by its intent tag and adopt it. And a
    # share of launch jobs fail as a whole (seed 3 at 0.3: the 2nd, 3rd, 6th... job).
    faults = FaultProfile.model_validate(
        {
            "seed": 3,
            "coordinatorRestarts": {"count": 2, "firstAfterMinutes": 1, "everyMinutes": 1},
            "jobFailures": {"rate": 0.3},
        }
    )
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(6, start=START, profile=profile),
        profile,
        launch=LaunchSettings.aws("batched"),
        faults=faults,
        timeout_days=30,
    )
    reliability = assess(observation)
    print(json.dumps(reliability.as_json(), indent=1, default=str))

    def members(job_id: str) -> list[VmObservation]:
        return [vm for vm in observation.vms if any(j.job_id == job_id for j in vm.jobs)]

    def struck(kind: str) -> list[str]:
        return [f.detail.split()[0] for f in observation.faults_injected if f.kind == kind]

    restarted, failed = struck("coordinatorRestarted"), struck("jobFailures")
    assert len(restarted) == 2, observation.faults_injected
    for job_id in restarted:  # the job the dead coordinator started is the one its VMs ran
        assert members(job_id), f"no VM ran {job_id}: the job was not adopted"
    assert failed, "no launch job failed as a whole"
    in_failed_jobs = {vm.migration_id for job_id in failed for vm in members(job_id)}
    for vm in observation.vms:  # a failed job fails its VMs, visibly; the others migrate
        if vm.migration_id in in_failed_jobs:
            assert vm.record_status in {"ROLLED_BACK", "FAILED"}, vm.migration_id
            assert all(j.launch_status == "FAILED" for j in vm.jobs if j.job_id in failed)
            assert vm.slack_final_shown, vm.migration_id
        else:
            assert vm.record_status == "COMPLETED", vm.migration_id
    assert reliability.launched_twice == ()
    assert reliability.holds


def test_rehearse_with_faults_puts_r1_in_the_json_report_and_exits_0_when_it_holds(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "faults.yaml"
    profile.write_text(
        "slackRateLimitStorms: {count: 2, firstAfterMinutes: 30, everyMinutes: 30, "
        "callsPerBurst: 20}\nbotRestarts: {count: 1, firstAfterMinutes: 100}\n"
    )
    report = tmp_path / "faults.json"
    code = main(
        [
            "rehearse",
            "--vms",
            "4",
            "--start",
            START.isoformat(),
            "--faults",
            str(profile),
            "--report",
            str(report),
        ]
    )
    reliability = json.loads(report.read_text())["reliability"]
    assert reliability["faultsInjected"] == {"botRestarts": 1, "slackRateLimitStorms": 2}
    assert [f["kind"] for f in reliability["faults"]] == [
        "slackRateLimitStorms",
        "slackRateLimitStorms",
        "botRestarts",
    ]
    assert reliability["r1Holds"] is True
    assert reliability["lost"] == {"count": 0, "cases": []}
    assert code == 0


def _vm(migration_id: str, **fields: object) -> VmObservation:
    base: dict[str, object] = {
        "migration_id": migration_id,
        "wave": "wave-000",
        "app_name": "app",
        "target_vm_name": migration_id,
        "account_id": "111122223333",
        "region": "eu-west-1",
        "os_family": "linux",
        "disk_bytes": 1,
        "source_server_id": f"s-{migration_id}",
        "final_status": "SUCCEEDED",
        "record_status": "COMPLETED",
        "steps": (StepRecord("FinalizeCutover", "SUCCEEDED", START),),
        "jobs": (),
        "slack_final_shown": True,
    }
    return VmObservation(**{**base, **fields})  # type: ignore[arg-type]


def _job(job_id: str, kind: str, minutes: int, status: str = "LAUNCHED") -> JobRecord:
    created = START + timedelta(minutes=minutes)
    return JobRecord(job_id, kind, created, created + timedelta(minutes=10), 1, status)  # type: ignore[arg-type]


def test_r1_names_each_case_lost_launched_twice_stuck_not_shown_and_unexplained() -> None:
    week = 7 * 24 * 3600.0
    vms = (
        _vm("fine", jobs=(_job("j1", "test", 0, "FAILED"), _job("j2", "test", 30))),
        _vm("never-started", final_status="NOT_STARTED", record_status="UNKNOWN", steps=()),
        _vm("orphaned", final_status="FAILED", record_status="RUNNING"),
        _vm("twice", jobs=(_job("j3", "cutover", 0), _job("j4", "cutover", 60))),
        _vm(
            "quiet",
            final_status="RUNNING",
            record_status="RUNNING",
            steps=(StepRecord("WaitForReplication", "WAITING", START),),
        ),
        _vm("unseen", record_status="ROLLED_BACK", final_status="FAILED", slack_final_shown=False),
    )
    observation = RehearsalObservation(
        started_at=START,
        ended_at=START,
        wall_seconds=1.0,
        design="per-vm",
        waves=(),
        vms=vms,
        quotas={},
        test_launch_seconds={},
        cutover_launch_seconds={},
        replication_initiation_seconds=0.0,
        replication_bytes_per_second={},
        dead_letters=(
            DeadLetter("q", "m1", "not a status event", "slack_notifier", "{}"),
            DeadLetter("q", "m2", "", "", "{}"),
        ),
        longest_wait_seconds=week,
        watched_until=START + timedelta(seconds=week + 60),
    )
    reliability = assess(observation)
    assert [c.migration_id for c in reliability.lost] == ["never-started", "orphaned"]
    assert [c.migration_id for c in reliability.launched_twice] == ["twice"]
    assert [c.migration_id for c in reliability.stuck] == ["quiet"]
    assert [c.migration_id for c in reliability.not_shown_in_slack] == ["unseen"]
    assert [d.message_id for d in reliability.unexplained_dead_letters] == ["m2"]
    assert not reliability.holds


def test_callbacks_lost_in_an_outage_are_listed_with_their_attempts_and_r1_still_holds() -> None:
    # The endpoints answer 503 for the first half hour: the events of that time (requested,
    # validated, prepared) use up the handler's retry budget; the later ones are delivered.
    faults = FaultProfile.model_validate(
        {"callbackOutages": {"count": 1, "firstAfterMinutes": 0, "forMinutes": 30}}
    )
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(4, start=START, profile=profile, callbacks=True),
        profile,
        faults=faults,
        timeout_days=30,
    )
    reliability = assess(observation)
    assert reliability.faults_by_kind == {"callbackOutages": 2}  # down, then back
    assert reliability.callbacks_lost, "no callback was lost in a half-hour outage"
    assert {c.migration_id for c in reliability.callbacks_lost} <= {
        vm.migration_id for vm in observation.vms
    }
    # Each lost one was tried as often as the policy allows (the deadline did not cut it)
    assert {c.attempts for c in reliability.callbacks_lost} == {RetryPolicy().max_attempts}
    # and only the outage's: each VM's later events (it migrated: some twenty) were taken.
    assert all(vm.record_status == "COMPLETED" for vm in observation.vms)
    assert max(c.sequence for c in reliability.callbacks_lost) <= 10
    assert reliability.holds


def test_a_slow_callback_endpoint_times_out_each_attempt_and_is_listed_not_silent() -> None:
    # The endpoint answers 204, but 6 s late (past the sender's 5-second attempt timeout) for
    # the first simulated minute: the events of that minute use up their attempts and are
    # listed as lost, though the receiver saw every attempt; the migration is not held up.
    faults = FaultProfile.model_validate(
        {"slowCallbacks": {"count": 1, "firstAfterMinutes": 0, "forMinutes": 1}}
    )
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(1, start=START, profile=profile, callbacks=True),
        profile,
        faults=faults,
        timeout_days=30,
    )
    reliability = assess(observation)
    assert reliability.faults_by_kind == {"slowCallbacks": 2}  # slow, then at once again
    assert reliability.callbacks_lost, "no callback was lost to a slow endpoint"
    assert {c.attempts for c in reliability.callbacks_lost} == {RetryPolicy().max_attempts}
    [vm] = observation.vms
    assert vm.record_status == "COMPLETED"
    assert reliability.holds


def test_every_eventbridge_event_delivered_twice_starts_no_migration_twice() -> None:
    # EventBridge is at-least-once: every event reaches every target twice, so each request
    # starts two Step Functions executions and each status event is queued twice. One
    # migration per request runs; nothing launches twice, nothing is lost or stuck.
    faults = FaultProfile.model_validate({"duplicateDeliveries": {"eventRate": 1.0}})
    profile = RehearsalProfile()
    observation = rehearse(
        synthetic_input(2, start=START, profile=profile),
        profile,
        faults=faults,
        timeout_days=30,
    )
    reliability = assess(observation)
    duplicated = [f.detail for f in observation.faults_injected if f.kind == "duplicateDeliveries"]
    # (the request's start, and the status queue: standard, so both copies reach the bot,
    # which drops the second by its sequence; the FIFO queues deduplicate by content)
    assert {d.rsplit(" ", 1)[-1] for d in duplicated} >= {
        "wavepilot-local-start-migration",
        "wavepilot-local-slack-status",
    }, duplicated
    assert all(vm.record_status == "COMPLETED" for vm in observation.vms), [
        (vm.record_status, [s.message for s in vm.steps][-2:]) for vm in observation.vms
    ]
    for vm in observation.vms:
        assert sorted(j.kind for j in vm.jobs if j.kind != "terminate") == ["cutover", "test"]
    assert reliability.holds, reliability


def test_an_injected_crash_strikes_a_request_once_and_its_retry_runs_through() -> None:
    function = "wavepilot-local-ingress-handler"
    faults = RuntimeFaults(seed=1, crash_after_handler={"ingress-handler": 1.0})
    batch = {"Records": [{"messageId": "m-1", "receiptHandle": "first"}]}
    assert faults.crashes_after(function, json.dumps(batch))
    # The same message comes back with another receipt handle: the same request, no crash.
    batch["Records"][0]["receiptHandle"] = "second"
    assert not faults.crashes_after(function, json.dumps(batch))
    # A Step Functions retry sends the same input again: no second crash either.
    assert faults.crashes_after(function, b'{"migrationId": "mig-1"}')
    assert not faults.crashes_after(function, b'{"migrationId": "mig-1"}')
    assert faults.crashes_after(function, b'{"migrationId": "mig-2"}')
    assert faults.crashed[function] == 3
