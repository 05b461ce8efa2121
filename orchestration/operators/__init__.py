"""Status and decisions for operators, shared by ``wavepilot status|approve|reject`` and the
Slack bot's ``/wavepilot`` commands.

Plain data and checks only: the Slack Lambda imports this package, so nothing here renders
(the terminal's tables are :mod:`orchestration.operator_render`, the terminal commands
:mod:`orchestration.operator_cli`) or knows about exit statuses
(:mod:`orchestration.cli_errors`).

- :mod:`.ids`: approval and migration IDs, Slack user IDs, the operator's two errors;
- :mod:`.queries`: a migration's or a wave's status (``as_json()`` for ``--format json``);
- :mod:`.decisions`: deciding an approval gate through the approval service (audited).
"""

from orchestration.operators.decisions import DecisionResult, decide, resolve_approval
from orchestration.operators.ids import (
    APPROVAL_PREFIX,
    MIGRATION_PREFIX,
    OperatorFailedError,
    OperatorUsageError,
    check_reason,
    check_slack_user,
    id_kind,
)
from orchestration.operators.queries import (
    AuditEntry,
    MigrationStatus,
    StepEntry,
    WaveRow,
    WaveStatus,
    migration_status,
    wave_status,
)

__all__ = [
    "APPROVAL_PREFIX",
    "MIGRATION_PREFIX",
    "AuditEntry",
    "DecisionResult",
    "MigrationStatus",
    "OperatorFailedError",
    "OperatorUsageError",
    "StepEntry",
    "WaveRow",
    "WaveStatus",
    "check_reason",
    "check_slack_user",
    "decide",
    "id_kind",
    "migration_status",
    "resolve_approval",
    "wave_status",
]
