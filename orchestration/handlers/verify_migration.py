"""``verify_migration``: replication readiness, a launch's job, EC2 and health checks, or a
finalizeAfter hold (has it passed, did an operator ask to finalize now)."""

from __future__ import annotations

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
    return steps.verify_launch(event["state"], launch=event["phase"])
