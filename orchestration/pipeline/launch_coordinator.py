"""One lane's launch coordinator: MGN jobs started in batches, exactly once, observed in bulk.

Executions hand the coordinator their server (``request``) and wait; each ``run_once``
(a scheduled poll) does, in order:

a. **observe**: one ``DescribeJobs`` for every job the lane's ledger knows; when a job has
   COMPLETED, each of its servers becomes a :class:`LaunchOutcome` for the execution
   waiting on it, from its own ``launchStatus`` (``LAUNCHED``, ``FAILED``, ``TERMINATED``):
   per-VM truth from a shared job, so a server that fails in a batch fails alone. Not
   before the job completes (MGN holds each server in its job until then: see
   ``_ended_launches``). A cutover whose window closed before it could start is answered
   ``WINDOW_CLOSED``. The instances a completed job launched are looked at in bulk (one
   ``DescribeInstances`` per 200, one ``DescribeInstanceStatus`` per 100) and each outcome
   carries its own: the step that verifies the launch starts from it instead of asking EC2
   for its instance alone.
b. **replication**: test requests wait for their server's replication here, not in their
   executions: one ``DescribeSourceServers`` per 200 servers not yet seen launchable, for
   new requests at once and for the others every ``readiness_poll``. A server seen
   launchable is marked so (never asked again); one whose replication stalled is answered
   ``REPLICATION_STALLED``.
c. **order**: a cutover whose application goes after others (``dependsOn``) is planned only
   once every VM of those applications has cut over (:func:`order_cutovers`: the lane's open
   requests say when a dependency is still on its way; else one read of the wave's
   migrations per wave, not per server); one whose dependency rolled back or failed is
   answered ``DEPENDENCY_FAILED`` and rolls back. Dependents so start in a later job.
   **plan** with :func:`plan_launches` (the quotas, windows, linger, FIFO) what is ready,
   and the retirement of test instances: a cutover request names its server's test
   instance, still running, and the coordinator terminates those of many servers in one
   TERMINATE job (``TerminateTargetInstances``, up to 200 servers), started exactly once
   like a launch (an intent of kind ``retire``). When it completes, the requests are marked
   retired (nobody is answered) and their cutovers are planned.
d. **start** each planned job exactly once: an *intent* (its servers, kind and an intent ID)
   is written first, with a conditional write; then ``StartTest`` / ``StartCutover`` with
   the intent ID as a tag; then the job ID is recorded on the intent. A coordinator that
   dies between MGN's answer and the record leaves an intent without a job ID: the next
   ``run_once`` finds the job by its tag (``DescribeJobs`` from the intent's time) and adopts
   it, or, if MGN has no such job, starts it then. A start MGN refuses as a conflict (the
   servers are in a job already) is looked up the same way before anything else is decided.

Servers seen launchable that their preparation left to join their MGN application
(``LaunchRequest.mgn_application_id``) are associated then, up to 50 per call.

MGN calls per poll do not grow with the servers that wait, beyond one call per 200 still
replicating (and one per 50 that join an application): one ``DescribeJobs`` (up to 1,000
jobs), one start (or terminate) per new job, one ``DescribeJobs`` by date only when
recovering. DynamoDB reads per poll: the lane's
ledger (one Query), and the migrations of each wave whose dependent cutovers could start.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from orchestration.adapters.mgn import (
    Job,
    JobServer,
    MgnConflictError,
    MgnError,
    MgnQuotaExceededError,
    MgnThrottledError,
    SourceServer,
)
from orchestration.launch_records import (
    INTENT_TAG,
    Instance,
    JobKind,
    LaunchIntent,
    LaunchKind,
    LaunchOutcome,
    LaunchRequest,
    LaunchStatus,
    LedgerConflictError,
    RequestRecorded,
    WaitingLaunch,
)
from orchestration.observability import logger
from orchestration.pipeline.cutover_order import order_cutovers
from orchestration.pipeline.launch_batches import (
    ActiveJob,
    LaneQuotas,
    PlannedJob,
    cutover_window_closed,
    cutover_window_open,
    plan_launches,
)
from orchestration.pipeline.ports import LaunchLedger, LaunchMgn
from orchestration.pipeline.steps import STUCK_REPLICATION, replication_ready

if TYPE_CHECKING:
    from orchestration.adapters.state_store import MigrationRecord

# A server's launch is over in one of these (MGN's participatingServers[].launchStatus).
ENDED: Mapping[str, LaunchStatus] = {
    "LAUNCHED": "LAUNCHED",
    "FAILED": "FAILED",
    "TERMINATED": "TERMINATED",
}
# Jobs are looked for from this long before an intent was written: the coordinator's clock
# and MGN's need not agree to the second.
CLOCK_MARGIN = timedelta(minutes=15)

# The open requests of a lane by migration and kind (``LaunchRequest.key``).
Waiting = Mapping[tuple[str, LaunchKind], WaitingLaunch]

_INITIATED_BY: Mapping[JobKind, str] = {
    "test": "START_TEST",
    "cutover": "START_CUTOVER",
    "retire": "TERMINATE",
}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run left: requests still open and jobs (intents) still held. Read instead of a
    second look at the ledger (the lane's whole partition) to tell whether the loop may end:
    a request recorded since the run began makes the loop's release fail anyway."""

    waiting: int
    jobs: int
    # Something to start or watch at the next linger (a job, a launch lingering or held by
    # the quotas, a test instance to retire); else the lane only waits (for replication, a
    # window, new requests) and ``next_window`` is the earliest window still to open.
    busy: bool = True
    next_window: datetime | None = None
    # Outcomes the run's read of the ledger found not yet delivered (a run before it, or a
    # repeated request, answered them): what delivering has to look for besides this run's.
    undelivered: int = 0

    @property
    def idle(self) -> bool:
        return self.waiting <= 0 and self.jobs == 0

    def quiet_for(self, now: datetime, most: timedelta) -> timedelta | None:
        """How long the loop may wait before its next run, at most ``most``, if nothing is
        to start or watch before then (None: run again after a linger)."""
        if self.busy:
            return None
        if self.next_window is not None:
            return min(most, max(self.next_window - now, timedelta(0)))
        return most


