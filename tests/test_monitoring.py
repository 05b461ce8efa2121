"""The scheduled monitor: replication lag from MGN, pending approvals from gsi1, as figures.

The end-to-end test runs the real handler through moto Lambda on the embedded system; the
rest checks the ISO 8601 duration parser and the arithmetic on plain values.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration import wiring
from orchestration.adapters.lanes import Lane, LaneRoleUnavailableError
from orchestration.adapters.mgn import SourceServer
from orchestration.adapters.state_store import ApprovalRecord, MigrationRecord, MigrationStore
from orchestration.local.driver import MigrationDriver, first_listed_approver
from orchestration.local.provision import provision
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.naming import ResourceNames
from orchestration.pipeline.monitoring import (
    MigrationMonitor,
    approval_figures,
    duration_seconds,
    replication_figures,
)
from orchestration.statemachine import Timings
from tests.support.fakes import FixedClock
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _monitor(system: EmbeddedSystem) -> dict[str, Any]:
    response = system.client("lambda").invoke(
        FunctionName=system.function_arns["monitor_migrations"], Payload=b"{}"
    )
    assert "FunctionError" not in response, response["Payload"].read()
    figures: dict[str, Any] = json.loads(response["Payload"].read())
    return figures


def _at_the_gate(migration_id: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = wiring.store().get(migration_id)
        if record is not None and record.step == "AwaitApproval" and record.approval_id:
            approval = wiring.store().approval(record.approval_id)
            if approval is not None and approval.status == "PENDING":
                return record.approval_id
        time.sleep(0.1)
    raise AssertionError(f"{migration_id} did not reach the approval gate")


def _rejecting(record: MigrationRecord, approvers: tuple[str, ...]) -> tuple[str, str] | None:
    choice = first_listed_approver(record, approvers)
    return ("REJECTED", choice[1]) if choice else None


def test_the_monitor_reports_lag_stalls_and_the_waiting_approval() -> None:
    # GIVEN a migration whose cutover window closes within the hour, waiting at the gate
    [request] = example_requests(lasts=timedelta(minutes=90))[:1]
    with EmbeddedSystem(SystemOptions(timings=FAST)) as system:
        servers = system.seed([spec_of(request)])
        driver = MigrationDriver(system)
        before = _monitor(system)
        driver.send([request])
        approval_id = _at_the_gate(request.migration_id)
        # AND its server's replication stalls (lag grows on the emulator's fast clock)
        server_id = servers[request.migration_id]
        mgn = system.mgn_of_server(server_id)  # the lane of its wave's target
        mgn.faults.stall_replication(server_id)
        time.sleep(0.5)

        # WHEN the monitor runs
        waiting = _monitor(system)

        # THEN it reports the stalled server's lag, and the approval, waiting past the window
        assert waiting["ReplicationLagSeconds"] > 0
        assert waiting["LaggiestServerId"] == server_id
        assert waiting["ReplicationStalledServers"] == 1
        assert waiting["PendingApprovals"] == 1
        assert waiting["OldestPendingApprovalId"] == approval_id
        assert waiting["OldestPendingApprovalSeconds"] >= 0
        assert waiting["ApprovalsPastWindow"] == 1
        # AND per lane: its wave's lane (through the target role) holds the stall
        lanes = {lane["lane"]: lane for lane in waiting["Lanes"]}
        assert lanes["111122223333/us-east-1"]["ReplicationStalledServers"] == 1
        assert all(lane["reachable"] for lane in lanes.values())

        # WHEN the approval is decided (rejected: the migration rolls back)
        mgn.faults.clear_replication_stall(server_id)
        outcome = driver.wait(
            [request.migration_id],
            approver=_rejecting,
            timeout=60,
        )[request.migration_id]
        decided = _monitor(system)

    # THEN it is no longer pending, and nothing was before the migration started
    assert outcome.status == "FAILED", outcome.cause
    assert decided["PendingApprovals"] == 0
    assert decided["OldestPendingApprovalId"] is None
    assert decided["ApprovalsPastWindow"] == 0
    assert decided["ReplicationStalledServers"] == 0
    assert before["PendingApprovals"] == 0
    assert before["ReplicationLagSeconds"] == 0
    print(f"\nbefore: {before}\nwaiting: {waiting}\ndecided: {decided}")  # shown with -s


# --- the duration parser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT0S", 0),
        ("PT5M30S", 330),
        ("PT1H2M3S", 3723),
        ("P2DT4H", 2 * 86400 + 4 * 3600),
        ("P1D", 86400),
        ("PT10M", 600),
        ("PT0.5S", 0.5),
        ("PT1,5S", 1.5),
        ("PT1.5M", 90),
        ("P1W", 7 * 86400),
        ("P1Y", 365 * 86400),
        ("P1M", 30 * 86400),
        ("pt2m", 120),
        (" PT3S ", 3),
        ("-PT3S", -3),
        ("PT36H", 36 * 3600),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "5M", "PT5", "PT5S5M", "P1H", "PTS", "PT-5S", "1 minute"]
)
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        duration_seconds(text)


# --- the figures ------------------------------------------------------------------------------


def _server(server_id: str, **fields: Any) -> SourceServer:
    values: dict[str, Any] = {
        "source_server_id": server_id,
        "is_archived": False,
        "lifecycle_state": "READY_FOR_TEST",
        "replication_state": "CONTINUOUS",
        "lag_duration": "PT1S",
        "hostname": None,
        "fqdn": None,
        "user_provided_id": None,
        "launched_instance_id": None,
        "replicated_bytes": 0,
        "total_bytes": 0,
        "replication_error": None,
    }
    return SourceServer(**{**values, **fields})


def test_lag_counts_only_the_servers_still_replicating() -> None:
    figures = replication_figures(
        [
            _server("s-1", lag_duration="PT5M30S"),
            _server("s-2", lag_duration="PT11M", replication_state="STALLED"),
            _server("s-3", lag_duration="P1D", is_archived=True),
            _server("s-4", lag_duration="P1D", lifecycle_state="CUTOVER"),
            _server("s-5", lag_duration="P1D", lifecycle_state="DISCONNECTED"),
            _server("s-6", lag_duration=None, replication_state="INITIAL_SYNC"),
            _server("s-7", lag_duration="soon"),
        ]
    )
    assert figures.lag_seconds == 660
    assert figures.lag_server_id == "s-2"
    assert figures.stalled_servers == 1
    assert figures.replicating_servers == 4
    assert figures.unreadable_lags == 1
    assert replication_figures([]).lag_seconds == 0


def _approval(approval_id: str, migration_id: str, requested_at: datetime | None) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id=approval_id,
        migration_id=migration_id,
        wave="wave-1",
        target_vm_name="vm",
        approvers=("U1",),
        requested_by="dana",
        status="PENDING",
        expires_at=NOW + timedelta(days=1),
        requested_at=requested_at,
    )


def test_approvals_oldest_age_and_windows() -> None:
    ends = {
        "m-closed": NOW - timedelta(minutes=1),
        "m-closing": NOW + timedelta(minutes=59),
        "m-open": NOW + timedelta(hours=3),
    }
    figures = approval_figures(
        [
            _approval("a-1", "m-open", NOW - timedelta(minutes=5)),
            _approval("a-2", "m-closing", NOW - timedelta(hours=2)),
            _approval("a-3", "m-closed", None),  # stored before requestedAt existed
            _approval("a-4", "m-unknown", NOW + timedelta(seconds=1)),  # clock skew
        ],
        ends.get,
        NOW,
    )
    assert (figures.pending, figures.past_window) == (4, 2)
    assert (figures.oldest_age_seconds, figures.oldest_approval_id) == (7200, "a-2")
    assert approval_figures([], ends.get, NOW).oldest_age_seconds == 0


# --- the store: pending approvals are a sparse gsi1 partition ---------------------------------


def test_pending_approvals_leave_gsi1_when_decided_and_return_when_reverted(
    aws_env: None,
) -> None:
    names = ResourceNames()
    with mock_aws():
        provision(
            names,
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(names.state_table)
        store = MigrationStore(table)
        # GIVEN two pending approvals (one soon to expire) and a decided one
        store.create_approval(_approval("apv-late", "m-1", NOW), "token-1")
        store.create_approval(
            replace(_approval("apv-soon", "m-2", NOW), expires_at=NOW + timedelta(hours=1)),
            "token-2",
        )
        store.create_approval(_approval("apv-done", "m-3", NOW), "token-3")
        assert (
            store.decide_approval("apv-done", decision="APPROVED", user="U1", reason="", now=NOW)
            == "token-3"
        )
        # THEN only the pending ones are listed, soonest expiry first, with their request time
        pending = store.pending_approvals()
        assert [a.approval_id for a in pending] == ["apv-soon", "apv-late"]
        assert pending[0].requested_at == NOW
        # WHEN a decision whose delivery failed is reverted, it is pending (and listed) again
        store.revert_decision("apv-done", user="U1")
        assert {a.approval_id for a in store.pending_approvals()} == {
            "apv-soon",
            "apv-late",
            "apv-done",
        }
        # AND a second decision takes it out again; the item keeps its own fields
        store.decide_approval("apv-done", decision="REJECTED", user="U1", reason="no", now=NOW)
        assert "apv-done" not in {a.approval_id for a in store.pending_approvals()}
        done = store.approval("apv-done")
        assert done is not None
        assert done.status == "REJECTED"
        assert done.requested_at == NOW
        item = table.get_item(Key={"pk": "APPROVAL#apv-done", "sk": "META"})["Item"]
        assert "gsi1pk" not in item
        assert "gsi1sk" not in item


def test_a_lane_that_cannot_be_read_is_reported_and_the_others_still_count() -> None:
    class Lanes:
        def source_servers_in(self, account_id: str, region: str) -> list[SourceServer]:
            if account_id == "999988887777":
                raise LaneRoleUnavailableError(
                    Lane(account_id, region), "arn:aws:iam::999988887777:role/x", "AccessDenied"
                )
            return [_server("s-1", lag_duration="PT5M", replication_state="STALLED")]

    class NoApprovals:
        def pending_approvals(self) -> list[ApprovalRecord]:
            return []

        def get(self, migration_id: str) -> MigrationRecord | None:
            return None

    figures = MigrationMonitor(
        Lanes(),
        [("111122223333", "us-east-1"), ("999988887777", "eu-west-1")],
        NoApprovals(),
        FixedClock(NOW),
    ).measure()

    by_lane = {lane.lane: lane for lane in figures.lanes}
    assert by_lane["999988887777/eu-west-1"].replication is None
    assert "cannot assume role" in (by_lane["999988887777/eu-west-1"].unreachable or "")
    assert figures.replication.lag_seconds == 300
    assert figures.replication.stalled_servers == 1


def test_a_groups_pending_approvals_are_one_query_and_leave_it_when_decided(
    aws_env: None,
) -> None:
    names = ResourceNames()
    with mock_aws():
        provision(
            names,
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(names.state_table)
        store = MigrationStore(table)
        # GIVEN approvals of two application groups of wave-1, a wave group of wave-10 and
        # one approved alone
        for approval_id, group in [
            ("apv-a1", "wave-1/billing"),
            ("apv-a2", "wave-1/billing"),
            ("apv-b1", "wave-1/crm"),
            ("apv-w1", "wave-10"),
            ("apv-v1", ""),
        ]:
            approval = replace(
                _approval(approval_id, f"m-{approval_id}", NOW),
                group=group,
                scope="application" if "/" in group else ("wave" if group else "vm"),
            )
            store.create_approval(approval, f"token-{approval_id}")
        # THEN each group lists its own, a wave prefix lists every group of that wave only
        assert [a.approval_id for a in store.pending_group_approvals("wave-1/billing")] == [
            "apv-a1",
            "apv-a2",
        ]
        assert {a.approval_id for a in store.pending_group_approvals("wave-1/")} == {
            "apv-a1",
            "apv-a2",
            "apv-b1",
        }
        assert [a.approval_id for a in store.pending_group_approvals("wave-10")] == ["apv-w1"]
        assert len(store.pending_approvals()) == 5  # the monitor still sees every one
        # WHEN one is decided it leaves its group; reverted, it is back in its group
        store.decide_approval("apv-a1", decision="APPROVED", user="U1", reason="", now=NOW)
        assert [a.approval_id for a in store.pending_group_approvals("wave-1/billing")] == [
            "apv-a2"
        ]
        store.revert_decision("apv-a1", user="U1")
        assert {a.approval_id for a in store.pending_group_approvals("wave-1/billing")} == {
            "apv-a1",
            "apv-a2",
        }
        reverted = store.approval("apv-a1")
        assert reverted is not None
        assert (reverted.group, reverted.scope) == ("wave-1/billing", "application")
