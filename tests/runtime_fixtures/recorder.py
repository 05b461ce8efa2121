"""What fixture handlers saw, for the test (same process) to read back.

Handlers run in-process on server, pool and poller threads, so the recorder is thread-safe;
the runtime fixture clears it before and after each test.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

_lock = threading.Lock()
_recorded: defaultdict[str, list[Any]] = defaultdict(list)


def record(channel: str, value: Any) -> None:
    with _lock:
        _recorded[channel].append(value)


def recorded(channel: str) -> list[Any]:
    with _lock:
        return list(_recorded[channel])


def clear() -> None:
    with _lock:
        _recorded.clear()
