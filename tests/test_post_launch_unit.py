"""Post-launch actions in the pipeline: what MGN's report means (wait, go on with warnings,
fail), which actions the prepare step puts or removes, and the verify step's gate."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.threads import ThreadState, advance, approval_request_message
from orchestration.adapters.mgn import JobServer
from orchestration.events import ApprovalRequested, MigrationStatusUpdated
from orchestration.pipeline.errors import HealthCheckFailedError
from orchestration.pipeline.post_launch import (
    SSM_GRACE_SECONDS,
    action_changes,
    judge,
    wait_budget_seconds,
)
from orchestration.post_launch_actions import (
    ActionExecution,
    PostLaunchActionSpec,
    PostLaunchStatus,
    SourceServerAction,
)
from tests.support.fakes import job, running_instance
from tests.test_slack_messages import _event as _approval_event
from tests.test_steps_unit import SERVER, Pipeline, pipeline  # noqa: F401

JOIN = PostLaunchActionSpec(
    name="join-domain", ssm_document="Contoso-Join", order=1001, timeout_seconds=600
)
SMOKE = PostLaunchActionSpec(
    name="smoke", ssm_document="Contoso-Smoke", order=1002, must_succeed_for_cutover=False
)
INSTANCE = "i-0123456789abcdef0"


def ran(name: str, status: str, *, must: bool = True, reason: str = "") -> ActionExecution:
    return ActionExecution(
        action_name=name,
        ssm_document=f"Contoso-{name}",
        status=status,  # type: ignore[arg-type]
        must_succeed_for_cutover=must,
        failure_reason=reason,
    )


def report(*executions: ActionExecution) -> PostLaunchStatus:
    return PostLaunchStatus(ssm_agent_discovered=True, executions=executions)


# --- the verdict -----------------------------------------------------------------------------


def test_actions_not_yet_reported_or_running_are_waited_for_within_their_budget() -> None:
    verdict = judge([JOIN, SMOKE], report(ran("join-domain", "IN_PROGRESS")), waited_seconds=60)

    assert verdict.waiting
    assert [(r.name, r.status) for r in verdict.results] == [
        ("join-domain", "IN_PROGRESS"),
        ("smoke", "NOT_STARTED"),
    ]
    assert wait_budget_seconds([JOIN, SMOKE]) == 600 + 3600 + SSM_GRACE_SECONDS


def test_past_the_budget_an_unfinished_action_has_timed_out_and_blocks_if_it_must_succeed() -> None:
    budget = wait_budget_seconds([JOIN])

    verdict = judge([JOIN], None, waited_seconds=budget + 1)

    assert not verdict.waiting
    [blocking] = verdict.blocking
    assert (blocking.name, blocking.status) == ("join-domain", "TIMED_OUT")
    assert f"never started after {budget} s" in blocking.reason


def test_a_failed_required_action_blocks_and_a_failed_optional_one_warns() -> None:
    verdict = judge(
        [JOIN, SMOKE],
        report(
            ran("join-domain", "FAILED", reason="domain controller unreachable"),
            ran("smoke", "FAILED", must=False, reason="exit 2"),
        ),
        waited_seconds=300,
    )

    assert not verdict.waiting
    assert [r.line() for r in verdict.blocking] == [
        "join-domain (Contoso-join-domain) failed: domain controller unreachable"
    ]
    assert [r.line() for r in verdict.warnings] == [
        "smoke (Contoso-smoke, optional) failed: exit 2"
    ]


def test_actions_set_by_hand_in_mgn_are_judged_by_their_own_flag() -> None:
    # GIVEN no action in the manifest, but one a team set in MGN's console that failed
    verdict = judge(
        [], report(ran("console-hardening", "FAILED", reason="denied")), waited_seconds=0
    )

    assert [r.name for r in verdict.blocking] == ["console-hardening"]


def test_without_actions_nothing_is_waited_for() -> None:
    verdict = judge([], None, waited_seconds=0)

    assert (verdict.waiting, verdict.results) == (False, ())


# --- what the prepare step changes in MGN ----------------------------------------------------


def held(spec: PostLaunchActionSpec, **changes: Any) -> SourceServerAction:
    action = SourceServerAction(
        action_id=spec.action_id,
        action_name=spec.name,
        document_identifier=spec.ssm_document,
        order=spec.order,
        must_succeed_for_cutover=spec.must_succeed_for_cutover,
        timeout_seconds=spec.timeout_seconds,
        parameters=dict(spec.parameters),
    )
    return replace(action, **changes)


def test_only_what_differs_is_put_and_only_wavepilots_stale_actions_are_removed() -> None:
    console = SourceServerAction("hand-made-1", "hardening", "Contoso-Harden", 1500, True, None)
    current = [
        held(JOIN),  # as wanted: left alone
        held(SMOKE, timeout_seconds=60),  # changed in the manifest: put again
        held(JOIN, action_id="wavepilot-old", action_name="old"),  # no longer wanted
        console,  # set by hand in MGN's console: never touched
    ]

    changes = action_changes(current, [JOIN, SMOKE])

    assert [a.name for a in changes.put] == ["smoke"]
    assert changes.remove == ("wavepilot-old",)


# --- the steps -------------------------------------------------------------------------------


def _with_actions(running: Pipeline, *actions: PostLaunchActionSpec) -> dict[str, Any]:
    return running.state(post_launch_actions=[a.model_dump(by_alias=False) for a in actions])


def _launched(running: Pipeline, post_launch: PostLaunchStatus | None) -> None:
    finished = job(
        "mgnjob-test", status="COMPLETED", launch_status="LAUNCHED", instance_id=INSTANCE
    )
    running.mgn.add_job(
        replace(finished, servers=(JobServer(SERVER, "LAUNCHED", INSTANCE, post_launch),))
    )
    running.ec2.instances[INSTANCE] = running_instance(INSTANCE)


def test_prepare_puts_the_manifests_actions_once(pipeline: Pipeline) -> None:  # noqa: F811
    state = _with_actions(pipeline, JOIN, SMOKE)

    first = pipeline.steps.prepare_source(state, "test")
    pipeline.steps.prepare_source(state, "test")  # a retry: nothing differs

    assert first["launchTemplateVersion"]
    assert sorted(pipeline.mgn.actions[SERVER]) == ["wavepilot-join-domain", "wavepilot-smoke"]
    assert pipeline.mgn.calls["put_source_server_action"] == 2
    [prepared, _] = pipeline.reporter.steps
    assert prepared.message.endswith("; post-launch actions: join-domain, smoke")


def test_the_server_is_tagged_before_its_first_action_and_untagged_after_its_last(
    pipeline: Pipeline,  # noqa: F811
) -> None:
    order: list[str] = []

    def noted(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            order.append(name)
            return method(*args, **kwargs)

        return call

    for name in ("tag_resource", "put_source_server_action", "untag_resource"):
        setattr(pipeline.mgn, name, noted(name, getattr(pipeline.mgn, name)))

    # WHEN a VM with actions is prepared: the tag goes on first, then the actions
    pipeline.steps.prepare_source(_with_actions(pipeline, JOIN), "test")
    assert order == ["tag_resource", "put_source_server_action"]
    assert pipeline.mgn.servers[SERVER].actions_tagged

    # WHEN its manifest drops them: listed (the server is tagged), removed, then untagged
    pipeline.mgn.calls.clear()
    pipeline.steps.prepare_source(pipeline.state(), "test")
    assert pipeline.mgn.actions[SERVER] == {}
    assert order[-1] == "untag_resource"
    assert not pipeline.mgn.servers[SERVER].actions_tagged
    assert pipeline.mgn.calls["source_server_actions"] == 1

    # AND after that a VM without actions costs no call about them at all
    pipeline.mgn.calls.clear()
    pipeline.steps.prepare_source(pipeline.state(), "test")
    assert not {"source_server_actions", "tag_resource", "untag_resource"} & set(pipeline.mgn.calls)


def test_verification_waits_for_running_actions(pipeline: Pipeline) -> None:  # noqa: F811
    _launched(pipeline, report(ran("join-domain", "IN_PROGRESS")))
    state = {**_with_actions(pipeline, JOIN), "test": {"jobId": "mgnjob-test"}}

    polled = pipeline.steps.verify_launch(state, "test")

    assert (polled["done"], polled["stage"]) == (False, "post-launch actions")
    assert polled["postLaunchActions"][0]["status"] == "IN_PROGRESS"
    assert pipeline.probe.probed == []  # health checks run once the actions are done

    # AND past the actions' budget (on the step's clock) an action still running fails it
    pipeline.clock.advance(timedelta(seconds=wait_budget_seconds([JOIN]) + 1))
    with pytest.raises(HealthCheckFailedError, match=r"join-domain .* never ended: still running"):
        pipeline.steps.verify_launch({**state, "testCheck": polled}, "test")


def test_a_failed_required_action_fails_verification_with_its_output(
    pipeline: Pipeline,  # noqa: F811
) -> None:
    _launched(pipeline, report(ran("join-domain", "FAILED", reason="Access denied to OU")))
    state = {**_with_actions(pipeline, JOIN), "test": {"jobId": "mgnjob-test"}}

    with pytest.raises(HealthCheckFailedError) as failed:
        pipeline.steps.verify_launch(state, "test")

    assert "join-domain (Contoso-join-domain) failed: Access denied to OU" in str(failed.value)
    assert f"test instance {INSTANCE}" in str(failed.value)


def test_a_failed_optional_action_is_a_warning_the_approver_sees(
    pipeline: Pipeline,  # noqa: F811
) -> None:
    _launched(
        pipeline,
        report(ran("join-domain", "SUCCESS"), ran("smoke", "FAILED", must=False, reason="exit 2")),
    )
    state = {**_with_actions(pipeline, JOIN, SMOKE), "test": {"jobId": "mgnjob-test"}}

    result = pipeline.steps.verify_launch(state, "test")

    assert result["done"] is True
    assert [(a["name"], a["status"]) for a in result["postLaunchActions"]] == [
        ("join-domain", "SUCCESS"),
        ("smoke", "FAILED"),
    ]
    [verified] = pipeline.reporter.steps
    assert (
        "post-launch actions: join-domain (Contoso-join-domain) succeeded; smoke "
        in verified.message
    )
    assert verified.data["postLaunchActions"] == result["postLaunchActions"]


def test_a_batched_launch_reads_the_actions_results_from_its_job(
    pipeline: Pipeline,  # noqa: F811
) -> None:
    _launched(pipeline, report(ran("join-domain", "SUCCESS")))
    outcome = {
        "started": True,
        "jobId": "mgnjob-test",
        "instanceId": INSTANCE,
        "launchStatus": "LAUNCHED",
        "detail": "",
    }

    result = pipeline.steps.verify_launch(
        {**_with_actions(pipeline, JOIN), "test": outcome}, "test"
    )

    assert [(a["name"], a["status"]) for a in result["postLaunchActions"]] == [
        ("join-domain", "SUCCESS")
    ]


# --- what Slack shows --------------------------------------------------------------------------


def _actions_event(**changes: Any) -> ApprovalRequested:
    return _approval_event(
        post_launch_actions=[
            {"name": "join-domain", "ssmDocument": "Contoso-Join", "status": "SUCCESS"},
            {
                "name": "smoke",
                "ssmDocument": "Contoso-Smoke",
                "status": "FAILED",
                "mustSucceedForCutover": False,
                "reason": "exit 2 <stderr>",
            },
        ],
        **changes,
    )


def test_the_approval_message_lists_the_actions_results_within_block_kit() -> None:
    message = approval_request_message(_actions_event())

    assert "post-launch actions 1/2 succeeded" in message.text
    text = "\n".join(b["text"]["text"] for b in message.blocks if "text" in b)
    assert ":white_check_mark: `join-domain` (Contoso-Join) success" in text
    assert ":warning: `smoke` (Contoso-Smoke, optional) failed: exit 2 &lt;stderr&gt;" in text
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    # AND a gate without actions shows no such section
    plain = approval_request_message(_approval_event())
    assert "Post-launch actions" not in json.dumps(plain.blocks)


def _verified(sequence: int, data: dict[str, Any]) -> MigrationStatusUpdated:
    return MigrationStatusUpdated(
        migration_id="mig-1",
        wave="wave-1",
        app_name="app",
        target_vm_name="vm-01",
        correlation_id="c",
        sequence=sequence,
        timestamp=datetime(2026, 11, 26, tzinfo=UTC),
        step="VerifyTestLaunch",
        status="SUCCEEDED",
        message="test instance i-1 running",
        data=data,
    )


def test_a_verified_launch_with_actions_is_a_reply_in_the_thread_and_without_none() -> None:
    start = ThreadState("mig-1", "wave-1", "app", "vm-01")
    results = [
        {
            "name": "join-domain",
            "ssmDocument": "Contoso-Join",
            "status": "SUCCESS",
            "mustSucceedForCutover": True,
            "reason": "",
        }
    ]

    with_actions = advance(start, _verified(1, {"postLaunchActions": results}))
    without = advance(start, _verified(1, {}))

    [reply] = with_actions.replies
    assert reply.text == (
        ":gear: *Post-launch actions* on the test instance succeeded\n"
        ":white_check_mark: `join-domain` (Contoso-Join) success"
    )
    assert without.replies == ()


def test_the_launch_timeout_leaves_the_actions_their_time(pipeline: Pipeline) -> None:  # noqa: F811
    # GIVEN actions that ran longer than the launch timeout, then a health check that fails once
    _launched(pipeline, report(ran("join-domain", "SUCCESS")))
    pipeline.probe.failing = {8080}
    state = {**_with_actions(pipeline, JOIN), "test": {"jobId": "mgnjob-test"}}
    first_look = pipeline.clock.now().timestamp()
    pipeline.clock.advance(timedelta(seconds=601))  # past launchTimeoutSeconds (600)
    late = {**state, "testCheck": {"startedAt": first_look, "waitSeconds": 5, "polls": 3}}

    # WHEN the health checks are looked at
    polled = pipeline.steps.verify_launch(late, "test")

    # THEN they are polled again rather than failed at once
    assert (polled["done"], polled["stage"]) == (False, "health checks")