class LaunchCoordinator:
    """Batched launches for ONE lane (target account + Region).

    Args:
        mgn: the lane's MGN (``MgnAdapter``).
        ledger: the lane's durable records (``DynamoLaunchLedger``).
        quotas: the lane's MGN job quotas (from configuration: accounts have them raised).
        linger: how long a test launch may wait for others to share its job.
        new_intent_id: intent IDs (random by default; tests make them predictable).
        on_started: told of each launch job started (or adopted) with the open requests
            it launches: the wiring reports StartTestLaunch / StartCutover for each (not of
            the jobs that retire test instances).
        readiness_poll: how often servers still replicating are looked at again.
        on_replicated: told of the open requests whose servers became launchable: the
            wiring reports WaitForReplication for each.
        wave_held: an operator's pause (or cancel) of a wave, as a mark ("" while the wave
            runs): its requests are not planned (asked once per wave per run).
        on_held: told once per pause of each open request it holds (and the pause's
            mark): the wiring reports the launch WAITING, held, so its thread shows it.
        wave_migrations: the migrations of a wave, for cutovers that go after other
            applications (``dependsOn``); without it (tests of other rules) none waits.
        on_dependencies: told once of each cutover that waits for the applications it goes
            after (and which): the wiring reports StartCutover WAITING for it.
        instances: the lane's EC2 instances of these IDs, read in bulk (``Ec2Adapter``):
            the instances a completed job launched go with their outcomes; without it (tests
            of other rules) outcomes carry none and the verify step looks itself.
    """

    def __init__(
        self,
        *,
        mgn: LaunchMgn,
        ledger: LaunchLedger,
        quotas: LaneQuotas,
        linger: timedelta,
        new_intent_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        on_started: Callable[[LaunchIntent, str, Sequence[WaitingLaunch]], None] | None = None,
        readiness_poll: timedelta = timedelta(minutes=5),
        on_replicated: Callable[[Sequence[WaitingLaunch]], None] | None = None,
        wave_held: Callable[[str], str] | None = None,
        on_held: Callable[[Sequence[WaitingLaunch], str], None] | None = None,
        wave_migrations: Callable[[str], Sequence[MigrationRecord]] | None = None,
        on_dependencies: Callable[[Sequence[tuple[WaitingLaunch, tuple[str, ...]]]], None]
        | None = None,
        instances: Callable[[list[str]], Mapping[str, Instance]] | None = None,
    ) -> None:
        self._mgn = mgn
        self._instances = instances
        self._wave_migrations = wave_migrations
        self._on_dependencies = on_dependencies or (lambda _waiting: None)
        self._wave_held = wave_held or (lambda _wave: "")
        self._on_held = on_held or (lambda _held, _mark: None)
        self._ledger = ledger
        self._quotas = quotas
        self._linger = linger
        self._new_intent_id = new_intent_id
        self._on_started = on_started or (lambda _intent, _job, _members: None)
        self._readiness_poll = readiness_poll
        self._on_replicated = on_replicated or (lambda _launches: None)
        self.last_run: RunSummary | None = None
        self._since: datetime | None = None

    def request(self, request: LaunchRequest, task_token: str) -> RequestRecorded:
        """Record an execution's request (idempotent per migration and kind)."""
        return self._ledger.record_request(request, task_token)

    def replication_ready(self, server_ids: Sequence[str]) -> dict[str, bool]:
        """Which servers can be launched now, for many at once: ``DescribeSourceServers``
        with up to 200 IDs per call (MGN's filter limit), not one call per server. A server
        MGN does not know (or has archived) is not ready."""
        found = {
            server.source_server_id: replication_ready(server)
            for server in self._mgn.source_servers(list(dict.fromkeys(server_ids)))
        }
        return {server_id: found.get(server_id, False) for server_id in server_ids}

    def run_once(self, now: datetime, *, waited: timedelta | None = None) -> list[LaunchOutcome]:
        """Observe, plan, start (see the module's docstring); the outcomes of this run.
        ``waited``: the time since the loop's previous run (a linger when not said)."""
        self._since = now - max(waited or self._linger, self._linger)
        snapshot = self._ledger.snapshot()
        waiting = {launch.request.key: launch for launch in snapshot.waiting}
        intents = {intent.intent_id: intent for intent in snapshot.intents}

        unstarted = [intent for intent in intents.values() if intent.job_id is None]
        for intent_id, job_id in self._started_jobs(unstarted).items():
            self._ledger.record_job(intent_id, job_id)
            intents[intent_id] = replace(intents[intent_id], job_id=job_id)
        outcomes, ended = self._observe(list(intents.values()), waiting)
        retired = [
            launch
            for intent_id in ended
            if intents[intent_id].kind == "retire"
            for launch in _members_waiting(intents[intent_id], waiting)
        ]
        if retired:
            self._ledger.mark_test_instance_retired(retired)
            waiting = {
                **waiting,
                **{
                    launch.request.key: replace(launch, test_instance_retired=True)
                    for launch in retired
                },
            }
        outcomes.extend(self._closed_windows(waiting, intents.values(), now))
        self._ledger.complete(outcomes)
        for intent_id in ended:
            self._ledger.remove_intent(intent_id)
            del intents[intent_id]

        answered = {(outcome.migration_id, outcome.kind) for outcome in outcomes}
        open_requests = [launch for key, launch in waiting.items() if key not in answered]
        unclaimed = [
            launch
            for launch in open_requests
            if not any(_belongs(launch.request, intent) for intent in intents.values())
        ]
        replicated, stalled = self._replication(unclaimed, now)
        outcomes.extend(stalled)
        answered |= {(outcome.migration_id, outcome.kind) for outcome in stalled}
        open_requests = [launch for launch in open_requests if launch.request.key not in answered]
        pending = [
            launch.request
            for launch in unclaimed
            if (launch.request.kind == "cutover" and not launch.to_retire)
            or launch.replication_ready
            or launch.request.key in replicated
        ]
        retire = [
            launch.request
            for launch in unclaimed
            if launch.to_retire and launch.request.key not in answered
        ]
        # A paused (or cancelled) wave starts nothing new: its requests stay open, its jobs
        # already running are watched and answered as ever.
        self._tell_held([*pending, *retire], unclaimed)
        pending = [r for r in pending if not self._wave_held(r.wave)]
        retire = [r for r in retire if not self._wave_held(r.wave)]
        pending, refused = self._in_cutover_order(pending, open_requests, now)
        outcomes.extend(refused)
        answered |= {(outcome.migration_id, outcome.kind) for outcome in refused}
        open_requests = [launch for launch in open_requests if launch.request.key not in answered]
        active = [ActiveJob(i.job_id, i.kind, i.server_ids) for i in intents.values()]
        planned = plan_launches(
            pending, active, self._quotas, now=now, linger=self._linger, retire=retire
        )

        remaining = {launch.request.key: launch for launch in open_requests}
        unstarted = [intent for intent in intents.values() if intent.job_id is None]
        started = self._start_all(unstarted, planned, remaining, snapshot.version, now)
        outcomes.extend(started)
        waits_for_window = [
            launch.window_start
            for launch in pending
            if launch.kind == "cutover"
            and launch.window_start is not None
            and launch.window_start > now
        ]
        self.last_run = RunSummary(
            waiting=len(open_requests) - len(started),
            jobs=len(intents) + len(planned),
            busy=bool(intents or planned or retire or len(waits_for_window) < len(pending)),
            next_window=min(waits_for_window, default=None),
            undelivered=snapshot.undelivered,
        )
        return outcomes

    def _tell_held(
        self, wanted: Sequence[LaunchRequest], unclaimed: Sequence[WaitingLaunch]
    ) -> None:
        """Say once per pause of each request the pause holds (it would start now
        otherwise), so that its thread shows the migration paused."""
        keys = {request.key for request in wanted}
        by_hold: dict[str, list[WaitingLaunch]] = {}
        for launch in unclaimed:
            hold = self._wave_held(launch.request.wave) if launch.request.key in keys else ""
            if hold and launch.held_reported != hold:
                by_hold.setdefault(hold, []).append(launch)
        for hold, launches in by_hold.items():
            self._on_held(launches, hold)
            self._ledger.mark_held_reported(launches, hold)

    # --- (c) cutover order ------------------------------------------------------------------

    def _in_cutover_order(
        self,
        pending: Sequence[LaunchRequest],
        open_requests: Sequence[WaitingLaunch],
        now: datetime,
    ) -> tuple[list[LaunchRequest], list[LaunchOutcome]]:
        """The pending requests that may be planned now (a cutover only once the
        applications it goes after have cut over), and the answers to the cutovers whose
        dependencies rolled back or failed."""
        if self._wave_migrations is None:
            return list(pending), []
        order = order_cutovers(
            [r for r in pending if r.kind == "cutover" and cutover_window_open(r, now)],
            [launch.request for launch in open_requests],
            self._wave_migrations,
        )
        refused = [
            _outcome(
                launch,
                job_id=None,
                status="DEPENDENCY_FAILED",
                detail=order.failed[launch.request.key],
            )
            for launch in open_requests
            if launch.request.key in order.failed
        ]
        self._ledger.complete(refused)
        newly_waiting = [
            (launch, order.waiting[launch.request.key])
            for launch in open_requests
            if launch.request.key in order.waiting and not launch.dependencies_reported
        ]
        if newly_waiting:
            self._on_dependencies(newly_waiting)
            self._ledger.mark_dependencies_reported([launch for launch, _ in newly_waiting])
        not_now = order.waiting.keys() | order.failed.keys()
        return [r for r in pending if r.key not in not_now], refused

    # --- (b) replication, in bulk ---------------------------------------------------------

    def _replication(
        self, unclaimed: Sequence[WaitingLaunch], now: datetime
    ) -> tuple[set[tuple[str, LaunchKind]], list[LaunchOutcome]]:
        """The test requests whose servers became launchable (marked, and reported), and
        the outcomes of those whose replication stalled. Servers are looked at when their
        request is new (since the last run, about a linger ago) and every
        ``readiness_poll`` (the runs that cross a multiple of it)."""
        replicating = [
            launch
            for launch in unclaimed
            if launch.request.kind == "test" and not launch.replication_ready
        ]
        due = self._poll_due(now)
        recent = (self._since or now - self._linger) - self._linger
        looked_at = [
            launch for launch in replicating if due or launch.request.requested_at > recent
        ]
        if not looked_at:
            return set(), []
        servers = {
            server.source_server_id: server
            for server in self._mgn.source_servers(
                list(dict.fromkeys(launch.request.source_server_id for launch in looked_at))
            )
        }
        ready: list[WaitingLaunch] = []
        stalled: list[LaunchOutcome] = []
        for launch in looked_at:
            server = servers.get(launch.request.source_server_id)
            if server is not None and replication_ready(server):
                ready.append(launch)
            elif server is not None and server.replication_state in STUCK_REPLICATION:
                reason = f": {server.replication_error}" if server.replication_error else ""
                stalled.append(
                    _outcome(
                        launch,
                        job_id=None,
                        status="REPLICATION_STALLED",
                        detail=f"replication of {server.source_server_id} is "
                        f"{server.replication_state}{reason}",
                    )
                )
        if ready:
            self._associate(ready, servers)
            self._ledger.mark_replication_ready(ready)
            self._on_replicated(ready)
        self._ledger.complete(stalled)
        return {launch.request.key for launch in ready}, stalled

    def _associate(
        self, ready: Sequence[WaitingLaunch], servers: Mapping[str, SourceServer]
    ) -> None:
        """Put the launchable servers whose preparation left it to the coordinator in their
        MGN applications, up to 50 per call, as they were just described: one not in any
        application joins its own; one in another application (moved in MGN's console) is
        left for its cutover's preparation, which moves it and says so in the thread.
        MGN's grouping is for people in its console: a refusal is logged and the launch goes
        on (the cutover's preparation places the server again)."""
        joining: dict[str, list[str]] = {}
        for launch in ready:
            application_id = launch.request.mgn_application_id
            server = servers.get(launch.request.source_server_id)
            if application_id and server is not None and server.application_id is None:
                joining.setdefault(application_id, []).append(server.source_server_id)
        for application_id, server_ids in joining.items():
            try:
                self._mgn.associate_source_servers(application_id, server_ids)
            except MgnThrottledError:
                raise
            except MgnError as exc:
                logger.warning(
                    "source servers not associated with their MGN application",
                    extra={
                        "application_id": application_id,
                        "servers": server_ids,
                        "error": str(exc),
                    },
                )

    def _poll_due(self, now: datetime) -> bool:
        """Whether a multiple of ``readiness_poll`` passed since the last run: stateless (the
        loop says how long it waited), so a restarted loop keeps the cadence."""
        poll = max(self._readiness_poll.total_seconds(), 1.0)
        since = self._since or now - self._linger
        return int(now.timestamp() // poll) != int(since.timestamp() // poll)

    # --- (a) observe ------------------------------------------------------------------------

    def _observe(
        self, intents: Sequence[LaunchIntent], waiting: Waiting
    ) -> tuple[list[LaunchOutcome], list[str]]:
        """Outcomes of the servers of the jobs that completed, and those jobs' intents: one
        ``DescribeJobs`` call for all of them."""
        started = [intent for intent in intents if intent.job_id is not None]
        if not started:
            return [], []
        jobs = {job.job_id: job for job in self._mgn.jobs([i.job_id for i in started if i.job_id])}
        outcomes: list[LaunchOutcome] = []
        ended: list[str] = []
        for intent in started:
            job = jobs.get(intent.job_id or "")
            if job is None:
                continue  # not visible yet (MGN reads are eventually consistent): next poll
            outcomes.extend(_ended_launches(intent, job, waiting))
            if job.status == "COMPLETED":
                ended.append(intent.intent_id)
        return self._with_instances(outcomes), ended

    def _with_instances(self, outcomes: list[LaunchOutcome]) -> list[LaunchOutcome]:
        """The launched instances, read in bulk, each with its outcome. A read that fails
        costs only the shortcut: the outcomes go without, and each verify step looks."""
        launched = [o.launched_ec2_instance_id for o in outcomes if o.launched_ec2_instance_id]
        if self._instances is None or not launched:
            return outcomes
        try:
            seen = self._instances(launched)
        except Exception:
            logger.warning(
                "the launched instances could not be read in bulk: each verify step reads its own",
                extra={"instances": len(launched)},
                exc_info=True,
            )
            return outcomes
        return [
            replace(outcome, instance=seen.get(outcome.launched_ec2_instance_id or ""))
            for outcome in outcomes
        ]

    @staticmethod
    def _closed_windows(
        waiting: Waiting,
        intents: Iterable[LaunchIntent],
        now: datetime,
    ) -> list[LaunchOutcome]:
        """Cutovers no job holds whose window has closed: they will never start."""
        intents = list(intents)
        return [
            _outcome(
                launch,
                job_id=None,
                status="WINDOW_CLOSED",
                detail=f"the cutover window closed at {launch.request.window_end}",
            )
            for launch in waiting.values()
            if cutover_window_closed(launch.request, now)
            and not any(_belongs(launch.request, intent) for intent in intents)
        ]

    # --- (d) start, exactly once ----------------------------------------------------------

    def _start_all(
        self,
        unstarted: Sequence[LaunchIntent],
        planned: Sequence[PlannedJob],
        waiting: Waiting,
        version: int,
        now: datetime,
    ) -> list[LaunchOutcome]:
        """Intents left unstarted by a crash first (their servers are already counted), then
        the planned jobs, each recorded before MGN is asked. Stops at the first quota refusal
        (the lane is full: the rest waits for the next run) or when another coordinator
        wrote to the ledger since it was read."""
        outcomes: list[LaunchOutcome] = []
        for intent in unstarted:
            if any(
                cutover_window_closed(launch.request, now)
                for launch in _members_waiting(intent, waiting)
            ):
                self._ledger.remove_intent(intent.intent_id)  # answered by the next run
                continue
            refused, room_left = self._start(intent, waiting)
            outcomes.extend(refused)
            if not room_left:
                return outcomes
        for job in planned:
            intent = LaunchIntent(
                intent_id=self._new_intent_id(),
                kind=job.kind,
                members={r.source_server_id: r.migration_id for r in job.requests},
                created_at=now,
            )
            try:
                self._ledger.add_intent(intent, seen_version=version)
            except LedgerConflictError:
                return outcomes
            version += 1
            refused, room_left = self._start(intent, waiting)
            outcomes.extend(refused)
            if not room_left:
                break
        return outcomes

    def _start(self, intent: LaunchIntent, waiting: Waiting) -> tuple[list[LaunchOutcome], bool]:
        """Start the intent's job; the outcomes of servers MGN refused, and whether the
        lane's quotas may have room for another job."""
        start = {
            "test": self._mgn.start_test,
            "cutover": self._mgn.start_cutover,
            "retire": self._mgn.terminate_target_instances,
        }[intent.kind]
        try:
            job = start(list(intent.server_ids), {INTENT_TAG: intent.intent_id})
        except MgnQuotaExceededError:
            # Another job (a rollback's, an operator's) took the room: try again next run.
            self._ledger.remove_intent(intent.intent_id)
            return [], False
        except MgnConflictError as conflict:
            return self._resolve_conflict(intent, conflict, waiting), True
        self._ledger.record_job(intent.intent_id, job.job_id)
        self._started(intent, job.job_id, waiting)
        return [], True

    def _started(self, intent: LaunchIntent, job_id: str, waiting: Waiting) -> None:
        if intent.kind != "retire":
            self._on_started(intent, job_id, _members_waiting(intent, waiting))

    def _resolve_conflict(
        self,
        intent: LaunchIntent,
        conflict: MgnConflictError,
        waiting: Waiting,
    ) -> list[LaunchOutcome]:
        """MGN refused the start. If the servers are busy with this very intent's job (its
        start went through but its answer was lost), adopt that job. Otherwise the servers
        MGN named fail alone, and the others go back to waiting for the next plan."""
        adopted = self._started_jobs([intent]).get(intent.intent_id)
        if adopted is not None:
            self._ledger.record_job(intent.intent_id, adopted)
            self._started(intent, adopted, waiting)
            return []
        if intent.kind == "retire":
            # MGN will not terminate these servers' instances now (another job holds them,
            # or their lifecycle state forbids it): their cutovers go ahead, and MGN's answer
            # to StartCutover decides (refused: REFUSED, and the rollback retires the test
            # instance). The others are planned again.
            refused_retire = conflict.refused or dict.fromkeys(intent.server_ids, "")
            self._ledger.mark_test_instance_retired(
                [
                    launch
                    for launch in _members_waiting(intent, waiting)
                    if launch.request.source_server_id in refused_retire
                ]
            )
            self._ledger.remove_intent(intent.intent_id)
            return []
        # A conflict naming no server (not MGN's shape) refuses them all: retrying the same
        # batch would only be refused again.
        refused = conflict.refused or dict.fromkeys(intent.server_ids, "")
        outcomes = [
            _outcome(
                launch,
                job_id=None,
                status="REFUSED",
                detail=f"MGN refused the {intent.kind} launch "
                f"({refused[launch.request.source_server_id] or 'conflict'}): {conflict}",
            )
            for launch in _members_waiting(intent, waiting)
            if launch.request.source_server_id in refused
        ]
        self._ledger.complete(outcomes)
        self._ledger.remove_intent(intent.intent_id)
        return outcomes

    def _started_jobs(self, intents: Sequence[LaunchIntent]) -> dict[str, str]:
        """Intent ID -> the job MGN started for it (found by its tag), for intents whose job
        was never recorded: one ``DescribeJobs`` from the oldest intent's time on."""
        if not intents:
            return {}
        since = min(intent.created_at for intent in intents) - CLOCK_MARGIN
        wanted = {intent.intent_id: intent for intent in intents}
        found: dict[str, str] = {}
        for job in self._mgn.jobs_since(since):
            intent = wanted.get(job.tags.get(INTENT_TAG, ""))
            if intent is not None and job.initiated_by == _INITIATED_BY[intent.kind]:
                found[intent.intent_id] = job.job_id
        return found


def _belongs(request: LaunchRequest, intent: LaunchIntent) -> bool:
    """Whether the intent launches this request (or retires its test instance): same
    migration, server and kind, and the request made before the intent (a new request for a
    later launch is not this one)."""
    return (
        intent.request_kind == request.kind
        and intent.members.get(request.source_server_id) == request.migration_id
        and request.requested_at <= intent.created_at
    )


def _members_waiting(intent: LaunchIntent, waiting: Waiting) -> list[WaitingLaunch]:
    """The open requests the intent launches."""
    members = [
        waiting.get((migration_id, intent.request_kind)) for migration_id in intent.members.values()
    ]
    return [launch for launch in members if launch is not None and _belongs(launch.request, intent)]


def _ended_launches(intent: LaunchIntent, job: Job, waiting: Waiting) -> list[LaunchOutcome]:
    """An outcome for each of the intent's open requests, once the job has COMPLETED (each
    server's from its own ``launchStatus``; one the job does not report as launched has
    failed); none while the job runs.

    A server's launch may end long before its job does (a Linux boot beside a Windows
    conversion), but MGN allows one job per server and a job holds all its servers until
    it completes: an execution answered earlier would only meet a ConflictException at its
    next MGN call (ChangeServerLifeCycleState, FinalizeCutover) and retry it. Failures wait
    too: the failed server's rollback could do nothing in MGN before the job completes
    either (it would poll the running job, at two MGN calls a poll)."""
    if job.status != "COMPLETED" or intent.kind == "retire":
        return []
    entries: dict[str, JobServer] = {entry.source_server_id: entry for entry in job.servers}
    outcomes: list[LaunchOutcome] = []
    for launch in _members_waiting(intent, waiting):
        entry = entries.get(launch.request.source_server_id)
        if entry is not None and entry.launch_status in ENDED:
            status = ENDED[entry.launch_status]
            detail = "" if status == "LAUNCHED" else f"see MGN job {job.job_id}'s log"
            outcomes.append(
                _outcome(launch, job.job_id, status, entry.launched_instance_id, detail)
            )
        else:
            outcomes.append(
                _outcome(
                    launch,
                    job.job_id,
                    "FAILED",
                    detail=f"MGN job {job.job_id} completed "
                    + (f"with the server {entry.launch_status}" if entry else "without it"),
                )
            )
    return outcomes


def _outcome(
    launch: WaitingLaunch,
    job_id: str | None,
    status: LaunchStatus,
    instance_id: str | None = None,
    detail: str = "",
) -> LaunchOutcome:
    request = launch.request
    return LaunchOutcome(
        migration_id=request.migration_id,
        task_token=launch.task_token,
        kind=request.kind,
        job_id=job_id,
        source_server_id=request.source_server_id,
        launch_status=status,
        launched_ec2_instance_id=instance_id,
        detail=detail,
        execution=request.execution,
    )
