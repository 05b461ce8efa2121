"""``rollback_handler``: undo a failed migration; polled by the state machine until done.

With ``"mode": "park"`` (the ``Park`` state, the manifest's ``onFailure: park``) the same
clean-up keeps the migration, which then waits for an operator's Retry or Roll back.

A migration whose VM was removed from the manifests (its record says so: a cancel from
``publish --cancel-removed``, see ``pipeline.removal``) has its source server taken out of
MGN's application once the rollback has ended.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler
from orchestration.pipeline.errors import APPROVAL_REJECTED, PARK_EXPIRED, ROLLBACK_REQUESTED
from orchestration.pipeline.spec import MigrationSpec


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event["state"]
    migration_id = state["spec"]["migrationId"]
    park = event.get("mode") == "park"
    first_call = not state.get("park" if park else "rollback")
    error = state.get("error") or {}
    if first_call and error.get("Error") == "ApprovalExpired":
        wiring.approvals().expire(migration_id)
    if first_call and error.get("Error") == ROLLBACK_REQUESTED:
        # An operator's rollback runs in an execution of its own (see
        # orchestration/pipeline/manual_rollback.py): close the stopped one's approval, or
        # its park.
        wiring.approvals().expire(migration_id, reason=str(error.get("Cause", "")))
        wiring.parks().expire(migration_id, reason=str(error.get("Cause", "")))
    if first_call and error.get("Error") == PARK_EXPIRED:
        wiring.parks().expire(migration_id, reason=str(error.get("Cause", "")))
    record = wiring.store().get(migration_id)
    if error.get("Error") == APPROVAL_REJECTED and record and record.approval_id:
        # Step Functions may drop SendTaskFailure's cause; the decision record keeps it.
        approval = wiring.store().approval(record.approval_id)
        if approval is not None:
            why = f"rejected by <@{approval.decided_by}>: {approval.reason or 'no reason given'}"
            state = {**state, "error": {**error, "Cause": why}}
    # After a park the record's step is Park: the step that failed is the park's.
    failed_step = (state.get("park") or {}).get("failedStep") or (record.step if record else None)
    result = wiring.steps().rollback(state, failed_step=failed_step, park=park)
    if result.get("done") and not park and record and record.removed_from_manifests:
        spec = MigrationSpec.model_validate(state["spec"])
        wiring.removals().ungroup_after_rollback(spec, record)
    return result
