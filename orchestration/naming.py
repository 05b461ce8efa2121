"""Resource names: the one place the embedded runtime and Terraform take them from.

Terraform builds the same names from ``var.project_name`` and ``var.environment``
(``terraform/locals.tf``); a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResourceNames:
    project: str = "wavepilot"
    environment: str = "local"

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.environment}"

    @property
    def request_queue(self) -> str:
        return f"{self.prefix}-requests"

    @property
    def request_dead_letter_queue(self) -> str:
        return f"{self.prefix}-requests-dlq"

    @property
    def event_bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def state_table(self) -> str:
        return f"{self.prefix}-state"
