"""A lane's launch ledger in the state table (single-table design, docs/ARCHITECTURE.md).

Items (``<lane>`` is ``account/region``):

- ``LAUNCHLANE#<lane>`` / ``META``: ``version``, incremented by every intent written. An
  intent is written in one transaction with the increment, on condition that the version is
  still the one the coordinator planned from: two coordinators of one lane can never both
  place a server in a job.
- ``LAUNCHLANE#<lane>`` / ``REQUEST#<kind>#<migrationId>``: an open request and the task
  token waiting for it (``replicationReady`` once its server was seen launchable; a
  cutover's ``testInstanceId`` to retire first, ``testInstanceRetired`` once it was; its
  ``application`` and the applications its cutover goes after, ``cutoverAfter``,
  ``dependenciesReported`` once it was reported waiting for them);
  deleted when answered.
- ``LAUNCHLANE#<lane>`` / ``INTENT#<intentId>``: a job decided (servers -> migrations, kind:
  ``test``, ``cutover`` or ``retire``, time), with its ``jobId`` once MGN started it; deleted
  when the job has completed, or when it was never started (quota).
- ``LAUNCHLANE#<lane>`` / ``OUTBOX#<kind>#<migrationId>``: an answered request whose
  outcome has not yet reached its execution (written in the transaction that answers it,
  deleted once ``SendTaskSuccess`` succeeded or the execution had moved on): a coordinator
  that dies between the two re-sends it on its next run.
- ``LAUNCHLANE#<lane>`` / ``LEASE``: the lane's running coordinator loop (its execution's
  name), a counter of requests, and a heartbeat: a request starts a loop only when none
  holds the lease; a loop gives it up only if no request arrived since it last looked, or
  hands it over to a fresh execution of itself (before its history grows too long).
- ``MIGRATION#<id>`` / ``LAUNCH#<kind>``: the migration's last answered launch of that kind
  (outcome, job, instance, the task token it answered): what makes a repeated request with
  the same token a no-op, kept with the rest of the migration.

The lane partition holds only what is open, so the coordinator reads all it needs with one
strongly consistent Query per poll, however long the lane has been in use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_args

from botocore.exceptions import ClientError

from orchestration.adapters.dynamo_transactions import conditions_failed
from orchestration.adapters.state_store import META, migration_pk
from orchestration.launch_records import (
    Instance,
    JobKind,
    LaunchIntent,
    LaunchOutcome,
    LaunchRequest,
    LaunchStatus,
    LedgerConflictError,
    LedgerSnapshot,
    RequestRecorded,
    WaitingLaunch,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# DynamoDB's limit on the items of one TransactWriteItems call.
MAX_TRANSACTION_ITEMS = 100
T = TypeVar("T")

REQUEST_PREFIX = "REQUEST#"
OUTBOX_PREFIX = "OUTBOX#"
LEASE = "LEASE"
INTENT_PREFIX = "INTENT#"
OUTCOME_PREFIX = "LAUNCH#"

# No META yet means the ledger was never written to: version 0.
_STILL_AT_SEEN_VERSION = "attribute_not_exists(version) OR version = :seen"
# The migration's launch of this kind was not answered for this request: no outcome yet, or
# one for another execution (a new revision asks anew) that is not this very task's.
_NOT_ANSWERED_FOR = (
    "attribute_not_exists(pk) OR (taskToken <> :t AND "
    "(attribute_not_exists(execution) OR execution <> :e))"
)
# How often completing an outcome follows a request's changing task token before giving up
# for this run (the next run answers it on the token then waiting).
_TOKEN_RACES = 3
# Recording the same job again is a no-op; recording another is a bug, refused.
_OPEN_AND_NOT_ANOTHER_JOB = "attribute_exists(pk) AND (attribute_not_exists(jobId) OR jobId = :job)"


def lane_pk(lane: str) -> str:
    return f"LAUNCHLANE#{lane}"


class DynamoLaunchLedger:
    """``LaunchLedger`` for one lane, in the state table.

    Args:
        table: the state table (``orchestration.adapters.aws.state_table``).
        lane: the lane's label, ``account/region`` (``Lane.label``).
    """

    def __init__(self, table: Table, lane: str) -> None:
        self._table = table
        self._pk = lane_pk(lane)

    def record_new_for_live_loop(
        self, request: LaunchRequest, task_token: str, now: datetime
    ) -> bool:
        """Record a new request in one write if a live loop holds the lane's lease (its
        lease not expired at ``now``): it is counted, so that loop cannot give the lease up
        without seeing it, and nobody needs to claim the lease. False: nothing was written
        (a repeat, or no live loop: ``record_request`` and ``claim_loop`` then, as ever)."""
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=self._new_request_writes(request, task_token, live_at=now)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return False
        return True

    def _new_request_writes(
        self, request: LaunchRequest, task_token: str, *, live_at: datetime | None = None
    ) -> list[Any]:
        """A new request's writes: not answered for this task already, not open already, and
        counted on the lease (with ``live_at``: only while a live loop holds it)."""
        item = {
            "pk": self._pk,
            "sk": _request_sk(request.kind, request.migration_id),
            **_request_attributes(request),
            "taskToken": task_token,
        }
        count: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": {"pk": self._pk, "sk": LEASE},
            "UpdateExpression": "ADD requests :one",
            "ExpressionAttributeValues": {":one": 1},
        }
        if live_at is not None:
            count["ConditionExpression"] = "attribute_exists(execution) AND expiresAt >= :now"
            count["ExpressionAttributeValues"][":now"] = live_at.isoformat()
        return [
            {
                "ConditionCheck": {
                    "TableName": self._table.name,
                    "Key": self._answered_key(request),
                    "ConditionExpression": _NOT_ANSWERED_FOR,
                    "ExpressionAttributeValues": {":t": task_token, ":e": request.execution},
                }
            },
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            # Counted with it, so a loop ending meanwhile sees it came (claim_loop).
            {"Update": count},
        ]

    @staticmethod
    def _answered_key(request: LaunchRequest) -> dict[str, str]:
        return {"pk": migration_pk(request.migration_id), "sk": OUTCOME_PREFIX + request.kind}

    def record_request(self, request: LaunchRequest, task_token: str) -> RequestRecorded:
        item_sk = _request_sk(request.kind, request.migration_id)
        answered_key = self._answered_key(request)
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=self._new_request_writes(request, task_token)
            )
        except ClientError as exc:
            already_answered, already_open = conditions_failed(exc, 2)
            if already_answered:
                return self._answer_again(answered_key, task_token)
            if not already_open:
                raise
        else:
            return "new"
        # Open already: the latest task token is the one waiting (a retried task has a new one).
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": item_sk},
                UpdateExpression="SET taskToken = :t",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":t": task_token},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.record_request(request, task_token)  # answered meanwhile: ask again
        return "open"

    def _answer_again(self, answered_key: dict[str, str], task_token: str) -> RequestRecorded:
        """The execution's launch was answered already: its recorded outcome goes to the
        outbox on ``task_token`` (unless that very token was answered), and the record now
        names that token, so a further repeat of it is a no-op."""
        item = self._table.get_item(Key=answered_key, ConsistentRead=True).get("Item")
        if item is None:  # pragma: no cover - outcomes are never deleted
            raise LedgerConflictError(f"{answered_key}: answered, then gone")
        if item.get("taskToken") == task_token:
            return "answered"
        # The instance as seen back then is not news for the task that asks now: it looks.
        outcome = replace(_outcome(dict(item)), task_token=task_token, instance=None)
        self._table.meta.client.transact_write_items(
            TransactItems=[
                *self._answer_writes(outcome),
            ]
        )
        return "reanswered"

    def _answer_writes(self, outcome: LaunchOutcome) -> list[TransactWriteItemTypeDef]:
        """An answer's two writes, in a transaction: the migration's outcome record and the
        lane's outbox item (until the outcome reaches its execution)."""
        item = _outcome_item(outcome)
        outbox = {**item, "pk": self._pk, "sk": _outbox_sk(outcome.kind, outcome.migration_id)}
        return [
            {"Put": {"TableName": self._table.name, "Item": item}},
            {"Put": {"TableName": self._table.name, "Item": outbox}},
        ]

    def snapshot(self) -> LedgerSnapshot:
        waiting: list[WaitingLaunch] = []
        intents: list[LaunchIntent] = []
        version = undelivered = 0
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": self._pk},
            "ConsistentRead": True,
        }
        while True:
            response = self._table.query(**query)
            for item in response.get("Items", []):
                sk = str(item["sk"])
                if sk == META:
                    version = int(item.get("version", 0))  # type: ignore[arg-type]
                elif sk.startswith(REQUEST_PREFIX):
                    waiting.append(
                        WaitingLaunch(
                            _request(item),
                            str(item["taskToken"]),
                            replication_ready=bool(item.get("replicationReady", False)),
                            test_instance_retired=bool(item.get("testInstanceRetired", False)),
                            dependencies_reported=bool(item.get("dependenciesReported", False)),
                            held_reported=str(item.get("heldReported", "")),
                        )
                    )
                elif sk.startswith(INTENT_PREFIX):
                    intents.append(_intent(item))
                elif sk.startswith(OUTBOX_PREFIX):
                    undelivered += 1
            if "LastEvaluatedKey" not in response:
                return LedgerSnapshot(tuple(waiting), tuple(intents), version, undelivered)
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def add_intent(self, intent: LaunchIntent, *, seen_version: int) -> None:
        item: dict[str, Any] = {
            "pk": self._pk,
            "sk": INTENT_PREFIX + intent.intent_id,
            "intentId": intent.intent_id,
            "kind": intent.kind,
            "members": dict(intent.members),
            "createdAt": intent.created_at.isoformat(),
        }
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": {"pk": self._pk, "sk": META},
                            "UpdateExpression": "ADD version :one",
                            "ConditionExpression": _STILL_AT_SEEN_VERSION,
                            "ExpressionAttributeValues": {":one": 1, ":seen": seen_version},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if any(conditions_failed(exc, 2)):
                raise LedgerConflictError(
                    f"{self._pk}: another coordinator wrote since version {seen_version}"
                ) from exc
            raise

    def record_job(self, intent_id: str, job_id: str) -> None:
        self._table.update_item(
            Key={"pk": self._pk, "sk": INTENT_PREFIX + intent_id},
            UpdateExpression="SET jobId = :job",
            ConditionExpression=_OPEN_AND_NOT_ANOTHER_JOB,
            ExpressionAttributeValues={":job": job_id},
        )

    def mark_replication_ready(self, launches: Sequence[WaitingLaunch]) -> None:
        self._mark_requests(launches, "replicationReady")

    def mark_test_instance_retired(self, launches: Sequence[WaitingLaunch]) -> None:
        self._mark_requests(launches, "testInstanceRetired")

    def mark_dependencies_reported(self, launches: Sequence[WaitingLaunch]) -> None:
        self._mark_requests(launches, "dependenciesReported")

    def mark_held_reported(self, launches: Sequence[WaitingLaunch], hold: str) -> None:
        self._mark_requests(launches, "heldReported", hold)

    def _mark_requests(
        self, launches: Sequence[WaitingLaunch], attribute: str, value: bool | str = True
    ) -> None:
        """Set ``attribute`` (to ``value``) on each request still open (one answered
        meanwhile is skipped)."""

        def mark(launch: WaitingLaunch) -> TransactWriteItemTypeDef:
            return {
                "Update": {
                    "TableName": self._table.name,
                    "Key": self._request_key(launch.request.kind, launch.request.migration_id),
                    "UpdateExpression": "SET #flag = :yes",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": {"#flag": attribute},
                    "ExpressionAttributeValues": {":yes": value},
                }
            }

        def mark_alone(launch: WaitingLaunch) -> None:
            try:
                self._table.update_item(
                    Key=self._request_key(launch.request.kind, launch.request.migration_id),
                    UpdateExpression="SET #flag = :yes",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#flag": attribute},
                    ExpressionAttributeValues={":yes": value},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise  # else answered meanwhile: nothing to mark

        self._in_transactions(launches, lambda launch: [mark(launch)], mark_alone)

    def _request_key(self, kind: str, migration_id: str) -> dict[str, str]:
        return {"pk": self._pk, "sk": _request_sk(kind, migration_id)}

    def _in_transactions(
        self,
        units: Sequence[T],
        writes: Callable[[T], list[TransactWriteItemTypeDef]],
        alone: Callable[[T], None],
    ) -> None:
        """Write each unit's items, as many units to a transaction as fit in one: a unit's
        writes are all-or-nothing either way, and 200 answers are a few calls, not 200. When
        a transaction is cancelled by a condition (a request answered or retried meanwhile),
        its units are written ``alone``, each deciding for itself as it would unbatched."""
        batch: list[T] = []
        items: list[TransactWriteItemTypeDef] = []
        for unit in units:
            unit_items = writes(unit)
            if batch and len(items) + len(unit_items) > MAX_TRANSACTION_ITEMS:
                self._transact_or_alone(batch, items, alone)
                batch, items = [], []
            batch.append(unit)
            items.extend(unit_items)
        if batch:
            self._transact_or_alone(batch, items, alone)

    def _transact_or_alone(
        self,
        batch: list[T],
        items: list[TransactWriteItemTypeDef],
        alone: Callable[[T], None],
    ) -> None:
        if len(batch) == 1:
            alone(batch[0])
            return
        try:
            self._table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if not any(conditions_failed(exc, len(items))):
                raise
            for unit in batch:
                alone(unit)

    def remove_intent(self, intent_id: str) -> None:
        self._table.delete_item(Key={"pk": self._pk, "sk": INTENT_PREFIX + intent_id})

    def complete(self, outcomes: Sequence[LaunchOutcome]) -> None:
        """Each outcome in one transaction with its request: the request leaves the lane's
        open set exactly when its outcome is kept (outcomes share transactions, up to 33 to
        one). A request whose token changed meanwhile (the same execution retried its task)
        is answered on its new token; a request gone, or another execution's, is left
        alone."""

        def writes(outcome: LaunchOutcome) -> list[TransactWriteItemTypeDef]:
            return [
                {
                    "Delete": {
                        "TableName": self._table.name,
                        "Key": self._request_key(outcome.kind, outcome.migration_id),
                        "ConditionExpression": "taskToken = :t",
                        "ExpressionAttributeValues": {":t": outcome.task_token},
                    }
                },
                *self._answer_writes(outcome),
            ]

        self._in_transactions(outcomes, writes, self._complete)

    def _complete(self, outcome: LaunchOutcome) -> None:
        request_key = {"pk": self._pk, "sk": _request_sk(outcome.kind, outcome.migration_id)}
        for _ in range(_TOKEN_RACES):
            try:
                self._table.meta.client.transact_write_items(
                    TransactItems=[
                        {
                            "Delete": {
                                "TableName": self._table.name,
                                "Key": request_key,
                                "ConditionExpression": "taskToken = :t",
                                "ExpressionAttributeValues": {":t": outcome.task_token},
                            }
                        },
                        *self._answer_writes(outcome),
                    ]
                )
            except ClientError as exc:
                if not any(conditions_failed(exc, 3)):
                    raise
            else:
                return
            current = self._table.get_item(Key=request_key, ConsistentRead=True).get("Item")
            if current is None or str(current.get("execution", "")) != outcome.execution:
                return  # answered already, or a later execution's request: not this outcome's
            outcome = replace(outcome, task_token=str(current["taskToken"]))

    def undelivered(self) -> list[LaunchOutcome]:
        """Answered requests whose outcome has not reached its execution yet."""
        outcomes: list[LaunchOutcome] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :outbox)",
            "ExpressionAttributeValues": {":pk": self._pk, ":outbox": OUTBOX_PREFIX},
            "ConsistentRead": True,
        }
        while True:
            response = self._table.query(**query)
            outcomes.extend(_outcome(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return outcomes
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delivered(self, outcomes: Sequence[LaunchOutcome]) -> None:
        """These outcomes reached their executions (or the executions no longer wait): each
        leaves the outbox unless a newer answer (another token) took its place."""

        def writes(outcome: LaunchOutcome) -> list[TransactWriteItemTypeDef]:
            return [
                {
                    "Delete": {
                        "TableName": self._table.name,
                        "Key": {
                            "pk": self._pk,
                            "sk": _outbox_sk(outcome.kind, outcome.migration_id),
                        },
                        "ConditionExpression": "taskToken = :t",
                        "ExpressionAttributeValues": {":t": outcome.task_token},
                    }
                }
            ]

        self._in_transactions(outcomes, writes, self._delivered)

    def _delivered(self, outcome: LaunchOutcome) -> None:
        try:
            self._table.delete_item(
                Key={"pk": self._pk, "sk": _outbox_sk(outcome.kind, outcome.migration_id)},
                ConditionExpression="taskToken = :t",
                ExpressionAttributeValues={":t": outcome.task_token},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # --- the lane's coordinator loop: one at a time ----------------------------------------

    def claim_loop(
        self, execution: str, now: datetime, stale_after: float, *, counted: bool = False
    ) -> str | None:
        """Count a request (unless ``counted``: a new request is counted by the write that
        records it), and name ``execution`` the lane's loop if none holds the lease (or the
        holder's lease expired: it stopped beating): the name to start, or None if a loop
        runs. The lease lasts ``stale_after`` seconds from now until the loop beats. Called
        after the request was recorded."""
        count = "" if counted else "ADD requests :one "
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": LEASE},
                UpdateExpression=(
                    f"{count}SET execution = :me, heartbeat = :now, expiresAt = :until"
                ),
                ConditionExpression="attribute_not_exists(execution) OR expiresAt < :now",
                ExpressionAttributeValues={
                    **({} if counted else {":one": 1}),
                    ":me": execution,
                    ":now": now.isoformat(),
                    ":until": (now + timedelta(seconds=stale_after)).isoformat(),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        else:
            return execution
        if counted:
            return None
        # A loop holds it: count the request, so that loop does not give the lease up unseen.
        self._table.update_item(
            Key={"pk": self._pk, "sk": LEASE},
            UpdateExpression="ADD requests :one",
            ExpressionAttributeValues={":one": 1},
        )
        return None

    def abandon_loop(self, execution: str) -> None:
        """The loop ``execution`` could not be started: give its lease up (if still its)."""
        try:
            self._table.delete_item(
                Key={"pk": self._pk, "sk": LEASE},
                ConditionExpression="execution = :me",
                ExpressionAttributeValues={":me": execution},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def beat(self, execution: str, now: datetime, stale_after: float) -> int | None:
        """The loop ``execution`` is alive (its lease lasts ``stale_after`` seconds more):
        the request count it sees now, or None if the lease is no longer its own."""
        try:
            response = self._table.update_item(
                Key={"pk": self._pk, "sk": LEASE},
                UpdateExpression="SET heartbeat = :now, expiresAt = :until",
                ConditionExpression="execution = :me",
                ExpressionAttributeValues={
                    ":me": execution,
                    ":now": now.isoformat(),
                    ":until": (now + timedelta(seconds=stale_after)).isoformat(),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return None
        return int(response["Attributes"].get("requests", 0))  # type: ignore[arg-type]

    def hand_over_loop(
        self, from_execution: str, to_execution: str, now: datetime, stale_after: float
    ) -> bool:
        """Name ``to_execution`` the lane's loop instead of ``from_execution``, in one
        conditional write: only if ``from_execution`` still holds the lease, or it names
        ``to_execution`` already (the same handover again: a retried run). The lease lasts
        ``stale_after`` seconds from now, until the new loop beats; the request count stays.
        False if another loop holds it, or none does."""
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": LEASE},
                UpdateExpression="SET execution = :to, heartbeat = :now, expiresAt = :until",
                ConditionExpression="execution = :from OR execution = :to",
                ExpressionAttributeValues={
                    ":from": from_execution,
                    ":to": to_execution,
                    ":now": now.isoformat(),
                    ":until": (now + timedelta(seconds=stale_after)).isoformat(),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def release_loop(self, execution: str, seen_requests: int) -> bool:
        """Give the lease up, only if no request was counted since ``seen_requests``."""
        try:
            self._table.delete_item(
                Key={"pk": self._pk, "sk": LEASE},
                ConditionExpression="execution = :me AND requests = :seen",
                ExpressionAttributeValues={":me": execution, ":seen": seen_requests},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def answered(self, migration_id: str, kind: str) -> dict[str, Any] | None:
        """The migration's last answered launch of ``kind`` (for operators and tests)."""
        item = self._table.get_item(
            Key={"pk": migration_pk(migration_id), "sk": OUTCOME_PREFIX + kind},
            ConsistentRead=True,
        ).get("Item")
        return dict(item) if item else None


def _request_sk(kind: str, migration_id: str) -> str:
    return f"{REQUEST_PREFIX}{kind}#{migration_id}"


def _outbox_sk(kind: str, migration_id: str) -> str:
    return f"{OUTBOX_PREFIX}{kind}#{migration_id}"


def _request_attributes(request: LaunchRequest) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "migrationId": request.migration_id,
        "sourceServerId": request.source_server_id,
        "kind": request.kind,
        "wave": request.wave,
        "requestedAt": request.requested_at.isoformat(),
    }
    if request.execution:
        attributes["execution"] = request.execution
    if request.window_start is not None:
        attributes["windowStart"] = request.window_start.isoformat()
    if request.window_end is not None:
        attributes["windowEnd"] = request.window_end.isoformat()
    if request.test_instance_id:
        attributes["testInstanceId"] = request.test_instance_id
    if request.payload:
        attributes["payload"] = request.payload
    if request.application:
        attributes["application"] = request.application
    if request.cutover_after:
        attributes["cutoverAfter"] = list(request.cutover_after)
    if request.mgn_application_id:
        attributes["mgnApplicationId"] = request.mgn_application_id
    return attributes


def _request(item: dict[str, Any]) -> LaunchRequest:
    return LaunchRequest(
        migration_id=str(item["migrationId"]),
        source_server_id=str(item["sourceServerId"]),
        kind="cutover" if item["kind"] == "cutover" else "test",
        wave=str(item["wave"]),
        requested_at=datetime.fromisoformat(str(item["requestedAt"])),
        window_start=_moment(item.get("windowStart")),
        window_end=_moment(item.get("windowEnd")),
        execution=str(item.get("execution", "")),
        test_instance_id=str(item["testInstanceId"]) if item.get("testInstanceId") else None,
        payload=str(item.get("payload", "")),
        mgn_application_id=str(item.get("mgnApplicationId", "")),
        **_ordering(item),
    )


def _ordering(item: dict[str, Any]) -> dict[str, Any]:
    """A request's application and the applications its cutover goes after; for a request
    recorded before they were kept, from its payload (the spec: ``appName``,
    ``cutoverAfter``), so an upgrade in the middle of a wave keeps its order."""
    if "application" in item:
        return {
            "application": str(item["application"]),
            "cutover_after": tuple(str(app) for app in item.get("cutoverAfter") or ()),
        }
    try:
        spec = json.loads(str(item.get("payload") or "{}"))
    except ValueError:
        spec = {}
    if not isinstance(spec, dict):
        spec = {}
    after = spec.get("cutoverAfter") if item.get("kind") == "cutover" else None
    return {
        "application": str(spec.get("appName") or ""),
        "cutover_after": tuple(str(app) for app in after or ()),
    }


def _intent(item: dict[str, Any]) -> LaunchIntent:
    kinds: dict[str, JobKind] = {"test": "test", "cutover": "cutover", "retire": "retire"}
    return LaunchIntent(
        intent_id=str(item["intentId"]),
        kind=kinds[str(item["kind"])],
        members={str(server): str(migration) for server, migration in item["members"].items()},
        created_at=datetime.fromisoformat(str(item["createdAt"])),
        job_id=str(item["jobId"]) if item.get("jobId") else None,
    )


def _outcome_item(outcome: LaunchOutcome) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": migration_pk(outcome.migration_id),
        "sk": OUTCOME_PREFIX + outcome.kind,
        "migrationId": outcome.migration_id,
        "kind": outcome.kind,
        "sourceServerId": outcome.source_server_id,
        "launchStatus": outcome.launch_status,
        "taskToken": outcome.task_token,
        "detail": outcome.detail[:2_000],
    }
    if outcome.job_id:
        item["jobId"] = outcome.job_id
    if outcome.execution:
        item["execution"] = outcome.execution
    if outcome.launched_ec2_instance_id:
        item["launchedEc2InstanceId"] = outcome.launched_ec2_instance_id
    if outcome.instance is not None:
        item["instance"] = outcome.instance.as_data()
    return item


def _instance(value: object) -> Instance | None:
    return Instance.from_data(value) if isinstance(value, dict) else None


def _outcome(item: dict[str, Any]) -> LaunchOutcome:
    return LaunchOutcome(
        migration_id=str(item["migrationId"]),
        task_token=str(item["taskToken"]),
        kind="cutover" if item["kind"] == "cutover" else "test",
        job_id=str(item["jobId"]) if item.get("jobId") else None,
        source_server_id=str(item["sourceServerId"]),
        launch_status=_status(str(item["launchStatus"])),
        launched_ec2_instance_id=(
            str(item["launchedEc2InstanceId"]) if item.get("launchedEc2InstanceId") else None
        ),
        detail=str(item.get("detail", "")),
        execution=str(item.get("execution", "")),
        instance=_instance(item.get("instance")),
    )


def _status(value: str) -> LaunchStatus:
    for status in get_args(LaunchStatus):
        if status == value:
            return cast(LaunchStatus, status)
    return "FAILED"


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None
