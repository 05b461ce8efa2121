"""`MgnFleet`: several MGN lanes (account + Region) behind one loopback endpoint.

MGN's state and quotas belong to one account in one Region (DESIGN.md decision 12: a lane).
The embedded default serves every lane on one `AWS_ENDPOINT_URL_MGN`, so the fleet tells the
lanes apart the way AWS does, from the request itself:

- the Region from the SigV4 credential scope in `Authorization`
  (`Credential=<key>/<date>/<region>/mgn/aws4_request`): botocore signs with the client's
  `region_name`;
- the account from the access key id, with moto's own mapping (`account_for_access_key`):
  credentials returned by moto's STS `AssumeRole` belong to the role's account, anything
  else to moto's default account.

Each lane is an `MgnEmulator` with its own settings, state, quotas, initialization, faults,
metrics and EC2 port; the clock is shared (one simulated time for the whole estate).

    fleet = MgnFleet(AssumedRoleEc2Ports(), clock=SimulatedClock(speed=600))
    fleet.lane("111122223333", "eu-west-1").add_source_server(hostname="web01")
    with fleet.serve() as endpoint_url:
        ...  # boto3.client("mgn", region_name="eu-west-1", <credentials of 111122223333>)
"""

from __future__ import annotations

import dataclasses
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from orchestration.local.mgn.clock import SimulatedClock
from orchestration.local.mgn.ec2_port import Ec2LaunchPort
from orchestration.local.mgn.emulator import (
    ENDPOINT_ENVIRONMENT_VARIABLE,
    MgnEmulator,
    SettledEndpoint,
)
from orchestration.local.mgn.errors import SOURCE_SERVER_RESOURCE, ResourceNotFoundError
from orchestration.local.mgn.metrics import EmulatorMetrics
from orchestration.local.mgn.model import QuotaRejection, ReplicationTimeline, SourceServer
from orchestration.local.mgn.settings import EmulatorSettings
from orchestration.local.runtime.in_process_transport import Reply

# `Credential=AKID/20260105/eu-west-1/mgn/aws4_request`: key id, date, Region, service.
_CREDENTIAL_SCOPE = re.compile(
    r"Credential=(?P<access_key>[^/,\s]+)/\d{8}/(?P<region>[^/,\s]+)/[^/,\s]+/aws4_request"
)


class LaneId(NamedTuple):
    """A target account and Region: where MGN's state and quotas live."""

    account_id: str
    region: str

    @property
    def label(self) -> str:
        """`account/region`, the key of per-lane counts in reports."""
        return f"{self.account_id}/{self.region}"


class SignedBy(NamedTuple):
    """What a SigV4 `Authorization` header says about its caller."""

    access_key_id: str
    region: str


def signed_by(authorization: str | None) -> SignedBy | None:
    """The access key and Region of a SigV4 `Authorization` header; None if it is not one."""
    match = _CREDENTIAL_SCOPE.search(authorization or "")
    if match is None:
        return None
    return SignedBy(match["access_key"], match["region"])


def moto_account_for_access_key(access_key_id: str) -> str:
    """moto's own mapping (imported lazily: the emulator runs without moto's IAM otherwise)."""
    from orchestration.local.runtime.moto_backends import account_id_for_access_key

    return account_id_for_access_key(access_key_id)


class _LazyEc2Port:
    """Builds a lane's EC2 port on first use: a lane that only ever answers
    UninitializedAccountException never needs credentials in its account."""

    def __init__(self, build: Callable[[], Ec2LaunchPort]) -> None:
        self._build = build
        self._port: Ec2LaunchPort | None = None
        self._lock = threading.Lock()

    def _get(self) -> Ec2LaunchPort:
        with self._lock:
            if self._port is None:
                self._port = self._build()
            return self._port

    def create_launch_template(self, name: str, instance_type: str, tags: Mapping[str, str]) -> str:
        return self._get().create_launch_template(name, instance_type, tags)

    def run_instance(
        self,
        launch_template_id: str,
        source_server_id: str,
        tags: Mapping[str, str],
        instance_type_override: str | None = None,
    ) -> str:
        return self._get().run_instance(
            launch_template_id, source_server_id, tags, instance_type_override
        )

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        self._get().terminate_instances(instance_ids)


