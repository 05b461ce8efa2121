"""The rehearsal's report from hand-built observations: every expected figure worked out by
hand from the minutes in ``tests/support/rehearsal.py`` (T0 is the rehearsal's start)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from orchestration.rehearsal.floor import (
    FloorServer,
    FloorTimings,
    FloorWave,
    lane_floor,
    replication_ready_seconds,
)
from orchestration.rehearsal.observation import LaneQuotas, StepRecord
from orchestration.rehearsal.report import (
    RehearsalReport,
    VmReport,
    build_report,
    distribution,
    format_duration,
)
from orchestration.rehearsal.run import _shown_in_summaries
from orchestration.rehearsal.summary import print_summary
from tests.support.rehearsal import (
    Counters,
    Slack,
    Timeline,
    at,
    migrated_vm,
    observation,
    rolled_back_vm,
    step,
    two_wave_observation,
    wave,
)

MINUTE = 60.0


def _only_vm(report: RehearsalReport) -> VmReport:
    assert len(report.vms) == 1
    return report.vms[0]


def _phases_in_minutes(vm: VmReport) -> list[tuple[str, float, float, bool, float]]:
    return [
        (
            phase.name,
            phase.start.seconds / MINUTE,
            phase.end.seconds / MINUTE,
            phase.complete,
            phase.quota_wait_seconds / MINUTE,
        )
        for phase in vm.phases
    ]


# --- one VM's timeline ---------------------------------------------------------------------


def test_a_migrated_vms_phases_follow_its_events() -> None:
    # GIVEN a VM: replication 10 -> 130 (seen at 131), three quota rejections 131..141 before
    # its test job at 146, verified at 180, approved at 192 (PrepareCutover), waiting for the
    # window from 193, the window opens at 240, cutover job 241, verified 270, finalized 271
    report = build_report(observation([migrated_vm("m-a")], [wave(window=(240, 360))]))

    # THEN its phases are bounded by those events, the test's quota wait inside the test
    assert _phases_in_minutes(_only_vm(report)) == [
        ("setup", 0, 10, True, 0),
        ("replication", 10, 130, True, 0),
        ("test", 131, 180, True, 15),
        ("approval", 180, 192, True, 0),
        ("window-wait", 193, 240, True, 0),
        ("cutover", 240, 270, True, 0),
        ("finalize", 270, 271, True, 0),
    ]
    vm = _only_vm(report)
    assert vm.outcome == "migrated"
    assert vm.ended.seconds == 271 * MINUTE
    assert vm.ended.as_json() == {"at": "2026-12-05T22:31:00+00:00", "seconds": 16260.0}


def test_every_second_of_a_vm_is_attributed_once() -> None:
    # GIVEN the same VM (271 min from T0 to its end)
    vm = _only_vm(build_report(observation([migrated_vm("m-a")], [wave()])))

    # THEN quota 131-146, window 193-240, approval 180-192, launch jobs 146-176 + 241-266,
    # replication 0-130, and the pipeline the gaps: 130-131, 176-180, 192-193, 240-241, 266-271
    assert {cause: seconds / MINUTE for cause, seconds in vm.waits.items()} == {
        "quota": 15,
        "window": 47,
        "approval": 12,
        "launch": 55,
        "replication": 130,
        "pipeline": 12,
        "slack": 0.1,  # 2 s + 4 s, beside the migration
    }
    assert sum(s for cause, s in vm.waits.items() if cause != "slack") == 271 * MINUTE
    assert vm.quota_wait_seconds == 15 * MINUTE
    assert vm.quota_rejections == 3
    assert [(s.seconds / MINUTE, e.seconds / MINUTE) for s, e in vm.quota_intervals] == [(131, 146)]


def test_the_critical_path_reads_as_phases_and_durations() -> None:
    report = build_report(observation([migrated_vm("m-a")], [wave()]))

    path = report.waves[0].critical_path
    assert path is not None
    assert path.migration_id == "m-a"
    assert path.text == (
        "setup 10m -> replication 2h -> test 49m (quota wait 15m) -> approval 12m -> "
        "window wait 47m -> cutover 30m -> finalize 1m"
    )


def test_the_critical_path_is_the_vm_that_finished_last() -> None:
    late = Timeline(cutover_job=(250, 275), cutover_verified=280, finalized=281)
    report = build_report(
        observation([migrated_vm("m-a"), migrated_vm("m-b", late)], [wave(window=(240, 360))])
    )

    path = report.waves[0].critical_path
    assert path is not None
    assert (path.migration_id, path.ended.seconds) == ("m-b", 281 * MINUTE)


def test_a_vm_that_did_not_migrate_says_which_step_failed_first_and_why() -> None:
    # GIVEN a VM whose approval expired (AwaitApproval FAILED), then rolled back; and a VM
    # that migrated after a step that failed and was retried
    expired = rolled_back_vm("m-c")
    failed_step = StepRecord(
        step="AwaitApproval", status="FAILED", at=at(285), message="approval expired"
    )
    expired = replace(expired, steps=tuple(sorted((*expired.steps, failed_step), key=_when)))
    retried = migrated_vm("m-a")
    hiccup = StepRecord(step="VerifyTestLaunch", status="FAILED", at=at(150), message="retried")
    retried = replace(retried, steps=tuple(sorted((*retried.steps, hiccup), key=_when)))

    report = build_report(observation([expired, retried], [wave(window=(240, 360))]))

    by_id = {vm.migration_id: vm for vm in report.vms}
    failure = by_id["m-c"].failure
    assert failure is not None
    assert (failure.step, failure.at.seconds, failure.message) == (
        "AwaitApproval",
        285 * MINUTE,
        "approval expired",
    )
    assert by_id["m-c"].as_json()["failure"]["message"] == "approval expired"
    assert by_id["m-a"].failure is None  # it migrated: nothing to explain
    assert by_id["m-a"].as_json()["failure"] is None


def _when(record: StepRecord) -> datetime:
    return record.at


def test_a_rolled_back_vms_open_approval_ends_where_the_rollback_began() -> None:
    # GIVEN a VM whose approval (requested at 180) expired: the rollback's terminate job was
    # created at 290, Rollback SUCCEEDED at 300
    report = build_report(observation([rolled_back_vm("m-c")], [wave(window=(240, 360))]))

    vm = _only_vm(report)
    assert vm.outcome == "rolled-back"
    assert _phases_in_minutes(vm) == [
        ("setup", 0, 10, True, 0),
        ("replication", 10, 130, True, 0),
        ("test", 131, 180, True, 15),
        ("approval", 180, 290, True, 0),
        ("rollback", 290, 300, True, 0),
    ]
    # 300 min: the pipeline's are 130-131, 176-180 and the rollback 290-300
    assert vm.waits["pipeline"] == 15 * MINUTE
    assert vm.waits["approval"] == 110 * MINUTE


def test_a_recorded_rollback_start_wins_over_the_inferred_one() -> None:
    recorded = replace(rolled_back_vm("m-c"), rollback_started_at=at(285))
    vm = _only_vm(build_report(observation([recorded], [wave()])))

    assert [(p.name, p.end.seconds / MINUTE) for p in vm.phases][-2:] == [
        ("approval", 285),
        ("rollback", 300),
    ]


# --- quota waits ---------------------------------------------------------------------------


def test_quota_waits_run_from_a_launchs_first_rejection_to_its_job() -> None:
    # GIVEN test rejections 131..141 (job at 146) and cutover rejections at 193 and 198 (the
    # window was already open; the cutover job at 210)
    timeline = Timeline(
        window_waiting=None,
        cutover_job=(210, 235),
        cutover_verified=240,
        finalized=241,
        quota_rejections=(131, 136, 141, 193, 198),
    )
    vm = _only_vm(
        build_report(observation([migrated_vm("m-a", timeline)], [wave(window=(0, 360))]))
    )

    # THEN 15 min in the test phase, 17 in the cutover's, which starts at its first rejection
    assert vm.quota_wait_seconds == 32 * MINUTE
    cutover = vm.phase("cutover")
    assert cutover is not None
    assert (cutover.start.seconds, cutover.quota_wait_seconds) == (193 * MINUTE, 17 * MINUTE)


def test_rejections_no_job_followed_wait_until_the_rollback() -> None:
    # GIVEN a VM ready at 131 whose test launch MGN refused at 131 and 136, then rolled back
    # (the rollback started at 150 and was done at 152): no test job was ever created
    base = migrated_vm("m-d")
    vm_observed = replace(
        base,
        record_status="ROLLED_BACK",
        steps=(*base.steps[:6], step("Rollback", "SUCCEEDED", 152)),
        jobs=(),
        quota_rejections=(at(131), at(136)),
        rollback_started_at=at(150),
    )
    vm = _only_vm(build_report(observation([vm_observed], [wave()])))

    assert vm.quota_wait_seconds == 19 * MINUTE
    assert _phases_in_minutes(vm)[-2:] == [
        ("test", 131, 150, False, 19),
        ("rollback", 150, 152, True, 0),
    ]


# --- a wave against its window -------------------------------------------------------------


def test_a_wave_that_fits_its_window_says_by_how_much() -> None:
    report = build_report(observation([migrated_vm("m-a")], [wave(window=(240, 360))]))

    window = report.waves[0].window
    assert window is not None
    assert (window.fits, window.spare_seconds, window.overrun_seconds) == (True, 90 * MINUTE, 0)
    assert window.verdict == "fits with 90 min to spare"
    assert window.cutover_start is not None
    assert window.cutover_start.seconds == 240 * MINUTE
    assert window.cutover_end is not None
    assert window.cutover_end.seconds == 270 * MINUTE


def test_a_wave_whose_last_cutover_ends_after_the_window_overruns() -> None:
    late = Timeline(cutover_job=(250, 275), cutover_verified=280, finalized=281)
    report = build_report(
        observation([migrated_vm("m-a"), migrated_vm("m-b", late)], [wave(window=(240, 265))])
    )

    window = report.waves[0].window
    assert window is not None
    assert (window.fits, window.overrun_seconds, window.missed) == (False, 15 * MINUTE, 0)
    assert window.verdict == "overruns by 15 min"


def test_a_vm_shut_out_by_the_closed_window_counts_as_an_overrun() -> None:
    # GIVEN the window closes at 285: m-a's cutover ended at 270, but m-c (tested, never
    # cut over) gave up at 290
    report = build_report(
        observation([migrated_vm("m-a"), rolled_back_vm("m-c")], [wave(window=(240, 285))])
    )

    window = report.waves[0].window
    assert window is not None
    assert (window.fits, window.overrun_seconds, window.missed) == (False, 5 * MINUTE, 1)
    assert window.verdict == "overruns by 5 min; 1 VM(s) could not start before the window closed"
    assert [vm.missed_window for vm in report.vms] == [False, True]


def test_a_wave_reports_outcomes_replication_tests_and_approval_waits() -> None:
    fast = Timeline(
        replication_ready=100,
        replication_seen=101,
        test_job=(101, 131),
        test_verified=135,
        approved=140,
        quota_rejections=(),
    )
    report = build_report(
        observation(
            [migrated_vm("m-a"), migrated_vm("m-b", fast, app="crm"), rolled_back_vm("m-c")],
            [wave()],
        )
    )

    wave_report = report.waves[0]
    assert dict(wave_report.outcomes) == {
        "migrated": 2,
        "rolled-back": 1,
        "failed": 0,
        "running": 0,
    }
    assert wave_report.applications == ("billing", "crm")
    assert wave_report.replication_done_by is not None
    assert wave_report.replication_done_by.seconds == 130 * MINUTE
    assert wave_report.test_first_start is not None
    assert wave_report.test_first_start.seconds == 101 * MINUTE
    assert wave_report.test_last_end is not None
    assert wave_report.test_last_end.seconds == 180 * MINUTE
    # approvals: 12 (m-a), 5 (m-b), 110 (m-c, ended by its rollback)
    waits = wave_report.approval_waits
    assert (waits.count, waits.median_seconds, waits.p95_seconds, waits.max_seconds) == (
        3,
        12 * MINUTE,
        110 * MINUTE,
        110 * MINUTE,
    )


# --- bottlenecks ---------------------------------------------------------------------------


def test_bottlenecks_sum_each_cause_over_the_waves_vms_and_rank_them() -> None:
    # GIVEN m-a (waits worked out above) and m-c (300 min: quota 15, approval 110, launch 30,
    # replication 130, pipeline 15)
    report = build_report(
        observation([migrated_vm("m-a"), rolled_back_vm("m-c")], [wave(window=(240, 360))])
    )

    ranked = [
        (b.cause, b.vm_seconds / MINUTE, b.per_vm_seconds / MINUTE)
        for b in report.waves[0].bottlenecks
    ]
    assert ranked == [
        ("replication", 260, 130),
        ("approval", 122, 61),
        ("launch", 85, 42.5),
        ("window", 47, 23.5),
        ("quota", 30, 15),
        ("pipeline", 27, 13.5),
        ("slack", 0.2, 0.1),
    ]
    assert report.bottlenecks == report.waves[0].bottlenecks  # one wave: the run's figures
    assert [b.on_path for b in report.bottlenecks][-1] is False


# --- calls ---------------------------------------------------------------------------------


def test_calls_are_divided_by_the_vm_count() -> None:
    counters = Counters(
        api_calls_by_service={"dynamodb": 324, "mgn": 100, "stepfunctions": 40},
        mgn_calls_by_operation={"StartTest": 4, "DescribeJobs": 60},
        slack_calls_by_method={"chat.postMessage": 8, "chat.update": 28},
        slack_rate_limited=3,
        lambda_invocations=60,
        state_transitions=200,
        approvals_expired=1,
    )
    vms = [
        migrated_vm("m-a"),
        migrated_vm("m-b", slack=Slack(calls=7)),
        migrated_vm("m-d", slack=Slack(calls=11)),
        rolled_back_vm("m-c", slack_final_shown=False),
    ]
    calls = build_report(observation(vms, [wave()], counters=counters)).calls

    assert calls.as_json() == {
        "vms": 4,
        "awsPerVm": 116.0,
        "awsPerVmByService": {"dynamodb": 81.0, "mgn": 25.0, "stepfunctions": 10.0},
        "mgnPerVm": 16.0,
        "mgnPerVmByOperation": {"DescribeJobs": 15.0, "StartTest": 1.0},
        "slackPerVm": 9.0,  # (9 + 7 + 11 + 9) / 4
        "slackPerVmByMethod": {"chat.postMessage": 2.0, "chat.update": 7.0},
        "slackRateLimited": 3,
        "lostSlackUpdates": 1,
        "lostSlackUpdateMigrationIds": ["m-c"],
        "lambdaInvocationsPerVm": 15.0,
        "stateTransitionsPerVm": 50.0,
        "approvalsExpired": 1,
    }


# --- Slack ---------------------------------------------------------------------------------


def _slack_run() -> RehearsalReport:
    """wave-1: m-a (events 2 s and 4 s after they happened; its approval message 3 s after
    the request), m-b (events 1, 30, 90 s; approval message after 45 s; 3 posts and 12
    edits), m-c (approval expired, final state never shown); wave-2: m-d, whose approval
    message never appeared. 429s: 4 on #wave-1, 1 on #wave-2, 2 on no channel."""
    vms = [
        migrated_vm("m-a"),
        migrated_vm(
            "m-b",
            slack=Slack(
                calls=15,
                delays_seconds=(1.0, 30.0, 90.0),
                calls_by_method=(("chat.postMessage", 3), ("chat.update", 12)),
                approval_shown_after=45.0,
                final_in_summary_after=25.0,
            ),
        ),
        rolled_back_vm("m-c", slack_final_shown=False),
        migrated_vm("m-d", wave="wave-2", slack=Slack(approval_shown_after=None)),
    ]
    counters = Counters(
        slack_calls_by_method={"chat.postMessage": 10, "chat.update": 30, "users.info": 4},
        slack_rate_limited=7,
        slack_rate_limited_by_channel={"#wave-1": 4, "#wave-2": 1, "": 2},
    )
    waves = [wave("wave-1"), wave("wave-2", window=(540, 580))]
    return build_report(observation(vms, waves, counters=counters))


