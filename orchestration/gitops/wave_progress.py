"""A wave's progress on GitHub: pure functions from the wave's migrations to what GitHub shows.

The merge commit that published a wave carries one GitHub deployment per wave (environment
``migration/<wave>``) whose status follows the wave: ``in_progress`` while any of the
migrations it published runs, then ``success`` when every one ended migrated, ``failure``
(with the counts) when any ended otherwise; and, when the wave ends, one comment on the merged
pull request listing what was migrated, rolled back, parked (with links). What is shown is
recomputed from the migrations' records every time, never kept as running totals, so a
redelivered or reordered event cannot skew it; ``plan`` compares it with what GitHub was last
shown and says what to post (fold, then effects: ``progress_reporter`` performs them).

A migration's record status is the truth: ``REQUESTED`` and ``RUNNING`` are in flight, every
other status is an end. The ends known today have their words (``COMPLETED`` migrated,
``ROLLED_BACK`` rolled back, ``FAILED`` failed, ``PARKED`` parked); an end added later is
shown by its own name, so a new status never makes a wave look unfinished forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from orchestration.events import (
    EVENT_SOURCE,
    MigrationCompleted,
    MigrationFailed,
    MigrationRequested,
    MigrationStatusUpdated,
    RollbackCompleted,
)

ENVIRONMENT_PREFIX = "migration/"
# Every comment starts with this, then the wave: the comment is found again and edited.
COMMENT_MARKER_PREFIX = "<!-- wavepilot:wave-result:"
IN_FLIGHT: frozenset[str] = frozenset({"REQUESTED", "RUNNING"})
MIGRATED = "migrated"
# The ends known today, in the order the counts list them (unknown ends follow, by name).
END_WORDS: dict[str, str] = {
    "COMPLETED": MIGRATED,
    "ROLLED_BACK": "rolled back",
    "FAILED": "failed",
    "PARKED": "parked",
}
# GitHub cuts a deployment status description at 140 characters.
DESCRIPTION_LIMIT = 140
# A comment body is at most 65,536 characters; the list stops well before.
COMMENT_LIMIT = 60_000

DeploymentState = Literal["in_progress", "success", "failure"]

# The events that can change a migration's standing in its wave (its request, its steps, its
# end): the rule to ``report_github_progress`` takes these. Terraform lists the same
# (local.github_progress_detail_types; tests/test_terraform.py holds the two together).
PROGRESS_DETAIL_TYPES: tuple[str, ...] = tuple(
    event.detail_type
    for event in (
        MigrationRequested,
        MigrationStatusUpdated,
        MigrationCompleted,
        MigrationFailed,
        RollbackCompleted,
    )
)


def progress_event_pattern(source: str = EVENT_SOURCE) -> dict[str, object]:
    """The EventBridge pattern of the rule to ``report_github_progress``."""
    return {"source": [source], "detail-type": list(PROGRESS_DETAIL_TYPES)}


def environment_of(wave: str) -> str:
    """The GitHub environment of a wave's deployments."""
    return f"{ENVIRONMENT_PREFIX}{wave}"


def comment_marker(wave: str) -> str:
    """The hidden first line of the wave's result comment."""
    return f"{COMMENT_MARKER_PREFIX}{wave} -->"


@dataclass(frozen=True, slots=True)
class MigrationView:
    """One migration as the wave's progress shows it (from its record)."""

    migration_id: str
    target_vm_name: str
    app_name: str
    status: str
    execution_arn: str = ""  # the last execution started for it ("" none yet)
    slack_channel: str = ""

    @property
    def ended(self) -> bool:
        return self.status not in IN_FLIGHT

    @property
    def outcome(self) -> str:
        """``in progress``, or the end's word (an unknown end: its own name, in words)."""
        if not self.ended:
            return "in progress"
        return END_WORDS.get(self.status, self.status.lower().replace("_", " "))


@dataclass(frozen=True, slots=True)
class WaveProgress:
    """The migrations one commit published in a wave, as they stand."""

    wave: str
    commit: str
    migrations: tuple[MigrationView, ...]

    @property
    def total(self) -> int:
        return len(self.migrations)

    @property
    def ended(self) -> bool:
        return bool(self.migrations) and all(m.ended for m in self.migrations)

    @property
    def ends(self) -> dict[str, int]:
        """How many ended each way: migrated first, the known ends next, unknown ones last."""
        counted: dict[str, int] = {}
        for migration in self.migrations:
            if migration.ended:
                counted[migration.outcome] = counted.get(migration.outcome, 0) + 1
        known = [word for word in END_WORDS.values() if word in counted]
        unknown = sorted(word for word in counted if word not in END_WORDS.values())
        return {word: counted[word] for word in (*known, *unknown)}

    @property
    def slack_channel(self) -> str:
        """The wave's channel (the first its migrations name; "" none)."""
        return next((m.slack_channel for m in self.migrations if m.slack_channel), "")

    @property
    def state(self) -> DeploymentState:
        if not self.ended:
            return "in_progress"
        return "success" if self.ends.get(MIGRATED, 0) == self.total else "failure"

    @property
    def status_key(self) -> str:
        """What a new status is posted for: the state and the ends, not the total (a VM that
        joins a running wave shows in the next status, not in one of its own: a wave of
        hundreds would otherwise post one per request batch before anything happened)."""
        ends = ",".join(f"{word}={n}" for word, n in self.ends.items())
        return f"{self.state}:{ends}"

    @property
    def description(self) -> str:
        """``12/20 migrated, 1 rolled back``: the ends so far, against the total."""
        ends = self.ends
        parts = [f"{ends.pop(MIGRATED, 0)}/{self.total} migrated"]
        parts += [f"{n} {word}" for word, n in ends.items()]
        return _clip(", ".join(parts), DESCRIPTION_LIMIT)


