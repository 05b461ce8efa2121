"""Show a wave's progress on GitHub: read the wave, decide (``wave_progress.plan``), post.

``report`` is called with a wave and the migrations whose status events just arrived. It reads
the wave's migrations (one Query on ``gsi1``), overlays those migrations read again with a
strongly consistent GetItem each (the index lags the table: the event of the wave's last
migration must see that migration ended), groups them by the commit that published each, and
for each commit the events touched compares the wave's progress with what GitHub was last
shown. The first report creates the wave's deployment (or finds the one GitHub has for the
environment and commit) and remembers its ID before anything else, so none is created twice;
each post is remembered as soon as it is made, so a failure part-way repeats only the rest.
A migration without provenance (a hand-written request) has no commit: it is not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from orchestration.gitops.wave_progress import (
    DeploymentStatus,
    Links,
    MigrationView,
    Shown,
    digest,
    plan,
    progress_of,
)

if TYPE_CHECKING:
    from orchestration.adapters.state_store import MigrationRecord


class WaveRecords(Protocol):
    """The wave's migrations (``MigrationStore``)."""

    def get(self, migration_id: str) -> MigrationRecord | None: ...

    def wave_migrations(self, wave: str) -> list[MigrationRecord]: ...


class ShownStore(Protocol):
    """What GitHub was last shown (``WaveDeploymentStore``)."""

    def get(self, wave: str, commit: str) -> Shown | None: ...

    def save(self, wave: str, commit: str, shown: Shown) -> None: ...


class GitHubProgress(Protocol):
    """GitHub's side (``WaveDeployments``); failures raise ``GitHubApiError``."""

    def find_or_create(self, wave: str, commit: str) -> int: ...

    def post_status(self, deployment_id: int, status: DeploymentStatus) -> None: ...

    def comment_on_merged_pull(self, wave: str, commit: str, body: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Reported:
    """What one report posted for a wave's commit (for the log line and metrics)."""

    wave: str
    commit: str
    deployment_id: int
    created: bool = False
    status: str = ""  # the state posted ("" none)
    description: str = ""
    commented_on: int | None = None  # the pull request commented on
    no_pull_request: bool = False  # the wave ended but no merged pull request has the commit


def view_of(record: MigrationRecord) -> MigrationView:
    return MigrationView(
        migration_id=record.migration_id,
        target_vm_name=record.target_vm_name,
        app_name=record.app_name,
        status=record.status,
        execution_arn=record.execution_arn or record.last_execution_arn or "",
        slack_channel=record.slack_channel or "",
    )


def commit_of(record: MigrationRecord) -> str | None:
    provenance = record.request.provenance
    return provenance.commit if provenance is not None else None


class WaveProgressReporter:
    def __init__(
        self, records: WaveRecords, shown: ShownStore, github: GitHubProgress, links: Links
    ) -> None:
        self._records = records
        self._shown = shown
        self._github = github
        self._links = links

    def report(self, wave: str, migration_ids: Iterable[str]) -> list[Reported]:
        fresh = [r for r in map(self._records.get, dict.fromkeys(migration_ids)) if r]
        fresh = [r for r in fresh if r.wave == wave]
        touched = list(dict.fromkeys(c for c in map(commit_of, fresh) if c is not None))
        if not touched:
            return []
        by_id = {r.migration_id: r for r in self._records.wave_migrations(wave)}
        by_id.update({r.migration_id: r for r in fresh})
        return [
            self._report_commit(
                wave, commit, [view_of(r) for r in by_id.values() if commit_of(r) == commit]
            )
            for commit in touched
        ]

    def _report_commit(self, wave: str, commit: str, views: list[MigrationView]) -> Reported:
        progress = progress_of(wave, commit, views)
        shown = self._shown.get(wave, commit)
        effects = plan(shown, progress, self._links)
        reported = Reported(wave, commit, shown.deployment_id if shown else 0)
        if effects.none:
            return reported
        if shown is None:
            shown = Shown(self._github.find_or_create(wave, commit))
            self._shown.save(wave, commit, shown)
            reported = replace(reported, deployment_id=shown.deployment_id, created=True)
        if effects.status is not None:
            self._github.post_status(shown.deployment_id, effects.status)
            shown = replace(shown, status_key=effects.status_key)
            self._shown.save(wave, commit, shown)
            reported = replace(
                reported, status=effects.status.state, description=effects.status.description
            )
        if effects.comment is not None:
            number = self._github.comment_on_merged_pull(wave, commit, effects.comment)
            # No merged pull request (a direct push): remembered too, so it is not asked again
            # for every later event of the wave.
            shown = replace(shown, comment_digest=digest(effects.comment))
            self._shown.save(wave, commit, shown)
            reported = replace(reported, commented_on=number, no_pull_request=number is None)
        return reported
