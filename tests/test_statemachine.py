"""The state machine definition: placeholders, error names, and the safety rules it keeps."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from orchestration.adapters import mgn as mgn_errors
from orchestration.adapters.errors import TransientError
from orchestration.events import Step
from orchestration.pipeline import errors as pipeline_errors
from orchestration.statemachine import (
    COORDINATOR_DEFINITION_FILE,
    COORDINATOR_FUNCTION_PLACEHOLDERS,
    COORDINATOR_TIMINGS,
    FUNCTION_PLACEHOLDERS,
    MAX_RUNS_PER_LOOP,
    LaunchSettings,
    Timings,
    placeholders,
    render,
    render_coordinator_definition,
    render_definition,
)

ARNS = {
    name: f"arn:aws:lambda:us-east-1:123456789012:function:wavepilot-test-{name}"
    for name in FUNCTION_PLACEHOLDERS.values()
}


ROOT = Path(__file__).resolve().parents[1]
# The Task states whose Lambda reports under another step name than the state's own.
# Batched launches: the lane's coordinator reports StartTestLaunch / StartCutover for each
# server of the job it starts.
REPORTED_AS = {
    "CheckReplication": Step.WAIT_FOR_REPLICATION,
    "RequestTestLaunch": Step.START_TEST_LAUNCH,
    "RequestCutover": Step.START_CUTOVER,
    # Batched: the gate verifies the test launch first (both steps, one invocation).
    "VerifyTestAndAwaitApproval": Step.AWAIT_APPROVAL,
    "AwaitParkDecision": Step.PARK,
    "CheckFinalizeHold": Step.FINALIZE_CUTOVER,
}
# Reported before there is an execution (the ingress and start_migration).
REPORTED_BEFORE_THE_MACHINE = {Step.INTAKE}


@pytest.fixture
def definition() -> dict[str, Any]:
    return render_definition(ARNS, Timings.aws())


def test_every_placeholder_is_a_function_arn_or_a_timing() -> None:
    timing_names = set(Timings.aws().placeholders())
    launch_names = set(LaunchSettings().placeholders())

    assert placeholders() == set(FUNCTION_PLACEHOLDERS) | timing_names | launch_names


def test_the_coordinators_placeholders_are_its_function_its_timings_and_the_launch_settings() -> (
    None
):
    assert placeholders(COORDINATOR_DEFINITION_FILE) == (
        set(COORDINATOR_FUNCTION_PLACEHOLDERS)
        | set(COORDINATOR_TIMINGS)
        | set(LaunchSettings().coordinator_placeholders())
    )
    assert set(COORDINATOR_TIMINGS) <= set(Timings.aws().placeholders())


def test_the_launch_design_is_chosen_where_the_launch_loops_begin(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    assert definition["States"]["Configure"]["Result"]["launchDesign"] == "per-vm"
    for choice, batched, per_vm in [
        ("TestLaunchDesign", "RequestTestLaunch", "CheckReplication"),
        ("CutoverDesign", "CutoverWindowOpen", "StartCutover"),
    ]:
        [rule] = states[choice]["Choices"]
        assert rule == {
            "Variable": "$.config.launchDesign",
            "StringEquals": "batched",
            "Next": batched,
        }
        assert states[choice]["Default"] == per_vm
    # Batched, replication is watched by the lane's coordinator in bulk: no per-VM polling
    assert states["PrepareSource"]["Next"] == "TestLaunchDesign"
    assert states["ReplicationReady"]["Choices"][0]["Next"] == "StartTestLaunch"
    assert states["PrepareCutover"]["Next"] == "CutoverDesign"
    # The cutover waits for its window before it is requested; both requests wait on a token
    # and flow into the verify steps, which read the coordinator's outcome.
    # PrepareCutover says whether the window is open: no invocation only to ask again.
    assert states["CutoverWindowOpen"]["Choices"][0] == {
        "Variable": "$.preparedCutover.window.open",
        "BooleanEquals": True,
        "Next": "RequestCutover",
    }
    assert states["WaitForCutoverWindow"] == {
        "Type": "Wait",
        "SecondsPath": "$.preparedCutover.window.waitSeconds",
        "Next": "RequestCutover",
    }
    for request, result, verify, timeout in [
        (
            "RequestTestLaunch",
            "$.test",
            "VerifyTestAndAwaitApproval",  # the gate verifies first; hands back what it cannot
            Timings.aws().test_request_timeout_seconds,
        ),
        ("RequestCutover", "$.cutover", "VerifyCutover", LaunchSettings().cutover_timeout_seconds),
    ]:
        state = states[request]
        assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
        assert state["Parameters"]["FunctionName"] == ARNS["request_launch"]
        assert state["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
        assert (state["ResultPath"], state["Next"], state["TimeoutSeconds"]) == (
            result,
            verify,
            timeout,
        )
    # The gate that verifies first: the approval gate's function, told to verify, its
    # answer at $.approval (a decision, or the test handed back to VerifyTestLaunch, with the
    # first look's result kept at $.testCheck when there was one).
    gate = states["VerifyTestAndAwaitApproval"]
    assert gate["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert gate["Parameters"]["FunctionName"] == ARNS["request_approval"]
    assert gate["Parameters"]["Payload"]["verifyFirst"] == "test"
    assert (gate["ResultPath"], gate["Next"]) == ("$.approval", "TestVerifiedAtGate")
    assert gate["TimeoutSeconds"] == states["AwaitApproval"]["TimeoutSeconds"]
    # A gate: retried as AwaitApproval is (not after a crash: that would announce a second
    # approval), caught as it is.
    assert gate["Retry"] == states["AwaitApproval"]["Retry"]
    assert gate["Catch"] == states["AwaitApproval"]["Catch"]
    assert [(c["Variable"], c["Next"]) for c in states["TestVerifiedAtGate"]["Choices"]] == [
        ("$.approval.testCheck", "KeepTestCheck"),
        ("$.approval.verified", "VerifyTestLaunch"),
    ]
    assert states["TestVerifiedAtGate"]["Default"] == "PrepareCutover"
    assert (states["KeepTestCheck"]["InputPath"], states["KeepTestCheck"]["ResultPath"]) == (
        "$.approval.testCheck",
        "$.testCheck",
    )
    assert states["KeepTestCheck"]["Next"] == "TestLaunchVerified"
    rendered = render_definition(ARNS, Timings.aws(), LaunchSettings(design="batched"))
    assert rendered["States"]["Configure"]["Result"]["launchDesign"] == "batched"


def test_the_coordinator_loop_lingers_runs_and_ends_when_idle_or_handed_over() -> None:
    launch = LaunchSettings(design="batched", linger_seconds=42, hand_over_after_runs=500)
    loop = render_coordinator_definition(
        {"coordinate_launches": "arn:coordinate"}, Timings.aws(), launch
    )
    states = loop["States"]
    assert states["Configure"]["Result"]["lingerSeconds"] == 42
    assert states["Configure"]["Result"]["handOverAfterRuns"] == 500
    # The runs are counted from 0 in each execution; each run returns them, one more.
    assert states["Configure"]["Next"] == "CountRuns"
    assert (states["CountRuns"]["Result"], states["CountRuns"]["ResultPath"]) == (
        {"runs": 0, "waitSeconds": 0},
        "$.run",
    )
    assert states["CountRuns"]["Next"] == "Linger"
    assert states["Linger"]["Next"] == "Coordinate"
    task = states["Coordinate"]
    assert task["Resource"] == "arn:coordinate"
    assert task["Parameters"]["execution.$"] == "$$.Execution.Name"
    assert task["Parameters"]["runs.$"] == "$.run.runs"
    assert task["Parameters"]["waitedSeconds.$"] == "$.run.waitSeconds"
    assert task["ResultPath"] == "$.run"
    assert task["TimeoutSeconds"] == Timings.aws().task_timeout_seconds
    assert task["Retry"][0]["JitterStrategy"] == "FULL"
    assert states["Idle"]["Choices"][0]["Next"] == "Done"
    assert states["WaitForNextRun"] == {
        "Type": "Wait",
        "SecondsPath": "$.run.waitSeconds",
        "Next": "Coordinate",
    }


def test_launch_settings_refuse_an_unknown_design_and_non_positive_quotas() -> None:
    with pytest.raises(ValueError, match="launch design"):
        LaunchSettings(design="bulk")
    with pytest.raises(ValueError, match="quotas"):
        LaunchSettings(servers_per_job=0)
    for runs in (0, MAX_RUNS_PER_LOOP + 1):
        with pytest.raises(ValueError, match="hand_over_after_runs"):
            LaunchSettings(hand_over_after_runs=runs)
    # A run costs about 9 history events, more when retried: far below 25,000 either way.
    assert LaunchSettings.aws().hand_over_after_runs * 9 <= 10_000
    assert MAX_RUNS_PER_LOOP * 9 <= 20_000
    assert LaunchSettings.aws().design == "per-vm"
    assert LaunchSettings.local("batched").linger_seconds < LaunchSettings.aws().linger_seconds


def test_rendering_refuses_missing_or_unknown_placeholders() -> None:
    values = dict.fromkeys(placeholders(), "x")
    with pytest.raises(ValueError, match="missing"):
        render({k: v for k, v in values.items() if k != "PollMaxSeconds"})
    with pytest.raises(ValueError, match="not in the template"):
        render({**values, "Surprise": "1"})


def test_every_error_name_the_definition_matches_is_raised_by_our_code(
    definition: dict[str, Any],
) -> None:
    ours = {
        name
        for module in (pipeline_errors, mgn_errors)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Exception)
    } | {TransientError.__name__, pipeline_errors.APPROVAL_REJECTED}
    used = {
        error
        for state in definition["States"].values()
        for rule in (*state.get("Retry", []), *state.get("Catch", []))
        for error in rule["ErrorEquals"]
        if not error.startswith(("States.", "Lambda.", "Runtime."))
    }

    assert used
    assert used <= ours, used - ours


def test_every_task_has_a_timeout_retries_and_a_way_to_rollback(
    definition: dict[str, Any],
) -> None:
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        if name == "AwaitParkDecision":  # as long as the manifest's parkFor (the Park result)
            assert state["TimeoutSecondsPath"] == "$.park.parkSeconds"
        else:
            assert state["TimeoutSeconds"] > 0, name
        assert state["Retry"], name
        catches = [c for c in state["Catch"] if "States.ALL" in c["ErrorEquals"]]
        assert catches, name
        expected = "RollbackFailed" if name == "Rollback" else "Rollback"
        if name in PARKABLE:
            expected = "FailedBeforeCutover"
        assert catches[0]["Next"] == expected, name


# The test launch's Tasks: their failure is parked under ``onFailure: park``.
PARKABLE = {"RequestTestLaunch", "StartTestLaunch", "VerifyTestLaunch"}


def test_a_failed_test_launch_parks_only_when_the_manifest_says_park(
    definition: dict[str, Any],
) -> None:
    choice = definition["States"]["FailedBeforeCutover"]
    assert choice["Default"] == "Rollback"
    (rule,) = choice["Choices"]
    assert rule["Next"] == "Park"
    conditions = rule["And"]
    assert {"Variable": "$.spec.onFailure", "StringEquals": "park"} in conditions
    # A cancelled wave rolls back, never parks.
    assert {"Not": {"Variable": "$.error.Error", "StringEquals": "WaveCancelledError"}} in (
        conditions
    )
    # Nothing after the approval is parked: a cutover's failure rolls back at once.
    for name in ("StartCutover", "RequestCutover", "VerifyCutover", "FinalizeCutover"):
        assert definition["States"][name]["Catch"][-1]["Next"] == "Rollback", name
    # Retry returns to the test launch, with the failed attempt forgotten.
    states = definition["States"]
    assert states["ParkDecided"]["Choices"][0]["Next"] == "ForgetFailedTest"
    forgotten = states["ForgetFailedTest"]["Parameters"]
    assert {"test", "testCheck", "error", "park"} <= set(forgotten)
    assert forgotten["testAttempt.$"] == "$.parkDecision.parkId"
    assert states["RetryTestLaunch"]["Next"] == "TestLaunchDesign"
    assert states["AwaitParkDecision"]["Catch"][0] == {
        "ErrorEquals": ["States.Timeout"],
        "ResultPath": "$.parkTimeout",
        "Next": "ParkExpired",
    }


# The gates: a retry would announce a second approval (or park) under a new task token, and
# the first message's buttons would answer a token nobody waits for.
NOT_RETRIED_ON_CRASH = {"AwaitApproval", "VerifyTestAndAwaitApproval", "AwaitParkDecision"}


def test_a_lambda_crash_after_its_side_effect_is_retried_briefly_where_the_step_is_idempotent(
    definition: dict[str, Any],
) -> None:
    """A step's Lambda that dies after its work (Runtime.ExitError; Lambda.Unknown for what
    Step Functions cannot name) is retried, not rolled back: each step finds what it did
    (the MGN job it started is adopted while it runs: minutes, against a retry within
    seconds). The gates are not retried (a second approval would be announced)."""
    timings = Timings.aws()
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        crash_rules = [r for r in state["Retry"] if "Runtime.ExitError" in r["ErrorEquals"]]
        if name in NOT_RETRIED_ON_CRASH:
            assert crash_rules == [], name
            continue
        (rule,) = crash_rules
        assert rule["ErrorEquals"] == ["Lambda.Unknown", "Runtime.ExitError"], name
        assert rule["IntervalSeconds"] == timings.retry_interval_seconds, name
        assert rule["MaxAttempts"] == 3, name  # bounded: a Lambda crashing every time fails
        assert state["Retry"][-1] is rule, name  # after the rules for named errors


def test_throttling_is_retried_with_jittered_backoff(definition: dict[str, Any]) -> None:
    _, rule, _ = definition["States"]["StartTestLaunch"]["Retry"]
    assert "MgnThrottledError" in rule["ErrorEquals"]
    assert rule["JitterStrategy"] == "FULL"
    assert rule["BackoffRate"] > 1


def test_a_quota_wait_is_a_steady_poll_that_outlasts_a_long_queue(
    definition: dict[str, Any],
) -> None:
    """Waiting for a slot of MGN's concurrent-job quota is not a transient error: with one
    server per job a VM may wait for many jobs ahead of it (N/J rounds of ~30 min each), so
    every Task retries ``MgnQuotaExceededError`` first, on its own rule, with a budget of hours
    (the shared backoff gave ~50 min, ~25 with full jitter, and failed migrations that only
    had to wait). Retries grow to a cap of minutes, not seconds: hundreds of executions
    retrying every 30 s each made MGN calls (and, rehearsed, wall time) grow with the square
    of the wave's size."""
    timings = Timings.aws()
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        rule = state["Retry"][0]
        # The steps that act on a server after a batched launch also wait, the same way, for
        # its shared job to complete (LaunchJobRunningError: one job per server).
        waits_for_its_job = name in {"PrepareCutover", "FinalizeCutover"}
        assert rule["ErrorEquals"] == [
            "MgnQuotaExceededError",
            *(["LaunchJobRunningError"] if waits_for_its_job else []),
        ], name
        assert rule["IntervalSeconds"] == timings.poll_initial_seconds, name
        assert rule["BackoffRate"] == timings.poll_backoff > 1, name
        assert rule["MaxDelaySeconds"] == timings.quota_retry_max_seconds, name
        assert rule["JitterStrategy"] == "FULL", name
        # Full jitter waits half the capped delay on average: still >= 12 hours of waiting.
        assert rule["MaxDelaySeconds"] / 2 * rule["MaxAttempts"] >= 12 * 3600, name
        assert all("MgnQuotaExceededError" not in r["ErrorEquals"] for r in state["Retry"][1:])


