"""The fault campaign (issue 18): what goes wrong during a rehearsal, on purpose, at set rates.

A fault profile (YAML, validated like the rehearsal's profile: errors name ``file:line:col``)
says how often each kind of fault strikes; ``FaultCampaign`` injects them into the running
embedded system through the hooks its real parts already have (the MGN emulator's ``faults``,
the Slack stand-in's injected 429s, the bot's wiring, the simulated approvers). One thread
sleeps on the virtual clock until the next fault is due, as the simulated approvers do.

Every fault injected is logged (``InjectedFault``) so the reliability report can say what the
system went through; what it must still guarantee (R1) is in ``reliability.py``.

Kinds not implemented are listed in docs/RELIABILITY.md with the reason.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from orchestration.local.callback_receiver import ReceiverMode
from orchestration.local.runtime.fault_points import RuntimeFaults, use_runtime_faults
from orchestration.local.system import EmbeddedSystem
from orchestration.local.virtual_clock import ClockEvent, ClockThread, VirtualClock
from orchestration.naming import BOT_FUNCTIONS, FUNCTIONS
from orchestration.rehearsal.observation import InjectedFault
from orchestration.rehearsal.profile import ProfileModel, load_profile_file

__all__ = ["FaultCampaign", "FaultProfile", "InjectedFault", "load_fault_profile"]

Minutes = Annotated[float, Field(ge=0, le=30 * 24 * 60)]
PositiveMinutes = Annotated[float, Field(gt=0, le=30 * 24 * 60)]
Count = Annotated[int, Field(ge=0, le=100_000)]
Rate = Annotated[float, Field(ge=0, le=1)]


class Bursts(ProfileModel):
    """``count`` bursts, the first ``firstAfterMinutes`` after the requests are published,
    then one every ``everyMinutes`` (simulated time)."""

    count: Count = 0
    first_after_minutes: Minutes = 30
    every_minutes: PositiveMinutes = 60

    def instants(self, start: datetime) -> list[datetime]:
        first = start + timedelta(minutes=self.first_after_minutes)
        return [first + timedelta(minutes=self.every_minutes * i) for i in range(self.count)]


class MgnThrottling(Bursts):
    requests_per_burst: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=20,
        description="Requests (to every lane's MGN) answered ThrottlingException per burst.",
    )


class QuotaPressure(Bursts):
    active_jobs: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=20,
        description="Jobs another tenant runs in each lane during a burst: at the quota, "
        "every StartTest/StartCutover is refused (ServiceQuotaExceededException).",
    )
    for_minutes: PositiveMinutes = 15


class LaunchFailures(ProfileModel):
    rate: Rate = Field(
        default=0.0,
        description="Share of server launches that fail inside their job (the emulator's "
        "launch_failure_rate: FAILED + LAUNCH_FAILED, no instance).",
    )


class JobFailures(ProfileModel):
    rate: Rate = Field(
        default=0.0,
        description="Share of launch jobs that fail as a whole (drawn with the campaign's "
        "seed, in the order jobs reach conversion): every server of the job FAILED with "
        "LAUNCH_FAILED, the job COMPLETED, as MGN reports it.",
    )


class ReplicationStalls(ProfileModel):
    servers: Count = Field(
        default=0,
        description="Servers whose replication stalls from the start and never converges, "
        "RetryDataReplication or not (drawn with the campaign's seed).",
    )


class SlackStorms(Bursts):
    calls_per_burst: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=20, description="Slack Web API calls answered 429 (Retry-After: 1) per burst."
    )


class SlackServerErrors(Bursts):
    for_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = Field(
        default=60, description="How long each outage lasts: every Web API call gets HTTP 503."
    )


class CallbackOutages(Bursts):
    for_minutes: PositiveMinutes = Field(
        default=10,
        description="How long each outage lasts: the callback endpoint answers 503 "
        "(overloaded). A synthetic wave (--vms) then gives every VM a callback URL.",
    )


class SlowCallbacks(Bursts):
    for_minutes: PositiveMinutes = Field(
        default=10,
        description="How long each slowdown lasts: the callback endpoint answers 204 after 6 s "
        "of real time, past the sender's 5-second attempt timeout (every attempt times out; "
        "the receiver saw it, the sender counts it failed). A synthetic wave (--vms) then "
        "gives every VM a callback URL.",
    )


class SilentApprovers(ProfileModel):
    approvals: Count = Field(
        default=0,
        description="Approvals nobody ever clicks (the first ones posted): they must expire "
        "and the migration end visibly, not wait forever.",
    )


class LambdaCrashes(ProfileModel):
    functions: dict[str, Rate] = Field(
        default_factory=dict,
        description="Function (its handler name, e.g. slack_notifier, request_launch) -> "
        "share of its invocations that crash after the handler returned (Runtime.ExitError).",
    )

    @field_validator("functions")
    @classmethod
    def _known_functions(cls, value: dict[str, float]) -> dict[str, float]:
        known = (*FUNCTIONS, *BOT_FUNCTIONS)
        for name in value:
            if name not in known:
                raise ValueError(f"unknown function {name!r}: one of {', '.join(known)}")
        return value


class DuplicateDeliveries(ProfileModel):
    rate: Rate = Field(
        default=0.0,
        description="Share of SQS messages delivered twice to their function (request queue, "
        "Slack status and priority queues): handled, not deleted, delivered again.",
    )
    event_rate: Rate = Field(
        default=0.0,
        description="Share of EventBridge events delivered twice to a rule's target (a "
        "request's Step Functions execution started twice, a status event queued twice).",
    )


class DynamoDbThrottling(Bursts):
    requests_per_burst: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=5,
        description="Requests naming the state table answered "
        "ProvisionedThroughputExceededException per burst.",
    )


class FaultProfile(ProfileModel):
    seed: int = Field(
        default=7,
        description="Draws which servers stall, which invocations crash, which messages are "
        "delivered twice and which launch jobs fail.",
    )
    mgn_throttling: MgnThrottling = Field(default_factory=MgnThrottling)
    quota_pressure: QuotaPressure = Field(default_factory=QuotaPressure)
    launch_failures: LaunchFailures = Field(default_factory=LaunchFailures)
    job_failures: JobFailures = Field(default_factory=JobFailures)
    replication_stalls: ReplicationStalls = Field(default_factory=ReplicationStalls)
    slack_rate_limit_storms: SlackStorms = Field(default_factory=SlackStorms)
    slack_server_error_storms: SlackServerErrors = Field(default_factory=SlackServerErrors)
    bot_restarts: Bursts = Field(
        default_factory=Bursts,
        description="The bot's process restarts: its in-process state (clients, caches, "
        "the Bolt app) is forgotten, pending approvals included.",
    )
    silent_approvers: SilentApprovers = Field(default_factory=SilentApprovers)
    callback_outages: CallbackOutages = Field(default_factory=CallbackOutages)
    slow_callbacks: SlowCallbacks = Field(default_factory=SlowCallbacks)
    lambda_crashes: LambdaCrashes = Field(default_factory=LambdaCrashes)
    duplicate_deliveries: DuplicateDeliveries = Field(default_factory=DuplicateDeliveries)
    dynamodb_throttling: DynamoDbThrottling = Field(default_factory=DynamoDbThrottling)
    coordinator_restarts: Bursts = Field(
        default_factory=Bursts,
        description="Batched launches: each burst arms one restart of the launch coordinator "
        "at its worst point, after MGN accepted its next StartTest/StartCutover and before its "
        "ledger recorded the job (the invocation fails; the next run must find the job).",
    )


def load_fault_profile(path: Path) -> FaultProfile:
    return load_profile_file(path, FaultProfile)


@dataclass(order=True)
class _Due:
    at: datetime
    sequence: int
    kind: str = field(compare=False)
    detail: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)


class FaultCampaign:
    """Injects a fault profile's faults into a running embedded system, on the virtual clock."""

    def __init__(
        self,
        profile: FaultProfile,
        system: EmbeddedSystem,
        servers: Mapping[str, str],  # migration ID -> source server ID
    ) -> None:
        assert system.clock is not None
        self._profile = profile
        self._system = system
        self._clock: VirtualClock = system.clock
        self._servers = dict(servers)
        self._lock = threading.Lock()
        self._due: list[_Due] = []
        self._sequence = 0
        self._wake = ClockEvent()
        self._stopping = False
        self._thread: ClockThread | None = None
        self.injected: list[InjectedFault] = []
        self.stalled: dict[str, str] = {}  # migration ID -> its stalled server
        self._runtime = RuntimeFaults(
            seed=profile.seed,
            crash_after_handler={
                system.names.function(name): share
                for name, share in profile.lambda_crashes.functions.items()
            },
            duplicate_delivery_rate=profile.duplicate_deliveries.rate,
            duplicate_event_rate=profile.duplicate_deliveries.event_rate,
        )

    # --- the schedule ----------------------------------------------------------------------

    def start(self) -> FaultCampaign:
        now = self._clock.now()
        self._stall_replication()
        profile = self._profile
        if profile.job_failures.rate > 0:
            assert self._system.mgn_fleet is not None
            for lane in self._system.mgn_fleet.lanes().values():
                lane.faults.fail_launch_jobs(profile.job_failures.rate, seed=profile.seed)
        for at in profile.mgn_throttling.instants(now):
            count = profile.mgn_throttling.requests_per_burst
            self._schedule(at, "mgnThrottling", f"next {count} requests per lane", self._throttle)
        pressure = profile.quota_pressure
        self._schedule_windows(
            "quotaPressure",
            pressure.instants(now),
            pressure.for_minutes,
            (f"{pressure.active_jobs} phantom jobs per lane", self._press),
            ("phantom jobs gone", self._release),
        )
        storms = profile.slack_rate_limit_storms
        for at in storms.instants(now):
            self._schedule(
                at, "slackRateLimitStorms", f"next {storms.calls_per_burst} calls 429", self._storm
            )
        errors = profile.slack_server_error_storms
        for at in errors.instants(now):
            self._schedule(
                at,
                "slackServerErrorStorms",
                f"503 for {errors.for_seconds:g} s",
                self._outage,
            )
        self._schedule_windows(
            "callbackOutages",
            profile.callback_outages.instants(now),
            profile.callback_outages.for_minutes,
            ("callback endpoints answer 503", self._callbacks_down),
            ("callback endpoints back", self._callbacks_up),
        )
        self._schedule_windows(
            "slowCallbacks",
            profile.slow_callbacks.instants(now),
            profile.slow_callbacks.for_minutes,
            ("callback endpoints answer 6 s late", self._callbacks_slow),
            ("callback endpoints answer at once again", self._callbacks_up),
        )
        for at in profile.bot_restarts.instants(now):
            self._schedule(at, "botRestarts", "bot in-process state reset", _restart_bot)
        throttling = profile.dynamodb_throttling
        for at in throttling.instants(now):
            self._schedule(
                at,
                "dynamodbThrottling",
                f"next {throttling.requests_per_burst} state table requests",
                self._throttle_table,
            )
        for at in profile.coordinator_restarts.instants(now):
            self._schedule(
                at,
                "coordinatorRestarts",
                "armed: the coordinator dies after MGN accepts its next launch",
                self._runtime.arm_coordinator_restart,
            )
        use_runtime_faults(self._runtime)
        self._thread = ClockThread(target=self._run, name="fault-campaign", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop injecting; log what the runtime's fault points did (counted as they struck)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        use_runtime_faults(None)
        runtime = self._runtime
        for function, n in sorted(runtime.crashed.items()):
            self._record_times("lambdaCrashes", n, f"{function} crashed after its handler")
        for queue, n in sorted(runtime.duplicated.items()):
            self._record_times("duplicateDeliveries", n, f"{queue.rsplit(':', 1)[-1]} redelivered")
        for target, n in sorted(runtime.events_duplicated.items()):
            name = target.rsplit(":", 1)[-1]
            self._record_times("duplicateDeliveries", n, f"an event delivered twice to {name}")
        for table, n in sorted(runtime.throttled.items()):
            self._record_times("dynamodbThrottledRequests", n, f"{table} request refused")
        if self._profile.job_failures.rate > 0 and self._system.mgn_fleet is not None:
            for lane in self._system.mgn_fleet.lanes().values():
                for job_id in lane.faults.jobs_failed_whole():
                    self.record("jobFailures", f"{job_id} failed as a whole")
        for operation, job_id in runtime.restarted_after:
            self.record(
                "coordinatorRestarted",
                f"{job_id} ({operation}) accepted by MGN, not yet in the ledger: coordinator died",
            )

    def _record_times(self, kind: str, times: int, detail: str) -> None:
        for _ in range(times):
            self.record(kind, detail)

    def record(self, kind: str, detail: str) -> None:
        """Log a fault injected elsewhere (a silent approver, a failed launch)."""
        with self._lock:
            self.injected.append(InjectedFault(kind, self._clock.now(), detail))

    def _schedule(self, at: datetime, kind: str, detail: str, action: Callable[[], None]) -> None:
        with self._lock:
            self._sequence += 1
            heapq.heappush(self._due, _Due(at, self._sequence, kind, detail, action))

    def _schedule_windows(
        self,
        kind: str,
        starts: list[datetime],
        minutes: float,
        begin: tuple[str, Callable[[], None]],
        end: tuple[str, Callable[[], None]],
    ) -> None:
        """A fault that holds for ``minutes`` from each start: ``begin``, then ``end``."""
        for at in starts:
            self._schedule(at, kind, f"{begin[0]} for {minutes:g} min", begin[1])
            self._schedule(at + timedelta(minutes=minutes), kind, end[0], end[1])

    def _run(self) -> None:
        while not self._stopping:
            with self._lock:
                soonest = self._due[0] if self._due else None
                if soonest is not None and soonest.at <= self._clock.now():
                    heapq.heappop(self._due)
                    self.injected.append(
                        InjectedFault(soonest.kind, self._clock.now(), soonest.detail)
                    )
                else:
                    self._wake.clear()
                    soonest = None
            if soonest is not None:
                soonest.action()
                continue
            with self._lock:
                following = self._due[0].at if self._due else None
            timeout = None
            if following is not None:
                timeout = max(0.0, (following - self._clock.now()).total_seconds())
            self._wake.wait(timeout=timeout)

    # --- the faults --------------------------------------------------------------------------

    def _throttle(self) -> None:
        assert self._system.mgn_fleet is not None
        for lane in self._system.mgn_fleet.lanes().values():
            lane.faults.throttle_next_requests(self._profile.mgn_throttling.requests_per_burst)

    def _press(self) -> None:
        assert self._system.mgn_fleet is not None
        for lane in self._system.mgn_fleet.lanes().values():
            lane.faults.apply_quota_pressure(active_jobs=self._profile.quota_pressure.active_jobs)

    def _release(self) -> None:
        assert self._system.mgn_fleet is not None
        for lane in self._system.mgn_fleet.lanes().values():
            lane.faults.apply_quota_pressure(active_jobs=0)

    def _storm(self) -> None:
        assert self._system.slack is not None
        self._system.slack.inject_rate_limits(self._profile.slack_rate_limit_storms.calls_per_burst)

    def _throttle_table(self) -> None:
        assert self._system.resources is not None
        self._runtime.throttle_table(
            self._system.resources.table_name, self._profile.dynamodb_throttling.requests_per_burst
        )

    def _callbacks_down(self) -> None:
        assert self._system.callbacks is not None
        self._system.callbacks.mode = ReceiverMode.UNAVAILABLE

    def _callbacks_slow(self) -> None:
        assert self._system.callbacks is not None
        self._system.callbacks.mode = ReceiverMode.SLOW

    def _callbacks_up(self) -> None:
        assert self._system.callbacks is not None
        self._system.callbacks.mode = ReceiverMode.UP

    def _outage(self) -> None:
        assert self._system.slack is not None
        self._system.slack.inject_server_errors(self._profile.slack_server_error_storms.for_seconds)

    def _stall_replication(self) -> None:
        """Stall the drawn servers for good: no retry ends the stall (lag never converges)."""
        count = min(self._profile.replication_stalls.servers, len(self._servers))
        rng = random.Random(self._profile.seed)  # noqa: S311 - a reproducible simulation
        for migration_id in sorted(rng.sample(sorted(self._servers), count)):
            server = self._servers[migration_id]
            self._system.mgn_of_server(server).faults.stall_replication(
                server,
                raw_error="Replication lag never converges (fault campaign)",
                ends_on_retry=False,
            )
            self.stalled[migration_id] = server
            self.record("replicationStalls", f"{migration_id} ({server}) stalled for good")


def _restart_bot() -> None:
    """What a new bot process starts with: nothing built (clients, caches, the app)."""
    from bot import wiring

    wiring.reset()
