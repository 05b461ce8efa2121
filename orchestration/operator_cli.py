"""``wavepilot status|approve|reject`` as terminal commands: environment, errors, exit status.

The data and decisions are :mod:`orchestration.operator_commands` (the Slack bot uses them
too); this module is the command-line shell around them and the only part that reaches the
embedded runtime (``--local``), which is never deployed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from rich.text import Text

from orchestration.operator_commands import (
    EXIT_OK,
    EXIT_REFUSED,
    IAM_HINT,
    MigrationStatus,
    OperatorFailedError,
    OperatorUsageError,
    OutputFormat,
    WaveStatus,
    check_slack_user,
    decide,
    id_kind,
    migration_status,
    render_migration_status,
    render_wave_status,
    wave_status,
)
from orchestration.pipeline.approvals import Decision, GroupMembership, no_groups

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
    from orchestration.adapters import aws
    from orchestration.handlers import wiring

    # The embedded runtime is never deployed: the Slack bot (on Lambda) imports this module.
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
def aws_errors(local: bool) -> Iterator[None]:
    """Turn the AWS SDK's failures into what to do about them."""
    from orchestration.settings import settings

    where = "the embedded runtime" if local else "AWS"
    try:
        yield
    except NoCredentialsError:
        raise OperatorUsageError(
            "no AWS credentials: configure the AWS environment (a profile, SSO, a role), "
            "or pass --local to reach a running `make demo`"
        ) from None
    except NoRegionError:
        raise OperatorUsageError("no AWS Region: set AWS_REGION") from None
    except ProfileNotFound as exc:
        raise OperatorUsageError(f"{exc}: check AWS_PROFILE") from None
    except EndpointConnectionError as exc:
        raise OperatorUsageError(f"cannot reach {where}: {exc}") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, text = error.get("Code", "?"), error.get("Message", "")
        if code == "ResourceNotFoundException":
            config = settings()
            raise OperatorUsageError(
                f"{code}: {text} (table {config.table_name!r} in {config.aws_region}: "
                "set DYNAMODB_TABLE_NAME and AWS_REGION as deployed, or pass --local)"
            ) from None
        hint = f" ({IAM_HINT})" if "AccessDenied" in code or code == "UnauthorizedOperation" else ""
        if exc.operation_name in {"SendTaskSuccess", "SendTaskFailure"}:
            raise OperatorFailedError(
                f"Step Functions refused {exc.operation_name}: {code}: {text}{hint}. The decision "
                "is recorded in the table but the execution was not told: it still waits at its "
                "gate until the approval times out"
            ) from None
        raise OperatorFailedError(f"{where} refused: {code}: {text}{hint}") from None
    except BotoCoreError as exc:
        raise OperatorFailedError(f"{where}: {exc}") from None


def _complain(command: str, message: str) -> None:
    print(f"wavepilot {command}: {message}", file=sys.stderr)


def run_status(
    target: str | None,
    *,
    wave: str | None,
    output: OutputFormat = "text",
    local: bool = False,
    now: datetime | None = None,
) -> int:
    """``wavepilot status``: exit 0, 1 if AWS refused; OperatorUsageError means exit 2."""
    from orchestration.handlers import wiring
    from orchestration.terminal import terminal

    if (target is None) == (wave is None):
        raise OperatorUsageError("give a migration or approval ID, or --wave WAVE (one of them)")
    if target is not None:
        id_kind(target)
    connect(local=local)
    try:
        with aws_errors(local):
            store = wiring.store()
            status: MigrationStatus | WaveStatus = (
                migration_status(store, target)
                if target is not None
                else wave_status(store, wave or "")
            )
    except OperatorFailedError as exc:
        _complain("status", str(exc))
        return EXIT_REFUSED
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
    """``wavepilot approve|reject``: exit 0 decided, 1 refused; OperatorUsageError: exit 2."""
    from orchestration.handlers import wiring
    from orchestration.terminal import terminal

    command = "approve" if decision == "APPROVED" else "reject"
    id_kind(target)
    check_slack_user(user)
    if decision == "REJECTED" and not reason.strip():
        raise OperatorUsageError("a rejection needs --reason (it is shown in the Slack thread)")
    environment = connect(local=local)
    try:
        with aws_errors(local):
            result = decide(
                wiring.store(),
                wiring.approvals(),
                target,
                decision,
                user=user,
                reason=reason,
                is_member=environment.is_member(),
            )
    except OperatorFailedError as exc:
        _complain(command, str(exc))
        return EXIT_REFUSED
    if not result.decided:
        _complain(command, f"refused: {result.message}")
        return EXIT_REFUSED
    console = terminal()
    console.print(Text(result.message), soft_wrap=True)
    follow = f"wavepilot status {result.migration_id}" + (" --local" if local else "")
    console.print(Text(f"follow it: {follow}", style="dim"), soft_wrap=True)
    return EXIT_OK
