"""The wave manifest's JSON Schema, exported from the models for editors."""

from __future__ import annotations

import json
from typing import Any

from orchestration.manifests.model import Wave

SCHEMA_PATH = "manifests/wave.schema.json"
SCHEMA_ID = "https://wavepilot.dev/schemas/wave.schema.json"


def wave_json_schema() -> dict[str, Any]:
    schema = Wave.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Wavepilot wave manifest",
    }


def wave_json_schema_text() -> str:
    """The schema as committed: stable key order, two-space indent, trailing newline."""
    return json.dumps(wave_json_schema(), indent=2, ensure_ascii=False) + "\n"