def test_a_waves_slack_figures_pool_its_threads() -> None:
    report = _slack_run()

    first, second = report.waves
    assert first.slack.as_json() == {
        "vms": 3,
        "callsPerVm": 11.0,  # (9 + 15 + 9) / 3
        "callsPerVmByMethod": {"chat.postMessage": 2.333, "chat.update": 8.667},  # 7/3, 26/3
        # 1, 2, 2, 4, 4, 30, 90: every event of the three threads
        "eventToSlack": {"count": 7, "medianSeconds": 4.0, "p95Seconds": 90.0, "maxSeconds": 90.0},
        # 3 (m-a), 45 (m-b), 3 (m-c)
        "approvalMessage": {
            "count": 3,
            "medianSeconds": 3.0,
            "p95Seconds": 45.0,
            "maxSeconds": 45.0,
        },
        # 10 (m-a), 25 (m-b), 10 (m-c)
        "finalToSummary": {
            "count": 3,
            "medianSeconds": 10.0,
            "p95Seconds": 25.0,
            "maxSeconds": 25.0,
        },
        "approvalsRequested": 3,
        "approvalsNotShown": 0,
        "approvalsExpired": 1,
        "lostUpdates": 1,
        "rateLimited": 4,
    }
    assert second.slack.as_json() == {
        "vms": 1,
        "callsPerVm": 9.0,
        "callsPerVmByMethod": {"chat.postMessage": 2.0, "chat.update": 7.0},
        "eventToSlack": {"count": 2, "medianSeconds": 3.0, "p95Seconds": 4.0, "maxSeconds": 4.0},
        "approvalMessage": {"count": 0, "medianSeconds": 0.0, "p95Seconds": 0.0, "maxSeconds": 0.0},
        "finalToSummary": {
            "count": 1,
            "medianSeconds": 10.0,
            "p95Seconds": 10.0,
            "maxSeconds": 10.0,
        },
        "approvalsRequested": 1,
        "approvalsNotShown": 1,
        "approvalsExpired": 0,
        "lostUpdates": 0,
        "rateLimited": 1,
    }