@dataclass(frozen=True, slots=True)
class FleetMetrics:
    """A snapshot of every lane's metrics.

    Attributes:
        by_lane: each lane's `EmulatorMetrics`, by `LaneId`.
    """

    by_lane: Mapping[LaneId, EmulatorMetrics]

    @property
    def calls_by_lane(self) -> dict[str, int]:
        """`"account/region"` -> requests answered in that lane (the report's shape)."""
        return {lane.label: metrics.total_calls for lane, metrics in sorted(self.by_lane.items())}

    @property
    def total_calls(self) -> int:
        return sum(metrics.total_calls for metrics in self.by_lane.values())

    @property
    def quota_errors(self) -> int:
        return sum(metrics.quota_errors for metrics in self.by_lane.values())

    @property
    def throttling_errors(self) -> int:
        return sum(metrics.throttling_errors for metrics in self.by_lane.values())


class MgnFleet:
    """Several MGN lanes served on one loopback endpoint, each request routed to its lane.

    The hub lane (`settings.account_id`, `settings.region`; moto's default account and the
    local Region by default) exists from the start and also answers requests that carry no
    SigV4 signature. Other lanes are created by `lane()` / `add_lane()` (initialized, as an
    account where someone ran InitializeService before installing agents), or by the first
    request signed for them: a lane nobody set up is an account and Region where MGN was never
    initialized, so it answers UninitializedAccountException until InitializeService.

    Args:
        ec2: builds each lane's EC2 port from (account_id, region); `AssumedRoleEc2Ports()`
            gives each lane EC2 in its own moto account and Region.
        clock: the simulated time every lane shares; defaults to 600x real time.
        settings: the hub lane's settings, and the template of every other lane's (same
            timing, quotas and request rate; own account, Region and ID seed).
        account_for_access_key: maps a request's access key id to its account; moto's
            mapping by default.
        hub_ec2: the hub lane's EC2 port, if not `ec2(hub account, hub Region)` (the embedded
            system passes its own EC2 client, as before lanes).
    """

    def __init__(
        self,
        ec2: Callable[[str, str], Ec2LaunchPort],
        *,
        clock: SimulatedClock | None = None,
        settings: EmulatorSettings | None = None,
        account_for_access_key: Callable[[str], str] | None = None,
        hub_ec2: Ec2LaunchPort | None = None,
    ) -> None:
        self._ec2 = ec2
        self._clock = clock or SimulatedClock()
        self._template = settings or EmulatorSettings()
        self._account_for_access_key = account_for_access_key or moto_account_for_access_key
        self._lock = threading.RLock()
        self._lanes: dict[LaneId, MgnEmulator] = {}
        self._serving = SettledEndpoint(self.answer, self.settle)
        self.hub_lane = LaneId(self._template.account_id, self._template.region)
        self._create(self.hub_lane, self._template, ec2=hub_ec2)

    @property
    def clock(self) -> SimulatedClock:
        return self._clock

    @property
    def hub(self) -> MgnEmulator:
        """The hub lane: today's single emulated account and Region."""
        return self._lanes[self.hub_lane]

    # --- Lanes --------------------------------------------------------------------------------

    def lane(self, account_id: str, region: str) -> MgnEmulator:
        """The lane of `account_id` in `region`, created (initialized) if it does not exist."""
        with self._lock:
            existing = self._lanes.get(LaneId(account_id, region))
            return existing or self.add_lane(account_id, region)

    def add_lane(
        self,
        account_id: str,
        region: str,
        *,
        initialized: bool = True,
        settings: EmulatorSettings | None = None,
    ) -> MgnEmulator:
        """Create a lane; `settings` (their account and Region are the lane's) overrides the
        fleet's template, `initialized=False` makes an account that never opened MGN.

        Raises:
            ValueError: the lane exists already.
        """
        lane_id = LaneId(account_id, region)
        base = settings or dataclasses.replace(self._template, seed=self._seed_for(lane_id))
        lane_settings = dataclasses.replace(
            base, account_id=account_id, region=region, initialized=initialized
        )
        with self._lock:
            if lane_id in self._lanes:
                raise ValueError(f"MGN lane {lane_id.label} already exists")
            return self._create(lane_id, lane_settings)

    def lanes(self) -> Mapping[LaneId, MgnEmulator]:
        """Every lane so far (a snapshot)."""
        with self._lock:
            return MappingProxyType(dict(self._lanes))

    def add_source_server(
        self, *, account_id: str | None = None, region: str | None = None, **server: Any
    ) -> SourceServer:
        """`MgnEmulator.add_source_server` in the lane `account_id`/`region` (each defaults to
        the hub's); the lane is created if needed."""
        lane = self.lane(account_id or self.hub_lane.account_id, region or self.hub_lane.region)
        return lane.add_source_server(**server)

    def lane_of(self, headers: Mapping[str, str]) -> LaneId:
        """The lane a request belongs to, from its `authorization` header (lower-case names);
        the hub lane for an unsigned request."""
        signature = signed_by(headers.get("authorization"))
        if signature is None:
            return self.hub_lane
        return LaneId(self._account_for_access_key(signature.access_key_id), signature.region)

    def _seed_for(self, lane_id: LaneId) -> int | None:
        """Reproducible per-lane IDs when the template is seeded, distinct between lanes."""
        if self._template.seed is None:
            return None
        return self._template.seed ^ zlib.crc32(lane_id.label.encode())

    def _create(
        self, lane_id: LaneId, settings: EmulatorSettings, *, ec2: Ec2LaunchPort | None = None
    ) -> MgnEmulator:
        port = ec2 or _LazyEc2Port(lambda: self._ec2(lane_id.account_id, lane_id.region))
        emulator = MgnEmulator(port, clock=self._clock, settings=settings)
        emulator.host_in(lambda: self._serving.url)
        self._lanes[lane_id] = emulator
        return emulator

    def _lane_for_request(self, lane_id: LaneId) -> MgnEmulator:
        with self._lock:
            emulator = self._lanes.get(lane_id)
            if emulator is None:  # never set up: MGN was never initialized there
                settings = dataclasses.replace(
                    self._template,
                    account_id=lane_id.account_id,
                    region=lane_id.region,
                    seed=self._seed_for(lane_id),
                    initialized=False,
                )
                emulator = self._create(lane_id, settings)
            return emulator

    # --- Requests and observation -------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Route one HTTP request to its lane and answer it there."""
        return self._lane_for_request(self.lane_of(headers)).answer(method, path, headers, body)

    def settle(self) -> None:
        """Apply every lane's due job phases (EC2 side effects) now."""
        for lane in self.lanes().values():
            lane.settle()

    def metrics(self) -> FleetMetrics:
        """Every lane's metrics; `.calls_by_lane` is `"account/region"` -> calls."""
        return FleetMetrics(
            MappingProxyType({lane_id: lane.metrics() for lane_id, lane in self.lanes().items()})
        )

    def reset_metrics(self) -> None:
        for lane in self.lanes().values():
            lane.reset_metrics()

    def quota_rejections(self) -> list[QuotaRejection]:
        """Every lane's quota rejections (`MgnEmulator.quota_rejections`), oldest first; each
        names its lane (`account_id`, `region`, `lane_label`)."""
        every_lane = [
            rejection for lane in self.lanes().values() for rejection in lane.quota_rejections()
        ]
        return sorted(every_lane, key=lambda rejection: rejection.at)

    def replication_timeline(self, source_server_id: str) -> ReplicationTimeline:
        """`MgnEmulator.replication_timeline` in whichever lane holds the server (source
        server IDs are unique across lanes, as in MGN; the first lane created wins otherwise).

        Raises:
            ResourceNotFoundError: no lane has the server.
        """
        for lane in self.lanes().values():
            try:
                return lane.replication_timeline(source_server_id)
            except ResourceNotFoundError:
                continue
        raise ResourceNotFoundError(
            f"Source server {source_server_id} not found in any lane",
            resource_id=source_server_id,
            resource_type=SOURCE_SERVER_RESOURCE,
        )

    # --- Serving ------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str | None:
        """`http://127.0.0.1:<port>` while serving, else None."""
        return self._serving.url

    def environment(self) -> dict[str, str]:
        """The variables that route an unmodified `boto3.client("mgn")` here."""
        url = self.endpoint_url
        if url is None:
            raise RuntimeError("the MGN fleet is not serving; call start() first")
        return {ENDPOINT_ENVIRONMENT_VARIABLE: url}

    def start(self) -> str:
        """Serve every lane on one ephemeral 127.0.0.1 port; returns the endpoint URL.

        On a running clock, one background thread settles every lane (see
        `EmulatorSettings.background_settle_seconds`; the template's value).
        """
        running = self._clock.speed > 0
        return self._serving.start(self._template.background_settle_seconds if running else None)

    def stop(self) -> None:
        self._serving.stop()

    @contextmanager
    def serve(self) -> Iterator[str]:
        """`with fleet.serve() as endpoint_url:` serves for the block's duration."""
        url = self.start()
        try:
            yield url
        finally:
            self.stop()
