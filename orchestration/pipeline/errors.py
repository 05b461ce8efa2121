"""Pipeline failures. Their class names are the ``Error`` names the state machine matches:
rename one and ``orchestration/statemachine/migration.asl.json`` must change with it
(a test checks that every name used there exists here)."""

from __future__ import annotations


class PipelineError(Exception):
    """A migration step failed; the message says what happened and what to do."""


class PrerequisiteError(PipelineError):
    """A live prerequisite is missing (subnet, security group, profile, source server)."""


class ReplicationStalledError(PipelineError):
    """Replication stalled, was disconnected or paused: it will not become ready alone."""


class ReplicationTimeoutError(PipelineError):
    """Replication did not become ready within the allowed time."""


class LaunchFailedError(PipelineError):
    """MGN reported the test or cutover launch as FAILED."""


class LaunchTimeoutError(PipelineError):
    """The launched instance was not running and healthy within the allowed time."""


class HealthCheckFailedError(PipelineError):
    """The launched instance kept failing its health checks."""


class LaunchJobRunningError(PipelineError):
    """The server's launch job has not completed yet: a batched job completes when its last
    server's launch ends, and MGN allows one job per server, so the next step on this server
    waits (the state machine retries it, as for MGN's quotas)."""


class CutoverWindowClosedError(PipelineError):
    """The wave's cutover window closed before the cutover could start."""


class WaveCancelledError(PipelineError):
    """An operator cancelled the wave: the migration rolls back instead of launching."""


class DependencyFailedError(PipelineError):
    """An application this cutover waits for (``dependsOn``) rolled back or failed: the
    cutover is rolled back instead of going ahead without it."""


class RollbackRefusedError(PipelineError):
    """A finalized cutover is not rolled back automatically."""


# Names the state machine uses that are not Python classes of ours.
APPROVAL_REJECTED = "ApprovalRejected"
# An operator asked for the rollback (/wavepilot rollback); the cause is their reason.
ROLLBACK_REQUESTED = "RollbackRequested"
# The ASL's ParkExpired state: a parked migration nobody decided within parkFor.
PARK_EXPIRED = "ParkExpired"
