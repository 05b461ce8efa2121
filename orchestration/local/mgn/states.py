"""MGN's enumerated values, spelled exactly as on the wire.

Kept as `StrEnum`s so the emulator compares states by name, never by free-form string; a test
checks each enum against botocore's model so a typo cannot reach a client.
"""

from __future__ import annotations

from enum import StrEnum


class LifeCycleState(StrEnum):
    """`sourceServer.lifeCycle.state`."""

    STOPPED = "STOPPED"
    NOT_READY = "NOT_READY"
    READY_FOR_TEST = "READY_FOR_TEST"
    TESTING = "TESTING"
    READY_FOR_CUTOVER = "READY_FOR_CUTOVER"
    CUTTING_OVER = "CUTTING_OVER"
    CUTOVER = "CUTOVER"
    DISCONNECTED = "DISCONNECTED"
    DISCOVERED = "DISCOVERED"
    PENDING_INSTALLATION = "PENDING_INSTALLATION"


class DataReplicationState(StrEnum):
    """`sourceServer.dataReplicationInfo.dataReplicationState` (the states the emulator uses)."""

    INITIATING = "INITIATING"
    INITIAL_SYNC = "INITIAL_SYNC"
    BACKLOG = "BACKLOG"
    CONTINUOUS = "CONTINUOUS"
    STALLED = "STALLED"
    DISCONNECTED = "DISCONNECTED"


class JobType(StrEnum):
    LAUNCH = "LAUNCH"
    TERMINATE = "TERMINATE"


class InitiatedBy(StrEnum):
    START_TEST = "START_TEST"
    START_CUTOVER = "START_CUTOVER"
    TERMINATE = "TERMINATE"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"


class LaunchStatus(StrEnum):
    """`job.participatingServers[].launchStatus`."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    LAUNCHED = "LAUNCHED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"


class JobLogEvent(StrEnum):
    """`describe_job_log_items` events (the ones the emulator writes)."""

    JOB_START = "JOB_START"
    SERVER_SKIPPED = "SERVER_SKIPPED"
    CLEANUP_START = "CLEANUP_START"
    CLEANUP_END = "CLEANUP_END"
    CLEANUP_FAIL = "CLEANUP_FAIL"
    SNAPSHOT_START = "SNAPSHOT_START"
    SNAPSHOT_END = "SNAPSHOT_END"
    CONVERSION_START = "CONVERSION_START"
    CONVERSION_END = "CONVERSION_END"
    LAUNCH_START = "LAUNCH_START"
    LAUNCH_FAILED = "LAUNCH_FAILED"
    JOB_END = "JOB_END"


class FirstBoot(StrEnum):
    """`launchedInstance.firstBoot`."""

    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"


class LaunchType(StrEnum):
    """Which kind of launch a job or instance belongs to (emulator vocabulary, not MGN's)."""

    TEST = "test"
    CUTOVER = "cutover"


class ReplicationError(StrEnum):
    """`dataReplicationError.error` values a stall fault may report."""

    AGENT_NOT_SEEN = "AGENT_NOT_SEEN"
    NOT_CONVERGING = "NOT_CONVERGING"
    UNSTABLE_NETWORK = "UNSTABLE_NETWORK"
    SNAPSHOTS_FAILURE = "SNAPSHOTS_FAILURE"
    FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER = "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER"


class OsFamily(StrEnum):
    WINDOWS = "windows"
    LINUX = "linux"