def test_the_runs_slack_figures_count_every_call_and_every_429() -> None:
    report = _slack_run()

    assert report.slack.as_json() == {
        "vms": 4,
        "callsPerVm": 11.0,  # 44 calls, directory lookups included
        "callsPerVmByMethod": {"chat.postMessage": 2.5, "chat.update": 7.5, "users.info": 1.0},
        # 1, 2, 2, 2, 4, 4, 4, 30, 90
        "eventToSlack": {"count": 9, "medianSeconds": 4.0, "p95Seconds": 90.0, "maxSeconds": 90.0},
        "approvalMessage": {
            "count": 3,
            "medianSeconds": 3.0,
            "p95Seconds": 45.0,
            "maxSeconds": 45.0,
        },
        # 10 (m-a), 25 (m-b), 10 (m-c), 10 (m-d)
        "finalToSummary": {
            "count": 4,
            "medianSeconds": 10.0,
            "p95Seconds": 25.0,
            "maxSeconds": 25.0,
        },
        "approvalsRequested": 4,
        "approvalsNotShown": 1,
        "approvalsExpired": 1,
        "lostUpdates": 1,
        "rateLimited": 7,
    }


def test_a_vms_approval_message_waits_from_the_request_to_the_button() -> None:
    vms = {vm.migration_id: vm for vm in _slack_run().vms}

    assert vms["m-b"].slack.as_json()["approvalMessageSeconds"] == 45.0
    assert vms["m-b"].slack.as_json()["callsByMethod"] == {
        "chat.postMessage": 3,
        "chat.update": 12,
    }
    assert vms["m-c"].slack.as_json()["approvalStatus"] == "EXPIRED"
    # never shown: no wait to report
    assert vms["m-d"].slack.as_json()["approvalMessageSeconds"] is None
    assert vms["m-d"].slack.as_json()["approvalStatus"] == "APPROVED"


