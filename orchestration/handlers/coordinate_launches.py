"""``coordinate_launches``: one run of a lane's launch coordinator loop (batched launches).

The loop's state machine (``launch-coordinator.asl.json``) calls it with the lane, its own
execution name, its configuration (quotas, linger, runs before a handover) and its runs so
far; it answers ``done`` when the loop may end (the lane is idle, or handed over to a fresh
execution), else how long to wait before the next run, and the runs with this one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.adapters.event_bus import events_deferred
from orchestration.observability import count, logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    count("CoordinatorRuns")
    logger.append_keys(lane=event["lane"])
    # "runs" and "waitedSeconds" are absent only for a loop started on an older definition.
    # The run's status events (one per execution it answers) go ten to a PutEvents call.
    with events_deferred():
        return wiring.launches().coordinate(
            event["lane"],
            event["execution"],
            event["config"],
            int(event.get("runs", 0)),
            float(event.get("waitedSeconds", 0)),
        )
