"""``wavepilot demo``: the GitOps front end to end on the embedded default.

A throwaway git repository plays the manifests repository: a first merge brings the
example waves, then a pull request resizes one VM and adds another. The demo runs the
real commands (validate, plan, publish) against a queue in emulated AWS, publishes the
same range twice to show that nothing new reaches the pipeline, and reads back what
arrived on the queue. Later issues extend it to run the migrations themselves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from orchestration import cli
from orchestration.local.aws import EmbeddedAws, embedded_aws
from orchestration.terminal import terminal

EXAMPLES = Path("manifests/waves")

# The demo's pull request: resize one VM and add one to the shared-services wave.
_RESIZE = ("wave-2.yaml", "instanceType: r6i.2xlarge", "instanceType: r6i.4xlarge")
_NEW_VM_ID = (
    "/subscriptions/9b7c5e3a-1d2f-4a6b-8c9d-0e1f2a3b4c5d/resourceGroups/rg-shared-prod"
    "/providers/Microsoft.Compute/virtualMachines/jump-02"
)
_NEW_VM = f"""\
      - source:
          azureResourceId: {_NEW_VM_ID}
          userProvidedId: jump-02
        targetVmName: shared-jump-02
        osFamily: linux
        instanceType: t3.small
        tags: {{Application: bastion}}
        healthChecks:
          - {{type: tcp, port: 22}}
"""


def run_demo(*, report_path: Path | None = None, examples: Path = EXAMPLES) -> int:
    console = terminal()
    started = time.monotonic()
    if not examples.is_dir():
        console.print(
            f"[red]no example manifests at {examples}: run the demo from the repository root"
        )
        return cli.EXIT_USAGE

    with tempfile.TemporaryDirectory(prefix="wavepilot-demo-") as workdir, embedded_aws() as aws:
        repo = Path(workdir) / "migration-waves"
        console.print(Rule("Wavepilot demo: the embedded default"))
        console.print(
            f"AWS is emulated by moto at {aws.endpoint_url}; request queue "
            f"[bold]{aws.names.request_queue}[/]. The manifests repository is a real git "
            f"repository in {repo}."
        )
        base, head = _make_repository(repo, examples)

        steps: list[tuple[str, list[str]]] = [
            (
                "Validate the manifests (main plus the pull request)",
                ["validate", str(repo / "manifests/waves")],
            ),
            (
                "First merge of the example waves: publish everything",
                ["publish", "--repo", str(repo), "--base", "empty", "--head", base],
            ),
            (
                "A pull request: plan against main",
                ["plan", "--repo", str(repo), "--base", base, "--head", head],
            ),
            (
                "Merge: publish the pushed range",
                ["publish", "--repo", str(repo), "--base", base, "--head", head],
            ),
            (
                "Publish the same range again",
                ["publish", "--repo", str(repo), "--base", base, "--head", head],
            ),
        ]
        exit_codes = {}
        for title, argv in steps:
            console.print(Rule(title))
            console.print(f"[dim]$ wavepilot {' '.join(argv)}[/]")
            exit_codes[title] = cli.main(argv)
        console.print(Rule("What arrived on the request queue"))
        received = _drain(aws)
        _print_received(console, received)
        if any(exit_codes.values()):
            console.print(f"[red]a step failed: {exit_codes}")
            return cli.EXIT_INVALID
        wall = time.monotonic() - started
        console.print(f"\nDone in {wall:.1f} s of wall time.")
        if report_path:
            report_path.write_text(json.dumps(_report(received, wall), indent=2) + "\n")
            console.print(f"Report written to {report_path}")
    return cli.EXIT_OK


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def _make_repository(repo: Path, examples: Path) -> tuple[str, str]:
    waves = repo / "manifests" / "waves"
    waves.mkdir(parents=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "config", "user.name", "Dana Migration")
    _git(repo, "config", "user.email", "dana@contoso.com")
    for source in sorted(examples.glob("*.yaml")):
        shutil.copy(source, waves / source.name)
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "Waves 1-4: initial estate")
    base = _git(repo, "rev-parse", "HEAD")

    name, old, new = _RESIZE
    path = waves / name
    path.write_text(path.read_text().replace(old, new, 1))
    wave4 = waves / "wave-4.yaml"
    wave4.write_text(wave4.read_text() + _NEW_VM)
    _git(repo, "commit", "--quiet", "-am", "Resize billing SQL, add a second jump host")
    return base, _git(repo, "rev-parse", "HEAD")


def _drain(aws: EmbeddedAws) -> list[dict[str, Any]]:
    sqs = aws.sqs()
    bodies: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=aws.request_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=aws.request_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def _print_received(console: Console, received: list[dict[str, Any]]) -> None:
    copies = Counter((body["migrationId"], body["revision"]) for body in received)
    table = Table()
    for column in ("Wave", "Application", "VM", "Migration", "Revision", "Copies"):
        table.add_column(column, no_wrap=True)
    seen: set[tuple[str, str]] = set()
    for body in sorted(received, key=lambda b: (b["wave"], b["appName"], b["targetVmName"])):
        key = (body["migrationId"], body["revision"])
        if key in seen:
            continue
        seen.add(key)
        table.add_row(
            body["wave"], body["appName"], body["targetVmName"], key[0], key[1], str(copies[key])
        )
    console.print(table)
    duplicates = sum(count - 1 for count in copies.values())
    console.print(
        f"{len(received)} messages, {len(copies)} distinct migrationId+revision pairs. "
        f"The {duplicates} repeat{'s' if duplicates != 1 else ''} from publishing the same range "
        "twice carry byte-identical bodies: the ingress recognises them and starts nothing new."
    )


def _report(received: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    return {
        "migrations": [
            {
                "migrationId": body["migrationId"],
                "wave": body["wave"],
                "revision": body["revision"],
                "state": "PUBLISHED",
                "steps": [],
            }
            for body in received
        ],
        "counts": {"sqs_messages": len(received)},
        "wall_seconds": round(wall, 3),
    }
