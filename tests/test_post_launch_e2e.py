"""Post-launch actions end to end on the embedded system: the manifest's SSM documents are
put on each source server by the real pipeline, the MGN emulator runs them after each launch
(one fails, one times out, as configured), and the verify step's verdict shows in Slack
through the real bot: a required action that fails rolls the migration back with the
action's output in its thread, an optional one that fails is a warning, and the VM goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from orchestration.local.driver import MigrationDriver
from orchestration.local.slack import Thread
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.statemachine import LaunchSettings, Timings
from tests.support.pipeline import example_requests, spec_of, states_entered
from tests.test_slack_e2e import FAST, _settled_thread, _threads, _wait_for

ACTIONS = [
    {
        "name": "join-domain",
        "ssmDocument": "Contoso-JoinDomain",
        "order": 1001,
        "timeoutSeconds": 900,
        "parameters": {"DomainName": ["contoso.domain-name"]},
    },
    {
        "name": "smoke",
        "ssmDocument": "Contoso-Smoke",
        "order": 1002,
        "timeoutSeconds": 600,
        "mustSucceedForCutover": False,
    },
]
DENIED = "Add-Computer: Access is denied (OU=Servers,DC=contoso,DC=com)"


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _texts(thread: Thread) -> list[str]:
    return [reply.text for reply in thread.replies]


def test_required_actions_gate_the_approval_and_optional_ones_warn(
    system: EmbeddedSystem,
) -> None:
    # GIVEN three VMs whose wave runs a required and an optional post-launch action: the
    # first VM's required action fails, the second's optional one times out, the third's pass
    failing, warned, clean = example_requests(approval_scope="vm", post_launch_actions=ACTIONS)[:3]
    servers = system.seed([spec_of(r) for r in (failing, warned, clean)])
    failing_server, warned_server = servers[failing.migration_id], servers[warned.migration_id]
    system.mgn_of_server(failing_server).faults.fail_post_launch_action(
        failing_server, "join-domain", reason=DENIED
    )
    system.mgn_of_server(warned_server).faults.fail_post_launch_action(
        warned_server, "smoke", times_out=True
    )

    # WHEN they migrate (an approver approves whatever reaches the gate)
    driver = MigrationDriver(system)
    driver.send([failing, warned, clean])
    outcomes = driver.wait([r.migration_id for r in (failing, warned, clean)], timeout=240)

    # THEN the pipeline put the manifest's actions on every server with MGN's action IDs
    for request in (failing, warned, clean):
        server_id = servers[request.migration_id]
        lane = system.mgn_of_server(server_id)
        assert lane.metrics().calls_by_operation.get("PutSourceServerAction", 0) >= 2
    # AND the required failure rolled its VM back before any approval, its output in the thread
    assert outcomes[failing.migration_id].record_status == "ROLLED_BACK"
    assert ("AwaitApproval", "WAITING") not in _steps(outcomes[failing.migration_id].steps)
    rolled_back = _settled_thread(system, failing.migration_id, "rolled back")
    failure = next(t for t in _texts(rolled_back) if t.startswith(":leftwards_arrow_with_hook:"))
    assert f"join-domain (Contoso-JoinDomain) failed: {DENIED}" in failure
    assert "must succeed for cutover" in failure

    # AND the optional timeout is a warning: the VM migrated, and its approver saw it
    assert outcomes[warned.migration_id].record_status == "COMPLETED"
    warned_thread = _settled_thread(system, warned.migration_id, "migrated")
    warning = next(t for t in _texts(warned_thread) if "Post-launch actions" in t)
    assert warning.startswith(":warning:")
    assert "`smoke` (Contoso-Smoke, optional) failed: Execution timed out after 600 seconds" in (
        warning
    )
    assert "`join-domain` (Contoso-JoinDomain) success" in warning
    approval = _approval_message(system, warned.migration_id)
    assert "post-launch actions 1/2 succeeded" in approval.original_text  # before the decision
    assert "`smoke` (Contoso-Smoke, optional) failed" in json.dumps(approval.original_blocks)

    # AND the clean VM's thread says its actions succeeded
    assert outcomes[clean.migration_id].record_status == "COMPLETED"
    clean_thread = _settled_thread(system, clean.migration_id, "migrated")
    assert any(
        t.startswith(":gear: *Post-launch actions* on the test instance succeeded")
        for t in _texts(clean_thread)
    )


def _steps(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(s.get("step")), str(s.get("status"))) for s in steps]


def _approval_message(system: EmbeddedSystem, migration_id: str) -> Any:
    assert system.slack is not None
    stored = _wait_for(
        "the approval message",
        lambda: (found := _threads().get(migration_id)) is not None and found.approval_ts and found,
    )
    thread = system.slack.thread(stored.channel, stored.ts)
    return next(m for m in [thread.root, *thread.replies] if m.ts == stored.approval_ts)


def test_the_batched_design_honours_a_required_actions_failure() -> None:
    # GIVEN the batched launch design: one shared MGN job launches both VMs, and the
    # coordinator's outcome carries no action results (they come after the job ends)
    options = SystemOptions(
        timings=replace(Timings.local(), approval_timeout_seconds=60),
        launch_design="batched",
        launch=replace(LaunchSettings.local("batched"), linger_seconds=1),
    )
    failing, passing = example_requests(approval_scope="vm", post_launch_actions=ACTIONS)[:2]
    with EmbeddedSystem(options) as batched:
        servers = batched.seed([spec_of(r) for r in (failing, passing)])
        failing_server = servers[failing.migration_id]
        batched.mgn_of_server(failing_server).faults.fail_post_launch_action(
            failing_server, "join-domain", reason=DENIED
        )

        # WHEN they migrate
        driver = MigrationDriver(batched)
        driver.send([failing, passing])
        outcomes = driver.wait([failing.migration_id, passing.migration_id], timeout=180)

        # THEN the failing VM rolled back with the action's output, the other migrated
        assert outcomes[failing.migration_id].record_status == "ROLLED_BACK"
        assert outcomes[passing.migration_id].record_status == "COMPLETED"
        # AND the gate's own look verified the passing VM's test; the failing VM's it handed
        # back, and VerifyTestLaunch failed it there (its catch: the rollback), nothing asked
        failing_arn = outcomes[failing.migration_id].execution_arn
        passing_arn = outcomes[passing.migration_id].execution_arn
        assert failing_arn is not None
        assert passing_arn is not None
        entered = states_entered(passing_arn)
        assert "VerifyTestAndAwaitApproval" in entered, entered
        assert "VerifyTestLaunch" not in entered, entered
        entered = states_entered(failing_arn)
        handed_back = entered.index("VerifyTestAndAwaitApproval")
        assert entered[handed_back:].index("VerifyTestLaunch") > 0, entered
        assert "AwaitApproval" not in entered, entered
        assert "Rollback" in entered, entered
        rolled_back = _settled_thread(batched, failing.migration_id, "rolled back")
        assert any(f"failed: {DENIED}" in text for text in _texts(rolled_back))
