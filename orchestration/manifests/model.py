"""The wave manifest model: wave -> application -> VM, with inherited defaults.

Every model is strict (no type coercion) and forbids unknown keys. YAML keys are
camelCase (the seed's message uses ``targetVmName``, ``instanceType``...); Python
attributes are snake_case. Field-level rules live in :mod:`orchestration.manifests.fields`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from orchestration.manifests.fields import (
    AppName,
    AwsAccountId,
    AwsRegion,
    AzureVmResourceId,
    CallbackUrl,
    DiskSizesGiB,
    EnvironmentName,
    FreeText,
    Hostname,
    IamInstanceProfileName,
    InstanceType,
    SecurityGroupId,
    SlackChannelId,
    SlackPrincipalId,
    SourceServerId,
    SubnetId,
    Tags,
    TargetVmName,
    UrlPath,
    UserProvidedId,
    WaveName,
)


class StrictModel(BaseModel):
    """Base for every manifest model: strict types, no unknown keys, camelCase keys."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# Bounded so that one VM's published request stays well within what the request queue, the
# MigrationRequested event (256 KiB) and its DynamoDB item accept; list user groups instead.
MAX_PRINCIPALS = 100

Port = Annotated[int, Field(ge=1, le=65535)]
TimeoutSeconds = Annotated[int, Field(ge=1, le=60, description="How long to wait, in seconds.")]


class TcpHealthCheck(StrictModel):
    """The launched instance accepts TCP connections on a port."""

    type: Literal["tcp"]
    port: Port
    timeout_seconds: TimeoutSeconds = 5


class HttpHealthCheck(StrictModel):
    """The launched instance answers an HTTP(S) request with the expected status."""

    type: Literal["http"]
    path: UrlPath
    port: Port | None = Field(default=None, description="Defaults to 80 for http, 443 for https.")
    scheme: Literal["http", "https"] = "http"
    expected_status: Annotated[int, Field(ge=100, le=599)] = 200
    timeout_seconds: TimeoutSeconds = 5


HealthCheck = Annotated[TcpHealthCheck | HttpHealthCheck, Field(discriminator="type")]


# A post-launch action's name becomes its MGN action ID (``wavepilot-<name>``, at most 64
# characters): Wavepilot recognises, updates and removes its own actions by that prefix and
# leaves actions set by hand in MGN's console alone.
PostLaunchActionName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,52}[a-z0-9])?$",
        description="Lowercase letters, digits and hyphens, at most 54 characters; unique "
        "among the VM's actions.",
    ),
]
# MGN's SsmDocumentName: a document name or its full ARN.
SsmDocumentName = Annotated[str, Field(pattern=r"^[A-Za-z0-9/:_.-]{3,172}$")]
SsmDocumentParameterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,128}$")]
# MGN passes a document parameter the values of these Parameter Store parameters (MGN's
# SsmParameterStoreParameterName: no "/", so hierarchical names are not accepted).
ParameterStoreName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,1011}$")]
# MGN's OrderType: 1001 to 10000 for custom actions (its own built-in actions use 1 to 1000).
MIN_POST_LAUNCH_ORDER = 1001
MAX_POST_LAUNCH_ORDER = 10000
# MGN's StrictlyPositiveInteger has no maximum; SSM Run Command's execution timeout is at most
# 48 hours, so a longer one could never be honoured.
MAX_POST_LAUNCH_TIMEOUT_SECONDS = 172_800
MAX_POST_LAUNCH_ACTIONS = 10


