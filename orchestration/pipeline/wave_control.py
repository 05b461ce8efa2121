"""Pause, resume and cancel a wave on migration day (operators only, audited).

- **Pause**: no new test launch or cutover starts in the wave (per-VM executions wait before
  ``StartTestLaunch`` / ``StartCutover``; the lane's coordinator leaves the wave's requests
  open); MGN jobs already running finish, approvals can still be given (their cutover waits
  for the resume).
- **Resume**: every migration goes on from where it stood.
- **Cancel**: every migration of the wave that has not finalized is rolled back (as an
  operator's rollback of each, audited per migration), and the wave stays held.

Who may: the wave's operators (a listed user or a member of a listed user group), as for a
rollback. Every attempt is audited on each migration of the wave, refusals too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestration.adapters.state_store import MigrationRecord
from orchestration.adapters.wave_control import (
    WaveControl,
    WaveControlConflictError,
    WaveControlStore,
)
from orchestration.clock import Clock
from orchestration.pipeline.approvals import GroupMembership, no_groups
from orchestration.pipeline.manual_rollback import (
    FINALIZED,
    ROLLED_BACK,
    RollbackRequestError,
    RollbackService,
    operator_refusal,
)
from orchestration.pipeline.ports import AuditedWaveMigrations

WaveAction = Literal["pause", "resume", "cancel"]
# The state each action moves the wave to, and the states it may start from.
TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "pause": ("PAUSED", frozenset({"RUNNING"})),
    "resume": ("RUNNING", frozenset({"PAUSED"})),
    "cancel": ("CANCELLED", frozenset({"RUNNING", "PAUSED"})),
}


class WaveControlError(Exception):
    """A pause, resume or cancel that was not made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class WaveControlled:
    wave: str
    action: WaveAction
    state: str
    migrations: int  # in the wave
    rolled_back: tuple[str, ...] = ()  # cancel: the migrations whose rollback started
    not_rolled_back: tuple[tuple[str, str], ...] = ()  # cancel: (migration, why not)


class WaveControlService:
    def __init__(
        self,
        controls: WaveControlStore,
        migrations: AuditedWaveMigrations,
        rollbacks: RollbackService,
        clock: Clock,
    ) -> None:
        self._controls = controls
        self._migrations = migrations
        self._rollbacks = rollbacks
        self._clock = clock

    def state(self, wave: str) -> WaveControl | None:
        return self._controls.get(wave)

    def check(
        self,
        wave: str,
        action: WaveAction,
        *,
        user: str,
        is_member: GroupMembership = no_groups,
    ) -> list[MigrationRecord]:
        """The wave's migrations, if ``user`` may ``action`` it now; else audit the refusal
        on each migration and raise saying why."""
        records = self._migrations.wave_migrations(wave)
        if not records:
            raise WaveControlError(f"no migrations in wave {wave!r}: check the wave's name")
        try:
            self._check(wave, action, records, user=user, is_member=is_member)
        except WaveControlError as exc:
            self._audit(records, user, action, "refused", str(exc))
            raise
        return records

    def _check(
        self,
        wave: str,
        action: WaveAction,
        records: list[MigrationRecord],
        *,
        user: str,
        is_member: GroupMembership,
    ) -> None:
        operators = sorted({o for r in records for o in self._rollbacks.operators(r)})
        refusal = operator_refusal(user, wave, operators, is_member)
        if refusal is not None:
            raise WaveControlError(refusal)
        control = self._controls.get(wave)
        current = control.state if control is not None else "RUNNING"
        _, allowed = TRANSITIONS[action]
        if current not in allowed:
            raise WaveControlError(_not_now(wave, action, control))

    def change(
        self,
        wave: str,
        action: WaveAction,
        *,
        user: str,
        reason: str = "",
        is_member: GroupMembership = no_groups,
    ) -> WaveControlled:
        """Pause, resume or cancel ``wave`` for ``user`` (checked, audited)."""
        if action in {"pause", "cancel"} and not reason.strip():
            raise WaveControlError(f"a {action} needs a reason (the wave's channel is told)")
        records = self.check(wave, action, user=user, is_member=is_member)
        state, allowed = TRANSITIONS[action]
        now = self._clock.now()
        control = WaveControl(wave, state, user, now, reason.strip())  # type: ignore[arg-type]
        try:
            self._controls.put(control, expected=allowed)
        except WaveControlConflictError:
            refused = _not_now(wave, action, self._controls.get(wave))
            self._audit(records, user, action, "refused", refused)
            raise WaveControlError(refused) from None
        self._audit(records, user, action, "done", reason.strip())
        if action != "cancel":
            return WaveControlled(wave, action, state, len(records))
        return self._cancel(wave, records, user=user, reason=reason.strip(), is_member=is_member)

    def _cancel(
        self,
        wave: str,
        records: list[MigrationRecord],
        *,
        user: str,
        reason: str,
        is_member: GroupMembership,
    ) -> WaveControlled:
        """Roll back every migration of the wave that has not finalized (nor ended)."""
        started: list[str] = []
        skipped: list[tuple[str, str]] = []
        for record in records:
            if record.status in {FINALIZED, ROLLED_BACK}:
                skipped.append((record.migration_id, record.status.lower()))
                continue
            try:
                self._rollbacks.request(
                    record.migration_id,
                    user=user,
                    reason=f"wave {wave} cancelled: {reason}",
                    is_member=is_member,
                )
            except RollbackRequestError as exc:
                skipped.append((record.migration_id, str(exc)))
                continue
            started.append(record.migration_id)
        return WaveControlled(
            wave, "cancel", "CANCELLED", len(records), tuple(started), tuple(skipped)
        )

    def _audit(
        self, records: list[MigrationRecord], user: str, action: str, outcome: str, detail: str
    ) -> None:
        now = self._clock.now()
        for record in records:
            self._migrations.audit_migration(
                record.migration_id,
                actor=user,
                action=f"wave-{action}",
                outcome=outcome,
                detail=detail,
                now=now,
            )


def _not_now(wave: str, action: str, control: WaveControl | None) -> str:
    current = control.state if control is not None else "RUNNING"
    since = f" (by <@{control.by}> at {control.at:%Y-%m-%d %H:%M} UTC)" if control else ""
    if action == "pause" and current == "PAUSED":
        return f"{wave} is paused already{since}"
    if action == "resume" and current == "RUNNING":
        return f"{wave} is not paused"
    if current == "CANCELLED":
        return f"{wave} is cancelled{since}: publish its VMs again to start over"
    done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
    return f"{wave} cannot be {done} while {current.lower()}"


def wave_control_text(done: WaveControlled) -> str:
    """What was done, in words (the CLI's answer, the Slack reply and channel message)."""
    if done.action == "pause":
        return (
            f"{done.wave} paused: no new test launch or cutover starts in its "
            f"{done.migrations} migrations; MGN jobs already running finish. Resume with "
            f"`/wavepilot resume {done.wave}`."
        )
    if done.action == "resume":
        return f"{done.wave} resumed: its {done.migrations} migrations go on where they stood."
    lines = [
        f"{done.wave} cancelled: the rollback of {len(done.rolled_back)} of its "
        f"{done.migrations} migrations started; nothing new starts in the wave."
    ]
    lines += [f"- {migration}: not rolled back ({why})" for migration, why in done.not_rolled_back]
    return "\n".join(lines)
