"""``wavepilot``: validate, plan and publish wave manifests; run the local demo; follow
migrations and decide approvals (status, approve, reject).

Exit status: 0 success, 1 invalid manifests or a failed operation, 2 usage errors
(unknown option, missing path, unknown git revision); see orchestration/cli_errors.py.
A failure is one line on stderr that says what to do; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.cli_errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailedError,
    UsageError,
    debug_requested,
    explain,
    explained,
)
from orchestration.clock import SYSTEM_CLOCK
from orchestration.manifests import disk
from orchestration.manifests.findings import Finding, Severity
from orchestration.manifests.limits import LIMITS
from orchestration.manifests.validation import validate_files
from orchestration.statemachine import LAUNCH_DESIGNS

if TYPE_CHECKING:
    from orchestration.gitops.plan import Plan

EXIT_INVALID = EXIT_FAILED
DEFAULT_MANIFESTS = "manifests/waves"

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with explained(args.command, debug=debug_requested(args.debug)) as status:
        status[0] = int(args.handler(args))
    return status[0]


def _vm_count(text: str) -> int:
    """``--vms``: a synthetic wave is one wave file, so at most the manifests' VM limit."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= count <= LIMITS.vms:
        raise argparse.ArgumentTypeError(
            f"{count} is out of range: a synthetic wave has 1 to {LIMITS.vms:,} VMs "
            "(the limit of one wave file)"
        )
    return count


