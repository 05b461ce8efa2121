"""``rollback_handler``: undo a failed migration; polled by the state machine until done."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration.handlers import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event["state"]
    migration_id = state["spec"]["migrationId"]
    first_call = not state.get("rollback")
    if first_call and (state.get("error") or {}).get("Error") == "ApprovalExpired":
        wiring.approvals().expire(migration_id)
    record = wiring.store().get(migration_id)
    return wiring.steps().rollback(state, failed_step=record.step if record else None)
