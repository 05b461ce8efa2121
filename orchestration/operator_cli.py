"""``wavepilot status|approve|reject`` as terminal commands: environment, errors, rendering.

The status and decisions are :mod:`orchestration.operators` (the Slack bot shares them); this
module is the command-line shell around them: it reaches AWS or, with ``--local``, a running
embedded system (``orchestration/local/connection.py``, never deployed), draws the result with
:mod:`orchestration.operator_render`, and reports failures through
:mod:`orchestration.cli_errors`, which owns the exit statuses.

``--as`` names the Slack user deciding; the CLI cannot prove who runs it, so on AWS the
boundary is IAM (the table, ``events:PutEvents`` and ``states:SendTaskSuccess`` /
``SendTaskFailure``) and every attempt is audited under the ID.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from rich.text import Text

from orchestration.cli_errors import (
    EXIT_OK,
    CommandFailedError,
    UsageError,
    access_denied,
    explain,
)
from orchestration.operator_render import render_migration_status, render_wave_status
from orchestration.operators import (
    MigrationStatus,
    OperatorFailedError,
    OperatorUsageError,
    WaveStatus,
    check_reason,
    check_slack_user,
    decide,
    id_kind,
    migration_status,
    wave_status,
)
from orchestration.pipeline.approvals import Decision, GroupMembership, no_groups
from orchestration.pipeline.finalize_now import FinalizeNowError
from orchestration.pipeline.parking import ParkError
from orchestration.pipeline.wave_control import WaveAction, WaveControlError, wave_control_text
from orchestration.terminal import terminal

IAM_HINT = (
    "the CLI needs dynamodb:GetItem, Query, PutItem and UpdateItem on the state table and its "
    "gsi1 index, events:PutEvents on the bus and states:SendTaskSuccess/SendTaskFailure"
)
OutputFormat = Literal["text", "json"]
# Not set up to reach AWS (or the embedded runtime): the operator fixes how the command is
# run, so it is a usage error here; `publish`, run by CI, reports these as failures.
NOT_SET_UP = (NoCredentialsError, NoRegionError, ProfileNotFound, EndpointConnectionError)
LOCAL_HINT = "or pass --local to reach a running `make demo`"

# --- the commands ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Environment:
    """Where the commands run: AWS, or the embedded runtime described by a connection file."""

    local: bool
    group_members: tuple[str, ...] = ()

    def is_member(self) -> GroupMembership:
        if not self.local:
            return no_groups
        members = self.group_members
        return lambda user, group: group.startswith("S") and user in members


def connect(*, local: bool) -> Environment:
    """With ``local``, load the connection file into the environment; forget cached clients."""
    if not local:
        return Environment(local=False)
    from orchestration import wiring
    from orchestration.adapters import aws

    # The embedded runtime is never deployed: only --local loads it.
    from orchestration.local.connection import (
        LOCAL_GROUP_MEMBERS_KEY,
        ConnectionFileError,
        load_connection,
    )

    try:
        environment = load_connection()
    except ConnectionFileError as exc:
        raise OperatorUsageError(str(exc)) from None
    aws.reset()
    wiring.reset()
    members = environment.get(LOCAL_GROUP_MEMBERS_KEY, "")
    return Environment(local=True, group_members=tuple(m for m in members.split(",") if m))


@contextmanager
def operator_errors(*, local: bool) -> Iterator[None]:
    """The operator commands' failures as :mod:`orchestration.cli_errors` reports them.

    The operators' own errors become a usage error (exit 2) or a failed command (exit 1), and
    so does an environment not set up to reach AWS (``NOT_SET_UP``, exit 2). Two AWS failures
    only these commands meet get their own advice (a table that is not there, a gate that
    could not be told); every other AWS failure reads as it does for any command, naming what
    was called and, when access is denied, what the CLI needs."""
    where = "the embedded runtime" if local else "AWS"
    try:
        yield
    except OperatorUsageError as exc:
        raise UsageError(str(exc)) from None
    except OperatorFailedError as exc:
        raise CommandFailedError(str(exc)) from None
    except ClientError as exc:
        raise _refused(exc, where) from None
    except BotoCoreError as exc:
        explanation = explain(exc, where=where, iam_hint=IAM_HINT)
        message = explanation.message if explanation else str(exc)
        if isinstance(exc, NoCredentialsError):
            message = f"{message}; {LOCAL_HINT}"
        if isinstance(exc, NOT_SET_UP):
            raise UsageError(message) from exc
        raise CommandFailedError(message) from exc


def _refused(exc: ClientError, where: str) -> UsageError | CommandFailedError:
    from orchestration.settings import settings

    error = exc.response.get("Error", {})
    code, text = error.get("Code", "?"), error.get("Message", "")
    if code == "ResourceNotFoundException":
        config = settings()
        return UsageError(
            f"{code}: {text} (table {config.table_name!r} in {config.aws_region}: "
            "set DYNAMODB_TABLE_NAME and AWS_REGION as deployed, or pass --local)"
        )
    if exc.operation_name in {"SendTaskSuccess", "SendTaskFailure"}:
        hint = f" ({IAM_HINT})" if access_denied(exc) else ""
        return CommandFailedError(
            f"Step Functions refused {exc.operation_name}: {code}: {text}{hint}. The decision "
            "is recorded in the table but the execution was not told: it still waits at its "
            "gate until the approval times out"
        )
    explanation = explain(exc, where=where, iam_hint=IAM_HINT)
    return CommandFailedError(explanation.message if explanation else f"{where} refused: {exc}")


def run_status(
    target: str | None,
    *,
    wave: str | None,
    output: OutputFormat = "text",
    local: bool = False,
    now: datetime | None = None,
) -> int:
    """``wavepilot status``: a migration (or an approval's) or a wave, as tables or JSON."""
    from orchestration import wiring

    with operator_errors(local=local):
        if (target is None) == (wave is None):
            raise UsageError("give a migration or approval ID, or --wave WAVE (one of them)")
        if target is not None:
            id_kind(target)
        connect(local=local)
        store = wiring.store()
        status: MigrationStatus | WaveStatus = (
            migration_status(store, target)
            if target is not None
            else wave_status(store, wave or "")
        )
    if output == "json":
        sys.stdout.write(json.dumps(status.as_json(), indent=2) + "\n")
    elif isinstance(status, WaveStatus):
        terminal().print(render_wave_status(status))
    else:
        terminal().print(render_migration_status(status, now or datetime.now(UTC), local=local))
    return EXIT_OK


def run_decision(
    decision: Decision, target: str, *, user: str, reason: str = "", local: bool = False
) -> int:
    """``wavepilot approve|reject``: exit 0 once decided; a refusal is a failed command."""
    from orchestration import wiring

    with operator_errors(local=local):
        id_kind(target)
        check_slack_user(user)
        check_reason(decision, reason)
        environment = connect(local=local)
        result = decide(
            wiring.store(),
            wiring.approvals(),
            target,
            decision,
            user=user,
            reason=reason,
            is_member=environment.is_member(),
        )
    if not result.decided:
        raise CommandFailedError(f"refused: {result.message}")
    console = terminal()
    console.print(Text(result.message), soft_wrap=True)
    follow = f"wavepilot status {result.migration_id}" + (" --local" if local else "")
    console.print(Text(f"follow it: {follow}", style="dim"), soft_wrap=True)
    return EXIT_OK


def run_wave_control(
    action: WaveAction, wave: str, *, user: str, reason: str = "", local: bool = False
) -> int:
    """``wavepilot pause|resume|cancel``: exit 0 once done; a refusal is a failed command."""
    from orchestration import wiring

    with operator_errors(local=local):
        check_slack_user(user)
        environment = connect(local=local)
        try:
            done = wiring.wave_control().change(
                wave, action, user=user, reason=reason, is_member=environment.is_member()
            )
        except WaveControlError as exc:
            raise CommandFailedError(f"refused: {exc}") from None
    console = terminal()
    console.print(Text(wave_control_text(done)), soft_wrap=True)
    follow = f"wavepilot status --wave {wave}" + (" --local" if local else "")
    console.print(Text(f"follow it: {follow}", style="dim"), soft_wrap=True)
    return EXIT_OK


def run_retry(target: str, *, user: str, reason: str = "", local: bool = False) -> int:
    """``wavepilot retry``: a parked migration's test launch starts again; exit 0 once the
    execution was told, a refusal (not an operator, not parked) is a failed command."""
    from orchestration import wiring

    with operator_errors(local=local):
        if id_kind(target) != "migration":
            raise UsageError("retry a migration (mig-...), not an approval")
        check_slack_user(user)
        environment = connect(local=local)
        try:
            done = wiring.parks().decide(
                target, "retry", user=user, reason=reason, is_member=environment.is_member()
            )
        except ParkError as exc:
            raise CommandFailedError(f"refused: {exc}") from None
    console = terminal()
    console.print(
        Text(f"retry of {done.target_vm_name}: its test launch starts again"), soft_wrap=True
    )
    follow = f"wavepilot status {target}" + (" --local" if local else "")
    console.print(Text(f"follow it: {follow}", style="dim"), soft_wrap=True)
    return EXIT_OK


def run_finalize(target: str, *, user: str, reason: str = "", local: bool = False) -> int:
    """``wavepilot finalize``: a held cutover (finalizeAfter) is finalized within minutes;
    exit 0 once asked, a refusal (not an operator, not held) is a failed command."""
    from orchestration import wiring

    with operator_errors(local=local):
        if id_kind(target) != "migration":
            raise UsageError("finalize a migration (mig-...), not an approval")
        check_slack_user(user)
        environment = connect(local=local)
        try:
            done = wiring.finalize_now().request(
                target, user=user, reason=reason, is_member=environment.is_member()
            )
        except FinalizeNowError as exc:
            raise CommandFailedError(f"refused: {exc}") from None
    console = terminal()
    console.print(
        Text(f"finalize now: {done.target_vm_name} is finalized within minutes"), soft_wrap=True
    )
    follow = f"wavepilot status {target}" + (" --local" if local else "")
    console.print(Text(f"follow it: {follow}", style="dim"), soft_wrap=True)
    return EXIT_OK
