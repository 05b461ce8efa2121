"""The rehearsal's model of migration day: a YAML profile a team tunes with what it measured.

Every figure has a default and a source (docs/REHEARSAL.md, "The profile"): AWS's published
quotas where AWS publishes one, and otherwise a documented, deliberately plain guess a team
should replace with its pilot's figures. A profile file names only what it changes; the rest
keeps the defaults. Errors name ``file:line:col``, like the manifests'.

The model:

- **replication**: each source server replicates its disks (the manifest's ``disksGiB``, else
  ``defaultDisksGiB``) after ``initiationMinutes`` over its wave's link (``bandwidthMbps``,
  per wave in ``bandwidthMbpsByWave``), shared fairly by the wave's servers that replicate at
  once, at most ``replicatingServers`` per lane (MGN's staging quota);
- **launches**: test and cutover job durations per OS family (snapshot, conversion, boot),
  and the fraction of launches that fail;
- **quotas**: MGN's per lane (account + Region), with overrides per lane;
- **approvers**: how long a person takes to click, optionally only in business hours;
- cutover windows come from the manifests themselves.
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from orchestration.local.mgn.settings import JobTiming
from orchestration.manifests.findings import Finding
from orchestration.manifests.yaml_source import YamlSourceError, parse_yaml
from orchestration.wire import WireModel

__all__ = [
    "ApproverModel",
    "LaunchModel",
    "ProfileError",
    "QuotaModel",
    "RehearsalProfile",
    "ReplicationModel",
    "load_profile",
]

OS_FAMILIES = ("linux", "windows")
_MBPS = 1_000_000 / 8  # bytes per second in one megabit per second


class ProfileModel(WireModel):
    """camelCase keys, unknown keys refused (a typo must not silently keep a default), frozen:
    the wire's model conventions, for a file people write."""


Minutes = Annotated[float, Field(ge=0, le=7 * 24 * 60)]
PositiveMinutes = Annotated[float, Field(gt=0, le=7 * 24 * 60)]
Mbps = Annotated[float, Field(gt=0, le=400_000)]
DiskGiB = Annotated[int, Field(ge=1, le=65_536)]


class ReplicationModel(ProfileModel):
    initiation_minutes: PositiveMinutes = Field(
        default=10,
        description="Agent install to first byte: security group, replication server, "
        "pairing (MGN's initiation steps). A guess; the console shows your pilot's.",
    )
    bandwidth_mbps: Mbps = Field(
        default=1000,
        description="Each wave's link to AWS (Mbit/s), shared by its replicating servers. "
        "1 Gbit/s: a typical ExpressRoute/Direct Connect share; measure yours.",
    )
    bandwidth_mbps_by_wave: dict[str, Mbps] = Field(
        default_factory=dict, description="A wave's own link, by wave name."
    )
    default_disks_gib: Annotated[list[DiskGiB], Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: [100],
        alias="defaultDisksGiB",
        description="Disks of a VM whose manifest gives no source.disksGiB.",
    )

    def link_bytes_per_second(self, wave: str) -> float:
        return self.bandwidth_mbps_by_wave.get(wave, self.bandwidth_mbps) * _MBPS


class LaunchTiming(ProfileModel):
    """One launch job's duration for one OS family: MGN's job phases."""

    snapshot_minutes: Minutes = 2
    conversion_minutes: Minutes = 5
    boot_minutes: Minutes = 3

    @property
    def total_minutes(self) -> float:
        phases = (self.snapshot_minutes, self.conversion_minutes, self.boot_minutes)
        return _PENDING_MINUTES + sum(phases)

    def job_timing(self) -> JobTiming:
        return JobTiming(
            pending=timedelta(minutes=_PENDING_MINUTES),
            snapshot=timedelta(minutes=self.snapshot_minutes),
            conversion=timedelta(minutes=self.conversion_minutes),
            boot=timedelta(minutes=self.boot_minutes),
        )


_PENDING_MINUTES = 0.5  # MGN's job sits PENDING briefly before it starts


def _linux_test() -> LaunchTiming:
    return LaunchTiming(snapshot_minutes=2, conversion_minutes=5, boot_minutes=3)


