"""MGN emulator: AWS Application Migration Service on loopback for the embedded runtime.

Speaks MGN's rest-json protocol to the real boto3 `mgn` client, follows MGN's lifecycle, jobs
and quotas on a simulated clock, and launches real (moto) EC2 instances. See
docs/MGN_EMULATOR.md.
"""

from __future__ import annotations

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.ec2_port import (
    MGN_SERVICE_ROLE_NAME,
    AssumedRoleEc2Ports,
    Boto3Ec2LaunchPort,
    Ec2LaunchError,
    Ec2LaunchPort,
)
from orchestration.local.mgn.emulator import ENDPOINT_ENVIRONMENT_VARIABLE, MgnEmulator
from orchestration.local.mgn.errors import (
    ConflictError,
    MgnError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ThrottlingError,
    UninitializedAccountError,
    ValidationError,
)
from orchestration.local.mgn.faults import FaultInjector
from orchestration.local.mgn.jobs import LAUNCH_TYPE_TAG, SOURCE_SERVER_ID_TAG
from orchestration.local.mgn.lanes import FleetMetrics, LaneId, MgnFleet, SignedBy, signed_by
from orchestration.local.mgn.metrics import EmulatorMetrics
from orchestration.local.mgn.model import (
    JobSummary,
    ParticipantSummary,
    QuotaRejection,
    ReplicationTimeline,
    SourceServer,
)
from orchestration.local.mgn.operations import (
    CONCURRENT_JOBS_QUOTA,
    NON_ARCHIVED_SERVERS_QUOTA,
    SERVERS_IN_ACTIVE_JOBS_QUOTA,
)
from orchestration.local.mgn.settings import (
    EmulatorSettings,
    JobTiming,
    QuotaLimits,
    ReplicationTiming,
    RequestRateLimit,
)
from orchestration.local.mgn.states import (
    DataReplicationState,
    JobStatus,
    LaunchStatus,
    LaunchType,
    LifeCycleState,
    OsFamily,
    ReplicationError,
)

__all__ = [
    "CONCURRENT_JOBS_QUOTA",
    "ENDPOINT_ENVIRONMENT_VARIABLE",
    "LAUNCH_TYPE_TAG",
    "MGN_SERVICE_ROLE_NAME",
    "NON_ARCHIVED_SERVERS_QUOTA",
    "SERVERS_IN_ACTIVE_JOBS_QUOTA",
    "SOURCE_SERVER_ID_TAG",
    "AssumedRoleEc2Ports",
    "Boto3Ec2LaunchPort",
    "ConflictError",
    "DataReplicationState",
    "Ec2LaunchError",
    "Ec2LaunchPort",
    "EmulatorMetrics",
    "EmulatorSettings",
    "FaultInjector",
    "FleetMetrics",
    "JobStatus",
    "JobSummary",
    "JobTiming",
    "LaneId",
    "LaunchStatus",
    "LaunchType",
    "LifeCycleState",
    "MgnEmulator",
    "MgnError",
    "MgnFleet",
    "OsFamily",
    "ParticipantSummary",
    "QuotaLimits",
    "QuotaRejection",
    "ReplicationError",
    "ReplicationTimeline",
    "ReplicationTiming",
    "RequestRateLimit",
    "ResourceNotFoundError",
    "ServiceQuotaExceededError",
    "SignedBy",
    "SimulatedClock",
    "SourceServer",
    "ThrottlingError",
    "UninitializedAccountError",
    "ValidationError",
    "signed_by",
]
