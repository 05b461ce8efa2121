"""The moto runtime layer: real handlers, real state machines, real delivery, on loopback.

Scenario tests run the embedded default as the system uses it (boto3 against the runtime's
endpoint, real ASL definitions, the real Python handlers in ``tests/runtime_fixtures``);
canary tests fail loudly, naming the moto symbol, when a moto upgrade moves or fixes what the
runtime patches. Waits, retries and visibility timeouts are one or two seconds, so the whole
module runs in seconds.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from orchestration.local.estate import open_account
from orchestration.local.runtime import (
    LOCAL_ACCOUNT_ID,
    MOTO_PATCH_POINTS,
    InvocationOutcome,
    LocalAwsRuntime,
    LocalEnvironmentMismatchError,
    MotoPatchPoint,
    RuleTarget,
    RuntimeAlreadyActiveError,
    RuntimeNotStartedError,
    install_moto_patches,
    start_local_aws,
)
from orchestration.local.runtime.eventbridge_targets import (
    render_input_template,
    select_json_path,
)
from orchestration.local.runtime.lambda_dispatch import LambdaRuntimeError
from orchestration.local.runtime.moto_backends import account_id_for_access_key
from orchestration.local.runtime.moto_patches import (
    JSONPATH_PATCH_POINTS,
    LOADER_PATCH_POINTS,
    RESPONSE_PATCH_POINTS,
    SHARED_CLIENT_PATCH_POINTS,
    VIRTUAL_CLOCK_PATCH_POINTS,
    ModuleNamePatchPoint,
)
from orchestration.local.runtime.sqs_event_sources import failed_message_ids
from orchestration.local.virtual_clock import VirtualClock
from tests.runtime_fixtures import recorder

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_stepfunctions.client import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

REGION = "us-east-1"
GREETING = "hello from the shared local environment"
FIXTURES = "tests.runtime_fixtures.handlers"
SECONDS = 10.0  # upper bound for anything a test waits on


# ------------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class Aws:
    """The runtime and boto3 clients pointed at it, as the system's own code would build them."""

    runtime: LocalAwsRuntime
    role_arn: str
    awslambda: LambdaClient
    sfn: SFNClient
    events: EventBridgeClient
    sqs: SQSClient


@pytest.fixture(autouse=True)
def clean_recorder() -> Iterator[None]:
    recorder.clear()
    yield
    recorder.clear()


@pytest.fixture
def aws() -> Iterator[Aws]:
    with start_local_aws(
        environment={"WAVEPILOT_TEST_GREETING": GREETING}, sqs_idle_poll_seconds=0.05
    ) as runtime:
        yield _clients_for(runtime)


def _clients_for(runtime: LocalAwsRuntime) -> Aws:
    url = runtime.endpoint_url
    iam: IAMClient = boto3.client("iam", endpoint_url=url, region_name=REGION)
    role_arn = iam.create_role(
        RoleName="wavepilot-test-role", AssumeRolePolicyDocument=json.dumps({})
    )["Role"]["Arn"]
    return Aws(
        runtime=runtime,
        role_arn=role_arn,
        awslambda=boto3.client("lambda", endpoint_url=url, region_name=REGION),
        sfn=boto3.client("stepfunctions", endpoint_url=url, region_name=REGION),
        events=boto3.client("events", endpoint_url=url, region_name=REGION),
        sqs=boto3.client("sqs", endpoint_url=url, region_name=REGION),
    )


def _dummy_zip() -> bytes:
    """moto stores the code but the runtime imports the handler module instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


def create_function(
    aws: Aws, name: str, handler: str, *, environment: dict[str, str] | None = None
) -> str:
    return aws.awslambda.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=aws.role_arn,
        Handler=f"{FIXTURES}.{handler}",
        Code={"ZipFile": _dummy_zip()},
        Timeout=5,
        MemorySize=256,
        Environment={"Variables": environment or {}},
    )["FunctionArn"]


def create_state_machine(aws: Aws, name: str, definition: dict[str, Any]) -> str:
    return aws.sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=aws.role_arn
    )["stateMachineArn"]


def lambda_task(function_name: str, **fields: Any) -> dict[str, Any]:
    """A ``lambda:invoke`` Task whose output is the function's own result (``$.Payload``)."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_name, "Payload.$": "$"},
        "OutputPath": "$.Payload",
        **fields,
    }


def wait_until(condition: Callable[[], bool], what: str, timeout: float = SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def finished_execution(aws: Aws, execution_arn: str) -> DescribeExecutionOutputTypeDef:
    described: list[DescribeExecutionOutputTypeDef] = []

    def finished() -> bool:
        described[:] = [aws.sfn.describe_execution(executionArn=execution_arn)]
        return described[0]["status"] != "RUNNING"

    wait_until(finished, f"execution {execution_arn} to finish")
    return described[0]


def history_types(aws: Aws, execution_arn: str) -> list[str]:
    events = aws.sfn.get_execution_history(executionArn=execution_arn)["events"]
    return [event["type"] for event in events]


# ------------------------------------------------------------------ (a) Step Functions


def test_state_machine_runs_real_handlers_through_choice_and_wait(aws: Aws) -> None:
    # GIVEN Task -> Choice -> Wait (SecondsPath) -> Task on two real handlers
    create_function(aws, "plan-step", "plan_step")
    create_function(aws, "finish-step", "finish_step")
    state_machine = create_state_machine(
        aws,
        "plan-then-finish",
        {
            "StartAt": "Plan",
            "States": {
                "Plan": lambda_task("plan-step", Next="Route"),
                "Route": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.route", "StringEquals": "wait", "Next": "Pause"}],
                    "Default": "UnexpectedRoute",
                },
                "UnexpectedRoute": {"Type": "Fail", "Error": "UnexpectedRoute"},
                "Pause": {"Type": "Wait", "SecondsPath": "$.waitSeconds", "Next": "Finish"},
                "Finish": lambda_task("finish-step", End=True),
            },
        },
    )

    # WHEN it runs
    started = time.monotonic()
    execution = aws.sfn.start_execution(
        stateMachineArn=state_machine, name="vm-1", input=json.dumps({"vmId": "vm-1"})
    )["executionArn"]
    described = finished_execution(aws, execution)

    # THEN both handlers ran, the Wait waited, and the context looked like Lambda's
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["vmId"] == "vm-1"
    assert output["finished"] is True
    assert time.monotonic() - started >= 1.0
    context = output["context"]
    assert context["functionName"] == "plan-step"
    assert context["functionVersion"] == "$LATEST"
    assert context["invokedFunctionArn"].endswith(":function:plan-step")
    assert context["memoryLimitInMb"] == 256
    assert context["logGroupName"] == "/aws/lambda/plan-step"
    assert 0 < context["remainingMillis"] <= 5000
    counters = aws.runtime.counters()
    assert counters.lambda_invocations == {"plan-step": 1, "finish-step": 1}
    assert counters.state_transitions == {"plan-then-finish": 4}  # Plan, Route, Pause, Finish


