"""Wall and CPU time of one rehearsal, in process: `python -m benchmarks.wall_time --vms 40`.

A synthetic wave (the default rehearsal profile, a fixed start) rehearsed once in the
chosen launch design; prints the wall time and this process's CPU time. Two versions of the
code are compared by running this from each, one after the other on the same machine
(docs/BENCHMARKS.md records the pairs and the load they ran under).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from orchestration.rehearsal.profile import RehearsalProfile
from orchestration.rehearsal.run import rehearse, synthetic_input
from orchestration.statemachine import LAUNCH_DESIGNS, LaunchSettings

START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=40)
    parser.add_argument("--design", choices=LAUNCH_DESIGNS, default="batched")
    args = parser.parse_args()
    profile = RehearsalProfile.model_validate({})
    began, cpu = time.monotonic(), time.process_time()
    rehearse(
        synthetic_input(args.vms, start=START, profile=profile),
        profile,
        launch=LaunchSettings.aws(args.design),
    )
    print(
        f"{args.vms} VMs, {args.design}: wall {time.monotonic() - began:.1f} s, "
        f"CPU {time.process_time() - cpu:.1f} s"
    )


if __name__ == "__main__":
    main()
