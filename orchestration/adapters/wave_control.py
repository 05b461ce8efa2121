"""Whether a wave may launch: an operator's pause, resume or cancel, one item per wave.

``WAVECONTROL#<wave>`` / ``META`` in the state table. No item means the wave runs. A paused
(or cancelled) wave starts no test launch and no cutover: a per-VM execution waits before its
``StartTestLaunch`` / ``StartCutover`` and the lane's launch coordinator leaves the wave's
requests open; jobs already running finish. Changes are conditional writes, so two operators
pausing at once give one pause and one clear refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

WaveState = Literal["RUNNING", "PAUSED", "CANCELLED"]
HELD_STATES: frozenset[str] = frozenset({"PAUSED", "CANCELLED"})
CONTROL_SK = "META"


def wave_control_key(wave: str) -> dict[str, str]:
    return {"pk": f"WAVECONTROL#{wave}", "sk": CONTROL_SK}


@dataclass(frozen=True, slots=True)
class WaveControl:
    wave: str
    state: WaveState
    by: str  # the operator who set it (a Slack user ID)
    at: datetime
    reason: str = ""

    @property
    def holds_launches(self) -> bool:
        return self.state in HELD_STATES


class _ReadsControls(Protocol):
    def get(self, wave: str) -> WaveControl | None: ...


class _Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(slots=True)
class RecentWaveControls:
    """Each wave's control as read within ``max_age_seconds``: for an early refusal of a
    cancelled wave only, where a wave's many migrations would each read it (a cancel rolls
    the wave's migrations back itself). Whatever holds launches (a pause, the launch
    coordinator's runs) reads the control afresh."""

    controls: _ReadsControls
    clock: _Clock
    max_age_seconds: float = 30.0
    _read: dict[str, tuple[float, WaveControl | None]] = field(default_factory=dict)

    def get(self, wave: str) -> WaveControl | None:
        now = self.clock.now().timestamp()
        read = self._read.get(wave)
        if read is None or now - read[0] >= self.max_age_seconds:
            read = (now, self.controls.get(wave))
            self._read[wave] = read
        return read[1]


class WaveControlConflictError(Exception):
    """The wave is not in a state the change can start from (another operator moved it)."""


class WaveControlStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, wave: str) -> WaveControl | None:
        item = self._table.get_item(Key=wave_control_key(wave), ConsistentRead=True).get("Item")
        return _control(item) if item else None

    def put(self, control: WaveControl, *, expected: frozenset[str]) -> None:
        """Write ``control`` if the wave's state is one of ``expected`` ("RUNNING" also
        matches a wave without an item); else ``WaveControlConflictError``."""
        names = sorted(expected)
        values = {f":s{i}": state for i, state in enumerate(names)}
        condition = "#state IN (" + ", ".join(values) + ")"
        if "RUNNING" in expected:
            condition = f"attribute_not_exists(pk) OR {condition}"
        try:
            self._table.put_item(
                Item={**wave_control_key(control.wave), **_attributes(control)},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise WaveControlConflictError(control.wave) from None
            raise


def _attributes(control: WaveControl) -> dict[str, Any]:
    return {
        "wave": control.wave,
        "state": control.state,
        "by": control.by,
        "at": control.at.isoformat(),
        "reason": control.reason,
    }


def _control(item: dict[str, Any]) -> WaveControl:
    state = str(item["state"])
    assert state in {"RUNNING", "PAUSED", "CANCELLED"}, state
    return WaveControl(
        wave=str(item["wave"]),
        state=state,  # type: ignore[arg-type]
        by=str(item.get("by", "")),
        at=datetime.fromisoformat(str(item["at"])),
        reason=str(item.get("reason", "")),
    )
