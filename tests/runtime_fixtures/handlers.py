"""Handlers named by the ``Handler`` setting of functions created in the runtime tests."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from tests.runtime_fixtures import recorder

logger = Logger(service="runtime-fixtures")


class TransientGlitch(Exception):  # noqa: N818 - the error name the state machine retries on
    """Raised on a first attempt: a Retry on this name should try again."""


class ReplicationStalled(Exception):  # noqa: N818 - the error name the state machine catches
    """Raised once retries are used up: a Catch on this exact name should take over."""


@logger.inject_lambda_context
def plan_step(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """First Task: chooses the route and how long to wait, reports what its context said."""
    return {
        **event,
        "route": "wait",
        "waitSeconds": event.get("waitSeconds", 1),
        "context": {
            "functionName": context.function_name,
            "functionVersion": context.function_version,
            "invokedFunctionArn": context.invoked_function_arn,
            "memoryLimitInMb": context.memory_limit_in_mb,
            "requestId": context.aws_request_id,
            "logGroupName": context.log_group_name,
            "remainingMillis": context.get_remaining_time_in_millis(),
        },
    }


def finish_step(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {**event, "finished": True}


def flaky_then_stalled(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """``TransientGlitch`` on a key's first attempt, ``ReplicationStalled`` on later ones."""
    key = str(event["key"])
    recorder.record(f"attempts:{key}", context.aws_request_id)
    if len(recorder.recorded(f"attempts:{key}")) == 1:
        raise TransientGlitch(f"{key}: source server briefly unreachable")
    raise ReplicationStalled(f"{key}: replication has not progressed for 30 minutes")


def request_approval(event: dict[str, Any], context: LambdaContext) -> None:
    """A ``.waitForTaskToken`` task: hands the token to whoever will approve (the test)."""
    recorder.record("approval-requests", event)


def record_event(event: Any, context: LambdaContext) -> None:
    recorder.record("events", event)


def report_poison_failures(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An SQS batch handler that fails (only) the records whose body is ``poison``.

    It parses the event with Powertools' ``SqsModel`` first, so an event that does not look
    like Lambda's fails the whole batch.
    """
    parse(event=event, model=SqsModel)
    recorder.record("batches", event["Records"])
    failures = [
        {"itemIdentifier": record["messageId"]}
        for record in event["Records"]
        if record["body"] == "poison"
    ]
    return {"batchItemFailures": failures}


def read_greeting(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return {"greeting": os.environ["WAVEPILOT_TEST_GREETING"]}


def not_json_serialisable(event: dict[str, Any], context: LambdaContext) -> object:
    return object()


def wait_on_the_clock(event: dict[str, Any], context: LambdaContext) -> None:
    """An SQS batch handler that waits a simulated minute (as the Slack notifier waits out a
    rate limit) before it records the batch's bodies."""
    from orchestration.local.virtual_clock import active_virtual_clock

    clock = active_virtual_clock()
    assert clock is not None, "this handler runs on a virtual clock"
    clock.sleep(60)
    recorder.record("waited", [record["body"] for record in event["Records"]])
