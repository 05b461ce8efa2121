"""A wave's progress on GitHub, the pure part: counts, states, when to post, the comment."""

from __future__ import annotations

import pytest

from orchestration.gitops.wave_progress import (
    DESCRIPTION_LIMIT,
    Links,
    MigrationView,
    Shown,
    WaveProgress,
    comment_marker,
    digest,
    plan,
    progress_of,
)

WAVE = "wave-1"
COMMIT = "c" * 40
LINKS = Links("us-east-1", "arn:aws:states:us-east-1:123456789012:stateMachine:wavepilot-prod")


def _vm(name: str, status: str, *, app: str = "intranet", channel: str = "") -> MigrationView:
    return MigrationView(
        migration_id=f"mig-{name}",
        target_vm_name=name,
        app_name=app,
        status=status,
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:wavepilot-prod:{name}",
        slack_channel=channel,
    )


def _wave(*statuses: str) -> WaveProgress:
    return progress_of(WAVE, COMMIT, [_vm(f"vm-{i:02d}", s) for i, s in enumerate(statuses)])


def test_a_wave_in_flight_is_in_progress_with_its_ends_against_the_total() -> None:
    # GIVEN a wave of 20: 12 migrated, 1 rolled back, the rest running or queued
    progress = _wave(*["COMPLETED"] * 12, "ROLLED_BACK", *["RUNNING"] * 6, "REQUESTED")

    # THEN it is in progress, and says what has ended so far
    assert not progress.ended
    assert progress.state == "in_progress"
    assert progress.description == "12/20 migrated, 1 rolled back"


def test_a_wave_whose_every_migration_migrated_succeeded() -> None:
    progress = _wave("COMPLETED", "COMPLETED", "COMPLETED")
    assert progress.ended
    assert (progress.state, progress.description) == ("success", "3/3 migrated")


@pytest.mark.parametrize(
    ("statuses", "description"),
    [
        (("COMPLETED", "ROLLED_BACK", "COMPLETED"), "2/3 migrated, 1 rolled back"),
        (("FAILED", "PARKED", "ROLLED_BACK"), "0/3 migrated, 1 rolled back, 1 failed, 1 parked"),
        # An end added later (not known here) is an end all the same, shown by its name.
        (("COMPLETED", "CANCELLED_BY_OPERATOR"), "1/2 migrated, 1 cancelled by operator"),
    ],
)
def test_a_wave_that_ended_with_anything_not_migrated_failed(
    statuses: tuple[str, ...], description: str
) -> None:
    progress = _wave(*statuses)
    assert progress.ended
    assert (progress.state, progress.description) == ("failure", description)


def test_a_wave_without_migrations_has_not_ended() -> None:
    assert not _wave().ended


def test_the_description_fits_githubs_limit() -> None:
    progress = progress_of(
        WAVE, COMMIT, [_vm(f"vm-{i}", f"ODD_END_NUMBER_{i}_OF_MANY") for i in range(20)]
    )
    assert len(progress.description) == DESCRIPTION_LIMIT
    assert progress.description.endswith("…")


def test_the_first_report_posts_the_in_progress_status() -> None:
    effects = plan(None, _wave("REQUESTED", "REQUESTED"), LINKS)
    assert effects.status is not None
    assert (effects.status.state, effects.status.description) == ("in_progress", "0/2 migrated")
    assert effects.status.log_url.startswith("https://us-east-1.console.aws.amazon.com/states/")
    assert effects.comment is None


def test_a_status_is_posted_only_when_the_state_or_the_ends_change() -> None:
    # GIVEN what GitHub was shown for a wave of 2 with nothing ended
    first = plan(None, _wave("REQUESTED", "RUNNING"), LINKS)
    shown = Shown(7, status_key=first.status_key)

    # WHEN a step moves (nothing ends) or a VM joins the running wave: nothing to post
    assert plan(shown, _wave("RUNNING", "RUNNING"), LINKS).none
    assert plan(shown, _wave("RUNNING", "RUNNING", "REQUESTED"), LINKS).none

    # WHEN one migration ends: a new status
    moved = plan(shown, _wave("COMPLETED", "RUNNING"), LINKS)
    assert moved.status is not None
    assert moved.status.description == "1/2 migrated"