# --- the quota floor -----------------------------------------------------------------------


def _servers(count: int, *, os_family: str = "linux", disk_bytes: int = 0) -> list[FloorServer]:
    return [FloorServer(f"s{i}", "w", os_family, disk_bytes) for i in range(count)]


INSTANT_WAVE = {"w": FloorWave("w", bytes_per_second=0, window_start_seconds=0)}
TIMINGS = FloorTimings(0, {"linux": 1800, "windows": 2700}, {"linux": 1500, "windows": 2400})


@pytest.mark.parametrize(("servers", "jobs"), [(45, 20), (30, 7), (20, 20), (1, 20), (200, 20)])
def test_one_server_per_job_takes_ceil_n_over_j_times_d(servers: int, jobs: int) -> None:
    # The check: N servers ready at once, job duration D, J concurrent jobs
    floor = lane_floor(
        _servers(servers),
        INSTANT_WAVE,
        LaneQuotas(concurrent_jobs=jobs),
        TIMINGS,
        servers_per_job=1,
    )

    assert floor.test_launches_done_seconds == math.ceil(servers / jobs) * 1800
    assert floor.test_jobs == servers


def test_batched_jobs_take_as_many_servers_as_the_quotas_allow() -> None:
    floor = lane_floor(_servers(45), INSTANT_WAVE, LaneQuotas(), TIMINGS)

    assert (floor.test_jobs, floor.test_launches_done_seconds) == (1, 1800)
    assert (floor.cutover_jobs, floor.cutovers_done_seconds) == (1, 1800 + 1500)