def test_the_approval_gate_times_out_into_a_rollback(definition: dict[str, Any]) -> None:
    gate = definition["States"]["AwaitApproval"]

    assert gate["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert gate["TimeoutSeconds"] == Timings.aws().approval_timeout_seconds
    assert gate["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    timeout = next(c for c in gate["Catch"] if c["ErrorEquals"] == ["States.Timeout"])
    assert definition["States"][timeout["Next"]]["Next"] == "Rollback"


def test_a_test_launch_prepared_by_validation_skips_its_own_preparation(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    assert states["ValidateInput"]["ResultPath"] == "$.source"
    assert states["ValidateInput"]["Next"] == "PreparedForTest"
    choice = states["PreparedForTest"]
    assert choice["Choices"] == [
        {"Variable": "$.source.preparedForTest", "BooleanEquals": True, "Next": "KeepPrepared"}
    ]
    assert choice["Default"] == "PrepareSource"
    # what validation prepared lands where PrepareSource's result would
    kept = states["KeepPrepared"]
    assert (kept["Type"], kept["InputPath"], kept["ResultPath"]) == (
        "Pass",
        "$.source.prepared",
        states["PrepareSource"]["ResultPath"],
    )
    assert kept["Next"] == states["PrepareSource"]["Next"] == "TestLaunchDesign"


def test_a_verified_cutover_waits_its_hold_before_finalize_only_when_it_has_one(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    verified = states["CutoverVerified"]
    [done] = verified["Choices"]
    assert (done["Variable"], done["BooleanEquals"]) == ("$.cutoverCheck.done", True)
    # finalized by VerifyCutover itself (no hold, nothing stopped it): the migration is done
    finalized = states[done["Next"]]
    [at_once] = finalized["Choices"]
    assert (at_once["Variable"], at_once["BooleanEquals"], at_once["Next"]) == (
        "$.cutoverCheck.finalized",
        True,
        "Migrated",
    )
    assert states["VerifyCutover"]["Parameters"]["startedAt.$"] == "$$.Execution.StartTime"
    held = states[finalized["Default"]]
    [hold] = held["Choices"]
    assert (hold["Variable"], hold["NumericGreaterThan"]) == ("$.cutoverCheck.holdSeconds", 0)
    assert held["Default"] == "FinalizeCutover"
    # The hold is looked at (has it passed, did an operator ask to finalize now) and waited
    # between looks; it ends only in FinalizeCutover (or a rollback)
    check = states[hold["Next"]]
    assert (check["Type"], check["Parameters"]["phase"], check["ResultPath"]) == (
        "Task",
        "hold",
        "$.hold",
    )
    over = states[check["Next"]]
    [ended] = over["Choices"]
    assert (ended["Variable"], ended["BooleanEquals"], ended["Next"]) == (
        "$.hold.done",
        True,
        "FinalizeCutover",
    )
    wait = states[over["Default"]]
    assert (wait["Type"], wait["SecondsPath"], wait["Next"]) == (
        "Wait",
        "$.hold.waitSeconds",
        "CheckFinalizeHold",
    )


def test_polling_waits_come_from_the_state_not_constants(definition: dict[str, Any]) -> None:
    waits = [s for s in definition["States"].values() if s["Type"] == "Wait"]

    assert waits
    assert all("SecondsPath" in w and "Seconds" not in w for w in waits)


def test_the_template_is_json_once_rendered_and_states_are_reachable(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    reachable, frontier = set(), [definition["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        state = states[name]
        frontier.extend(
            [state[key] for key in ("Next", "Default") if key in state]
            + [c["Next"] for c in state.get("Choices", [])]
            + [c["Next"] for c in state.get("Catch", [])]
        )
    assert reachable == set(states)
    json.dumps(definition)


def test_every_task_state_reports_a_step_and_every_step_is_reported(
    definition: dict[str, Any],
) -> None:
    tasks = {name for name, state in definition["States"].items() if state["Type"] == "Task"}
    assert set(REPORTED_AS) <= tasks
    reported = {REPORTED_AS.get(name, name) for name in tasks}

    assert reported - set(Step) == set(), "a Task state reports a step that is not a Step"
    assert set(Step) - reported == REPORTED_BEFORE_THE_MACHINE, "a Step no Task state reports"


def test_every_step_is_used_by_the_code() -> None:
    used = {
        node.attr
        for package in ("orchestration", "bot")
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "orchestration" / "events.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Step"
    }

    assert {step.name for step in Step} - used == set()
    assert used - {step.name for step in Step} == set()


def test_a_lane_whose_account_has_raised_quotas_gets_its_own() -> None:
    """MGN's job quotas are per account and Region, and accounts have them raised: the
    coordinator's configuration carries each configured lane's own."""
    launch = LaunchSettings(
        design="batched",
        quotas_by_lane={"444455556666/eu-west-1": {"concurrent_jobs": 40}},
    )
    loop = render_coordinator_definition(
        {"coordinate_launches": "arn:aws:lambda:us-east-1:123456789012:function:c"},
        Timings.aws(),
        launch,
    )
    config = loop["States"]["Configure"]["Result"]
    assert config["quotasByLane"] == {"444455556666/eu-west-1": {"concurrentJobs": 40}}
    assert config["concurrentJobs"] == 20  # every other lane: MGN's default
    for wrong in (
        {"eu-west-1": {"concurrent_jobs": 40}},
        {"444455556666/eu-west-1": {"concurrent_jobs": 0}},
        {"444455556666/eu-west-1": {"jobs": 40}},
    ):
        with pytest.raises(ValueError, match="quotas_by_lane"):
            LaunchSettings(quotas_by_lane=wrong)
