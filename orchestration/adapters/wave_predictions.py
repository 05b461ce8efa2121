"""Each wave's recorded prediction: what a rehearsal said about migration day.

A migration team rehearses its waves days ahead (``wavepilot rehearse --report``) and records
the report's figures with ``wavepilot record-prediction``: one item per wave,
``WAVEPREDICTION#<wave>`` / ``META``, in the state table. The Slack notifier reads it for the
wave's summary message (the predicted end, and whether it fits the window). Recording again
replaces the wave's item: the latest rehearsal is the prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PREDICTION_SK = "META"


def wave_prediction_key(wave: str) -> dict[str, str]:
    return {"pk": f"WAVEPREDICTION#{wave}", "sk": PREDICTION_SK}


@dataclass(frozen=True, slots=True)
class WavePrediction:
    """One wave's figures from one rehearsal's report (docs/REHEARSAL.md, "The JSON")."""

    wave: str
    predicted_end: datetime  # the wave's last cutover end in the rehearsal (``cutoverEnd``)
    recorded_at: datetime  # when the prediction was recorded (real time)
    rehearsal_start: datetime  # the rehearsal's simulated start (``startedAt``)
    vm_count: int
    design: str  # the launch design rehearsed: "per-vm" or "batched"
    window_end: datetime | None = None  # the rehearsed window's end
    missed: int = 0  # VMs that could not start their cutover before the window closed
    verdict: str = ""  # the report's words: "fits with 40 min to spare", "overruns by ..."
    makespan_seconds: float = 0.0  # the whole rehearsal's, all waves together
    ratio_to_batched: float | None = None  # the makespan over the quotas' best (the floor)


class WavePredictionStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, wave: str) -> WavePrediction | None:
        item = self._table.get_item(Key=wave_prediction_key(wave)).get("Item")
        return _prediction(item) if item else None

    def put_all(self, predictions: Iterable[WavePrediction]) -> None:
        """Each wave's item, replacing what an earlier rehearsal recorded. One PutItem per
        wave, not BatchWriteItem: a report holds a few waves, and PutItem is what the operator
        commands' credentials already hold (``operator_cli.IAM_HINT``)."""
        for prediction in predictions:
            self._table.put_item(
                Item={**wave_prediction_key(prediction.wave), **_attributes(prediction)}
            )


def _attributes(prediction: WavePrediction) -> dict[str, Any]:
    item: dict[str, Any] = {
        "wave": prediction.wave,
        "predictedEnd": prediction.predicted_end.isoformat(),
        "recordedAt": prediction.recorded_at.isoformat(),
        "rehearsalStart": prediction.rehearsal_start.isoformat(),
        "vmCount": prediction.vm_count,
        "design": prediction.design,
        "missed": prediction.missed,
        "verdict": prediction.verdict,
        "makespanSeconds": Decimal(str(prediction.makespan_seconds)),
    }
    if prediction.window_end is not None:
        item["windowEnd"] = prediction.window_end.isoformat()
    if prediction.ratio_to_batched is not None:
        item["ratioToBatched"] = Decimal(str(prediction.ratio_to_batched))
    return item


def _prediction(item: dict[str, Any]) -> WavePrediction:
    window_end = item.get("windowEnd")
    ratio = item.get("ratioToBatched")
    return WavePrediction(
        wave=str(item["wave"]),
        predicted_end=datetime.fromisoformat(str(item["predictedEnd"])),
        recorded_at=datetime.fromisoformat(str(item["recordedAt"])),
        rehearsal_start=datetime.fromisoformat(str(item["rehearsalStart"])),
        vm_count=int(item["vmCount"]),
        design=str(item["design"]),
        window_end=datetime.fromisoformat(str(window_end)) if window_end else None,
        missed=int(item.get("missed", 0)),
        verdict=str(item.get("verdict", "")),
        makespan_seconds=float(item.get("makespanSeconds", 0)),
        ratio_to_batched=float(ratio) if ratio is not None else None,
    )
