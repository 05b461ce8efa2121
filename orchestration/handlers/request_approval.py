"""``request_approval``: the gates. Stores the task token under an ID, announces it.

Invoked with ``.waitForTaskToken``: the execution waits until the token is sent back or the
state's timeout expires.

- ``AwaitApproval`` (the approval gate): ``ApprovalService.decide`` sends it back (Slack
  button, ``/wavepilot approve``, ``wavepilot approve``). The state carries
  ``VerifyTestLaunch``'s result (``$.testCheck``): the test instance and its health checks
  go into the announcement.
- ``AwaitParkDecision`` (``"gate": "park"``, the manifest's ``onFailure: park``): a failed
  test launch, cleaned up, waits for an operator's Retry or Roll back
  (``ParkService.decide``).
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
    spec = MigrationSpec.model_validate(state["spec"])
    if event.get("gate") == "park":
        park = wiring.parks().park(spec, event["taskToken"], state)
        return {"parkId": park.park_id}
    approval = wiring.approvals().request(
        spec,
        event["taskToken"],
        int(state["config"]["approvalTimeoutSeconds"]),
        VerifiedTestLaunch.from_step(state.get("testCheck")),
    )
    return {"approvalId": approval.approval_id}