def test_a_definition_is_parsed_once_and_executions_share_its_program(
    aws: Aws,
) -> None:
    # GIVEN a machine whose path depends on its input
    definition = {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "StringEquals": "left", "Next": "Left"}],
                "Default": "Right",
            },
            "Left": {"Type": "Pass", "Result": {"went": "left"}, "End": True},
            "Right": {"Type": "Pass", "Result": {"went": "right"}, "End": True},
        },
    }
    state_machine = create_state_machine(aws, "left-or-right", definition)

    # WHEN executions with different inputs run side by side
    executions = {
        side: aws.sfn.start_execution(
            stateMachineArn=state_machine, name=f"go-{side}-{n}", input=json.dumps({"go": side})
        )["executionArn"]
        for n, side in enumerate(("left", "right", "left"))
    }

    # THEN each took its own path, on the one program built from the definition
    for side, execution in executions.items():
        described = finished_execution(aws, execution)
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {"went": side}, described
    text = aws.sfn.describe_state_machine(stateMachineArn=state_machine)["definition"]
    first_program, first_tree = AmazonStateLanguageParser.parse(text)
    second_program, second_tree = AmazonStateLanguageParser.parse(text)
    assert (second_program, second_tree) == (first_program, first_tree)
    assert second_program is first_program


def test_retry_matches_one_error_name_and_catch_matches_the_exception_class_name(
    aws: Aws,
) -> None:
    # GIVEN a handler raising TransientGlitch, then ReplicationStalled
    create_function(aws, "replicate", "flaky_then_stalled")
    state_machine = create_state_machine(
        aws,
        "replicate-or-stall",
        {
            "StartAt": "Replicate",
            "States": {
                "Replicate": lambda_task(
                    "replicate",
                    Retry=[
                        {
                            "ErrorEquals": ["TransientGlitch"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 2,
                            "BackoffRate": 1.0,
                        }
                    ],
                    Catch=[
                        # Names must match exactly: a near miss must not catch.
                        {"ErrorEquals": ["ReplicationStalledError"], "Next": "WrongCatcher"},
                        {
                            "ErrorEquals": ["ReplicationStalled"],
                            "ResultPath": "$.failure",
                            "Next": "Stalled",
                        },
                    ],
                    End=True,
                ),
                "WrongCatcher": {"Type": "Fail", "Error": "WrongCatcher"},
                "Stalled": {"Type": "Pass", "End": True},
            },
        },
    )

    # WHEN it runs
    execution = aws.sfn.start_execution(
        stateMachineArn=state_machine, name="stall-1", input=json.dumps({"key": "stall-1"})
    )["executionArn"]
    described = finished_execution(aws, execution)

    # THEN the glitch was retried once and the stall caught by its exact class name
    assert described["status"] == "SUCCEEDED", described
    failure = json.loads(described["output"])["failure"]
    assert failure["Error"] == "ReplicationStalled"
    cause = json.loads(failure["Cause"])
    assert cause["errorType"] == "ReplicationStalled"
    assert cause["errorMessage"] == "stall-1: replication has not progressed for 30 minutes"
    assert any("flaky_then_stalled" in frame for frame in cause["stackTrace"])
    assert len(recorder.recorded("attempts:stall-1")) == 2
    assert history_types(aws, execution).count("TaskFailed") == 2
    counters = aws.runtime.counters()
    assert counters.lambda_invocations == {"replicate": 2}
    assert counters.lambda_errors == {"replicate": 2}


def test_wait_for_task_token_succeeds_when_sent_and_times_out_into_a_catch(aws: Aws) -> None:
    # GIVEN a .waitForTaskToken task with a 2 s timeout caught as States.Timeout
    create_function(aws, "request-approval", "request_approval")
    state_machine = create_state_machine(
        aws,
        "await-approval",
        {
            "StartAt": "AwaitApproval",
            "States": {
                "AwaitApproval": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {
                        "FunctionName": "request-approval",
                        "Payload": {"token.$": "$$.Task.Token", "key.$": "$.key"},
                    },
                    "TimeoutSeconds": 2,
                    "ResultPath": "$.approval",
                    "Catch": [
                        {
                            "ErrorEquals": ["States.Timeout"],
                            "ResultPath": "$.failure",
                            "Next": "TimedOut",
                        }
                    ],
                    "End": True,
                },
                "TimedOut": {"Type": "Pass", "End": True},
            },
        },
    )

    def start(key: str) -> str:
        return aws.sfn.start_execution(
            stateMachineArn=state_machine, name=key, input=json.dumps({"key": key})
        )["executionArn"]

    # WHEN one execution is approved from another thread and the other is ignored
    approved, ignored = start("approved"), start("ignored")

    def approve() -> None:
        wait_until(
            lambda: any(r["key"] == "approved" for r in recorder.recorded("approval-requests")),
            "the approval request",
        )
        token = next(
            r["token"] for r in recorder.recorded("approval-requests") if r["key"] == "approved"
        )
        aws.sfn.send_task_success(taskToken=token, output=json.dumps({"approvedBy": "ops"}))

    approver = threading.Thread(target=approve)
    approver.start()
    approver.join(SECONDS)

    # THEN the approved one carries the output, the ignored one timed out into the Catch
    approved_run = finished_execution(aws, approved)
    assert approved_run["status"] == "SUCCEEDED", approved_run
    assert json.loads(approved_run["output"])["approval"] == {"approvedBy": "ops"}
    ignored_run = finished_execution(aws, ignored)
    assert ignored_run["status"] == "SUCCEEDED", ignored_run
    assert json.loads(ignored_run["output"])["failure"]["Error"] == "States.Timeout"


# ----------------------------------------------------------------------- (d) EventBridge


