"""Lanes: each migration's MGN, EC2 and IAM calls, in its target account and Region.

A lane is a target account + Region (DESIGN.md decision 12). The orchestration runs in one
hub account; for every lane the steps assume one role in the target account (its name:
``ResourceNames.target_role``, ``TARGET_ROLE_NAME``; ``terraform/modules/target-account``
creates it) and call MGN and EC2 in the lane's Region, IAM (instance profiles) in its account.

Rules:

- **Always through the role**, also when the target is the hub account itself: one policy
  (the module's) for every target, and the hub's function roles hold no MGN or EC2
  permission of their own, only ``sts:AssumeRole`` on roles of that name.
- **One role session per account**, cached: a session's credentials are valid in every
  Region, so lanes of one account share it. It is renewed when less than
  ``REFRESH_MARGIN`` of it is left, by the injected clock (a step never starts with
  credentials that could expire in the middle of it). Clients are built once per session and
  Region.
- **A role that cannot be assumed** (missing, not trusting this hub, STS refusing) is a
  :class:`LaneRoleUnavailableError` naming the account, Region and role and what to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from orchestration.adapters.ec2 import Ec2Adapter
from orchestration.adapters.errors import TransientError
from orchestration.adapters.mgn import MgnAdapter, SourceServer
from orchestration.clock import Clock

# A role session lasts an hour (the role's default maximum); renewed with 10 minutes left,
# longer than any step's Lambda timeout.
SESSION_SECONDS = 3600
REFRESH_MARGIN = timedelta(minutes=10)
SESSION_NAME = "wavepilot"

# STS errors that mean "this role cannot be assumed by this caller", not "try again".
_REFUSED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "ValidationError"}
_TRANSIENT = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "IDPCommunicationError"}


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    """A target account and Region."""

    account_id: str
    region: str

    @property
    def label(self) -> str:
        """``account/region``: how reports, metrics and messages name a lane."""
        return f"{self.account_id}/{self.region}"


class LaneTarget(Protocol):
    """What names a lane (``MigrationSpec``): empty fields are the hub's."""

    @property
    def target_account_id(self) -> str: ...

    @property
    def target_region(self) -> str: ...


class LaneError(Exception):
    """A lane cannot be used; the message says which and what to do."""


class LaneRoleUnavailableError(LaneError):
    """The lane's role cannot be assumed: it does not exist, or does not trust this hub."""

    def __init__(self, lane: Lane, role_arn: str, detail: str) -> None:
        self.lane = lane
        self.role_arn = role_arn
        self.detail = detail
        super().__init__(
            f"target account {lane.account_id} (Region {lane.region}): cannot assume role "
            f"{role_arn} ({detail}). Apply terraform/modules/target-account in account "
            f"{lane.account_id} (it creates that role, trusting this hub's step functions), "
            "then publish the wave again"
        )


@dataclass(frozen=True, slots=True)
class LaneClients:
    """The adapters of one lane: MGN and EC2 in its Region, IAM in its account."""

    lane: Lane
    mgn: MgnAdapter
    ec2: Ec2Adapter


@dataclass(frozen=True, slots=True)
class _RoleSession:
    credentials: dict[str, str]
    expires_at: datetime


ClientFactory = Callable[..., Any]
"""``(service, region, *, access_key_id, secret_access_key, session_token) -> client``."""


class LaneSessions:
    """Cached role sessions and adapters per lane; safe to share between threads.

    Args:
        sts: the hub's STS client (``orchestration.adapters.aws.sts``).
        client_factory: builds a client with a session's credentials
            (``orchestration.adapters.aws.client_with_credentials``).
        role_name: the target role's name (``TARGET_ROLE_NAME``).
        hub_account_id: the hub's account; a request naming no target runs there.
        default_region: the Region of a request naming none (``MGN_REGION``).
        clock: when sessions expire.
        partition: ``aws``, ``aws-cn``, ``aws-us-gov`` (the hub's).
    """

    def __init__(
        self,
        *,
        sts: Callable[[], Any],
        client_factory: ClientFactory,
        role_name: str,
        hub_account_id: Callable[[], str],
        default_region: str,
        clock: Clock,
        partition: str = "aws",
        session_seconds: int = SESSION_SECONDS,
        refresh_margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._sts = sts
        self._client_factory = client_factory
        self.role_name = role_name
        self._hub_account_id = hub_account_id
        self._default_region = default_region
        self._clock = clock
        self._partition = partition
        self._session_seconds = session_seconds
        self._refresh_margin = refresh_margin
        self._sessions: dict[str, _RoleSession] = {}
        self._clients: dict[tuple[Lane, datetime], LaneClients] = {}
        self._lock = threading.Lock()

    def lane(self, account_id: str = "", region: str = "") -> Lane:
        """The lane of a target; an empty account or Region is the hub's."""
        return Lane(account_id or self._hub_account_id(), region or self._default_region)

    def lane_of(self, spec: LaneTarget) -> Lane:
        return self.lane(spec.target_account_id, spec.target_region)

    def role_arn(self, account_id: str) -> str:
        return f"arn:{self._partition}:iam::{account_id}:role/{self.role_name}"

    def for_spec(self, spec: LaneTarget) -> LaneClients:
        """The adapters of the migration's lane (raises ``LaneRoleUnavailableError``)."""
        return self.clients(self.lane_of(spec))

    def source_servers_in(self, account_id: str, region: str) -> list[SourceServer]:
        """Every source server of a lane (the monitor's read)."""
        return self.clients(self.lane(account_id, region)).mgn.source_servers()

    def clients(self, lane: Lane) -> LaneClients:
        session = self._session(lane)
        key = (lane, session.expires_at)
        with self._lock:
            built = self._clients.get(key)
        if built is not None:
            return built

        def client(service: str, region: str) -> Any:
            return self._client_factory(
                service,
                region,
                access_key_id=session.credentials["AccessKeyId"],
                secret_access_key=session.credentials["SecretAccessKey"],
                session_token=session.credentials["SessionToken"],
            )

        built = LaneClients(
            lane,
            MgnAdapter(client("mgn", lane.region)),
            Ec2Adapter(client("ec2", lane.region), client("iam", lane.region)),
        )
        with self._lock:
            # Forget the clients of this lane's expired sessions.
            for old in [k for k in self._clients if k[0] == lane]:
                del self._clients[old]
            self._clients[key] = built
        return built

    def _session(self, lane: Lane) -> _RoleSession:
        now = self._clock.now()
        with self._lock:
            cached = self._sessions.get(lane.account_id)
        if cached is not None and cached.expires_at - self._refresh_margin > now:
            return cached
        role_arn = self.role_arn(lane.account_id)
        try:
            issued = self._sts().assume_role(
                RoleArn=role_arn,
                RoleSessionName=SESSION_NAME,
                DurationSeconds=self._session_seconds,
            )["Credentials"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", str(exc))
            if code in _TRANSIENT:
                raise TransientError(f"STS AssumeRole {role_arn}: {code}: {message}") from exc
            if code in _REFUSED:
                raise LaneRoleUnavailableError(lane, role_arn, f"{code}: {message}") from exc
            raise
        # Expiry by the injected clock (the one that asks): STS issues exactly the duration
        # asked for, and a simulated clock is then renewed on its own time, not STS's.
        expires_at = now + timedelta(seconds=self._session_seconds)
        session = _RoleSession(
            {key: str(issued[key]) for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
            expires_at,
        )
        with self._lock:
            self._sessions[lane.account_id] = session
        return session
