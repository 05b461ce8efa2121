"""`make bench`: a 200-VM wave rehearsed on the embedded system.

Every part runs for real on loopback (see docs/ARCHITECTURE.md): publish, ingress, one
execution per VM, the MGN emulator with its quotas, the Slack bot with every thread in one
channel of the rate-limited Slack stand-in, approvals clicked by a simulated approver. The
figures are the baseline the scale work (batched launches) will be measured against.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestration.gitops.requests import request_for
from orchestration.local.driver import MigrationDriver
from orchestration.local.logs import pipeline_logs_to
from orchestration.local.slack_report import slack_report
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.pipeline.spec import MigrationSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    start = datetime.now(UTC) - timedelta(hours=1)
    window = (start.isoformat(), (start + timedelta(days=30)).isoformat())
    text = wave_yaml(0, args.vms, window=window)
    result = validate_files([ManifestFile("wave-000.yaml", text)], now=datetime.now(UTC))
    requests = [
        request_for(vm, commit="b" * 40, author="Bench <bench@example.com>") for vm in result.vms
    ]

    log_file = Path(tempfile.gettempdir()) / "wavepilot-rehearsal.log"
    with pipeline_logs_to(log_file), EmbeddedSystem(SystemOptions()) as system:
        system.seed([MigrationSpec.from_request(r, r.revision or "", "bench") for r in requests])
        driver = MigrationDriver(system)
        began = time.monotonic()
        driver.send(requests)
        outcomes = driver.wait([r.migration_id for r in requests], timeout=args.timeout)
        wall = time.monotonic() - began
        assert system.slack is not None
        slack = slack_report(
            system.slack,
            os.environ["DYNAMODB_TABLE_NAME"],
            [r.migration_id for r in requests],
            settle_seconds=300,
        )
        slack_wall = time.monotonic() - began
        counters = system.counters()
        assert system.mgn_fleet is not None
        mgn = system.mgn_fleet.metrics()  # every lane the wave's VMs migrate into
        speed = system.options.mgn_speed
        api_calls = system.api_calls.by_service() if system.api_calls else {}

    succeeded = sum(1 for o in outcomes.values() if o.status == "SUCCEEDED")
    failures = Counter(
        next((s["message"] for s in o.steps if s["step"] == "Rollback"), o.status)[:120]
        for o in outcomes.values()
        if o.status != "SUCCEEDED"
    )
    first = min(datetime.fromisoformat(o.steps[0]["at"]) for o in outcomes.values() if o.steps)
    cutovers = [
        datetime.fromisoformat(s["at"])
        for o in outcomes.values()
        for s in o.steps
        if s["step"] == "FinalizeCutover" and s["status"] == "SUCCEEDED"
    ]
    makespan_hours = ((max(cutovers) - first).total_seconds() * speed / 3600) if cutovers else 0.0
    n = len(requests)
    table = Table(title=f"Rehearsal: {n} VMs in one wave on the embedded system")
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    for label, value in (
        ("migrations succeeded", f"{succeeded} / {n}"),
        ("wall time", f"{wall:.1f} s"),
        ("simulated makespan (first request to last cutover)", f"{makespan_hours:.1f} h"),
        ("MGN API calls per VM", f"{mgn.total_calls / n:.1f}"),
        ("Lambda invocations per VM", f"{counters.total_lambda_invocations / n:.1f}"),
        ("state transitions per VM", f"{counters.total_state_transitions / n:.1f}"),
        ("MGN quota errors met", str(mgn.quota_errors)),
        ("MGN throttling errors met", str(mgn.throttling_errors)),
        ("AWS API calls per VM (all services)", f"{sum(api_calls.values()) / n:.1f}"),
        ("Slack threads (all in one channel)", f"{len(slack.threads)}"),
        *(
            (f"Slack {method} per migration", f"{per:.2f}")
            for method, per in slack.calls_per_migration().items()
        ),
        ("Slack 429s met", str(sum(slack.rate_limited.values()))),
        (
            f"slowest event-to-Slack delay (Slack clock, {slack.slack_speed:.0f}x)",
            f"{slack.slowest_delay_seconds:.1f} s",
        ),
        ("Slack updates lost (final states not shown)", str(len(slack.lost_updates))),
        ("wall time until every final state was in Slack", f"{slack_wall:.1f} s"),
    ):
        table.add_row(label, value)
    console = Console(width=110)
    console.print(table)
    for reason, count in failures.most_common(5):
        console.print(f"  {count} not migrated: {reason}")
    print(f"simulated clock: {speed:.0f}x; command: python -m benchmarks.rehearsal --vms {n}")


if __name__ == "__main__":
    main()