def test_put_events_delivers_to_a_function_a_state_machine_and_a_queue(aws: Aws) -> None:
    # GIVEN a custom bus whose rules target a function (InputPath), a state machine
    # (InputTransformer) and a queue (the whole event), plus a disabled rule
    bus = "wavepilot-test-bus"
    aws.events.create_event_bus(Name=bus)
    function_arn = create_function(aws, "record-event", "record_event")
    state_machine = create_state_machine(
        aws, "on-vm-ready", {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    )
    queue_url = aws.sqs.create_queue(QueueName="vm-events")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    pattern = json.dumps({"source": ["wavepilot.test"], "detail-type": ["VmReady"]})
    rule_arns = {
        name: aws.events.put_rule(Name=name, EventBusName=bus, EventPattern=pattern)["RuleArn"]
        for name in ("to-function-and-queue", "to-state-machine", "disabled")
    }
    aws.events.disable_rule(Name="disabled", EventBusName=bus)
    aws.events.put_targets(
        Rule="to-function-and-queue",
        EventBusName=bus,
        Targets=[
            {"Id": "function", "Arn": function_arn, "InputPath": "$.detail"},
            {"Id": "queue", "Arn": queue_arn},
        ],
    )
    aws.events.put_targets(
        Rule="to-state-machine",
        EventBusName=bus,
        Targets=[
            {
                "Id": "state-machine",
                "Arn": state_machine,
                "RoleArn": aws.role_arn,
                "InputTransformer": {
                    "InputPathsMap": {"vm": "$.detail.vmId", "wave": "$.detail.wave"},
                    "InputTemplate": '{"vm": <vm>, "wave": <wave>, "note": "VM <vm> is ready"}',
                },
            }
        ],
    )
    aws.events.put_targets(
        Rule="disabled", EventBusName=bus, Targets=[{"Id": "function", "Arn": function_arn}]
    )

    # WHEN one matching event is put on the bus
    detail = {"vmId": "vm-7", "wave": 3}
    result = aws.events.put_events(
        Entries=[
            {
                "Source": "wavepilot.test",
                "DetailType": "VmReady",
                "Detail": json.dumps(detail),
                "EventBusName": bus,
            }
        ]
    )
    assert result["FailedEntryCount"] == 0

    # THEN the function got the detail (once: the disabled rule delivered nothing) ...
    wait_until(lambda: len(recorder.recorded("events")) >= 1, "the Lambda target")
    # ... the state machine ran once, under a generated name, with the transformed input ...
    executions: list[Any] = []

    def one_execution_finished() -> bool:
        executions[:] = aws.sfn.list_executions(stateMachineArn=state_machine)["executions"]
        return len(executions) == 1 and executions[0]["status"] != "RUNNING"

    wait_until(one_execution_finished, "the state machine target")
    described = aws.sfn.describe_execution(executionArn=executions[0]["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"]) == {"vm": "vm-7", "wave": 3, "note": "VM vm-7 is ready"}
    assert len(described["name"]) == 36  # a UUID: EventBridge cannot choose the name
    # ... and the queue got the whole event
    messages = aws.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    queued_event = json.loads(messages[0]["Body"])
    assert queued_event["detail"] == detail
    assert queued_event["detail-type"] == "VmReady"
    assert recorder.recorded("events") == [detail]
    delivered = aws.runtime.counters().events_delivered
    assert delivered == {
        RuleTarget(rule_arns["to-function-and-queue"], "function"): 1,
        RuleTarget(rule_arns["to-function-and-queue"], "queue"): 1,
        RuleTarget(rule_arns["to-state-machine"], "state-machine"): 1,
    }


def test_a_lambda_target_gets_the_event_as_aws_sends_it(aws: Aws) -> None:
    # GIVEN a rule on the default bus with a Lambda target and no input shaping
    function_arn = create_function(aws, "record-event", "record_event")
    aws.events.put_rule(Name="everything", EventPattern=json.dumps({"source": ["wavepilot"]}))
    aws.events.put_targets(Rule="everything", Targets=[{"Id": "fn", "Arn": function_arn}])

    # WHEN an event is put
    aws.events.put_events(Entries=[{"Source": "wavepilot", "DetailType": "X", "Detail": "{}"}])

    # THEN the handler sees the AWS envelope: account, ISO time, no moto-only fields
    wait_until(lambda: len(recorder.recorded("events")) == 1, "the Lambda target")
    event = recorder.recorded("events")[0]
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["account"] == "123456789012"
    assert time.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    EventBridgeModel.model_validate(event)  # what a Powertools-parsing handler would do


# --------------------------------------------------------------------- (e) SQS batches


def test_sqs_mapping_deletes_successes_and_redrives_a_reported_failure_to_the_dlq(
    aws: Aws,
) -> None:
    # GIVEN a queue (1 s visibility, 2 receives before the DLQ) with three messages waiting
    dlq_url = aws.sqs.create_queue(QueueName="requests-dlq")["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = aws.sqs.create_queue(
        QueueName="requests",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": "1",
                "MessageBody": "vm-1",
                "MessageAttributes": {"wave": {"DataType": "String", "StringValue": "3"}},
            },
            {"Id": "2", "MessageBody": "poison"},
            {"Id": "3", "MessageBody": "vm-3"},
        ],
    )
    create_function(aws, "process-batch", "report_poison_failures")

    # WHEN the queue is mapped to the function, reporting batch item failures
    mapping = aws.awslambda.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName="process-batch",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=0,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    aws.sqs.send_message(QueueUrl=queue_url, MessageBody="vm-late")  # after the mapping exists

    # THEN the poison message is redelivered with a higher receive count, then dead-lettered
    dead_letters: list[Any] = []

    def dead_lettered() -> bool:
        dead_letters.extend(aws.sqs.receive_message(QueueUrl=dlq_url).get("Messages", []))
        return bool(dead_letters)

    wait_until(dead_lettered, "the poison message in the DLQ")
    assert [m["Body"] for m in dead_letters] == ["poison"]
    batches = recorder.recorded("batches")
    assert {"vm-1", "poison", "vm-3"} <= {r["body"] for r in batches[0]}  # one batch
    seen: dict[str, list[str]] = {}
    for batch in batches:
        for record in batch:
            seen.setdefault(record["body"], []).append(
                record["attributes"]["ApproximateReceiveCount"]
            )
    assert seen == {"vm-1": ["1"], "poison": ["1", "2"], "vm-3": ["1"], "vm-late": ["1"]}
    first = batches[0][0]
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"] == queue_arn
    assert first["awsRegion"] == REGION
    assert first["messageAttributes"]["wave"]["stringValue"] == "3"
    assert first["messageAttributes"]["wave"]["dataType"] == "String"
    assert {"messageId", "receiptHandle", "md5OfBody"} <= set(first)
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    counters = aws.runtime.counters()
    stats = counters.event_source_batches[mapping["UUID"]]
    assert stats.messages_deleted == 3
    assert stats.messages_left_for_retry == 2
    # One delivery path: every invocation is one of the poller's batches (moto's own
    # invoke-on-send would have added invocations for vm-late).
    assert counters.lambda_invocations == {"process-batch": stats.batches}