def _version() -> str:
    try:
        return metadata.version("wavepilot")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown (not installed)"


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    *examples: str,
) -> argparse.ArgumentParser:
    """A subcommand whose --help opens with its one-line summary and ends with examples."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of a failure (also DEBUG=1)",
    )
    return commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavepilot",
        description="Move VMs from Azure to AWS in waves, described in YAML manifests.",
        epilog="examples:\n  wavepilot validate\n  wavepilot plan --base origin/main\n"
        "  wavepilot demo\n\n`wavepilot COMMAND --help` describes each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wavepilot {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (also DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = _command(
        commands,
        "validate",
        "check wave manifests; every error as path:line:col",
        "wavepilot validate",
        "wavepilot validate manifests/waves/wave-2.yaml",
    )
    validate.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or folders (default: the repository's manifests/waves, found from any "
        "folder inside it)",
    )
    validate.set_defaults(handler=_validate)

    plan = _command(
        commands,
        "plan",
        "what merging a change will do, per wave (added, changed, removed VMs)",
        "wavepilot plan --base origin/main",
        "wavepilot plan --base origin/main --head my-branch --format json",
        "wavepilot plan --comment      # in the pull_request workflow",
        "wavepilot plan --base origin/main --mgn-drift   # with AWS: MGN's console drift too",
    )
    _add_range_arguments(
        plan,
        base_help="revision already published: a ref, SHA, or 'empty' (required, except with "
        "--comment, which reads it from the pull request event)",
    )
    plan.add_argument("--format", choices=("markdown", "json"), default="markdown")
    plan.add_argument("--output", type=Path, help="write the plan to this file instead of stdout")
    plan.add_argument(
        "--comment",
        action="store_true",
        help="in a pull_request workflow: comment, set the wavepilot/plan status and write the "
        "job summary (range from $GITHUB_EVENT_PATH unless --base/--head are given)",
    )
    plan.add_argument(
        "--mgn-drift",
        action="store_true",
        help="also read MGN in each wave's target account and Region (needs AWS credentials "
        "that may assume $TARGET_ROLE_NAME there: the target role, or the read-only grouping "
        "reader) and warn, at each published VM's line, where MGN's console groups it "
        "otherwise than the manifests; a lane that cannot be read is a warning, not a failure",
    )
    plan.add_argument(
        "--local",
        action="store_true",
        help="with --mgn-drift: reach the running `make demo` (.wavepilot/local.json)",
    )
    plan.set_defaults(handler=_plan)

    publish = _command(
        commands,
        "publish",
        "send one SQS message per added or changed VM in a revision range",
        "wavepilot publish --base $BEFORE --head $AFTER --queue-url $SQS_QUEUE_URL",
        "wavepilot publish --base origin/main~1 --dry-run",
    )
    _add_range_arguments(
        publish, base_help="revision already published: a ref, SHA, or 'empty' (required)"
    )
    publish.add_argument(
        "--queue-url",
        default=os.environ.get("SQS_QUEUE_URL"),
        help="request queue (default: $SQS_QUEUE_URL)",
    )
    publish.add_argument("--dry-run", action="store_true", help="print the bodies, send nothing")
    publish.add_argument(
        "--cancel-removed",
        action="store_true",
        help="also send a cancel request for each VM removed from a manifest",
    )
    publish.set_defaults(handler=_publish)

    schema = _command(
        commands,
        "schema",
        "print the wave manifest JSON Schema (editors validate as you type)",
        "wavepilot schema --output manifests/wave.schema.json",
        "wavepilot schema --check manifests/wave.schema.json",
    )
    schema.add_argument("--output", type=Path, help="write it to this file")
    schema.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the models"
    )
    schema.add_argument(
        "--events",
        type=Path,
        metavar="DIR",
        help="write the status events' JSON Schemas into DIR instead",
    )
    schema.set_defaults(handler=_schema)

    demo = _command(
        commands,
        "demo",
        "run the whole system locally on the embedded default",
        "wavepilot demo",
        "wavepilot demo --vms 50 --fail '' --report demo.json",
        "wavepilot demo --approve manual   # then: wavepilot approve ID --as U... --local",
    )
    demo.add_argument("--report", type=Path, help="write a JSON report of the run")
    demo.add_argument(
        "--threads",
        type=Path,
        default=Path(".wavepilot/slack-threads.txt"),
        help="where to write every migration's Slack thread (default: %(default)s)",
    )
    demo.add_argument(
        "--vms",
        type=_vm_count,
        metavar="N",
        help=f"a synthetic wave of N VMs instead of the examples (1 to {LIMITS.vms:,})",
    )
    demo.add_argument(
        "--fail",
        metavar="VM",
        default="rpt-ssrs-01",
        help="the VM whose test launch fails (default rpt-ssrs-01; '' for none)",
    )
    demo.add_argument(
        "--approve",
        choices=("auto", "manual"),
        default="auto",
        help="auto: a simulated approver decides; manual: `wavepilot approve` does",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the runs (default 110, or 900 with --approve manual)",
    )
    demo.set_defaults(handler=_demo)
    _add_import_command(commands)
    _add_rehearse_command(commands)
    _add_record_prediction_command(commands)
    _add_operator_commands(commands)
    _add_preflight_command(commands)
    return parser


def _add_preflight_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """preflight: see orchestration/preflight_cli.py."""
    preflight = _command(
        commands,
        "preflight",
        "check a wave's VMs in AWS for MGN's known mistakes, the day before migration day",
        "wavepilot preflight wave-2",
        "wavepilot preflight wave-1 --local --format json",
    )
    preflight.add_argument("wave", metavar="WAVE", help="the wave's name")
    preflight.add_argument(
        "--manifests",
        default=None,
        help="folder of wave files (default: the repository's manifests/waves)",
    )
    preflight.add_argument("--format", choices=("text", "json"), default="text")
    preflight.add_argument(
        "--local",
        action="store_true",
        help="reach the running `make demo` (.wavepilot/local.json) instead of AWS",
    )
    preflight.set_defaults(handler=_preflight)


def _add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """status, approve, reject, pause, resume, cancel: see orchestration/operator_cli.py."""
    local_help = "reach the running `make demo` (.wavepilot/local.json) instead of AWS"
    status = _command(
        commands,
        "status",
        "a migration's state and history, or a wave's",
        "wavepilot status mig-0123456789abcdef",
        "wavepilot status --wave wave-2 --format json",
    )
    status.add_argument("target", nargs="?", metavar="ID", help="mig-... or apv-...")
    status.add_argument("--wave", metavar="WAVE", help="one row per migration of WAVE")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.add_argument("--local", action="store_true", help=local_help)
    status.set_defaults(handler=_status)
    for name, decision in (("approve", "APPROVED"), ("reject", "REJECTED")):
        reason = " --reason 'health check failed'" if name == "reject" else ""
        decide = _command(
            commands,
            name,
            f"{name} an approval gate (break-glass; the Slack bot is the normal way)",
            f"wavepilot {name} apv-0123456789abcdef --as U0123456789{reason}",
        )
        decide.add_argument("target", metavar="ID", help="apv-... or mig-... (its approval)")
        decide.add_argument(
            "--as", dest="user", required=True, metavar="USER", help="your Slack user ID"
        )
        decide.add_argument(
            "--reason",
            required=name == "reject",
            default="",
            help="why (kept in the audit trail and shown in Slack)",
        )
        decide.add_argument("--local", action="store_true", help=local_help)
        decide.set_defaults(handler=_decide, decision=decision)
    for name, what in (
        ("pause", "no new test launch or cutover starts in a wave; running jobs finish"),
        ("resume", "a paused wave goes on where each migration stood"),
        ("cancel", "roll back every migration of a wave that has not finalized"),
    ):
        reason = "" if name == "resume" else " --reason 'DNS cutover blocked'"
        control = _command(
            commands,
            name,
            f"{what} (operators; the Slack bot's /wavepilot {name} is the normal way)",
            f"wavepilot {name} wave-2 --as U0123456789{reason}",
        )
        control.add_argument("wave", metavar="WAVE", help="the wave's name")
        control.add_argument(
            "--as", dest="user", required=True, metavar="USER", help="your Slack user ID"
        )
        control.add_argument(
            "--reason",
            required=name != "resume",
            default="",
            help="why (kept in the audit trail and shown in Slack)",
        )
        control.add_argument("--local", action="store_true", help=local_help)
        control.set_defaults(handler=_control_wave, action=name)
    retry = _command(
        commands,
        "retry",
        "start a parked migration's test launch again (onFailure: park; operators; the "
        "thread's Retry button is the normal way)",
        "wavepilot retry mig-0123456789abcdef --as U0123456789",
    )
    retry.add_argument("target", metavar="ID", help="the parked migration (mig-...)")
    retry.add_argument(
        "--as", dest="user", required=True, metavar="USER", help="your Slack user ID"
    )
    retry.add_argument("--reason", default="", help="why (kept in the audit trail and in Slack)")
    retry.add_argument("--local", action="store_true", help=local_help)
    retry.set_defaults(handler=_retry)
    finalize = _command(
        commands,
        "finalize",
        "end a held cutover's finalizeAfter now: MGN finalizes within minutes, no way back "
        "to the source after (operators; the thread's Finalize now button is the normal way)",
        "wavepilot finalize mig-0123456789abcdef --as U0123456789 --reason 'owners signed off'",
    )
    finalize.add_argument("target", metavar="ID", help="the held migration (mig-...)")
    finalize.add_argument(
        "--as", dest="user", required=True, metavar="USER", help="your Slack user ID"
    )
    finalize.add_argument("--reason", default="", help="why (kept in the audit trail)")
    finalize.add_argument("--local", action="store_true", help=local_help)
    finalize.set_defaults(handler=_finalize)


def _add_import_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """import: see orchestration/inventory/ and docs/IMPORT.md."""
    importer = _command(
        commands,
        "import",
        "write wave manifests from an inventory (CMF server list, MGN import CSV, Azure VM JSON)",
        "wavepilot import server-list.csv",
        "wavepilot import mgn-import.csv --output manifests/waves",
        "wavepilot import vms.json --wave wave-5   # az vm list --show-details -o json > vms.json",
    )
    importer.add_argument("inventory", type=Path, metavar="FILE", help="the inventory file")
    importer.add_argument(
        "--format",
        dest="inventory_format",
        choices=("cmf", "mgn", "azure"),
        help="the inventory's format (default: from its header or JSON shape)",
    )
    importer.add_argument(
        "--wave",
        metavar="NAME",
        help="the wave of rows that name none (required for Azure JSON, which has no waves)",
    )
    for option, what in (
        ("--account-id", "the AWS account ID"),
        ("--region", "the AWS Region"),
        ("--environment", "the environment label"),
    ):
        importer.add_argument(
            option,
            metavar=option.strip("-").split("-")[0].upper(),
            help=f"{what} of rows that give none (Azure JSON gives none)",
        )
    importer.add_argument(
        "--output",
        type=Path,
        default=Path(DEFAULT_MANIFESTS),
        metavar="DIR",
        help="where the wave files go (default: %(default)s)",
    )
    importer.set_defaults(handler=_import)

    exporter = _command(
        commands,
        "export",
        "write the manifests' VMs as MGN's import CSV (for MGN's StartImport)",
        "wavepilot export --format mgn-csv --output mgn-import.csv",
        "wavepilot export --format mgn-csv manifests/waves/wave-2.yaml",
    )
    exporter.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="wave files or folders (default: the repository's manifests/waves)",
    )
    exporter.add_argument("--format", choices=("mgn-csv",), required=True)
    exporter.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    exporter.set_defaults(handler=_export)


def _add_rehearse_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """rehearse: see orchestration/rehearsal/ and docs/REHEARSAL.md."""
    rehearse = _command(
        commands,
        "rehearse",
        "predict migration day: run waves through the embedded system on a simulated clock",
        "wavepilot rehearse                       # every wave of the repository",
        "wavepilot rehearse --wave wave-2 --html wave-2.html",
        "wavepilot rehearse --vms 200 --profile pilot.yaml --report rehearsal.json",
        "wavepilot rehearse --vms 300 --faults benchmarks/profiles/faults.yaml",
    )
    rehearse.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="wave files or folders (default: the repository's manifests/waves)",
    )
    rehearse.add_argument(
        "--wave", action="append", default=[], metavar="NAME", help="only this wave (repeatable)"
    )
    rehearse.add_argument(
        "--vms",
        type=_vm_count,
        metavar="N",
        help="a synthetic wave of N VMs instead of manifests (its window: the profile's "
        "synthetic section)",
    )
    rehearse.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="the model's figures (YAML; see docs/REHEARSAL.md); defaults otherwise",
    )
    rehearse.add_argument("--report", type=Path, metavar="PATH", help="write the JSON report")
    rehearse.add_argument(
        "--html", type=Path, metavar="PATH", help="write the report as one HTML page"
    )
    rehearse.add_argument(
        "--start",
        type=_aware_datetime,
        metavar="WHEN",
        help="when replication starts, ISO 8601 with a time zone (default: now)",
    )
    rehearse.add_argument(
        "--launch-design",
        choices=LAUNCH_DESIGNS,
        default="per-vm",
        help="how MGN launches start: per-vm (each migration its own job, the default) or "
        "batched (each lane's launch coordinator packs them into jobs)",
    )
    rehearse.add_argument(
        "--faults",
        type=Path,
        metavar="FILE",
        help="a fault campaign's profile (YAML; see docs/RELIABILITY.md): inject its faults "
        "and judge goal R1 (exit 1 if it does not hold)",
    )
    rehearse.set_defaults(handler=_rehearse)


def _add_record_prediction_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """record-prediction: see orchestration/rehearsal/prediction.py."""
    record = _command(
        commands,
        "record-prediction",
        "record a rehearsal's prediction per wave where the Slack bot's wave summary reads it",
        "wavepilot record-prediction rehearsal.json",
        "wavepilot record-prediction rehearsal.json --wave wave-2 --local",
    )
    record.add_argument("report", type=Path, metavar="REPORT", help="`rehearse --report` JSON")
    record.add_argument(
        "--wave", action="append", default=[], metavar="NAME", help="only this wave (repeatable)"
    )
    record.add_argument(
        "--local",
        action="store_true",
        help="reach the running `make demo` (.wavepilot/local.json) instead of AWS",
    )
    record.set_defaults(handler=_record_prediction)


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}+00:00")
    return moment


def _add_range_arguments(parser: argparse.ArgumentParser, *, base_help: str) -> None:
    parser.add_argument("--base", help=base_help)
    parser.add_argument(
        "--head", default="HEAD", help="revision to plan or publish (default: HEAD)"
    )
    parser.add_argument(
        "--manifests", default=DEFAULT_MANIFESTS, help="folder of wave files in the repository"
    )
    parser.add_argument("--repo", type=Path, default=None, help="git repository (default: cwd)")


def _now() -> datetime:
    return SYSTEM_CLOCK.now()


def _print_findings(findings: Sequence[Finding]) -> None:
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    for finding in findings:
        print(finding)
        if annotate:
            print(finding.github_annotation())


def _validate(args: argparse.Namespace) -> int:
    targets = args.paths or [_repository_manifests()]
    try:
        paths = disk.discover(targets)
    except disk.PathNotFoundError as exc:
        raise UsageError(f"no such file or folder: {exc}") from None
    if not paths:
        raise UsageError(f"no wave files (*.yaml, *.yml) in {' '.join(targets)}")
    files, unreadable = disk.read(paths)
    result = validate_files(files, now=_now())
    findings = sorted([*unreadable, *result.findings])
    _print_findings(findings)
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = len(findings) - errors
    if errors:
        print(
            f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning"
            f"{'s' if warnings != 1 else ''} in {len(paths)} file{'s' if len(paths) != 1 else ''}"
        )
        return EXIT_INVALID
    print(
        f"ok: {len(paths)} file{'s' if len(paths) != 1 else ''}, {len(result.waves)} wave"
        f"{'s' if len(result.waves) != 1 else ''}, {len(result.vms)} VM"
        f"{'s' if len(result.vms) != 1 else ''} valid"
        + (f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else "")
    )
    return EXIT_OK


def _repository_manifests(start: Path | None = None) -> str:
    """``manifests/waves`` here or in the nearest folder above, up to the repository's root.

    So ``wavepilot validate`` works from any folder of the repository, as ``plan`` does.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_MANIFESTS
        if candidate.is_dir():
            return os.path.relpath(candidate)
        if (folder / ".git").exists():
            break
    raise UsageError(
        f"no {DEFAULT_MANIFESTS} folder here or above (up to the repository's root): "
        "name the files or folders to check, e.g. wavepilot validate path/to/waves"
    )


