"""Which Lambda function made which AWS call: a context variable and botocore's event hooks.

The in-process dispatcher (``runtime/lambda_dispatch.py``) runs every handler inside
:func:`running_function`, so a ``before-call`` hook can read, from the calling thread's
context, which function (if any) is making the call. Calls made by the test harness, the
driver, moto's ASL interpreter or the MGN emulator run outside any handler (on other threads,
or before and after a handler) and are attributed to nobody.

:class:`ApiCallRecorder` keeps the IAM actions (``sqs:SendMessage``, ``states:StartExecution``)
each function called. Unlike ``api_calls.ApiCallCounter`` (the per-service counts, on boto3's
default session only, so the driver's own session stays out of them), its hook is on every
botocore session: Powertools' ``SecretsProvider`` (the callback handler's signing key) builds
its client from a ``boto3.session.Session()`` of its own, and those calls are the function's
too. A session created before the first recorder started (other than boto3's default one) is
not hooked; the handlers create theirs on first use, after ``EmbeddedSystem.start()``.

On Lambda every call in the process is made with the function's role, including calls from
threads the handler starts. Work a handler submits to a ``concurrent.futures`` thread pool
(the Slack notifier handles migrations side by side; Bolt runs the Slack app's lazy listeners
on one) is therefore attributed to the submitting function: while a recorder is started,
``ThreadPoolExecutor.submit`` runs the callable under the submitter's function. A bare
``threading.Thread`` starts with an empty context and stays unattributed (no handler starts
one); the moto server, the MGN emulator and the runtime's pollers run on threads of their own,
never inside a handler, so nothing they do is attributed to a function.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3
from botocore import handlers

from orchestration.local.api_calls import _IN_HARNESS, EVENT

_CURRENT_FUNCTION: ContextVar[str | None] = ContextVar("wavepilot_lambda_function", default=None)

# botocore signing name -> IAM service prefix, where they differ. For every service the
# handlers use (sqs, dynamodb, events, states, mgn, ec2, iam, secretsmanager, kms) the signing
# name already is the IAM prefix: the Step Functions client ("stepfunctions", event name
# "sfn") signs as "states", EventBridge as "events".
IAM_PREFIX_BY_SIGNING_NAME: dict[str, str] = {
    "execute-api": "execute-api",
}

# (IAM prefix, operation) -> IAM action, where the action is not named after the operation.
# None of the operations the handlers call needs one today (MGN's actions, including
# ListSourceServerActions, are named after their operations); S3 would (ListObjectsV2 is
# s3:ListBucket, HeadObject is s3:GetObject).
IAM_ACTION_OVERRIDES: dict[tuple[str, str], str] = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    # SQS authorizes a batch by the action of one message (no sqs:*Batch actions exist).
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}


def current_function() -> str | None:
    """The Lambda function whose handler is running in this context, if any."""
    return _CURRENT_FUNCTION.get()


@contextmanager
def running_function(function_name: str) -> Iterator[None]:
    """Attribute the AWS calls made in this context to ``function_name`` (nesting restores)."""
    token = _CURRENT_FUNCTION.set(function_name)
    try:
        yield
    finally:
        _CURRENT_FUNCTION.reset(token)


@contextmanager
def harness() -> Iterator[None]:
    """Calls in this context are the harness's, not Wavepilot's nor AWS's on its behalf (the
    VM stand-ins looking up an address a health check asks for, from a handler's thread):
    attributed to no function's role, and left out of the counts of AWS calls
    (``in_harness``), as no such call exists on AWS."""
    function = _CURRENT_FUNCTION.set(None)
    inside = _IN_HARNESS.set(True)
    try:
        yield
    finally:
        _IN_HARNESS.reset(inside)
        _CURRENT_FUNCTION.reset(function)


def iam_action(operation_model: Any, event_name: str = "") -> str:
    """The IAM action a botocore operation needs: ``mgn:DescribeSourceServers``.

    ``operation_model`` is the ``model`` a ``before-call`` hook receives; without one, the
    service part of ``event_name`` (``before-call.<service id>.<operation>``) is used.
    """
    if operation_model is not None:
        service_model = operation_model.service_model
        signing_name = str(service_model.signing_name or service_model.endpoint_prefix)
        operation = str(operation_model.name)
    else:
        _, signing_name, operation = event_name.split(".", 2)
    prefix = IAM_PREFIX_BY_SIGNING_NAME.get(signing_name, signing_name)
    return IAM_ACTION_OVERRIDES.get((prefix, operation), f"{prefix}:{operation}")


# Set on a call's request context once recorded, so a client whose session got the hook twice
# (boto3's default session, when created after the hook was installed) counts the call once.
_RECORDED_MARK = "wavepilot_api_recorder_seen"
_HOOK_ID = "wavepilot-api-call-recorder"
_install_lock = threading.Lock()
_installed = False
_active: list[ApiCallRecorder] = []


def _assumed_role(request_signer: Any) -> str | None:
    """The name of the role whose credentials sign the call, if they are an STS AssumeRole
    session's (a lane's target role): the call is then that role's, not the function's."""
    credentials = getattr(request_signer, "_credentials", None)
    access_key = getattr(credentials, "access_key", None)
    if not access_key:
        return None
    from orchestration.local.runtime.moto_backends import role_arn_for_access_key

    role_arn = role_arn_for_access_key(str(access_key))
    return role_arn.rsplit("/", 1)[-1] if role_arn else None


def _hook(
    event_name: str,
    model: Any = None,
    context: Any = None,
    request_signer: Any = None,
    **_kwargs: Any,
) -> None:
    function = current_function()
    if function is None or not _active:
        return
    if isinstance(context, dict):
        if context.get(_RECORDED_MARK):
            return
        context[_RECORDED_MARK] = True
    action = iam_action(model, event_name)
    role = _assumed_role(request_signer)
    params = _kwargs.get("params")
    actions = (
        transaction_actions(params)
        if action == "dynamodb:TransactWriteItems"
        else [action, *tag_on_create_actions(action, params)]
    )
    for recorder in list(_active):
        for each in actions:
            recorder.record(function, each, role=role)


# Creating with tags is authorized as the create action and the service's TagResource too
# (Service Authorization Reference, "Dependent actions" of mgn:CreateWave / CreateApplication).
TAGGED_ON_CREATE: dict[str, str] = {
    "mgn:CreateWave": "mgn:TagResource",
    "mgn:CreateApplication": "mgn:TagResource",
}


def tag_on_create_actions(action: str, params: Any) -> list[str]:
    """The tagging action a create call with ``tags`` (in its serialized JSON body) needs as
    well; none without tags."""
    tagging = TAGGED_ON_CREATE.get(action)
    body = params.get("body") if isinstance(params, dict) else None
    if tagging is None:
        return []
    try:
        tags = json.loads(body or b"{}").get("tags")
    except ValueError:
        return []
    return [tagging] if tags else []


# IAM has no action for a DynamoDB transaction: each of its items is authorized as the
# single-item action it performs.
_TRANSACT_ITEM_ACTIONS = {
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
}


def transaction_actions(params: Any) -> list[str]:
    """The IAM actions a ``TransactWriteItems`` request needs, from its serialized body."""
    body = params.get("body") if isinstance(params, dict) else None
    try:
        items = json.loads(body or b"{}").get("TransactItems", [])
    except ValueError:
        items = []
    actions = [
        _TRANSACT_ITEM_ACTIONS[kind]
        for item in items
        for kind in item
        if kind in _TRANSACT_ITEM_ACTIONS
    ]
    return list(dict.fromkeys(actions)) or ["dynamodb:TransactWriteItems"]


_ORIGINAL_SUBMIT = ThreadPoolExecutor.submit


def _attributed_submit(
    self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Future[Any]:
    """``ThreadPoolExecutor.submit``: the callable runs as the submitting function, if any."""
    function = current_function()
    if function is None or not _active:
        return _ORIGINAL_SUBMIT(self, fn, *args, **kwargs)

    def as_function(*inner_args: Any, **inner_kwargs: Any) -> Any:
        with running_function(function):
            return fn(*inner_args, **inner_kwargs)

    return _ORIGINAL_SUBMIT(self, as_function, *args, **kwargs)


def _install_hook() -> None:
    """Hook every botocore session created from now on, and boto3's default session; make
    thread pools carry the submitting function (a no-op while no recorder is started)."""
    global _installed  # noqa: PLW0603 - one hook per process
    with _install_lock:
        if _installed:
            return
        handlers.BUILTIN_HANDLERS.append((EVENT, _hook))
        ThreadPoolExecutor.submit = _attributed_submit  # type: ignore[method-assign,assignment]
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register(EVENT, _hook, unique_id=_HOOK_ID)
        _installed = True


class ApiCallRecorder:
    """Records, while started, the IAM actions each Lambda function's handler calls.

    Use as ``with ApiCallRecorder() as recorder:`` around ``EmbeddedSystem`` (start it first:
    clients created before it started are not hooked, and the system forgets the handlers'
    cached clients when it starts). Functions are keyed by their Lambda function name.
    """

    def __init__(self) -> None:
        self._calls: dict[str, Counter[str]] = {}
        self._role_calls: dict[tuple[str, str], Counter[str]] = {}
        self._lock = threading.Lock()

    def record(self, function: str, action: str, *, role: str | None = None) -> None:
        """A call by `function`'s handler; `role`: made with that assumed role's credentials
        (a lane's target role), so evaluated against that role's policy, not the function's."""
        with self._lock:
            if role is None:
                self._calls.setdefault(function, Counter())[action] += 1
            else:
                self._role_calls.setdefault((role, function), Counter())[action] += 1

    def by_role(self) -> dict[str, dict[str, int]]:
        """Assumed role name -> IAM action -> calls made with its credentials (any function)."""
        with self._lock:
            totals: dict[str, Counter[str]] = {}
            for (role, _), calls in self._role_calls.items():
                totals.setdefault(role, Counter()).update(calls)
        return {role: dict(sorted(calls.items())) for role, calls in sorted(totals.items())}

    def role_calls_by_function(self) -> dict[str, dict[str, dict[str, int]]]:
        """Function -> assumed role -> IAM action -> calls: what each function did in lanes."""
        with self._lock:
            found: dict[str, dict[str, dict[str, int]]] = {}
            for (role, function), calls in sorted(self._role_calls.items()):
                found.setdefault(function, {})[role] = dict(sorted(calls.items()))
        return found

    def start(self) -> ApiCallRecorder:
        _install_hook()
        with _install_lock:
            if self not in _active:
                _active.append(self)
        return self

    def stop(self) -> None:
        with _install_lock:
            if self in _active:
                _active.remove(self)

    def __enter__(self) -> ApiCallRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def by_function(self) -> dict[str, dict[str, int]]:
        """Lambda function name -> IAM action -> calls made with its own role, sorted."""
        with self._lock:
            return {
                function: dict(sorted(calls.items()))
                for function, calls in sorted(self._calls.items())
            }

    def actions(self) -> dict[str, set[str]]:
        """Lambda function name -> the IAM actions its handler called."""
        return {function: set(calls) for function, calls in self.by_function().items()}