def test_a_batch_past_its_visibility_timeout_does_not_stop_the_clock_its_handler_waits_on() -> None:
    """The handler waits on the virtual clock while real time runs out the batch's visibility
    timeout (the driver computes); the batch's messages show on the queue again, but only this
    poller could take them, and it is busy: the clock must go on, or the handler never ends."""
    clock = VirtualClock().start()
    try:
        with (
            clock.participating(),
            start_local_aws(sqs_idle_poll_seconds=0.05) as runtime,
        ):
            aws = _clients_for(runtime)
            queue_url = aws.sqs.create_queue(
                QueueName="slow.fifo",
                Attributes={
                    "FifoQueue": "true",
                    "ContentBasedDeduplication": "true",
                    "VisibilityTimeout": "1",
                },
            )["QueueUrl"]
            queue_arn = aws.sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            create_function(aws, "slow-consumer", "wait_on_the_clock")
            # Both messages are on the queue before its poller starts, so they are one batch
            # (sent after it, a poller quicker than the second send took "first" alone).
            for body in ("first", "second"):
                aws.sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId="g")
            aws.awslambda.create_event_source_mapping(
                EventSourceArn=queue_arn, FunctionName="slow-consumer", BatchSize=10
            )
            started = clock.monotonic()
            # The driver computes for longer than the visibility timeout (virtual time holds).
            deadline = time.monotonic() + 2.5
            while not recorder.recorded("waited") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert recorder.recorded("waited") == []  # the handler is waiting on the clock
            assert clock.monotonic() == started
            waited_for = 0.0
            while not recorder.recorded("waited") and waited_for < 600:
                clock.sleep(5)  # the driver waits on the clock: time may move now
                waited_for += 5
            assert recorder.recorded("waited") == [["first", "second"]]
            assert clock.monotonic() - started >= 60
    finally:
        clock.close()


def test_batch_failure_rules_follow_lambda() -> None:
    batch = ["a", "b"]

    def failed(payload: Any, *, error: bool = False, reports: bool = True) -> set[str]:
        outcome = InvocationOutcome(
            payload=json.dumps(payload).encode(), function_error="Unhandled" if error else None
        )
        return failed_message_ids(outcome, batch, reports_item_failures=reports)

    assert failed({"batchItemFailures": [{"itemIdentifier": "b"}]}) == {"b"}
    assert failed({"batchItemFailures": []}) == set()
    assert failed({"batchItemFailures": None}) == set()
    assert failed(None) == set()
    assert failed({}) == set()
    assert failed({"errorType": "X"}, error=True) == {"a", "b"}
    assert failed({"batchItemFailures": [{"itemIdentifier": "b"}]}, reports=False) == set()
    assert failed({"batchItemFailures": [{"itemIdentifier": "zzz"}]}) == {"a", "b"}
    assert failed({"batchItemFailures": [{"itemIdentifier": ""}]}) == {"a", "b"}
    assert failed({"batchItemFailures": [{"id": "a"}]}) == {"a", "b"}
    assert failed(["not", "an", "object"]) == {"a", "b"}


# ------------------------------------------------------------- (f) Lambda API behaviour


def test_handler_reads_the_environment_configured_on_its_function(aws: Aws) -> None:
    create_function(
        aws, "read-greeting", "read_greeting", environment={"WAVEPILOT_TEST_GREETING": GREETING}
    )

    response = aws.awslambda.invoke(FunctionName="read-greeting", Payload=b"{}")

    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(response["Payload"].read()) == {"greeting": GREETING}
    aws.runtime.check_function_environments()  # nothing missing


def test_handlers_are_imported_up_front_like_lambdas_init_phase(aws: Aws) -> None:
    # GIVEN a function whose handler module nothing has imported yet
    module = "tests.runtime_fixtures.init_phase"
    sys.modules.pop(module, None)
    aws.awslambda.create_function(
        FunctionName="init-phase",
        Runtime="python3.11",
        Role=aws.role_arn,
        Handler=f"{module}.handler",
        Code={"ZipFile": _dummy_zip()},
    )
    # WHEN the runtime runs every function's init phase, in this thread
    aws.runtime.initialize_handlers()
    # THEN the module is imported before any invocation (no first-call import race)
    assert module in sys.modules
    # AND a handler that cannot be imported says so there, not at its first event
    aws.awslambda.create_function(
        FunctionName="broken-init",
        Runtime="python3.11",
        Role=aws.role_arn,
        Handler="tests.runtime_fixtures.no_such_module.handler",
        Code={"ZipFile": _dummy_zip()},
    )
    with pytest.raises(LambdaRuntimeError, match="Unable to import module"):
        aws.runtime.initialize_handlers()


def test_a_function_environment_outside_the_shared_one_fails_loudly(aws: Aws) -> None:
    create_function(
        aws, "needs-more", "read_greeting", environment={"WAVEPILOT_TEST_UNSET": "value"}
    )

    response = aws.awslambda.invoke(FunctionName="needs-more", Payload=b"{}")

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.LocalEnvironmentMismatch"
    assert "WAVEPILOT_TEST_UNSET is not set" in error["errorMessage"]
    with pytest.raises(LocalEnvironmentMismatchError, match="needs-more"):
        aws.runtime.check_function_environments()


@pytest.mark.parametrize(
    ("handler", "error_type"),
    [
        ("tests.runtime_fixtures.no_such_module.handler", "Runtime.ImportModuleError"),
        (f"{FIXTURES}.no_such_function", "Runtime.HandlerNotFound"),
        (f"{FIXTURES}.not_json_serialisable", "Runtime.MarshalError"),
    ],
)
def test_runtime_errors_carry_the_lambda_runtime_error_types(
    aws: Aws, handler: str, error_type: str
) -> None:
    aws.awslambda.create_function(
        FunctionName="broken",
        Runtime="python3.11",
        Role=aws.role_arn,
        Handler=handler,
        Code={"ZipFile": _dummy_zip()},
    )

    response = aws.awslambda.invoke(FunctionName="broken", Payload=b"{}")

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == error_type


def test_event_invocations_return_202_with_an_empty_body_and_run_later(aws: Aws) -> None:
    create_function(aws, "record-event", "record_event")

    response = aws.awslambda.invoke(
        FunctionName="record-event", InvocationType="Event", Payload=b'{"n": 1}'
    )

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    wait_until(lambda: recorder.recorded("events") == [{"n": 1}], "the asynchronous invocation")


# -------------------------------------------------------------------- lifecycle and state


def test_stop_restores_the_process_and_moto(aws: Aws) -> None:
    from moto.core.config import default_user_config

    runtime = aws.runtime
    port = runtime_port(aws)
    assert os.environ["MOTO_PORT"] == port
    with pytest.raises(RuntimeAlreadyActiveError):
        LocalAwsRuntime().start()

    runtime.stop()

    assert os.environ.get("MOTO_PORT") != port
    assert os.environ.get("WAVEPILOT_TEST_GREETING") is None
    assert default_user_config["lambda"] == {"use_docker": True}
    assert default_user_config["stepfunctions"] == {"execute_state_machine": False}
    with pytest.raises(RuntimeNotStartedError):
        _ = runtime.endpoint_url
    assert runtime.counters().lambda_invocations == {}  # the final snapshot stays readable


