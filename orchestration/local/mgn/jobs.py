"""Jobs on the simulated clock: each job is a fixed timeline, applied lazily when it is due.

A job's transitions are scheduled when it is created; `JobEngine.settle(now)` applies every
transition whose time has come, oldest first across all jobs, before each request is
answered. Side effects (EC2 instances launched or terminated) therefore happen on the first
request that observes the transition, stamped with its simulated time, so results do not
depend on request timing or on a background thread.

A LAUNCH job gives each participating server a timeline of its own, from the timing of its
launch kind and OS family (`EmulatorSettings.launch_timing`), and the job spans them:

    server     PENDING --pending--> IN_PROGRESS (cleanup of the previous instance,
               SNAPSHOT_START) --snapshot--> SNAPSHOT_END, CONVERSION_START --conversion-->
               CONVERSION_END, LAUNCH_START (EC2 RunInstances) or LAUNCH_FAILED --boot-->
               LAUNCHED, or FAILED (the server goes back to where it was)
    job        PENDING until its first server starts (JOB_START), STARTED until its last
               server is done, then COMPLETED (JOB_END)

A TERMINATE job has one timeline (`EmulatorSettings.jobs`) for all its servers:

    TERMINATE  PENDING --pending--> STARTED (CLEANUP_START) --terminate--> CLEANUP_END
               (EC2 TerminateInstances), TERMINATED, COMPLETED
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from orchestration.local.mgn.ec2_port import Ec2LaunchError, Ec2LaunchPort
from orchestration.local.mgn.faults import FaultState
from orchestration.local.mgn.identifiers import ArnFactory, IdFactory
from orchestration.local.mgn.lifecycle import STATE_AFTER_FAILED_LAUNCH, STATE_DURING_LAUNCH
from orchestration.local.mgn.model import (
    LAUNCH_TYPE_OF,
    JobLogEntry,
    JobRecord,
    LaunchedInstanceRecord,
    MgnState,
    ParticipantRecord,
    ScheduledTransition,
    SourceServerRecord,
)
from orchestration.local.mgn.post_launch import plan_run
from orchestration.local.mgn.replication import initial_sync_completed_at
from orchestration.local.mgn.settings import EmulatorSettings
from orchestration.local.mgn.states import (
    FirstBoot,
    InitiatedBy,
    JobLogEvent,
    JobStatus,
    JobType,
    LaunchStatus,
    LaunchType,
    LifeCycleState,
)

SOURCE_SERVER_ID_TAG = "AWSApplicationMigrationServiceSourceServerID"
LAUNCH_TYPE_TAG = "mgn-emulator:launch-type"
# Transitions of a whole job (ScheduledTransition.source_server_id None).
_STARTED = "started"
_FINISHED = "finished"
# Transitions of one server in a launch job.
_SERVER_STARTED = "server-started"
_SNAPSHOT_TAKEN = "snapshot-taken"
_CONVERTED = "converted"
_SERVER_FINISHED = "server-finished"


class JobEngine:
    """Creates jobs and moves them (and replication-driven lifecycle) along the clock."""

    def __init__(
        self,
        *,
        state: MgnState,
        ec2: Ec2LaunchPort,
        faults: FaultState,
        settings: EmulatorSettings,
        ids: IdFactory,
        arns: ArnFactory,
    ) -> None:
        self._state = state
        self._ec2 = ec2
        self._faults = faults
        self._settings = settings
        self._ids = ids
        self._arns = arns

    def open_job(
        self,
        *,
        initiated_by: InitiatedBy,
        servers: Iterable[SourceServerRecord],
        tags: dict[str, str],
        now: datetime,
    ) -> JobRecord:
        """Create a PENDING job on `servers` and mark them busy with it."""
        job_id = self._ids.job_id()
        job_type = JobType.TERMINATE if initiated_by is InitiatedBy.TERMINATE else JobType.LAUNCH
        servers = list(servers)
        launch_type = LAUNCH_TYPE_OF.get(initiated_by)
        participants = {
            server.source_server_id: ParticipantRecord(
                server.source_server_id,
                attempt=server.count_launch_attempt(launch_type) if launch_type else 1,
            )
            for server in servers
        }
        timeline = (
            self._launch_timeline(launch_type, servers, now)
            if launch_type is not None
            else self._terminate_timeline(now)
        )
        job = JobRecord(
            job_id=job_id,
            arn=self._arns.job(job_id),
            sequence=self._state.take_sequence(),
            job_type=job_type,
            initiated_by=initiated_by,
            created_at=now,
            tags=tags,
            participants=participants,
            timeline=timeline,
        )
        for server_id, participant in participants.items():
            server = self._state.servers[server_id]
            server.active_job_id = job_id
            if job_type is JobType.TERMINATE and server.launched_instance is not None:
                participant.launched_ec2_instance_id = server.launched_instance.ec2_instance_id
        self._state.jobs[job_id] = job
        self._state.active_job_ids.add(job_id)
        return job

    def settle(self, now: datetime) -> None:
        """Apply everything that has become due by `now`, in simulated-time order."""
        self._promote_first_syncs(now)
        while True:
            due = [
                (transition.at, job.sequence, job, transition)
                for job in self._state.active_jobs()
                if (transition := job.due_transition(now)) is not None
            ]
            if not due:
                return
            _, _, job, transition = min(due, key=lambda item: (item[0], item[1]))
            job.next_transition += 1
            self._apply(job, transition)

    def _promote_first_syncs(self, now: datetime) -> None:
        """NOT_READY -> READY_FOR_TEST once replication has first been CONTINUOUS."""
        for server_id in list(self._state.awaiting_first_sync):
            server = self._state.servers[server_id]
            synced_at = initial_sync_completed_at(server.replication, server.stalls)
            if synced_at is not None and synced_at <= now:
                self._state.awaiting_first_sync.discard(server_id)
                if server.lifecycle_state is LifeCycleState.NOT_READY:
                    server.lifecycle_state = LifeCycleState.READY_FOR_TEST

    def _terminate_timeline(self, now: datetime) -> tuple[ScheduledTransition, ...]:
        timing = self._settings.jobs
        started = now + timing.pending
        return (
            ScheduledTransition(started, _STARTED),
            ScheduledTransition(started + timing.terminate, _FINISHED),
        )

    def _launch_timeline(
        self, launch_type: LaunchType, servers: Iterable[SourceServerRecord], now: datetime
    ) -> tuple[ScheduledTransition, ...]:
        """Every server's transitions on its own timing, between the job's start (its first
        server's) and end (its last server's), in time order; at one instant the job starts
        before, and ends after, its servers' transitions, and servers keep the job's order."""
        per_server = [
            transition
            for server in servers
            for transition in self._server_launch_timeline(launch_type, server, now)
        ]
        started = min(t.at for t in per_server if t.name == _SERVER_STARTED)
        finished = max(t.at for t in per_server if t.name == _SERVER_FINISHED)
        return tuple(
            sorted(
                [
                    ScheduledTransition(started, _STARTED),
                    *per_server,
                    ScheduledTransition(finished, _FINISHED),
                ],
                key=lambda transition: transition.at,  # stable: ties keep the order above
            )
        )

    def _server_launch_timeline(
        self, launch_type: LaunchType, server: SourceServerRecord, now: datetime
    ) -> tuple[ScheduledTransition, ...]:
        timing = self._settings.launch_timing(launch_type.value, server.os_family.value)
        server_id = server.source_server_id
        started = now + timing.pending
        snapshot_taken = started + timing.snapshot
        converted = snapshot_taken + timing.conversion
        return (
            ScheduledTransition(started, _SERVER_STARTED, server_id),
            ScheduledTransition(snapshot_taken, _SNAPSHOT_TAKEN, server_id),
            ScheduledTransition(converted, _CONVERTED, server_id),
            ScheduledTransition(converted + timing.boot, _SERVER_FINISHED, server_id),
        )

    def _apply(self, job: JobRecord, transition: ScheduledTransition) -> None:
        launch_type = job.launch_type
        if transition.source_server_id is not None and launch_type is not None:
            participant = job.participants[transition.source_server_id]
            self._apply_to_server(job, participant, launch_type, transition)
        elif transition.name == _STARTED and launch_type is not None:
            job.status = JobStatus.STARTED
            self._log(job, transition.at, JobLogEvent.JOB_START)
        elif transition.name == _STARTED:
            self._start_termination(job, transition.at)
        elif transition.name == _FINISHED and launch_type is not None:
            self._complete(job, transition.at)
        elif transition.name == _FINISHED:
            self._finish_termination(job, transition.at)

    def _apply_to_server(
        self,
        job: JobRecord,
        participant: ParticipantRecord,
        launch_type: LaunchType,
        transition: ScheduledTransition,
    ) -> None:
        server_id, at = participant.source_server_id, transition.at
        if transition.name == _SERVER_STARTED:
            self._start_launch(job, participant, at)
        elif transition.name == _SNAPSHOT_TAKEN:
            self._log(job, at, JobLogEvent.SNAPSHOT_END, server_id)
            self._log(job, at, JobLogEvent.CONVERSION_START, server_id)
        elif transition.name == _CONVERTED:
            self._launch(job, participant, launch_type, at)
        elif transition.name == _SERVER_FINISHED:
            self._finish_launch(job, participant, launch_type, at)

    def _start_termination(self, job: JobRecord, at: datetime) -> None:
        job.status = JobStatus.STARTED
        self._log(job, at, JobLogEvent.JOB_START)
        for server_id, participant in job.participants.items():
            if participant.launched_ec2_instance_id is None:
                participant.launch_status = None
                self._log(job, at, JobLogEvent.SERVER_SKIPPED, server_id)
            else:
                participant.launch_status = LaunchStatus.IN_PROGRESS
                self._log(job, at, JobLogEvent.CLEANUP_START, server_id)

    def _start_launch(self, job: JobRecord, participant: ParticipantRecord, at: datetime) -> None:
        server = self._state.servers[participant.source_server_id]
        participant.launch_status = LaunchStatus.IN_PROGRESS
        if server.launched_instance is not None:
            self._replace_previous_instance(job, server, at)
        self._log(job, at, JobLogEvent.SNAPSHOT_START, server.source_server_id)

    def _replace_previous_instance(
        self, job: JobRecord, server: SourceServerRecord, at: datetime
    ) -> None:
        """A new launch first terminates the server's previous instance, as MGN does."""
        assert server.launched_instance is not None
        previous = server.launched_instance.ec2_instance_id
        self._log(job, at, JobLogEvent.CLEANUP_START, server.source_server_id, instance=previous)
        try:
            self._ec2.terminate_instances([previous])
        except Ec2LaunchError as error:
            self._log(job, at, JobLogEvent.CLEANUP_FAIL, server.source_server_id, error=str(error))
            return
        server.launched_instance = None
        self._log(job, at, JobLogEvent.CLEANUP_END, server.source_server_id, instance=previous)

    def _launch(
        self,
        job: JobRecord,
        participant: ParticipantRecord,
        launch_type: LaunchType,
        at: datetime,
    ) -> None:
        server = self._state.servers[participant.source_server_id]
        server_id = server.source_server_id
        self._log(job, at, JobLogEvent.CONVERSION_END, server_id)
        failure = self._faults.take_launch_failure(
            server_id, launch_type, attempt=participant.attempt, job_id=job.job_id
        )
        if failure is not None:
            self._fail_launch(job, participant, at, failure.raw_error)
            return
        configuration = server.launch_configuration
        tags = {SOURCE_SERVER_ID_TAG: server_id, LAUNCH_TYPE_TAG: launch_type.value}
        if configuration.copy_tags:
            tags = {**server.tags, **tags}
        right_sized = configuration.right_sizing == "BASIC"
        try:
            instance_id = self._ec2.run_instance(
                configuration.ec2_launch_template_id,
                server_id,
                tags,
                server.recommended_instance_type if right_sized else None,
            )
        except Ec2LaunchError as error:
            self._fail_launch(job, participant, at, str(error))
            return
        participant.launched_ec2_instance_id = instance_id
        server.launched_instance = LaunchedInstanceRecord(instance_id, job.job_id, launch_type)
        self._log(job, at, JobLogEvent.LAUNCH_START, server_id, instance=instance_id)

    def _fail_launch(
        self, job: JobRecord, participant: ParticipantRecord, at: datetime, raw_error: str
    ) -> None:
        participant.launch_status = LaunchStatus.FAILED
        self._log(job, at, JobLogEvent.LAUNCH_START, participant.source_server_id)
        self._log(job, at, JobLogEvent.LAUNCH_FAILED, participant.source_server_id, error=raw_error)

    def _finish_launch(
        self,
        job: JobRecord,
        participant: ParticipantRecord,
        launch_type: LaunchType,
        at: datetime,
    ) -> None:
        """The server's launch is over: LAUNCHED and booted (its post-launch actions start),
        or, if it failed, the server goes back to where it was so the pipeline can retry
        (once the job has ended)."""
        server = self._state.servers[participant.source_server_id]
        if participant.launch_status is LaunchStatus.FAILED:
            if server.lifecycle_state is STATE_DURING_LAUNCH[launch_type]:
                server.lifecycle_state = STATE_AFTER_FAILED_LAUNCH[launch_type]
            return
        participant.launch_status = LaunchStatus.LAUNCHED
        if server.launched_instance is not None:
            server.launched_instance.first_boot = FirstBoot.SUCCEEDED
        timing = self._settings.post_launch
        participant.post_launch = plan_run(
            job_id=job.job_id,
            source_server_id=server.source_server_id,
            actions=list(server.actions.values()),
            faults=self._faults.post_launch_faults.get(server.source_server_id, {}),
            booted_at=at,
            ssm_agent_discovery=timing.ssm_agent_discovery,
            action_duration=timing.action,
        )

    def _finish_termination(self, job: JobRecord, at: datetime) -> None:
        doomed = {
            participant.launched_ec2_instance_id: participant
            for participant in job.participants.values()
            if participant.launch_status is LaunchStatus.IN_PROGRESS
            and participant.launched_ec2_instance_id is not None
        }
        failure: str | None = None
        if doomed:
            try:
                self._ec2.terminate_instances(list(doomed))
            except Ec2LaunchError as error:
                failure = str(error)
        for instance_id, participant in doomed.items():
            server = self._state.servers[participant.source_server_id]
            if failure is not None:
                participant.launch_status = LaunchStatus.FAILED
                self._log(job, at, JobLogEvent.CLEANUP_FAIL, server.source_server_id, error=failure)
                continue
            participant.launch_status = LaunchStatus.TERMINATED
            if server.launched_instance and server.launched_instance.ec2_instance_id == instance_id:
                server.launched_instance = None
            self._log(
                job, at, JobLogEvent.CLEANUP_END, server.source_server_id, instance=instance_id
            )
        self._complete(job, at)

    def _complete(self, job: JobRecord, at: datetime) -> None:
        for server_id in job.participants:
            server = self._state.servers[server_id]
            if server.active_job_id == job.job_id:
                server.active_job_id = None
        job.status = JobStatus.COMPLETED
        job.ended_at = at
        self._state.active_job_ids.discard(job.job_id)
        self._log(job, at, JobLogEvent.JOB_END)

    @staticmethod
    def _log(
        job: JobRecord,
        at: datetime,
        event: JobLogEvent,
        server_id: str | None = None,
        *,
        instance: str | None = None,
        error: str | None = None,
    ) -> None:
        job.log.append(JobLogEntry(at, event, server_id, instance, error))
