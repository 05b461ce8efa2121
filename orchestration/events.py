"""Status events on the custom bus: the contract every consumer (Slack bot, callbacks) reads.

Every ``detail`` carries the migration's identity, a correlation ID, a per-migration
``sequence`` (allocated atomically in DynamoDB, so consumers can drop duplicates and
out-of-order deliveries) and a schema version. The EventBridge ``detail-type`` is the
model's class name. JSON Schemas are exported into ``docs/events/``.

Within a schema version fields are only ever added, optional and with a default, so an
event stored or queued before the addition still parses.

Every event also says where it goes (``routing``: the Slack channel, the callback URLs), so
no consumer reads the pipeline's migration record to route an event (docs/ARCHITECTURE.md,
"Events carry where they go"). Consumers are strict (unknown keys
are refused), so deploy a consumer before a producer that sends it a new field.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from orchestration.migration_request import MigrationRequest
from orchestration.wire import WireModel

EVENT_SOURCE = "wavepilot.migrations"
EVENT_SCHEMA_VERSION: Literal["1"] = "1"


class Step(StrEnum):
    """The steps a migration reports (``MigrationStatusUpdated.step``, the record's ``step``).

    Each is the name of the state machine's state that reports it (``Intake``: the ingress
    and ``start_migration``, before any execution), but for ``WAIT_FOR_REPLICATION``, which
    the ``CheckReplication`` task reports. The values are the events' and the table's wire
    names: never change one. ``tests/test_statemachine.py`` holds them to the ASL file.
    """

    INTAKE = "Intake"
    VALIDATE_INPUT = "ValidateInput"
    PREPARE_SOURCE = "PrepareSource"
    WAIT_FOR_REPLICATION = "WaitForReplication"
    START_TEST_LAUNCH = "StartTestLaunch"
    VERIFY_TEST_LAUNCH = "VerifyTestLaunch"
    AWAIT_APPROVAL = "AwaitApproval"
    PREPARE_CUTOVER = "PrepareCutover"
    START_CUTOVER = "StartCutover"
    VERIFY_CUTOVER = "VerifyCutover"
    FINALIZE_CUTOVER = "FinalizeCutover"
    # ``onFailure: park``: a failure before the cutover cleaned up and waiting for a person's
    # Retry or Roll back (WAITING), or retried (SUCCEEDED).
    PARK = "Park"
    ROLLBACK = "Rollback"


StepStatus = Literal["STARTED", "IN_PROGRESS", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED"]
# How an approval ended: a person decided (see pipeline.approvals.Decision), or no one did.
ApprovalOutcome = Literal["APPROVED", "REJECTED", "EXPIRED"]


class EventPart(WireModel):
    """A structured value inside an event (camelCase on the wire, like the event)."""


class EventRouting(EventPart):
    """Where the migration's events go, copied from its request by the producer."""

    slack_channel: str = Field(
        default="",
        description="The wave's Slack channel; empty: the request names none (the bot's default).",
    )
    callback_urls: list[str] = Field(
        default_factory=list,
        description="The https URLs the callback handler POSTs to (never sent to them).",
    )