def test_stop_ends_waits_task_token_waits_and_pollers_leaving_no_thread() -> None:
    # GIVEN a runtime with an execution in a long Wait, one waiting for a task token that
    # nobody will send (no TimeoutSeconds), and an SQS poller
    threads_before = set(threading.enumerate())
    with start_local_aws(stop_timeout_seconds=3) as runtime:
        aws = _clients_for(runtime)
        create_function(aws, "request-approval", "request_approval")
        waiting = create_state_machine(
            aws,
            "waits",
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}},
        )
        awaiting = create_state_machine(
            aws,
            "awaits-token",
            {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                        "Parameters": {
                            "FunctionName": "request-approval",
                            "Payload": {"token.$": "$$.Task.Token", "key": "never"},
                        },
                        "End": True,
                    }
                },
            },
        )
        aws.sfn.start_execution(stateMachineArn=waiting, name="long-wait", input="{}")
        aws.sfn.start_execution(stateMachineArn=awaiting, name="no-answer", input="{}")
        queue_url = aws.sqs.create_queue(QueueName="idle")["QueueUrl"]
        queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        aws.awslambda.create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName="request-approval"
        )
        wait_until(lambda: bool(recorder.recorded("approval-requests")), "the token request")

        # WHEN it stops
        started = time.monotonic()
        runtime.stop()

    # THEN it stopped well before its timeout and left no thread behind
    assert time.monotonic() - started < 2, (
        "stop() waited for its timeout: moto's StopExecution no longer ends .waitForTaskToken "
        "waits through moto.stepfunctions.parser.asl.eval.callback.callback."
        "CallbackPoolManager._pool (see moto_backends._interrupt_task_token_waits)"
    )
    leftovers = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftovers == []
    assert runtime.counters().state_transitions == {"waits": 1, "awaits-token": 1}


def runtime_port(aws: Aws) -> str:
    return aws.awslambda.meta.endpoint_url.rsplit(":", 1)[1]


def test_eventbridge_input_helpers_follow_aws() -> None:
    event = {"detail": {"vmId": "vm-1", "disks": [{"size": 8}]}, "detail-type": "VmReady"}
    assert select_json_path(event, "$") == event
    assert select_json_path(event, "$.detail") == event["detail"]
    assert select_json_path(event, "$.detail-type") == "VmReady"
    assert select_json_path(event, "$.detail.disks[0].size") == 8
    assert select_json_path(event, "$['detail']['vmId']") == "vm-1"
    assert select_json_path(event, "$.detail.missing") is None
    with pytest.raises(ValueError, match="unsupported JSONPath"):
        select_json_path(event, "$..vmId")
    values = {"vm": "vm-1", "size": 8, "quote": 'say "hi"'}
    assert render_input_template('{"vm": <vm>, "size": <size>}', values) == {
        "vm": "vm-1",
        "size": 8,
    }
    assert render_input_template('{"text": "<vm> has <size> GiB"}', values) == {
        "text": "vm-1 has 8 GiB"
    }
    assert render_input_template('{"q": "<quote>"}', values) == {"q": 'say "hi"'}
    assert render_input_template('"<vm> is ready"', values) == "vm-1 is ready"


# ------------------------------------------------------------------------- (g) canaries


@pytest.mark.parametrize("point", MOTO_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_patched_moto_methods_keep_their_signature(point: MotoPatchPoint) -> None:
    point.verify()  # raises MotoPatchPointMissingError naming the symbol and both signatures
    install_moto_patches()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


# Where moto's ASL components assign to themselves after construction (file, class, method,
# attribute): the workers and records a Map or Parallel state creates for each run, and a key
# computed once. Anything else would be an execution's state on a component that the runtime
# shares between executions (moto_patches: the program is built once per definition).
ASL_COMPONENT_ASSIGNMENTS_AFTER_CONSTRUCTION = {
    ("eval_component.py", "EvalComponent", "heap_key", "__heap_key"),
    (
        "state/exec/state_map/iteration/iteration_worker.py",
        "IterationWorker",
        "sig_stop",
        "_stop_signal_received",
    ),
    ("state/exec/state_map/iteration/job.py", "JobPool", "close_job", "_worker_exception"),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "Counter",
        "offset",
        "_count",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "MapRunRecord",
        "set_stop",
        "status",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "MapRunRecord",
        "set_stop",
        "stop_date",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "MapRunRecord",
        "update",
        "max_concurrency",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "MapRunRecord",
        "update",
        "tolerated_failure_count",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "MapRunRecord",
        "update",
        "tolerated_failure_percentage",
    ),
    ("state/exec/state_parallel/branch_worker.py", "BranchWorker", "start", "_worker_thread"),
    (
        "state/exec/state_parallel/branches_decl.py",
        "BranchWorkerPool",
        "on_terminated",
        "_terminated_with_error",
    ),
    (
        "state/exec/state_map/iteration/itemprocessor/map_run_record.py",
        "Counter",
        "count",
        "_count",
    ),
    (
        "state/exec/state_parallel/branches_decl.py",
        "BranchWorkerPool",
        "on_terminated",
        "_active_workers_num",
    ),
}


def test_canary_moto_asl_components_keep_no_execution_state() -> None:
    import ast
    from pathlib import Path

    import moto.stepfunctions.parser.asl.component as components

    root = Path(components.__file__).parent
    found = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
                if method.name in {"__init__", "__post_init__", "from_state_props"}:
                    continue  # construction, by the preprocessor, before any execution
                for node in ast.walk(method):
                    targets = node.targets if isinstance(node, ast.Assign) else []
                    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                        targets = [node.target]
                    for target in targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            where = path.relative_to(root).as_posix()
                            found.add((where, cls.name, method.name, target.attr))
    assert found == ASL_COMPONENT_ASSIGNMENTS_AFTER_CONSTRUCTION, (
        "moto's ASL components changed what they assign after construction: check that no "
        "execution's state is kept on a component before updating this list"
    )


