"""Simulated approvers for the rehearsal: people who read Slack and click, on the virtual clock.

They act the way the wave's approvers would: an approval message appears in the wave's
channel (the bot posted it; the stand-in tells us), a person notices it some minutes later
(the profile's response time, in business hours if the profile says so) and clicks the real
Approve button, which goes to the bot's Bolt app as Slack's signed request. Nothing polls the
state table: one thread sleeps on the virtual clock until the next click is due.

Who clicks: the first user the wave lists as approver, else a member of its first group (the
embedded directory's group member), as the demo's simulated approver does.

A group approval message (``approval.scope`` application or wave) is posted once and edited as
its VMs become ready: whenever it shows ready VMs and no click is due for it, a person is due
to click its Approve all ready (which decides the VMs ready at that moment).
"""

from __future__ import annotations

import heapq
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.group_approvals import GROUP_APPROVE_READY_ACTION
from bot.threads import APPROVE_ACTION
from orchestration.adapters.state_store import MigrationStore
from orchestration.local.slack import SlackStandIn
from orchestration.local.system import LOCAL_GROUP_MEMBER
from orchestration.local.virtual_clock import ClockEvent, ClockThread, VirtualClock
from orchestration.rehearsal.profile import ApproverModel


@dataclass(order=True)
class _Click:
    due: datetime
    sequence: int
    approval_id: str = field(compare=False)
    channel: str = field(compare=False)
    message_ts: str = field(compare=False)
    posted_at: datetime = field(compare=False)


@dataclass(frozen=True)
class ApprovalClick:
    """One approval as the simulated people handled it (for the report)."""

    approval_id: str
    posted_at: datetime  # when the approval message appeared in Slack
    clicked_at: datetime | None  # when a person clicked (None: never, e.g. already decided)
    accepted: bool  # the bot answered the click (HTTP 200)


class SimulatedApprovers:
    """Click Approve on every approval message the bot posts, after a person's delay."""

    def __init__(
        self,
        slack: SlackStandIn,
        store: MigrationStore,
        clock: VirtualClock,
        model: ApproverModel,
        *,
        seed: int,
        never_answered: int = 0,
    ) -> None:
        self._slack = slack
        self._store = store
        self._clock = clock
        self._model = model
        self._rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
        self._lock = threading.Lock()
        self._due: list[_Click] = []
        self._seen: set[str] = set()
        self._sequence = 0
        self._wake = ClockEvent()
        self._stopping = False
        self._thread: ClockThread | None = None
        self.clicks: list[ApprovalClick] = []
        # The fault campaign's approver who never answers: the first ``never_answered``
        # approval messages posted (a migration's, or a group's) are never clicked: their
        # approvals must expire, visibly.
        self._never_answered = never_answered
        self.unanswered: list[str] = []

    def start(self) -> SimulatedApprovers:
        self._slack.workspace.add_post_listener(self._on_post)
        self._slack.workspace.add_update_listener(self._on_group_message)
        self._thread = ClockThread(target=self._run, name="simulated-approvers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- Slack tells us a message was posted (in the stand-in's request thread) -----------

    def _on_group_message(self, channel: str, message: dict[str, Any]) -> None:
        group = _button_value(message.get("blocks") or [], GROUP_APPROVE_READY_ACTION)
        if group is None:
            return
        key = f"group:{group}"
        with self._lock:
            if key in self._seen:
                return  # a click is already due for it (or nobody will ever click it)
            self._seen.add(key)
            if len(self.unanswered) < self._never_answered:
                self.unanswered.append(key)  # stays seen: never clicked
                return
            posted = self._clock.now()
            self._sequence += 1
            heapq.heappush(
                self._due,
                _Click(
                    due=self._model.responds_at(posted, self._rng),
                    sequence=self._sequence,
                    approval_id=key,
                    channel=channel,
                    message_ts=str(message["ts"]),
                    posted_at=posted,
                ),
            )
        self._wake.set()

    def _on_post(self, channel: str, message: dict[str, Any]) -> None:
        self._on_group_message(channel, message)
        approval_id = approval_button_value(message.get("blocks") or [])
        if approval_id is None:
            return
        with self._lock:
            if approval_id in self._seen:
                return
            self._seen.add(approval_id)
            if len(self.unanswered) < self._never_answered:
                self.unanswered.append(approval_id)
                return
            posted = self._clock.now()
            self._sequence += 1
            heapq.heappush(
                self._due,
                _Click(
                    due=self._model.responds_at(posted, self._rng),
                    sequence=self._sequence,
                    approval_id=approval_id,
                    channel=channel,
                    message_ts=str(message["ts"]),
                    posted_at=posted,
                ),
            )
        self._wake.set()

    # --- the people ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            click = self._next_due()
            if click is None:
                continue
            self._click(click)

    def _next_due(self) -> _Click | None:
        with self._lock:
            soonest = self._due[0] if self._due else None
            if soonest is not None and soonest.due <= self._clock.now():
                return heapq.heappop(self._due)
            self._wake.clear()
        timeout = None
        if soonest is not None:
            timeout = max(0.0, (soonest.due - self._clock.now()).total_seconds())
        self._wake.wait(timeout=timeout)
        return None

    def _click_group(self, click: _Click) -> None:
        group = click.approval_id.removeprefix("group:")
        with self._lock:
            self._seen.discard(click.approval_id)  # the next edit showing ready VMs is due again
        ready = self._store.pending_group_approvals(group)
        if not ready:
            self.clicks.append(ApprovalClick(click.approval_id, click.posted_at, None, False))
            return
        users = [a for a in ready[0].approvers if a[:1] in {"U", "W"}]
        response = self._slack.click_button(
            user=users[0] if users else LOCAL_GROUP_MEMBER,
            channel=click.channel,
            message_ts=click.message_ts,
            action_id=GROUP_APPROVE_READY_ACTION,
            value=group,
        )
        self.clicks.append(
            ApprovalClick(
                click.approval_id, click.posted_at, self._clock.now(), response.status == 200
            )
        )

    def _click(self, click: _Click) -> None:
        if click.approval_id.startswith("group:"):
            self._click_group(click)
            return
        approval = self._store.approval(click.approval_id)
        if approval is None or approval.status != "PENDING":
            self.clicks.append(ApprovalClick(click.approval_id, click.posted_at, None, False))
            return
        users = [a for a in approval.approvers if a[:1] in {"U", "W"}]
        user = users[0] if users else LOCAL_GROUP_MEMBER
        response = self._slack.click_button(
            user=user,
            channel=click.channel,
            message_ts=click.message_ts,
            action_id=APPROVE_ACTION,
        )
        self.clicks.append(
            ApprovalClick(
                click.approval_id, click.posted_at, self._clock.now(), response.status == 200
            )
        )


def approval_button_value(blocks: list[dict[str, Any]]) -> str | None:
    """The approval ID an Approve button in these blocks carries (None: no such button)."""
    return _button_value(blocks, APPROVE_ACTION)


def _button_value(blocks: list[dict[str, Any]], action_id: str) -> str | None:
    for block in blocks:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                value = element.get("value")
                return str(value) if value else None
    return None
