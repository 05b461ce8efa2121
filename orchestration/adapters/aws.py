"""boto3 clients with standard retries, created once per process (per Lambda container).

The one place that calls ``boto3.client``/``boto3.resource`` for the pipeline and the bot:
the wiring modules (``orchestration/wiring.py``, ``bot/wiring.py``) ask here. Endpoints come
from the environment (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_MGN`` for the embedded default's
MGN emulator), which boto3 honours itself.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from orchestration.settings import settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_mgn.client import MgnClient
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


def mgn() -> MgnClient:
    """In ``MGN_REGION`` (which defaults to ``AWS_REGION``)."""
    return _client("mgn", settings().mgn_region)  # type: ignore[no-any-return]


def ec2() -> EC2Client:
    return _client("ec2", settings().aws_region)  # type: ignore[no-any-return]


def iam() -> IAMClient:
    return _client("iam", settings().aws_region)  # type: ignore[no-any-return]


def dynamodb() -> DynamoDBClient:
    """The low-level client (Powertools' idempotency layer takes one); items go through
    ``state_table``."""
    return _client("dynamodb", settings().aws_region)  # type: ignore[no-any-return]


@cache
def state_table(table_name: str, region: str) -> Table:
    return boto3.resource("dynamodb", region_name=region, config=RETRIES).Table(table_name)


def reset() -> None:
    """Forget cached clients and settings (tests switch endpoints and environments)."""
    _client.cache_clear()
    state_table.cache_clear()
    settings.cache_clear()