@pytest.mark.parametrize("point", VIRTUAL_CLOCK_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_still_waits_where_the_virtual_clock_patches(
    point: ModuleNamePatchPoint,
) -> None:
    # moto still binds the name to what we expect and still makes the call that waits
    install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


def test_canary_moto_docker_free_lambda_still_ignores_the_handler(aws: Aws) -> None:
    from moto.awslambda.utils import get_backend

    create_function(aws, "record-event", "record_event")
    backend = get_backend("123456789012", REGION)
    assert type(backend).__name__ == "LambdaSimpleBackend", (
        "moto.awslambda.utils.get_backend no longer returns "
        "moto.awslambda_simple.models.LambdaSimpleBackend for {'lambda': {'use_docker': False}}"
    )
    original = _patch_point("moto.awslambda_simple.models.LambdaSimpleBackend.invoke").original()

    response_headers: dict[str, str] = {}
    payload = original(backend, "record-event", None, '{"n": 1}', {}, response_headers)

    message = (
        "moto.awslambda_simple.models.LambdaSimpleBackend.invoke now runs the handler itself: "
        "the in-process dispatch patch may be redundant or run handlers twice"
    )
    assert payload == b'{"n": 1}', message
    assert recorder.recorded("events") == [], message


def test_canary_moto_still_cannot_deliver_to_lambda_or_step_functions_targets() -> None:
    from moto.events.models import Rule

    original = _patch_point("moto.events.models.Rule.send_to_targets").original()
    for arn in (
        "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
    ):
        rule = Rule(  # type: ignore[abstract]  # as moto's put_rule does
            "canary", "123456789012", REGION, None, json.dumps({"source": ["canary"]}),
            None, None, "default", "ENABLED", targets=[{"Id": "t", "Arn": arn}],
        )  # fmt: skip
        event = {
            "version": "0",
            "id": "canary-event",
            "detail-type": "Canary",
            "source": "canary",
            "account": "123456789012",
            "time": 1_700_000_000,
            "region": REGION,
            "resources": [],
            "detail": {},
            "ingestion-time": 1_700_000_000,
        }
        try:
            original(rule, event)
        except NotImplementedError:
            continue
        pytest.fail(
            f"moto.events.models.Rule.send_to_targets now delivers to {arn.split(':')[2]} "
            "targets itself: retire that part of the EventBridge patch"
        )


def test_canary_moto_still_invokes_sqs_mappings_on_send_unless_detached(aws: Aws) -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.utils import get_backend
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.sqs.models import Queue, sqs_backends

    assert "lambda_event_source_mappings" in inspect.getsource(Queue.add_message), (
        "moto.sqs.models.Queue.add_message no longer invokes event source mappings on send: "
        "re-check moto.awslambda.models.LambdaBackend.create_event_source_mapping's patch"
    )
    assert "create_event_source_mapping" not in vars(LambdaSimpleBackend), (
        "moto.awslambda_simple.models.LambdaSimpleBackend overrides "
        "create_event_source_mapping: the patch on LambdaBackend would be bypassed"
    )
    assert issubclass(LambdaSimpleBackend, LambdaBackend)
    queue_url = aws.sqs.create_queue(QueueName="canary")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    create_function(aws, "record-event", "record_event")
    queue = sqs_backends["123456789012"][REGION].queues["canary"]

    # Through the API (patched): detached, so only the runtime's poller delivers.
    aws.awslambda.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="record-event")
    assert queue.lambda_event_source_mappings == {}

    # Through moto's original: attached to the queue, which is what the patch undoes.
    original = _patch_point(
        "moto.awslambda.models.LambdaBackend.create_event_source_mapping"
    ).original()
    mapping = original(
        get_backend("123456789012", REGION),
        {"EventSourceArn": queue_arn, "FunctionName": "record-event"},
    )
    attached = dict(queue.lambda_event_source_mappings)
    queue.lambda_event_source_mappings.clear()
    assert list(attached.values()) == [mapping], (
        "moto.awslambda.models.LambdaBackend.create_event_source_mapping no longer attaches "
        "SQS mappings to Queue.lambda_event_source_mappings: re-check the detach"
    )


def test_canary_moto_config_and_callback_port(aws: Aws) -> None:
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.utils import TMP_THREADS
    from moto.stepfunctions.responses import get_backend

    assert type(get_backend("123456789012", REGION)).__name__ == "StepFunctionsParserBackend", (
        "moto.stepfunctions.responses.get_backend ignores moto.core.config.default_user_config"
        "['stepfunctions']['execute_state_machine']"
    )
    assert moto_server_port() == os.environ["MOTO_PORT"] == runtime_port(aws), (
        "moto.settings.moto_server_port no longer reads MOTO_PORT"
    )
    assert "moto_server_port()" in inspect.getsource(boto_client.boto_client_for), (
        "moto.stepfunctions.parser.asl.utils.boto_client.boto_client_for no longer calls "
        "back at localhost:$MOTO_PORT"
    )
    assert isinstance(TMP_THREADS, list), "moto.stepfunctions.parser.utils.TMP_THREADS moved"


def test_canary_moto_models_still_have_the_fields_the_runtime_reads(aws: Aws) -> None:
    from moto.awslambda.utils import get_backend

    create_function(aws, "record-event", "record_event", environment={"A": "b"})
    function = get_backend("123456789012", REGION).get_function("record-event")
    for attribute in (
        "function_name",
        "function_arn",
        "version",
        "handler",
        "timeout",
        "memory_size",
        "logs_group_name",
        "environment_vars",
    ):
        assert hasattr(function, attribute), (
            f"moto.awslambda.models.LambdaFunction.{attribute} is gone"
        )
    queue_url = aws.sqs.create_queue(QueueName="fields")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    mapping = aws.awslambda.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName="record-event",
        BatchSize=5,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    moto_mapping = get_backend("123456789012", REGION).get_event_source_mapping(mapping["UUID"])
    assert moto_mapping is not None
    configuration = moto_mapping.get_configuration()
    missing = {
        "UUID",
        "BatchSize",
        "EventSourceArn",
        "FunctionArn",
        "State",
        "FunctionResponseTypes",
        "MaximumBatchingWindowInSeconds",
    } - set(configuration)
    assert not missing, (
        f"moto.awslambda.models.EventSourceMapping.get_configuration lacks {sorted(missing)}"
    )


def _ec2_as_role_in(aws: Aws, account_id: str, region: str) -> Any:
    """An EC2 client of the runtime's moto with STS AssumeRole credentials in `account_id`."""
    url = aws.runtime.endpoint_url
    role_arn = open_account(account_id, endpoint_url=url)  # AssumeRole needs the role to exist
    sts: Any = boto3.client("sts", endpoint_url=url, region_name=REGION)
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName="lanes")["Credentials"]
    return boto3.client(
        "ec2",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
    )


