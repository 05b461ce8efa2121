"""The migration state in DynamoDB (single table, documented in docs/ARCHITECTURE.md).

Items:
- ``MIGRATION#<id>`` / ``META``: the request, its revision, status, step, execution ARN,
  the per-migration event ``seq`` counter, the step ``history`` (a bounded list, appended by
  the write that advances the record); ``gsi1pk = WAVE#<wave>``.
- ``MIGRATION#<id>`` / ``STEP#<seq>``: one step each, written by versions before the history
  moved onto the record; still read (``history``), never written.
- ``APPROVAL#<id>`` / ``META``: an approval gate (its task token, decision); while PENDING
  also a sparse member of ``gsi1`` (``gsi1pk = APPROVALS#PENDING``), so the monitor finds
  pending approvals with a Query, never a Scan. ``gsi1sk`` is its expiry, or for a member of
  an approval group ``GROUP#<wave>/<app or *>#<expiry>``: one Query (``begins_with``) lists
  a group's (or a wave's groups') pending approvals, soonest expiry first.
- ``REJECTED#<sqs message id>`` / ``META``: a request the ingress refused, and why.
- ``idempotency#<function>`` / ``<key hash>``: Powertools' idempotency records.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from orchestration.events import Step
from orchestration.migration_request import MigrationRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

META = "META"
# gsi1 partition of the approvals still waiting for a decision (sparse: removed on decision).
PENDING_APPROVALS = "APPROVALS#PENDING"
GROUP_SK_PREFIX = "GROUP#"
REJECTION_RETENTION = timedelta(days=90)

# The step history is a list on the migration's record (``history``), appended to by the
# same UpdateItem that advances the record and allocates the event's sequence: one write per
# step. Its bound keeps the record far under DynamoDB's 400 KB with the largest request the
# ingress accepts (256 KiB, ``intake.MAX_BODY_BYTES``): a message is kept to
# ``HISTORY_MESSAGE_BYTES`` of UTF-8 (the event carries it whole), an entry is then at most
# about 600 bytes, and the list holds at most ``HISTORY_LIMIT`` entries (about 60 KB); a full
# list drops its oldest ``HISTORY_TRIM`` (counted in ``historyTrimmed``). A migration
# reports about 25 steps per run, so only one re-run many times ever trims.
HISTORY = "history"
HISTORY_LIMIT = 100
HISTORY_TRIM = 50
HISTORY_MESSAGE_BYTES = 500
# Steps kept one item each by versions before the list (``MIGRATION#<id>`` / ``STEP#<seq>``).
LEGACY_STEP_PREFIX = "STEP#"
# How often an advance is tried again after trimming a full history another writer changed.
_TRIM_ATTEMPTS = 5
# DynamoDB's limit of actions in one TransactWriteItems (and keys in one BatchGetItem).
_TRANSACTION_ITEMS = 100


@dataclass(frozen=True, slots=True)
class ReportWrite:
    """What one invocation reported of one migration (``MigrationStore.record_reports``)."""

    migration_id: str
    sequences: int
    at: tuple[str, str] | None = None
    history: tuple[dict[str, str], ...] = ()
    migration_status: str | None = None


def _report_parts(
    report: ReportWrite, now: datetime
) -> tuple[list[str], str, dict[str, str], dict[str, Any]]:
    """A report's update without its sequence: the SET clauses, the condition (the record
    exists, its history has room), the names and values they use."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":now": now.isoformat()}
    sets = ["updatedAt = :now"]
    condition = "attribute_exists(pk)"
    if report.at is not None:
        names |= {"#step": "step", "#stepStatus": "stepStatus"}
        values |= {":step": report.at[0], ":stepStatus": report.at[1]}
        sets.append("#step = :step, #stepStatus = :stepStatus")
    if report.history:
        names["#history"] = HISTORY
        values[":entry"] = list(report.history)
        values[":empty"] = []
        # Room for every entry: at most HISTORY_LIMIT steps after the append.
        values[":limit"] = HISTORY_LIMIT - len(report.history) + 1
        sets.append("#history = list_append(if_not_exists(#history, :empty), :entry)")
        condition += " AND (attribute_not_exists(#history) OR size(#history) < :limit)"
    if report.migration_status:
        names["#status"] = "status"
        values[":status"] = report.migration_status
        sets.append("#status = :status")
    return sets, condition, names, values


def migration_pk(migration_id: str) -> str:
    """The partition of everything kept about a migration (its record, history, audit trail,
    Slack thread): the one place the ``MIGRATION#`` key is built."""
    return f"MIGRATION#{migration_id}"


def approval_pk(approval_id: str) -> str:
    return f"APPROVAL#{approval_id}"


def group_sk_prefix(group: str) -> str:
    """The start of the gsi1 sort key of a group's pending approvals: ``<wave>/<app>`` ->
    ``GROUP#<wave>/<app>#``; a wave group ``<wave>`` -> ``GROUP#<wave>/*#``; a bare ``<wave>/``
    -> ``GROUP#<wave>/`` (every group of the wave, whatever its scope)."""
    wave, slash, app = group.partition("/")
    if not slash:
        return f"{GROUP_SK_PREFIX}{wave}/*#"
    return f"{GROUP_SK_PREFIX}{wave}/{app}#" if app else f"{GROUP_SK_PREFIX}{wave}/"


