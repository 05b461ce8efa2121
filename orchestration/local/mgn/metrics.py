"""Counters for reports and benchmarks: calls per operation, errors by code, response checks."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from orchestration.local.mgn.errors import ServiceQuotaExceededError, ThrottlingError


@dataclass(frozen=True, slots=True)
class EmulatorMetrics:
    """A snapshot of what the emulator has answered since start (or the last reset).

    Attributes:
        calls_by_operation: every request received, throttled and failed ones included.
        errors_by_code: error responses by wire error code.
        throttling_errors: ThrottlingException answers (token bucket and faults).
        quota_errors: ServiceQuotaExceededException answers.
        validated_responses: responses (success and error) checked against the model.
        invalid_responses: responses the model rejected; each was answered with a 500 instead.
    """

    calls_by_operation: Mapping[str, int]
    errors_by_code: Mapping[str, int]
    throttling_errors: int
    quota_errors: int
    validated_responses: int
    invalid_responses: int

    @property
    def total_calls(self) -> int:
        return sum(self.calls_by_operation.values())


class MetricsRecorder:
    """Thread-safe counters behind `EmulatorMetrics`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._validated = 0
        self._invalid = 0

    def record_call(self, operation: str) -> None:
        with self._lock:
            self._calls[operation] += 1

    def record_error(self, code: str) -> None:
        with self._lock:
            self._errors[code] += 1

    def record_response_check(self, *, valid: bool) -> None:
        with self._lock:
            self._validated += 1
            self._invalid += not valid

    def snapshot(self) -> EmulatorMetrics:
        with self._lock:
            return EmulatorMetrics(
                calls_by_operation=MappingProxyType(dict(self._calls)),
                errors_by_code=MappingProxyType(dict(self._errors)),
                throttling_errors=self._errors[ThrottlingError.code],
                quota_errors=self._errors[ServiceQuotaExceededError.code],
                validated_responses=self._validated,
                invalid_responses=self._invalid,
            )

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._errors.clear()
            self._validated = self._invalid = 0
