"""``request_launch``: hand the server to its lane's launch coordinator (batched launches).

Invoked with ``.waitForTaskToken`` by RequestTestLaunch / RequestCutover: the request and
its task token go into the lane's ledger, and the lane's coordinator loop is started if none
runs. The request names its execution (``$$.Execution.Id``): a task retried after its launch
was answered (its Lambda failed after recording, so the answer found no one waiting) is
answered again from the recorded outcome, never launched twice. The execution resumes when
the loop sends this server's outcome (job, instance, launch status) with
``SendTaskSuccess``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import step_handler


@step_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return wiring.launches().request(
        event["state"], event["phase"], event["taskToken"], event.get("execution", "")
    )