def _build_plan(args: argparse.Namespace) -> Plan:
    from orchestration.gitops.git import GitError, GitRepository
    from orchestration.gitops.plan import NoWaveFilesError, build_plan

    try:
        repo = GitRepository.discover(args.repo)
        base, head = repo.resolve(args.base), repo.resolve(args.head)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    try:
        return build_plan(repo, base, head, now=_now(), manifest_dir=args.manifests)
    except NoWaveFilesError as exc:
        raise UsageError(str(exc)) from None
    except GitError as exc:
        raise CommandFailedError(str(exc)) from None


def _plan(args: argparse.Namespace) -> int:
    from orchestration.gitops.render import render_markdown

    # --comment: the GitHub side (orchestration/gitops/github_comment.py).
    context = None
    if args.comment:
        from orchestration.gitops.github_comment import ActionsContext, ActionsContextError

        try:
            context = ActionsContext.from_environ(os.environ)
        except ActionsContextError as exc:
            raise UsageError(str(exc)) from None
        args.base = args.base or context.base_sha
        args.head = context.head_sha if args.head == "HEAD" else args.head
    elif args.base is None:
        raise UsageError("--base is required (--comment reads it from the pull request event)")
    plan = _build_plan(args)
    if args.mgn_drift:
        plan.findings.extend(_mgn_drift(plan, local=args.local))
    elif args.local:
        raise UsageError("--local goes with --mgn-drift (the plan itself reads only git)")
    if args.format == "json":
        text = json.dumps(plan.as_json(), indent=2, sort_keys=False) + "\n"
    else:
        text = render_markdown(plan)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            _print_findings(plan.findings)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if context is not None:
        from orchestration.gitops.github_comment import report_plan

        if not report_plan(plan, context):
            return EXIT_INVALID
    return EXIT_OK if plan.valid else EXIT_INVALID


