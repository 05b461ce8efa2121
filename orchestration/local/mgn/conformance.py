"""Checks values against botocore's MGN model, for requests received and responses produced.

`botocore.validate.validate_parameters` checks required members, types and minimums; MGN's
servers also enforce maximums, enums and patterns, which botocore leaves to the service. Both
are applied here so the emulator cannot drift from the real API in either direction: a bad
request is a ValidationException, a bad response is an emulator bug.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from botocore.exceptions import ParamValidationError
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.validate import validate_parameters

# Members carried outside the JSON body (e.g. ThrottlingException's Retry-After header).
_NON_BODY_LOCATIONS = frozenset({"header", "headers", "uri", "querystring", "statusCode"})


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def body_members(shape: StructureShape) -> dict[str, Shape]:
    """The members of `shape` that travel in the JSON body."""
    return {
        name: member
        for name, member in shape.members.items()
        if member.serialization.get("location") not in _NON_BODY_LOCATIONS
    }


def shape_problems(value: Any, shape: Shape) -> list[str]:
    """Every way `value` breaks `shape`; an empty list means it conforms."""
    problems: list[str] = []
    try:
        validate_parameters(value, shape)
    except ParamValidationError as error:
        problems.extend(
            line.strip() for line in str(error.kwargs["report"]).splitlines() if line.strip()
        )
    _check_service_constraints(value, shape, "", problems)
    return problems


def _check_service_constraints(value: Any, shape: Shape, path: str, problems: list[str]) -> None:
    """Maximums, enums and patterns: the constraints botocore's client-side check skips."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is not None:
                _check_service_constraints(member_value, member, f"{path}.{name}", problems)
    elif isinstance(shape, ListShape) and isinstance(value, list | tuple):
        _check_maximum(len(value), shape.metadata, f"{path} (length)", problems)
        for index, item in enumerate(value):
            _check_service_constraints(item, shape.member, f"{path}[{index}]", problems)
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        _check_maximum(len(value), shape.metadata, f"{path} (entries)", problems)
        for key, item in value.items():
            _check_service_constraints(key, shape.key, f"{path} (key {key!r})", problems)
            _check_service_constraints(item, shape.value, f"{path}.{key}", problems)
    elif isinstance(shape, StringShape) and isinstance(value, str):
        _check_string(value, shape, path, problems)
    elif shape.type_name in {"integer", "long"} and isinstance(value, int):
        _check_maximum(value, shape.metadata, path, problems)


def _check_string(value: str, shape: StringShape, path: str, problems: list[str]) -> None:
    _check_maximum(len(value), shape.metadata, f"{path} (length)", problems)
    if shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {', '.join(shape.enum)}")
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        problems.append(f"{path}: {value!r} does not match pattern {pattern}")


def _check_maximum(size: int, metadata: dict[str, Any], path: str, problems: list[str]) -> None:
    maximum = metadata.get("max")
    if maximum is not None and size > maximum:
        problems.append(f"{path}: {size} is above the maximum {maximum}")
