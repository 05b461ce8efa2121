"""The moto runtime layer of the embedded default: AWS on loopback that runs the real system.

moto provides the APIs; this package makes them behave: the Step Functions interpreter on,
Lambda invocations running the real Python handlers in-process, EventBridge delivering to
Lambda and Step Functions targets, and SQS event source mappings polled with Lambda's batch
semantics. See ``docs/LOCAL_RUNTIME.md`` for what is patched in moto and why.

Typical use::

    with start_local_aws(environment={"EVENTBRIDGE_BUS_NAME": "bus"}) as aws:
        sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url)
        ...
        print(aws.counters().lambda_invocations)
"""

from __future__ import annotations

from orchestration.local.runtime.config import (
    EMULATED_AWS_ENVIRONMENT,
    LOCAL_ACCOUNT_ID,
    LOCAL_REGION,
    MOTO_USER_CONFIG,
)
from orchestration.local.runtime.counters import (
    EventSourceBatchStats,
    RuleTarget,
    RuntimeCounters,
)
from orchestration.local.runtime.errors import (
    LocalEnvironmentMismatchError,
    LocalRuntimeError,
    MotoPatchPointMissingError,
    RuntimeAlreadyActiveError,
    RuntimeNotStartedError,
)
from orchestration.local.runtime.lambda_context import LocalLambdaContext
from orchestration.local.runtime.lambda_dispatch import FunctionConfiguration, InvocationOutcome
from orchestration.local.runtime.local_aws_runtime import LocalAwsRuntime, start_local_aws
from orchestration.local.runtime.moto_patches import (
    MOTO_PATCH_POINTS,
    MotoPatchPoint,
    install_moto_patches,
)

__all__ = [
    "EMULATED_AWS_ENVIRONMENT",
    "LOCAL_ACCOUNT_ID",
    "LOCAL_REGION",
    "MOTO_PATCH_POINTS",
    "MOTO_USER_CONFIG",
    "EventSourceBatchStats",
    "FunctionConfiguration",
    "InvocationOutcome",
    "LocalAwsRuntime",
    "LocalEnvironmentMismatchError",
    "LocalLambdaContext",
    "LocalRuntimeError",
    "MotoPatchPoint",
    "MotoPatchPointMissingError",
    "RuleTarget",
    "RuntimeAlreadyActiveError",
    "RuntimeCounters",
    "RuntimeNotStartedError",
    "install_moto_patches",
    "start_local_aws",
]