def _windows_test() -> LaunchTiming:
    return LaunchTiming(snapshot_minutes=2, conversion_minutes=10, boot_minutes=8)


class LaunchModel(ProfileModel):
    test: dict[str, LaunchTiming] = Field(
        default_factory=lambda: {"linux": _linux_test(), "windows": _windows_test()},
        description="Test launch durations by OS family. Guesses: Linux converts faster and "
        "boots in minutes; Windows runs sysprep-like conversion and a longer first boot.",
    )
    cutover: dict[str, LaunchTiming] = Field(
        default_factory=lambda: {"linux": _linux_test(), "windows": _windows_test()},
        description="Cutover launch durations by OS family (the same work as a test launch).",
    )
    failure_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.0, description="Fraction of server launches that fail (0.02: two in a hundred)."
    )

    @field_validator("test", "cutover")
    @classmethod
    def _every_os_family(cls, value: dict[str, LaunchTiming]) -> dict[str, LaunchTiming]:
        unknown = sorted(set(value) - set(OS_FAMILIES))
        if unknown:
            raise ValueError(f"unknown OS family {unknown[0]!r}: use {' or '.join(OS_FAMILIES)}")
        defaults = {"linux": _linux_test(), "windows": _windows_test()}
        return {**defaults, **value}


class QuotaModel(ProfileModel):
    """MGN's quotas in one lane (AWS General Reference; only replicatingServers and
    nonArchivedServers are adjustable, but accounts do get others raised: set what yours has)."""

    concurrent_jobs: Annotated[int, Field(ge=1, le=1000)] = 20
    servers_per_job: Annotated[int, Field(ge=1, le=1000)] = 200
    servers_in_active_jobs: Annotated[int, Field(ge=1, le=10_000)] = 200
    replicating_servers: Annotated[int, Field(ge=1, le=10_000)] = 150


class QuotaOverrides(ProfileModel):
    concurrent_jobs: Annotated[int, Field(ge=1, le=1000)] | None = None
    servers_per_job: Annotated[int, Field(ge=1, le=1000)] | None = None
    servers_in_active_jobs: Annotated[int, Field(ge=1, le=10_000)] | None = None
    replicating_servers: Annotated[int, Field(ge=1, le=10_000)] | None = None


