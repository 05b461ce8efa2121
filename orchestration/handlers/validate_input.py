"""``validate_input``: live prerequisites (network, instance type, profile, MGN source server)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Validated, the test launch is prepared in the same invocation when it can be.
    return wiring.steps().validate_and_prepare(event["state"])
