"""``slack_app``: Slack's requests (slash commands, buttons, modals) on Lambda.

Behind a Lambda function URL (Slack signs every request; Bolt verifies it). Bolt's
``SlackRequestHandler`` acknowledges within Slack's 3 seconds and re-invokes this function
asynchronously for lazy listeners, which needs ``lambda:InvokeFunction`` on itself (Bolt
1.30's ``LambdaLazyListenerRunner`` calls only ``Invoke``; older guides also list
``lambda:GetFunction``). Secrets are read on the first request, not at import.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bot import wiring
from orchestration.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = wiring.request_handler().handle(event, context)  # type: ignore[no-untyped-call]
    return response