class PostLaunchAction(StrictModel):
    """An SSM document MGN runs on the launched test and cutover instances (MGN's
    PutSourceServerAction). Its result gates the approval (test) and the finalize (cutover)."""

    name: PostLaunchActionName
    ssm_document: SsmDocumentName = Field(
        description="The SSM document's name or ARN (MGN's documentIdentifier)."
    )
    parameters: (
        Annotated[
            dict[
                SsmDocumentParameterName,
                Annotated[list[ParameterStoreName], Field(min_length=1, max_length=10)],
            ],
            Field(max_length=20),
        ]
        | None
    ) = Field(
        default=None,
        description="Document parameter -> names of Parameter Store parameters whose values "
        "MGN passes (MGN takes no literal values).",
    )
    order: Annotated[int, Field(ge=MIN_POST_LAUNCH_ORDER, le=MAX_POST_LAUNCH_ORDER)] = Field(
        description="Run order among the instance's actions, 1001 to 10000 (MGN's range for "
        "custom actions); unique among the VM's actions."
    )
    must_succeed_for_cutover: bool = Field(
        default=True,
        description="true (the default): a failure or timeout rolls the migration back; "
        "false: a failure is a warning in the thread and the migration goes on.",
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=MAX_POST_LAUNCH_TIMEOUT_SECONDS)] = Field(
        default=3600, description="How long the document may run (at most 172800, 48 h)."
    )


def _distinct_actions(actions: list[PostLaunchAction]) -> list[PostLaunchAction]:
    """Names identify actions in MGN and in the thread, orders say which runs first: two
    actions sharing either would be ambiguous."""
    for key, what in (("name", "name"), ("order", "order")):
        seen: set[object] = set()
        for index, action in enumerate(actions):
            value = getattr(action, key)
            if value in seen:
                raise ValueError(
                    f"postLaunchActions[{index}] repeats the {what} {value!r}: each action "
                    f"needs its own {what}"
                )
            seen.add(value)
    return actions


PostLaunchActions = Annotated[
    list[PostLaunchAction],
    Field(max_length=MAX_POST_LAUNCH_ACTIONS),
    AfterValidator(_distinct_actions),
]

OsFamily = Literal["windows", "linux"]
BootMode = Literal["LEGACY_BIOS", "UEFI", "USE_SOURCE"]


class LaunchSettings(StrictModel):
    """Settings a VM can inherit from its application's or wave's ``defaults``.

    Lists and scalars set on a VM replace inherited ones; ``tags`` are merged key by key
    (wave, then application, then VM).
    """

    os_family: OsFamily | None = None
    instance_type: InstanceType | None = None
    subnet_id: SubnetId | None = None
    security_group_ids: (
        Annotated[list[SecurityGroupId], Field(min_length=1, max_length=5)] | None
    ) = None
    test_subnet_id: SubnetId | None = Field(
        default=None, description="Subnet for the test launch; defaults to subnetId."
    )
    test_security_group_ids: (
        Annotated[list[SecurityGroupId], Field(min_length=1, max_length=5)] | None
    ) = Field(
        default=None, description="Security groups for the test launch; default securityGroupIds."
    )
    iam_instance_profile: IamInstanceProfileName | None = None
    tags: Tags | None = None
    boot_mode: BootMode | None = Field(
        default=None, description="MGN bootMode; USE_SOURCE keeps the source VM's boot mode."
    )
    os_byol: bool | None = Field(
        default=None, description="Bring your own OS licence (MGN licensing.osByol)."
    )
    health_checks: Annotated[list[HealthCheck], Field(max_length=10)] | None = Field(
        default=None, description="Checks a launched test or cutover instance must pass."
    )
    callback_urls: Annotated[list[CallbackUrl], Field(max_length=5)] | None = Field(
        default=None, description="https endpoints that receive signed status events."
    )
    post_launch_actions: PostLaunchActions | None = Field(
        default=None,
        description="SSM documents MGN runs on the launched instances (a VM's list replaces "
        "the inherited one).",
    )


