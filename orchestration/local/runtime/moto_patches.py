"""The moto methods the runtime replaces, and the hooks they delegate to while it runs.

Patches are installed once per process and stay installed (moto's classes are process-wide);
each replacement calls the original moto method unless a runtime has activated its hooks, so
a process that also uses plain ``mock_aws`` elsewhere sees unchanged moto behaviour there.

=================================================================  =============================
moto symbol                                                        why it is patched
=================================================================  =============================
``moto.awslambda_simple.models.LambdaSimpleBackend.invoke``        run the real Python handler
``moto.events.models.Rule.send_to_targets``                        Lambda and Step Functions
                                                                   targets (moto raises
                                                                   ``NotImplementedError``)
``moto.awslambda.models.LambdaBackend.create_event_source_mapping``  one SQS delivery path: the
                                                                   runtime's poller, not moto's
                                                                   invoke-on-send
``moto.sts.models.STSBackend.assume_role``                         refuse roles that do not exist
                                                                   (AccessDenied, as AWS), so a
                                                                   target account without the
                                                                   Wavepilot role is a clear
                                                                   failure locally too
``moto.dynamodb.models.DynamoDBBackend.transact_write_items``      moto deep-copies the table for
                                                                   every item and puts the copy
                                                                   back on a failure: O(table
                                                                   size), 500s ("dictionary
                                                                   changed size") and lost
                                                                   writes under concurrent
                                                                   writes. Here: every condition,
                                                                   then the writes, under one
                                                                   lock; a failed write restores
                                                                   only the items it touched
``moto.dynamodb.responses.DynamoHandler.call_action``             moto's item writes interleave
                                                                   under threads (a condition
                                                                   passes twice; 500s). Here:
                                                                   one DynamoDB request at a time
``moto.sqs.models.Queue.attributes`` (a property)                  it builds every attribute,
                                                                   three of them scans of all the
                                                                   queue's messages, and moto
                                                                   reads it for one value per
                                                                   SendMessage and per message
                                                                   received (retention period):
                                                                   quadratic on a backed-up queue,
                                                                   a quarter of all CPU in a
                                                                   1,000-VM rehearsal. Here: the
                                                                   same keys, each value computed
                                                                   when read
``moto.stepfunctions.parser.asl.parse.asl_parser``                 ANTLR parses the definition
``.AmazonStateLanguageParser.parse`` (a static method)             and builds its components for
                                                                   every execution: a quarter of
                                                                   all CPU in a 1,000-VM
                                                                   rehearsal. Here: once per
                                                                   definition; the components
                                                                   keep no execution's state
                                                                   (checked on moto's sources)
``moto.sqs.models.Queue.messages`` (a property)                    the visible messages: the
                                                                   clock read twice per message.
                                                                   Here: once per listing
``moto.dynamodb.models.table.Table.query`` and ``.all_items``      a Query sorts every item of the
                                                                   table to keep its partition's
                                                                   (an index Query: those of its
                                                                   hash key): O(table) per Query.
                                                                   Here: those items
``moto.dynamodb.models.table.copy`` (the module's name)            a Query deep-copies its results
                                                                   under the DynamoDB lock. Here,
                                                                   in a request served under it
                                                                   (it only reads them): a list
                                                                   copy
``moto.ec2.models.instances.InstanceBackend.all_reservations``     every DescribeInstances and
and the lookups by ID (``get_instance``,                           lookup by instance ID copies
``get_multi_instances_by_id``,                                     every reservation. Here: those
``get_reservations_by_instance_ids``)                              it keeps (IDs looked up, an
                                                                   instance-id filter alone)
``moto.ec2.models.core.TaggedEC2Resource.get_tags``                each instance described matches
                                                                   a pattern against every EC2
                                                                   tag. Here: its own tags
``moto.dynamodb.models.dynamo_type.Item.size``                     a Query sizes each item twice
                                                                   (its 1 MB page). Here, under
                                                                   the lock: once
``moto.core.responses.BaseResponse._enrich_response``              every body searched with a
                                                                   look-behind regex for an XML
                                                                   ``<RequestId>``. Here: a body
                                                                   without one is left as it is
``moto.core.base_backend.BackendDict``                             every backend lookup locks and
``._create_account_specific_backend``                              compares the dict with every
                                                                   registered one. Here: nothing
                                                                   when already there
``moto.dynamodb.responses.dynamo_to_dict`` (the module's name)     a generic walk of every answer.
                                                                   Here: the same containers with
                                                                   fewer checks (binaries and the
                                                                   rest: moto's)
``moto.dynamodb.comparisons.re`` (the module's name)               the condition lexer compiles
                                                                   six patterns per token. Here:
                                                                   compiled once
``moto.dynamodb.models.dynamo_type.DynamoType.size``               a map's size wraps each value
                                                                   again (rebuilding nested lists
                                                                   and maps), for every key set
                                                                   on an item. Here: the same sum
                                                                   from the values as they are
``botocore.useragent.sanitize_user_agent_string_component``         each User-Agent component of
                                                                   every request, char by char.
                                                                   Here: once per string
``moto.dynamodb.models.DynamoDBBackend.update_item`` and the       every UpdateItem deep-copies
module's ``copy``                                                  the item first, for the
                                                                   table's stream only. Here,
                                                                   for a table without one: no
                                                                   copy
``copy`` in four modules of ``moto.stepfunctions.parser.asl``      every state's input, path
(``eval.states``, ``string_expression``, ``result_path``,          value, result and task
``state_task_service``)                                            parameters deep-copied with
                                                                   ``copy.deepcopy``. Here: JSON
                                                                   rebuilt directly
                                                                   (``json_tree_copy``)
=================================================================  =============================
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from botocore.loaders import Loader
from botocore.loaders import create_loader as botocore_create_loader
from botocore.useragent import sanitize_user_agent_string_component
from jsonpath_ng.ext.parser import parse as jsonpath_ng_ext_parse
from jsonpath_ng.parser import parse as jsonpath_ng_parse
from moto.core.base_backend import BackendDict
from moto.core.utils import method_names_from_class as moto_method_names_from_class
from moto.core.utils import unix_time_millis
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.models.utilities import dynamo_to_dict as moto_dynamo_to_dict
from moto.dynamodb.responses import DynamoResult

from orchestration.local.runtime.errors import MotoPatchPointMissingError, RuntimeAlreadyActiveError
from orchestration.local.runtime.eventbridge_targets import EventTargetDelivery
from orchestration.local.runtime.fault_points import active_runtime_faults
from orchestration.local.runtime.lambda_dispatch import LambdaDispatcher
from orchestration.local.runtime.moto_backends import (
    EventSourceMappingRef,
    detach_event_source_mapping_from_queue,
    function_configuration,
    sqs_now_millis,
)
from orchestration.local.virtual_clock import (
    ClockEvent,
    ClockThread,
    virtual_threading_module,
    virtual_time_module,
)

# Set on every replacement: marks it as ours (installs are idempotent) and keeps the original.
ORIGINAL_ATTRIBUTE = "__wavepilot_moto_original__"


@dataclass(frozen=True, slots=True)
class RuntimeHooks:
    """What the patched moto methods delegate to while a runtime is running."""

    dispatcher: LambdaDispatcher
    event_delivery: EventTargetDelivery
    on_sqs_event_source_mapping: Callable[[EventSourceMappingRef], None]


_hooks_lock = threading.Lock()
_active_hooks: RuntimeHooks | None = None
_install_lock = threading.Lock()


def activate_hooks(hooks: RuntimeHooks) -> None:
    global _active_hooks  # noqa: PLW0603 - one runtime per process, by design
    with _hooks_lock:
        if _active_hooks is not None:
            raise RuntimeAlreadyActiveError(
                "another local runtime's hooks are active in this process"
            )
        _active_hooks = hooks


def deactivate_hooks(hooks: RuntimeHooks) -> None:
    global _active_hooks  # noqa: PLW0603 - one runtime per process, by design
    with _hooks_lock:
        if _active_hooks is hooks:
            _active_hooks = None


def active_hooks() -> RuntimeHooks | None:
    return _active_hooks


def _header(headers: Any, name: str) -> str | None:
    """A request header, case-insensitively (moto passes werkzeug headers or a plain dict)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return None if value is None else str(value)