def _mgn_drift(plan: Plan, *, local: bool) -> list[Finding]:
    """Warnings where MGN groups the plan's VMs otherwise than the manifests.

    Never a failed plan: a lane that cannot be reached (no credentials, a role that is not
    there or does not trust the caller, no endpoint) is a warning in the plan, so the pull
    request still gets its comment and status. Only ``--local`` without a running demo is a
    usage error: the operator asked for something that is not there."""
    from botocore.exceptions import BotoCoreError, ClientError

    from orchestration import wiring
    from orchestration.operator_cli import connect, operator_errors
    from orchestration.pipeline.mgn_drift import (
        UNREADABLE_LANE_ERRORS,
        drift_findings,
        grouping_drift,
    )

    with operator_errors(local=local):
        connect(local=local)
    unreadable = (*UNREADABLE_LANE_ERRORS, BotoCoreError, ClientError)
    return drift_findings(grouping_drift(plan.requests, wiring.lanes(), unreadable=unreadable))


def _publish(args: argparse.Namespace) -> int:
    from rich.table import Table

    from orchestration.gitops.publish import (
        PublishInterruptedError,
        RequestPublisher,
        message_body,
        sqs_client,
    )
    from orchestration.terminal import terminal

    if args.base is None:
        raise UsageError("--base is required: the revision already published (or 'empty')")
    plan = _build_plan(args)
    console = terminal()
    if not plan.valid:
        _print_findings(plan.findings)
        console.print(
            f"[bold red]refusing to publish:[/] {plan.head.short} has invalid manifests; "
            "nothing was sent"
        )
        return EXIT_INVALID
    requests = [*plan.requests, *(plan.cancellations if args.cancel_removed else [])]
    if args.dry_run:
        for request in requests:
            print(message_body(request))
        console.print(
            f"dry run: would send {len(requests)} message{'s' if len(requests) != 1 else ''} "
            f"for {plan.base.short}..{plan.head.short}"
        )
        return EXIT_OK
    if not requests:
        console.print(f"nothing to publish for {plan.base.short}..{plan.head.short}")
        return EXIT_OK
    if not args.queue_url:
        raise UsageError("no queue: pass --queue-url or set SQS_QUEUE_URL")

    try:
        report = RequestPublisher(sqs_client(args.queue_url), args.queue_url).publish(requests)
    except PublishInterruptedError as exc:
        explanation = explain(exc.cause, where="SQS")
        raise CommandFailedError(
            f"{explanation.message if explanation else exc.cause}; {len(exc.report.sent)} of "
            f"{len(requests)} messages were sent before that: publishing the same range again "
            "is safe (repeats are dropped)"
        ) from exc.cause
    table = Table(title=f"Published {plan.base.short}..{plan.head.short}")
    for column in ("Wave", "VM", "Migration", "Revision", "Action"):
        table.add_column(column)
    for request in report.sent:
        table.add_row(
            request.wave,
            request.target_vm_name,
            request.migration_id,
            request.revision or "",
            request.action,
        )
    console.print(table)
    console.print(
        f"sent {len(report.sent)} of {len(requests)} in {report.batches} "
        f"batch{'es' if report.batches != 1 else ''} ({report.retried_entries} entries retried)"
    )
    for failure in report.failed:
        console.print(
            f"[red]failed:[/] {failure.request.migration_id} ({failure.request.target_vm_name}): "
            f"{failure.code} {failure.reason}"
        )
    return EXIT_OK if report.ok else EXIT_INVALID


