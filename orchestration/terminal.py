"""The rich console every command prints through."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped output (CI logs, files) gets a fixed width so tables are not cut at 80 columns.
PIPED_WIDTH = 140


def terminal() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)
