"""``request_approval``: the gates. Stores the task token under an ID, announces it.

Invoked with ``.waitForTaskToken``: the execution waits until the token is sent back or the
state's timeout expires.

- ``AwaitApproval`` (the approval gate): ``ApprovalService.decide`` sends it back (Slack
  button, ``/wavepilot approve``, ``wavepilot approve``). The state carries
  ``VerifyTestLaunch``'s result (``$.testCheck``): the test instance and its health checks
  go into the announcement.
- ``VerifyTestAndAwaitApproval`` (batched, ``"verifyFirst": "test"``): the gate's invocation
  verifies the test launch first (the coordinator's outcome usually shows the instance up), so
  the verification and the request are one invocation and one record write. A test not
  verified here (still booting, health checks to look at again, anything that stopped it) is
  handed back at once (``SendTaskSuccess`` with ``verified: false``): the VerifyTestLaunch
  state verifies it with its waits, retries and catch, and AwaitApproval asks as before.
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
    if event.get("verifyFirst") == "test":
        check = wiring.steps().verify_test_at_once(state)
        if check is None or not check.get("done"):
            handed_back: dict[str, Any] = {"verified": False}
            if check is not None:
                handed_back["testCheck"] = check  # the first look's result: waits count from it
            wiring.stepfunctions().send_task_success(event["taskToken"], handed_back)
            return handed_back
        state = {**state, "testCheck": check}
    approval = wiring.approvals().request(
        spec,
        event["taskToken"],
        int(state["config"]["approvalTimeoutSeconds"]),
        VerifiedTestLaunch.from_step(state.get("testCheck")),
    )
    return {"approvalId": approval.approval_id}
