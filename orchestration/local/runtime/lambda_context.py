"""The context object a handler receives: the fields of the Python runtime's LambdaContext."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LocalLambdaContext:
    """Duck-typed like ``awslambdaric``'s LambdaContext (and Powertools' ``LambdaContext``).

    Powertools' ``Logger.inject_lambda_context`` reads ``function_name``,
    ``memory_limit_in_mb``, ``invoked_function_arn`` and ``aws_request_id``; handlers that budget
    their work call :meth:`get_remaining_time_in_millis`, counted down from the function's
    configured ``Timeout`` as on AWS.
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float = field(repr=False)
    identity: None = None
    client_context: None = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the configured timeout (never negative, as on AWS)."""
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))
