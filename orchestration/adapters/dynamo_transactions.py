"""Conditional puts written together: one ``TransactWriteItems`` for many items, those whose
condition fails left out (DynamoDB cancels the whole transaction and says which failed)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# Items one TransactWriteItems may hold (DynamoDB's limit).
MAX_ITEMS_PER_TRANSACTION = 100

Key = TypeVar("Key", bound=Hashable)


def conditions_failed(exc: ClientError, actions: int) -> tuple[bool, ...]:
    """Which actions of a cancelled transaction failed their condition; every one False if
    the call failed for another reason (the caller re-raises)."""
    if exc.response["Error"]["Code"] != "TransactionCanceledException":
        return (False,) * actions
    reasons = exc.response.get("CancellationReasons") or []
    failed = tuple(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons[:actions])
    return failed + (False,) * (actions - len(failed))


def put_all_but_refused(table: Table, puts: Sequence[tuple[Key, dict[str, Any]]]) -> set[Key]:
    """Write each put (``PutItem``'s arguments, its condition among them; at most
    ``MAX_ITEMS_PER_TRANSACTION``) in one ``TransactWriteItems``: the keys of those whose
    condition failed (nothing written for them; the others are written again without them).
    Raises for any other failure (nothing of that call written)."""
    if not puts:
        return set()
    try:
        actions: list[Any] = [{"Put": {"TableName": table.name, **put}} for _, put in puts]
        table.meta.client.transact_write_items(TransactItems=actions)
    except ClientError as exc:
        failed = conditions_failed(exc, len(puts))
        refused = {key for (key, _), no in zip(puts, failed, strict=True) if no}
        if not refused:
            raise  # cancelled for another reason (a conflict, throttling)
        return refused | put_all_but_refused(table, [p for p in puts if p[0] not in refused])
    return set()
