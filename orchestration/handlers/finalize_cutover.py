"""``finalize_cutover``: MGN FinalizeCutover and ``MigrationCompleted``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = event.get("startedAt")
    started_at = datetime.fromisoformat(started) if isinstance(started, str) else None
    return wiring.steps().finalize(event["state"], started_at)
