"""Planning MGN launch jobs to the lane's quotas (orchestration/pipeline/launch_batches.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from orchestration.launch_records import LaunchKind
from orchestration.pipeline.launch_batches import (
    ActiveJob,
    LaneQuotas,
    LaunchRequest,
    PlannedJob,
    cutover_window_closed,
    plan_launches,
)

NOW = datetime(2026, 12, 12, 22, 0, tzinfo=UTC)
LINGER = timedelta(minutes=2)
OPEN = (NOW - timedelta(minutes=1), NOW + timedelta(hours=4))


def request(
    index: int,
    kind: LaunchKind = "cutover",
    *,
    wave: str = "wave-1",
    waited: timedelta = timedelta(minutes=10),
    window: tuple[datetime | None, datetime | None] = OPEN,
    server: str | None = None,
) -> LaunchRequest:
    return LaunchRequest(
        migration_id=f"mig-{index:05d}",
        source_server_id=server or f"s-{index:017d}",
        kind=kind,
        wave=wave,
        requested_at=NOW - waited + timedelta(microseconds=index),  # FIFO by index
        window_start=window[0] if kind == "cutover" else None,
        window_end=window[1] if kind == "cutover" else None,
    )


def plan(
    pending: list[LaunchRequest],
    active: list[ActiveJob] | None = None,
    quotas: LaneQuotas | None = None,
    now: datetime = NOW,
) -> list[PlannedJob]:
    return plan_launches(pending, active or [], quotas or LaneQuotas(), now=now, linger=LINGER)


def sizes(planned: list[PlannedJob]) -> list[int]:
    return [len(job.requests) for job in planned]


def assert_each_server_once(planned: list[PlannedJob], active: Sequence[ActiveJob] = ()) -> None:
    counts = Counter(s for job in planned for s in job.server_ids)
    assert not [server for server, count in counts.items() if count > 1]
    assert not set(counts) & {s for job in active for s in job.server_ids}


# --- the figures ------------------------------------------------------------------


def test_a_450_server_cutover_starts_in_three_jobs_at_once_when_the_quota_allows() -> None:
    pending = [request(i) for i in range(450)]
    planned = plan(pending, quotas=LaneQuotas(servers_in_active_jobs=1000))
    assert sizes(planned) == [200, 200, 50]
    assert {job.kind for job in planned} == {"cutover"}
    assert_each_server_once(planned)
    # first requested, first in a job
    assert planned[0].requests[0] == pending[0]
    assert planned[2].requests[-1] == pending[-1]


def test_with_the_default_quota_450_servers_start_200_and_the_rest_wait() -> None:
    pending = [request(i) for i in range(450)]
    planned = plan(pending)
    assert sizes(planned) == [200]
    assert planned[0].requests == tuple(pending[:200])


def test_twenty_five_jobs_worth_of_servers_start_twenty_jobs_and_the_rest_wait() -> None:
    pending = [request(i) for i in range(25 * 200)]
    planned = plan(pending, quotas=LaneQuotas(servers_in_active_jobs=10_000))
    assert sizes(planned) == [200] * 20
    assert_each_server_once(planned)
    # when one job ends, the 21st starts
    active = [ActiveJob(f"mgnjob-{n}", "cutover", job.server_ids) for n, job in enumerate(planned)]
    started = {s for job in planned for s in job.server_ids}
    waiting = [r for r in pending if r.source_server_id not in started]
    assert plan(waiting, active, LaneQuotas(servers_in_active_jobs=10_000)) == []
    after_one_ended = plan(waiting, active[1:], LaneQuotas(servers_in_active_jobs=10_000))
    assert sizes(after_one_ended) == [200]
    assert after_one_ended[0].requests == tuple(waiting[:200])


# --- one job per server -------------------------------------------------------------------


def test_a_server_in_an_active_job_is_never_planned_again() -> None:
    active = [ActiveJob("mgnjob-1", "test", ("s-00000000000000001",))]
    pending = [request(1, "cutover"), request(2, "cutover")]
    planned = plan(pending, active)
    assert [job.server_ids for job in planned] == [("s-00000000000000002",)]


def test_two_requests_for_one_server_plan_the_older_only() -> None:
    older = request(1, "test", server="s-shared0000000001", waited=timedelta(minutes=30))
    newer = request(2, "cutover", server="s-shared0000000001")
    planned = plan([newer, older])
    assert [job.requests for job in planned] == [(older,)]


def test_active_jobs_and_their_servers_count_against_the_quotas() -> None:
    active = [ActiveJob(f"mgnjob-{n}", "test", (f"s-busy{n:013d}",)) for n in range(19)]
    pending = [request(i) for i in range(300)]
    planned = plan(pending, active, LaneQuotas(servers_in_active_jobs=1000))
    assert sizes(planned) == [200]  # one job slot left
    planned = plan(pending, active[:5], LaneQuotas(servers_in_active_jobs=205))
    assert sizes(planned) == [200]  # 5 servers busy: room for 200 more
    planned = plan(pending, active[:10], LaneQuotas(servers_in_active_jobs=205))
    assert sizes(planned) == [195]


# --- windows ------------------------------------------------------------------------------


def test_cutovers_wait_for_their_window_and_never_start_after_it() -> None:
    later = (NOW + timedelta(hours=1), NOW + timedelta(hours=5))
    closed = (NOW - timedelta(hours=5), NOW)  # the end is exclusive
    pending = [
        request(1, wave="later", window=later),
        request(2, wave="closed", window=closed),
        request(3, wave="open"),
    ]
    assert [job.server_ids for job in plan(pending)] == [("s-00000000000000003",)]
    assert cutover_window_closed(pending[1], NOW)
    assert not cutover_window_closed(pending[0], NOW)
    at_opening = plan(pending, now=later[0])
    assert {r.wave for job in at_opening for r in job.requests} == {"later", "open"}


def test_each_wave_goes_in_its_own_jobs_earliest_window_first() -> None:
    early = (NOW - timedelta(hours=2), NOW + timedelta(hours=2))
    pending = [request(i, wave="b") for i in range(150)] + [
        request(i, wave="a", window=early) for i in range(150, 300)
    ]
    planned = plan(pending, quotas=LaneQuotas(servers_in_active_jobs=1000))
    assert [(job.requests[0].wave, len(job.requests)) for job in planned] == [
        ("a", 150),
        ("b", 150),
    ]
    # with room for 200 servers, the earlier window's wave first, the other wave's first 50
    planned = plan(pending)
    assert [(job.requests[0].wave, len(job.requests)) for job in planned] == [
        ("a", 150),
        ("b", 50),
    ]


def test_a_cutover_without_a_window_starts_at_once() -> None:
    planned = plan([request(1, window=(None, None))])
    assert sizes(planned) == [1]


# --- tests linger -------------------------------------------------------------------------


def test_test_launches_linger_until_the_oldest_has_waited() -> None:
    fresh = [request(i, "test", waited=timedelta(seconds=30)) for i in range(10)]
    assert plan(fresh) == []
    assert sizes(plan(fresh, now=NOW + LINGER)) == [10]


def test_a_full_job_of_tests_starts_without_lingering_and_the_rest_lingers() -> None:
    fresh = [request(i, "test", waited=timedelta(seconds=1)) for i in range(250)]
    planned = plan(fresh, quotas=LaneQuotas(servers_in_active_jobs=1000))
    assert sizes(planned) == [200]
    assert planned[0].requests == tuple(fresh[:200])
    # once lingered, the other 50 go too
    assert sizes(plan(fresh[200:], now=NOW + LINGER)) == [50]


def test_cutovers_take_the_room_before_tests() -> None:
    tests = [request(i, "test", waited=timedelta(hours=1)) for i in range(100)]
    cutovers = [request(i, "cutover") for i in range(100, 250)]
    planned = plan(tests + cutovers)
    assert [(job.kind, len(job.requests)) for job in planned] == [("cutover", 150), ("test", 50)]


def test_planning_never_exceeds_the_quotas_nor_repeats_a_server() -> None:
    quotas = LaneQuotas(concurrent_jobs=7, servers_per_job=30, servers_in_active_jobs=170)
    active = [ActiveJob("mgnjob-1", "test", tuple(f"s-busy{n:013d}" for n in range(25)))]
    pending = [request(i, "test", waited=timedelta(hours=1)) for i in range(120)]
    pending += [request(i, "cutover", wave=f"w{i % 3}") for i in range(100, 220)]  # overlaps
    planned = plan(pending, active, quotas)
    assert len(planned) + len(active) <= quotas.concurrent_jobs
    assert max(sizes(planned)) <= quotas.servers_per_job
    assert sum(sizes(planned)) + 25 <= quotas.servers_in_active_jobs
    assert all(len({r.kind for r in job.requests}) == 1 for job in planned)
    assert_each_server_once(planned, active)


def test_quotas_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LaneQuotas(concurrent_jobs=0)
