"""The order of a wave's cutovers in the batched design (orchestration/pipeline/cutover_order.py):
given the cutovers that could start, the lane's open requests and the wave's records, which
start now, which wait (for what) and which roll back (why)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orchestration.adapters.state_store import MigrationRecord
from orchestration.launch_records import LaunchKind, LaunchRequest
from orchestration.pipeline.cutover_order import order_cutovers
from tests.support.fakes import migration_record

NOW = datetime(2026, 12, 12, 22, 0, tzinfo=UTC)
VERIFIED = {"step": "VerifyCutover", "status": "SUCCEEDED", "message": "ok", "at": "1"}
ROLLED_BACK_AFTER_VERIFY = {"step": "Rollback", "status": "SUCCEEDED", "message": "", "at": "2"}


def request(
    name: str,
    app: str,
    after: Sequence[str] = (),
    *,
    kind: LaunchKind = "cutover",
    wave: str = "wave-1",
) -> LaunchRequest:
    return LaunchRequest(
        migration_id=f"mig-{name}",
        source_server_id=f"s-{name}",
        kind=kind,
        wave=wave,
        requested_at=NOW - timedelta(minutes=5),
        window_start=NOW - timedelta(minutes=1),
        window_end=NOW + timedelta(hours=2),
        application=app,
        cutover_after=tuple(after),
    )


def record(
    name: str, app: str, *, status: str = "RUNNING", verified: bool = False, wave: str = "wave-1"
) -> MigrationRecord:
    base = migration_record(
        status=status,
        migrationId=f"mig-{name}",
        appName=app,
        wave=wave,
        targetVmName=name,
        sourceVmId=f"/vm/{name}",
    )
    return replace(base, history=(VERIFIED,) if verified else ())


class Records:
    """The wave's records, counting how often each wave was read."""

    def __init__(self, *records: MigrationRecord) -> None:
        self.records = list(records)
        self.reads: list[str] = []

    def __call__(self, wave: str) -> list[MigrationRecord]:
        self.reads.append(wave)
        return [r for r in self.records if r.wave == wave]


def test_cutovers_without_dependencies_start_and_no_record_is_read() -> None:
    records = Records()
    cutovers = [request("db-1", "db"), request("web-1", "web")]

    order = order_cutovers(cutovers, cutovers, records)

    assert order.ready == tuple(cutovers)
    assert (dict(order.waiting), dict(order.failed), records.reads) == ({}, {}, [])


def test_a_dependent_waits_while_its_dependency_has_a_request_open_without_reading_records() -> (
    None
):
    # GIVEN db's cutover open in the lane (in a running job, or not yet planned), and
    # queue's test launch still open
    db = request("db-1", "db")
    queue_test = request("queue-1", "queue", kind="test")
    web = request("web-1", "web", ["db", "queue"])
    records = Records(record("db-1", "db"), record("queue-1", "queue"))

    order = order_cutovers([db, web], [db, queue_test, web], records)

    # THEN db starts, web waits for both, and the ledger alone told: no read of the wave
    assert order.ready == (db,)
    assert dict(order.waiting) == {web.key: ("db", "queue")}
    assert records.reads == []


def test_dependents_start_once_every_vm_of_their_dependencies_cut_over_one_read_per_wave() -> None:
    # GIVEN db's two VMs verified (one finalized) and nothing of db open in the lane
    records = Records(
        record("db-1", "db", verified=True),
        record("db-2", "db", status="COMPLETED"),
        record("web-1", "web"),
        record("web-2", "web"),
    )
    web = [request("web-1", "web", ["db"]), request("web-2", "web", ["db"])]

    order = order_cutovers(web, web, records)

    # THEN both web VMs start, the wave's records read once for both
    assert order.ready == tuple(web)
    assert records.reads == ["wave-1"]


def test_a_dependent_waits_for_a_dependency_vm_not_yet_cut_over_or_not_yet_requested() -> None:
    records = Records(
        record("db-1", "db", verified=True),
        record("db-2", "db"),  # launched, verification not done
        # cache: no migration requested yet in the wave
    )
    web = request("web-1", "web", ["db"])
    api = request("api-1", "api", ["cache"])

    order = order_cutovers([web, api], [web, api], records)

    assert order.ready == ()
    assert dict(order.waiting) == {web.key: ("db",), api.key: ("cache",)}


def test_a_verification_before_the_dependencys_rollback_does_not_count() -> None:
    again = replace(
        record("db-1", "db", status="RUNNING"), history=(VERIFIED, ROLLED_BACK_AFTER_VERIFY)
    )
    web = request("web-1", "web", ["db"])

    order = order_cutovers([web], [web], Records(again))

    assert dict(order.waiting) == {web.key: ("db",)}


def test_a_dependency_that_rolled_back_fails_its_dependents_with_the_reason() -> None:
    records = Records(
        record("db-1", "db", verified=True),
        record("db-2", "db", status="ROLLED_BACK"),
    )
    web = request("web-1", "web", ["db"])
    other = request("batch-1", "batch")

    order = order_cutovers([web, other], [web, other], records)

    assert order.ready == (other,)
    assert dict(order.failed) == {
        web.key: "this cutover goes after db (dependsOn), but db-2 (db, ROLLED_BACK) did not "
        "cut over: the migration is rolled back; migrate the dependency again, then this VM"
    }
    assert dict(order.waiting) == {}


def test_applications_of_another_wave_neither_block_nor_satisfy() -> None:
    # GIVEN a "db" application in wave-2 with a request open and its VM verified there
    other_wave_db = request("db-9", "db", wave="wave-2")
    records = Records(record("db-9", "db", verified=True, wave="wave-2"))
    web = request("web-1", "web", ["db"])

    order = order_cutovers([web], [web, other_wave_db], records)

    # THEN wave-1's web still waits for wave-1's db, which has no migration yet
    assert dict(order.waiting) == {web.key: ("db",)}
    assert records.reads == ["wave-1"]