def test_moto_keeps_ec2_per_account_of_assumed_role_credentials_and_per_region(
    aws: Aws,
) -> None:
    # GIVEN EC2 clients of the runtime with roles assumed in two accounts, and two Regions
    lane_a = _ec2_as_role_in(aws, "111122223333", REGION)
    same_account_other_region = _ec2_as_role_in(aws, "111122223333", "eu-west-1")
    other_account = _ec2_as_role_in(aws, "444455556666", REGION)
    hub: Any = boto3.client("ec2", endpoint_url=aws.runtime.endpoint_url, region_name=REGION)

    # WHEN an instance is launched in the first account and Region
    launched = lane_a.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)
    instance_id = launched["Instances"][0]["InstanceId"]

    # THEN only that account and Region see it (moto: no patch or config needed)
    def visible(ec2: Any) -> set[str]:
        reservations = ec2.describe_instances()["Reservations"]
        return {i["InstanceId"] for r in reservations for i in r["Instances"]}

    assert visible(lane_a) == {instance_id}
    assert visible(same_account_other_region) == set()
    assert visible(other_account) == set()
    assert visible(hub) == set()
    assert launched["OwnerId"] == "111122223333"


def test_an_instance_tag_is_found_by_private_ip_as_describe_instances_filters_find_it(
    aws: Aws,
) -> None:
    # GIVEN tagged instances in two accounts and Regions, one of them then terminated
    in_lane = _ec2_as_role_in(aws, "111122223333", "eu-west-1")
    hub: Any = boto3.client("ec2", endpoint_url=aws.runtime.endpoint_url, region_name=REGION)

    def launched(ec2: Any, server: str) -> dict[str, Any]:
        instance: dict[str, Any] = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "server", "Value": server}]}
            ],
        )["Instances"][0]
        return instance

    running = launched(in_lane, "s-lane")
    at_hub = launched(hub, "s-hub")
    untagged = hub.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    gone = launched(hub, "s-gone")
    hub.terminate_instances(InstanceIds=[gone["InstanceId"]])

    # WHEN each address is looked up in moto's state
    def found(instance: dict[str, Any], key: str = "server") -> str | None:
        return aws.runtime.instance_tag_at(instance["PrivateIpAddress"], key)

    # THEN each answer is what DescribeInstances' private-ip and state filters would find
    def described(ec2: Any, instance: dict[str, Any]) -> str | None:
        filters = [
            {"Name": "private-ip-address", "Values": [instance["PrivateIpAddress"]]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
            for match in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in match.get("Tags", [])}
                return tags.get("server")
        return None

    assert found(running) == described(in_lane, running) == "s-lane"
    assert found(at_hub) == described(hub, at_hub) == "s-hub"
    assert found(untagged) is described(hub, untagged) is None
    assert found(gone) is described(hub, gone) is None
    assert found(at_hub, key="other") is None
    assert aws.runtime.instance_tag_at("10.255.255.254", "server") is None


def test_canary_moto_maps_an_assumed_role_key_to_the_roles_account(aws: Aws) -> None:
    """The MGN fleet tells accounts apart with the mapping moto uses for every request."""
    from moto.core.responses import BaseResponse

    role_arn = open_account("444455556666", endpoint_url=aws.runtime.endpoint_url)
    sts: Any = boto3.client("sts", endpoint_url=aws.runtime.endpoint_url, region_name=REGION)
    key = sts.assume_role(RoleArn=role_arn, RoleSessionName="lanes")["Credentials"]["AccessKeyId"]

    assert account_id_for_access_key(key) == "444455556666", (
        "moto.iam.models.get_account_id_from no longer maps STS AssumeRole keys to the role's "
        "account: orchestration/local/mgn/lanes.py routes MGN requests with it"
    )
    assert account_id_for_access_key("testing") == LOCAL_ACCOUNT_ID, (
        "moto.iam.models.get_account_id_from no longer falls back to moto's default account"
    )
    assert "get_account_id_from(self.get_access_key())" in inspect.getsource(
        BaseResponse.get_current_account
    ), "moto.core.responses.BaseResponse.get_current_account no longer maps the access key"


def test_canary_moto_sts_still_assumes_roles_that_do_not_exist_unless_patched(aws: Aws) -> None:
    """moto's own AssumeRole issues credentials for any role ARN (AWS: AccessDenied); the
    patch refuses a missing role while a runtime runs, and a role created in the account (the
    header `x-moto-account-id` acting as its administrator) can be assumed."""
    from moto.sts.models import sts_backends

    point = _patch_point("moto.sts.models.STSBackend.assume_role")
    missing = "arn:aws:iam::999988887777:role/wavepilot-local-target"
    backend = sts_backends[LOCAL_ACCOUNT_ID]["aws"]
    issued = point.original()(backend, REGION, "canary", missing, None, 900, None)
    assert issued.role_arn == missing, (
        "moto.sts.models.STSBackend.assume_role now refuses missing roles: retire the patch"
    )
    sts: Any = boto3.client("sts", endpoint_url=aws.runtime.endpoint_url, region_name=REGION)
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=missing, RoleSessionName="canary")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert missing in refused.value.response["Error"]["Message"]
    created = open_account("999988887777", endpoint_url=aws.runtime.endpoint_url)
    assert created.startswith("arn:aws:iam::999988887777:role/")
    assert sts.assume_role(RoleArn=created, RoleSessionName="canary")["Credentials"]


def test_canary_moto_server_entry_still_has_the_shape_the_fast_stop_copies() -> None:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    source = inspect.getsource(ThreadedMotoServer._server_entry)
    for fragment in (
        "DomainDispatcherApplication(create_backend_app)",
        "make_server(",
        "request_handler=MotoRequestHandler",
        "self._server_ready_event.set()",
        "self._server.serve_forever()",
    ):
        assert fragment in source, (
            "moto.moto_server.threaded_moto_server.ThreadedMotoServer._server_entry changed "
            f"(no {fragment!r}): update orchestration/local/runtime/moto_server.py to match"
        )


def test_canary_moto_dispatcher_still_looks_backends_up_by_host() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from orchestration.local.runtime.moto_server import CachingDispatcherApplication

    source = inspect.getsource(DomainDispatcherApplication.get_application)
    assert "self.get_backend_for_host(host)" in source, (
        "moto's DomainDispatcherApplication.get_application no longer calls "
        "get_backend_for_host: update CachingDispatcherApplication to match"
    )
    never_called: Any = None  # the lookup by host builds no app
    dispatcher = CachingDispatcherApplication(never_called)
    reference = DomainDispatcherApplication(never_called)
    for host in ("dynamodb", "lambda.eu-west-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"):
        assert dispatcher.get_backend_for_host(host) == reference.get_backend_for_host(host)
        assert dispatcher.get_backend_for_host(host) == reference.get_backend_for_host(host)


