"""The one place the runtime reads or drives moto's in-process backends (not its patches).

moto keeps every service's state in process-global ``BackendDict``s keyed by account and
Region. Reading them directly (rather than through the HTTP API) is what lets the runtime
look a function up from inside a moto request, start an execution for an EventBridge target
and count state transitions; the attribute names used here are checked by the canary tests.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from moto.awslambda.models import lambda_backends
from moto.awslambda.utils import get_backend as lambda_backend_for
from moto.awslambda_simple.models import lambda_simple_backends
from moto.core.utils import unix_time_millis
from moto.ec2.models import ec2_backends
from moto.iam.models import get_account_id_from
from moto.moto_api._internal.models import moto_api_backend
from moto.sqs.models import sqs_backends
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from moto.stepfunctions.parser.utils import TMP_THREADS
from moto.stepfunctions.responses import get_backend as stepfunctions_backend_for

from orchestration.local.runtime.config import NO_STOCK_AMIS, environment_overlay
from orchestration.local.runtime.lambda_dispatch import FunctionConfiguration

LOGGER = logging.getLogger(__name__)


class ArnParts(NamedTuple):
    """The fields of an ARN the runtime routes on."""

    service: str
    region: str
    account_id: str
    resource: str

    @classmethod
    def parse(cls, arn: str) -> ArnParts:
        parts = arn.split(":", 5)
        if len(parts) < 6 or parts[0] != "arn":
            raise ValueError(f"not an ARN: {arn!r}")
        return cls(service=parts[2], region=parts[3], account_id=parts[4], resource=parts[5])


class EventSourceMappingRef(NamedTuple):
    """Where to find one event source mapping again (moto keeps them per account and Region)."""

    account_id: str
    region: str
    uuid: str


def account_id_for_access_key(access_key_id: str) -> str:
    """The account moto serves a request signed with `access_key_id` from.

    moto's own mapping (`moto.iam.models.get_account_id_from`, what
    `BaseResponse.get_current_account` uses for every request): a key issued by moto's IAM
    or STS belongs to its account (an `AssumeRole` key to the role's account); any other key,
    like the runtime's placeholder `testing`, to moto's default account, 123456789012.
    """
    return get_account_id_from(access_key_id)


def role_arn_for_access_key(access_key_id: str) -> str | None:
    """The role an STS `AssumeRole` key was issued for (moto's STS keeps them per account),
    or None for any other key: whose permissions a call made with it is evaluated against."""
    from moto.sts.models import sts_backends

    for backend in _each_backend(sts_backends):
        found = backend.get_assumed_role_from_access_key(access_key_id)
        if found is not None:
            return str(found.role_arn)
    return None


def _each_backend(backend_dict: Any) -> Iterator[Any]:
    """Every backend moto has created so far, without creating new ones."""
    for account_backends in list(dict.values(backend_dict)):
        yield from list(dict.values(account_backends))


def function_configuration(moto_function: Any) -> FunctionConfiguration:
    """Copy what an invocation needs out of ``moto.awslambda.models.LambdaFunction``."""
    return FunctionConfiguration(
        function_name=str(moto_function.function_name),
        function_arn=str(moto_function.function_arn),
        version=str(moto_function.version),
        handler=str(moto_function.handler or ""),
        timeout_seconds=int(moto_function.timeout),
        memory_mb=int(moto_function.memory_size),
        log_group_name=str(moto_function.logs_group_name),
        environment={str(k): str(v) for k, v in (moto_function.environment_vars or {}).items()},
        reserved_concurrency=(
            int(moto_function.reserved_concurrency)
            if moto_function.reserved_concurrency is not None
            else None
        ),
    )


def find_function(
    name_or_arn: str, *, account_id: str, region: str, qualifier: str | None = None
) -> FunctionConfiguration:
    """Look a function up as the Invoke API does (name, partial or full ARN, qualifier)."""
    backend = lambda_backend_for(account_id, region)
    return function_configuration(backend.get_function(name_or_arn, qualifier))


def find_function_by_arn(function_arn: str) -> FunctionConfiguration:
    arn = ArnParts.parse(function_arn)
    return find_function(function_arn, account_id=arn.account_id, region=arn.region)


def all_functions() -> list[FunctionConfiguration]:
    """The latest version of every function in every account and Region."""
    functions: list[FunctionConfiguration] = []
    for backend_dict in (lambda_simple_backends, lambda_backends):
        for backend in _each_backend(backend_dict):
            functions.extend(function_configuration(fn) for fn in backend.list_functions())
    return functions


def start_state_machine_execution(
    state_machine_arn: str, *, name: str, execution_input: str
) -> str:
    """Start an execution through the Step Functions backend; returns the execution ARN."""
    arn = ArnParts.parse(state_machine_arn)
    backend = stepfunctions_backend_for(arn.account_id, arn.region)
    execution = backend.start_execution(
        state_machine_arn, name=name, execution_input=execution_input
    )
    return str(execution.execution_arn)


def event_source_mapping_configuration(ref: EventSourceMappingRef) -> dict[str, Any] | None:
    """The mapping as ``GetEventSourceMapping`` shows it, or ``None`` once it is deleted."""
    mapping = lambda_backend_for(ref.account_id, ref.region).get_event_source_mapping(ref.uuid)
    if mapping is None:
        return None
    configuration: dict[str, Any] = mapping.get_configuration()
    return configuration


def sqs_event_source_mappings() -> list[EventSourceMappingRef]:
    """Every mapping whose source is an SQS queue, in every account and Region."""
    refs = []
    for backend_dict in (lambda_simple_backends, lambda_backends):
        for backend in _each_backend(backend_dict):
            for mapping in backend.list_event_source_mappings(None, None):
                if ArnParts.parse(mapping.event_source_arn).service == "sqs":
                    refs.append(
                        EventSourceMappingRef(backend.account_id, backend.region_name, mapping.uuid)
                    )
    return refs


_LISTENING_STATES = frozenset({"pending", "running"})


def instance_tag_at(private_ip: str, tag_key: str) -> str | None:
    """The tag ``tag_key`` of the pending or running EC2 instance whose private IP is
    ``private_ip``, in any account and Region (None: no such instance, or it has no such tag).

    What ``DescribeInstances`` with ``private-ip-address`` and ``instance-state-name`` filters
    answers, read in-process: the VM stand-ins look up every health-checked address, and moto
    evaluates each filter on every instance and serializes the answer (15 ms a lookup, a
    twelfth of a 200-VM rehearsal's CPU, for a call the harness makes and AWS never sees)."""
    for backend in _each_backend(ec2_backends):
        for reservation in list(backend.reservations.values()):
            for instance in list(reservation.instances):
                if instance.private_ip == private_ip and instance.state in _LISTENING_STATES:
                    value = backend.tags.get(instance.id, {}).get(tag_key)
                    return None if value is None else str(value)
    return None


def sqs_now_millis() -> float:
    """SQS's now in epoch milliseconds: the virtual clock's while one runs, else real time.

    Visibility timeouts and delays are SQS's own waits: on the simulated clock a failed
    batch's messages must come back after the queue's visibility timeout of simulated time
    (as on AWS), not of real time, or a FIFO group stays blocked for simulated days (the fault
    campaign found this: a Slack 429 storm stopped every later thread update)."""
    from orchestration.local.virtual_clock import active_virtual_clock

    clock = active_virtual_clock()
    if clock is None or clock.closed:
        return unix_time_millis()
    return clock.now().timestamp() * 1000.0


def has_visible_message(queue_arn: str) -> bool:
    """True if a receive on the queue ``queue_arn`` would return a message now (False if it is
    gone): the virtual clock's busy probe for a queue a poller has not drained yet.

    Called every few milliseconds while it says True, so it reads each message's two times
    against one ``now`` (moto's ``Queue.messages`` builds a list and reads the clock twice per
    message) and stops at the first visible message of a standard queue. A FIFO queue needs one
    pass: a group with a message in flight returns nothing until that one is settled."""
    arn = ArnParts.parse(queue_arn)
    try:
        queue = sqs_backends[arn.account_id][arn.region].queues.get(arn.resource)
    except KeyError:
        return False
    if queue is None:
        return False
    now = sqs_now_millis()
    messages = list(queue._messages)  # a snapshot: senders and receivers change it meanwhile
    if not queue.fifo_queue:
        return any(now > m.visible_at and now >= m.delayed_until for m in messages)
    ready: set[str | None] = set()
    held: set[str | None] = set()
    for message in messages:
        if now <= message.visible_at:
            held.add(message.group_id)
        elif now >= message.delayed_until:
            ready.add(message.group_id)
    return not ready <= held


def visible_message_count(queue_arn: str, at_most: int) -> int:
    """How many messages a receive on the standard queue ``queue_arn`` could return now,
    counting up to ``at_most`` (0 if it is gone; for a FIFO queue 1 or 0, as
    ``has_visible_message``): how a poller filling a batch within its batching window sees
    more arrive without receiving (a receive is a call, and counts towards maxReceiveCount)."""
    arn = ArnParts.parse(queue_arn)
    try:
        queue = sqs_backends[arn.account_id][arn.region].queues.get(arn.resource)
    except KeyError:
        return 0
    if queue is None:
        return 0
    if queue.fifo_queue:
        return int(has_visible_message(queue_arn))
    now = sqs_now_millis()
    visible = 0
    for message in list(queue._messages):
        if now > message.visible_at and now >= message.delayed_until:
            visible += 1
            if visible >= at_most:
                break
    return visible


def detach_event_source_mapping_from_queue(moto_mapping: Any) -> bool:
    """Stop moto invoking the mapping's function synchronously inside ``SendMessage``.

    ``moto.sqs.models.Queue.add_message`` invokes every mapping in the queue's
    ``lambda_event_source_mappings`` with a one-message event that always says
    ``ApproximateReceiveCount: 1`` and ignores partial batch responses. The runtime's poller
    is the only delivery path instead, so the mapping is removed from that dictionary (it stays
    in the Lambda backend, where the API and the poller find it).
    """
    arn = ArnParts.parse(moto_mapping.event_source_arn)
    if arn.service != "sqs":
        return False
    sqs_backend = sqs_backends[arn.account_id][arn.region]
    function_arn: str = moto_mapping.function_arn
    for queue in list(sqs_backend.queues.values()):
        attached = queue.lambda_event_source_mappings
        if queue.queue_arn == moto_mapping.event_source_arn and (
            attached.get(function_arn) is moto_mapping
        ):
            del attached[function_arn]
            return True
    return False


def interpreter_executions() -> list[Any]:
    """Every execution the ASL interpreter has started (``moto...parser.backend.Execution``)."""
    executions: list[Any] = []
    for backend in _each_backend(stepfunctions_parser_backends):
        for state_machine in list(backend.state_machines):
            executions.extend(list(state_machine.executions))
    return executions


def _history_event_types(execution: Any) -> list[str]:
    environment = getattr(execution.exec_worker, "env", None)
    if environment is None:  # the worker thread has not built its environment yet
        return []
    return [
        str(getattr(event["type"], "value", event["type"]))
        for event in list(environment.event_manager.get_event_history())
    ]


def state_transitions_by_state_machine() -> dict[str, int]:
    """``*StateEntered`` history events per state machine name, across all executions."""
    transitions: dict[str, int] = {}
    for execution in interpreter_executions():
        entered = sum(1 for t in _history_event_types(execution) if t.endswith("StateEntered"))
        name = str(execution.state_machine.name)
        transitions[name] = transitions.get(name, 0) + entered
    return transitions


def _interrupt_task_token_waits(execution: Any) -> None:
    """Wake ``.waitForTaskToken`` waits, which moto's StopExecution does not interrupt.

    A task token wait without ``TimeoutSeconds`` blocks on its callback endpoint for ~3 years
    (``TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS``) whatever the execution's state; interrupting
    the endpoint lets the stopped execution's thread see it is stopped and end.
    """
    endpoints = getattr(execution.exec_worker.env.callback_pool_manager, "_pool", {})
    for endpoint in list(endpoints.values()):
        endpoint.interrupt_all()


def stop_running_executions(timeout_seconds: float) -> int:
    """StopExecution for everything still running, then wait for the interpreter's threads.

    Returns how many interpreter threads were still alive at the deadline (0 is clean). The
    interpreter appends every thread it starts to ``moto.stepfunctions.parser.utils.TMP_THREADS``
    and never removes them; finished ones are pruned here so a long-lived process does not
    keep them all.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        running = [e for e in interpreter_executions() if e.status == "RUNNING"]
        for execution in running:
            # AttributeError: its worker has not built its environment yet; next round.
            with contextlib.suppress(AttributeError):
                execution.stop(
                    stop_date=datetime.datetime.now(tz=datetime.UTC), error=None, cause=None
                )
                _interrupt_task_token_waits(execution)
        if not running or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for thread in list(TMP_THREADS):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    TMP_THREADS[:] = [thread for thread in TMP_THREADS if thread.is_alive()]
    if TMP_THREADS:
        LOGGER.warning("%d Step Functions interpreter threads still running", len(TMP_THREADS))
    return len(TMP_THREADS)


def reset_moto_state() -> None:
    """Forget every resource in every backend, as ``POST /moto-api/reset`` does.

    Without moto's stock AMIs (``NO_STOCK_AMIS``): a reset re-creates every Region's EC2
    backend, and each loaded moto's list of 1,300 public AMIs from JSON (about 0.2 s per
    Region, the largest cost of starting and stopping a runtime). Nothing here launches from a
    public AMI: the MGN emulator registers the images it launches."""
    with environment_overlay(NO_STOCK_AMIS):
        moto_api_backend.reset()
