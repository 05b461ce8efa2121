"""The MGN emulator's post-launch actions, through the real boto3 `mgn` client: stored per
source server (Put/List/RemoveSourceServerAction), run on each launched instance in order on
the simulated clock, and reported on the job's participating servers with MGN's shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from orchestration.local.mgn import (
    Boto3Ec2LaunchPort,
    EmulatorSettings,
    MgnEmulator,
    SimulatedClock,
    SourceServer,
)
from orchestration.local.mgn.settings import PostLaunchTiming
from tests.test_mgn_emulator import (  # the emulator suite's EC2 fixtures, shared
    AFTER_LAUNCH,
    START,
    client_for,
    ec2,  # noqa: F401
    ec2_client,  # noqa: F401
    job,
    raw_post,
    seed_ready,
    serve,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_mgn.client import MgnClient

TIMING = PostLaunchTiming()  # the SSM agent is seen 1 minute after boot, each action 2 minutes
# Boot ends the launch: AFTER_LAUNCH is a second past it.
LAUNCHED_AT = AFTER_LAUNCH - timedelta(seconds=1)
STORE = {"SERVICE": [{"parameterType": "STRING", "parameterName": "billing.service-name"}]}


@pytest.fixture
def emulator(ec2: EC2Client) -> Iterator[MgnEmulator]:  # noqa: F811
    clock = SimulatedClock(speed=0, start=START)
    yield from serve(
        MgnEmulator(Boto3Ec2LaunchPort(ec2), clock=clock, settings=EmulatorSettings(seed=11))
    )


@pytest.fixture
def mgn(emulator: MgnEmulator) -> MgnClient:
    return client_for(emulator)


def put(
    mgn: MgnClient, server: SourceServer, name: str, order: int, **extra: Any
) -> dict[str, Any]:
    response: dict[str, Any] = dict(
        mgn.put_source_server_action(
            sourceServerID=server.source_server_id,
            actionID=f"wavepilot-{name}",
            actionName=name,
            documentIdentifier=f"Contoso-{name}",
            order=order,
            **extra,
        )
    )
    response.pop("ResponseMetadata")
    return response


def statuses(mgn: MgnClient, job_id: str, server: SourceServer) -> dict[str, Any]:
    [entry] = [
        s
        for s in job(mgn, job_id)["participatingServers"]
        if s["sourceServerID"] == server.source_server_id
    ]
    status: dict[str, Any] = entry.get("postLaunchActionsStatus", {})
    return status


def by_name(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        item["ssmDocument"]["actionName"]: (item["executionStatus"], item.get("failureReason", ""))
        for item in status.get("postLaunchActionsLaunchStatusList", [])
    }


def test_actions_are_put_listed_replaced_and_removed(emulator: MgnEmulator, mgn: MgnClient) -> None:
    # GIVEN a server with two actions put, one with parameters from Parameter Store
    server = seed_ready(emulator)
    stored = put(
        mgn,
        server,
        "join-domain",
        1001,
        mustSucceedForCutover=True,
        timeoutSeconds=600,
        parameters=STORE,
    )
    put(mgn, server, "smoke", 1002)
    assert stored == {
        "actionID": "wavepilot-join-domain",
        "actionName": "join-domain",
        "documentIdentifier": "Contoso-join-domain",
        "order": 1001,
        "active": True,
        "timeoutSeconds": 600,
        "mustSucceedForCutover": True,
        "parameters": STORE,
    }

    # WHEN one is replaced (same actionID) and listed, filtered and paged
    put(mgn, server, "join-domain", 1005, mustSucceedForCutover=False)
    listed = mgn.list_source_server_actions(sourceServerID=server.source_server_id)["items"]
    paginator = mgn.get_paginator("list_source_server_actions")
    pages = list(
        paginator.paginate(sourceServerID=server.source_server_id, PaginationConfig={"PageSize": 1})
    )
    only = mgn.list_source_server_actions(
        sourceServerID=server.source_server_id, filters={"actionIDs": ["wavepilot-smoke"]}
    )["items"]

    # THEN the replacement kept its place, pages cover both once, the filter picks one
    assert [(a["actionID"], a["order"], a["mustSucceedForCutover"]) for a in listed] == [
        ("wavepilot-join-domain", 1005, False),
        ("wavepilot-smoke", 1002, False),
    ]
    assert [a["actionID"] for page in pages for a in page["items"]] == [
        "wavepilot-join-domain",
        "wavepilot-smoke",
    ]
    assert [a["actionID"] for a in only] == ["wavepilot-smoke"]

    # AND a removal (twice: a retry) leaves the other
    for _ in range(2):
        mgn.remove_source_server_action(
            sourceServerID=server.source_server_id, actionID="wavepilot-join-domain"
        )
    listed = mgn.list_source_server_actions(sourceServerID=server.source_server_id)["items"]
    assert [a["actionID"] for a in listed] == ["wavepilot-smoke"]


def test_actions_on_unknown_servers_and_out_of_range_orders_are_refused(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = seed_ready(emulator)
    with pytest.raises(mgn.exceptions.ResourceNotFoundException):
        mgn.list_source_server_actions(sourceServerID="s-00000000000000000")
    # MGN's custom actions are ordered 1001..10000 (1..1000 are its own): botocore checks
    # the minimum itself, the emulator the rest (as the service would)
    body = {
        "sourceServerID": server.source_server_id,
        "actionID": "wavepilot-late",
        "actionName": "late",
        "documentIdentifier": "Contoso-late",
    }
    for order in (1000, 10001):
        status, headers, _ = raw_post(
            emulator, "/PutSourceServerAction", json.dumps({**body, "order": order}).encode()
        )
        assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert mgn.list_source_server_actions(sourceServerID=server.source_server_id)["items"] == []


def test_actions_run_in_order_after_boot_and_report_on_the_job(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    # GIVEN a server with an action that succeeds, one that fails and one that times out,
    # put out of order, and an inactive one
    server = seed_ready(emulator)
    put(mgn, server, "smoke", 1003, mustSucceedForCutover=False)
    put(mgn, server, "join-domain", 1001, mustSucceedForCutover=True, timeoutSeconds=900)
    put(mgn, server, "agents", 1002, mustSucceedForCutover=True, timeoutSeconds=600)
    put(mgn, server, "disabled", 1004, active=False)
    emulator.faults.fail_post_launch_action(
        server.source_server_id, "agents", reason="msiexec exited 1603: install failed"
    )
    emulator.faults.fail_post_launch_action(server.source_server_id, "smoke", times_out=True)

    # WHEN a test launch boots
    job_id = mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]
    emulator.clock.advance(LAUNCHED_AT)
    booted = statuses(mgn, job_id, server)

    # THEN nothing is reported until the SSM agent is seen, then the first action runs
    assert booted == {"postLaunchActionsLaunchStatusList": []}
    emulator.clock.advance(TIMING.ssm_agent_discovery)
    first = statuses(mgn, job_id, server)
    assert first["ssmAgentDiscoveryDatetime"] == "2026-01-05T09:11:30.000000Z"
    assert by_name(first) == {"join-domain": ("IN_PROGRESS", "")}
    [running] = first["postLaunchActionsLaunchStatusList"]
    assert running["ssmDocumentType"] == "COMMAND"
    assert running["ssmDocument"] == {
        "actionName": "join-domain",
        "ssmDocumentName": "Contoso-join-domain",
        "mustSucceedForCutover": True,
        "timeoutSeconds": 900,
        "parameters": {},
    }
    assert job(mgn, job_id)["status"] == "COMPLETED"  # the job does not wait for its actions

    # AND each runs after the one before: success, failure with its reason, then a timeout
    emulator.clock.advance(TIMING.action)
    assert by_name(statuses(mgn, job_id, server)) == {
        "join-domain": ("SUCCESS", ""),
        "agents": ("IN_PROGRESS", ""),
    }
    emulator.clock.advance(TIMING.action)
    emulator.clock.advance(timedelta(seconds=3599))
    assert by_name(statuses(mgn, job_id, server))["smoke"] == ("IN_PROGRESS", "")
    emulator.clock.advance(timedelta(seconds=1))
    assert by_name(statuses(mgn, job_id, server)) == {
        "join-domain": ("SUCCESS", ""),
        "agents": ("FAILED", "msiexec exited 1603: install failed"),
        "smoke": (
            "FAILED",
            "Execution timed out after 3600 seconds (SSM document Contoso-smoke)",
        ),
    }
    # The same launch and action keep their SSM execution ID across reads
    ids = [
        s["executionID"] for s in statuses(mgn, job_id, server)["postLaunchActionsLaunchStatusList"]
    ]
    assert len(set(ids)) == 3
    assert ids == [
        s["executionID"] for s in statuses(mgn, job_id, server)["postLaunchActionsLaunchStatusList"]
    ]


def test_an_action_whose_timeout_is_shorter_than_its_run_times_out(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    server = seed_ready(emulator)
    put(mgn, server, "slow", 1001, timeoutSeconds=30)  # each action runs 2 minutes
    job_id = mgn.start_test(sourceServerIDs=[server.source_server_id])["job"]["jobID"]
    emulator.clock.advance(LAUNCHED_AT + TIMING.ssm_agent_discovery + timedelta(seconds=29))
    assert by_name(statuses(mgn, job_id, server)) == {"slow": ("IN_PROGRESS", "")}
    emulator.clock.advance(timedelta(seconds=1))
    assert by_name(statuses(mgn, job_id, server)) == {
        "slow": ("FAILED", "Execution timed out after 30 seconds (SSM document Contoso-slow)")
    }


def test_a_failed_launch_runs_no_actions_and_a_server_without_actions_reports_none(
    emulator: MgnEmulator, mgn: MgnClient
) -> None:
    with_actions, without = seed_ready(emulator, "app01"), seed_ready(emulator, "app02")
    put(mgn, with_actions, "join-domain", 1001)
    emulator.faults.fail_next_launch(with_actions.source_server_id)
    job_id = mgn.start_test(
        sourceServerIDs=[with_actions.source_server_id, without.source_server_id]
    )["job"]["jobID"]
    emulator.clock.advance(AFTER_LAUNCH + timedelta(hours=1))
    assert statuses(mgn, job_id, with_actions) == {}
    assert statuses(mgn, job_id, without) == {}