@pytest.mark.parametrize("point", SHARED_CLIENT_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_interpreter_still_builds_its_lambda_client_per_task(
    point: ModuleNamePatchPoint,
) -> None:
    install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


@pytest.mark.parametrize("point", JSONPATH_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_still_parses_jsonpaths_where_they_are_kept(
    point: ModuleNamePatchPoint,
) -> None:
    install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


@pytest.mark.parametrize("point", LOADER_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_botocore_sessions_still_create_their_loader_through_the_module_name(
    point: ModuleNamePatchPoint,
) -> None:
    install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


@pytest.mark.parametrize("point", RESPONSE_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_still_finds_a_requests_action_among_its_classs_function_names(
    point: ModuleNamePatchPoint,
) -> None:
    install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler

    # The same names as moto lists, each class listed once.
    names = getattr(responses, "method_names_from_class")  # noqa: B009 - not re-exported
    listed = names(DynamoHandler)
    assert listed == frozenset(point.expected(DynamoHandler))
    assert names(DynamoHandler) is listed


def test_every_boto3_session_shares_one_loader_and_its_clients_still_work() -> None:
    install_moto_patches()
    import boto3

    first, second = boto3.session.Session(), boto3.session.Session()
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    # a model loaded once serves both sessions' clients, each with its own Region
    east = first.client(
        "sqs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    west = second.client(
        "sqs", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    assert east.meta.region_name == "us-east-1"
    assert west.meta.region_name == "eu-west-1"
    assert east.meta.service_model is not None


def test_a_jsonpath_is_parsed_once_and_finds_in_each_document_on_its_own() -> None:
    install_moto_patches()
    import jsonpath_ng.ext
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    parse = jsonpath_ng.ext.__dict__["parse"]  # what moto's EventBridge imports at each call
    assert parse("$.detail.routing") is parse("$.detail.routing")
    assert extract_json("$.a.b", {"a": {"b": 1}}) == 1
    assert extract_json("$.a.b", {"a": {"b": 2}}) == 2
    assert extract_json("$.items[*].id", {"items": [{"id": "x"}, {"id": "y"}]}) == ["x", "y"]


def _patch_point(symbol: str) -> MotoPatchPoint:
    return next(point for point in MOTO_PATCH_POINTS if point.symbol == symbol)


def test_a_functions_reserved_concurrency_holds_its_sqs_pollers_to_that_many_batches() -> None:
    from orchestration.local.runtime.sqs_event_sources import ConcurrencySlots

    # GIVEN a function with reserved concurrency 1, read from two queues (two pollers)
    slots = ConcurrencySlots()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:notifier"
    running, most = 0, 0
    lock = threading.Lock()

    def batch() -> None:
        nonlocal running, most
        slots.acquire(arn, 1)
        try:
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.02)
            with lock:
                running -= 1
        finally:
            slots.release(arn)

    # WHEN both pollers have batches at once, several times
    threads = [threading.Thread(target=batch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    # THEN one batch ran at a time, and a held slot is not free for the other poller
    assert most == 1
    slots.acquire(arn, 1)
    assert not slots.free(arn, 1)
    assert slots.free(arn, None)  # unreserved: never held back
    slots.release(arn)
    assert slots.free(arn, 1)


def test_a_reserved_slot_goes_to_the_poller_that_waited_for_it_first() -> None:
    from orchestration.local.runtime.sqs_event_sources import ConcurrencySlots

    # GIVEN the notifier's one slot held by the status queue's poller, and the priority
    # queue's poller waiting with a batch
    slots = ConcurrencySlots()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:notifier"
    status, priority = object(), object()
    slots.acquire(arn, 1, status)
    slots.want(arn, priority)

    # WHEN the status poller ends its batch and finds more on its queue
    slots.release(arn)
    slots.want(arn, status)

    # THEN the slot is the priority poller's turn, not the status poller's again
    assert not slots.free(arn, 1, status)
    assert slots.free(arn, 1, priority)
    slots.acquire(arn, 1, priority)
    slots.release(arn)
    assert slots.free(arn, 1, status)
    # AND a poller whose batch went away does not hold up the others' turn
    slots.withdraw(arn, status)
    assert slots.free(arn, 1, priority)


class _QueueOf:
    """An SQS client's ReceiveMessage over ``waiting`` messages, counting the receives."""

    def __init__(self, waiting: int) -> None:
        self.waiting = [{"MessageId": f"m-{n}", "Body": "{}"} for n in range(waiting)]
        self.receives = 0

    def receive_message(self, **arguments: Any) -> dict[str, Any]:
        self.receives += 1
        taken = self.waiting[: arguments["MaxNumberOfMessages"]]
        del self.waiting[: len(taken)]
        return {"Messages": taken} if taken else {}


@pytest.mark.parametrize(
    ("waiting", "batch_size", "window", "arriving", "received", "receives"),
    [
        (3, 10, 0.0, 0, 3, 1),  # not full, no window: what one receive returned (not topped up)
        (25, 10, 0.0, 0, 10, 1),
        (0, 10, 0.0, 0, 0, 1),
        (0, 10, 0.3, 0, 0, 1),  # nothing received: no window opens
        (25, 20, 0.3, 0, 20, 2),  # a window: receives until the batch is full
        (3, 20, 0.3, 0, 3, 1),  # or the window ends, nothing more having come: no receive
        # more arrive within the window: the batch fills with one receive more (not one per
        # look at the queue), or takes what came when the window ends
        (3, 10, 0.3, 7, 10, 2),
        (3, 20, 0.3, 4, 7, 2),
    ],
)
def test_a_poller_receives_a_batch_as_lambdas_pollers_do(  # noqa: PLR0917 - one case per row
    waiting: int, batch_size: int, window: float, arriving: int, received: int, receives: int
) -> None:
    from orchestration.local.runtime.moto_backends import EventSourceMappingRef
    from orchestration.local.runtime.sqs_event_sources import MappingSettings, SqsEventSourcePoller

    poller = SqsEventSourcePoller(
        EventSourceMappingRef(LOCAL_ACCOUNT_ID, REGION, "uuid"),
        endpoint_url="http://127.0.0.1:1",
        dispatcher=Any,  # type: ignore[arg-type]  # not reached: receives only
        counters=Any,  # type: ignore[arg-type]
        idle_poll_seconds=0.02,
    )
    settings = MappingSettings("arn:queue", "arn:function", batch_size, window, True, True)
    queue = _QueueOf(waiting)
    looks = 0

    def visible(queue_arn: str, at_most: int) -> int:
        nonlocal looks
        looks += 1
        if looks == 3:  # a while into the window
            queue.waiting += [{"MessageId": f"late-{n}", "Body": "{}"} for n in range(arriving)]
        return min(len(queue.waiting), at_most)

    poller._visible_count = visible

    batch = poller._receive_batch(queue, "https://queue", settings)  # type: ignore[arg-type]

    assert (len(batch), queue.receives) == (received, receives)