class BusinessHours(ProfileModel):
    start: time = time(8, 0)
    end: time = time(18, 0)
    timezone: str = "UTC"
    weekdays: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(min_length=1)] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], description="ISO weekdays: 1 Monday, 7 Sunday."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown time zone {value!r} (an IANA name, e.g. Europe/Paris)"
            raise ValueError(message) from None
        return value

    @model_validator(mode="after")
    def _ends_after_start(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("business hours must end after they start")
        return self

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` if it falls in business hours, else when they next open."""
        zone = ZoneInfo(self.timezone)
        local = moment.astimezone(zone)
        for days in range(8):
            day = (local + timedelta(days=days)).date()
            if day.isoweekday() not in self.weekdays:
                continue
            opens = datetime.combine(day, self.start, zone)
            closes = datetime.combine(day, self.end, zone)
            if local < closes:
                return max(local, opens).astimezone(moment.tzinfo)
        return moment  # unreachable with at least one weekday


class ApproverModel(ProfileModel):
    response_minutes_min: Minutes = Field(
        default=1, description="The quickest an approver clicks after the approval message."
    )
    response_minutes_max: Minutes = Field(
        default=15, description="The slowest (each approval draws uniformly in between)."
    )
    business_hours: BusinessHours | None = Field(
        default=None,
        description="Approvers only act in these hours; none: someone is on call (migration day).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ApproverModel:
        if self.response_minutes_max < self.response_minutes_min:
            raise ValueError("responseMinutesMax must be at least responseMinutesMin")
        return self

    def responds_at(self, posted: datetime, rng: random.Random) -> datetime:
        """When a person clicks an approval posted at ``posted`` (simulated time)."""
        seen = self.business_hours.next_open(posted) if self.business_hours else posted
        minutes = rng.uniform(self.response_minutes_min, self.response_minutes_max)
        return seen + timedelta(minutes=minutes)


class SyntheticWave(ProfileModel):
    """``--vms N``: where the synthetic wave's window falls, relative to the rehearsal's start."""

    window_opens_after_hours: Annotated[float, Field(ge=0, le=24 * 60)] = 24
    window_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12


class RehearsalProfile(ProfileModel):
    replication: ReplicationModel = Field(default_factory=ReplicationModel)
    launches: LaunchModel = Field(default_factory=LaunchModel)
    quotas: QuotaModel = Field(default_factory=QuotaModel)
    quotas_by_lane: dict[str, QuotaOverrides] = Field(
        default_factory=dict,
        description='Per lane, keyed "accountId/region", e.g. "444455556666/eu-west-1".',
    )
    approvers: ApproverModel = Field(default_factory=ApproverModel)
    synthetic: SyntheticWave = Field(default_factory=SyntheticWave)
    seed: int = Field(default=1, description="Seeds approvers' response times and failures.")

    @field_validator("quotas_by_lane")
    @classmethod
    def _lane_keys(cls, value: dict[str, QuotaOverrides]) -> dict[str, QuotaOverrides]:
        for key in value:
            account, _, region = key.partition("/")
            if not (account.isdigit() and len(account) == 12 and region):
                raise ValueError(f"lane {key!r}: write it as accountId/region")
        return value

    def quotas_for(self, account_id: str, region: str) -> QuotaModel:
        overrides = self.quotas_by_lane.get(f"{account_id}/{region}")
        if overrides is None:
            return self.quotas
        return self.quotas.model_copy(
            update=overrides.model_dump(by_alias=False, exclude_none=True)
        )


_Profile = TypeVar("_Profile", bound=ProfileModel)


class ProfileError(Exception):
    """A profile that cannot be used: each finding names file:line:col."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("\n".join(str(f) for f in findings))
        self.findings = findings


def load_profile(path: Path | None) -> RehearsalProfile:
    """The defaults, or ``path``'s changes to them."""
    return load_profile_file(path, RehearsalProfile)


def load_profile_file(path: Path | None, model: type[_Profile]) -> _Profile:
    """``model``'s defaults, or ``path``'s changes to them; errors name ``file:line:col``
    (the rehearsal's profile and the fault campaign's share this)."""
    if path is None:
        return model()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([Finding(str(path), 1, 1, f"cannot read the profile: {exc}")]) from exc
    try:
        document = parse_yaml(str(path), text)
    except YamlSourceError as exc:
        raise ProfileError([exc.finding]) from exc
    if document.data is None:
        return model()
    if not isinstance(document.data, dict):
        raise ProfileError([Finding(str(path), 1, 1, "a profile is a mapping of sections")])
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        from orchestration.manifests.validation import findings_from_validation_error

        raise ProfileError(sorted(findings_from_validation_error(document, exc))) from exc


def fair_share_bytes_per_second(
    disk_bytes: dict[str, int], link_bytes_per_second: float, at_once: int
) -> dict[str, float]:
    """Each server's average rate over its initial sync when ``disk_bytes``' servers share one
    link, at most ``at_once`` of them replicating (the rest start as slots free, FIFO in the
    mapping's order), the link divided equally among those replicating (processor sharing).

    The emulator replicates each server at a constant rate, so the rate returned makes the
    server finish its initial sync exactly when the shared link would have finished it.
    """
    if not disk_bytes:
        return {}
    remaining = {server: float(size) for server, size in disk_bytes.items()}
    waiting = list(disk_bytes)
    active: list[str] = []
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    now = 0.0
    slots = max(1, at_once)
    while waiting or active:
        while waiting and len(active) < slots:
            server = waiting.pop(0)
            active.append(server)
            started[server] = now
        share = link_bytes_per_second / len(active)
        soonest = min(remaining[s] for s in active) / share
        now += soonest
        for server in list(active):
            remaining[server] -= soonest * share
            if remaining[server] <= 1e-6 * disk_bytes[server]:
                active.remove(server)
                finished[server] = now
    return {
        server: disk_bytes[server] / max(finished[server] - started[server], 1e-9)
        for server in disk_bytes
    }
