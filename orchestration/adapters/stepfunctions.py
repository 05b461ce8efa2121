"""AWS Step Functions through the plain boto3 ``stepfunctions`` client: typed errors.

The pipeline starts, inspects and stops executions, and answers the approval gate's task
token. The refusals it decides on (a repeated execution name, a gate that stopped waiting,
an execution that is gone) are translated here, once, from botocore's error codes into the
typed errors below; the services match on those types, never on codes or messages.

Any other refusal (permissions, validation, throttling beyond boto3's retries) is raised as
:class:`StepFunctionsRefusedError`, which is still the ``ClientError`` botocore raised: the
edges (the CLI, the Slack app) explain an AWS refusal by its operation and code, and keep
doing so for these calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient

P = ParamSpec("P")
R = TypeVar("R")


class StepFunctionsError(Exception):
    """Step Functions refused a call; the subclasses say why."""


class ExecutionAlreadyExistsError(StepFunctionsError):
    """An execution of this name exists (execution names are the idempotency key)."""


class ExecutionDoesNotExistError(StepFunctionsError):
    """No such execution (it ended and was forgotten, or never was)."""


class TaskNotWaitingError(StepFunctionsError):
    """The task token's task no longer waits for an answer: the gate cannot be told."""


class TaskTimedOutError(TaskNotWaitingError):
    """The task timed out (the approval gate's timeout passed)."""


class InvalidTaskTokenError(TaskNotWaitingError):
    """The token is not (or no longer) a valid task token."""


class TaskDoesNotExistError(TaskNotWaitingError):
    """The task ended (its execution was stopped, say)."""


class StepFunctionsRefusedError(StepFunctionsError, ClientError):
    """A refusal the pipeline does not decide on; also the botocore ``ClientError`` it was,
    with its ``response`` and ``operation_name``."""


_ERRORS: dict[str, type[StepFunctionsError]] = {
    "ExecutionAlreadyExists": ExecutionAlreadyExistsError,
    "ExecutionDoesNotExist": ExecutionDoesNotExistError,
    "TaskTimedOut": TaskTimedOutError,
    "InvalidToken": InvalidTaskTokenError,
    "TaskDoesNotExist": TaskDoesNotExistError,
}


def _typed(exc: ClientError) -> StepFunctionsError:
    """The typed error for a botocore ClientError (one place, never by message)."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    known = _ERRORS.get(code)
    if known is not None:
        return known(f"{code}: {error.get('Message', str(exc))}")
    return StepFunctionsRefusedError(exc.response, exc.operation_name)


def _translated(func: Callable[P, R]) -> Callable[P, R]:
    """Raise the typed errors above instead of botocore's ClientError."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as exc:
            raise _typed(exc) from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class Execution:
    """What the pipeline needs to know about one execution."""

    execution_arn: str
    status: str
    input: Mapping[str, Any]

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"


class StepFunctionsAdapter:
    def __init__(self, client: SFNClient) -> None:
        self._client = client

    @_translated
    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        """Start an execution named ``name``; its ARN.

        Raises:
            ExecutionAlreadyExistsError: an execution of that name exists already.
        """
        response = self._client.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )
        return response["executionArn"]

    def running_execution_names(self, state_machine_arn: str) -> Iterator[str]:
        """The names of the state machine's RUNNING executions, a page at a time (a caller
        that stops early reads no further page)."""
        paginator = self._client.get_paginator("list_executions")
        try:
            for page in paginator.paginate(
                stateMachineArn=state_machine_arn, statusFilter="RUNNING"
            ):
                for execution in page["executions"]:
                    yield execution["name"]
        except ClientError as exc:
            raise _typed(exc) from exc

    @_translated
    def execution(self, execution_arn: str) -> Execution:
        """Raises:
        ExecutionDoesNotExistError: no such execution."""
        response = self._client.describe_execution(executionArn=execution_arn)
        return Execution(
            execution_arn=execution_arn,
            status=response["status"],
            input=json.loads(response.get("input") or "{}"),
        )

    @_translated
    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        """Stop a running execution (its Catch does not run; a task waiting ends).

        Raises:
            ExecutionDoesNotExistError: no such execution.
        """
        self._client.stop_execution(executionArn=execution_arn, error=error, cause=cause)

    @_translated
    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        """Resume the task waiting on ``task_token`` with ``output``.

        Raises:
            TaskNotWaitingError: the task no longer waits (timed out, ended, invalid token).
        """
        self._client.send_task_success(taskToken=task_token, output=json.dumps(output))

    @_translated
    def send_task_failure(self, task_token: str, *, error: str, cause: str) -> None:
        """Fail the task waiting on ``task_token`` with ``error`` (its Catch matches it).

        Raises:
            TaskNotWaitingError: the task no longer waits (timed out, ended, invalid token).
        """
        self._client.send_task_failure(taskToken=task_token, error=error, cause=cause)
