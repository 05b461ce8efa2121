"""Where a rehearsal's AWS calls go: per Lambda function and operation, per VM.

`python -m benchmarks.api_calls --vms 40 --design batched [--services mgn,dynamodb]
[--profile benchmarks/profiles/wave-1000.yaml]`

Rehearses a synthetic wave in this process (the default rehearsal profile or ``--profile``,
a fixed start)
with a botocore hook on every client counting each call under the function whose handler
made it ("-" for the embedded system's own parts: the rehearsal's driver, provisioning; work a
handler hands to a pool, such as the Slack notifier's per-migration workers, counts under the
handler), then prints the calls per VM, most first. The figures issue 14's
call budgets (P2: MGN, P6: all services) are taken apart with; docs/BENCHMARKS.md records
them with this command. Counts include the calls AWS's services make for us in the embedded
system (Step Functions invoking Lambda, event source mappings reading SQS), under "-"; not
the harness's own (the VM stand-ins' lookups of an address: no such call on AWS).
"""

from __future__ import annotations

import argparse
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

from orchestration.local.api_calls import in_harness
from orchestration.local.api_recorder import current_function
from orchestration.rehearsal.profile import load_profile
from orchestration.rehearsal.run import rehearse, synthetic_input
from orchestration.statemachine import LAUNCH_DESIGNS, LaunchSettings

START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
HOOK_ID = "benchmarks-api-calls"


class CallsByFunction:
    """Counts every botocore call made while registered: (function, service.operation)."""

    def __init__(self, services: frozenset[str] | None) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._services = services
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **_kwargs: Any) -> None:
        if in_harness():  # the VM stand-ins' lookups: no such call on AWS
            return
        _, service, operation = event_name.split(".", 2)
        if self._services and service not in self._services:
            return
        with self._lock:
            self.calls[(current_function() or "-", f"{service}.{operation}")] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=40)
    parser.add_argument("--design", choices=LAUNCH_DESIGNS, default="batched")
    parser.add_argument("--services", help="only these services (e.g. mgn,dynamodb)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--profile",
        type=Path,
        help="the rehearsal's profile (YAML), e.g. benchmarks/profiles/wave-1000.yaml for the "
        "1,000-VM measure; the defaults otherwise",
    )
    args = parser.parse_args()
    services = frozenset(args.services.split(",")) if args.services else None
    counter = CallsByFunction(services)
    session = boto3._get_default_session()  # every client the system creates
    session.events.register("before-call", counter, unique_id=HOOK_ID)
    try:
        profile = load_profile(args.profile)
        rehearse(
            synthetic_input(args.vms, start=START, profile=profile),
            profile,
            launch=LaunchSettings.aws(args.design),
        )
    finally:
        session.events.unregister("before-call", unique_id=HOOK_ID)
    total = sum(counter.calls.values())
    table = Table(
        title=f"AWS calls per VM, {args.vms} VMs, {args.design} design: {total / args.vms:.2f}"
    )
    for column in ("per VM", "function", "operation"):
        table.add_column(column, justify="right" if column == "per VM" else "left")
    for (function, operation), count in counter.calls.most_common(args.top):
        table.add_row(f"{count / args.vms:.2f}", function, operation)
    Console().print(table)


if __name__ == "__main__":
    main()
