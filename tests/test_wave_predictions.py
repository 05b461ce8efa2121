"""A rehearsal's prediction, recorded per wave (``wavepilot record-prediction``) and shown in
the wave's summary message: the record command on moto, the summary's rendering by value.

The reports are real ones: ``build_report`` on hand-built observations
(``tests/support/rehearsal.py``, minutes from the rehearsal's start T0)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bot.threads import CATEGORIES
from bot.wave_summary import Window, summary_message, summary_metadata, wave_view
from orchestration import cli, wiring
from orchestration.adapters import aws
from orchestration.adapters.wave_predictions import WavePrediction, WavePredictionStore
from orchestration.local.provision import provision
from orchestration.naming import ResourceNames
from orchestration.rehearsal.report import build_report
from tests.support.rehearsal import at, migrated_vm, observation, rolled_back_vm, wave

RECORDED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def predictions(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[WavePredictionStore]:
    """A moto account provisioned like the deployment, the CLI configured as on AWS."""
    names = ResourceNames()
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", names.state_table)
    monkeypatch.setenv("EVENTBRIDGE_BUS_NAME", names.event_bus)
    aws.reset()
    wiring.reset()
    with mock_aws():
        provision(
            names,
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(names.state_table)
        yield WavePredictionStore(table)
    aws.reset()
    wiring.reset()


def _report_file(tmp_path: Path) -> Path:
    """wave-1: one VM cut over 240 to 270 in a 240-360 window; wave-2: its only VM rolled
    back before any cutover (no end to predict)."""
    report = build_report(
        observation(
            [migrated_vm("m-a"), rolled_back_vm("m-b", wave="wave-2")],
            [wave("wave-1", window=(240, 360)), wave("wave-2", window=(240, 360))],
        )
    )
    path = tmp_path / "rehearsal.json"
    path.write_text(json.dumps(report.as_json()), encoding="utf-8")
    return path


def test_recording_writes_each_predicted_waves_end_from_the_report(
    predictions: WavePredictionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rehearsal's report of two waves, only the first of which reached a cutover
    report = _report_file(tmp_path)

    # WHEN the team records it
    code = cli.main(["record-prediction", str(report)])

    # THEN wave-1's item holds its last cutover's end and its window; wave-2 has none
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    recorded = predictions.get("wave-1")
    assert recorded is not None
    assert recorded.predicted_end == at(270)
    assert recorded.window_end == at(360)
    assert (recorded.vm_count, recorded.design, recorded.missed) == (1, "per-vm", 0)
    assert recorded.verdict == "fits with 90 min to spare"
    assert recorded.rehearsal_start == at(0)
    assert recorded.ratio_to_batched is not None
    assert datetime.now(UTC) - recorded.recorded_at < timedelta(minutes=1)
    assert predictions.get("wave-2") is None
    assert f"wave-1: predicted end {at(270).isoformat()}" in out
    assert "wave-2: not recorded: no VM reached its cutover in the rehearsal" in out


def test_recording_again_replaces_the_waves_prediction(
    predictions: WavePredictionStore, tmp_path: Path
) -> None:
    # GIVEN wave-1's prediction from an earlier rehearsal
    earlier = WavePrediction("wave-1", at(500), RECORDED_AT, at(0), 3, "batched")
    predictions.put_all([earlier])

    # WHEN a newer rehearsal's report is recorded for wave-1 only
    code = cli.main(["record-prediction", str(_report_file(tmp_path)), "--wave", "wave-1"])

    # THEN the newer one is the prediction
    recorded = predictions.get("wave-1")
    assert code == cli.EXIT_OK
    assert recorded is not None
    assert (recorded.predicted_end, recorded.vm_count) == (at(270), 1)


def test_a_report_with_nothing_to_predict_records_nothing_and_fails(
    predictions: WavePredictionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["record-prediction", str(_report_file(tmp_path)), "--wave", "wave-2"])

    assert code == cli.EXIT_INVALID  # exit status 1: nothing recorded
    assert "recorded 0 wave prediction(s)" in capsys.readouterr().out
    assert predictions.get("wave-2") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON report"),
        (json.dumps({"reportVersion": 2}), "reportVersion 2: this wavepilot reads version 1"),
        (json.dumps({"reportVersion": 1, "waves": []}), "not a rehearsal report: KeyError"),
    ],
)
def test_what_is_not_a_report_is_a_usage_error_before_reaching_aws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "report.json"
    path.write_text(content, encoding="utf-8")

    code = cli.main(["record-prediction", str(path)])

    assert code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_wave_the_report_does_not_have_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["record-prediction", str(_report_file(tmp_path)), "--wave", "wave-9"])

    assert code == cli.EXIT_USAGE
    assert "the report has no wave wave-9" in capsys.readouterr().err


# --- the summary's rendering ---------------------------------------------------------------

WINDOW = Window(datetime(2026, 12, 12, 20, 0, tzinfo=UTC), datetime(2026, 12, 13, 4, 0, tzinfo=UTC))


def _predicted_field(prediction: WavePrediction | None, window: Window | None = WINDOW) -> str:
    message = summary_message(wave_view("wave-1", [], window=window, prediction=prediction))
    [fields] = [block["fields"] for block in message.blocks if "fields" in block]
    [predicted] = [f["text"] for f in fields if f["text"].startswith("*Predicted end*")]
    return str(predicted)


def _ending(end: datetime, *, missed: int = 0) -> WavePrediction:
    return WavePrediction("wave-1", end, RECORDED_AT, at(0), 40, "per-vm", missed=missed)


def test_a_prediction_that_fits_says_by_how_much_rounded_down() -> None:
    end = WINDOW.end - timedelta(minutes=45, seconds=30)

    text = _predicted_field(_ending(end))

    assert text == (
        f"*Predicted end*\n<!date^{int(end.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{end.isoformat()}> (recorded <!date^{int(RECORDED_AT.timestamp())}^"
        f"{{date_short_pretty}}|{RECORDED_AT.isoformat()}>)\n"
        ":white_check_mark: fits, 45 min to spare"
    )


def test_a_prediction_past_the_window_overruns_rounded_up() -> None:
    text = _predicted_field(_ending(WINDOW.end + timedelta(minutes=15, seconds=1), missed=2))

    assert text.endswith("\n:warning: overruns by 16 min\n2 VMs missed the window in the rehearsal")


def test_without_a_prediction_the_summary_shows_a_dash() -> None:
    assert _predicted_field(None) == "*Predicted end*\n-"


def test_without_a_window_the_prediction_shows_no_verdict() -> None:
    text = _predicted_field(_ending(WINDOW.end), window=None)

    assert "fits" not in text
    assert "overruns" not in text
    assert text.endswith(
        f"(recorded <!date^{int(RECORDED_AT.timestamp())}^"
        f"{{date_short_pretty}}|{RECORDED_AT.isoformat()}>)"
    )


def test_the_summarys_metadata_carries_the_predicted_end() -> None:
    end = WINDOW.end - timedelta(hours=1)
    view = wave_view("wave-1", [], window=WINDOW, prediction=_ending(end))

    payload = summary_metadata(view)["event_payload"]

    assert payload["predicted_end"] == end.isoformat()
    assert set(payload["counts"]) == {c.replace("/", "_").replace(" ", "_") for c in CATEGORIES}
