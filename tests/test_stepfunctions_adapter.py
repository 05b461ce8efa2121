"""The Step Functions adapter: botocore's error codes become typed errors, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from orchestration.adapters.stepfunctions import (
    ExecutionAlreadyExistsError,
    ExecutionDoesNotExistError,
    InvalidTaskTokenError,
    StepFunctionsAdapter,
    StepFunctionsError,
    StepFunctionsRefusedError,
    TaskDoesNotExistError,
    TaskNotWaitingError,
    TaskTimedOutError,
)

MACHINE = "arn:aws:states:us-east-1:111122223333:stateMachine:wavepilot"
EXECUTION = "arn:aws:states:us-east-1:111122223333:execution:wavepilot:mig-1-r1"


@pytest.fixture
def stubbed() -> Iterator[tuple[StepFunctionsAdapter, Stubber]]:
    client = boto3.client(
        "stepfunctions",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield StepFunctionsAdapter(client), stubber
        stubber.assert_no_pending_responses()


def test_a_started_execution_is_named_and_given_its_input_as_json(
    stubbed: tuple[StepFunctionsAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": "2026-12-03T09:00:00Z"},
        {"stateMachineArn": MACHINE, "name": "mig-1-r1", "input": '{"spec": {"a": 1}}'},
    )

    assert adapter.start(MACHINE, "mig-1-r1", {"spec": {"a": 1}}) == EXECUTION


@pytest.mark.parametrize(
    ("operation", "code", "error"),
    [
        ("start_execution", "ExecutionAlreadyExists", ExecutionAlreadyExistsError),
        ("describe_execution", "ExecutionDoesNotExist", ExecutionDoesNotExistError),
        ("stop_execution", "ExecutionDoesNotExist", ExecutionDoesNotExistError),
        ("send_task_success", "TaskTimedOut", TaskTimedOutError),
        ("send_task_success", "InvalidToken", InvalidTaskTokenError),
        ("send_task_failure", "TaskDoesNotExist", TaskDoesNotExistError),
    ],
)
def test_the_refusals_the_pipeline_decides_on_are_typed(
    stubbed: tuple[StepFunctionsAdapter, Stubber],
    operation: str,
    code: str,
    error: type[StepFunctionsError],
) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(operation, service_error_code=code, service_message="no")
    calls: dict[str, Callable[[], object]] = {
        "start_execution": lambda: adapter.start(MACHINE, "mig-1-r1", {}),
        "describe_execution": lambda: adapter.execution(EXECUTION),
        "stop_execution": lambda: adapter.stop(EXECUTION, error="E", cause="c"),
        "send_task_success": lambda: adapter.send_task_success("token", {}),
        "send_task_failure": lambda: adapter.send_task_failure("token", error="E", cause="c"),
    }

    with pytest.raises(error) as raised:
        calls[operation]()

    assert not isinstance(raised.value, ClientError)  # the pipeline needs no botocore
    if operation.startswith("send_task"):
        assert isinstance(raised.value, TaskNotWaitingError)


def test_any_other_refusal_stays_the_client_error_the_edges_explain(
    stubbed: tuple[StepFunctionsAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "send_task_success",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: states:SendTaskSuccess",
    )

    with pytest.raises(StepFunctionsRefusedError) as raised:
        adapter.send_task_success("token", {"decision": "APPROVED"})

    assert isinstance(raised.value, ClientError)
    assert raised.value.operation_name == "SendTaskSuccess"
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "AccessDeniedException" in str(raised.value)


def test_an_execution_is_read_with_its_input(
    stubbed: tuple[StepFunctionsAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "describe_execution",
        {
            "executionArn": EXECUTION,
            "stateMachineArn": MACHINE,
            "status": "RUNNING",
            "startDate": "2026-12-03T09:00:00Z",
            "input": '{"spec": {"migrationId": "mig-1"}}',
        },
        {"executionArn": EXECUTION},
    )

    execution = adapter.execution(EXECUTION)

    assert execution.running
    assert execution.input == {"spec": {"migrationId": "mig-1"}}


def test_running_executions_are_read_a_page_at_a_time(
    stubbed: tuple[StepFunctionsAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed

    def page(name: str, token: str | None) -> dict[str, object]:
        execution = {
            "executionArn": f"{EXECUTION}-{name}",
            "stateMachineArn": MACHINE,
            "name": name,
            "status": "RUNNING",
            "startDate": "2026-12-03T09:00:00Z",
        }
        return {"executions": [execution], **({"nextToken": token} if token else {})}

    stubber.add_response(
        "list_executions",
        page("first", "t1"),
        {"stateMachineArn": MACHINE, "statusFilter": "RUNNING"},
    )
    stubber.add_response(
        "list_executions",
        page("second", None),
        {"stateMachineArn": MACHINE, "statusFilter": "RUNNING", "nextToken": "t1"},
    )

    names = adapter.running_execution_names(MACHINE)
    assert next(names) == "first"  # the second page is not read until it is needed
    assert list(names) == ["second"]
