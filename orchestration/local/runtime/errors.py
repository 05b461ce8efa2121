"""The local runtime's own errors: setup mistakes that must stop a run, never be retried."""

from __future__ import annotations

from collections.abc import Mapping


class LocalRuntimeError(Exception):
    """Base class: something about the local runtime itself (not the code under test) is wrong."""


class RuntimeAlreadyActiveError(LocalRuntimeError):
    """A second runtime was started in a process that already runs one.

    moto keeps its backends and ``MOTO_PORT`` process-wide, so two runtimes in one process
    would silently share (and reset) each other's state.
    """


class RuntimeNotStartedError(LocalRuntimeError):
    """Something asked for the endpoint or the counters of a runtime that is not running."""


class MotoPatchPointMissingError(LocalRuntimeError):
    """A moto internal the runtime patches has moved, been renamed or changed its signature.

    Raised on install, so an upgraded moto fails at start-up instead of half-working.
    """


class LocalEnvironmentMismatchError(LocalRuntimeError):
    """Functions expect environment variables that the shared local environment does not hold.

    Every function of the local runtime runs in the same process and so sees the same
    ``os.environ``; a function whose configured ``Environment`` is not part of it would read
    values it was never given.
    """

    def __init__(self, mismatches: Mapping[str, list[str]]) -> None:
        self.mismatches = dict(mismatches)
        details = "; ".join(
            f"{function}: {', '.join(problems)}" for function, problems in self.mismatches.items()
        )
        super().__init__(
            "function environments are not part of the shared local environment "
            f"(pass them to LocalAwsRuntime(environment=...)): {details}"
        )
