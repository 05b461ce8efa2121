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
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_stepfunctions.client import SFNClient

# Standard mode retries throttling and transient errors with jittered backoff; the
# legacy default (MGN's, among others) does not retry ThrottlingException well.
# The pool is a cap, not connections opened: a Lambda container makes one call at a time and
# opens one; the embedded default shares these clients among every execution's Task threads
# (hundreds at once), and beyond botocore's default of 10 each call opened a new connection
# (and moto's server a new thread) and threw it away ("Connection pool is full").
MAX_POOL_CONNECTIONS = 64
RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=MAX_POOL_CONNECTIONS
)


@cache
def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=RETRIES)  # type: ignore[call-overload]


def caller_client(service: str, region: str) -> Any:
    """``service`` in ``region`` with the caller's own credentials: an operator command's
    reads in a target account (``wavepilot preflight``), where no hub role is needed."""
    return _client(service, region)


def sqs() -> SQSClient:
    return _client("sqs", settings().aws_region)  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    return _client("events", settings().aws_region)  # type: ignore[no-any-return]


def stepfunctions() -> SFNClient:
    return _client("stepfunctions", settings().aws_region)  # type: ignore[no-any-return]


def sts() -> Any:
    """The hub's STS, in its own Region: it assumes the target role of every lane."""
    return _client("sts", settings().aws_region)


def partition(region: str) -> str:
    """``aws``, ``aws-cn`` or ``aws-us-gov``: the partition ARNs in ``region`` are in."""
    return str(boto3.session.Session().get_partition_for_region(region))


def client_with_credentials(
    service: str, region: str, *, access_key_id: str, secret_access_key: str, session_token: str
) -> Any:
    """A client for one lane: ``service`` in ``region`` with a role session's credentials.

    Built on boto3's default session (explicit credentials override its own), so endpoints
    from the environment and every hook on that session apply as to the hub's clients.
    ``orchestration/adapters/lanes.py`` asks for these; MGN and EC2 have no hub client.
    """
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        config=RETRIES,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
    )


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
