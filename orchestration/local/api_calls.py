"""Count the AWS API calls every boto3 client in the process makes (per service, operation),
but the harness's own (``api_recorder.harness``: the VM stand-ins' lookups), which do not
exist on AWS."""

from __future__ import annotations

import threading
from collections import Counter
from contextvars import ContextVar
from typing import Any

import boto3

EVENT = "before-call"
# Set by ``api_recorder.harness``: the call being made is the harness's own.
_IN_HARNESS: ContextVar[bool] = ContextVar("wavepilot_harness_call", default=False)


def in_harness() -> bool:
    """Whether the call being made is the harness's own (``api_recorder.harness``)."""
    return _IN_HARNESS.get()


class ApiCallCounter:
    """Registered on boto3's default session: clients created afterwards are counted."""

    def __init__(self) -> None:
        self._calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._session: Any = None

    def _count(self, event_name: str, **_kwargs: Any) -> None:
        if in_harness():
            return
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self._calls[(service, operation)] += 1

    def start(self) -> ApiCallCounter:
        self._session = boto3._get_default_session()
        self._session.events.register(EVENT, self._count, unique_id="wavepilot-api-call-counter")
        return self

    def stop(self) -> None:
        if self._session is not None:
            self._session.events.unregister(EVENT, unique_id="wavepilot-api-call-counter")
            self._session = None

    def by_service(self) -> dict[str, int]:
        with self._lock:
            totals: Counter[str] = Counter()
            for (service, _), count in self._calls.items():
                totals[service] += count
        return dict(sorted(totals.items()))

    def by_operation(self) -> dict[str, int]:
        with self._lock:
            return {f"{s}.{o}": c for (s, o), c in sorted(self._calls.items())}