def progress_of(wave: str, commit: str, migrations: Iterable[MigrationView]) -> WaveProgress:
    """The wave's progress, its migrations in a stable order (by VM name)."""
    listed = sorted(migrations, key=lambda m: (m.target_vm_name, m.migration_id))
    return WaveProgress(wave, commit, tuple(listed))


@dataclass(frozen=True, slots=True)
class Links:
    """Where a reader goes from GitHub: each migration's execution and the state machine in
    the Step Functions console, the wave's Slack channel. Empty settings give no link."""

    region: str = ""
    state_machine_arn: str = ""

    def execution(self, execution_arn: str) -> str:
        if not (self.region and execution_arn):
            return ""
        return f"{self._console()}#/v2/executions/details/{quote(execution_arn, safe=':')}"

    def executions(self) -> str:
        """The state machine's executions: the deployment's log."""
        if not (self.region and self.state_machine_arn):
            return ""
        return f"{self._console()}#/statemachines/view/{quote(self.state_machine_arn, safe=':')}"

    @staticmethod
    def channel(channel_id: str) -> str:
        """The wave's channel, opened in the reader's workspace (a channel ID)."""
        return f"https://slack.com/app_redirect?channel={quote(channel_id)}" if channel_id else ""

    def _console(self) -> str:
        return f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"


@dataclass(frozen=True, slots=True)
class Shown:
    """What GitHub was last shown of a wave's deployment (kept in the state table)."""

    deployment_id: int
    status_key: str = ""  # ``WaveProgress.status_key`` of the status last posted ("" none)
    comment_digest: str = ""  # sha256 of the result comment last posted ("" none)


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    state: DeploymentState
    description: str
    log_url: str = ""
    environment_url: str = ""


@dataclass(frozen=True, slots=True)
class Effects:
    """What to post: a deployment status (and the key it is posted for), the result comment
    (None: nothing)."""

    status: DeploymentStatus | None = None
    status_key: str = ""
    comment: str | None = None

    @property
    def none(self) -> bool:
        return self.status is None and self.comment is None


def plan(shown: Shown | None, progress: WaveProgress, links: Links) -> Effects:
    """Post a status only when the wave's state or its ends changed (``status_key``); the
    comment when the wave has ended and its result differs from the comment posted (so a
    redelivered event posts nothing)."""
    status = DeploymentStatus(
        progress.state,
        progress.description,
        links.executions(),
        links.channel(progress.slack_channel),
    )
    post = None if shown is not None and shown.status_key == progress.status_key else status
    comment = None
    if progress.ended:
        body = result_comment(progress, links)
        if shown is None or shown.comment_digest != digest(body):
            comment = body
    return Effects(post, progress.status_key, comment)


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


_HEADLINE: dict[str, tuple[str, str]] = {
    "success": ("✅", "every migration ended migrated"),
    "failure": ("❌", "ended with migrations not migrated"),
}


def result_comment(progress: WaveProgress, links: Links) -> str:
    """The end-of-wave comment: the marker, a headline with the counts, then one section per
    outcome (migrated, rolled back, parked, ...) listing its VMs with links."""
    wave = progress.wave
    icon, headline = _HEADLINE.get(progress.state, ("⏳", "in progress"))
    lines = [
        comment_marker(wave),
        f"### Wave `{wave}`: {headline}",
        "",
        f"{icon} **{progress.description}** (commit `{progress.commit[:7]}`, "
        f"environment `{environment_of(wave)}`)",
    ]
    where = [
        f"[{label}]({url})"
        for label, url in (
            ("Step Functions executions", links.executions()),
            ("Slack channel", links.channel(progress.slack_channel)),
        )
        if url
    ]
    if where:
        lines += ["", "Links: " + " · ".join(where)]
    for outcome in progress.ends:
        of_outcome = [m for m in progress.migrations if m.outcome == outcome]
        lines += ["", f"**{outcome.capitalize()}** ({len(of_outcome)})", ""]
        lines += [_line(m, links) for m in of_outcome]
    body = "\n".join(lines) + "\n"
    if len(body) > COMMENT_LIMIT:
        cut = body[:COMMENT_LIMIT].rsplit("\n", 1)[0]
        body = f"{cut}\n\n… the list is cut here: `wavepilot status {wave}` has every VM.\n"
    return body


def _line(migration: MigrationView, links: Links) -> str:
    name = f"`{migration.target_vm_name}` ({migration.app_name})"
    url = links.execution(migration.execution_arn)
    return f"- [{name}]({url})" if url else f"- {name}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
