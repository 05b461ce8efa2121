"""The migration state in DynamoDB (single table, documented in docs/ARCHITECTURE.md).

Items:
- ``MIGRATION#<id>`` / ``META``: the request, its revision, status, step, execution ARN,
  the per-migration event ``seq`` counter, the Slack thread; ``gsi1pk = WAVE#<wave>``.
- ``REJECTED#<sqs message id>`` / ``META``: a request the ingress refused, and why.
- ``idempotency#<function>`` / ``<key hash>``: Powertools' idempotency records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from orchestration.migration_request import MigrationRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

META = "META"
REJECTION_RETENTION = timedelta(days=90)


def migration_key(migration_id: str) -> dict[str, str]:
    return {"pk": f"MIGRATION#{migration_id}", "sk": META}


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
        )


class MigrationStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def record_request(
        self, request: MigrationRequest, revision: str, correlation_id: str, now: datetime
    ) -> RecordOutcome:
        """Record a request; a repeat of the recorded revision changes nothing."""
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
            "step": "Intake",
            "seq": 0,
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
            return RecordOutcome.NEW
        try:
            self._table.update_item(
                Key=migration_key(request.migration_id),
                UpdateExpression=(
                    "SET #revision = :revision, #request = :request, correlationId = :correlation,"
                    " #status = :status, #step = :step, updatedAt = :now REMOVE executionArn"
                ),
                ConditionExpression="#revision <> :revision",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#request": "request",
                    "#revision": "revision",
                    "#step": "step",
                },
                ExpressionAttributeValues={
                    ":revision": revision,
                    ":request": item["request"],
                    ":correlation": correlation_id,
                    ":status": "REQUESTED",
                    ":step": "Intake",
                    ":now": stamp,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return RecordOutcome.SAME
            raise
        return RecordOutcome.REVISED

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

    def set_execution(
        self, migration_id: str, revision: str, execution_arn: str, now: datetime
    ) -> None:
        self._table.update_item(
            Key=migration_key(migration_id),
            UpdateExpression="SET executionArn = :arn, #status = :running, updatedAt = :now",
            ConditionExpression="#revision = :revision",
            ExpressionAttributeNames={"#status": "status", "#revision": "revision"},
            ExpressionAttributeValues={
                ":arn": execution_arn,
                ":running": "RUNNING",
                ":now": now.isoformat(),
                ":revision": revision,
            },
        )

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


def utc_now() -> datetime:
    return datetime.now(UTC)
