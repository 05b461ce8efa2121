"""``request_approval``: the gate. Stores the task token under an approval ID, announces it.

Invoked with ``.waitForTaskToken``: the execution waits until ``ApprovalService.decide``
sends the token back (Slack button, ``/wavepilot approve``, ``wavepilot approve``) or the
state's timeout expires. The state carries ``VerifyTestLaunch``'s result (``$.testCheck``):
the test instance and its health checks go into the announcement.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler
from orchestration.pipeline.approvals import VerifiedTestLaunch
from orchestration.pipeline.spec import MigrationSpec


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event["state"]
    approval = wiring.approvals().request(
        MigrationSpec.model_validate(state["spec"]),
        event["taskToken"],
        int(state["config"]["approvalTimeoutSeconds"]),
        VerifiedTestLaunch.from_step(state.get("testCheck")),
    )
    return {"approvalId": approval.approval_id}