def migration_key(migration_id: str) -> dict[str, str]:
    return {"pk": migration_pk(migration_id), "sk": META}


class RecordOutcome(enum.StrEnum):
    NEW = "new"  # first request for this migration
    REVISED = "revised"  # a new revision of a known migration
    SAME = "same"  # this exact revision was already recorded


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str
    revision: str
    status: str
    step: str
    correlation_id: str
    execution_arn: str | None
    request: MigrationRequest
    approval_id: str | None = None
    # The last execution started for any revision (kept when a new revision clears
    # ``execution_arn``): "" if none was started; None in a record written before it was kept.
    last_execution_arn: str | None = ""
    # The steps on the record, oldest first (``MigrationStore.history`` adds steps kept as
    # items by older versions), and how many older ones a full list dropped.
    history: tuple[dict[str, str], ...] = ()
    history_trimmed: int = 0
    # Why the VM's cancel (``publish --cancel-removed``) applies to this revision: "removed
    # from the manifests in <commit> (<file>) by <author>"; None while it is in the manifests.
    # The end of a rollback reads it to take the server out of MGN's application.
    removed_from_manifests: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MigrationRecord:
        return cls(
            migration_id=str(item["migrationId"]),
            wave=str(item["wave"]),
            app_name=str(item["appName"]),
            target_vm_name=str(item["targetVmName"]),
            revision=str(item["revision"]),
            status=str(item["status"]),
            step=str(item.get("step", "")),
            correlation_id=str(item["correlationId"]),
            execution_arn=str(item["executionArn"]) if item.get("executionArn") else None,
            request=MigrationRequest.model_validate_json(str(item["request"])),
            approval_id=str(item["approvalId"]) if item.get("approvalId") else None,
            last_execution_arn=(
                str(item["lastExecutionArn"]) if "lastExecutionArn" in item else None
            ),
            history=tuple(_entry(entry) for entry in item.get(HISTORY) or ()),
            history_trimmed=int(item.get("historyTrimmed", 0)),
            removed_from_manifests=(
                str(item["removedFromManifests"]) if item.get("removedFromManifests") else None
            ),
        )

    @property
    def slack_channel(self) -> str | None:
        """The channel the request names (none for a hand-written request)."""
        vm = self.request.effective_vm
        return vm.slack_channel if vm is not None else None

    @property
    def callback_urls(self) -> list[str]:
        """The request's callback URLs (none for a hand-written request)."""
        vm = self.request.effective_vm
        return list(vm.callback_urls) if vm is not None else []

    @property
    def target_account_id(self) -> str:
        """The account the wave migrates into (empty for a hand-written request: the hub's)."""
        vm = self.request.effective_vm
        return vm.target_account_id if vm is not None else ""

    @property
    def target_region(self) -> str:
        """The Region the wave migrates into (empty for a hand-written request)."""
        vm = self.request.effective_vm
        return vm.target_region if vm is not None else ""


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """An approval gate, as stored (without its task token)."""

    approval_id: str
    migration_id: str
    wave: str
    target_vm_name: str
    approvers: tuple[str, ...]
    requested_by: str
    status: str
    expires_at: datetime
    decided_by: str = ""
    decided_at: str = ""
    reason: str = ""
    requested_at: datetime | None = None  # None on approvals stored before it was recorded
    # Where and when the cutover would run (what a confirmation names); empty on approvals
    # stored before they were recorded, and for hand-written requests.
    target_account_id: str = ""
    target_region: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    # The approval group (``spec.approval_group``: "" for a VM approved on its own) and its
    # scope; empty on approvals stored before groups existed.
    group: str = ""
    scope: str = "vm"
    app_name: str = ""
    # How the migration's events are named and routed (``MigrationIdentity``), so a decision
    # is announced without reading the migration's record; empty on approvals stored before.
    correlation_id: str = ""
    slack_channel: str | None = None
    callback_urls: tuple[str, ...] = ()

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "approvalId": self.approval_id,
            "migrationId": self.migration_id,
            "wave": self.wave,
            "targetVmName": self.target_vm_name,
            "approvers": list(self.approvers),
            "requestedBy": self.requested_by,
            "status": self.status,
            "expiresAt": self.expires_at.isoformat(),
        }
        if self.requested_at is not None:
            item["requestedAt"] = self.requested_at.isoformat()
        if self.target_account_id:
            item["targetAccountId"] = self.target_account_id
        if self.target_region:
            item["targetRegion"] = self.target_region
        if self.window_start is not None:
            item["windowStart"] = self.window_start.isoformat()
        if self.window_end is not None:
            item["windowEnd"] = self.window_end.isoformat()
        if self.group:
            item["approvalGroup"] = self.group
            item["approvalScope"] = self.scope
        if self.app_name:
            item["appName"] = self.app_name
        if self.correlation_id:
            item["correlationId"] = self.correlation_id
        if self.slack_channel:
            item["slackChannel"] = self.slack_channel
        if self.callback_urls:
            item["callbackUrls"] = list(self.callback_urls)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApprovalRecord:
        return cls(
            approval_id=str(item["approvalId"]),
            migration_id=str(item["migrationId"]),
            wave=str(item["wave"]),
            target_vm_name=str(item["targetVmName"]),
            approvers=tuple(str(a) for a in item.get("approvers", [])),
            requested_by=str(item.get("requestedBy", "")),
            status=str(item["status"]),
            expires_at=datetime.fromisoformat(str(item["expiresAt"])),
            decided_by=str(item.get("decidedBy", "")),
            decided_at=str(item.get("decidedAt", "")),
            reason=str(item.get("reason", "")),
            requested_at=_moment(item.get("requestedAt")),
            target_account_id=str(item.get("targetAccountId", "")),
            target_region=str(item.get("targetRegion", "")),
            window_start=_moment(item.get("windowStart")),
            window_end=_moment(item.get("windowEnd")),
            group=str(item.get("approvalGroup", "")),
            scope=str(item.get("approvalScope", "vm")),
            app_name=str(item.get("appName", "")),
            correlation_id=str(item.get("correlationId", "")),
            slack_channel=str(item["slackChannel"]) if item.get("slackChannel") else None,
            callback_urls=tuple(str(url) for url in item.get("callbackUrls", [])),
        )


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _old_item(exc: ClientError) -> dict[str, Any]:
    """The item a failed condition was checked against (``ReturnValuesOnConditionCheckFailure``:
    in DynamoDB's JSON, which the resource layer leaves as it is in errors); empty if none."""
    raw: dict[str, Any] = dict(exc.response).get("Item") or {}  # type: ignore[assignment]
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in raw.items()}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _sequence(item: Mapping[str, Any]) -> int | None:
    """A record's last sequence number (None: none allocated yet); the resource's client
    speaks Python types (boto3's transformation)."""
    seq = item.get("seq")
    return int(cast(Any, seq)) if seq is not None else None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to an approval, when (``MigrationStore.audit_many``)."""

    approval_id: str
    actor: str
    action: str
    outcome: str
    detail: str
    at: datetime


def _audit_item(
    pk: str, *, actor: str, action: str, outcome: str, detail: str, now: datetime
) -> dict[str, Any]:
    return {
        "pk": pk,
        "sk": f"AUDIT#{now.isoformat()}#{actor}#{action}",
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "detail": detail[:2_000],
        "at": now.isoformat(),
    }


def history_entry(step: str, status: str, message: str, at: datetime) -> dict[str, str]:
    """One step as the history keeps it: its message cut to ``HISTORY_MESSAGE_BYTES``."""
    return {
        "step": step,
        "status": status,
        "message": clip_utf8(message, HISTORY_MESSAGE_BYTES),
        "at": at.isoformat(),
    }


def clip_utf8(text: str, limit: int) -> str:
    """``text`` if its UTF-8 takes at most ``limit`` bytes, else its longest prefix that fits
    with an ellipsis (never a broken character)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    ellipsis = "…"
    room = limit - len(ellipsis.encode("utf-8"))
    return encoded[:room].decode("utf-8", errors="ignore") + ellipsis


