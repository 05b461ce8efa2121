"""The command line as a person meets it: one line that says what to do, never a traceback."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from orchestration import cli, wiring
from orchestration.adapters import aws
from orchestration.cli import _parser
from tests.support.gitrepo import GitRepo
from tests.support.waves import VmText, wave_text

WAVE = "manifests/waves/wave-1.yaml"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/wavepilot-requests"


def _free_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No credentials anywhere boto3 looks (and no instance metadata lookups)."""
    # boto3's default session caches the credentials it found first: start a new one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    aws.reset()
    wiring.reset()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("DEBUG", raising=False)
    yield
    aws.reset()
    wiring.reset()


@pytest.fixture
def repo(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    git_repo.commit("first wave")
    monkeypatch.chdir(git_repo.root)
    return git_repo


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.usefixtures("no_aws", "repo")
def test_publish_without_credentials_says_how_to_get_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "publish", "--base", "empty", "--queue-url", QUEUE)

    assert code == cli.EXIT_INVALID
    line = _one_line(err)
    assert line.startswith("wavepilot publish: no AWS credentials: configure a profile")
    assert "0 of 1 messages were sent before that" in line


@pytest.mark.usefixtures("no_aws", "repo")
def test_publish_to_an_unreachable_endpoint_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    code, _, err = _run(capsys, "publish", "--base", "empty", "--queue-url", QUEUE)

    assert code == cli.EXIT_INVALID
    line = _one_line(err)
    assert f"cannot reach SQS at {endpoint}" in line
    assert "publishing the same range again is safe" in line


@pytest.mark.usefixtures("no_aws")
def test_status_without_credentials_says_how_to_get_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "status", "--wave", "wave-1")

    assert code == cli.EXIT_USAGE
    assert "no AWS credentials" in _one_line(err)


@pytest.mark.usefixtures("repo")
@pytest.mark.parametrize("command", ["plan", "publish"])
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--base", "no-such-branch"],
            "unknown revision 'no-such-branch': no branch, tag or commit of that name",
        ),
        (["--base", "empty", "--head", "v9.9"], "unknown revision 'v9.9'"),
        (["--base", "empty", "--repo", "/no/such/folder"], "no such folder: /no/such/folder"),
        (
            ["--base", "empty", "--manifests", "manifest/wave"],
            "no wave files (*.yaml, *.yml) under 'manifest/wave'",
        ),
    ],
    ids=["unknown-base", "unknown-head", "missing-repo-folder", "no-wave-files"],
)
def test_range_mistakes_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], command: str, argv: list[str], message: str
) -> None:
    code, _, err = _run(capsys, command, *argv, *(["--dry-run"] if command == "publish" else []))

    assert code == cli.EXIT_USAGE
    line = _one_line(err)
    assert line.startswith(f"wavepilot {command}: ")
    assert message in line


def test_outside_a_repository_plan_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    code, _, err = _run(capsys, "plan", "--base", "empty")

    assert code == cli.EXIT_USAGE
    assert "is not inside a git repository" in _one_line(err)


def test_validate_a_missing_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    code, _, err = _run(capsys, "validate", "no-such-folder")
    assert code == cli.EXIT_USAGE
    assert _one_line(err) == "wavepilot validate: no such file or folder: no-such-folder"

    code, _, err = _run(capsys, "validate")
    assert code == cli.EXIT_USAGE
    assert "no manifests/waves folder here or above" in _one_line(err)


def test_validate_from_a_subfolder_finds_the_repositorys_waves(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.root / "docs" / "notes").mkdir(parents=True)
    monkeypatch.chdir(repo.root / "docs" / "notes")

    code, out, _ = _run(capsys, "validate")

    assert code == cli.EXIT_OK
    assert out.strip() == "ok: 1 file, 1 wave, 1 VM valid"
    repo.write(WAVE, wave_text("wave-1", [VmText("web-01", instance_type="t3.huge")]))
    code, out, _ = _run(capsys, "validate")
    assert code == cli.EXIT_INVALID
    assert out.startswith(f"../../{WAVE}:23:23: ")


def test_debug_shows_the_traceback_and_the_line(
    repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _run(capsys, "plan", "--base", "no-such-branch", "--debug")
    assert code == cli.EXIT_USAGE
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("wavepilot plan: unknown revision")

    monkeypatch.setenv("DEBUG", "true")  # the seed's variable
    code, _, err = _run(capsys, "plan", "--base", "no-such-branch")
    assert "Traceback (most recent call last)" in err


def test_an_unexpected_error_is_one_line_that_asks_for_a_bug_report(
    repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("orchestration.gitops.plan.build_plan", broken)

    code, _, err = _run(capsys, "plan", "--base", "empty")

    assert code == cli.EXIT_INVALID
    line = _one_line(err)
    assert "unexpected error (ZeroDivisionError: division by zero)" in line
    assert "--debug" in line


def test_version_names_the_installed_package() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert completed.stdout.startswith("wavepilot 0.")


def test_every_command_has_a_summary_and_an_example() -> None:
    [commands] = [
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    ]
    assert sorted(commands.choices) == [
        "approve", "cancel", "demo", "export", "finalize", "import", "pause", "plan", "preflight",
        "publish", "record-prediction", "rehearse", "reject", "resume", "retry", "schema",
        "status",
        "validate",
    ]  # fmt: skip
    for name, subparser in commands.choices.items():
        description = subparser.description or ""
        assert description, name
        assert "\n" not in description, name
        text = subparser.format_help()
        assert f"examples:\n  wavepilot {name}" in text, name
        assert "--debug" in text, name


def test_range_options_say_what_is_required() -> None:
    assert _parser().parse_args(["publish", "--base", "empty"]).head == "HEAD"
    assert "required, except with --comment" in _help("plan")
    assert "(default: HEAD)" in _help("publish")


def _help(command: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(completed.stdout.split())


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (
            ["schema", "--output", "/no/such/folder/wave.schema.json"],
            cli.EXIT_INVALID,
            "wavepilot schema: /no/such/folder/wave.schema.json: No such file or directory",
        ),
        (
            ["schema", "--check", "/no/such/wave.schema.json"],
            cli.EXIT_USAGE,
            "wavepilot schema: no such file: /no/such/wave.schema.json",
        ),
    ],
    ids=["schema-output-missing-folder", "schema-check-missing-file"],
)
def test_schema_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], status: int, message: str
) -> None:
    code, _, err = _run(capsys, *argv)

    assert code == status
    assert _one_line(err) == message


@pytest.mark.parametrize("count", ["0", "1001", "many"])
def test_demo_refuses_a_synthetic_wave_it_cannot_build(
    capsys: pytest.CaptureFixture[str], count: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", "--vms", count])

    assert exited.value.code == cli.EXIT_USAGE
    assert "argument --vms:" in capsys.readouterr().err


@pytest.mark.usefixtures("no_aws")
@pytest.mark.parametrize("command", ["approve", "reject"])
def test_decisions_without_credentials_say_how_to_get_them(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, _, err = _run(
        capsys, command, "apv-0123456789abcdef", "--as", "U0123456789", "--reason", "no"
    )

    assert code == cli.EXIT_USAGE
    assert "no AWS credentials" in _one_line(err)