def _schema(args: argparse.Namespace) -> int:
    from orchestration.manifests.schema import wave_json_schema_text

    if args.events:
        from orchestration.events import event_json_schemas

        args.events.mkdir(parents=True, exist_ok=True)
        for name, text in event_json_schemas().items():
            (args.events / name).write_text(text, encoding="utf-8")
        return EXIT_OK
    text = wave_json_schema_text()
    if args.check:
        if not args.check.is_file():
            raise UsageError(f"no such file: {args.check}")
        if args.check.read_text(encoding="utf-8") != text:
            print(
                f"{args.check} differs from the models: "
                f"run `wavepilot schema --output {args.check}`",
                file=sys.stderr,
            )
            return EXIT_INVALID
        print(f"{args.check} matches the models")
        return EXIT_OK
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from orchestration.local.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            report_path=args.report,
            vms=args.vms,
            fail=args.fail or None,
            approve=args.approve,
            timeout_seconds=args.timeout,
            threads_path=args.threads,
        ),
        wavepilot=main,  # the demo runs the real commands through this entry point
    )


def _import(args: argparse.Namespace) -> int:
    from orchestration.inventory.command import ImportOptions, run_import
    from orchestration.inventory.waves import WaveSettings

    return run_import(
        ImportOptions(
            inventory=args.inventory,
            output=args.output,
            inventory_format=args.inventory_format,
            wave=args.wave,
            given=WaveSettings(args.account_id, args.region, args.environment),
        )
    )


