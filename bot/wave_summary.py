"""What a wave's summary message says: pure functions from the wave's threads to a message.

One message per wave in its channel, edited in place: how many migrations are in each
category (queued, replicating/testing, awaiting approval, cutting over, migrated, rolling
back, rolled back, failed), the failures with links to their threads, the cutover window and
the predicted end once a rehearsal's prediction is recorded (``wavepilot record-prediction``),
with whether it fits the window. The counts are recounted from the threads
(the notifier's own items), never kept as running totals, so they are exact once the last
thread is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.thread_store import SlackThread
from bot.threads import (
    CATEGORIES,
    FAILURE_CATEGORIES,
    TIME_FORMAT,
    Category,
    Message,
    slack_date,
)
from orchestration.adapters.wave_control import WaveControl
from orchestration.adapters.wave_predictions import WavePrediction
from orchestration.events import ApprovalRequested, EventDetail, MigrationRequested

METADATA_EVENT_TYPE = "wavepilot_wave_summary"
DATE_FORMAT = "{date_short_pretty}"
# Migrations whose thread has ended: a wave whose threads all have is done.
ENDED: frozenset[str] = frozenset({"migrated", "rolled back", "failed"})
MAX_FAILURES_LISTED = 20
CATEGORY_ICON: dict[str, str] = {
    "queued": ":hourglass_flowing_sand:",
    "replicating/testing": ":arrows_counterclockwise:",
    "awaiting approval": ":raised_hand:",
    "paused": ":double_vertical_bar:",
    "parked": ":parking:",
    "cutting over": ":arrow_right:",
    "migrated": ":white_check_mark:",
    "rolling back": ":rewind:",
    "rolled back": ":leftwards_arrow_with_hook:",
    "failed": ":x:",
}


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Failure:
    target_vm_name: str
    category: Category
    detail: str
    link: str


@dataclass(frozen=True, slots=True)
class WaveView:
    """A wave as its summary shows it."""

    wave: str
    counts: dict[Category, int]
    failures: tuple[Failure, ...] = ()
    window: Window | None = None
    prediction: WavePrediction | None = None  # the rehearsal's, once one is recorded
    updated_at: str = ""  # the newest event folded into any of its threads (ISO 8601)
    ended: bool = False  # every migration of the wave has ended (migrated, rolled back, failed)
    held: WaveControl | None = None  # an operator's pause or cancel, while it holds the wave

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def wave_view(
    wave: str,
    threads: Iterable[SlackThread],
    *,
    window: Window | None = None,
    prediction: WavePrediction | None = None,
    control: WaveControl | None = None,
) -> WaveView:
    counts: dict[Category, int] = dict.fromkeys(CATEGORIES, 0)
    failures: list[Failure] = []
    updated_at = ""
    listed = sorted(threads, key=lambda t: (t.state.target_vm_name, t.migration_id))
    for thread in listed:
        category = thread.state.category
        counts[category] += 1
        updated_at = max(updated_at, thread.state.updated_at)
        if category in FAILURE_CATEGORIES:
            failures.append(
                Failure(
                    thread.state.target_vm_name,
                    category,
                    thread.state.detail,
                    permalink(thread.channel, thread.ts) if thread.ts else "",
                )
            )
    ended = bool(listed) and all(t.state.category in ENDED for t in listed)
    held = control if control is not None and control.holds_launches else None
    return WaveView(wave, counts, tuple(failures), window, prediction, updated_at, ended, held)


def permalink(channel: str, ts: str) -> str:
    """A message's link without asking Slack (``chat.getPermalink`` is one more call per
    failure): ``slack.com/archives/<channel>/p<ts without the dot>`` opens the message in
    the reader's workspace."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def window_of(event: EventDetail) -> Window | None:
    """The cutover window an event names (the request's, or the approval's), if any."""
    if isinstance(event, ApprovalRequested) and event.window_start and event.window_end:
        return Window(event.window_start, event.window_end)
    if isinstance(event, MigrationRequested) and event.request.effective_vm is not None:
        window = event.request.effective_vm.cutover_window
        return Window(window.start, window.end)
    return None


