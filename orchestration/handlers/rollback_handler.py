"""``rollback_handler``: undo a failed migration; polled by the state machine until done."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler
from orchestration.pipeline.errors import APPROVAL_REJECTED, ROLLBACK_REQUESTED


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event["state"]
    migration_id = state["spec"]["migrationId"]
    first_call = not state.get("rollback")
    error = state.get("error") or {}
    if first_call and error.get("Error") == "ApprovalExpired":
        wiring.approvals().expire(migration_id)
    if first_call and error.get("Error") == ROLLBACK_REQUESTED:
        # An operator's rollback runs in an execution of its own (see
        # orchestration/pipeline/manual_rollback.py): close the stopped one's approval.
        wiring.approvals().expire(migration_id, reason=str(error.get("Cause", "")))
    record = wiring.store().get(migration_id)
    if error.get("Error") == APPROVAL_REJECTED and record and record.approval_id:
        # Step Functions may drop SendTaskFailure's cause; the decision record keeps it.
        approval = wiring.store().approval(record.approval_id)
        if approval is not None:
            why = f"rejected by <@{approval.decided_by}>: {approval.reason or 'no reason given'}"
            state = {**state, "error": {**error, "Cause": why}}
    return wiring.steps().rollback(state, failed_step=record.step if record else None)
