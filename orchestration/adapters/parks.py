"""Parked migrations (``onFailure: park``): one item per migration, with its task token.

``PARK#<migration>`` / ``META`` in the state table. The execution waits at
``AwaitParkDecision`` on a task token stored here (it never leaves AWS); Retry or Roll back
(a Slack button, ``/wavepilot retry``, ``wavepilot retry``) decides it with a conditional
write, so of two clicks exactly one wins, and a button from an earlier park of the same
migration (its ``parkId``) decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ParkStatus = Literal["PENDING", "RETRY", "ROLLBACK", "EXPIRED"]
PARK_SK = "META"


def park_key(migration_id: str) -> dict[str, str]:
    return {"pk": f"PARK#{migration_id}", "sk": PARK_SK}


@dataclass(frozen=True, slots=True)
class ParkRecord:
    park_id: str
    migration_id: str
    status: ParkStatus
    failed_step: str
    error: str
    cause: str
    parked_at: datetime
    rollback_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None
    reason: str = ""

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "parkId": self.park_id,
            "migrationId": self.migration_id,
            "status": self.status,
            "failedStep": self.failed_step,
            "error": self.error,
            "cause": self.cause,
            "parkedAt": self.parked_at.isoformat(),
            "rollbackAt": self.rollback_at.isoformat(),
        }
        if self.decided_by:
            item["decidedBy"] = self.decided_by
            item["reason"] = self.reason
        if self.decided_at is not None:
            item["decidedAt"] = self.decided_at.isoformat()
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ParkRecord:
        decided_at = item.get("decidedAt")
        return cls(
            park_id=str(item["parkId"]),
            migration_id=str(item["migrationId"]),
            status=item["status"],
            failed_step=str(item.get("failedStep", "")),
            error=str(item.get("error", "")),
            cause=str(item.get("cause", "")),
            parked_at=datetime.fromisoformat(str(item["parkedAt"])),
            rollback_at=datetime.fromisoformat(str(item["rollbackAt"])),
            decided_by=str(item.get("decidedBy", "")),
            decided_at=datetime.fromisoformat(str(decided_at)) if decided_at else None,
            reason=str(item.get("reason", "")),
        )


class ParkStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create_park(self, park: ParkRecord, task_token: str) -> None:
        """Store the park and its token. A migration has one park at a time: the newest
        (a retried gate invocation, or a later park after a retry) replaces it."""
        self._table.put_item(
            Item={**park_key(park.migration_id), **park.to_item(), "taskToken": task_token}
        )

    def park(self, migration_id: str) -> ParkRecord | None:
        item = self._table.get_item(Key=park_key(migration_id), ConsistentRead=True).get("Item")
        return ParkRecord.from_item(item) if item else None

    def decide_park(
        self,
        migration_id: str,
        park_id: str,
        *,
        decision: ParkStatus,
        user: str,
        reason: str,
        now: datetime,
    ) -> str | None:
        """Record the decision if this park is still pending; its task token, or None if
        it was decided (or replaced) before."""
        try:
            response = self._table.update_item(
                Key=park_key(migration_id),
                UpdateExpression=(
                    "SET #status = :decision, decidedBy = :user, decidedAt = :now, reason = :reason"
                ),
                ConditionExpression="#status = :pending AND parkId = :park",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":decision": decision,
                    ":user": user,
                    ":now": now.isoformat(),
                    ":reason": reason,
                    ":pending": "PENDING",
                    ":park": park_id,
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return str(response["Attributes"]["taskToken"])

    def revert_park_decision(self, migration_id: str, park_id: str, *, user: str) -> None:
        """Undo a decision Step Functions never heard of: pending again."""
        self._table.update_item(
            Key=park_key(migration_id),
            UpdateExpression="SET #status = :pending REMOVE decidedBy, decidedAt, reason",
            ConditionExpression="parkId = :park AND decidedBy = :user",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": "PENDING", ":park": park_id, ":user": user},
        )