def _export(args: argparse.Namespace) -> int:
    from orchestration.inventory.export import run_export

    return run_export(args.paths or [_repository_manifests()], args.output)


def _rehearse(args: argparse.Namespace) -> int:
    from orchestration.rehearsal.command import RehearseOptions, run_rehearse

    if args.vms is not None and (args.paths or args.wave):
        raise UsageError("--vms rehearses a synthetic wave: give no PATH or --wave with it")
    paths = None if args.vms is not None else (args.paths or [_repository_manifests()])
    return run_rehearse(
        RehearseOptions(
            paths=paths,
            waves=tuple(args.wave),
            vms=args.vms,
            profile=args.profile,
            report=args.report,
            html=args.html,
            start=args.start or _now(),
            launch_design=args.launch_design,
            faults=args.faults,
        )
    )


def _record_prediction(args: argparse.Namespace) -> int:
    from orchestration.rehearsal.prediction import run_record_prediction

    return run_record_prediction(args.report, waves=tuple(args.wave), local=args.local)


def _status(args: argparse.Namespace) -> int:
    from orchestration.operator_cli import run_status

    return run_status(args.target, wave=args.wave, output=args.format, local=args.local)


def _decide(args: argparse.Namespace) -> int:
    from orchestration.operator_cli import run_decision

    return run_decision(
        args.decision, args.target, user=args.user, reason=args.reason, local=args.local
    )


def _finalize(args: argparse.Namespace) -> int:
    from orchestration.operator_cli import run_finalize

    return run_finalize(args.target, user=args.user, reason=args.reason, local=args.local)


def _retry(args: argparse.Namespace) -> int:
    from orchestration.operator_cli import run_retry

    return run_retry(args.target, user=args.user, reason=args.reason, local=args.local)


def _preflight(args: argparse.Namespace) -> int:
    from orchestration.preflight_cli import run_preflight

    return run_preflight(
        args.wave,
        manifests=args.manifests or _repository_manifests(),
        now=_now(),
        output=args.format,
        local=args.local,
    )


def _control_wave(args: argparse.Namespace) -> int:
    from orchestration.operator_cli import run_wave_control

    return run_wave_control(
        args.action, args.wave, user=args.user, reason=args.reason, local=args.local
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
