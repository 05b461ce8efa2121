"""``verify_migration``: replication readiness, a launch's job, EC2 and health checks, or a
finalizeAfter hold (has it passed, did an operator ask to finalize now). A verified cutover
with no hold is finalized in the same invocation when it can be (``finalized``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    steps = wiring.steps()
    # The ASL's "phase" (its name on the wire): "replication", or the launch to verify.
    if event["phase"] == "replication":
        return steps.check_replication(event["state"])
    if event["phase"] == "hold":
        return steps.finalize_hold(event["state"])
    if event["phase"] == "cutover":
        # With the execution's start: a verified cutover with no hold is finalized at once.
        started = event.get("startedAt")
        return steps.verify_launch(
            event["state"],
            launch="cutover",
            finalize="startedAt" in event,
            started_at=datetime.fromisoformat(started) if isinstance(started, str) else None,
        )
    return steps.verify_launch(event["state"], launch=event["phase"])
