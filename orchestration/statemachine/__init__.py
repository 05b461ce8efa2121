"""The migration state machine: one ASL file with ``${Name}`` placeholders.

Terraform renders it with ``templatefile()``; the local runtime renders it here with the
same placeholders. Both must supply every placeholder and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
DEFINITION_FILE = "migration.asl.json"


def template() -> str:
    return resources.files(__package__).joinpath(DEFINITION_FILE).read_text(encoding="utf-8")


def placeholders() -> set[str]:
    return set(PLACEHOLDER.findall(template()))


@dataclass(frozen=True, slots=True)
class Timings:
    """Polling and time limits in seconds. ``aws()`` for production, ``local()`` for the demo."""

    poll_initial_seconds: int
    poll_max_seconds: int
    poll_backoff: float
    retry_interval_seconds: int
    task_timeout_seconds: int
    replication_timeout_seconds: int
    launch_timeout_seconds: int
    approval_timeout_seconds: int
    execution_timeout_seconds: int
    # Waiting for a slot of MGN's job quota: retries grow from poll_initial_seconds by
    # poll_backoff up to this (with full jitter), so hundreds of waiting executions ask MGN a
    # few times a minute, not every 30 s each, and a freed slot still goes in seconds.
    quota_retry_max_seconds: int

    @classmethod
    def aws(cls) -> Timings:
        return cls(
            poll_initial_seconds=60,
            poll_max_seconds=900,
            poll_backoff=1.5,
            retry_interval_seconds=5,
            task_timeout_seconds=300,
            replication_timeout_seconds=7 * 24 * 3600,
            launch_timeout_seconds=3600,
            approval_timeout_seconds=3 * 24 * 3600,
            # Standard workflows' own limit: a wave merged months before its window still
            # reaches it (the cutover waits for the window inside the execution).
            execution_timeout_seconds=365 * 24 * 3600,
            quota_retry_max_seconds=300,
        )

    @classmethod
    def local(cls) -> Timings:
        return cls(
            poll_initial_seconds=1,
            poll_max_seconds=2,
            poll_backoff=1.5,
            retry_interval_seconds=1,
            # Generous in real seconds: hundreds of executions share one process locally.
            task_timeout_seconds=120,
            replication_timeout_seconds=900,
            launch_timeout_seconds=600,
            approval_timeout_seconds=300,
            execution_timeout_seconds=3600,
            quota_retry_max_seconds=2,
        )

    def placeholders(self) -> dict[str, str]:
        return {_pascal(name): str(value) for name, value in asdict(self).items()}


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


FUNCTION_PLACEHOLDERS = {
    "ValidateInputFunctionArn": "validate_input",
    "PrepareSourceFunctionArn": "prepare_source",
    "TriggerMigrationFunctionArn": "trigger_migration",
    "VerifyMigrationFunctionArn": "verify_migration",
    "RequestApprovalFunctionArn": "request_approval",
    "FinalizeCutoverFunctionArn": "finalize_cutover",
    "RollbackHandlerFunctionArn": "rollback_handler",
}


def render(values: Mapping[str, str]) -> str:
    """The definition with every placeholder replaced; unknown or missing names are errors."""
    wanted = placeholders()
    missing, extra = wanted - values.keys(), values.keys() - wanted
    if missing or extra:
        raise ValueError(
            f"placeholders missing: {sorted(missing)}; not in the template: {sorted(extra)}"
        )
    text = PLACEHOLDER.sub(lambda m: values[m.group(1)], template())
    json.loads(text)  # a rendered definition must be JSON
    return text


def render_definition(function_arns: Mapping[str, str], timings: Timings) -> dict[str, Any]:
    """Render with function ARNs keyed by function name (``validate_input``...)."""
    values = {
        placeholder: function_arns[name] for placeholder, name in FUNCTION_PLACEHOLDERS.items()
    }
    rendered: dict[str, Any] = json.loads(render({**values, **timings.placeholders()}))
    return rendered
