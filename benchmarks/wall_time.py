"""Wall and CPU time of one rehearsal, in process: `python -m benchmarks.wall_time --vms 40`.

A synthetic wave (the default rehearsal profile, a fixed start) rehearsed once in the
chosen launch design; prints the wall time and this process's CPU time. Two versions of the
code are compared by running this from each, one after the other on the same machine
(docs/BENCHMARKS.md records the pairs and the load they ran under). `--transports
http,in-process` rehearses the same wave once per local transport in one run (the socket, then
the in-process transport of orchestration/local/runtime/in_process_transport.py) and prints
the ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from orchestration.local.runtime.in_process_transport import TRANSPORT_ENVIRONMENT_KEY
from orchestration.rehearsal.profile import RehearsalProfile
from orchestration.rehearsal.run import rehearse, synthetic_input
from orchestration.statemachine import LAUNCH_DESIGNS, LaunchSettings

START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
TRANSPORTS = ("http", "in-process")


def measure(vms: int, design: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one rehearsal of ``vms`` synthetic VMs."""
    profile = RehearsalProfile.model_validate({})
    began, cpu = time.monotonic(), time.process_time()
    rehearse(
        synthetic_input(vms, start=START, profile=profile),
        profile,
        launch=LaunchSettings.aws(design),
    )
    return time.monotonic() - began, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=40)
    parser.add_argument("--design", choices=LAUNCH_DESIGNS, default="batched")
    parser.add_argument(
        "--transports",
        default="",
        help="comma-separated, of " + ", ".join(TRANSPORTS) + ": one rehearsal each, and ratios",
    )
    args = parser.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    if unknown := [t for t in transports if t not in TRANSPORTS]:
        parser.error(f"unknown transport {', '.join(unknown)}: one of {', '.join(TRANSPORTS)}")
    if not transports:
        wall, cpu = measure(args.vms, args.design)
        print(f"{args.vms} VMs, {args.design}: wall {wall:.1f} s, CPU {cpu:.1f} s")
        return
    results: dict[str, tuple[float, float]] = {}
    for transport in transports:
        previous = os.environ.get(TRANSPORT_ENVIRONMENT_KEY)
        os.environ[TRANSPORT_ENVIRONMENT_KEY] = transport
        try:
            results[transport] = measure(args.vms, args.design)
        finally:
            if previous is None:
                os.environ.pop(TRANSPORT_ENVIRONMENT_KEY, None)
            else:
                os.environ[TRANSPORT_ENVIRONMENT_KEY] = previous
        wall, cpu = results[transport]
        print(f"{args.vms} VMs, {args.design}, {transport}: wall {wall:.1f} s, CPU {cpu:.1f} s")
    if len(results) == 2:
        (first, (wall1, cpu1)), (second, (wall2, cpu2)) = results.items()
        print(f"{first} / {second}: wall {wall1 / wall2:.2f}x, CPU {cpu1 / cpu2:.2f}x")


if __name__ == "__main__":
    main()
