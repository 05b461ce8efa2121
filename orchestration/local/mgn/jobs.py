"""Jobs on the simulated clock: each job is a fixed timeline, applied lazily when it is due.

A job's transitions are scheduled when it is created; `JobEngine.settle(now)` applies every
transition whose time has come, oldest first across all jobs, before each request is
answered. Side effects (EC2 instances launched or terminated) therefore happen on the first
request that observes the transition, stamped with its simulated time, so results do not
depend on request timing or on a background thread.

    LAUNCH     PENDING --pending--> STARTED (cleanup of the previous instance, SNAPSHOT_START)
               --snapshot--> SNAPSHOT_END, CONVERSION_START --conversion--> CONVERSION_END,
               LAUNCH_START (EC2 RunInstances) or LAUNCH_FAILED --boot--> LAUNCHED, COMPLETED
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
    JobLogEntry,
    JobRecord,
    LaunchedInstanceRecord,
    MgnState,
    ParticipantRecord,
    ScheduledTransition,
    SourceServerRecord,
)
from orchestration.local.mgn.replication import initial_sync_completed_at
from orchestration.local.mgn.settings import JobTiming
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

_STARTED = "started"
_SNAPSHOT_TAKEN = "snapshot-taken"
_CONVERTED = "converted"
_FINISHED = "finished"


class JobEngine:
    """Creates jobs and moves them (and replication-driven lifecycle) along the clock."""

    def __init__(
        self,
        *,
        state: MgnState,
        ec2: Ec2LaunchPort,
        faults: FaultState,
        timing: JobTiming,
        ids: IdFactory,
        arns: ArnFactory,
    ) -> None:
        self._state = state
        self._ec2 = ec2
        self._faults = faults
        self._timing = timing
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
        participants = {
            server.source_server_id: ParticipantRecord(server.source_server_id)
            for server in servers
        }
        job = JobRecord(
            job_id=job_id,
            arn=self._arns.job(job_id),
            sequence=self._state.take_sequence(),
            job_type=job_type,
            initiated_by=initiated_by,
            created_at=now,
            tags=tags,
            participants=participants,
            timeline=self._timeline(job_type, now),
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

    def _timeline(self, job_type: JobType, now: datetime) -> tuple[ScheduledTransition, ...]:
        timing = self._timing
        started = now + timing.pending
        if job_type is JobType.TERMINATE:
            return (
                ScheduledTransition(started, _STARTED),
                ScheduledTransition(started + timing.terminate, _FINISHED),
            )
        snapshot_taken = started + timing.snapshot
        converted = snapshot_taken + timing.conversion
        return (
            ScheduledTransition(started, _STARTED),
            ScheduledTransition(snapshot_taken, _SNAPSHOT_TAKEN),
            ScheduledTransition(converted, _CONVERTED),
            ScheduledTransition(converted + timing.boot, _FINISHED),
        )

    def _apply(self, job: JobRecord, transition: ScheduledTransition) -> None:
        launch_type = job.launch_type
        if transition.name == _STARTED:
            self._start(job, transition.at)
        elif transition.name == _SNAPSHOT_TAKEN:
            for server_id in job.participants:
                self._log(job, transition.at, JobLogEvent.SNAPSHOT_END, server_id)
                self._log(job, transition.at, JobLogEvent.CONVERSION_START, server_id)
        elif transition.name == _CONVERTED and launch_type is not None:
            for participant in job.participants.values():
                self._launch(job, participant, launch_type, transition.at)
        elif transition.name == _FINISHED and launch_type is not None:
            self._finish_launch(job, launch_type, transition.at)
        elif transition.name == _FINISHED:
            self._finish_termination(job, transition.at)

    def _start(self, job: JobRecord, at: datetime) -> None:
        job.status = JobStatus.STARTED
        self._log(job, at, JobLogEvent.JOB_START)
        for server_id, participant in job.participants.items():
            server = self._state.servers[server_id]
            if job.job_type is JobType.TERMINATE:
                if participant.launched_ec2_instance_id is None:
                    participant.launch_status = None
                    self._log(job, at, JobLogEvent.SERVER_SKIPPED, server_id)
                else:
                    participant.launch_status = LaunchStatus.IN_PROGRESS
                    self._log(job, at, JobLogEvent.CLEANUP_START, server_id)
                continue
            participant.launch_status = LaunchStatus.IN_PROGRESS
            if server.launched_instance is not None:
                self._replace_previous_instance(job, server, at)
            self._log(job, at, JobLogEvent.SNAPSHOT_START, server_id)

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
        failure = self._faults.take_launch_failure(server_id, launch_type)
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

    def _finish_launch(self, job: JobRecord, launch_type: LaunchType, at: datetime) -> None:
        for server_id, participant in job.participants.items():
            server = self._state.servers[server_id]
            if participant.launch_status is LaunchStatus.FAILED:
                if server.lifecycle_state is STATE_DURING_LAUNCH[launch_type]:
                    server.lifecycle_state = STATE_AFTER_FAILED_LAUNCH[launch_type]
            else:
                participant.launch_status = LaunchStatus.LAUNCHED
                if server.launched_instance is not None:
                    server.launched_instance.first_boot = FirstBoot.SUCCEEDED
        self._complete(job, at)

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
