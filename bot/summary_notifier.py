"""Each wave's summary message: posted at the wave's first event, edited in place, coalesced.

The notifier tells it about every event it handled (``note``). A change of a thread's
category owes the summary an edit; the edit is made once the summary has not been edited for
``SUMMARY_MIN_EDIT_SECONDS`` (Slack seconds), and at once when the wave's last migration
ends, so the counts it ends with are exact (a migration that ends while others are known to
run is not the last: the wave is not recounted for it). What is owed and not yet due is paid by the
wave's next event, or once due by ``pay_owed`` (after each batch, and by the notifier's
owed-roots reminder in a quiet spell: bot/owed_roots.py); an edit that fails stays owed and
the event comes back (SQS), so the final counts are never lost. The counts are recounted from
the wave's thread items (one Query on ``gsi1``, at most once a ``WAVE_REREAD_SECONDS`` and
when the wave looks ended), overlaid with the threads this container wrote since (the index
is eventually consistent). The wave's recorded prediction (``wavepilot
record-prediction``) is read when the summary is posted and at most once a
``PREDICTION_MAX_AGE_SECONDS`` after (one GetItem), so a prediction recorded while the wave
runs shows at the next edit after that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.slack_api import PacedSlack
from bot.thread_store import (
    SlackThread,
    ThreadExistsError,
    ThreadStore,
    WaveSummaryMessage,
    WaveSummaryStore,
)
from bot.threads import Category
from bot.wave_summary import (
    ENDED,
    WaveView,
    Window,
    summary_message,
    summary_metadata,
    wave_view,
    window_of,
)
from orchestration.adapters.wave_predictions import WavePrediction, WavePredictionStore
from orchestration.events import EventDetail
from orchestration.observability import logger
from orchestration.pipeline.ports import WaveControls

SUMMARY_MIN_EDIT_SECONDS = 30.0
# How often an edit reads the wave's thread items again (Slack seconds). Between reads the
# counts are the last read folded with the threads this container wrote since (the notifier
# runs one at a time): an edit every 30 s of a long wave would otherwise read every thread
# of the wave each time. A wave that looks ended is read again before it is shown ended.
WAVE_REREAD_SECONDS = 300.0
PREDICTION_MAX_AGE_SECONDS = 60.0
# How often a thread waiting for a summary's lock looks again (Slack seconds).
LOCK_WAIT_SECONDS = 0.05
# Threads remembered per container for the overlay (a wave is at most a few thousand VMs).
MAX_OVERLAID_THREADS = 20_000


@dataclass
class _Summary:
    message: WaveSummaryMessage
    window: Window | None = None
    shown: str = ""  # the rendered message last shown ("": not known in this container)
    shown_at: float = 0.0
    owed: bool = True
    prediction: WavePrediction | None = None
    prediction_read_at: float | None = None  # None: not read in this container yet
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The wave's migrations not ended, as of the last recount and the notes since (None: not
    # recounted in this container yet). A migration that ends while others are known to run
    # cannot be the wave's last: no recount for it (a Query of every thread of the wave, and a
    # wave's cutover ends hundreds of migrations).
    unfinished: set[str] | None = None
    # The wave's thread items as last read (None: not read in this container yet), and when.
    stored: list[SlackThread] | None = None
    stored_at: float = 0.0


class WaveSummaryNotifier:
    def __init__(
        self,
        store: WaveSummaryStore,
        threads: ThreadStore,
        slack: PacedSlack,
        predictions: WavePredictionStore,
        controls: WaveControls | None = None,
    ) -> None:
        self._store = store
        self._predictions = predictions
        self._controls = controls
        self._threads = threads
        self._slack = slack
        self._summaries: dict[str, _Summary] = {}
        self._latest: dict[str, dict[str, SlackThread]] = {}  # wave -> migration -> thread
        self._lock = threading.RLock()

    def note(self, event: EventDetail, thread: SlackThread, *, before: Category | None) -> None:
        """The notifier handled ``event`` of ``thread`` (``before``: the thread's category
        before it, None for a new thread); edit the wave's summary if that is due."""
        wave = thread.state.wave
        self._remember(thread)
        summary = self._summary(wave, thread.channel, event)
        with self._holding(summary.lock):
            if summary.window is None and (window := window_of(event)) is not None:
                summary.window, summary.owed = window, True
                summary.message = replace(
                    summary.message,
                    window_start=window.start.isoformat(),
                    window_end=window.end.isoformat(),
                )
                self._store.save(summary.message)
            changed = before != thread.state.category
            ended_now = changed and thread.state.category in ENDED
            if summary.unfinished is not None:
                if thread.state.category in ENDED:
                    summary.unfinished.discard(thread.migration_id)
                else:
                    summary.unfinished.add(thread.migration_id)
            summary.owed = summary.owed or changed
            if not summary.owed:
                return
            now = self._slack.wall_seconds()
            interval_passed = now - summary.shown_at >= SUMMARY_MIN_EDIT_SECONDS
            if not (interval_passed or ended_now):
                return
            if not interval_passed and summary.unfinished:
                return  # others still run: not the wave's last, wait like any change
            view = self._view(wave, summary)
            if not (interval_passed or view.ended):
                return  # a migration ended, not the wave's last: wait like any change
            self._show(summary, view, now)

    def owed(self) -> list[str]:
        """Waves whose summary owes an edit (a change shown at the next due edit)."""
        with self._holding(self._lock):
            return [wave for wave, summary in self._summaries.items() if summary.owed]

    def adopt_owed(self, waves: Sequence[str]) -> None:
        """Summaries another container left owed: edit them here when due."""
        for wave in waves:
            with self._holding(self._lock):
                summary = self._summaries.get(wave)
                if summary is None:
                    stored = self._store.get(wave)
                    if stored is None:
                        continue
                    summary = _Summary(stored, _window(stored))
                    self._summaries[wave] = summary
            summary.owed = True

    def pay_owed(self, *, wait: bool, budget_seconds: float = 0.0) -> list[str]:
        """Edit each owed summary whose interval has passed (a quiet spell after a burst of
        results: no next event would pay it); when ``wait``, wait within the budget for the
        first that is not due yet. Returns the waves still owed."""
        started = self._slack.wall_seconds()
        due_next: float | None = None
        for wave in self.owed():
            summary = self._summaries[wave]
            with self._holding(summary.lock):
                if not summary.owed:
                    continue
                now = self._slack.wall_seconds()
                due = summary.shown_at + SUMMARY_MIN_EDIT_SECONDS
                if now < due:
                    due_next = due if due_next is None else min(due_next, due)
                    continue
                self._show(summary, self._view(wave, summary), now)
        if wait and due_next is not None:
            self._slack.wait(min(due_next, started + budget_seconds) - self._slack.wall_seconds())
        return self.owed()

    @contextmanager
    def _holding(self, lock: threading.Lock | threading.RLock) -> Iterator[None]:
        """Hold ``lock``, waiting for it on Slack's clock rather than blocked on the lock: the
        holder may be pacing a Slack call (a sleep on that clock), and in the embedded default
        a thread blocked on a lock looks busy to the simulated clock, which then never moves
        on to wake the holder (the 1,000-VM rehearsal stopped there)."""
        while not lock.acquire(blocking=False):
            self._slack.wait(LOCK_WAIT_SECONDS)
        try:
            yield
        finally:
            lock.release()

    def _remember(self, thread: SlackThread) -> None:
        with self._holding(self._lock):
            latest = self._latest.setdefault(thread.state.wave, {})
            latest[thread.migration_id] = thread
            if sum(len(threads) for threads in self._latest.values()) > MAX_OVERLAID_THREADS:
                self._latest.pop(next(iter(self._latest)))

    def _summary(self, wave: str, channel: str, event: EventDetail) -> _Summary:
        with self._holding(self._lock):
            summary = self._summaries.get(wave)
            if summary is not None:
                return summary
            stored = self._store.get(wave)
            if stored is None:
                summary = self._post(wave, channel, event)
            else:
                summary = _Summary(stored, _window(stored))
            self._summaries[wave] = summary
            return summary

    def _post(self, wave: str, channel: str, event: EventDetail) -> _Summary:
        """The wave's first event: post its summary (the counts as they are now)."""
        window = window_of(event)
        prediction, read_at = self._predictions.get(wave), self._slack.wall_seconds()
        view = wave_view(wave, self._overlaid(wave), window=window, prediction=prediction)
        message = summary_message(view)
        ts = self._slack.post(
            channel, text=message.text, blocks=message.blocks, metadata=summary_metadata(view)
        )
        posted = WaveSummaryMessage(
            wave,
            channel,
            ts,
            window.start.isoformat() if window else "",
            window.end.isoformat() if window else "",
        )
        try:
            self._store.create(posted)
        except ThreadExistsError:  # pragma: no cover - the notifier runs one at a time
            logger.warning("wave summary created concurrently; a second one was posted")
            raise
        return _Summary(
            posted,
            window,
            shown=repr(message),
            shown_at=self._slack.wall_seconds(),
            owed=False,
            prediction=prediction,
            prediction_read_at=read_at,
        )

    def _overlaid(self, wave: str, stored: list[SlackThread] | None = None) -> list[SlackThread]:
        threads = {thread.migration_id: thread for thread in stored or ()}
        with self._holding(self._lock):
            latest = list(self._latest.get(wave, {}).values())
        for thread in latest:
            known = threads.get(thread.migration_id)
            if known is None or known.state.sequence <= thread.state.sequence:
                threads[thread.migration_id] = thread
        return list(threads.values())

    def _view(self, wave: str, summary: _Summary) -> WaveView:
        now = self._slack.wall_seconds()
        read = summary.stored is None or now - summary.stored_at >= WAVE_REREAD_SECONDS
        if read:
            summary.stored, summary.stored_at = self._threads.wave_threads(wave), now
        threads = self._overlaid(wave, summary.stored)
        if not read and all(t.state.category in ENDED for t in threads):
            # The wave looks ended: the counts it ends with are read, not folded.
            summary.stored, summary.stored_at = self._threads.wave_threads(wave), now
            threads = self._overlaid(wave, summary.stored)
        summary.unfinished = {t.migration_id for t in threads if t.state.category not in ENDED}
        read_at = summary.prediction_read_at
        if read_at is None or now - read_at >= PREDICTION_MAX_AGE_SECONDS:
            summary.prediction, summary.prediction_read_at = self._predictions.get(wave), now
        return wave_view(
            wave,
            threads,
            window=summary.window,
            prediction=summary.prediction,
            control=self._controls.get(wave) if self._controls is not None else None,
        )

    def _show(self, summary: _Summary, view: WaveView, now: float) -> None:
        message = summary_message(view)
        rendered = repr(message)
        if rendered != summary.shown:
            self._slack.update(
                summary.message.channel,
                summary.message.ts,
                text=message.text,
                blocks=message.blocks,
                metadata=summary_metadata(view),
            )
            summary.shown, summary.shown_at = rendered, now
        summary.owed = False


def _window(stored: WaveSummaryMessage) -> Window | None:
    if not stored.window_start or not stored.window_end:
        return None
    return Window(
        datetime.fromisoformat(stored.window_start), datetime.fromisoformat(stored.window_end)
    )
