"""Step Functions execution names, and how long a migration ID may be because of them.

Every execution of a migration is named after it: ``<migrationId>-<revision>`` for the
migration, ``<migrationId>-<revision>-rollback-<unix seconds>`` for a rollback an operator
asks for. Step Functions allows at most 80 characters and refuses whitespace, brackets,
wildcards, most punctuation and control characters (CloudWatch logging wants only
``0-9 A-Z a-z - _``). The request's ``migrationId`` rule is derived from these names so that
every one of them is valid and whole: a migration's executions are found by the prefix
``<migrationId>-``.
"""

from __future__ import annotations

from datetime import datetime

from orchestration.request_identity import REVISION_LENGTH

MAX_EXECUTION_NAME = 80
_ROLLBACK_MARK = "-rollback-"
_UNIX_SECONDS_DIGITS = 10  # until the year 2286
MAX_MIGRATION_ID_LENGTH = (
    MAX_EXECUTION_NAME - 1 - REVISION_LENGTH - len(_ROLLBACK_MARK) - _UNIX_SECONDS_DIGITS
)


def execution_name(migration_id: str, revision: str) -> str:
    """The execution that runs one revision of a migration."""
    return f"{migration_id}-{revision}"[:MAX_EXECUTION_NAME]


def rollback_execution_name(migration_id: str, revision: str, now: datetime) -> str:
    """The execution that only rolls a migration back, started by an operator at ``now``."""
    suffix = f"{_ROLLBACK_MARK}{int(now.timestamp())}"
    return execution_name(migration_id, revision)[: MAX_EXECUTION_NAME - len(suffix)] + suffix


def migration_prefix(migration_id: str) -> str:
    """What the name of every execution of this migration starts with."""
    return f"{migration_id}-"
