"""The one shape of JSON that crosses a boundary: status events and the migration's spec.

camelCase keys on the wire (snake_case in Python, either accepted), frozen values, unknown keys
refused. Plain pydantic, nothing from the project: every layer may build on it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["WireModel"]


class WireModel(BaseModel):
    """Base of every model that is JSON on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
