"""``trigger_migration``: start the MGN test launch or, inside the window, the cutover."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The ASL passes the launch (test or cutover) as "phase", its name on the wire; "window"
    # (batched launches) only waits for the cutover window before the cutover is requested.
    if event["phase"] == "window":
        return wiring.steps().await_window(event["state"])
    return wiring.steps().trigger(event["state"], launch=event["phase"])