def summary_message(view: WaveView) -> Message:
    counted = [f"{CATEGORY_ICON[c]} {c} *{n}*" for c, n in view.counts.items()]
    window = (
        f"{slack_date(view.window.start.isoformat())} to {slack_date(view.window.end.isoformat())}"
        if view.window
        else "none set"
    )
    predicted = predicted_end_text(view.prediction, view.window)
    done = " (done)" if view.ended else ""
    title = f":bar_chart: *Wave {view.wave}*: {view.total} migrations{done}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(counted)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Cutover window*\n{window}"},
                {"type": "mrkdwn", "text": f"*Predicted end*\n{predicted}"},
            ],
        },
    ]
    if view.held is not None:
        held = view.held
        icon = ":double_vertical_bar:" if held.state == "PAUSED" else ":octagonal_sign:"
        what = (
            "no new test launch or cutover starts until it is resumed"
            if held.state == "PAUSED"
            else "its migrations that had not finalized are rolled back"
        )
        why = f": {_escape(_clip(held.reason, 300))}" if held.reason else ""
        blocks.insert(
            1,
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} *{held.state.capitalize()}* by <@{held.by}> "
                    f"{slack_date(held.at.isoformat())}{why} ({what})",
                },
            },
        )
    if view.failures:
        lines = [
            (f"• <{f.link}|{f.target_vm_name}>" if f.link else f"• {f.target_vm_name}")
            + f": {f.category}"
            + (f": {_escape(_clip(f.detail, 150))}" if f.detail else "")
            for f in view.failures[:MAX_FAILURES_LISTED]
        ]
        more = len(view.failures) - MAX_FAILURES_LISTED
        if more > 0:
            lines.append(f"… and {more} more: `/wavepilot status {view.wave}`")
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("*Failures*\n" + "\n".join(lines))},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Last update {slack_date(view.updated_at)}"}],
        }
    )
    counts_text = ", ".join(f"{n} {c}" for c, n in view.counts.items() if n)
    state = f", {view.held.state.lower()}" if view.held is not None else ""
    text = f"Wave {view.wave}{state}: {view.total} migrations ({counts_text or 'none yet'}){done}"
    return Message(text, tuple(blocks))


def predicted_end_text(prediction: WavePrediction | None, window: Window | None) -> str:
    """ "<end> (recorded <date>)" and, against the wave's window, "fits, N min to spare"
    (rounded down) or "overruns by N min" (rounded up), as the rehearsal report counts them;
    "-" when no prediction was recorded."""
    if prediction is None:
        return "-"
    recorded = slack_date(prediction.recorded_at.isoformat(), DATE_FORMAT)
    end = slack_date(prediction.predicted_end.isoformat(), TIME_FORMAT)
    text = f"{end} (recorded {recorded})"
    if window is not None:
        spare = (window.end - prediction.predicted_end).total_seconds()
        if spare >= 0:
            text += f"\n:white_check_mark: fits, {int(spare // 60)} min to spare"
        else:
            text += f"\n:warning: overruns by {math.ceil(-spare / 60)} min"
    if prediction.missed:
        text += f"\n{prediction.missed} VMs missed the window in the rehearsal"
    return text


def summary_metadata(view: WaveView) -> dict[str, Any]:
    """Message metadata: the counts as data (lets anyone check them against the wave)."""
    return {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {
            "wave": view.wave,
            "counts": {c.replace("/", "_").replace(" ", "_"): n for c, n in view.counts.items()},
            "ended": view.ended,
            "updated_at": view.updated_at,
            "predicted_end": view.prediction.predicted_end.isoformat() if view.prediction else "",
        },
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = 2_900) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
