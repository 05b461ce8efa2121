"""Where the handlers' logs go on the embedded default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration.observability import SERVICE


@contextmanager
def pipeline_logs_to(path: Path) -> Iterator[Path]:
    """Handlers log JSON lines (as they would to CloudWatch); here they go to a file."""
    pipeline_logger = logging.getLogger(SERVICE)  # the logging.Logger under Powertools' Logger
    handlers = list(pipeline_logger.handlers)
    file_handler = logging.FileHandler(path)
    for handler in handlers:
        pipeline_logger.removeHandler(handler)
    pipeline_logger.addHandler(file_handler)
    try:
        yield path
    finally:
        pipeline_logger.removeHandler(file_handler)
        file_handler.close()
        for handler in handlers:
            pipeline_logger.addHandler(handler)