def test_the_end_posts_the_final_status_and_the_comment_once() -> None:
    # GIVEN a wave that has just ended with a rollback
    ended = _wave("COMPLETED", "ROLLED_BACK")
    running = plan(None, _wave("COMPLETED", "RUNNING"), LINKS)
    effects = plan(Shown(7, status_key=running.status_key), ended, LINKS)

    # THEN the failure with its counts, and the comment
    assert effects.status is not None
    assert (effects.status.state, effects.status.description) == (
        "failure",
        "1/2 migrated, 1 rolled back",
    )
    assert effects.comment is not None

    # AND once GitHub shows both, the same wave (a redelivered event) posts nothing
    shown = Shown(7, status_key=effects.status_key, comment_digest=digest(effects.comment))
    assert plan(shown, ended, LINKS).none


def test_a_wave_that_runs_again_after_its_end_is_shown_again() -> None:
    # GIVEN a wave that ended with a parked migration, and GitHub showing it
    parked = _wave("COMPLETED", "PARKED")
    first = plan(None, parked, LINKS)
    assert first.comment is not None
    shown = Shown(7, status_key=first.status_key, comment_digest=digest(first.comment))

    # WHEN the parked one is retried: in progress again, no comment
    retried = plan(shown, _wave("COMPLETED", "RUNNING"), LINKS)
    assert retried.status is not None
    assert retried.status.state == "in_progress"
    assert retried.comment is None

    # AND when it migrates: success, and the comment says so (edited, not a second one)
    assert retried.status_key
    done = plan(
        Shown(7, status_key=retried.status_key, comment_digest=shown.comment_digest),
        _wave("COMPLETED", "COMPLETED"),
        LINKS,
    )
    assert done.status is not None
    assert done.status.state == "success"
    assert done.comment is not None
    assert done.comment != first.comment


def test_the_comment_lists_each_outcome_with_links() -> None:
    # GIVEN a wave that ended: two migrated, one rolled back, one parked
    progress = progress_of(
        WAVE,
        COMMIT,
        [
            _vm("web-01", "COMPLETED", channel="C07WAVE0001"),
            _vm("web-02", "COMPLETED"),
            _vm("db-01", "ROLLED_BACK", app="payroll"),
            _vm("app-01", "PARKED", app="payroll"),
        ],
    )
    effects = plan(None, progress, LINKS)
    assert effects.comment is not None
    body = effects.comment

    # THEN it starts with the wave's marker, says the result, and lists every VM by outcome
    assert body.startswith(comment_marker(WAVE) + "\n")
    assert comment_marker(WAVE) == "<!-- wavepilot:wave-result:wave-1 -->"
    assert "**2/4 migrated, 1 rolled back, 1 parked**" in body
    assert f"commit `{COMMIT[:7]}`" in body
    assert "environment `migration/wave-1`" in body
    sections = [line for line in body.splitlines() if line.startswith("**") and "(" in line]
    assert sections == ["**Migrated** (2)", "**Rolled back** (1)", "**Parked** (1)"]
    # each VM links to its execution, and the wave to its Slack channel
    assert (
        "- [`db-01` (payroll)](https://us-east-1.console.aws.amazon.com/states/home?"
        "region=us-east-1#/v2/executions/details/arn:aws:states:us-east-1:123456789012:"
        "execution:wavepilot-prod:db-01)"
    ) in body
    assert "https://slack.com/app_redirect?channel=C07WAVE0001" in body


def test_without_a_region_or_execution_there_are_no_links() -> None:
    progress = progress_of(WAVE, COMMIT, [_vm("web-01", "COMPLETED")])
    effects = plan(None, progress, Links())
    assert effects.comment is not None
    assert "](" not in effects.comment
    assert "- `web-01` (intranet)" in effects.comment
    assert effects.status is not None
    assert effects.status.log_url == ""
