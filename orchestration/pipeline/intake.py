"""Intake: turn a queue message into an accepted request, or a clear reason it never can be.

Reading a body is pure (no I/O): whatever goes wrong while reading it comes from the body and
would go wrong again on every delivery, so every failure here, expected or not (a parser's
``RecursionError``, a number too long to convert, a bug of ours that a body triggers), is a
:class:`RequestRejectedError`: permanent. Only the AWS calls made after intake can fail
transiently; the ingress handler lets those fail the record so that SQS redelivers it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from orchestration.manifests.fields import escape_unprintable, shown
from orchestration.migration_request import MigrationRequest, body_revision
from orchestration.observability import logger
from orchestration.request_identity import vm_revision

# The largest body read. SQS's classic maximum message size: what a request from a valid
# manifest needs at most (its lists and strings are bounded), while the MigrationRequested
# event that carries it must stay within EventBridge's 256 KiB and its DynamoDB item within
# 400 KB. A bigger body is refused before it is parsed.
MAX_BODY_BYTES = 256 * 1024
# A request is at most five levels deep (spec.healthChecks[0].port); JSON's parser and
# pydantic recurse, so depth is bounded before either sees the data.
MAX_DEPTH = 8


class RequestRejectedError(Exception):
    """The message can never succeed: unreadable, not JSON, or not a valid request.

    The reason is made printable here (control and invisible characters escaped), whatever
    built it: it is stored, logged and sent as an SQS message attribute.
    """

    def __init__(self, reason: str) -> None:
        reason = escape_unprintable(reason)
        super().__init__(reason)
        self.reason = reason


def parse_request(body: str) -> tuple[MigrationRequest, str]:
    """The request and its revision, or :class:`RequestRejectedError` with the reason.

    ``wavepilot publish`` sends the revision (the hash of the effective spec it carries,
    checked here). A hand-written request, like the seed's Quick Start message, has none:
    its revision is the hash of its own canonical body, so resending it is a repeat and
    changing any field is a new revision.
    """
    try:
        return _parse(body)
    except RequestRejectedError:
        raise
    except Exception as exc:  # reading a body is pure: any failure is the body's
        logger.exception("reading a request body failed unexpectedly")
        raise RequestRejectedError(
            f"the body cannot be read ({type(exc).__name__} while reading it)"
        ) from None


def _parse(body: str) -> tuple[MigrationRequest, str]:
    size = _utf8_size(body)
    if size > MAX_BODY_BYTES:
        raise RequestRejectedError(
            f"the body is {size} bytes: a request is at most {MAX_BODY_BYTES} bytes"
        )
    data = _json_object(body)
    try:
        request = MigrationRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors(include_url=False))
        raise RequestRejectedError(f"not a valid migration request: {problems}") from None
    if request.action == "cancel" and request.provenance is None:
        # `publish --cancel-removed` sends one per VM removed from a manifest, naming the
        # merged commit that removed it: that merge is what authorizes stopping a migration.
        raise RequestRejectedError(
            f"a cancel request names the commit that removed the VM (provenance): "
            f"{request.migration_id} ({request.target_vm_name}) was neither started nor "
            f"stopped; to stop a running migration, `/wavepilot rollback "
            f"{request.migration_id} <reason>`"
        )
    if request.revision is None:
        return request, body_revision(request)
    vm = request.effective_vm
    if vm is not None and vm_revision(vm) != request.revision:
        raise RequestRejectedError(
            f"revision {request.revision} does not match the spec it carries "
            f"({vm_revision(vm)}): the message was altered after publishing"
        )
    return request, request.revision


def _utf8_size(body: str) -> int:
    if len(body) > MAX_BODY_BYTES:  # every character is at least one byte
        return len(body)
    return len(body.encode("utf-8", "surrogatepass"))


def _json_object(body: str) -> dict[str, Any]:
    """Strict JSON: no NaN or Infinity, no repeated keys, bounded depth.

    Characters are checked field by field (by the request's rules), so that the reason names
    the field; a control character outside a string is a JSON syntax error.
    """
    try:
        data = json.loads(
            body,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise RequestRejectedError(
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RequestRejectedError(
            f"the body is nested too deeply to read: a request is at most {MAX_DEPTH} levels deep"
        ) from None
    if not isinstance(data, dict):
        raise RequestRejectedError(
            f"the body is JSON but not an object (found {type(data).__name__})"
        )
    _check_depth(data)
    return data


def _refuse_constant(name: str) -> NoReturn:
    raise RequestRejectedError(f"the body is not JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestRejectedError(f"the body is not JSON: {shown(text)} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RequestRejectedError(
                f"the body repeats the key {shown(key)}: which value is meant is ambiguous"
            )
        result[key] = value
    return result


def _check_depth(data: dict[str, Any]) -> None:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RequestRejectedError(
                f"the body is nested more than {MAX_DEPTH} levels deep: a request never is"
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _problem(error: ErrorDetails) -> str:
    """One validation error as 'field: what is wrong', in the request's own field names."""
    where = _format_loc(error["loc"]) or "(body)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    if kind == "value_error":
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    return f"{where}: {error['msg']}"


def _format_loc(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if part.isidentifier() else shown(part)
            text += f".{name}" if text else name
    return text
