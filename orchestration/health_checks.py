"""What a health check asks and what it found: plain types below the pipeline and adapters.

The migration's spec carries the checks (:mod:`orchestration.pipeline.spec`) and the prober
runs them (:mod:`orchestration.adapters.health`); both import them from here, so an adapter
never imports the pipeline above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestration.wire import WireModel


class HealthCheckSpec(WireModel):
    """One check of a launched instance, as the spec carries it (camelCase on the wire, like
    every part of the spec)."""

    type: Literal["tcp", "http"]
    port: int | None = None
    path: str = "/"
    scheme: Literal["http", "https"] = "http"
    expected_status: int = 200
    timeout_seconds: int = 5

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme == "https" else 80


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; ``target`` names the instance's address, never the resolved one."""

    check: str  # short name for messages: "tcp 22", "https 443/health"
    passed: bool
    detail: str
    type: str = "tcp"
    target: str = ""