def test_servers_in_active_jobs_caps_a_batch() -> None:
    # 10 servers, at most 4 in active jobs: jobs of 4, 4, 2, one after the other
    floor = lane_floor(_servers(10), INSTANT_WAVE, LaneQuotas(servers_in_active_jobs=4), TIMINGS)

    assert (floor.test_jobs, floor.test_launches_done_seconds) == (3, 3 * 1800)


def test_a_job_lasts_its_slowest_servers_launch() -> None:
    servers = [*_servers(1), FloorServer("win", "w", "windows", 0)]

    floor = lane_floor(servers, INSTANT_WAVE, LaneQuotas(), TIMINGS)

    assert floor.test_launches_done_seconds == 2700


def test_cutovers_wait_for_the_window_to_open() -> None:
    waves = {"w": FloorWave("w", bytes_per_second=0, window_start_seconds=10_000)}

    floor = lane_floor(_servers(2), waves, LaneQuotas(), TIMINGS)

    assert (floor.test_launches_done_seconds, floor.cutovers_done_seconds) == (1800, 11_500)


def test_replication_shares_the_waves_link_within_the_staging_slots() -> None:
    # 4 servers of 1 GB, 2 slots, 100 s initiation, a 1 MB/s link shared by the 2 syncing:
    # 100 + 1e9 / 5e5 = 2100 s for the first two, then again for the next two
    ready = replication_ready_seconds(
        _servers(4, disk_bytes=10**9),
        {"w": FloorWave("w", bytes_per_second=10**6, window_start_seconds=0)},
        initiation_seconds=100,
        replicating_servers=2,
    )

    assert ready == {"s0": 2100, "s1": 2100, "s2": 4200, "s3": 4200}