class Source(StrictModel):
    """The Azure VM and how to find its MGN source server.

    MGN resolution order: ``sourceServerId``, then ``userProvidedId``, then a unique
    ``hostname`` match. At least one of the three is required.
    """

    azure_resource_id: AzureVmResourceId
    source_server_id: SourceServerId | None = None
    user_provided_id: UserProvidedId | None = None
    hostname: Hostname | None = None
    # For `wavepilot rehearse` only: excluded from every dump, so neither the VM's revision
    # nor its published request (`spec`) sees it, with or without it; the pipeline reads the
    # disks from MGN.
    disks_gib: DiskSizesGiB | None = Field(default=None, alias="disksGiB", exclude=True)

    @model_validator(mode="after")
    def _findable_in_mgn(self) -> Source:
        if (
            self.source_server_id is None
            and self.user_provided_id is None
            and self.hostname is None
        ):
            raise ValueError(
                "say how to find this VM in MGN: set sourceServerId, userProvidedId or hostname"
            )
        return self


class Vm(LaunchSettings):
    """One VM to migrate, as written in the manifest (before defaults are applied)."""

    source: Source
    target_vm_name: TargetVmName


ApprovalScope = Literal["vm", "application", "wave"]
# What one approval decision covers when the manifest does not say (docs/MANIFESTS.md says
# why: application owners sign off on their application's test as a unit).
DEFAULT_APPROVAL_SCOPE: ApprovalScope = "application"


class Approval(StrictModel):
    """How the cutover approvals of a wave (or one application) are presented and decided.

    Every VM still gets its own decision and audit entry; the scope groups them in Slack.
    """

    scope: ApprovalScope = Field(
        default=DEFAULT_APPROVAL_SCOPE,
        description="vm: one approval message per VM, in its thread; application: one group "
        "message per application; wave: one group message for the wave.",
    )


# How long a verified cutover waits before MGN's FinalizeCutover (which, within about 90
# minutes, deletes the replication resources: no way back to the source after it). "0" (the
# default) finalizes at once; "24h" keeps the source replicating for a day, during which
# `/wavepilot rollback` returns to it. Minutes, hours or days, at most 30 days.
FINALIZE_AFTER_PATTERN = r"^(0|[1-9][0-9]{0,4}[mhd])$"
MAX_FINALIZE_AFTER_MINUTES = 30 * 24 * 60


def _within_30_days(value: str) -> str:
    if finalize_after_minutes(value) > MAX_FINALIZE_AFTER_MINUTES:
        raise ValueError(
            f"{value} is longer than 30d: MGN keeps replicating (and billing) "
            "while a cutover waits; finalize within 30 days"
        )
    return value


FinalizeAfter = Annotated[
    str,
    Field(
        pattern=FINALIZE_AFTER_PATTERN,
        description="How long a verified cutover is held before FinalizeCutover: 0 (at once), "
        "or minutes, hours or days such as 90m, 24h, 2d (at most 30d). Until then the source "
        "keeps replicating and a rollback returns to it.",
    ),
    AfterValidator(_within_30_days),
]


def finalize_after_minutes(value: str) -> int:
    """``finalizeAfter`` in minutes ("0" -> 0, "90m" -> 90, "24h" -> 1440, "2d" -> 2880)."""
    if value == "0":
        return 0
    return int(value[:-1]) * {"m": 1, "h": 60, "d": 24 * 60}[value[-1]]


# What a failure before the cutover does (a test launch that failed, a health check that did
# not pass): roll back at once (the default), or park the migration with nothing running and
# let a person choose Retry or Roll back in its thread; unanswered, it rolls back after
# ``parkFor`` (24h by default, at most 7 days).
OnFailure = Literal["rollback", "park"]
DEFAULT_ON_FAILURE: OnFailure = "rollback"
DEFAULT_PARK_FOR = "24h"
MAX_PARK_FOR_MINUTES = 7 * 24 * 60


def _within_7_days(value: str) -> str:
    minutes = finalize_after_minutes(value)
    if minutes == 0:
        raise ValueError("0 would roll back at once: use onFailure: rollback instead")
    if minutes > MAX_PARK_FOR_MINUTES:
        raise ValueError(
            f"{value} is longer than 7d: a parked migration holds its wave's approval and "
            "its place in the cutover; decide within a week"
        )
    return value


