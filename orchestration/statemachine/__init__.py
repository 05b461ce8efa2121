"""The migration state machine: one ASL file with ``${Name}`` placeholders.

Terraform renders it with ``templatefile()``; the local runtime renders it here with the
same placeholders. Both must supply every placeholder and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
DEFINITION_FILE = "migration.asl.json"
# The lane's launch coordinator loop (batched launches): a second, small state machine.
COORDINATOR_DEFINITION_FILE = "launch-coordinator.asl.json"


def template(file: str = DEFINITION_FILE) -> str:
    return resources.files(__package__).joinpath(file).read_text(encoding="utf-8")


def placeholders(file: str = DEFINITION_FILE) -> set[str]:
    return set(PLACEHOLDER.findall(template(file)))


@dataclass(frozen=True, slots=True)
class Timings:
    """Polling and time limits in seconds. ``aws()`` for production, ``local()`` for the demo."""

    poll_initial_seconds: int
    poll_max_seconds: int
    poll_backoff: float
    retry_interval_seconds: int
    task_timeout_seconds: int
    replication_timeout_seconds: int
    launch_timeout_seconds: int
    approval_timeout_seconds: int
    execution_timeout_seconds: int
    # Waiting for a slot of MGN's job quota: retries grow from poll_initial_seconds by
    # poll_backoff up to this (with full jitter), so hundreds of waiting executions ask MGN a
    # few times a minute, not every 30 s each, and a freed slot still goes in seconds.
    quota_retry_max_seconds: int

    @classmethod
    def aws(cls) -> Timings:
        return cls(
            poll_initial_seconds=60,
            poll_max_seconds=900,
            poll_backoff=1.5,
            retry_interval_seconds=5,
            task_timeout_seconds=300,
            replication_timeout_seconds=7 * 24 * 3600,
            launch_timeout_seconds=3600,
            approval_timeout_seconds=3 * 24 * 3600,
            # Standard workflows' own limit: a wave merged months before its window still
            # reaches it (the cutover waits for the window inside the execution).
            execution_timeout_seconds=365 * 24 * 3600,
            quota_retry_max_seconds=300,
        )

    @classmethod
    def local(cls) -> Timings:
        return cls(
            poll_initial_seconds=1,
            poll_max_seconds=2,
            poll_backoff=1.5,
            retry_interval_seconds=1,
            # Generous in real seconds: hundreds of executions share one process locally.
            task_timeout_seconds=120,
            replication_timeout_seconds=900,
            launch_timeout_seconds=600,
            approval_timeout_seconds=300,
            execution_timeout_seconds=3600,
            quota_retry_max_seconds=2,
        )

    @property
    def test_request_timeout_seconds(self) -> int:
        """A batched test request waits for replication, then its launch: both bounds."""
        return self.replication_timeout_seconds + self.launch_timeout_seconds

    def placeholders(self) -> dict[str, str]:
        return {
            **{_pascal(name): str(value) for name, value in asdict(self).items()},
            "TestRequestTimeoutSeconds": str(self.test_request_timeout_seconds),
        }


LAUNCH_DESIGNS = ("per-vm", "batched")
# A lane's quota overrides: their names here (and in Terraform) -> in the loop's config.
LANE_QUOTA_NAMES = {
    "concurrent_jobs": "concurrentJobs",
    "servers_per_job": "serversPerJob",
    "servers_in_active_jobs": "serversInActiveJobs",
}
LANE_LABEL = re.compile(r"\d{12}/[a-z]{2}(-[a-z]+)+-\d")
# A coordinator loop's runs before it must hand over: a standard execution's history holds at
# most 25,000 events and a run costs about 9 (more when its Lambda is retried).
MAX_RUNS_PER_LOOP = 2000


@dataclass(frozen=True, slots=True)
class LaunchSettings:
    """How MGN launches are started, per deployment (docs/ARCHITECTURE.md, batched launches).

    ``design``: ``per-vm`` (each execution starts its own MGN job) or ``batched`` (executions
    hand their server to their lane's launch coordinator and wait for its outcome). The
    quotas are MGN's per lane (accounts have them raised); ``linger_seconds`` is how long a
    test launch waits for others to share its job, and how long a coordinator loop waits
    between its runs; ``cutover_timeout_seconds`` bounds a cutover request's wait (the
    coordinator answers ``WINDOW_CLOSED`` when its window closes first);
    ``hand_over_after_runs``: after this many runs a coordinator loop hands its lane over to a
    fresh execution of itself, so its history stays far below Step Functions' limit of
    25,000 events (a run costs about 9: 1,000 runs are some 9,000 events, 17 hours at a 60 s
    linger)."""

    design: str = "per-vm"
    concurrent_jobs: int = 20
    servers_per_job: int = 200
    servers_in_active_jobs: int = 200
    linger_seconds: int = 60
    cutover_timeout_seconds: int = 7 * 24 * 3600
    hand_over_after_runs: int = 1000
    # Per lane ("accountId/region"), the quotas that account has had raised: any of
    # concurrent_jobs, servers_per_job, servers_in_active_jobs; the others as above.
    quotas_by_lane: Mapping[str, Mapping[str, int]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.design not in LAUNCH_DESIGNS:
            raise ValueError(f"launch design must be one of {LAUNCH_DESIGNS}, got {self.design!r}")
        if min(self.concurrent_jobs, self.servers_per_job, self.servers_in_active_jobs) < 1:
            raise ValueError("launch quotas must be positive")
        if self.linger_seconds < 1 or self.cutover_timeout_seconds < 1:
            raise ValueError("linger_seconds and cutover_timeout_seconds must be positive")
        if not 1 <= self.hand_over_after_runs <= MAX_RUNS_PER_LOOP:
            raise ValueError(f"hand_over_after_runs must be between 1 and {MAX_RUNS_PER_LOOP}")
        for lane, quotas in self.quotas_by_lane.items():
            if not LANE_LABEL.fullmatch(lane):
                raise ValueError(f"quotas_by_lane: {lane!r} is not accountId/region")
            unknown = set(quotas) - set(LANE_QUOTA_NAMES)
            if unknown or min(quotas.values(), default=1) < 1:
                raise ValueError(
                    f"quotas_by_lane[{lane!r}]: positive {', '.join(LANE_QUOTA_NAMES)} only"
                )

    @classmethod
    def aws(cls, design: str = "per-vm") -> LaunchSettings:
        return cls(design=design)

    @classmethod
    def local(cls, design: str = "per-vm") -> LaunchSettings:
        return cls(design=design, linger_seconds=3, cutover_timeout_seconds=600)

    def placeholders(self) -> dict[str, str]:
        """The migration definition's: the design and the cutover request's timeout."""
        return {
            "LaunchDesign": self.design,
            "CutoverRequestTimeoutSeconds": str(self.cutover_timeout_seconds),
        }

    def coordinator_placeholders(self) -> dict[str, str]:
        by_lane = {
            lane: {LANE_QUOTA_NAMES[name]: int(value) for name, value in quotas.items()}
            for lane, quotas in sorted(self.quotas_by_lane.items())
        }
        return {
            "QuotasByLane": json.dumps(by_lane, sort_keys=True),
            "ConcurrentJobs": str(self.concurrent_jobs),
            "ServersPerJob": str(self.servers_per_job),
            "ServersInActiveJobs": str(self.servers_in_active_jobs),
            "LingerSeconds": str(self.linger_seconds),
            "HandOverAfterRuns": str(self.hand_over_after_runs),
        }


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


FUNCTION_PLACEHOLDERS = {
    "ValidateInputFunctionArn": "validate_input",
    "PrepareSourceFunctionArn": "prepare_source",
    "TriggerMigrationFunctionArn": "trigger_migration",
    "VerifyMigrationFunctionArn": "verify_migration",
    "RequestApprovalFunctionArn": "request_approval",
    "FinalizeCutoverFunctionArn": "finalize_cutover",
    "RollbackHandlerFunctionArn": "rollback_handler",
    "RequestLaunchFunctionArn": "request_launch",
}
COORDINATOR_FUNCTION_PLACEHOLDERS = {"CoordinateLaunchesFunctionArn": "coordinate_launches"}
# The Timings the coordinator's definition uses (its task's timeout and retries).
COORDINATOR_TIMINGS = ("TaskTimeoutSeconds", "RetryIntervalSeconds", "PollMaxSeconds")


def render(values: Mapping[str, str], file: str = DEFINITION_FILE) -> str:
    """The definition with every placeholder replaced; unknown or missing names are errors."""
    wanted = placeholders(file)
    missing, extra = wanted - values.keys(), values.keys() - wanted
    if missing or extra:
        raise ValueError(
            f"placeholders missing: {sorted(missing)}; not in the template: {sorted(extra)}"
        )
    text = PLACEHOLDER.sub(lambda m: values[m.group(1)], template(file))
    json.loads(text)  # a rendered definition must be JSON
    return text


def render_definition(
    function_arns: Mapping[str, str],
    timings: Timings,
    launch: LaunchSettings | None = None,
) -> dict[str, Any]:
    """Render with function ARNs keyed by function name (``validate_input``...)."""
    values = {
        placeholder: function_arns[name] for placeholder, name in FUNCTION_PLACEHOLDERS.items()
    }
    launch = launch or LaunchSettings()
    rendered: dict[str, Any] = json.loads(
        render({**values, **timings.placeholders(), **launch.placeholders()})
    )
    return rendered


def render_coordinator_definition(
    function_arns: Mapping[str, str], timings: Timings, launch: LaunchSettings
) -> dict[str, Any]:
    """The lane's launch coordinator loop (``launch-coordinator.asl.json``)."""
    values = {
        placeholder: function_arns[name]
        for placeholder, name in COORDINATOR_FUNCTION_PLACEHOLDERS.items()
    }
    timing_values = {k: v for k, v in timings.placeholders().items() if k in COORDINATOR_TIMINGS}
    rendered: dict[str, Any] = json.loads(
        render(
            {**values, **timing_values, **launch.coordinator_placeholders()},
            COORDINATOR_DEFINITION_FILE,
        )
    )
    return rendered
