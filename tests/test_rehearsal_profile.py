"""The rehearsal's profile: defaults, a team's overrides, clear errors, the shared link."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.rehearsal.profile import (
    ApproverModel,
    BusinessHours,
    ProfileError,
    RehearsalProfile,
    fair_share_bytes_per_second,
    load_profile,
)


def test_without_a_file_the_defaults_are_mgns_published_quotas() -> None:
    profile = load_profile(None)
    assert profile.quotas.concurrent_jobs == 20
    assert profile.quotas.servers_per_job == 200
    assert profile.quotas.servers_in_active_jobs == 200
    assert profile.quotas.replicating_servers == 150
    assert profile.launches.test["linux"].total_minutes == pytest.approx(10.5)
    assert profile.launches.test["windows"].total_minutes == pytest.approx(20.5)


def test_a_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "pilot.yaml"
    path.write_text(
        "replication:\n"
        "  bandwidthMbps: 500\n"
        "  bandwidthMbpsByWave: {wave-2: 2000}\n"
        "launches:\n"
        "  cutover:\n"
        "    windows: {conversionMinutes: 30, bootMinutes: 12}\n"
        "quotasByLane:\n"
        '  "444455556666/eu-west-1": {replicatingServers: 1000}\n'
    )
    profile = load_profile(path)
    assert profile.replication.link_bytes_per_second("wave-1") == 500e6 / 8
    assert profile.replication.link_bytes_per_second("wave-2") == 2000e6 / 8
    assert profile.launches.cutover["windows"].total_minutes == pytest.approx(0.5 + 2 + 30 + 12)
    assert profile.launches.cutover["linux"].total_minutes == pytest.approx(10.5)  # default kept
    assert profile.quotas_for("444455556666", "eu-west-1").replicating_servers == 1000
    assert profile.quotas_for("444455556666", "eu-west-1").concurrent_jobs == 20
    assert profile.quotas_for("111122223333", "us-east-1").replicating_servers == 150


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quotas:\n  concurentJobs: 40\n", "pilot.yaml:2:3: quotas.concurentJobs"),
        ("quotas:\n  concurrentJobs: 0\n", "pilot.yaml:2:19: quotas.concurrentJobs"),
        ("launches:\n  test:\n    solaris: {bootMinutes: 3}\n", "pilot.yaml:3:5"),
        ("approvers:\n  responseMinutesMin: 20\n  responseMinutesMax: 5\n", "pilot.yaml:2:3"),
        ('quotasByLane:\n  "eu-west-1": {concurrentJobs: 5}\n', "accountId/region"),
        ("- just\n- a list\n", "a profile is a mapping"),
        ("quotas: [\n", "pilot.yaml:2:1"),
    ],
)
def test_a_bad_profile_names_file_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "pilot.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert expected in str(raised.value).replace(str(tmp_path) + "/", "")


def test_servers_sharing_a_link_finish_when_processor_sharing_would_finish_them() -> None:
    gb = 1e9
    # Both start together at 0.5 GB/s each; the small one ends at 2 s, the big one then has
    # the whole link for its last 2 GB: it ends at 4 s.
    rates = fair_share_bytes_per_second({"small": int(gb), "big": int(3 * gb)}, gb, 10)
    assert rates["small"] == pytest.approx(gb / 2)
    assert rates["big"] == pytest.approx(3 * gb / 4)
    # One at a time (the staging quota is 1): each gets the whole link.
    rates = fair_share_bytes_per_second({"small": int(gb), "big": int(3 * gb)}, gb, 1)
    assert rates == {"small": pytest.approx(gb), "big": pytest.approx(gb)}


def test_business_hours_move_a_late_approval_to_the_next_morning() -> None:
    hours = BusinessHours.model_validate({"start": "08:00", "end": "18:00", "timezone": "UTC"})
    friday_night = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
    assert hours.next_open(friday_night) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday
    tuesday_noon = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    assert hours.next_open(tuesday_noon) == tuesday_noon
    approvers = ApproverModel(
        response_minutes_min=10, response_minutes_max=10, business_hours=hours
    )
    rng = random.Random(1)  # noqa: S311 - a simulation's draw, not security
    assert approvers.responds_at(friday_night, rng) == datetime(2026, 12, 7, 8, 10, tzinfo=UTC)


def test_the_documented_profile_example_is_the_default() -> None:
    """docs/REHEARSAL.md shows the defaults as a profile file: it must say what the code does."""
    text = Path("docs/REHEARSAL.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml

    assert RehearsalProfile.model_validate(yaml.safe_load(block)) == RehearsalProfile()