def _replace_lambda_invoke(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def invoke(  # noqa: PLR0917 - moto's positional signature
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> Any:
        hooks = active_hooks()
        if hooks is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        function = function_configuration(self.get_function(function_name, qualifier))
        response_headers["x-amz-executed-version"] = function.version
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "Event":
            # moto answers 202 for any non-None payload; AWS's body is empty.
            hooks.dispatcher.invoke_async(function, body)
            return b""
        if invocation_type == "DryRun":
            return b""
        outcome = hooks.dispatcher.invoke(function, body, qualifier=qualifier)
        if outcome.function_error is not None:
            response_headers["x-amz-function-error"] = outcome.function_error
        return outcome.payload

    return invoke


def _replace_send_to_targets(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        hooks = active_hooks()
        if hooks is None:
            original(self, original_event, transform_input)
            return
        # moto's put_events does not look at the rule's state; AWS skips disabled rules.
        if self.state == "DISABLED" or not self.event_pattern.matches_event(original_event):
            return

        def deliver_natively(target: Mapping[str, Any]) -> None:
            # moto's own delivery, for one target of a shallow copy of the rule.
            single_target_rule = copy.copy(self)
            single_target_rule.targets = [dict(target)]
            original(single_target_rule, original_event, transform_input)

        hooks.event_delivery.deliver(
            rule_arn=str(self.arn),
            rule_name=str(self.name),
            targets=list(self.targets),
            moto_event=original_event,
            transform_input=transform_input,
            deliver_natively=deliver_natively,
        )

    return send_to_targets


def _replace_create_event_source_mapping(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        hooks = active_hooks()
        if hooks is not None and detach_event_source_mapping_from_queue(mapping):
            hooks.on_sqs_event_source_mapping(
                EventSourceMappingRef(self.account_id, self.region_name, mapping.uuid)
            )
        return mapping

    return create_event_source_mapping


def _access_denied(role_arn: str) -> Exception:
    # STS's own exception class: moto serializes it in STS's query protocol (AWS's code for
    # it, AccessDenied, is a common error with no shape in STS's model).
    from moto.sts.exceptions import STSClientError

    return STSClientError(
        "AccessDenied",
        f"User: arn:aws:sts::{LOCAL_CALLER_ACCOUNT}:assumed-role/wavepilot-local/caller is not "
        f"authorized to perform: sts:AssumeRole on resource: {role_arn}",
    )


LOCAL_CALLER_ACCOUNT = "123456789012"


def _role_exists(role_arn: str) -> bool:
    from moto.iam.models import iam_backends

    parts = role_arn.split(":", 5)
    if len(parts) < 6:
        return False
    partition, account_id = parts[1], parts[4]
    try:
        iam_backends[account_id][partition].get_role_by_arn(role_arn)
    except Exception:
        return False
    return True


def _replace_assume_role(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def assume_role(  # noqa: PLR0917 - moto's positional signature
        self: Any,
        region_name: str,
        role_session_name: str,
        role_arn: str,
        policy: str,
        duration: int,
        external_id: str,
    ) -> Any:
        # AWS refuses AssumeRole on a role that does not exist (AccessDenied: it does not say
        # which of "missing" and "not trusted" it is). moto issues credentials for any ARN.
        # Only while a runtime runs: plain mock_aws users keep moto's behaviour.
        if active_hooks() is not None and not _role_exists(role_arn):
            raise _access_denied(role_arn)
        return original(
            self, region_name, role_session_name, role_arn, policy, duration, external_id
        )

    return assume_role


# DynamoDB requests serialize (all accounts and Regions: one moto process): moto's item
# writes are not atomic under threads, DynamoDB's are.
_dynamodb_lock = threading.RLock()
# Set while a runtime serves a DynamoDB request under _dynamodb_lock: moto's handler runs whole
# (the backend's answer, dynamo_to_dict's fresh containers, the serializer) before any other
# request can write an item.
_SERIALIZED_DYNAMODB_REQUEST: ContextVar[bool] = ContextVar(
    "wavepilot_serialized_dynamodb_request", default=False
)
_TRANSACTION_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
MAX_TRANSACTION_ITEMS = 100

# moto's per-item cancellation reason: (Code, Message, Item), all None for an item that passed.
_Reason = tuple[str, str, dict[str, Any] | None] | tuple[None, None, None]
_PASSED: _Reason = (None, None, None)


@dataclass(frozen=True, slots=True)
class _TransactionWrite:
    """A Put, Update or Delete whose condition held, and the item it writes."""

    index: int
    operation: str
    request: dict[str, Any]
    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None


def _check_transaction(
    backend: DynamoDBBackend, items: list[dict[str, Any]]
) -> list[_TransactionWrite]:
    """Phase 1, writing nothing: moto's validations and every item's condition.

    moto's exceptions, in moto's order: a validation error ends the request, any other
    failure is the item's cancellation reason; a reason on any item cancels the transaction.
    One difference: moto writes each item before checking the next, so an Update's
    validation error that needs the item (phase 2 here) came before a later item's failed
    condition; here the failed condition answers.
    """
    if len(items) > MAX_TRANSACTION_ITEMS:
        raise TooManyTransactionsException()
    targets: set[tuple[str, str]] = set()
    reasons: list[_Reason] = []
    writes: list[_TransactionWrite] = []
    for index, item in enumerate(items):
        if len(item) > 1:
            raise TransactWriteSingleOpException()
        write: _TransactionWrite | None = None
        try:
            reason, write = _check_item(backend, index, item, targets)
        except MockValidationException:  # MultipleTransactionsException is one
            raise
        except Exception as error:
            reason = (type(error).__name__, str(error), None)
        reasons.append(reason)
        if write is not None:
            writes.append(write)
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    return writes


def _check_item(
    backend: DynamoDBBackend, index: int, item: dict[str, Any], targets: set[tuple[str, str]]
) -> tuple[_Reason, _TransactionWrite | None]:
    """One item: its reason (passed, or its condition failed) and what it writes, if any."""
    operation, request = next(iter(item.items()))
    if operation not in _TRANSACTION_OPERATIONS:
        raise ValueError("Unsupported transaction operation")
    table_name = request["TableName"]
    if operation == "Put":
        put_table = backend.get_table(table_name)
        key = {
            name: request["Item"][name]
            for name in (put_table.hash_key_attr, put_table.range_key_attr)
            if name is not None
        }
    else:
        key = request["Key"]
    target = (str(table_name), str(dict(sorted(key.items()))))
    if target in targets:
        raise MultipleTransactionsException()
    targets.add(target)
    table = backend.get_table(table_name)
    hash_key, range_key = backend.get_keys_value(table, key)
    current = table.get_item(hash_key, range_key)
    condition = request.get("ConditionExpression")
    if condition is not None and not get_filter_expression(
        condition,
        request.get("ExpressionAttributeNames"),
        request.get("ExpressionAttributeValues"),
    ).expr(current):
        old_image = None
        if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
            old_image = current.to_json()["Attributes"]
        return ("ConditionalCheckFailed", str(ConditionalCheckFailed().message), old_image), None
    if operation == "ConditionCheck":
        return _PASSED, None
    return _PASSED, _TransactionWrite(index, operation, request, table, hash_key, range_key)


def _apply_transaction(
    backend: DynamoDBBackend, writes: list[_TransactionWrite], item_count: int
) -> None:
    """Phase 2: moto's own writes (conditions already held); on failure, restore the items
    written and raise as moto does (a validation error as is, anything else as a reason).
    What is restored is the item as it was: a copy of one an Update changes in place; the
    item itself for a Put (moto stores a new item) or a Delete (moto only removes it)."""
    before = [
        (
            write,
            copy.deepcopy(_stored_item(write))
            if write.operation == "Update"
            else _stored_item(write),
        )
        for write in writes
    ]
    reasons: list[_Reason] = [_PASSED] * item_count
    try:
        for write in writes:
            try:
                _write(backend, write)
            except MockValidationException:
                raise
            except Exception as error:  # moto: the item's reason
                reasons[write.index] = (type(error).__name__, str(error), None)
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
    except Exception:
        for write, item in reversed(before):
            _restore_item(write, item)
        raise


def _stored_item(write: _TransactionWrite) -> Item | None:
    return write.table.get_item(write.hash_key, write.range_key)


def _write(backend: DynamoDBBackend, write: _TransactionWrite) -> None:
    request, table_name = write.request, write.request["TableName"]
    if write.operation == "Put":
        backend.put_item(table_name, request["Item"])
    elif write.operation == "Delete":
        backend.delete_item(table_name, request["Key"])
    else:
        # As moto's own call: None when absent (moto's signature says dict).
        names: Any = request.get("ExpressionAttributeNames")
        values: Any = request.get("ExpressionAttributeValues")
        backend.update_item(
            table_name,
            request["Key"],
            update_expression=request["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore_item(write: _TransactionWrite, item: Item | None) -> None:
    """Put the item back as it was (absent: removed). Stream records of the undone writes
    stay (moto's whole-table rollback dropped them too); Wavepilot's tables have no stream."""
    items: Any = write.table.items
    if write.range_key is not None:
        items = items[write.hash_key]
    key = write.range_key if write.range_key is not None else write.hash_key
    if item is None:
        items.pop(key, None)
    else:
        items[key] = item


def _replace_transact_write_items(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        if active_hooks() is None:
            original(self, transact_items)
            return
        with _dynamodb_lock:
            _apply_transaction(self, _check_transaction(self, transact_items), len(transact_items))

    return transact_write_items


def _replace_dynamodb_call_action(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        if active_hooks() is None:
            return original(self)
        faults = active_runtime_faults()
        if faults is not None:
            refusal = faults.dynamodb_refusal(str(self.body or ""))
            if refusal is not None:
                return refusal
        with _dynamodb_lock:
            token = _SERIALIZED_DYNAMODB_REQUEST.set(True)
            try:
                return original(self)
            finally:
                _SERIALIZED_DYNAMODB_REQUEST.reset(token)

    return call_action


# DynamoDB operations whose results moto builds as plain JSON values (AttributeValue maps,
# counts): answered with ``json.dumps`` when every top-level key is in the output shape.
_PLAIN_JSON_RESULTS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


@functools.cache
def _output_members(operation_model: Any) -> frozenset[str]:
    shape = operation_model.output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def _replace_dynamodb_execute_result(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        operation = context.operation_model
        if (
            active_hooks() is None
            or not isinstance(self, DynamoResult)
            or operation.name not in _PLAIN_JSON_RESULTS
            or not isinstance(result, dict)
            or not result.keys() <= _output_members(operation)
            or any(value is None for value in result.values())
        ):
            return original(self, context)
        try:
            body = json.dumps(result)
        except TypeError:  # bytes (B, BS) or datetimes: the serializer knows their wire form
            return original(self, context)
        headers = {"Content-Type": _dynamodb_content_type(operation)}
        return int(operation.http.get("responseCode", 200)), headers, body

    return execute_result


@functools.cache
def _dynamodb_content_type(operation_model: Any) -> str:
    version = operation_model.service_model.metadata.get("jsonVersion", "1.0")
    return f"application/x-amz-json-{version}"


def _queue_attribute_names(queue: Any) -> dict[str, None]:
    """The names moto's ``Queue.attributes`` has, in its order (a dict: ordered, O(1) ``in``)."""
    names = list(queue.BASE_ATTRIBUTES)
    if queue.fifo_queue:
        names += queue.FIFO_ATTRIBUTES
    if queue.kms_master_key_id:
        names += queue.KMS_ATTRIBUTES
    return dict.fromkeys(names)


@functools.cache
def _queue_attribute_field(name: str) -> str:
    from moto.core.utils import camelcase_to_underscores

    field: str = camelcase_to_underscores(name)
    return field


class _QueueAttributes(Mapping[str, Any]):
    """moto's ``Queue.attributes`` dict, read-only, each value computed when read.

    The same keys in the same order, and the same values: the queue's field for each name,
    ``RedrivePolicy`` as JSON when set, booleans as ``"true"``/``"false"``. Reading one value
    costs that value only; the message counts scan the queue only when asked for.
    """

    __slots__ = ("_names", "_queue")

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._names = _queue_attribute_names(queue)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        value = getattr(self._queue, _queue_attribute_field(name))
        if name == "RedrivePolicy" and value:
            value = json.dumps(value)
        if isinstance(value, bool):
            value = str(value).lower()
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _replace_queue_messages(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def messages(self: Any) -> list[Any]:
        if active_hooks() is None:
            result: list[Any] = original(self)
            return result
        now = sqs_now_millis()  # moto's Message.visible and .delayed read it per message
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    return messages


def _replace_queue_attributes(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def attributes(self: Any) -> Mapping[str, Any]:
        if active_hooks() is None:
            result: Mapping[str, Any] = original(self)
            return result
        return _QueueAttributes(self)

    return attributes


@dataclass(frozen=True, slots=True)
class _TableQuery:
    """What moto's ``Table.query`` reads, while it runs in a runtime.

    ``partition``: a base-table Query's hash key (``all_items()`` gives that partition).
    ``index_keys``: an index Query's hash key conditions, as moto checks them (``all_items()``
    gives the items that meet them), and ``index_key_names`` the index's key attributes.
    ``shallow_results``: the request is serialized under ``_dynamodb_lock``, so the results
    need not be deep-copied (see ``_query_results_copy``).
    """

    table: Any
    partition: Any
    index_keys: tuple[tuple[str, DynamoType], ...]
    index_key_names: tuple[str, ...]
    shallow_results: bool


_TABLE_QUERY: ContextVar[_TableQuery | None] = ContextVar("wavepilot_table_query", default=None)


def _replace_table_query(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if active_hooks() is None:
            return original(self, hash_key, *args, **kwargs)
        arguments = signature.bind(self, hash_key, *args, **kwargs).arguments
        partition = None
        index_keys: tuple[tuple[str, DynamoType], ...] = ()
        index_key_names: tuple[str, ...] = ()
        index_name = arguments.get("index_name")
        if index_name:
            index = {i.name: i for i in self.all_indexes()}.get(index_name)
            if index is not None:  # else moto refuses the Query
                # moto keeps an item if it has each condition's attribute, equal to its
                # value (a dict: the last condition on a name wins, as in moto)
                index_keys = tuple(dict(arguments.get("hash_key_conditions") or ()).items())
                index_key_names = tuple(key["AttributeName"] for key in index.schema)
        elif hash_key is not None and self.range_key_attr:
            partition = hash_key
        shallow_results = _SERIALIZED_DYNAMODB_REQUEST.get()
        if partition is None and not index_keys and not shallow_results:
            return original(self, hash_key, *args, **kwargs)
        token = _TABLE_QUERY.set(
            _TableQuery(self, partition, index_keys, index_key_names, shallow_results)
        )
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            _TABLE_QUERY.reset(token)

    return query


def _has_key_values(item: Item, conditions: tuple[tuple[str, DynamoType], ...]) -> bool:
    """moto's hash key check of an index Query (``item_value != expected_value``: the same
    type and the same cast value); a string compares its value only, as its cast value is."""
    attrs = item.attrs
    for name, expected in conditions:
        found = attrs.get(name)
        if found is None:
            return False
        if expected.type == "S":
            if found.type != "S" or found.value != expected.value:
                return False
        elif found != expected:
            return False
    return True


def _one_type_each(items: list[Item], names: tuple[str, ...]) -> bool:
    """Whether each of these attributes has one type among the items that have it."""
    types: dict[str, str] = {}
    for item in items:
        attrs = item.attrs
        for name in names:
            found = attrs.get(name)
            if found is not None and types.setdefault(name, found.type) != found.type:
                return False
    return True


def _index_query_items(
    table: Any, queried: _TableQuery, original: Callable[[Any], list[Any]]
) -> list[Item]:
    """The items an index Query can keep, without sorting the whole table.

    moto then sorts them itself by the index's keys and the table's keys (``sorted_items``):
    a total order when each index key attribute has one type (DynamoDB refuses an item whose
    index key has another type than the table's definition; the table's keys are unique and
    of one type each), so the order they come in does not change the answer: they come
    unsorted. Otherwise (moto stores such an item), moto's own list, filtered: its sort then
    sees them in the same order as without the patch.
    """
    conditions = queried.index_keys
    kept: list[Item] = []
    for stored in list(table.items.values()):
        if table.range_key_attr:
            kept.extend(item for item in stored.values() if _has_key_values(item, conditions))
        elif _has_key_values(stored, conditions):
            kept.append(stored)
    if _one_type_each(kept, queried.index_key_names):
        return kept
    return [item for item in original(table) if _has_key_values(item, conditions)]


def _replace_table_all_items(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def all_items(self: Any) -> list[Any]:
        queried = _TABLE_QUERY.get()
        if queried is not None and queried.table is self:
            if queried.partition is not None:
                # The query keeps the items of its hash key and sorts them by range key itself.
                partition = self.items.get(queried.partition)
                return list(partition.values()) if partition else []
            if queried.index_keys:
                return _index_query_items(self, queried, original)
        result: list[Any] = original(self)
        return result

    return all_items


def _query_results_copy() -> Any:
    """A stand-in for ``copy`` in moto's table module: ``Table.query``'s deep copy of its
    results (``results = copy.deepcopy(results)``) is a list copy in a serialized request.

    moto copies so that what it returns cannot change under it. After the copy, the Query
    only reads the items (an ALL index projection returns the item, KEYS_ONLY/INCLUDE and a
    ProjectionExpression build new items, a FilterExpression reads attributes), and the
    handler turns them into fresh JSON containers (``dynamo_to_dict``) and serializes them,
    all under ``_dynamodb_lock``: no write can reach the items meanwhile. Anything else is
    ``copy`` itself."""

    class _Copy:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            queried = _TABLE_QUERY.get()
            if (
                queried is not None
                and queried.shallow_results
                and type(x) is list
                and all(type(item) is Item for item in x)
            ):
                return list(x)
            return copy.deepcopy(x, memo)

    return _Copy()


# Whether the UpdateItem moto serves now is of a table without a stream: the item's copy it
# takes first (the stream's old image) is then never read (``_update_item_copy``).
_UPDATING_WITHOUT_STREAM: ContextVar[bool] = ContextVar(
    "wavepilot_updating_without_stream", default=False
)


def _replace_update_item(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        if active_hooks() is None:
            return original(self, table_name, *args, **kwargs)
        # moto's first step too: an unknown table is refused here as there
        without_stream = self.get_table(table_name).stream_shard is None
        token = _UPDATING_WITHOUT_STREAM.set(without_stream)
        try:
            return original(self, table_name, *args, **kwargs)
        finally:
            _UPDATING_WITHOUT_STREAM.reset(token)

    return update_item


def _update_item_copy() -> Any:
    """A stand-in for ``copy`` in moto's DynamoDB backend module: ``update_item`` deep-copies
    the item before updating it (``orig_item = copy.deepcopy(item)``) only to hand the table's
    stream the item's old image; for a table without a stream (checked by the replaced
    ``update_item``) nothing reads that copy, and the item is returned as it is. Anything
    else (a table with a stream, a transaction's copies, no runtime) is ``copy`` itself."""

    class _Copy:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            if memo is None and _UPDATING_WITHOUT_STREAM.get() and (x is None or type(x) is Item):
                return x
            return copy.deepcopy(x, memo)

    return _Copy()


# (backend, instance IDs) while moto looks instances up by ID: all_reservations() copies only
# the reservations that hold one of them.
_WANTED_INSTANCES: ContextVar[tuple[Any, frozenset[str]] | None] = ContextVar(
    "wavepilot_wanted_instances", default=None
)


def _instance_id_set(instance_ids: Any) -> frozenset[str] | None:
    """The IDs as a set, when moto's lookups compare them as strings (a list of strings)."""
    if isinstance(instance_ids, list) and all(isinstance(i, str) for i in instance_ids):
        return frozenset(instance_ids)
    return None


def _only_instance_id_filter(filters: Any) -> frozenset[str] | None:
    """``{"instance-id": [...]}``, moto's DescribeInstances filter by ID (an exact match,
    ``instance.id in values``), as a set; None for any other filter."""
    if isinstance(filters, dict) and len(filters) == 1 and "instance-id" in filters:
        return _instance_id_set(filters["instance-id"])
    return None


def _replace_all_reservations(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.ec2.utils import filter_reservations

    @functools.wraps(original)
    def all_reservations(self: Any, filters: Any = None) -> list[Any]:
        wanted = None
        if active_hooks() is not None:
            looked_up = _WANTED_INSTANCES.get()
            if filters is None and looked_up is not None and looked_up[0] is self:
                wanted = looked_up[1]
            else:
                wanted = _only_instance_id_filter(filters)
        if wanted is None:
            result: list[Any] = original(self, filters)
            return result
        # moto's copies, of the reservations the lookup or the filter keeps (the others are
        # copied and dropped); the caller rebinds a copy's instances, never the original's.
        reservations = [
            copy.copy(reservation)
            for reservation in self.reservations.copy().values()
            if any(instance.id in wanted for instance in reservation.instances)
        ]
        if filters is not None:
            reservations = filter_reservations(reservations, filters)
        return reservations

    return all_reservations


def _replace_instances_by_ids(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def by_ids(self: Any, instance_ids: list[str], filters: Any = None) -> Any:
        wanted = _instance_id_set(instance_ids) if active_hooks() is not None else None
        if wanted is None:
            return original(self, instance_ids, filters)
        token = _WANTED_INSTANCES.set((self, wanted))
        try:
            return original(self, instance_ids, filters)
        finally:
            _WANTED_INSTANCES.reset(token)

    return by_ids


def _replace_get_instance(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_instance(self: Any, instance_id: str) -> Any:
        if active_hooks() is None or not isinstance(instance_id, str):
            return original(self, instance_id)
        token = _WANTED_INSTANCES.set((self, frozenset((instance_id,))))
        try:
            return original(self, instance_id)
        finally:
            _WANTED_INSTANCES.reset(token)

    return get_instance


# What fnmatch (moto's tag filter: simple_aws_filter_to_re) reads as other than itself.
_TAG_FILTER_SPECIALS = frozenset("*?[\\")


def _replace_get_tags(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.ec2.models.tags import TagBackend
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    @functools.wraps(original)
    def get_tags(self: Any) -> list[dict[str, str]]:
        resource_id = self.id
        backend = getattr(self, "ec2_backend", None)
        if (
            active_hooks() is None
            or not resource_id
            or not isinstance(resource_id, str)
            or not _TAG_FILTER_SPECIALS.isdisjoint(resource_id)
            or not isinstance(backend, TagBackend)
            or type(backend).describe_tags is not TagBackend.describe_tags
        ):
            result: list[dict[str, str]] = original(self)
            return result
        # describe_tags(filters={"resource-id": [id]}) matches an ID without wildcards
        # exactly (fnmatch's anchored pattern): that resource's tags, in their order.
        tags = backend.tags.get(resource_id)
        if not tags:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in list(tags.items())
        ]

    return get_tags


# Definition -> moto's program and parse tree of it; a handful of state machines per process.
_ASL_PROGRAMS: dict[str, tuple[Any, Any]] = {}
_ASL_PROGRAMS_KEPT = 32


def _replace_asl_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    """Executions share the program: moto's evaluation components are built once and keep no
    state of an execution (that lives in the execution's ``Environment``; Map and Parallel
    create their workers per run), as a canary test checks on moto's sources."""

    @functools.wraps(original)
    def parse(definition: str) -> tuple[Any, Any]:
        if active_hooks() is None:
            result: tuple[Any, Any] = original(definition)
            return result
        parsed = _ASL_PROGRAMS.get(definition)
        if parsed is None:
            parsed = original(definition)  # a syntax error raises: nothing kept
            if len(_ASL_PROGRAMS) >= _ASL_PROGRAMS_KEPT:
                _ASL_PROGRAMS.clear()
            _ASL_PROGRAMS[definition] = parsed
        return parsed

    return parse


# The last Item.size() a Query served under the DynamoDB lock computed: (the Query, the item,
# its size). moto's Table.query sizes each item twice in a row (the 1 MB page check, then the
# running total); under the lock nothing writes the item in between.
_LAST_ITEM_SIZE: ContextVar[tuple[_TableQuery, Any, int] | None] = ContextVar(
    "wavepilot_last_item_size", default=None
)


def _replace_item_size(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def size(self: Any) -> int:
        queried = _TABLE_QUERY.get()
        if queried is None or not queried.shallow_results:
            computed: int = original(self)
            return computed
        last = _LAST_ITEM_SIZE.get()
        if last is not None and last[0] is queried and last[1] is self:
            return last[2]
        value: int = original(self)
        _LAST_ITEM_SIZE.set((queried, self, value))
        return value

    return size


_SET_TYPES = frozenset({"SS", "NS", "BS"})


def _attribute_size(value: DynamoType, moto_size: Callable[[DynamoType], int]) -> int:
    """``DynamoType.size`` of moto (``moto_size``), the same sum, without a new
    ``DynamoType`` for each map value: moto's map branch wraps every value again, and the wrap
    rebuilds each nested list and map, at every level (a list of maps, as a migration's
    history, costs its size many times over). Sets and anything unexpected: moto's own."""
    kind, inner = value.type, value.value
    if kind == "N":
        return len(str(inner))
    if kind == "L" and type(inner) is list:
        return sum(
            _attribute_size(v, moto_size) if type(v) is DynamoType else v.size() for v in inner
        )
    if kind == "M" and type(inner) is dict:
        return sum(
            bytesize(k) + _attribute_size(v if type(v) is DynamoType else DynamoType(v), moto_size)
            for k, v in inner.items()
        )
    if kind in _SET_TYPES or kind in {"L", "M"}:
        return moto_size(value)
    if isinstance(inner, bool):
        return 1
    return bytesize(inner)


def _replace_attribute_size(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def size(self: Any) -> int:
        if active_hooks() is None:
            computed: int = original(self)
            return computed
        return _attribute_size(self, original)

    return size


_REQUEST_ID_TAG = "<RequestId>"


def _replace_enrich_response(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto rewrites ``<RequestId>...</RequestId>`` in every answer's body with a regular
    expression (a look-behind tried at every character: a large JSON answer, a DynamoDB Query's,
    is scanned in full). A text without ``<RequestId>`` has nothing to rewrite: the headers are
    moto's own (the original, given an empty body) and the body is returned as it is."""

    @functools.wraps(original)
    def enrich_response(headers: Any, body: Any) -> tuple[Any, Any]:
        if active_hooks() is None or type(body) is not str or _REQUEST_ID_TAG in body:
            result: tuple[Any, Any] = original(headers, body)
            return result
        enriched, _ = original(headers, "")
        return enriched, body

    return enrich_response


def _replace_create_account_specific_backend(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ``BackendDict[account]`` takes the backends' lock, lists the dict's keys and
    compares the dict with every registered one (``BackendDict.__eq__``) on every lookup, to
    create an account's backend once. When the account is there and the dict is registered
    (by identity) there is nothing to create or register."""

    @functools.wraps(original)
    def create_account_specific_backend(self: Any, account_id: Any) -> None:
        if (
            active_hooks() is not None
            and type(account_id) is str
            and dict.__contains__(self, account_id)
            and any(registered is self for registered in BackendDict._instances)  # type: ignore[misc]
        ):
            return
        original(self, account_id)

    return create_account_specific_backend


@dataclass(frozen=True, slots=True)
class MotoPatchPoint:
    """A moto method the runtime replaces, with the signature the replacement was written for.

    A read-only property is patched the same way: the replacement wraps its getter, and
    ``parameters`` is the getter's (``("self",)``). ``uses`` lists code the replacement relies
    on moto's method still having (each checked in its source), so an upgrade that changes
    what the replacement reproduces or skips fails the canary instead of answering otherwise.
    """

    symbol: str
    parameters: tuple[str, ...]
    why: str
    replacement: Callable[[Callable[..., Any]], Callable[..., Any]]
    uses: tuple[str, ...] = ()

    @property
    def owner(self) -> type:
        module_name, class_name, _ = self.symbol.rsplit(".", 2)
        try:
            owner: type = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise MotoPatchPointMissingError(
                f"{self.symbol}: {module_name}.{class_name} is gone"
            ) from exc
        return owner

    @property
    def attribute(self) -> str:
        return self.symbol.rsplit(".", 1)[1]

    def _defined(self) -> Any:
        """What the class defines under the name now: a function, a property or a static
        method."""
        current = self.owner.__dict__.get(self.attribute)
        if current is None:
            raise MotoPatchPointMissingError(
                f"{self.symbol}: moto no longer defines {self.attribute} on this class"
            )
        return current

    def original(self) -> Callable[..., Any]:
        """moto's own implementation (a property's getter), whether or not the patch is
        installed."""
        current = self._defined()
        original = getattr(current, ORIGINAL_ATTRIBUTE, current)
        if isinstance(original, property):
            if original.fget is None:
                raise MotoPatchPointMissingError(f"{self.symbol}: the property has no getter")
            return original.fget
        if isinstance(original, staticmethod):
            unwrapped: Callable[..., Any] = original.__func__
            return unwrapped
        function: Callable[..., Any] = original
        return function

    def is_installed(self) -> bool:
        return hasattr(self.owner.__dict__.get(self.attribute), ORIGINAL_ATTRIBUTE)

    def verify(self) -> None:
        """Fail loudly if moto's method no longer has the signature the replacement expects."""
        found = tuple(inspect.signature(self.original()).parameters)
        if found != self.parameters:
            raise MotoPatchPointMissingError(
                f"{self.symbol}: expected parameters {self.parameters}, moto has {found}; "
                "re-check the patch against the new moto before updating this expectation"
            )
        if self.uses:
            source = inspect.getsource(self.original())
            for use in self.uses:
                if use not in source:
                    raise MotoPatchPointMissingError(
                        f"{self.symbol}: moto no longer has {use!r}; re-check the patch "
                        "against the new moto before updating this expectation"
                    )

    def install(self) -> None:
        if self.is_installed():
            return
        self.verify()
        defined = self._defined()
        original = self.original()
        replacement: Any = self.replacement(original)
        setattr(replacement, ORIGINAL_ATTRIBUTE, original)
        if isinstance(defined, property):
            # A read-only property stays one; the replacement replaces its getter.
            replacement = _PatchedProperty(replacement, doc=defined.__doc__)
            setattr(replacement, ORIGINAL_ATTRIBUTE, defined)
        elif isinstance(defined, staticmethod):
            replacement = staticmethod(replacement)
            setattr(replacement, ORIGINAL_ATTRIBUTE, defined)
        setattr(self.owner, self.attribute, replacement)


class _PatchedProperty(property):
    """A replaced moto property (a plain ``property`` cannot carry ``ORIGINAL_ATTRIBUTE``)."""


MOTO_PATCH_POINTS: tuple[MotoPatchPoint, ...] = (
    MotoPatchPoint(
        symbol="moto.awslambda_simple.models.LambdaSimpleBackend.invoke",
        parameters=("self", "function_name", "qualifier", "body", "headers", "response_headers"),
        why="moto runs function code only in Docker; its Docker-free backend returns a canned "
        "payload. The replacement runs the real handler in-process.",
        replacement=_replace_lambda_invoke,
    ),
    MotoPatchPoint(
        symbol="moto.events.models.Rule.send_to_targets",
        parameters=("self", "original_event", "transform_input"),
        why="moto raises NotImplementedError for Lambda and Step Functions targets.",
        replacement=_replace_send_to_targets,
    ),
    MotoPatchPoint(
        symbol="moto.awslambda.models.LambdaBackend.create_event_source_mapping",
        parameters=("self", "spec"),
        why="moto invokes SQS-mapped functions synchronously inside SendMessage, one message "
        "at a time, ignoring batch responses; the runtime's poller replaces that path.",
        replacement=_replace_create_event_source_mapping,
    ),
    MotoPatchPoint(
        symbol="moto.sts.models.STSBackend.assume_role",
        parameters=(
            "self",
            "region_name",
            "role_session_name",
            "role_arn",
            "policy",
            "duration",
            "external_id",
        ),
        why="moto's STS issues credentials for roles that do not exist; AWS answers "
        "AccessDenied. The replacement refuses them while a runtime runs.",
        replacement=_replace_assume_role,
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.DynamoDBBackend.transact_write_items",
        parameters=("self", "transact_items"),
        why="moto deep-copies every table a transaction names and restores the copies on a "
        "failed condition: O(table size) per transaction, 500s when another thread writes "
        "during the copy, lost writes on rollback. The replacement checks all conditions, "
        "then writes, under one lock, and restores only the items it touched.",
        replacement=_replace_transact_write_items,
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.responses.DynamoHandler.call_action",
        parameters=("self",),
        why="moto's server answers requests on threads and its DynamoDB backend has no "
        "lock: two UpdateItems of one item interleave (a condition checked by both before "
        "either writes passes twice; the deep copy of an item another thread is writing "
        "answers 500, 'dictionary changed size during iteration'). DynamoDB's writes of an "
        "item are atomic; the replacement serves one DynamoDB request at a time.",
        replacement=_replace_dynamodb_call_action,
    ),
    MotoPatchPoint(
        symbol="moto.core.responses.ActionResult.execute_result",
        parameters=("self", "context"),
        why="moto serializes every DynamoDB answer through botocore's shape model, value by "
        "value: a sixth of a rehearsal's CPU, under the lock that serves one DynamoDB request "
        "at a time. Item operations' results are already DynamoDB's JSON: the replacement "
        "dumps them as they are (the same JSON, checked against the serializer's), and leaves "
        "the rest (binary values, timestamps, keys outside the shape) to the serializer.",
        replacement=_replace_dynamodb_execute_result,
    ),
    MotoPatchPoint(
        symbol="moto.sqs.models.Queue.attributes",
        parameters=("self",),
        why="moto builds every queue attribute, counting the queue's messages three times, "
        "to read one: ContentBasedDeduplication in SendMessage, MessageRetentionPeriod once "
        "per message ReceiveMessage returns. The replacement computes a value when read.",
        replacement=_replace_queue_attributes,
    ),
    MotoPatchPoint(
        symbol="moto.sqs.models.Queue.messages",
        parameters=("self",),
        why="the visible messages, which ReceiveMessage lists in full before taking up to ten: "
        "moto reads the clock twice per message (Message.visible, Message.delayed), a fifth "
        "of all CPU with the Slack status queue backed up. The replacement reads it once.",
        replacement=_replace_queue_messages,
    ),
    MotoPatchPoint(
        symbol="moto.stepfunctions.parser.asl.parse.asl_parser.AmazonStateLanguageParser.parse",
        parameters=("definition",),
        why="moto parses the state machine's definition with ANTLR and builds its evaluation "
        "components for every execution (a quarter of all CPU in a 1,000-VM rehearsal). The "
        "replacement does it once per definition; executions share the components, which "
        "keep no execution's state.",
        replacement=_replace_asl_parse,
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.table.Table.query",
        parameters=(
            "self",
            "hash_key",
            "range_comparison",
            "range_objs",
            "limit",
            "exclusive_start_key",
            "scan_index_forward",
            "projection_expressions",
            "index_name",
            "consistent_read",
            "filter_expression",
            "hash_key_conditions",
            "range_key_conditions",
            "filter_kwargs",
        ),
        why="a Query reads all_items(): every item of the table, sorted, then kept if of the "
        "queried hash key (O(table) per Query; a third of all CPU in a 1,000-VM rehearsal, "
        "and a seventh more for the index Queries). The replacement has all_items() give "
        "the base table's queried partition, or the items an index Query's hash key "
        "conditions keep; in a request serialized under the DynamoDB lock, the results are "
        "not deep-copied (see _query_results_copy).",
        replacement=_replace_table_query,
        uses=(
            "for item in self.all_items():",
            "if not item_value or item_value != expected_value:",
            "results = copy.deepcopy(results)",
            "results = [index.project(r) for r in results]",
            "results = [item for item in results if filter_expression.expr(item)]",
            "results = [r.project(projection_expressions) for r in results]",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.table.Table.all_items",
        parameters=("self",),
        why="see Table.query: inside a base-table Query, the queried partition's items; "
        "inside an index Query, the items of its hash key values (moto sorts them).",
        replacement=_replace_table_all_items,
        uses=("key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key",),
    ),
    MotoPatchPoint(
        symbol="moto.ec2.models.instances.InstanceBackend.all_reservations",
        parameters=("self", "filters"),
        why="moto copies every reservation for every DescribeInstances and every lookup by "
        "instance ID (DescribeInstanceStatus, RunInstances' and volumes' get_instance): "
        "O(instances) copies per call. The replacement copies only the reservations that "
        "hold the IDs looked up (get_instance, get_multi_instances_by_id, "
        "get_reservations_by_instance_ids) or named by an instance-id filter alone.",
        replacement=_replace_all_reservations,
        uses=(
            "copy.copy(reservation) for reservation in self.reservations.copy().values()",
            "if filters is not None:",
            "reservations = filter_reservations(reservations, filters)",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.ec2.models.instances.InstanceBackend.get_reservations_by_instance_ids",
        parameters=("self", "instance_ids", "filters"),
        why="see InstanceBackend.all_reservations: it keeps the reservations holding these "
        "IDs and drops the others.",
        replacement=_replace_instances_by_ids,
        uses=("for reservation in self.all_reservations():", "if matching_reservation:"),
    ),
    MotoPatchPoint(
        symbol="moto.ec2.models.instances.InstanceBackend.get_multi_instances_by_id",
        parameters=("self", "instance_ids", "filters"),
        why="see InstanceBackend.all_reservations: it looks these IDs up among all instances.",
        replacement=_replace_instances_by_ids,
        uses=(
            "for reservation in self.all_reservations():",
            "if instance_id not in all_instance_ids:",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.ec2.models.instances.InstanceBackend.get_instance",
        parameters=("self", "instance_id"),
        why="see InstanceBackend.all_reservations: it looks the ID up among all instances.",
        replacement=_replace_get_instance,
        uses=("for instance in self.all_instances():", "if instance.id == instance_id:"),
    ),
    MotoPatchPoint(
        symbol="moto.ec2.models.core.TaggedEC2Resource.get_tags",
        parameters=("self",),
        why="a resource's tags are a describe_tags filtered by its ID: a pattern matched "
        "against every tag of every EC2 resource, for every instance an answer describes "
        "(O(instances) per instance). The replacement reads the resource's own tags, the "
        "same entries in the same order (an ID without wildcards matches only itself).",
        replacement=_replace_get_tags,
        uses=('self.ec2_backend.describe_tags(filters={"resource-id": [self.id]})',),
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.dynamo_type.Item.size",
        parameters=("self",),
        why="a Query sizes every item it returns twice, value by value (its 1 MB page): a "
        "twentieth of a rehearsal's CPU. In a Query served under the DynamoDB lock, the size "
        "just computed for an item is reused for that item.",
        replacement=_replace_item_size,
        uses=("return sum(bytesize(key) + value.size() for key, value in self.attrs.items())",),
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.dynamo_type.DynamoType.size",
        parameters=("self",),
        why="every attribute written is sized with the whole item (LimitedSizeDict checks 400 "
        "KB at each key set), and the size of a map wraps each of its values in a new "
        "DynamoType, which rebuilds every nested list and map: a twentieth of a rehearsal's "
        "CPU. The replacement adds up the same sizes from the values as they are.",
        replacement=_replace_attribute_size,
        uses=(
            "value_size = len(str(self.value))",
            "value_size = sum([DynamoType({sub_type: v}).size() for v in self.value])",
            "value_size = sum([v.size() for v in self.value])",
            "[bytesize(k) + DynamoType(v).size() for k, v in self.value.items()]",
            "elif isinstance(self.value, bool):",
            "value_size = 1",
            "value_size = bytesize(self.value)",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.dynamodb.models.DynamoDBBackend.update_item",
        parameters=(
            "self",
            "table_name",
            "key",
            "update_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "attribute_updates",
            "expected",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ),
        why="every UpdateItem deep-copies the whole item first, for the table's stream only "
        "(a migration record's history: the largest cost of moto's update after its "
        "validation). The replacement says whether the table has a stream, for the backend "
        "module's copy (_update_item_copy).",
        replacement=_replace_update_item,
        uses=(
            "table = self.get_table(table_name)",
            "orig_item = copy.deepcopy(item)",
            "if table.stream_shard is not None:",
            "table.stream_shard.add(orig_item, item)",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.core.responses.BaseResponse._enrich_response",
        parameters=("headers", "body"),
        why="every answer's body is searched with a look-behind regular expression for an "
        "XML <RequestId> to rewrite; a text without one is returned as it is.",
        replacement=_replace_enrich_response,
        uses=(
            "request_id = gen_amzn_requestid_long(headers)",
            'body = re.sub(r"(?<=<RequestId>).*(?=<\\/RequestId>)", request_id, body)',
            "except Exception:  # Will just ignore if it cant work",
        ),
    ),
    MotoPatchPoint(
        symbol="moto.core.base_backend.BackendDict._create_account_specific_backend",
        parameters=("self", "account_id"),
        why="every backend lookup (every request, every poller's look at its queue) takes a "
        "lock, lists the accounts and compares the dict with every registered one; an "
        "account already there in a registered dict has nothing to create.",
        replacement=_replace_create_account_specific_backend,
        uses=(
            "if account_id not in list(self.keys()):",
            "if self not in BackendDict._instances:",
            "BackendDict._instances.append(self)",
        ),
    ),
)


@dataclass(frozen=True)
class ModuleNamePatchPoint:
    """A name a moto interpreter module looks up at call time (``time``, ``threading``,
    ``Thread``, ``Event``), replaced by one that waits on the active virtual clock and behaves
    exactly as the original when there is none (``orchestration/local/virtual_clock.py``).

    ``expected`` is what the name must be bound to before the patch: the module ``time``
    or ``threading``, or ``threading.Thread``/``threading.Event``; ``uses`` lists the calls
    the module makes through it (each checked in the module's source), so an upgrade that
    moves the waits elsewhere fails the canary instead of silently running in real time.
    """

    module: str
    name: str
    expected: Any
    uses: tuple[str, ...]
    why: str
    replacement: Callable[[], Any]

    @property
    def symbol(self) -> str:
        return f"{self.module}.{self.name}"

    def _module(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise MotoPatchPointMissingError(
                f"{self.symbol}: module {self.module} is gone"
            ) from exc

    def original(self) -> Any:
        current = self._module().__dict__.get(self.name)
        return getattr(current, ORIGINAL_ATTRIBUTE, current)

    def is_installed(self) -> bool:
        return hasattr(self._module().__dict__.get(self.name), ORIGINAL_ATTRIBUTE)

    def verify(self) -> None:
        module = self._module()
        if self.original() is not self.expected:
            raise MotoPatchPointMissingError(
                f"{self.symbol}: expected {self.expected!r}, moto has {self.original()!r}"
            )
        source = inspect.getsource(module)
        for use in self.uses:
            if use not in source:
                raise MotoPatchPointMissingError(
                    f"{self.symbol}: moto no longer calls {use!r} in {self.module}; the wait "
                    "moved: re-check the virtual clock's patches against the new moto"
                )

    def install(self) -> None:
        if self.is_installed():
            return
        self.verify()
        replacement = self.replacement()
        if isinstance(replacement, type):
            replacement = type(
                replacement.__name__, (replacement,), {ORIGINAL_ATTRIBUTE: self.expected}
            )
        else:
            setattr(replacement, ORIGINAL_ATTRIBUTE, self.expected)
        setattr(self._module(), self.name, replacement)


def _sqs_unix_time_millis() -> float:
    return sqs_now_millis()


_ASL = "moto.stepfunctions.parser.asl"

VIRTUAL_CLOCK_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="moto.sqs.models",
        name="unix_time_millis",
        expected=unix_time_millis,
        uses=(
            "self.visible_at = unix_time_millis() + visibility_timeout_msec",
            "self.delayed_until = unix_time_millis() + delay_msec",
        ),
        why="SQS's visibility timeouts and delays: a failed batch comes back after the "
        "queue's visibility timeout of simulated time",
        replacement=lambda: _sqs_unix_time_millis,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.state.wait.wait_function.wait_function",
        name="time",
        expected=time,
        uses=("time.time()",),
        why="a Wait state measures how long it waited with time.time()",
        replacement=virtual_time_module,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.eval.environment",
        name="threading",
        expected=threading,
        uses=("self.program_state_event = threading.Event()",),
        why="a Wait state waits on env.program_state_event (StopExecution sets it)",
        replacement=virtual_threading_module,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.common.retry.retrier_decl",
        name="time",
        expected=time,
        uses=("time.sleep(interval_seconds)",),
        why="Retry backoff sleeps with time.sleep",
        replacement=virtual_time_module,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.state.exec.execute_state",
        name="threading",
        expected=threading,
        uses=("terminated_event = threading.Event()", "terminated_event.wait(timeout_seconds)"),
        why="a Task's TimeoutSeconds is a timed wait on its worker thread",
        replacement=virtual_threading_module,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.state.exec.execute_state",
        name="Thread",
        expected=threading.Thread,
        uses=("thread = Thread(target=_exec_and_notify, daemon=True)",),
        why="a Task runs in a worker thread of its own (counted on the virtual clock)",
        replacement=lambda: ClockThread,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.program.program",
        name="threading",
        expected=threading,
        uses=("threading.Thread(target=super().eval", "worker_thread.join(timeout=timeout)"),
        why="the program runs in a worker thread; the execution's TimeoutSeconds is a join",
        replacement=virtual_threading_module,
    ),
    ModuleNamePatchPoint(
        module="moto.stepfunctions.parser.backend.execution_worker",
        name="Thread",
        expected=threading.Thread,
        uses=("Thread(target=self._execution_logic, daemon=True)",),
        why="each execution starts in a thread of its own (counted from StartExecution)",
        replacement=lambda: ClockThread,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.eval.callback.callback",
        name="Event",
        expected=threading.Event,
        uses=("self._notify_event = Event()", "self._notify_event.wait(timeout=timeout)"),
        why=".waitForTaskToken waits on the callback endpoint's event, with the task timeout",
        replacement=lambda: ClockEvent,
    ),
)


# The interpreter's Lambda client, one per (Region, moto port) while a runtime runs. moto's
# boto_client_for builds a new boto3 client for every Task it runs (tens of milliseconds:
# loading the service model, copying the event hooks, an SSL context), which was the largest
# single cost of a many-execution run. The cached client is configured exactly as moto's
# (no retries, no parameter validation, the same timeouts) with a pool as large as the number
# of Tasks that run at once, so concurrent Tasks keep their connections.
INTERPRETER_POOL_CONNECTIONS = 64
_interpreter_clients: dict[tuple[str, str, str], Any] = {}
_interpreter_clients_lock = threading.Lock()


def _shared_boto_client_for() -> Callable[..., Any]:
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client as moto_boto_client

    original = moto_boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # Plain mock_aws users (no runtime, or moto's in-process stubber) keep moto's client.
        if active_hooks() is None or botocore_stubber.enabled:
            return original(region=region, service=service, state_credentials=state_credentials)
        key = (region, service, str(moto_server_port()))
        client = _interpreter_clients.get(key)
        if client is None:
            with _interpreter_clients_lock:
                client = _interpreter_clients.get(key)
                if client is None:
                    client = _interpreter_client(region, service, key[2])
                    _interpreter_clients[key] = client
        return client

    return boto_client_for


def _interpreter_client(region: str, service: str, port: str) -> Any:
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    return boto3.client(  # type: ignore[call-overload]
        aws_access_key_id="ak",
        region_name=region,
        service_name=service,
        aws_secret_access_key="sk",  # noqa: S106 - moto's placeholder, as in boto_client_for
        endpoint_url=f"http://localhost:{port}",
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            max_pool_connections=INTERPRETER_POOL_CONNECTIONS,
        ),
    )


def forget_interpreter_clients() -> None:
    """Drop the cached interpreter clients (a stopped runtime's port is never reused)."""
    with _interpreter_clients_lock:
        _interpreter_clients.clear()


def _moto_boto_client_for() -> Any:
    from moto.stepfunctions.parser.asl.utils import boto_client as moto_boto_client

    return moto_boto_client.boto_client_for


SHARED_CLIENT_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.state.exec.state_task.lambda_eval_utils",
        name="boto_client_for",
        expected=_moto_boto_client_for(),
        uses=(
            "lambda_client = boto_client_for(",
            "lambda_client.invoke(**parameters)",
        ),
        why="a Lambda Task builds a new boto3 client per invocation; one shared client per "
        "Region and port does the same calls",
        replacement=_shared_boto_client_for,
    ),
)


@functools.lru_cache(maxsize=4096)
def _extended_jsonpath(path: str) -> Any:
    return jsonpath_ng_ext_parse(path)


@functools.lru_cache(maxsize=4096)
def _jsonpath(path: str) -> Any:
    return jsonpath_ng_parse(path)


def _cached_extended_jsonpath_parse() -> Callable[..., Any]:
    def parse(path: str, debug: bool | None = None) -> Any:
        if debug or not isinstance(path, str):
            return jsonpath_ng_ext_parse(path, debug)
        return _extended_jsonpath(path)

    return parse


def _cached_jsonpath_parse() -> Callable[..., Any]:
    def parse(string: str) -> Any:
        if not isinstance(string, str):
            return jsonpath_ng_parse(string)
        return _jsonpath(string)

    return parse


# jsonpath_ng builds a PLY parser (its yacc tables) for every expression it parses; moto parses
# each JSONPath where it is used: every EventBridge target's input path for every event
# delivered (a sixth of all CPU in a 1,000-VM rehearsal), every InputPath, ResultPath and
# ``.$`` field of every state of every execution. Parsed expressions are immutable (``find``
# and ``update`` build results of their own), so one parse per expression text is kept.
JSONPATH_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="jsonpath_ng.ext",
        name="parse",
        expected=jsonpath_ng_ext_parse,
        uses=("from .parser import parse",),
        why="moto.events.utils.EventTemplateParser.parse imports it at each call (input paths "
        "of every EventBridge target, for every event)",
        replacement=_cached_extended_jsonpath_parse,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.utils.json_path",
        name="parse",
        expected=jsonpath_ng_ext_parse,
        uses=("input_expr = parse(path)",),
        why="every JSONPath a state reads (InputPath, OutputPath, Parameters' .$ fields)",
        replacement=_cached_extended_jsonpath_parse,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.common.path.result_path",
        name="parse",
        expected=jsonpath_ng_parse,
        uses=("result_expr = parse(self.result_path_src)",),
        why="every ResultPath, at every state's end",
        replacement=_cached_jsonpath_parse,
    ),
)


@functools.cache
def _shared_loader(search_path_string: str | None) -> Loader:
    return botocore_create_loader(search_path_string)


def _shared_create_loader() -> Callable[..., Loader]:
    def create_loader(search_path_string: str | None = None) -> Loader:
        return _shared_loader(search_path_string)

    return create_loader


# Every boto3 Session builds its own botocore Loader, which parses endpoints.json and each
# service model again (its cache is per instance): in the embedded system a session per lane
# role, per estate account, per rehearsal's table. A Loader's data is read-only once loaded,
# so the process keeps one per data path (a py-spy profile of a 20-VM rehearsal: a fifth of
# its CPU in JSON decoding).
LOADER_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="botocore.session",
        name="create_loader",
        expected=botocore_create_loader,
        uses=("create_loader(self.get_config_variable('data_path'))",),
        why="one botocore Loader per data path for the process, not one per boto3 Session",
        replacement=_shared_create_loader,
    ),
)


@functools.cache
def _response_method_names(clazz: type) -> frozenset[str]:
    return frozenset(moto_method_names_from_class(clazz))


def _cached_method_names_from_class() -> Callable[[Any], frozenset[str]]:
    def method_names_from_class(clazz: Any) -> frozenset[str]:
        return _response_method_names(clazz)

    return method_names_from_class


# moto's responses look an action up among the names of their class's functions, listed with
# inspect.getmembers for every request (a twentieth of a rehearsal's CPU). A class's functions
# do not change once defined, so each class is listed once; callers only test membership.
RESPONSE_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="moto.core.responses",
        name="method_names_from_class",
        expected=moto_method_names_from_class,
        uses=(
            "method_names = method_names_from_class(self.__class__)",
            "if action in method_names:",
        ),
        why="every request lists its response class's functions to find its action",
        replacement=_cached_method_names_from_class,
    ),
)


# moto's Table.query deep-copies its results (every attribute of every item returned) under
# the DynamoDB lock; a serialized request only reads them before answering (see
# _query_results_copy), so there it is a list copy.
QUERY_COPY_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="moto.dynamodb.models.table",
        name="copy",
        expected=copy,
        uses=("results = copy.deepcopy(results)",),
        why="every Query deep-copies the items it returns",
        replacement=_query_results_copy,
    ),
)


def json_tree_copy(value: Any) -> Any:
    """``copy.deepcopy`` for JSON data: dicts with string keys, lists, strings, numbers,
    booleans and None rebuilt directly; anything else (a tuple, a subclass, an object) goes
    to ``copy.deepcopy``. The same values, without deepcopy's memo and dispatch per value.
    (Two references to one object in the input become two copies, as a JSON round trip
    makes them: state data is JSON.)"""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {
            key if type(key) is str else copy.deepcopy(key): json_tree_copy(item)
            for key, item in value.items()
        }
    if kind is list:
        return [json_tree_copy(item) for item in value]
    return copy.deepcopy(value)


def _state_data_copy() -> Any:
    """A stand-in for ``copy`` in the Step Functions interpreter's modules that copy state
    data (every state's input, each JSONPath it reads, its result, each task's parameters):
    ``deepcopy`` is ``json_tree_copy`` while a runtime runs (a tenth of a rehearsal's CPU was
    ``copy.deepcopy`` walking those JSON documents); anything else is ``copy`` itself."""

    class _Copy:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            if memo is not None or active_hooks() is None:
                return copy.deepcopy(x, memo)
            return json_tree_copy(x)

    return _Copy()


def _fast_dynamo_to_dict(obj: Any) -> Any:
    """moto's ``dynamo_to_dict`` (``moto.dynamodb.models.utilities``), the same containers
    built with fewer checks for what a DynamoDB answer is made of: dicts (an item's attributes,
    moto's ``LimitedSizeDict``), lists, strings,
    booleans, numbers, None and ``DynamoType`` values other than binaries. Anything else (a
    binary, a datetime, an object with ``to_json``, a subclass) is moto's own function's."""
    kind = type(obj)
    if kind is str or kind is bool or kind is int or kind is float or obj is None:
        return obj
    if kind is dict or kind is LimitedSizeDict:  # an item's attributes: a dict of moto's
        return {key: _fast_dynamo_to_dict(value) for key, value in obj.items()}
    if kind is list:
        return [_fast_dynamo_to_dict(value) for value in obj]
    if kind is DynamoType:
        attribute_type = obj.type
        if type(attribute_type) is str and attribute_type not in ("B", "BS"):
            return {attribute_type: _fast_dynamo_to_dict(obj.value)}
    return moto_dynamo_to_dict(obj)


def _fast_dynamo_result_to_dict() -> Callable[[Any], Any]:
    def dynamo_to_dict(obj: Any) -> Any:
        if active_hooks() is None:
            return moto_dynamo_to_dict(obj)
        return _fast_dynamo_to_dict(obj)

    return dynamo_to_dict


def _cached_regex_module() -> Any:
    """A stand-in for ``re`` in moto's condition-expression module: ``compile`` keeps the
    patterns it compiled (the lexer compiles six for every token of every ConditionExpression,
    FilterExpression and KeyConditions read; ``re`` answers each from its cache, the same
    object, after a lookup that costs more than the match). Anything else is ``re`` itself."""

    @functools.lru_cache(maxsize=256)
    def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
        return re.compile(pattern, flags)

    class _Regex:
        def __getattr__(self, name: str) -> Any:
            return getattr(re, name)

        @staticmethod
        def compile(pattern: Any, flags: Any = 0) -> Any:
            if type(pattern) is str and type(flags) is int:
                return _compiled(pattern, flags)
            return re.compile(pattern, flags)

    return _Regex()


# moto's DynamoDB backend module deep-copies an item before updating it, for streams only
# (see _update_item_copy); the module's other copy (a transaction's tables) is replaced with
# ``transact_write_items`` while a runtime runs.
UPDATE_COPY_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="moto.dynamodb.models",
        name="copy",
        expected=copy,
        uses=("orig_item = copy.deepcopy(item)",),
        why="every UpdateItem deep-copies the item it updates, for a stream",
        replacement=_update_item_copy,
    ),
)


# moto's DynamoDB answers: every result goes through dynamo_to_dict (a generic walk with five
# type checks per value, a twentieth of a rehearsal's CPU for the ledger's Queries), and every
# condition is lexed with patterns compiled per token.
DYNAMODB_ANSWER_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="moto.dynamodb.responses",
        name="dynamo_to_dict",
        expected=moto_dynamo_to_dict,
        uses=("transformed_result = dynamo_to_dict(result)",),
        why="DynamoResult turns every answer's DynamoType values into JSON containers",
        replacement=_fast_dynamo_result_to_dict,
    ),
    ModuleNamePatchPoint(
        module="moto.dynamodb.comparisons",
        name="re",
        expected=re,
        uses=(
            '(self.Nonterminal.WHITESPACE, re.compile(r"^ +")),',
            'rf"^{attribute_regex}(\\.{attribute_regex}|\\[[0-9]\\])*"',
        ),
        why="ConditionExpressionParser._lex_one_node compiles its six patterns per token",
        replacement=_cached_regex_module,
    ),
)


# The Step Functions interpreter deep-copies the state's JSON document at every step: each
# state's input (States.reset), each value read through a path (States._extract, a Parameters
# field's JSONPath), each ResultPath's result, each task's parameters.
STATE_DATA_COPY_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module=f"{_ASL}.eval.states",
        name="copy",
        expected=copy,
        uses=("return copy.deepcopy(result)", "clone_input_value = copy.deepcopy(input_value)"),
        why="every state's input and every path's value read from it",
        replacement=_state_data_copy,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.common.string.string_expression",
        name="copy",
        expected=copy,
        uses=("env.stack.append(copy.deepcopy(output_value))",),
        why="every ``.$`` field's JSONPath value",
        replacement=_state_data_copy,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.common.path.result_path",
        name="copy",
        expected=copy,
        uses=("copy.deepcopy(current_output)",),
        why="every ResultPath's result",
        replacement=_state_data_copy,
    ),
    ModuleNamePatchPoint(
        module=f"{_ASL}.component.state.exec.state_task.service.state_task_service",
        name="copy",
        expected=copy,
        uses=("normalised_parameters = copy.deepcopy(raw_parameters)",),
        why="every service task's parameters",
        replacement=_state_data_copy,
    ),
)


def _cached_user_agent_sanitizer() -> Callable[[str, bool], str]:
    return functools.lru_cache(maxsize=512)(sanitize_user_agent_string_component)


# botocore builds every request's User-Agent header from its components, each sanitized one
# character at a time (a thirtieth of a rehearsal's CPU); the components are the same few
# strings in every request, so each is sanitized once.
USER_AGENT_PATCH_POINTS: tuple[ModuleNamePatchPoint, ...] = (
    ModuleNamePatchPoint(
        module="botocore.useragent",
        name="sanitize_user_agent_string_component",
        expected=sanitize_user_agent_string_component,
        uses=(
            "clean_prefix = sanitize_user_agent_string_component(",
            "clean_name = sanitize_user_agent_string_component(",
        ),
        why="every component of every request's User-Agent, character by character",
        replacement=_cached_user_agent_sanitizer,
    ),
)


def install_moto_patches() -> None:
    """Install every patch, once per process.

    Raises :class:`MotoPatchPointMissingError`, installing nothing, if a patched moto method
    moved or changed its signature.
    """
    with _install_lock:
        for point in MOTO_PATCH_POINTS:
            point.verify()
        module_points = (
            *VIRTUAL_CLOCK_PATCH_POINTS,
            *SHARED_CLIENT_PATCH_POINTS,
            *JSONPATH_PATCH_POINTS,
            *LOADER_PATCH_POINTS,
            *RESPONSE_PATCH_POINTS,
            *QUERY_COPY_PATCH_POINTS,
            *UPDATE_COPY_PATCH_POINTS,
            *DYNAMODB_ANSWER_PATCH_POINTS,
            *STATE_DATA_COPY_PATCH_POINTS,
            *USER_AGENT_PATCH_POINTS,
        )
        for module_point in module_points:
            if not module_point.is_installed():
                module_point.verify()
        for point in MOTO_PATCH_POINTS:
            point.install()
        for module_point in module_points:
            module_point.install()