def test_the_report_gives_both_floors_and_the_ratio_to_them() -> None:
    # 100 GB over 12.5 MB/s = 8000 s after a 600 s initiation: ready at 8600; test 1800
    # (10400); the window opens at 14400; cutover 1500: 15900. Observed: 271 min = 16260 s.
    report = build_report(observation([migrated_vm("m-a")], [wave(window=(240, 360))]))

    floor = report.floor.as_json()
    assert (floor["batchedSeconds"], floor["perVmSeconds"]) == (15900.0, 15900.0)
    assert floor["ratioToBatched"] == round(16260 / 15900, 3)
    assert floor["lanes"][0]["batched"]["replicationDoneSeconds"] == 8600.0
    assert floor["lanes"][0]["batched"]["testLaunchesDoneSeconds"] == 10400.0


def test_the_floors_differ_when_one_server_per_job_binds() -> None:
    vms = [migrated_vm(f"m-{i}", disk_bytes=0) for i in range(25)]
    report = build_report(
        observation(vms, [wave(window=(0, 600))], quotas=LaneQuotas(concurrent_jobs=20))
    )

    # all ready at 600 s. Batched: one test job (to 2400), one cutover job (to 3900).
    # One per job, 20 slots: 20 tests to 2400; then the 5 tests waiting since 600 (to 4200)
    # beside 15 cutovers (to 3900); the other 5 cutovers 3900-5400; the last 5, 4200-5700
    assert (report.floor.batched_seconds, report.floor.per_vm_seconds) == (3900, 5700)


# --- small pieces and the JSON -------------------------------------------------------------


