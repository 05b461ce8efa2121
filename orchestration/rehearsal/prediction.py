"""``wavepilot record-prediction``: a rehearsal's report becomes each wave's prediction.

A team rehearses days before migration day, reads the report, and records it where the
deployed Slack bot reads it (the state table, ``orchestration/adapters/wave_predictions.py``):
each wave's summary message then shows the predicted end and whether it fits the window.
Recording is separate from ``wavepilot rehearse`` on purpose: the rehearsal runs on this
machine against the embedded system, the record goes to the deployed table with the
operator's credentials, and the report in between is what the team reviewed (and may have
rehearsed again before trusting).

The wave's predicted end is its last cutover's end in the rehearsal (``window.cutoverEnd``),
the instant the window must contain. A wave none of whose VMs reached a cutover predicts no
end: it is left out, and said so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.text import Text

from orchestration.adapters.wave_predictions import WavePrediction
from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestration.rehearsal.report import REPORT_VERSION
from orchestration.terminal import terminal


class ReportFormatError(Exception):
    """The file is not a rehearsal report this version reads."""


@dataclass(frozen=True, slots=True)
class Predictions:
    recorded: tuple[WavePrediction, ...]
    unpredicted: tuple[str, ...]  # waves in the report with no cutover end (none reached one)


def predictions_from_report(
    report: Mapping[str, Any], *, recorded_at: datetime, waves: Sequence[str] = ()
) -> Predictions:
    """Each wave's prediction from ``report`` (``RehearsalReport.as_json()``); only ``waves``
    when given. Raises :class:`ReportFormatError` for what is not such a report (a missing or
    malformed figure included) and for a wave the report does not have."""
    try:
        version = report["reportVersion"]
        if version != REPORT_VERSION:
            raise ReportFormatError(
                f"reportVersion {version!r}: this wavepilot reads version {REPORT_VERSION}"
            )
        started = datetime.fromisoformat(report["startedAt"])
        floor = report.get("floor") or {}
        ratio = floor.get("ratioToBatched")
        recorded: list[WavePrediction] = []
        unpredicted: list[str] = []
        listed = {wave["name"] for wave in report["waves"]}
        missing = [name for name in waves if name not in listed]
        if missing:
            raise ReportFormatError(f"the report has no wave {', '.join(missing)}")
        for wave in report["waves"]:
            name = wave["name"]
            if waves and name not in waves:
                continue
            window = wave.get("window") or {}
            cutover_end = window.get("cutoverEnd")
            if not cutover_end:
                unpredicted.append(name)
                continue
            window_end = window.get("windowEnd")
            recorded.append(
                WavePrediction(
                    wave=name,
                    predicted_end=datetime.fromisoformat(cutover_end["at"]),
                    recorded_at=recorded_at,
                    rehearsal_start=started,
                    vm_count=int(wave["vmCount"]),
                    design=str(report["design"]),
                    window_end=datetime.fromisoformat(window_end["at"]) if window_end else None,
                    missed=int(window.get("missed", 0)),
                    verdict=str(window.get("verdict", "")),
                    makespan_seconds=float(report["makespanSeconds"]),
                    ratio_to_batched=float(ratio) if ratio is not None else None,
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportFormatError(f"not a rehearsal report: {type(exc).__name__}: {exc}") from None
    return Predictions(tuple(recorded), tuple(unpredicted))


def run_record_prediction(
    report_path: Path,
    *,
    waves: Sequence[str] = (),
    local: bool = False,
    now: datetime | None = None,
) -> int:
    """Write each wave's prediction to the state table the operator commands use
    (``DYNAMODB_TABLE_NAME`` and ``AWS_REGION`` as deployed, or ``--local``). Exit status 1
    when no wave had a prediction to record."""
    from orchestration.adapters import aws
    from orchestration.adapters.wave_predictions import WavePredictionStore
    from orchestration.operator_cli import connect, operator_errors
    from orchestration.settings import settings

    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such file: {report_path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{report_path}: not a JSON report: {exc}") from None
    try:
        predictions = predictions_from_report(
            report, recorded_at=now or datetime.now(UTC), waves=waves
        )
    except ReportFormatError as exc:
        raise UsageError(f"{report_path}: {exc}") from None
    with operator_errors(local=local):
        connect(local=local)
        config = settings()
        table = aws.state_table(config.table_name, config.aws_region)
        WavePredictionStore(table).put_all(predictions.recorded)
    console = terminal()
    for prediction in predictions.recorded:
        line = (
            f"{prediction.wave}: predicted end {prediction.predicted_end.isoformat()}"
            f" ({prediction.verdict or 'no window'}; {prediction.vm_count} VMs)"
        )
        console.print(Text(line), soft_wrap=True)
    for wave in predictions.unpredicted:
        console.print(
            Text(f"{wave}: not recorded: no VM reached its cutover in the rehearsal"),
            soft_wrap=True,
        )
    where = "the embedded runtime" if local else f"table {settings().table_name}"
    console.print(
        Text(f"recorded {len(predictions.recorded)} wave prediction(s) in {where}", style="dim"),
        soft_wrap=True,
    )
    return EXIT_OK if predictions.recorded else EXIT_FAILED
