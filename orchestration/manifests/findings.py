"""Findings: what validation reports, each pinned to a file, line and column."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One problem in one manifest file, pinned to the exact place it is.

    Lines and columns are 1-based, as editors and GitHub annotations count them.
    """

    path: str
    line: int
    col: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.path}:{self.line}:{self.col}: {prefix}{self.message}"

    def github_annotation(self) -> str:
        """The workflow command GitHub Actions turns into an annotation on the line."""
        message = _escape_data(self.message)
        return (
            f"::{self.severity.value} file={_escape_property(self.path)},"
            f"line={self.line},col={self.col},title=wavepilot validate::{message}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "severity": self.severity.value,
            "message": self.message,
        }


def _escape_data(value: str) -> str:
    # Escaping as in @actions/core's toCommandValue/escapeData.
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")
