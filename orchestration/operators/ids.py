"""What an operator names: approvals (``apv-...``), migrations (``mig-...``), Slack users.

The two errors say whose the failure is, not how a front end reports it: the terminal CLI
turns them into exit statuses (:mod:`orchestration.operator_cli`, through
:mod:`orchestration.cli_errors`), the Slack bot into a warning reply.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestration.pipeline.approvals import Decision

APPROVAL_PREFIX = "apv-"
MIGRATION_PREFIX = "mig-"
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{8,}")


class OperatorUsageError(Exception):
    """The command names something that is not there or cannot be (a malformed or unknown ID,
    a rejection without a reason): the operator has to change the command."""


class OperatorFailedError(Exception):
    """The command is well formed but cannot be carried out now (a migration whose approval
    gate has not opened yet)."""


def id_kind(target: str) -> Literal["approval", "migration"]:
    """``apv-...`` is an approval ID, ``mig-...`` a migration ID; anything else is an error."""
    if target.startswith(APPROVAL_PREFIX) and len(target) > len(APPROVAL_PREFIX):
        return "approval"
    if target.startswith(MIGRATION_PREFIX) and len(target) > len(MIGRATION_PREFIX):
        return "migration"
    raise OperatorUsageError(
        f"{target!r} is neither an approval ID (apv-...) nor a migration ID (mig-...); "
        "`wavepilot status --wave WAVE` lists both"
    )


def check_slack_user(user: str) -> str:
    """``user`` if it is a Slack user ID (decisions are recorded and checked by ID)."""
    if not SLACK_USER_ID.fullmatch(user):
        raise OperatorUsageError(
            f"--as {user!r}: give the Slack user ID of the person deciding (like U07ALICE001; "
            "in Slack: profile, More, Copy member ID), not a name or an email"
        )
    return user


def check_reason(decision: Decision, reason: str) -> None:
    """A rejection says why: the reason is shown in the migration's Slack thread."""
    if decision == "REJECTED" and not reason.strip():
        raise OperatorUsageError("a rejection needs --reason (it is shown in the Slack thread)")