class EventDetail(WireModel):
    """Fields every status event carries."""

    detail_type: ClassVar[str]

    schema_version: Literal["1"] = EVENT_SCHEMA_VERSION
    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str = ""
    target_account_id: str = Field(
        default="",
        description="Added within schema version 1: the AWS account the VM migrates into (its "
        "lane); empty for a request that names none (the hub's) or an event put before it.",
    )
    target_region: str = Field(
        default="",
        description="Added within schema version 1: the AWS Region the VM migrates into; empty "
        "as targetAccountId is.",
    )
    correlation_id: str
    sequence: int = Field(ge=1)
    timestamp: AwareDatetime
    routing: EventRouting | None = Field(
        default=None,
        description="Added within schema version 1: null on an event put before it, which "
        "consumers route by the migration's record.",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.detail_type = cls.__name__

    def to_entry(self, bus_name: str) -> dict[str, Any]:
        """A ``PutEvents`` entry for this event."""
        return {
            "Source": EVENT_SOURCE,
            "DetailType": self.detail_type,
            "Detail": self.model_dump_json(by_alias=True),
            "EventBusName": bus_name,
            "Resources": [],
        }


class MigrationRequested(EventDetail):
    revision: str
    request: MigrationRequest


class MigrationStatusUpdated(EventDetail):
    step: str  # a Step's value (plain str: the JSON Schema and older events stay as they are)
    status: StepStatus
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class LaunchedInstance(EventPart):
    """An instance MGN launched (the test instance, verified before the approval)."""

    instance_id: str
    private_ip: str = ""


class HealthCheckResult(EventPart):
    """One of the VM's health checks, as run against the test instance."""

    type: Literal["tcp", "http"]
    target: str = Field(description="What was probed: `10.0.1.5:22`, `https://10.0.1.5:443/`.")
    passed: bool
    detail: str = ""


class PostLaunchActionResult(EventPart):
    """One post-launch action (SSM document) MGN ran on the test instance, and its result."""

    name: str
    ssm_document: str = ""
    status: Literal["SUCCESS", "FAILED", "IN_PROGRESS", "NOT_STARTED", "TIMED_OUT"]
    must_succeed_for_cutover: bool = True
    reason: str = ""


# The gate: what an approver needs to decide the cutover. The fields after ``summary`` were
# added within schema version 1, optional: a hand-written request has no target account or
# window, and an event from before the addition has none of them. (No docstring: it would
# replace the description of the exported JSON Schema.)
class ApprovalRequested(EventDetail):
    approval_id: str
    approvers: list[str]
    requested_by: str
    expires_at: AwareDatetime
    summary: str
    target_account_id: str = ""
    target_region: str = ""
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    test_instance: LaunchedInstance | None = None
    health_checks: list[HealthCheckResult] = Field(default_factory=list)
    post_launch_actions: list[PostLaunchActionResult] = Field(
        default_factory=list,
        description="Added within schema version 1: the post-launch actions' results on the "
        "test instance (only optional ones can have failed: a required one rolls back).",
    )
    approval_scope: Literal["vm", "application", "wave"] = Field(
        default="vm",
        description="Added within schema version 1: what one approval decision covers (the "
        "manifest's approval.scope); vm on an event put before it.",
    )
    approval_group: str = Field(
        default="",
        description="Added within schema version 1: the approval group, '<wave>/<app>' or "
        "'<wave>'; empty for vm scope.",
    )


class ApprovalDecided(EventDetail):
    approval_id: str
    decision: ApprovalOutcome
    decided_by: str
    reason: str = ""
    approval_group: str = Field(
        default="",
        description="Added within schema version 1: the approval's group (empty: none).",
    )
    group_decision_id: str = Field(
        default="",
        description="Added within schema version 1: the group decision this one was part of "
        "(grp-...); empty for a decision on this VM alone.",
    )


class MigrationCompleted(EventDetail):
    target_instance_id: str
    duration_seconds: float = Field(ge=0)


class MigrationFailed(EventDetail):
    step: str
    error: str
    cause: str


class MigrationParked(EventDetail):
    park_id: str = Field(description="This park (prk-...): a decision names it.")
    step: str = Field(description="The step that failed (StartTestLaunch, VerifyTestLaunch...).")
    error: str
    cause: str
    rollback_at: AwareDatetime = Field(
        description="When the migration rolls back on its own if nobody decides."
    )
    operators: list[str] = Field(
        default_factory=list, description="Who may Retry or Roll back (the wave's operators)."
    )


class RollbackStarted(EventDetail):
    step: str
    reason: str


class RollbackCompleted(EventDetail):
    reason: str
    terminated_instance_ids: list[str]
    source_server_state: str


EVENT_TYPES: dict[str, type[EventDetail]] = {
    cls.detail_type: cls
    for cls in (
        MigrationRequested,
        MigrationStatusUpdated,
        ApprovalRequested,
        ApprovalDecided,
        MigrationCompleted,
        MigrationFailed,
        MigrationParked,
        RollbackStarted,
        RollbackCompleted,
    )
}


# What a person must act on or know at once: an approval to decide (and that it was decided,
# so nobody clicks a stale button), a failure, a parked migration, a rollback under way.
# These reach Slack on a queue of their own, never behind the routine events
# (docs/ARCHITECTURE.md, "Two paths to Slack"); every other type takes the status queue.
# Terraform lists the same types
# (local.slack_priority_detail_types; tests/test_terraform.py holds the two together).
PRIORITY_EVENT_TYPES: tuple[str, ...] = (
    ApprovalRequested.detail_type,
    ApprovalDecided.detail_type,
    MigrationFailed.detail_type,
    MigrationParked.detail_type,
    RollbackStarted.detail_type,
)


def slack_event_patterns(source: str = EVENT_SOURCE) -> tuple[dict[str, Any], dict[str, Any]]:
    """The EventBridge patterns of the two paths to Slack: (routine, priority). Every event of
    ``source`` matches exactly one of them, so nothing reaches the bot twice."""
    routine = {"source": [source], "detail-type": [{"anything-but": list(PRIORITY_EVENT_TYPES)}]}
    priority = {"source": [source], "detail-type": list(PRIORITY_EVENT_TYPES)}
    return routine, priority


def parse_detail(detail_type: str, detail: dict[str, Any] | str) -> EventDetail:
    """Parse an event's ``detail`` by its ``detail-type``."""
    model = EVENT_TYPES[detail_type]
    if isinstance(detail, str):
        return model.model_validate_json(detail)
    return model.model_validate(detail)


def event_json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text for every event, as committed under docs/events/."""
    schemas = {}
    for name, model in EVENT_TYPES.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://wavepilot.dev/schemas/events/{name}.json",
            "title": name,
            "description": f"EventBridge detail of '{name}' events from source '{EVENT_SOURCE}'.",
            **{k: v for k, v in model.model_json_schema(by_alias=True).items() if k != "title"},
        }
        schemas[f"{name}.schema.json"] = json.dumps(schema, indent=2) + "\n"
    return schemas
