"""Run a test's body in a fresh interpreter, for the few tests an earlier test in the same
pytest worker has been seen to disturb (a process-wide leftover of a stopped embedded system:
moto's backends, the wiring caches and the simulated clock are per process).

The test calls ``ran_in_a_fresh_process(request)`` first and returns when it is True: the
same test, with the same assertions, then ran in a child ``pytest`` whose result is the
test's. Only the child runs the body (it sees itself named in ``WAVEPILOT_TEST_ISOLATED``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ISOLATED = "WAVEPILOT_TEST_ISOLATED"
ROOT = Path(__file__).resolve().parents[2]


def ran_in_a_fresh_process(request: pytest.FixtureRequest, *, timeout: float = 500) -> bool:
    nodeid = request.node.nodeid
    if os.environ.get(ISOLATED) == nodeid:
        return False  # this is the child: run the body
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", nodeid],
        env={**os.environ, ISOLATED: nodeid},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert child.returncode == 0, (
        f"{nodeid} failed in its own process:\n{child.stdout[-8000:]}\n{child.stderr[-2000:]}"
    )
    assert re.search(r"^1 passed\b", child.stdout, re.MULTILINE), child.stdout  # not skipped
    return True
