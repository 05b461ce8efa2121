"""How the embedded system's cost grows with the number of migrations, on the simulated clock.

``python -m benchmarks.simulated_scale --vms N`` runs N synthetic VMs of one wave (the
``wave_yaml`` generator) through the embedded system on the simulated clock with
``Timings.aws()``: publish, ingress, one execution per VM, every Lambda, the MGN emulator, the
Slack bot; approvals are clicked in Slack as ``tests/test_virtual_clock.py::_simulated_run``
does (``MigrationDriver.wait`` with ``first_listed_approver``). It prints the wall time, the
simulated makespan, wall seconds per VM and what one VM costs: AWS calls by service (the
pipeline's; the driver's own watching is on a session of its own and not counted), Lambda
invocations by function, MGN and Slack calls, and the virtual clock's stats.

The driver's poll (``--poll``, simulated seconds) is how long an approval waits for its
approver, and each poll reads every migration's record: keep it long (600 s) when measuring
the pipeline's own costs. ``--json PATH`` writes the figures for comparisons.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestration.adapters.state_store import MigrationRecord
from orchestration.gitops.requests import request_for
from orchestration.local.driver import TERMINAL, MigrationDriver, first_listed_approver
from orchestration.local.logs import pipeline_logs_to
from orchestration.local.synthetic import wave_yaml
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.spec import MigrationSpec
from orchestration.statemachine import Timings


def synthetic_requests(vms: int) -> list[MigrationRequest]:
    """One wave of ``vms`` VMs whose cutover window is open now and for 30 days."""
    start = datetime.now(UTC) - timedelta(hours=1)
    window = (start.isoformat(), (start + timedelta(days=30)).isoformat())
    text = wave_yaml(0, vms, window=window)
    result = validate_files([ManifestFile("wave-000.yaml", text)], now=datetime.now(UTC))
    return [
        request_for(vm, commit="b" * 40, author="Bench <bench@example.com>") for vm in result.vms
    ]


def run(vms: int, *, poll_seconds: float, timeout_seconds: float) -> dict[str, Any]:
    requests = synthetic_requests(vms)
    options = SystemOptions(timings=Timings.aws(), clock="simulated")
    began = time.monotonic()
    log_file = Path(tempfile.gettempdir()) / "wavepilot-simulated-scale.log"
    with pipeline_logs_to(log_file), EmbeddedSystem(options) as system:
        clock = system.clock
        assert clock is not None
        assert system.mgn_fleet is not None
        assert system.slack is not None
        system.seed([MigrationSpec.from_request(r, r.revision or "", "bench") for r in requests])
        ready, ready_cpu = time.monotonic(), _cpu_seconds()
        driver = MigrationDriver(system)
        ended: dict[str, float] = {}

        def on_tick(statuses: dict[str, str], _records: dict[str, MigrationRecord]) -> None:
            for migration_id, status in statuses.items():
                if status in TERMINAL:
                    ended.setdefault(migration_id, clock.monotonic())

        started = clock.monotonic()
        driver.send(requests)
        outcomes = driver.wait(
            [r.migration_id for r in requests],
            approver=first_listed_approver,
            timeout=timeout_seconds,
            poll_seconds=poll_seconds,
            on_tick=on_tick,
        )
        wall, cpu = time.monotonic() - ready, _cpu_seconds() - ready_cpu
        counters = system.counters()
        mgn = system.mgn_fleet.metrics()
        slack_calls = system.slack.calls_by_method()
        api_calls = system.api_calls.by_service() if system.api_calls else {}
        api_operations = system.api_calls.by_operation() if system.api_calls else {}
        stats = clock.stats()
    statuses = Counter(o.status for o in outcomes.values())
    per_vm = 1.0 / vms
    return {
        "vms": vms,
        "poll_seconds": poll_seconds,
        "statuses": dict(statuses),
        "wall_seconds": round(wall, 1),
        "setup_seconds": round(ready - began, 1),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds_per_vm": round(wall * per_vm, 3),
        "makespan_hours": round((max(ended.values()) - started) / 3600, 2) if ended else None,
        "aws_calls_per_vm": round(sum(api_calls.values()) * per_vm, 1),
        "aws_calls_per_vm_by_service": {k: round(v * per_vm, 1) for k, v in api_calls.items()},
        "aws_calls_per_vm_by_operation": {
            k: round(v * per_vm, 2) for k, v in api_operations.items()
        },
        "lambda_invocations_per_vm": round(counters.total_lambda_invocations * per_vm, 1),
        "lambda_invocations_per_vm_by_function": {
            k: round(v * per_vm, 2) for k, v in sorted(counters.lambda_invocations.items())
        },
        "state_transitions_per_vm": round(counters.total_state_transitions * per_vm, 1),
        "mgn_calls_per_vm": round(mgn.total_calls * per_vm, 1),
        "slack_calls_per_vm": round(sum(slack_calls.values()) * per_vm, 1),
        "slack_calls_per_vm_by_method": {k: round(v * per_vm, 2) for k, v in slack_calls.items()},
        "clock": {
            "simulated_hours": round(stats.now_seconds / 3600, 2),
            "advances": stats.advances,
            "waits": stats.waits,
        },
    }


def _cpu_seconds() -> float:
    """User plus system CPU of this process: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _print(figures: dict[str, Any]) -> None:
    vms = figures["vms"]
    print(
        f"simulated rehearsal: {vms} VMs, one wave, Timings.aws(), poll {figures['poll_seconds']} s"
    )
    print(f"  statuses                 {figures['statuses']}")
    wall, setup = figures["wall_seconds"], figures["setup_seconds"]
    print(f"  wall time                {wall} s (setup {setup} s), CPU {figures['cpu_seconds']} s")
    print(f"  wall seconds per VM      {figures['wall_seconds_per_vm']}")
    print(f"  simulated makespan       {figures['makespan_hours']} h")
    print(f"  AWS calls per VM         {figures['aws_calls_per_vm']}")
    for service, count in figures["aws_calls_per_vm_by_service"].items():
        print(f"    {service:<22} {count}")
    top = sorted(figures["aws_calls_per_vm_by_operation"].items(), key=lambda kv: -kv[1])[:12]
    print("  top operations per VM    " + ", ".join(f"{k} {v}" for k, v in top))
    print(f"  Lambda invocations / VM  {figures['lambda_invocations_per_vm']}")
    for function, count in figures["lambda_invocations_per_vm_by_function"].items():
        print(f"    {function:<40} {count}")
    print(f"  state transitions / VM   {figures['state_transitions_per_vm']}")
    print(f"  MGN calls per VM         {figures['mgn_calls_per_vm']}")
    print(f"  Slack calls per VM       {figures['slack_calls_per_vm']}")
    for method, count in figures["slack_calls_per_vm_by_method"].items():
        print(f"    {method:<22} {count}")
    clock = figures["clock"]
    print(
        f"  virtual clock            {clock['simulated_hours']} h, {clock['advances']} advances, "
        f"{clock['waits']} waits"
    )
    poll = figures["poll_seconds"]
    print(f"command: python -m benchmarks.simulated_scale --vms {vms} --poll {poll:g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--poll", type=float, default=600.0, help="driver poll, simulated s")
    parser.add_argument("--timeout", type=float, default=14 * 24 * 3600.0, help="simulated s")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run(args.vms, poll_seconds=args.poll, timeout_seconds=args.timeout)
    _print(figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
