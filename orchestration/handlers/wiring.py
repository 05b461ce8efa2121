"""Build each handler's collaborators once per container, on first use (not at import)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

import boto3

from orchestration.adapters import aws
from orchestration.adapters.ec2 import Ec2Adapter
from orchestration.adapters.event_bus import EventBus
from orchestration.adapters.health import AddressResolver, HealthProber, direct
from orchestration.adapters.mgn import MgnAdapter
from orchestration.adapters.state_store import MigrationStore
from orchestration.adapters.stepfunctions import StepFunctionsAdapter
from orchestration.pipeline.approvals import ApprovalService
from orchestration.pipeline.reporter import StatusReporter
from orchestration.pipeline.steps import MigrationSteps
from orchestration.settings import settings

if TYPE_CHECKING:
    from mypy_boto3_mgn.client import MgnClient

_health_address_resolver: AddressResolver = direct


def use_health_address_resolver(resolver: AddressResolver) -> None:
    """The embedded runtime maps emulated instances to loopback listeners; AWS needs nothing."""
    global _health_address_resolver  # noqa: PLW0603 - a process-wide hook, set once at start
    _health_address_resolver = resolver
    reset()


def clock() -> datetime:
    return datetime.now(UTC)


@cache
def store() -> MigrationStore:
    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


@cache
def reporter() -> StatusReporter:
    return StatusReporter(store(), EventBus(aws.events(), settings().event_bus_name), clock)


@cache
def mgn() -> MgnAdapter:
    # AWS_ENDPOINT_URL_MGN (the embedded emulator) is honoured by boto3 itself.
    client: MgnClient = boto3.client("mgn", region_name=settings().mgn_region, config=aws.RETRIES)
    return MgnAdapter(client)


@cache
def steps() -> MigrationSteps:
    region = settings().aws_region
    ec2 = Ec2Adapter(
        boto3.client("ec2", region_name=region, config=aws.RETRIES),
        boto3.client("iam", region_name=region, config=aws.RETRIES),
    )
    return MigrationSteps(
        mgn=mgn(),
        ec2=ec2,
        prober=HealthProber(_health_address_resolver),
        reporter=reporter(),
        clock=clock,
    )


@cache
def stepfunctions() -> StepFunctionsAdapter:
    return StepFunctionsAdapter(aws.stepfunctions())


@cache
def approvals() -> ApprovalService:
    return ApprovalService(store(), stepfunctions(), reporter(), clock)


def reset() -> None:
    for built in (store, reporter, mgn, steps, stepfunctions, approvals):
        built.cache_clear()
