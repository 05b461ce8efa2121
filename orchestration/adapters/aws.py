"""boto3 clients with standard retries, created once per process (per Lambda container)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from orchestration.settings import settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_stepfunctions.client import SFNClient

# Standard mode retries throttling and transient errors with jittered backoff; the
# legacy default (MGN's, among others) does not retry ThrottlingException well.
RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


@cache
def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=RETRIES)  # type: ignore[call-overload]


def sqs() -> SQSClient:
    return _client("sqs", settings().aws_region)  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    return _client("events", settings().aws_region)  # type: ignore[no-any-return]


def stepfunctions() -> SFNClient:
    return _client("stepfunctions", settings().aws_region)  # type: ignore[no-any-return]


@cache
def state_table(table_name: str, region: str) -> Table:
    return boto3.resource("dynamodb", region_name=region, config=RETRIES).Table(table_name)


def reset() -> None:
    """Forget cached clients and settings (tests switch endpoints and environments)."""
    _client.cache_clear()
    state_table.cache_clear()
    settings.cache_clear()
