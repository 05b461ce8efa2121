"""A Lambda context with the fields Powertools reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeLambdaContext:
    function_name: str = "wavepilot-test-function"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:wavepilot-test-function"
    )
    memory_limit_in_mb: int = 256
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/wavepilot-test-function"
    log_stream_name: str = "2026/11/26/[$LATEST]test"
    timeout_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms
