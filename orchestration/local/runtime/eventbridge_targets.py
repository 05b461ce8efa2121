"""Deliver EventBridge events to Lambda and Step Functions targets, as AWS does.

moto delivers to SQS, log groups, archives, buses and API destinations itself, and raises
``NotImplementedError`` for everything else, Lambda and Step Functions included. This module
delivers those two (Lambda asynchronously, Step Functions by starting an execution with a
generated name) and hands every other target back to moto, one target at a time, so one
unsupported target cannot stop the others from receiving the event.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestration.local.runtime.counters import CounterBook, RuleTarget
from orchestration.local.runtime.fault_points import active_runtime_faults
from orchestration.local.runtime.lambda_dispatch import LambdaDispatcher
from orchestration.local.runtime.moto_backends import (
    ArnParts,
    find_function_by_arn,
    start_state_machine_execution,
)

LOGGER = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")

NativeDelivery = Callable[[Mapping[str, Any]], None]


def aws_event(moto_event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as AWS sends it to targets: no ``ingestion-time``, ``time`` in ISO 8601.

    moto's internal message keeps the ingestion time and a Unix timestamp; a handler parsing
    the event with Powertools' ``EventBridgeModel`` should see what AWS would send.
    """
    event = {key: value for key, value in moto_event.items() if key != "ingestion-time"}
    event["time"] = _iso_8601(event.get("time"))
    return event


def _iso_8601(value: Any) -> Any:
    if isinstance(value, int | float):
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def select_json_path(document: Any, path: str) -> Any:
    """Evaluate the JSONPath subset EventBridge targets use: ``$``, ``.key``, ``['key']``, ``[0]``.

    A path that does not match yields ``None`` (EventBridge passes null). Filters, wildcards and
    recursive descent are rejected rather than guessed at.
    """
    if not path.startswith("$"):
        raise ValueError(f"JSONPath must start with '$': {path!r}")
    position, current = 1, document
    while position < len(path):
        step = _PATH_STEP.match(path, position)
        if step is None:
            raise ValueError(f"unsupported JSONPath (only keys and indexes): {path!r}")
        key, index, single_quoted, double_quoted = step.groups()
        position = step.end()
        if index is not None:
            in_range = isinstance(current, list) and int(index) < len(current)
            current = current[int(index)] if in_range else None
        else:
            name = key if key is not None else (single_quoted or double_quoted or "")
            current = current.get(name) if isinstance(current, dict) else None
    return current


def render_input_template(template: str, values: Mapping[str, Any]) -> Any:
    """Fill an ``InputTemplate`` as EventBridge does and parse the result when it is JSON.

    A placeholder inside a JSON string is replaced by the value's text (escaped); outside a
    string by the value as JSON, so ``{"vm": <vm>}`` with a string value yields ``{"vm": "x"}``.
    (moto's own ``EventTemplateParser`` inserts strings unquoted, which breaks that template.)
    """
    rendered: list[str] = []
    position, inside_string = 0, False
    while position < len(template):
        char = template[position]
        placeholder = _PLACEHOLDER.match(template, position) if char == "<" else None
        if placeholder is not None and placeholder.group(1) in values:
            value = values[placeholder.group(1)]
            if inside_string:
                text = value if isinstance(value, str) else json.dumps(value)
                rendered.append(json.dumps(text)[1:-1])
            else:
                rendered.append(json.dumps(value))
            position = placeholder.end()
            continue
        if char == "\\" and inside_string:
            rendered.append(template[position : position + 2])
            position += 2
            continue
        if char == '"':
            inside_string = not inside_string
        rendered.append(char)
        position += 1
    text = "".join(rendered)
    try:
        return json.loads(text)
    except ValueError:
        return text


def target_input(
    target: Mapping[str, Any], event: Mapping[str, Any], *, rule_arn: str, rule_name: str
) -> Any:
    """What a target gets: constant ``Input``, ``InputPath``, ``InputTransformer`` or the event."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return select_json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if transformer:
        values: dict[str, Any] = {
            name: select_json_path(event, path)
            for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.setdefault("aws.events.rule-arn", rule_arn)
        values.setdefault("aws.events.rule-name", rule_name)
        values.setdefault("aws.events.event", dict(event))
        values.setdefault("aws.events.event.json", dict(event))
        return render_input_template(transformer["InputTemplate"], values)
    return dict(event)


class EventTargetDelivery:
    """Delivers one matched event to each target of a rule and counts the outcome per target."""

    def __init__(self, dispatcher: LambdaDispatcher, counters: CounterBook) -> None:
        self._dispatcher = dispatcher
        self._counters = counters

    def deliver(
        self,
        *,
        rule_arn: str,
        rule_name: str,
        targets: Sequence[Mapping[str, Any]],
        moto_event: Mapping[str, Any],
        transform_input: bool,
        deliver_natively: NativeDelivery,
    ) -> None:
        """Deliver to every target; a failing target is logged and counted, never raised.

        On AWS ``PutEvents`` has succeeded once the event is accepted, whatever its targets do.
        """
        event = aws_event(moto_event)
        faults = active_runtime_faults()
        for target in targets:
            key = RuleTarget(rule_arn, str(target.get("Id", "")))
            # EventBridge is at-least-once: the fault campaign may deliver an event twice.
            twice = faults is not None and faults.delivers_event_twice(
                str(event.get("id")), str(target["Arn"])
            )
            try:
                for _ in range(2 if twice else 1):
                    self._deliver_once(
                        target, event, rule_arn, rule_name, transform_input, deliver_natively
                    )
            except Exception:
                LOGGER.exception("could not deliver an event of %s to target %s", *key)
                self._counters.event_delivery_failures.add(key)
            else:
                self._counters.events_delivered.add(key)

    def _deliver_once(  # noqa: PLR0917 - the rule's delivery, passed on whole
        self,
        target: Mapping[str, Any],
        event: dict[str, Any],
        rule_arn: str,
        rule_name: str,
        transform_input: bool,
        deliver_natively: NativeDelivery,
    ) -> None:
        service = ArnParts.parse(str(target["Arn"])).service
        if service not in {"lambda", "states"}:
            deliver_natively(target)
            return
        payload = (
            target_input(target, event, rule_arn=rule_arn, rule_name=rule_name)
            if transform_input
            else event
        )
        if service == "lambda":
            self._invoke_function(str(target["Arn"]), payload)
        else:
            self._start_execution(str(target["Arn"]), payload)

    def _invoke_function(self, function_arn: str, payload: Any) -> None:
        function = find_function_by_arn(function_arn)
        if self._dispatcher.invoke_async(function, json.dumps(payload)) is None:
            raise RuntimeError("the runtime is stopping and accepts no asynchronous invocations")

    @staticmethod
    def _start_execution(state_machine_arn: str, payload: Any) -> None:
        # EventBridge cannot name the execution: AWS generates a unique name, and so do we.
        start_state_machine_execution(
            state_machine_arn, name=str(uuid.uuid4()), execution_input=json.dumps(payload)
        )