ParkFor = Annotated[
    str,
    Field(
        pattern=FINALIZE_AFTER_PATTERN,
        description="How long a parked migration waits for Retry or Roll back before it rolls "
        "back on its own: minutes, hours or days such as 90m, 8h, 2d (at most 7d; 24h by "
        "default).",
    ),
    AfterValidator(_within_7_days),
]


# Applications one application may depend on (``dependsOn``): bounded so that a VM's
# published request stays small; a longer list is a sign the wave wants splitting.
MAX_DEPENDENCIES = 50


class Application(StrictModel):
    name: AppName
    description: FreeText | None = None
    approval: Approval | None = Field(
        default=None, description="Overrides the wave's approval settings for this application."
    )
    finalize_after: FinalizeAfter | None = Field(
        default=None, description="Overrides the wave's finalizeAfter for this application."
    )
    on_failure: OnFailure | None = Field(
        default=None, description="Overrides the wave's onFailure for this application."
    )
    park_for: ParkFor | None = Field(
        default=None, description="Overrides the wave's parkFor for this application."
    )
    depends_on: Annotated[list[AppName], Field(max_length=MAX_DEPENDENCIES)] | None = Field(
        default=None,
        description="Applications of the same wave whose cutovers go first (for example the "
        "databases before the application servers); no cycles.",
    )

    defaults: LaunchSettings | None = None
    vms: Annotated[list[Vm], Field(min_length=1)]


class Target(StrictModel):
    """Where the wave lands in AWS."""

    account_id: AwsAccountId
    region: AwsRegion


class CutoverWindow(StrictModel):
    """When cutovers may run. Timezone-aware ISO 8601 timestamps."""

    start: Annotated[AwareDatetime, Field(strict=False)]
    end: Annotated[AwareDatetime, Field(strict=False)]

    @model_validator(mode="after")
    def _ends_after_start(self) -> CutoverWindow:
        if self.end <= self.start:
            raise ValueError(
                f"the window must end after it starts (start {self.start.isoformat()}, "
                f"end {self.end.isoformat()})"
            )
        return self


class Wave(StrictModel):
    """One wave manifest file: ``manifests/waves/<name>.yaml``."""

    name: WaveName
    description: FreeText | None = None
    environment: EnvironmentName
    target: Target
    cutover_window: CutoverWindow
    slack_channel: SlackChannelId
    approvers: Annotated[list[SlackPrincipalId], Field(min_length=1, max_length=MAX_PRINCIPALS)] = (
        Field(description="Slack user IDs (U..., W...) and user-group IDs (S...) who may approve.")
    )
    operators: Annotated[list[SlackPrincipalId], Field(min_length=1, max_length=MAX_PRINCIPALS)] = (
        Field(description="Slack user IDs and user-group IDs allowed to roll a migration back.")
    )
    approval: Approval | None = Field(
        default=None, description="Approval scope; applications may override it."
    )
    finalize_after: FinalizeAfter | None = Field(
        default=None,
        description="Hold before FinalizeCutover (0 by default); applications may override it.",
    )
    on_failure: OnFailure | None = Field(
        default=None,
        description="A failure before the cutover (test launch, health checks): rollback at "
        "once (the default), or park: nothing left running, Retry and Roll back buttons in "
        "the migration's thread; applications may override it.",
    )
    park_for: ParkFor | None = Field(
        default=None,
        description="How long a parked migration waits for a decision before it rolls back "
        "(24h by default); applications may override it.",
    )
    defaults: LaunchSettings | None = None
    applications: Annotated[list[Application], Field(min_length=1)]