def _entry(item: Any) -> dict[str, str]:
    """A step of the history, from the list or from an older version's ``STEP#`` item."""
    return {key: _text(item.get(key)) for key in ("step", "status", "message", "at")}


def _entry_time(entry: dict[str, str]) -> datetime:
    return datetime.fromisoformat(entry["at"]) if entry["at"] else datetime.min.replace(tzinfo=UTC)


class MigrationStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def record_request(
        self, request: MigrationRequest, revision: str, correlation_id: str, now: datetime
    ) -> RecordOutcome:
        """Record a request; a repeat of the recorded revision changes nothing."""
        return self._record_request(request, revision, correlation_id, now, numbered=False)[0]

    def accept_request(
        self, request: MigrationRequest, revision: str, correlation_id: str, now: datetime
    ) -> tuple[RecordOutcome, int | None]:
        """Record a request as ``record_request`` does, and allocate the sequence number of
        the event that announces it, in the same write for a new migration or revision.

        The record is the request's idempotency: a repeat of the recorded revision is
        announced again only while nothing has started it (a crash, or a refused put, may
        have lost its first announcement; the execution's name makes a second start
        harmless), with a sequence allocated in a write of its own. Once it is started,
        cancelled or revised, a repeat is dropped: None."""
        outcome, sequence = self._record_request(
            request, revision, correlation_id, now, numbered=True
        )
        if sequence is None:
            sequence = self._sequence_while_unstarted(request.migration_id, revision)
        return outcome, sequence

    def _sequence_while_unstarted(self, migration_id: str, revision: str) -> int | None:
        """The next sequence, if the record is still ``revision`` waiting at Intake."""
        try:
            response = self._table.update_item(
                Key=migration_key(migration_id),
                UpdateExpression="ADD seq :one",
                ConditionExpression=(
                    "#revision = :revision AND #status = :requested AND #step = :intake"
                ),
                ExpressionAttributeNames={
                    "#revision": "revision",
                    "#status": "status",
                    "#step": "step",
                },
                ExpressionAttributeValues={
                    ":one": 1,
                    ":revision": revision,
                    ":requested": "REQUESTED",
                    ":intake": Step.INTAKE,
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return int(response["Attributes"]["seq"])  # type: ignore[arg-type]

    def _record_request(
        self,
        request: MigrationRequest,
        revision: str,
        correlation_id: str,
        now: datetime,
        *,
        numbered: bool,
    ) -> tuple[RecordOutcome, int | None]:
        stamp = now.isoformat()
        item: dict[str, Any] = {
            **migration_key(request.migration_id),
            "migrationId": request.migration_id,
            "wave": request.wave,
            "appName": request.app_name,
            "targetVmName": request.target_vm_name,
            "revision": revision,
            "request": request.model_dump_json(by_alias=True, exclude_none=True),
            "correlationId": correlation_id,
            "status": "REQUESTED",
            "step": Step.INTAKE,
            "seq": 1 if numbered else 0,
            "lastExecutionArn": "",
            "createdAt": stamp,
            "updatedAt": stamp,
            "gsi1pk": f"WAVE#{request.wave}",
            "gsi1sk": request.migration_id,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        else:
            return RecordOutcome.NEW, (1 if numbered else None)
        values: dict[str, Any] = {
            ":revision": revision,
            ":request": item["request"],
            ":correlation": correlation_id,
            ":status": "REQUESTED",
            ":step": Step.INTAKE,
            ":now": stamp,
        }
        expression = (
            "SET #revision = :revision, #request = :request, correlationId = :correlation,"
            " #status = :status, #step = :step, updatedAt = :now"
            # a new revision is in the manifests again: a removal's cancel is past
            " REMOVE executionArn, removedFromManifests"
        )
        if numbered:
            expression += " ADD seq :one"
            values[":one"] = 1
        try:
            response = self._table.update_item(
                Key=migration_key(request.migration_id),
                UpdateExpression=expression,
                ConditionExpression="#revision <> :revision",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#request": "request",
                    "#revision": "revision",
                    "#step": "step",
                },
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW" if numbered else "NONE",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return RecordOutcome.SAME, None
            raise
        if not numbered:
            return RecordOutcome.REVISED, None
        return RecordOutcome.REVISED, int(response["Attributes"]["seq"])  # type: ignore[arg-type]

    def next_sequence(self, migration_id: str) -> int:
        """Allocate the migration's next event sequence number (atomic, starts at 1)."""
        response = self._table.update_item(
            Key=migration_key(migration_id),
            UpdateExpression="ADD seq :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["seq"])  # type: ignore[arg-type]

    def get(self, migration_id: str) -> MigrationRecord | None:
        item = self._table.get_item(Key=migration_key(migration_id), ConsistentRead=True).get(
            "Item"
        )
        return MigrationRecord.from_item(item) if item else None

    # --- finalize now (a finalizeAfter hold cut short) ---------------------------------------

    def request_finalize(self, migration_id: str, *, user: str, now: datetime) -> bool:
        """Ask the migration's held cutover to finalize now: written only while it is held
        (its step FinalizeCutover, WAITING); False if it is not (any more)."""
        return self._updated_if(
            migration_id,
            UpdateExpression="SET finalizeRequestedBy = :user, finalizeRequestedAt = :now",
            ConditionExpression="#step = :finalize AND stepStatus = :waiting",
            ExpressionAttributeNames={"#step": "step"},
            ExpressionAttributeValues={
                ":user": user,
                ":now": now.isoformat(),
                ":finalize": "FinalizeCutover",
                ":waiting": "WAITING",
            },
        )

    def finalize_request(self, migration_id: str) -> tuple[str, datetime] | None:
        """Who asked the migration to finalize now, and when (None: nobody)."""
        item = self._table.get_item(
            Key=migration_key(migration_id),
            ConsistentRead=True,
            ProjectionExpression="finalizeRequestedBy, finalizeRequestedAt",
        ).get("Item")
        if not item or not item.get("finalizeRequestedBy"):
            return None
        return str(item["finalizeRequestedBy"]), datetime.fromisoformat(
            str(item["finalizeRequestedAt"])
        )

    def mark_removed(self, migration_id: str, revision: str, reason: str, now: datetime) -> bool:
        """Keep why the VM left the manifests on its record (``removed_from_manifests``), while
        the record is still at ``revision``; False if there is no such record (or a newer
        revision was recorded since: the VM is in the manifests again)."""
        return self._updated_if(
            migration_id,
            UpdateExpression="SET removedFromManifests = :reason, updatedAt = :now",
            ConditionExpression="#revision = :revision",
            ExpressionAttributeNames={"#revision": "revision"},
            ExpressionAttributeValues={
                ":reason": reason,
                ":now": now.isoformat(),
                ":revision": revision,
            },
        )

    def _updated_if(self, migration_id: str, **update: Any) -> bool:
        """One conditional ``update_item`` of the migration's record; False when its
        ``ConditionExpression`` did not hold."""
        try:
            self._table.update_item(Key=migration_key(migration_id), **update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_execution(
        self, migration_id: str, revision: str, execution_arn: str, now: datetime
    ) -> None:
        self._table.update_item(
            Key=migration_key(migration_id),
            UpdateExpression=(
                "SET executionArn = :arn, lastExecutionArn = :arn, #status = :running,"
                " updatedAt = :now"
            ),
            ConditionExpression="#revision = :revision",
            ExpressionAttributeNames={"#status": "status", "#revision": "revision"},
            ExpressionAttributeValues={
                ":arn": execution_arn,
                ":running": "RUNNING",
                ":now": now.isoformat(),
                ":revision": revision,
            },
        )

    def advance(
        self,
        migration_id: str,
        *,
        step: str,
        status: str,
        now: datetime,
        message: str | None = None,
        migration_status: str | None = None,
        only_while_at: str | None = None,
        started: tuple[str, str] | None = None,
    ) -> int | None:
        """Move the migration to ``step`` and allocate its next event sequence, in one write;
        with ``message``, the step goes into the migration's history in that same write (the
        list's order is the sequence's: each append is the write that allocates it).

        With ``only_while_at``, only if the migration is still at that step: None (nothing
        written) if it has moved on, e.g. the ingress reporting the execution it started
        after that execution already reported its first step."""
        entries = [history_entry(step, status, message, now)] if message is not None else []
        return self.record_reports(
            migration_id,
            sequences=1,
            at=(step, status),
            history=entries,
            now=now,
            migration_status=migration_status,
            only_while_at=only_while_at,
            started=started,
        )

    def record_reports(
        self,
        migration_id: str,
        *,
        sequences: int,
        now: datetime,
        at: tuple[str, str] | None = None,
        history: Sequence[dict[str, str]] = (),
        migration_status: str | None = None,
        only_while_at: str | None = None,
        started: tuple[str, str] | None = None,
    ) -> int | None:
        """What one invocation reported of a migration, in one write: ``sequences`` event
        sequence numbers allocated (the last one is returned; the first is that minus
        ``sequences`` plus one), the migration moved to ``at`` (step, step status) if given,
        ``history`` appended (in the order of the sequences), its status set.

        With ``only_while_at``, only if the migration is still at that step: None (nothing
        written) if it has moved on. With ``started`` (revision, execution ARN), the record
        names the execution started for that revision in the same write (``set_execution``'s
        fields and condition: a record at another revision fails the write, as there)."""
        report = ReportWrite(migration_id, sequences, at, tuple(history), migration_status)
        sets, condition, names, values = _report_parts(report, now)
        values[":n"] = sequences
        if started is not None:
            names["#revision"] = "revision"
            values[":revision"], values[":arn"] = started
            sets.append("executionArn = :arn, lastExecutionArn = :arn")
            condition += " AND #revision = :revision"
        expression = "ADD seq :n SET " + ", ".join(sets)
        if only_while_at is not None:
            names["#step"] = "step"
            condition += " AND #step = :at"
            values[":at"] = only_while_at
        request: dict[str, Any] = {
            "Key": migration_key(migration_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
            # Why the condition failed, without reading the record again.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if names:  # DynamoDB refuses names an expression does not use
            request["ExpressionAttributeNames"] = names
        for _ in range(_TRIM_ATTEMPTS):
            try:
                response = self._table.update_item(**request)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                item = _old_item(exc)
                if not item:
                    raise  # no such migration
                if started is not None and _text(item.get("revision")) != started[0]:
                    raise  # another revision recorded since: as set_execution refuses it
                if only_while_at is not None and _text(item.get("step")) != only_while_at:
                    return None
                held = item.get(HISTORY) or []
                if not history or len(held) < values[":limit"]:  # pragma: no cover - no race
                    raise
                self._trim_history(migration_id, held)
                continue
            return int(response["Attributes"]["seq"])  # type: ignore[arg-type]
        raise RuntimeError(  # pragma: no cover - five other writers in between, each time
            f"the history of {migration_id} kept changing while it was trimmed"
        )

    def record_reports_many(self, reports: Sequence[ReportWrite], now: datetime) -> dict[str, int]:
        """Many migrations' reports of one invocation (the launch coordinator's, for a batch)
        in two calls per 100 migrations instead of one each: their sequence numbers read
        together (``BatchGetItem``), then written in one transaction, each record's update
        conditioned on the number read. Returns each migration's last sequence number.

        A transaction DynamoDB cancels (another writer moved a record in between, a history
        to trim first, a record gone) writes nothing: its reports are then written one
        migration at a time (``record_reports``), as they would have been."""
        last: dict[str, int] = {}
        for start in range(0, len(reports), _TRANSACTION_ITEMS):
            chunk = reports[start : start + _TRANSACTION_ITEMS]
            read = self._sequences([report.migration_id for report in chunk])
            known = [report for report in chunk if report.migration_id in read]
            alone = [report for report in chunk if report.migration_id not in read]
            if len(known) > 1:
                try:
                    updates: list[Any] = [
                        {"Update": self._conditional_report(report, read, now)} for report in known
                    ]
                    self._table.meta.client.transact_write_items(TransactItems=updates)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    alone = list(chunk)
                else:
                    for report in known:
                        last[report.migration_id] = (read[report.migration_id] or 0) + (
                            report.sequences
                        )
            else:
                alone = list(chunk)
            for report in alone:
                written = self.record_reports(
                    report.migration_id,
                    sequences=report.sequences,
                    now=now,
                    at=report.at,
                    history=report.history,
                    migration_status=report.migration_status,
                )
                assert written is not None  # only an only_while_at write finds nothing
                last[report.migration_id] = written
        return last

    def _sequences(self, migration_ids: Sequence[str]) -> dict[str, int | None]:
        """The records' sequence numbers (None: a record with none yet), strongly consistent;
        a migration without a record is left out."""
        named = {migration_pk(migration_id): migration_id for migration_id in migration_ids}
        return {
            named[_text(item["pk"])]: _sequence(item)
            for item in self._read_together([migration_key(m) for m in migration_ids], "pk, seq")
        }

    def _read_together(
        self, keys: list[dict[str, str]], projection: str, names: Mapping[str, str] | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """The items of ``keys`` that exist (``projection``), strongly consistent: one
        ``BatchGetItem``, and another for what DynamoDB leaves unprocessed."""
        while keys:
            wanted: dict[str, Any] = {
                "Keys": keys,
                "ConsistentRead": True,
                "ProjectionExpression": projection,
            }
            if names:
                wanted["ExpressionAttributeNames"] = dict(names)
            response = self._table.meta.client.batch_get_item(
                RequestItems={self._table.name: cast(Any, wanted)}
            )
            yield from response.get("Responses", {}).get(self._table.name, [])
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table.name)
            keys = list(unprocessed["Keys"]) if unprocessed else []  # type: ignore[arg-type]

    def _conditional_report(
        self, report: ReportWrite, read: dict[str, int | None], now: datetime
    ) -> dict[str, Any]:
        """A report's update for a transaction: the sequence set to the number read plus the
        report's, only if no other writer moved it meanwhile."""
        sets, condition, names, values = _report_parts(report, now)
        seen = read[report.migration_id]
        values[":seq"] = (seen or 0) + report.sequences
        if seen is None:
            condition += " AND attribute_not_exists(seq)"
        else:
            condition += " AND seq = :seen"
            values[":seen"] = seen
        update: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": migration_key(report.migration_id),
            "UpdateExpression": "SET seq = :seq, " + ", ".join(sets),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            update["ExpressionAttributeNames"] = names
        return update

    def _trim_history(self, migration_id: str, held: list[Any]) -> None:
        """Drop the oldest ``HISTORY_TRIM`` steps of a full history, if it is still as read
        (another writer may have trimmed or appended since: the advance then tries again)."""
        try:
            self._table.update_item(
                Key=migration_key(migration_id),
                UpdateExpression="SET #history = :kept ADD historyTrimmed :dropped",
                ConditionExpression="size(#history) = :held",
                ExpressionAttributeNames={"#history": HISTORY},
                ExpressionAttributeValues={
                    ":kept": held[HISTORY_TRIM:],
                    ":dropped": HISTORY_TRIM,
                    ":held": len(held),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def history(self, migration_id: str) -> list[dict[str, str]]:
        """The migration's steps, oldest first: the list on its record, after any steps an
        older version kept as items of their own (``STEP#<seq>``), merged by time.

        One strongly consistent Query from the record (``META``) to the last ``STEP#`` item
        (the thread's ``SLACK`` item lies between and is skipped)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :meta AND :steps",
            "ExpressionAttributeValues": {
                ":pk": migration_pk(migration_id),
                ":meta": META,
                ":steps": LEGACY_STEP_PREFIX + "\uffff",
            },
            "ConsistentRead": True,
        }
        legacy: list[dict[str, str]] = []
        current: list[dict[str, str]] = []
        while True:
            response = self._table.query(**query)
            for item in response.get("Items", []):
                sk = str(item["sk"])
                if sk == META:
                    current = [_entry(entry) for entry in item.get(HISTORY) or ()]  # type: ignore[union-attr]
                elif sk.startswith(LEGACY_STEP_PREFIX):
                    legacy.append(_entry(item))
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not legacy:
            return current
        # Steps older versions kept come before the list (a deployment's overlap aside, when
        # both may be written: by time then, each source keeping its own order).
        return list(heapq.merge(legacy, current, key=_entry_time))

    def wave_migrations(self, wave: str) -> list[MigrationRecord]:
        """Every migration of the wave (a Query on gsi1, across pages: a wave of a few hundred
        VMs is more than one 1 MB page)."""
        records: list[MigrationRecord] = []
        query: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :wave",
            "ExpressionAttributeValues": {":wave": f"WAVE#{wave}"},
        }
        while True:
            response = self._table.query(**query)
            records.extend(MigrationRecord.from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return records
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # --- approvals -----------------------------------------------------------------------

    def create_approval(self, approval: ApprovalRecord, task_token: str) -> None:
        """Store the gate's task token under the approval ID; the token never leaves AWS.

        A pending approval is also in gsi1 (``PENDING_APPROVALS``, by expiry, under its group
        if it has one) until decided; ``pendingSk`` keeps that sort key for a revert.
        """
        item: dict[str, Any] = {
            "pk": approval_pk(approval.approval_id),
            "sk": META,
            **approval.to_item(),
            "taskToken": task_token,
        }
        if approval.status == "PENDING":
            sort_key = item["expiresAt"]
            if approval.group:
                sort_key = group_sk_prefix(approval.group) + sort_key
            item["gsi1pk"] = PENDING_APPROVALS
            item["gsi1sk"] = sort_key
            item["pendingSk"] = sort_key
        # The approval and the migration's pointer to it, in one call.
        self._table.meta.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table.name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table.name,
                        "Key": migration_key(approval.migration_id),
                        "UpdateExpression": "SET approvalId = :id",
                        "ExpressionAttributeValues": {":id": approval.approval_id},
                    }
                },
            ]
        )

    def approval(self, approval_id: str) -> ApprovalRecord | None:
        item = self._table.get_item(
            Key={"pk": approval_pk(approval_id), "sk": META}, ConsistentRead=True
        ).get("Item")
        return ApprovalRecord.from_item(item) if item else None

    def pending_approval_id(self, migration_id: str) -> str | None:
        item = self._table.get_item(Key=migration_key(migration_id), ConsistentRead=True).get(
            "Item"
        )
        return str(item["approvalId"]) if item and item.get("approvalId") else None

    def pending_approvals(self) -> list[ApprovalRecord]:
        """Every approval still PENDING, soonest expiry first: a Query on gsi1's sparse
        ``APPROVALS#PENDING`` partition (decided approvals leave it), across pages."""
        found = self._pending_query(
            {
                "KeyConditionExpression": "gsi1pk = :pending",
                "ExpressionAttributeValues": {":pending": PENDING_APPROVALS},
            }
        )
        return sorted(found, key=lambda approval: approval.expires_at)

    def pending_group_approvals(self, group: str) -> list[ApprovalRecord]:
        """The approvals of ``group`` still PENDING, soonest expiry first: one Query on gsi1
        (``begins_with`` on the group's sort key prefix, see ``group_sk_prefix``)."""
        return self._pending_query(
            {
                "KeyConditionExpression": "gsi1pk = :pending AND begins_with(gsi1sk, :group)",
                "ExpressionAttributeValues": {
                    ":pending": PENDING_APPROVALS,
                    ":group": group_sk_prefix(group),
                },
            }
        )

    def _pending_query(self, condition: dict[str, Any]) -> list[ApprovalRecord]:
        approvals: list[ApprovalRecord] = []
        query: dict[str, Any] = {"IndexName": "gsi1", **condition}
        while True:
            response = self._table.query(**query)
            approvals.extend(
                ApprovalRecord.from_item(item)
                for item in response.get("Items", [])
                # gsi1 is eventually consistent: one decided a moment ago may still be listed.
                if item.get("status") == "PENDING"
            )
            if "LastEvaluatedKey" not in response:
                return approvals
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def decide_approval(
        self, approval_id: str, *, decision: str, user: str, reason: str, now: datetime
    ) -> str | None:
        """Record the decision if the approval is still pending; return its task token.

        A conditional write: of two clicks at the same moment exactly one wins; the other
        gets ``None`` and reads who decided.
        """
        update = self._decision_update(approval_id, decision, user, reason, now)
        del update["TableName"]
        try:
            response = self._table.update_item(**update, ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return str(response["Attributes"]["taskToken"])

    def decide_approvals(
        self,
        decisions: Sequence[tuple[str, str]],
        *,
        decision: str,
        user: str,
        reason: str,
        now: datetime,
    ) -> dict[str, tuple[str, int]]:
        """Record one decision on many approvals (a group decision), each written with the
        sequence number of its ``ApprovalDecided`` event, allocated on its migration's
        record: per 50 (approval ID, migration ID) pairs, one ``BatchGetItem`` (the approvals'
        task tokens, the records' sequence numbers) and one ``TransactWriteItems`` in which
        each approval is decided only if still PENDING and each record moved only if its
        number is the one read. Returns approval ID -> (task token, sequence) for the
        approvals decided (a migration's second pending approval is left out). A chunk
        DynamoDB cancels (one decided meanwhile by another click,
        a record another writer moved) writes nothing: its approvals are left out, and the
        caller decides them one at a time (``decide_approval``), as it would have."""
        decided: dict[str, tuple[str, int]] = {}
        for start in range(0, len(decisions), _TRANSACTION_ITEMS // 2):
            chunk = list(decisions[start : start + _TRANSACTION_ITEMS // 2])
            read = self._tokens_and_sequences(chunk)
            # One approval per migration in a transaction (DynamoDB refuses two operations on
            # its record): another pending approval of the same migration (a gate asked
            # again, its first approval left pending) is left to be decided alone.
            known: list[tuple[str, str]] = []
            for approval_id, migration_id in chunk:
                if (
                    approval_id in read["tokens"]
                    and migration_id in read["sequences"]
                    and all(migration_id != m for _, m in known)
                ):
                    known.append((approval_id, migration_id))
            if not known:
                continue
            writes: list[Any] = []
            for approval_id, migration_id in known:
                writes.append(
                    {"Update": self._decision_update(approval_id, decision, user, reason, now)}
                )
                seen = read["sequences"][migration_id]
                writes.append(
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": migration_key(migration_id),
                            "UpdateExpression": "SET seq = :next",
                            "ConditionExpression": (
                                "seq = :seen" if seen is not None else "attribute_not_exists(seq)"
                            ),
                            "ExpressionAttributeValues": {
                                ":next": (seen or 0) + 1,
                                **({":seen": seen} if seen is not None else {}),
                            },
                        }
                    }
                )
            try:
                self._table.meta.client.transact_write_items(TransactItems=writes)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                continue  # nothing written: the caller decides these one at a time
            for approval_id, migration_id in known:
                decided[approval_id] = (
                    read["tokens"][approval_id],
                    (read["sequences"][migration_id] or 0) + 1,
                )
        return decided

    def _decision_update(
        self, approval_id: str, decision: str, user: str, reason: str, now: datetime
    ) -> dict[str, Any]:
        """A decision's conditional update of a pending approval (a transaction's ``Update``)."""
        return {
            "TableName": self._table.name,
            "Key": {"pk": approval_pk(approval_id), "sk": META},
            # Decided: out of gsi1's pending approvals, in the same conditional write.
            "UpdateExpression": (
                "SET #status = :decision, decidedBy = :user, decidedAt = :now, reason = :reason"
                " REMOVE gsi1pk, gsi1sk"
            ),
            "ConditionExpression": "#status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":decision": decision,
                ":user": user,
                ":now": now.isoformat(),
                ":reason": reason,
                ":pending": "PENDING",
            },
        }

    def _tokens_and_sequences(self, pairs: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The pending approvals' task tokens and their migrations' sequence numbers (None:
        a record with none yet), strongly consistent, in one ``BatchGetItem`` (and its
        unprocessed keys); an approval not pending, or a migration without a record, is left
        out."""
        approvals = {approval_pk(a): a for a, _ in pairs}
        migrations = {migration_pk(m): m for _, m in pairs}
        keys: list[dict[str, str]] = [{"pk": pk, "sk": META} for pk in (*approvals, *migrations)]
        tokens: dict[str, str] = {}
        sequences: dict[str, int | None] = {}
        projection = "pk, seq, taskToken, #status"
        for item in self._read_together(keys, projection, {"#status": "status"}):
            pk = _text(item["pk"])
            pending = _text(item.get("status")) == "PENDING"
            if pk in approvals and pending and item.get("taskToken"):
                tokens[approvals[pk]] = _text(item["taskToken"])
            elif pk in migrations:
                sequences[migrations[pk]] = _sequence(item)
        return {"tokens": tokens, "sequences": sequences}

    def revert_decision(self, approval_id: str, *, user: str) -> None:
        """Undo a recorded decision whose delivery to Step Functions failed: pending again
        (and back among gsi1's pending approvals, keyed by its expiry as when created)."""
        self._table.update_item(
            Key={"pk": approval_pk(approval_id), "sk": META},
            UpdateExpression=(
                "SET #status = :pending, gsi1pk = :partition,"
                " gsi1sk = if_not_exists(pendingSk, expiresAt)"
                " REMOVE decidedBy, decidedAt, reason"
            ),
            ConditionExpression="decidedBy = :user",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":pending": "PENDING",
                ":user": user,
                ":partition": PENDING_APPROVALS,
            },
        )

    def audit(
        self, approval_id: str, *, actor: str, action: str, outcome: str, detail: str, now: datetime
    ) -> None:
        """Keep who did what, when, to which approval; never the task token."""
        self._audit(
            approval_pk(approval_id),
            actor=actor,
            action=action,
            outcome=outcome,
            detail=detail,
            now=now,
        )

    def audit_migration(
        self,
        migration_id: str,
        *,
        actor: str,
        action: str,
        outcome: str,
        detail: str,
        now: datetime,
    ) -> None:
        """Keep an operator's action on a migration (a rollback request, say)."""
        self._audit(
            migration_pk(migration_id),
            actor=actor,
            action=action,
            outcome=outcome,
            detail=detail,
            now=now,
        )

    def migration_audit_trail(self, migration_id: str) -> list[dict[str, Any]]:
        return self._audit_trail(migration_pk(migration_id))

    def audit_trail(self, approval_id: str) -> list[dict[str, Any]]:
        return self._audit_trail(approval_pk(approval_id))

    def audit_many(self, entries: Sequence[AuditEntry]) -> None:
        """Many approvals' audit entries (a group decision's), 25 to a ``BatchWriteItem``
        (boto3's batch writer, which sends again what DynamoDB leaves unprocessed)."""
        with self._table.batch_writer() as batch:
            for entry in entries:
                batch.put_item(
                    Item=_audit_item(
                        approval_pk(entry.approval_id),
                        actor=entry.actor,
                        action=entry.action,
                        outcome=entry.outcome,
                        detail=entry.detail,
                        now=entry.at,
                    )
                )

    def _audit(
        self, pk: str, *, actor: str, action: str, outcome: str, detail: str, now: datetime
    ) -> None:
        self._table.put_item(
            Item=_audit_item(
                pk, actor=actor, action=action, outcome=outcome, detail=detail, now=now
            )
        )

    def _audit_trail(self, pk: str) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": pk, ":prefix": "AUDIT#"},
        )
        return [dict(item) for item in response.get("Items", [])]

    # --- rejected requests ---------------------------------------------------------------

    def record_rejection(self, message_id: str, reason: str, body: str, now: datetime) -> None:
        self._table.put_item(
            Item={
                "pk": f"REJECTED#{message_id}",
                "sk": META,
                "messageId": message_id,
                "reason": reason,
                "body": body[:16_384],
                "rejectedAt": now.isoformat(),
                "expiration": int(
                    (now + REJECTION_RETENTION).timestamp()
                ),  # the table TTL attribute
            }
        )

    def rejection(self, message_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": f"REJECTED#{message_id}", "sk": META}).get("Item")
        return dict(item) if item else None
