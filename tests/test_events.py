"""The status event contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from orchestration.events import (
    EVENT_SOURCE,
    EVENT_TYPES,
    EventRouting,
    MigrationStatusUpdated,
    parse_detail,
)

COMMON = {
    "migrationId": "mig-0123456789abcdef",
    "wave": "wave-2",
    "appName": "billing-app",
    "correlationId": "mig-0123456789abcdef/d5f6e397ea7a9aae",
    "sequence": 3,
    "timestamp": "2026-12-12T22:05:00Z",
}


def test_the_eight_event_types_of_the_design_exist_and_the_parked_one() -> None:
    assert sorted(EVENT_TYPES) == sorted(
        [
            "MigrationRequested",
            "MigrationStatusUpdated",
            "ApprovalRequested",
            "ApprovalDecided",
            "MigrationCompleted",
            "MigrationFailed",
            "MigrationParked",  # onFailure: park (issue 16)
            "RollbackStarted",
            "RollbackCompleted",
        ]
    )


def test_an_event_round_trips_through_its_put_events_entry() -> None:
    event = MigrationStatusUpdated.model_validate(
        {
            **COMMON,
            "step": "PrepareSource",
            "status": "SUCCEEDED",
            "message": "launch settings applied",
        }
    )

    entry = event.to_entry("wavepilot-prod-bus")

    assert (entry["Source"], entry["DetailType"]) == (EVENT_SOURCE, "MigrationStatusUpdated")
    detail = json.loads(entry["Detail"])
    assert detail["schemaVersion"] == "1"
    assert detail["migrationId"] == COMMON["migrationId"]
    assert parse_detail("MigrationStatusUpdated", entry["Detail"]) == event
    assert event.timestamp == datetime(2026, 12, 12, 22, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [{"sequence": 0}, {"timestamp": "2026-12-12T22:05:00"}, {"surprise": 1}, {"status": "DONE"}],
)
def test_malformed_details_are_refused(change: dict[str, object]) -> None:
    detail = {**COMMON, "step": "PrepareSource", "status": "SUCCEEDED", "message": "ok", **change}

    with pytest.raises(ValidationError):
        parse_detail("MigrationStatusUpdated", detail)


def test_an_event_says_where_it_goes_and_one_from_before_routing_still_parses() -> None:
    # GIVEN an event routed to a channel and a callback URL, and one put before routing
    step = {"step": "PrepareSource", "status": "SUCCEEDED", "message": "ok"}
    routing = {"slackChannel": "C07WAVE0002", "callbackUrls": ["https://cmdb.contoso.com/h"]}
    routed = parse_detail("MigrationStatusUpdated", {**COMMON, **step, "routing": routing})
    before = parse_detail("MigrationStatusUpdated", {**COMMON, **step})

    # THEN the routing reads back as sent, and the older event has none (consumers fall back)
    assert routed.routing == EventRouting(
        slack_channel="C07WAVE0002", callback_urls=["https://cmdb.contoso.com/h"]
    )
    assert json.loads(routed.model_dump_json())["routing"] == routing
    assert before.routing is None
