"""``wavepilot status|approve|reject``: on the embedded system, from this and another process."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from orchestration import cli, wiring
from orchestration.adapters import aws
from orchestration.adapters.state_store import ApprovalRecord, MigrationStore
from orchestration.cli_errors import (
    EXIT_FAILED,
    CommandFailedError,
    Explanation,
    UsageError,
    explain,
)
from orchestration.local.connection import (
    CONNECTION_KEYS,
    DEFAULT_CONNECTION_FILE,
    LOCAL_GROUP_MEMBERS_KEY,
    read_connection_file,
    remove_connection_file,
    write_connection_file,
)
from orchestration.local.driver import MigrationDriver
from orchestration.local.provision import provision
from orchestration.local.system import LOCAL_GROUP_MEMBER, EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.naming import ResourceNames
from orchestration.operator_cli import IAM_HINT, operator_errors
from orchestration.operators import OperatorFailedError, OperatorUsageError
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
ALICE = "U07ALICE001"  # wave-1 lists her as an approver
BOB = "U07BOBOPS01"  # an operator of wave-1, not an approver
MALLORY = "U0MALLORY01"  # in no list of wave-1


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _wavepilot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _at_the_gate(migration_ids: Iterable[str], timeout: float = 30.0) -> dict[str, str]:
    """Wait until every migration waits at its approval gate; its pending approval IDs."""
    wanted = set(migration_ids)
    store = wiring.store()
    deadline = time.monotonic() + timeout
    while True:
        gates: dict[str, str] = {}
        for migration_id in wanted:
            record = store.get(migration_id)
            if record is None or record.step != "AwaitApproval" or record.approval_id is None:
                continue
            approval = store.approval(record.approval_id)
            if approval is not None and approval.status == "PENDING":
                gates[migration_id] = approval.approval_id
        if len(gates) == len(wanted):
            return gates
        assert time.monotonic() < deadline, f"not at the approval gate: {wanted - set(gates)}"
        time.sleep(0.2)


def _another_terminal(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``wavepilot`` in a fresh process that knows nothing of AWS but the connection file."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in CONNECTION_KEYS and not key.startswith("AWS_") and key != "MOTO_PORT"
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_operator_follows_approves_and_rejects_migrations(
    system: EmbeddedSystem,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    requests: list[MigrationRequest] = example_requests()[:2]
    approved, rejected = (r.migration_id for r in requests)
    system.seed([spec_of(r) for r in requests])
    driver = MigrationDriver(system)
    driver.send(requests)
    gates = _at_the_gate([approved, rejected])

    # status: waiting at the gate, with the approval and how to decide it
    code, out, _ = _wavepilot(capsys, "status", approved)
    assert code == cli.EXIT_OK
    assert f"Migration {approved}" in out
    assert "account 111122223333, us-east-1" in out  # its lane: wave-1's target
    assert "AwaitApproval (WAITING)" in out
    assert f"{gates[approved]} PENDING; approvers U07ALICE001, S07MIGLEADS; expires" in out
    assert f"wavepilot approve {gates[approved]} --as" in out
    assert "VerifyTestLaunch" in out  # the step history

    with system.connection_file() as connection:
        assert connection == DEFAULT_CONNECTION_FILE
        assert stat.S_IMODE((tmp_path / connection).stat().st_mode) == 0o600

        # a non-approver is refused, and the attempt is audited
        code, out, err = _wavepilot(capsys, "approve", approved, "--as", BOB, "--local")
        assert code == cli.EXIT_INVALID
        assert f"wavepilot approve: refused: <@{BOB}> is not an approver of wave-1" in err
        trail = wiring.store().audit_trail(gates[approved])
        assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
            (BOB, "approve", "refused")
        ]

        # an approver decides from another terminal: only the connection file tells it where
        other = _another_terminal(tmp_path, "approve", approved, "--as", ALICE, "--local")
        assert other.returncode == cli.EXIT_OK, other.stderr
        assert f"approved by <@{ALICE}> [{gates[approved]}]: the cutover goes ahead" in other.stdout

        # a rejection, by approval ID, with its reason, by a member of the wave's Slack group
        # (with --local, the embedded runtime's simulated directory answers membership)
        code, out, err = _wavepilot(
            capsys,
            "reject",
            gates[rejected],
            "--as",
            LOCAL_GROUP_MEMBER,
            "--reason",
            "app team not ready",
            "--local",
        )
        assert code == cli.EXIT_OK, err
        assert f"rejected by <@{LOCAL_GROUP_MEMBER}>" in out
        assert "app team not ready; the migration rolls back" in out

    assert not (tmp_path / DEFAULT_CONNECTION_FILE).exists()
    outcomes = driver.wait([approved, rejected], approver=None, timeout=60)
    assert (outcomes[approved].status, outcomes[approved].record_status) == (
        "SUCCEEDED",
        "COMPLETED",
    )
    assert (outcomes[rejected].status, outcomes[rejected].record_status) == (
        "FAILED",
        "ROLLED_BACK",
    )

    # deciding twice says who decided first
    code, _, err = _wavepilot(capsys, "approve", gates[approved], "--as", ALICE)
    assert code == cli.EXIT_INVALID
    assert f"refused: already approved by <@{ALICE}> at " in err

    # the wave, as JSON
    code, out, _ = _wavepilot(capsys, "status", "--wave", "wave-1", "--format", "json")
    assert code == cli.EXIT_OK
    wave = json.loads(out)
    assert wave["wave"] == "wave-1"
    rows = {row["migrationId"]: row for row in wave["migrations"]}
    assert set(rows) == {approved, rejected}
    assert (rows[approved]["status"], rows[approved]["step"]) == ("COMPLETED", "FinalizeCutover")
    assert (rows[rejected]["status"], rows[rejected]["step"]) == ("ROLLED_BACK", "Rollback")
    assert list(rows[approved]) == [
        "migrationId",
        "appName",
        "targetVmName",
        "status",
        "step",
        "stepStatus",
        "updatedAt",
        "pendingApprovalId",
    ]
    assert all(row["pendingApprovalId"] is None for row in rows.values())

    # one migration, as JSON: its approval and every attempt at deciding it
    code, out, _ = _wavepilot(capsys, "status", approved, "--format", "json")
    assert code == cli.EXIT_OK
    migration = json.loads(out)
    assert (migration["targetAccountId"], migration["targetRegion"]) == (
        "111122223333",
        "us-east-1",
    )  # wave-1's lane
    assert migration["approval"]["status"] == "APPROVED"
    assert migration["approval"]["decidedBy"] == ALICE
    assert [(a["actor"], a["outcome"]) for a in migration["approval"]["audit"]] == [
        (BOB, "refused"),
        (ALICE, "decided"),
        (ALICE, "refused"),
    ]
    assert migration["history"][-1]["step"] == "FinalizeCutover"

    # the wave as a table
    code, out, _ = _wavepilot(capsys, "status", "--wave", "wave-1")
    assert code == cli.EXIT_OK
    assert "intranet-web-01" in out
    assert "ROLLED_BACK: 1" in out

    # unknown IDs are usage errors
    for argv in (
        ("status", "mig-0000000000000000"),
        ("status", "--wave", "wave-9"),
        ("approve", "apv-0000000000000000", "--as", ALICE),
        ("status", "intranet-web-01"),
    ):
        code, _, err = _wavepilot(capsys, *argv)
        assert code == cli.EXIT_USAGE, argv
        assert err.startswith(f"wavepilot {argv[0]}: ")


def test_the_connection_file_round_trips_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".wavepilot" / "local.json"
    environment = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ENDPOINT_URL_MGN": "http://127.0.0.1:4567",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "DYNAMODB_TABLE_NAME": "wavepilot-local-state",
        LOCAL_GROUP_MEMBERS_KEY: "U0LOCALLEAD1",
        "CALLBACK_SIGNING_SECRET": "never written",
        "HOME": "/home/someone",
    }

    write_connection_file(path, environment)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_connection_file(path) == {
        key: value
        for key, value in environment.items()
        if key not in {"CALLBACK_SIGNING_SECRET", "HOME"}
    }
    assert "never written" not in path.read_text()
    remove_connection_file(path, endpoint="http://127.0.0.1:9999")  # another runtime's: kept
    assert path.exists()
    remove_connection_file(path, endpoint="http://127.0.0.1:4566")
    assert not path.exists()
    with pytest.raises(ValueError, match="DYNAMODB_TABLE_NAME"):
        write_connection_file(path, {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})


@pytest.mark.parametrize(
    "argv",
    [
        ("status", "mig-0000000000000000", "--local"),
        ("approve", "mig-0000000000000000", "--as", ALICE, "--local"),
        ("reject", "apv-0000000000000000", "--as", ALICE, "--reason", "no", "--local"),
    ],
)
def test_local_without_a_running_demo_is_a_usage_error(
    argv: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)

    code, _, err = _wavepilot(capsys, *argv)

    assert code == cli.EXIT_USAGE
    assert "no .wavepilot/local.json" in err
    assert "is `make demo` running" in err


def test_local_with_a_stale_connection_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    write_connection_file(
        DEFAULT_CONNECTION_FILE,
        {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "DYNAMODB_TABLE_NAME": "t"},
    )

    code, _, err = _wavepilot(capsys, "status", "--wave", "wave-1", "--local")

    assert code == cli.EXIT_USAGE
    assert f"nothing answers at http://127.0.0.1:{port}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("status",), "give a migration or approval ID, or --wave WAVE"),
        (("status", "mig-1", "--wave", "wave-1"), "give a migration or approval ID, or --wave"),
        (("approve", "mig-1", "--as", "alice@contoso.com"), "give the Slack user ID"),
        (("approve", "vm-1", "--as", ALICE), "neither an approval ID (apv-...) nor a migration"),
        (("reject", "mig-1", "--as", ALICE, "--reason", "  "), "a rejection needs --reason"),
    ],
)
def test_usage_errors_are_reported_before_reaching_aws(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _wavepilot(capsys, *argv)

    assert code == cli.EXIT_USAGE
    assert message in err


def test_reject_requires_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["reject", "mig-1", "--as", ALICE])

    assert exited.value.code == cli.EXIT_USAGE
    assert "--reason" in capsys.readouterr().err


@pytest.fixture
def aws_account(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[MigrationStore]:
    """A moto account provisioned like the deployment, the CLI configured as on AWS."""
    names = ResourceNames()
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", names.state_table)
    monkeypatch.setenv("EVENTBRIDGE_BUS_NAME", names.event_bus)
    aws.reset()
    wiring.reset()
    with mock_aws():
        import boto3

        provision(
            names,
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        yield wiring.store()
    aws.reset()
    wiring.reset()


def _gate(store: MigrationStore, approvers: tuple[str, ...], requested_by: str) -> str:
    [request] = example_requests()[:1]
    now = datetime.now(UTC)
    store.record_request(request, request.revision or "", "corr-1", now)
    approval = ApprovalRecord(
        approval_id="apv-00000000000000aa",
        migration_id=request.migration_id,
        wave=request.wave,
        target_vm_name=request.target_vm_name,
        approvers=approvers,
        requested_by=requested_by,
        status="PENDING",
        expires_at=now + timedelta(hours=1),
    )
    store.create_approval(approval, "a-task-token")
    return approval.approval_id


def test_on_aws_a_group_only_wave_is_decided_in_slack(
    aws_account: MigrationStore, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _gate(aws_account, ("S07MIGLEADS",), "Dana <dana@contoso.com>")

    code, _, err = _wavepilot(capsys, "approve", approval_id, "--as", ALICE)

    assert code == cli.EXIT_INVALID
    assert "the CLI cannot ask Slack who is in S07MIGLEADS" in err
    assert [a["outcome"] for a in aws_account.audit_trail(approval_id)] == ["refused"]


def test_on_aws_the_requester_cannot_approve_their_own_change(
    aws_account: MigrationStore, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _gate(aws_account, ("U07DANA0001",), "Dana <@U07DANA0001>")

    code, _, err = _wavepilot(capsys, "approve", approval_id, "--as", "U07DANA0001")

    assert code == cli.EXIT_INVALID
    assert "you requested this change: someone else must approve it" in err


def test_on_aws_a_migration_not_yet_at_its_gate_cannot_be_decided(
    aws_account: MigrationStore, capsys: pytest.CaptureFixture[str]
) -> None:
    [request] = example_requests()[:1]
    aws_account.record_request(request, request.revision or "", "corr-1", datetime.now(UTC))

    code, _, err = _wavepilot(capsys, "approve", request.migration_id, "--as", ALICE)

    assert code == cli.EXIT_INVALID
    assert "has no approval to decide yet: it is at Intake (REQUESTED)" in err


def test_on_aws_a_missing_table_says_which_settings_to_check(
    aws_account: MigrationStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", "not-the-table")
    aws.reset()
    wiring.reset()

    code, _, err = _wavepilot(capsys, "status", "mig-0000000000000000")

    assert code == cli.EXIT_USAGE
    assert "table 'not-the-table' in us-east-1: set DYNAMODB_TABLE_NAME and AWS_REGION" in err


def test_on_aws_an_approver_decides_and_the_gate_is_told(
    aws_account: MigrationStore, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _gate(aws_account, (ALICE, "S07MIGLEADS"), "Dana <dana@contoso.com>")

    code, out, _ = _wavepilot(capsys, "approve", approval_id, "--as", ALICE, "--reason", "go")

    assert code == cli.EXIT_OK
    assert "approved by <@U07ALICE001>" in out
    approval = aws_account.approval(approval_id)
    assert approval is not None
    assert (approval.status, approval.decided_by, approval.reason) == ("APPROVED", ALICE, "go")


def test_on_aws_without_rights_to_resume_the_gate_the_cli_says_so(
    aws_account: MigrationStore, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _gate(aws_account, (ALICE,), "Dana <dana@contoso.com>")

    with Stubber(aws.stepfunctions()) as stepfunctions:
        stepfunctions.add_client_error(
            "send_task_success",
            service_error_code="AccessDeniedException",
            service_message="not authorized to perform: states:SendTaskSuccess",
        )
        code, _, err = _wavepilot(capsys, "approve", approval_id, "--as", ALICE)

    assert code == cli.EXIT_INVALID
    assert "Step Functions refused SendTaskSuccess: AccessDeniedException" in err
    assert "states:SendTaskSuccess/SendTaskFailure" in err
    assert "the execution was not told" in err


def test_an_aws_failure_reads_as_for_any_command_with_what_the_cli_needs() -> None:
    # GIVEN the embedded runtime refusing a query for want of a permission
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no dynamodb:Query"}}, "Query"
    )

    # WHEN an operator command meets it
    with pytest.raises(CommandFailedError) as failed, operator_errors(local=True):
        raise denied

    # THEN it is cli_errors' message for any command, naming what the CLI needs
    assert explain(failed.value) == Explanation(
        EXIT_FAILED,
        "the embedded runtime refused Query: AccessDeniedException: no dynamodb:Query "
        f"({IAM_HINT})",
    )


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [
        (OperatorUsageError("no migration mig-1"), cli.EXIT_USAGE, "no migration mig-1"),
        (OperatorFailedError("no approval yet"), cli.EXIT_INVALID, "no approval yet"),
        # an environment not set up is a usage error here, in cli_errors' words
        (NoCredentialsError(), cli.EXIT_USAGE, "no AWS credentials: configure a profile"),
    ],
)
def test_the_operators_errors_become_the_clis_exit_statuses(
    raised: Exception, status: int, message: str
) -> None:
    # WHEN an operator command fails
    with pytest.raises((UsageError, CommandFailedError)) as failed, operator_errors(local=False):
        raise raised

    # THEN cli_errors gives its exit status and one-line message
    explanation = explain(failed.value)
    assert explanation is not None
    assert explanation.status == status
    assert explanation.message.startswith(message)


def test_an_operator_pauses_and_resumes_a_wave_from_the_command_line(
    system: EmbeddedSystem,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    [request] = example_requests()[:1]
    system.seed([spec_of(request)])
    MigrationDriver(system).send([request])
    _at_the_gate([request.migration_id])

    with system.connection_file():
        # a non-operator is refused (exit 1, says why); a pause needs a reason
        code, _, err = _wavepilot(
            capsys, "pause", "wave-1", "--as", MALLORY, "--reason", "freeze", "--local"
        )
        assert code == cli.EXIT_INVALID
        assert f"refused: <@{MALLORY}> is not an operator of wave-1" in err
        with pytest.raises(SystemExit) as exited:
            cli.main(["pause", "wave-1", "--as", BOB, "--local"])
        assert exited.value.code == 2
        assert "--reason" in capsys.readouterr().err

        code, out, _ = _wavepilot(
            capsys, "pause", "wave-1", "--as", BOB, "--reason", "DNS freeze", "--local"
        )
        assert code == cli.EXIT_OK
        assert "wave-1 paused: no new test launch or cutover starts" in out
        control = wiring.wave_control().state("wave-1")
        assert control is not None
        assert (control.state, control.by, control.reason) == ("PAUSED", BOB, "DNS freeze")

        code, out, _ = _wavepilot(capsys, "resume", "wave-1", "--as", BOB, "--local")
        assert code == cli.EXIT_OK
        assert "wave-1 resumed" in out
    trail = wiring.store().migration_audit_trail(request.migration_id)
    assert [(a["actor"], a["action"], a["outcome"]) for a in trail] == [
        (MALLORY, "wave-pause", "refused"),
        (BOB, "wave-pause", "done"),
        (BOB, "wave-resume", "done"),
    ]
