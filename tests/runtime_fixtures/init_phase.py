"""A handler module no other test imports: the init-phase test watches it being imported."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"ok": True}
