"""``wavepilot demo``: the whole system, end to end, on the embedded default.

A throwaway git repository plays the manifests repository (the example waves, with their
cutover windows moved to the present: the demo never waits for a calendar window). The real
commands validate, plan and publish to the request queue of an embedded system in which every
part runs for real on loopback: the ingress Lambda, EventBridge, the state machine (the real
ASL file), every step's Lambda, the MGN emulator and emulated EC2, and the Slack bot against
a local Slack. A simulated approver clicks the real Approve buttons in each migration's
thread; one VM is made to fail its test launch, and rolls back.

The commands are the ``wavepilot`` entry point itself, handed in by the CLI that runs the
demo: their real output shows, and the demo does not import the CLI that imports it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.rule import Rule
from rich.table import Table

from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from orchestration.gitops.requests import request_for
from orchestration.local.driver import MigrationDriver, MigrationOutcome, first_listed_approver
from orchestration.local.logs import pipeline_logs_to
from orchestration.local.mgn import LaneId, LaunchType
from orchestration.local.slack_report import SlackReport, slack_report, thread_text
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.pipeline.spec import MigrationSpec
from orchestration.statemachine import Timings
from orchestration.terminal import terminal

EXAMPLES = Path("manifests/waves")
DEFAULT_FAILING_VM = "rpt-ssrs-01"
MANUAL_APPROVAL_SECONDS = 900
SLACK_SETTLE_SECONDS = 60.0
WINDOW_LINE = re.compile(r"(?m)^(  (?:start|end)): .*$")

Wavepilot = Callable[[Sequence[str]], int]
"""``wavepilot ARGS...``: runs one command, prints what it prints, returns its exit status."""


@dataclass(frozen=True)
class DemoOptions:
    report_path: Path | None = None
    vms: int | None = None
    fail: str | None = DEFAULT_FAILING_VM
    approve: str = "auto"  # or "manual": `wavepilot approve` from another terminal decides
    timeout_seconds: float | None = None  # 110 s, or 15 minutes when a person approves
    threads_path: Path = Path(".wavepilot/slack-threads.txt")  # every migration's thread

    @property
    def wait_seconds(self) -> float:
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        return 110.0 if self.approve == "auto" else MANUAL_APPROVAL_SECONDS

    examples: Path = EXAMPLES


def _write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def run_demo(options: DemoOptions, *, wavepilot: Wavepilot) -> int:
    """Validate, plan and publish with ``wavepilot``, then run every migration to its end."""
    console = terminal()
    started = time.monotonic()
    if options.vms is None and not options.examples.is_dir():
        console.print(
            f"[red]no example manifests at {options.examples}: run from the repository root"
        )
        return EXIT_USAGE
    with (
        tempfile.TemporaryDirectory(prefix="wavepilot-demo-") as workdir,
        pipeline_logs_to(Path(workdir) / "pipeline.log"),
    ):
        repo = Path(workdir) / "migration-waves"
        console.print(Rule("Wavepilot demo: the embedded default"))
        head = _make_repository(repo, options)
        console.print(
            "The manifests repository is a real git repository in a temporary folder. "
            "[bold]Cutover windows are moved to the present[/] (open from an hour ago for "
            "thirty days) so the demo never waits for a calendar window."
        )
        timings = Timings.local()
        if options.approve == "manual":  # a person needs more than the local two minutes
            timings = replace(timings, approval_timeout_seconds=MANUAL_APPROVAL_SECONDS)
        with EmbeddedSystem(SystemOptions(timings=timings)) as system:
            console.print(
                f"AWS is emulated by moto at {_endpoint()}; MGN by the emulator at "
                f"{system.mgn_fleet.endpoint_url if system.mgn_fleet else '?'} "
                f"(its clock runs {system.options.mgn_speed:.0f}x), one lane per target "
                "account and Region, reached through each account's Wavepilot role; health "
                "checks reach loopback stand-ins for the launched instances."
            )
            code = _validate_and_plan(console, wavepilot, repo, head)
            if code:
                return code
            requests = _requests(repo, head)
            specs = [MigrationSpec.from_request(r, r.revision or "", "demo") for r in requests]
            servers = system.seed(specs)
            failing = _inject_failure(system, specs, servers, options.fail, console)
            console.print(Rule("Merge: publish, then the pipeline runs every migration"))
            argv = ["publish", "--repo", str(repo), "--base", "empty", "--head", head]
            console.print(f"[dim]$ wavepilot {' '.join(argv)}[/]")
            code = wavepilot(argv)  # prints what it sent
            if code:
                return code
            driver = MigrationDriver(system)
            approver = first_listed_approver if options.approve == "auto" else None
            if approver is None:
                console.print(
                    "[bold]Approvals are manual:[/] from another terminal in this folder, "
                    "`wavepilot status --local --wave WAVE` lists them; decide with "
                    "`wavepilot approve <apv-...|mig-...> --as <Slack user ID> --local` "
                    f"(this runtime's endpoint: {_endpoint()})."
                )
            migration_ids = [r.migration_id for r in requests]
            names = {r.migration_id: r.target_vm_name for r in requests}
            with (
                system.connection_file() if approver is None else nullcontext(),
                Live(console=console, refresh_per_second=4, transient=True) as live,
            ):
                outcomes = driver.wait(
                    migration_ids,
                    approver=approver,
                    timeout=options.wait_seconds,
                    on_tick=lambda statuses, records: live.update(
                        _progress(statuses, records, migration_ids, names)
                    ),
                )
            slack = _slack(system, migration_ids)
            wall = time.monotonic() - started
            speed = system.options.mgn_speed
            _print_summary(
                console, outcomes, speed, failing, lanes := launched_lanes(system, servers)
            )
            _print_thread(console, outcomes)
            _print_slack(console, slack, outcomes, options.threads_path)
            counts = _counts(system)
            _print_counts(console, counts)
            console.print(f"\nDone in {wall:.1f} s of wall time.")
            if options.report_path:
                report = {
                    **_report(outcomes, counts, wall, speed, lanes),
                    "slack": slack.as_json(),
                }
                _write_report(options.report_path, report)
                console.print(f"Report written to {options.report_path}")
            if slack.lost_updates:
                return EXIT_FAILED
            unfinished = [o for o in outcomes.values() if o.status not in {"SUCCEEDED", "FAILED"}]
            unexpected = [
                o
                for o in outcomes.values()
                if (o.status == "FAILED") != (o.migration_id in failing)
            ]
            return EXIT_FAILED if unfinished or unexpected else EXIT_OK


def _validate_and_plan(console: Console, wavepilot: Wavepilot, repo: Path, head: str) -> int:
    console.print(Rule("Validate and plan (what a pull request shows)"))
    plan = ["plan", "--repo", str(repo), "--base", "empty", "--head", head, "--format", "json"]
    for argv in (["validate", str(repo / "manifests/waves")], plan):
        console.print(f"[dim]$ wavepilot {' '.join(argv)}[/]")
        if argv[0] == "plan":
            code, summary = _plan_summary(wavepilot, argv)
            console.print(summary)
        else:
            code = wavepilot(argv)
        if code:
            return code
    return EXIT_OK


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL", "?")


@contextmanager
def _captured_stdout() -> Iterator[Any]:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        yield buffer


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def _make_repository(repo: Path, options: DemoOptions) -> str:
    waves = repo / "manifests" / "waves"
    waves.mkdir(parents=True)
    start = datetime.now(UTC) - timedelta(hours=1)
    window = (start.isoformat(), (start + timedelta(days=30)).isoformat())
    if options.vms is not None:
        (waves / "wave-000.yaml").write_text(wave_yaml(0, options.vms, window=window))
    else:
        times = {"start": window[0], "end": window[1]}
        for source in sorted(options.examples.glob("*.yaml")):
            text = WINDOW_LINE.sub(
                lambda m: f"{m.group(1)}: {times[m.group(1).strip()]}", source.read_text()
            )
            shutil.copy(source, waves / source.name)
            (waves / source.name).write_text(text)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "config", "user.name", "Dana Migration")
    _git(repo, "config", "user.email", "dana@contoso.com")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "Waves for the demo")
    return _git(repo, "rev-parse", "HEAD")


def _plan_summary(wavepilot: Wavepilot, argv: list[str]) -> tuple[int, str]:
    with _captured_stdout() as out:
        code = wavepilot(argv)
    plan = json.loads(out.getvalue())
    waves = ", ".join(f"{w['name']} +{len(w['added'])}" for w in plan["waves"])
    return code, (
        f"plan: {plan['totals']['added']} VMs to add ({waves}); "
        f"merging publishes {len(plan['publish']['messages'])} requests"
    )


def _requests(repo: Path, head: str) -> list[Any]:
    files = [
        ManifestFile(str(p), p.read_text())
        for p in sorted((repo / "manifests/waves").glob("*.yaml"))
    ]
    result = validate_files(files, now=datetime.now(UTC))
    return [
        request_for(vm, commit=head, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]


def _inject_failure(
    system: EmbeddedSystem,
    specs: list[MigrationSpec],
    servers: dict[str, str],
    vm_name: str | None,
    console: Console,
) -> set[str]:
    if not vm_name:
        return set()
    matches = [s for s in specs if s.target_vm_name == vm_name]
    if not matches:
        matches = specs[-1:] if vm_name == DEFAULT_FAILING_VM else []
    if not matches:
        console.print(f"[yellow]--fail {vm_name}: no such VM; nothing injected")
        return set()
    for spec in matches:
        server_id = servers[spec.migration_id]
        system.mgn_of_server(server_id).faults.fail_next_launch(
            server_id, launch_type=LaunchType.TEST
        )
        console.print(
            "Fault injected: the MGN emulator fails the test launch of "
            f"[bold]{spec.target_vm_name}[/]; expect it to roll back."
        )
    return {s.migration_id for s in matches}


def _progress(
    statuses: dict[str, str],
    records: dict[str, Any],
    migration_ids: list[str],
    names: dict[str, str],
) -> Table:
    table = Table(title="Migrations (live)", expand=False)
    for column in ("VM", "Execution", "Step"):
        table.add_column(column, no_wrap=True)
    states = Counter(statuses.get(m, "QUEUED") for m in migration_ids)
    shown = migration_ids if len(migration_ids) <= 30 else migration_ids[:30]
    for migration_id in shown:
        record = records.get(migration_id)
        step = f"{record.step}" if record else "queued"
        table.add_row(names[migration_id], statuses.get(migration_id, "QUEUED"), step)
    table.caption = " ".join(f"{k}: {v}" for k, v in sorted(states.items()))
    return table


def _simulated(outcome: MigrationOutcome, speed: float) -> str:
    if len(outcome.steps) < 2:
        return "-"
    first = datetime.fromisoformat(outcome.steps[0]["at"])
    last = datetime.fromisoformat(outcome.steps[-1]["at"])
    seconds = (last - first).total_seconds() * speed
    return f"{seconds / 3600:.1f} h"


def _print_summary(
    console: Console,
    outcomes: dict[str, MigrationOutcome],
    speed: float,
    failing: set[str],
    lanes: dict[str, LaneId],
) -> None:
    table = Table(title="Summary")
    for column in (
        "Wave",
        "Application",
        "VM",
        "Lane (account/Region)",
        "Final state",
        "Simulated duration",
        "Note",
    ):
        table.add_column(column)
    for outcome in sorted(outcomes.values(), key=lambda o: (o.wave, o.app_name, o.target_vm_name)):
        state = {"SUCCEEDED": "[green]migrated[/]", "FAILED": "[red]rolled back[/]"}.get(
            outcome.status, outcome.status.lower()
        )
        note = "injected test-launch failure" if outcome.migration_id in failing else ""
        table.add_row(
            outcome.wave,
            outcome.app_name,
            outcome.target_vm_name,
            lanes[outcome.migration_id].label if outcome.migration_id in lanes else "-",
            state,
            _simulated(outcome, speed),
            note,
        )
    console.print(table)
    console.print(
        "Simulated durations are on the MGN emulator's clock (real seconds x "
        f"{speed:.0f}): replication, launches and the pipeline's waits."
    )


def _print_thread(console: Console, outcomes: dict[str, MigrationOutcome]) -> None:
    failed = [o for o in outcomes.values() if o.status == "FAILED"]
    shown = failed[0] if failed else next(iter(outcomes.values()), None)
    if shown is None:
        return
    console.print(Rule(f"The story of {shown.target_vm_name} (its status events)"))
    for step in shown.steps:
        console.print(
            f"  {step['at'][11:19]}  {step['step']:<18} {step['status']:<11} {step['message']}"
        )


def _slack(system: EmbeddedSystem, migration_ids: list[str]) -> SlackReport:
    """Every thread, once the bot has shown every final state (or a minute has passed)."""
    assert system.slack is not None
    return slack_report(
        system.slack,
        os.environ["DYNAMODB_TABLE_NAME"],
        migration_ids,
        settle_seconds=SLACK_SETTLE_SECONDS,
    )


def _print_slack(
    console: Console,
    slack: SlackReport,
    outcomes: dict[str, MigrationOutcome],
    threads_path: Path,
) -> None:
    failed = [o.migration_id for o in outcomes.values() if o.status == "FAILED"]
    shown = next(
        (t for t in slack.threads if t.get("migrationId") in failed and t.get("channel")),
        next((t for t in slack.threads if t.get("channel")), None),
    )
    if shown is not None:
        console.print(Rule(f"Its Slack thread, as the bot left it ({shown['channel']})"))
        console.print(thread_text(shown), markup=False, highlight=False)
    threads_path.parent.mkdir(parents=True, exist_ok=True)
    threads_path.write_text(
        "\n\n".join(thread_text(t) for t in slack.threads if t.get("channel")) + "\n"
    )
    calls = ", ".join(f"{m} {n}" for m, n in slack.calls_by_method.items())
    console.print(
        f"Slack: {len(slack.threads)} threads written to {threads_path}; calls: {calls}; "
        f"429s met: {sum(slack.rate_limited.values())}; final states not shown: "
        f"{len(slack.lost_updates)}; slowest event-to-Slack delay "
        f"{slack.slowest_delay_seconds:.1f} s on Slack's clock ({slack.slack_speed:.0f}x)."
    )


def _counts(system: EmbeddedSystem) -> dict[str, Any]:
    runtime = system.counters()
    assert system.mgn_fleet is not None
    fleet = system.mgn_fleet.metrics()
    by_operation: Counter[str] = Counter()
    for lane in fleet.by_lane.values():
        by_operation.update(lane.calls_by_operation)
    return {
        "api_calls": system.api_calls.by_service() if system.api_calls else {},
        "mgn_calls": dict(sorted(by_operation.items())),
        # Every lane the emulator served (a lane is a target account + Region).
        "mgn_calls_by_lane": {
            label: calls for label, calls in fleet.calls_by_lane.items() if calls
        },
        "mgn_quota_errors": fleet.quota_errors,
        "mgn_throttling_errors": fleet.throttling_errors,
        "lambda_invocations": dict(runtime.lambda_invocations),
        "lambda_invocations_total": runtime.total_lambda_invocations,
        "state_transitions": runtime.total_state_transitions,
    }


def _print_counts(console: Console, counts: dict[str, Any]) -> None:
    table = Table(title="API calls by service (every boto3 client in the process)")
    table.add_column("Service")
    table.add_column("Calls", justify="right")
    for service, calls in counts["api_calls"].items():
        table.add_row(service, str(calls))
    console.print(table)
    console.print(
        f"Lambda invocations: {counts['lambda_invocations_total']}; Step Functions state "
        f"transitions: {counts['state_transitions']}; MGN quota errors met: "
        f"{counts['mgn_quota_errors']}; MGN throttling errors met: "
        f"{counts['mgn_throttling_errors']}."
    )
    lanes = ", ".join(f"{lane} {calls}" for lane, calls in counts["mgn_calls_by_lane"].items())
    console.print(f"MGN calls by lane (target account/Region): {lanes}.")


def launched_lanes(system: EmbeddedSystem, servers: dict[str, str]) -> dict[str, LaneId]:
    """Migration ID -> the MGN lane whose launch jobs took part its server (a test launch
    that failed included), as the emulator recorded it (not the lane the request asked for)."""
    assert system.mgn_fleet is not None
    launched_in: dict[str, LaneId] = {}
    for lane, emulator in system.mgn_fleet.lanes().items():
        for job in emulator.jobs():
            for participant in job.participants:
                launched_in[participant.source_server_id] = lane
    return {
        migration_id: launched_in[server_id]
        for migration_id, server_id in servers.items()
        if server_id in launched_in
    }


def _report(
    outcomes: dict[str, MigrationOutcome],
    counts: dict[str, Any],
    wall: float,
    speed: float,
    lanes: dict[str, LaneId],
) -> dict[str, Any]:
    return {
        "migrations": [
            {
                "migrationId": o.migration_id,
                "wave": o.wave,
                "appName": o.app_name,
                "targetVmName": o.target_vm_name,
                # Where the MGN emulator launched it (null: nothing was launched).
                "targetAccountId": lanes[o.migration_id].account_id
                if o.migration_id in lanes
                else None,
                "targetRegion": lanes[o.migration_id].region if o.migration_id in lanes else None,
                "state": o.status,
                "recordStatus": o.record_status,
                "error": o.error,
                "steps": [
                    {
                        "step": s["step"],
                        "status": s["status"],
                        "message": s["message"],
                        "at": s["at"],
                    }
                    for s in o.steps
                ],
            }
            for o in sorted(outcomes.values(), key=lambda o: o.migration_id)
        ],
        "counts": counts,
        "simulated_clock_speed": speed,
        "wall_seconds": round(wall, 3),
    }