class EffectiveVm(StrictModel):
    """A VM with every default applied: what is validated, planned and published."""

    wave: WaveName
    app_name: AppName
    environment: EnvironmentName
    target_account_id: AwsAccountId
    target_region: AwsRegion
    cutover_window: CutoverWindow
    slack_channel: SlackChannelId
    approvers: Annotated[list[SlackPrincipalId], Field(max_length=MAX_PRINCIPALS)]
    operators: Annotated[list[SlackPrincipalId], Field(max_length=MAX_PRINCIPALS)]
    source: Source
    target_vm_name: TargetVmName
    os_family: OsFamily
    instance_type: InstanceType
    subnet_id: SubnetId
    security_group_ids: Annotated[list[SecurityGroupId], Field(min_length=1, max_length=5)]
    test_subnet_id: SubnetId
    test_security_group_ids: Annotated[list[SecurityGroupId], Field(min_length=1, max_length=5)]
    # A default: the migration record keeps its request without nulls (exclude_none), so a VM
    # without an instance profile must read back.
    iam_instance_profile: IamInstanceProfileName | None = None
    tags: Tags
    boot_mode: BootMode
    os_byol: bool
    health_checks: Annotated[list[HealthCheck], Field(max_length=10)]
    callback_urls: Annotated[list[CallbackUrl], Field(max_length=5)]
    # Left out of the JSON (so out of the revision and the published spec) when it is the
    # default: adding the field changed no published VM's revision, and a VM whose scope is
    # the default reads the same before and after.
    approval_scope: ApprovalScope = Field(
        default=DEFAULT_APPROVAL_SCOPE,
        exclude_if=lambda scope: scope == DEFAULT_APPROVAL_SCOPE,
    )
    # The hold before FinalizeCutover, in minutes; left out when 0 (the default), likewise.
    finalize_after_minutes: Annotated[int, Field(ge=0, le=MAX_FINALIZE_AFTER_MINUTES)] = Field(
        default=0, exclude_if=lambda minutes: minutes == 0
    )
    # The applications (of the same wave) whose cutovers go before this VM's: its
    # application's ``dependsOn``. Left out when empty (the default), likewise.
    cutover_after: Annotated[list[AppName], Field(max_length=MAX_DEPENDENCIES)] = Field(
        default_factory=list, exclude_if=lambda apps: not apps
    )
    # What a failure before the cutover does, and for how long (minutes) a parked migration
    # waits for a decision: left out when rollback (the default), likewise.
    on_failure: OnFailure = Field(
        default=DEFAULT_ON_FAILURE, exclude_if=lambda value: value == DEFAULT_ON_FAILURE
    )
    park_for_minutes: Annotated[int, Field(ge=0, le=MAX_PARK_FOR_MINUTES)] = Field(
        default=0, exclude_if=lambda minutes: minutes == 0
    )
    # The SSM documents MGN runs after each launch. Left out when empty (the default), likewise.
    post_launch_actions: PostLaunchActions = Field(
        default_factory=list, exclude_if=lambda actions: not actions
    )


# Settings a VM must end up with once defaults are applied, in the order they are reported.
REQUIRED_EFFECTIVE_SETTINGS: tuple[str, ...] = (
    "osFamily",
    "instanceType",
    "subnetId",
    "securityGroupIds",
)

__all__ = [
    "DEFAULT_APPROVAL_SCOPE",
    "DEFAULT_ON_FAILURE",
    "DEFAULT_PARK_FOR",
    "MAX_DEPENDENCIES",
    "MAX_FINALIZE_AFTER_MINUTES",
    "MAX_PARK_FOR_MINUTES",
    "REQUIRED_EFFECTIVE_SETTINGS",
    "Application",
    "Approval",
    "ApprovalScope",
    "CutoverWindow",
    "EffectiveVm",
    "HealthCheck",
    "HttpHealthCheck",
    "LaunchSettings",
    "PostLaunchAction",
    "Source",
    "StrictModel",
    "Target",
    "TcpHealthCheck",
    "Vm",
    "Wave",
    "finalize_after_minutes",
]