def test_distributions_use_the_median_and_the_nearest_rank_p95() -> None:
    assert distribution([720, 300, 1800, 420]).as_json() == {
        "count": 4,
        "medianSeconds": 570.0,
        "p95Seconds": 1800.0,
        "maxSeconds": 1800.0,
    }
    assert distribution(range(1, 21)).p95_seconds == 19
    assert distribution([]).count == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (40 * 60, "40m"), (3 * 3600, "3h"), (6 * 3600 + 600, "6h10"), (89.6, "1m")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_json_has_a_stable_shape() -> None:
    report = build_report(
        observation([migrated_vm("m-a"), rolled_back_vm("m-c")], [wave()], ended=300)
    )

    document = json.loads(json.dumps(report.as_json()))
    assert list(document) == [
        "reportVersion",
        "design",
        "startedAt",
        "endedAt",
        "wallSeconds",
        "makespanSeconds",
        "makespanHours",
        "vmCount",
        "outcomes",
        "floor",
        "bottlenecks",
        "calls",
        "slack",
        "waves",
        "vms",
    ]
    assert (document["makespanSeconds"], document["makespanHours"]) == (18000.0, 5.0)
    assert list(document["vms"][0]) == [
        "migrationId",
        "wave",
        "appName",
        "targetVmName",
        "lane",
        "osFamily",
        "finalStatus",
        "recordStatus",
        "outcome",
        "ended",
        "phases",
        "jobs",
        "quotaRejections",
        "quotaWaitSeconds",
        "quotaWaits",
        "waits",
        "slack",
        "missedWindow",
        "failure",
    ]
    assert list(document["waves"][0]) == [
        "name",
        "lane",
        "vmCount",
        "outcomes",
        "applications",
        "replicationDoneBy",
        "testLaunches",
        "approvalWaits",
        "window",
        "criticalPath",
        "bottlenecks",
        "slack",
    ]


def test_replication_at_realistic_sizes_ends() -> None:
    # 7 servers of 100 GB sharing 12.5 MB/s: all ready together after 600 + 7 x 8000 s
    ready = replication_ready_seconds(
        [FloorServer(f"s{i}", "w", "linux", 100 * 10**9) for i in range(7)],
        {"w": FloorWave("w", bytes_per_second=12.5 * 10**6, window_start_seconds=0)},
        initiation_seconds=600,
        replicating_servers=150,
    )

    assert list(ready.values()) == pytest.approx([56_600] * 7)


# --- the terminal summary ------------------------------------------------------------------


def test_the_terminal_summary_has_a_row_per_wave_and_the_runs_figures() -> None:
    report = build_report(two_wave_observation())
    console = Console(record=True, width=240, color_system=None)

    print_summary(report, console, json_path="out/report.json", html_path="out/report.html")

    text = console.export_text()
    assert "wave-1" in text
    assert "wave-2" in text
    assert "6/7 migrated" in text
    assert "1 rolled back" in text
    assert "overruns by 12 min" in text
    assert "wave-2-reporting-11-vm:" in text
    assert "replication: 6h58 per VM" in text
    assert "Makespan 9.9 h" in text
    assert "1 lost Slack update(s)" in text
    assert "2 Slack 429(s)" in text
    # AND the run's Slack line: calls per VM by method, event to root and to the summary,
    # approval messages
    assert (
        "Slack · per VM: 2.0 postMessage, 7.0 update · event to thread root p95 4.0s, max 4.0s"
        " · final result to wave summary p95 10.0s, max 10.0s"
        " · approval message p50 3.0s, p95 3.0s, max 3.0s · 1 lost update(s)"
        " · 1 expired approval(s) · 2 429(s)"
    ) in text
    assert "Report written: out/report.json (JSON), out/report.html (HTML)" in text


def test_a_final_result_is_shown_by_the_first_summary_version_counting_it() -> None:
    t0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

    def after(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    finals = [
        ("m-1", "w", "migrated", after(0)),
        ("m-2", "w", "migrated", after(5)),
        ("m-3", "w", "rolled back", after(6)),
        ("m-4", "w", "migrated", after(100)),  # never counted
    ]
    versions = {
        "w": [
            (after(-30), {"migrated": 0}),
            (after(20), {"migrated": 1}),  # the first result
            (after(50), {"migrated": 2, "rolled_back": 1}),  # the next two
        ]
    }

    shown = _shown_in_summaries(finals, versions)

    assert shown == {"m-1": after(20), "m-2": after(50), "m-3": after(50)}
